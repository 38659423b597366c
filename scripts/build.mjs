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
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  chmodSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';

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

// The file-I/O thread's program is plain JavaScript that a Worker loads as it is.
copyFileSync(join(root, 'src/storage/fs-thread.cjs'), join(root, 'dist/storage/fs-thread.cjs'));

// tsc does not copy the generated JavaScript; put it where the compiled code imports it.
const distGenerated = join(root, 'dist/sieve/generated');
mkdirSync(distGenerated, { recursive: true });
for (const f of existsSync(generatedDir) ? readdirSync(generatedDir) : []) {
  if (f.endsWith('.js')) copyFileSync(join(generatedDir, f), join(distGenerated, f));
}
for (const exe of ['dist/tsieved.cjs', 'dist/cli.js'])
  if (existsSync(join(root, exe))) chmodSync(join(root, exe), 0o755);

// `tsieved check` loads one file instead of some thirty modules, with V8's code
// cache for it (src/cli/check-bundle.ts): Node 20 spends about a millisecond on
// each module it resolves, reads and links, and compiles every function again
// on each start, which together were most of a small check's own time (node
// --cpu-prof, instruction counts in BENCHMARKS.md). The bundle is made from the
// compiled check.js as CommonJS (Node 20 caches no code for ES modules); the
// configuration loader (zod, smol-toml) stays a separate import that only
// --config loads. The cache comes from a warm-up check of a few scripts, so it
// holds the validator's compiled functions too; it fits only this Node (V8
// ignores it elsewhere). Without esbuild, cli.ts loads check.js as before.
const bundle = join(root, 'dist/cli/check.bundle.cjs');
rmSync(bundle, { force: true });
rmSync(`${bundle}.cache`, { force: true });
for (const old of ['check.bundle.js', 'check.bundle.js.map']) rmSync(join(root, 'dist/cli', old), { force: true }); // of an earlier build
try {
  const esbuild = await import('esbuild');
  await esbuild.build({
    entryPoints: [join(root, 'dist/cli/check.js')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'cjs',
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
if (existsSync(bundle)) {
  const { loadCheckBundle } = await import(pathToFileURL(join(root, 'dist/cli/check-bundle.js')).href);
  const loaded = loadCheckBundle(pathToFileURL(join(root, 'dist/cli/')));
  const warm = mkdtempSync(join(tmpdir(), 'tsieved-build-'));
  try {
    const rules = Array.from(
      { length: 20 },
      (_, i) =>
        `if anyof (header :contains "list-id" "<l${i}.example.org>", address :domain :is ["from", "sender"] "l${i}.example.org") {\n` +
        `  fileinto "lists/l${i}";\n  stop;\n} elsif allof (header :matches "subject" "*[t ${i}]*", size :under 100K) {\n` +
        `  fileinto :copy "t/${i}";\n}\n`,
    ).join('');
    const good = join(warm, 'good.sieve');
    const bad = join(warm, 'bad.sieve');
    writeFileSync(good, `require ["fileinto", "copy", "envelope", "vacation"];\n${rules}vacation :days 3 "away";\n`);
    writeFileSync(bad, 'require "fileinto";\nfileinto "|x";\nfrob;\nif header :is "a" {\n');
    const sink = new Writable({ write: (_chunk, _encoding, done) => done() });
    const caps = 'comparator-i;ascii-numeric copy encoded-character envelope fileinto subaddress vacation';
    for (const files of [[good, bad], [good]]) {
      await loaded.module.runCheck(['--capabilities', caps, ...files], {
        stdin: process.stdin,
        stdout: sink,
        stderr: sink,
      });
    }
    loaded.saveCache();
  } finally {
    rmSync(warm, { recursive: true, force: true });
  }
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
