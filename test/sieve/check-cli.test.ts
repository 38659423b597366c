/**
 * `tsieved check`: output format, exit codes (0 valid, 1 invalid, 2 usage or
 * unreadable), standard input, --json, --config and --capabilities.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { runCheck } from '../../src/cli/check.js';

const dir = mkdtempSync(join(tmpdir(), 'tsieved-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string | Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

async function check(argv: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await runCheck(argv, { stdin: Readable.from([Buffer.from(stdin)]), stdout, stderr });
  return { code, out, err };
}

const CAPS = ['--capabilities', 'fileinto copy envelope vacation'];

describe('tsieved check', () => {
  const good = file('good.sieve', 'require "fileinto";\nfileinto "Junk";\n');
  const warned = file('warn.sieve', 'require "vacation";\nvacation :days 90 "away";\n');
  const badFile = file('bad.sieve', 'require "fileinto";\nfileinto "|rm -rf ~";\nfrob;\n');

  it('exits 0 and prints nothing for a valid script', async () => {
    expect(await check([...CAPS, good])).toEqual({ code: 0, out: '', err: '' });
  });

  it('exits 0 with warnings printed', async () => {
    const r = await check([...CAPS, warned]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${warned}:2:16: warning: vacation :days 90 is outside 1-31; Exim will use 31\n`);
  });

  it('exits 1 and prints FILE:LINE:COL for each error', async () => {
    const r = await check([...CAPS, good, badFile]);
    expect(r.code).toBe(1);
    const lines = r.out.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^${badFile}:2:10: error: fileinto "\\|rm -rf ~": .*run a command`));
    expect(lines[1]).toBe(`${badFile}:3:1: error: unknown command "frob"`);
  });

  it('reads standard input for "-"', async () => {
    const r = await check([...CAPS, '-'], 'keep;\nbogus;\n');
    expect(r.code).toBe(1);
    expect(r.out).toBe('-:2:1: error: unknown command "bogus"\n');
  });

  it('honours --capabilities', async () => {
    const r = await check(['--capabilities', 'copy', good]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('extension "fileinto" is not enabled on this server');
  });

  it('writes JSON with --json', async () => {
    const r = await check([...CAPS, '--json', good, badFile]);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out) as {
      extensions: string[];
      files: { file: string; valid: boolean; diagnostics: unknown[] }[];
    };
    expect(j.extensions).toEqual(['fileinto', 'copy', 'envelope', 'vacation']);
    expect(j.files.map((f) => f.valid)).toEqual([true, false]);
    expect(j.files[1].diagnostics).toHaveLength(2);
  });

  it('reads the profile from --config', async () => {
    const cfg = file('tsieved.toml', '[sieve]\ncapabilities = ["fileinto"]\nfileinto_policy = "relative"\n');
    const hidden = file('hidden.sieve', 'require "fileinto";\nfileinto ".archive";\n');
    expect((await check(['--config', cfg, hidden])).code).toBe(0);
    expect((await check([...CAPS, hidden])).code).toBe(1);
  });

  it('exits 2 on usage errors and unreadable files', async () => {
    expect((await check([])).code).toBe(2);
    expect((await check(['--bogus', good])).code).toBe(2);
    expect((await check(['--config'])).code).toBe(2);
    const r = await check([...CAPS, join(dir, 'missing.sieve')]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('cannot read');
    expect((await check(['--config', join(dir, 'missing.toml'), good])).code).toBe(2);
  });
});

describe('start-up of tsieved check', () => {
  it("uses the schema's defaults without loading the configuration schema", async () => {
    const { configSchema } = await import('../../src/config/schema.js');
    const { MAX_SCRIPT_BYTES_DEFAULT, SIEVE_DEFAULTS } = await import('../../src/config/defaults.js');
    const parsed = configSchema.parse({});
    expect({ ...SIEVE_DEFAULTS }).toEqual(parsed.sieve);
    expect(MAX_SCRIPT_BYTES_DEFAULT).toBe(parsed.storage.max_script_bytes);
  });

  it('loads neither zod nor the server for a check (the built CLI, in a child process)', async () => {
    const { execFileSync } = await import('node:child_process');
    const { existsSync, readFileSync } = await import('node:fs');
    const { pathToFileURL } = await import('node:url');
    const cli = join(import.meta.dirname, '../../dist/tsieved.cjs');
    if (!existsSync(cli)) return; // npm test builds first
    // A module-loading hook records every module the check resolves.
    const log = join(dir, 'loaded.txt');
    const hooks = file(
      'hooks.mjs',
      `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(${JSON.stringify(log)}, r.url + '\\n');
  return r;
}`,
    );
    const register = file(
      'register.mjs',
      `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`,
    );
    const out = execFileSync(
      process.execPath,
      [
        '--import',
        pathToFileURL(register).href,
        cli,
        'check',
        '--capabilities',
        'fileinto',
        file('ok.sieve', 'require "fileinto";\nfileinto "a";\n'),
      ],
      { encoding: 'utf8' },
    );
    expect(out).toBe('');
    const loaded = readFileSync(log, 'utf8');
    expect(loaded).not.toMatch(/zod|pino|smol-toml|\/dist\/main\.js|\/dist\/server\/|\/dist\/config\/schema\.js/);
    // The build bundles the check into one file, which check-bundle.js runs with
    // its code cache; without esbuild, check.js and its modules one by one.
    const ours = loaded.split('\n').filter((u) => u.startsWith('file:') && u.includes('/dist/'));
    if (existsSync(join(import.meta.dirname, '../../dist/cli/check.bundle.cjs'))) {
      expect(ours.map((u) => u.replace(/^.*\/dist\//, ''))).toEqual(['tsieved.cjs', 'cli.js', 'cli/check-bundle.js']);
      // The cache the build wrote fits this Node: V8 takes it instead of compiling.
      expect(existsSync(join(import.meta.dirname, '../../dist/cli/check.bundle.cjs.cache'))).toBe(true);
      const cache = execFileSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `const { loadCheckBundle } = await import(${JSON.stringify(pathToFileURL(join(import.meta.dirname, '../../dist/cli/check-bundle.js')).href)});
const l = loadCheckBundle(new URL(${JSON.stringify(pathToFileURL(join(import.meta.dirname, '../../dist/cli/')).href)}));
process.stdout.write(String(l.cacheRejected));`,
        ],
        { encoding: 'utf8' },
      );
      expect(cache).toBe('false');
    } else {
      expect(loaded).toContain('/dist/sieve/validate.js');
    }
    // ES imports of node:fs make Node load its stream classes; a check that prints nothing needs none.
    const streams = execFileSync(
      process.execPath,
      [
        '--import',
        `data:text/javascript,process.on('exit',()=>{if(process.moduleLoadList.some((m)=>m.includes('internal/fs/streams')))process.exitCode=3})`,
        cli,
        'check',
        '--capabilities',
        'fileinto',
        file('ok2.sieve', 'require "fileinto";\nfileinto "a";\n'),
      ],
      { encoding: 'utf8' },
    );
    expect(streams).toBe('');
  });

  it('gives the same results from the built CLI as from runCheck', async () => {
    const { spawnSync } = await import('node:child_process');
    const { existsSync } = await import('node:fs');
    const cli = join(import.meta.dirname, '../../dist/tsieved.cjs');
    if (!existsSync(cli)) return; // npm test builds first
    const cfg = file('same.toml', '[sieve]\ncapabilities = ["fileinto", "vacation"]\nfileinto_policy = "relative"\n');
    const files = [
      file('same-good.sieve', 'require "fileinto";\nfileinto ".archive";\n'),
      file('same-warn.sieve', 'require "vacation";\nvacation :days 90 "away";\n'),
      file('same-bad.sieve', 'require "fileinto";\nfileinto "|x";\nif header :is "a" {\n'),
    ];
    const cases: [string[], string][] = [
      [[...CAPS, ...files], ''],
      [['--config', cfg, '--json', ...files], ''],
      [[...CAPS, '-'], 'keep;\nfrob;\n'],
      [files, ''], // no --capabilities: Exim is asked when it is installed
      [['--bogus'], ''],
    ];
    for (const [argv, stdin] of cases) {
      const child = spawnSync(process.execPath, [cli, 'check', ...argv], { input: stdin, encoding: 'utf8' });
      expect({ code: child.status, out: child.stdout, err: child.stderr }, argv.join(' ')).toEqual(
        await check(argv, stdin),
      );
    }
  });
});
