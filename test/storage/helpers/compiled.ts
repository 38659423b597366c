/**
 * The storage modules compiled to plain JavaScript in a temp directory, with a small
 * driver, so a test can run a FileStore in another process: as an unprivileged user
 * (real EACCES; root bypasses permissions) or as a second server on the same
 * directory (cross-process locking).
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const repo = resolve(import.meta.dirname, '../../..');

const DRIVER = `
import { FileStore } from './storage/file-store.js';
let input = '';
for await (const chunk of process.stdin) input += chunk;
const [opts, steps] = JSON.parse(input);
const log = { info() {}, warn() {}, debug() {}, error() {}, child() { return log; } };
const results = [];
try {
  const store = await FileStore.open({ ...opts, log });
  for (const [op, ...args] of steps) {
    try {
      const out = await store[op](...args.map((a) => (a && typeof a === 'object' && 'b64' in a ? Buffer.from(a.b64, 'base64') : a)));
      results.push({ ok: true, out: Buffer.isBuffer(out) ? out.toString('base64') : out });
    } catch (e) {
      results.push({ ok: false, kind: e.kind ?? String(e.code ?? e), message: String(e.message) });
    }
  }
} catch (e) {
  results.push({ ok: false, kind: e.kind ?? String(e.code ?? e), message: String(e.message), open: true });
}
process.stdout.write(JSON.stringify(results));
`;

export type StepResult = { ok: true; out?: unknown } | { ok: false; kind: string; message: string };
export type Step = [string, ...unknown[]];

export interface CompiledStore {
  readonly dir: string;
  run(options: Record<string, unknown>, steps: Step[], as?: { uid: number; gid: number }): Promise<StepResult[]>;
  cleanup(): Promise<void>;
}

export const bytes = (b: Buffer | string): { b64: string } => ({ b64: Buffer.from(b).toString('base64') });

export async function compileStore(): Promise<CompiledStore> {
  const dir = await mkdtemp(join(tmpdir(), 'tsieved-compiled-'));
  execFileSync(
    join(repo, 'node_modules/.bin/tsc'),
    [
      '--outDir',
      dir,
      '--rootDir',
      join(repo, 'src'),
      '--module',
      'NodeNext',
      '--moduleResolution',
      'NodeNext',
      '--target',
      'ES2022',
      '--strict',
      '--skipLibCheck',
      '--types',
      'node',
      join(repo, 'src/storage/file-store.ts'),
    ],
    { cwd: repo, stdio: 'pipe' },
  );
  await writeFile(join(dir, 'package.json'), '{"type":"module"}\n');
  await writeFile(join(dir, 'driver.mjs'), DRIVER);
  await chmod(dir, 0o755); // readable by the unprivileged test user
  return {
    dir,
    run(options, steps, as) {
      return new Promise((resolvePromise, reject) => {
        const child = spawn(process.execPath, [join(dir, 'driver.mjs')], {
          cwd: dir,
          stdio: ['pipe', 'pipe', 'pipe'],
          ...(as ? { uid: as.uid, gid: as.gid } : {}),
        });
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        child.on('error', reject);
        child.stdin.end(JSON.stringify([options, steps]));
        child.on('close', (code) => {
          if (code !== 0) reject(new Error(`driver exited ${code}: ${err}`));
          else resolvePromise(JSON.parse(out) as StepResult[]);
        });
      });
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
