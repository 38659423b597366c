// Build: generate the Sieve parser from grammar/sieve.peggy (peggy 5, ES module with
// TypeScript declarations), compile TypeScript to dist/, copy the generated parser
// beside the compiled code, bundle what `tsieved check` loads into one file, and
// build the PAM helper when the system can.
// Generated files are build output and are not committed.
//
//   --clean    remove dist/ first (nothing stale from removed sources survives)
//   --release  what `npm pack` ships (prepack): no source maps (they would point at
//              src/, which the package does not contain), and no PAM helper (a
//              binary of the packer's machine; users run `tsieved build-helper`)
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, chmodSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
const clean = process.argv.includes('--clean');
const release = process.argv.includes('--release');

if (clean) rmSync(join(root, 'dist'), { recursive: true, force: true });

const generatedDir = join(root, 'src/sieve/generated');
mkdirSync(generatedDir, { recursive: true });
if (existsSync(join(root, 'grammar/sieve.peggy'))) {
  run(process.execPath, [
    join(root, 'node_modules/peggy/bin/peggy.js'),
    '--format',
    'es',
    '--dts',
    '--return-types',
    JSON.stringify({ Script: 'import("../ast.js").Script' }),
    '--allowed-start-rules',
    'Script',
    '-o',
    join(generatedDir, 'parser.js'),
    join(root, 'grammar/sieve.peggy'),
  ]);
}
run(process.execPath, [
  join(root, 'node_modules/typescript/bin/tsc'),
  '-p',
  'tsconfig.json',
  ...(release ? ['--sourceMap', 'false'] : []),
]);

// tsc does not copy the generated JavaScript; put it where the compiled code imports it.
const distGenerated = join(root, 'dist/sieve/generated');
mkdirSync(distGenerated, { recursive: true });
for (const f of existsSync(generatedDir) ? readdirSync(generatedDir) : []) {
  if (f.endsWith('.js')) copyFileSync(join(generatedDir, f), join(distGenerated, f));
}
if (existsSync(join(root, 'dist/cli.js'))) chmodSync(join(root, 'dist/cli.js'), 0o755);

// `tsieved check` loads one file instead of some thirty modules: Node 20 spends
// about a millisecond on each module it resolves, reads and links, which was
// most of a small check's own time (node --cpu-prof). The bundle is made from
// the compiled check.js; the configuration loader (zod, smol-toml) stays a
// separate import that only --config loads. cli.ts falls back to check.js when
// the bundle is absent, so a build without esbuild still works, more slowly.
const bundle = join(root, 'dist/cli/check.bundle.js');
rmSync(bundle, { force: true });
try {
  const esbuild = await import('esbuild');
  await esbuild.build({
    entryPoints: [join(root, 'dist/cli/check.js')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['../config/loader.js'],
    sourcemap: !release,
    logLevel: 'warning',
  });
} catch (e) {
  console.warn(
    `tsieved: check bundle not built (${e instanceof Error ? e.message : String(e)}); tsieved check loads its modules one by one`,
  );
}

// The PAM helper is optional at build time: without libpam headers the pam backend
// refuses to start with a clear message and everything else still works.
if (!release && existsSync(join(root, 'helper/build.sh'))) {
  try {
    run('bash', [join(root, 'helper/build.sh')]);
  } catch {
    console.warn('tsieved: PAM helper not built (see message above); the pam backend is unavailable');
  }
}
