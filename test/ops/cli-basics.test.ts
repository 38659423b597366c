/**
 * `tsieved --help` and `--version` answer and exit 0 (packagers and admins call
 * them first); an unknown command prints the usage and exits 2; the executable
 * sizes libuv's thread pool before Node starts it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../helpers/tsieved.js';

const CLI = join(PACKAGE_ROOT, 'dist/tsieved.cjs');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });

describe('tsieved --help / --version', () => {
  it('--version prints the package version and exits 0', () => {
    const { version } = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = run(flag);
      expect([r.status, r.stdout]).toEqual([0, `tsieved ${version}\n`]);
    }
  });

  it('--help prints every command on stdout and exits 0', () => {
    for (const flag of ['--help', '-h', 'help']) {
      const r = run(flag);
      expect(r.status).toBe(0);
      for (const command of ['serve', 'check', 'config check', 'migrate', 'build-helper'])
        expect(r.stdout).toContain(`tsieved ${command}`);
    }
  });

  it('an unknown command prints the usage on stderr and exits 2', () => {
    const r = run('frobnicate');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('tsieved serve');
  });
});

describe('the tsieved executable (dist/tsieved.cjs)', () => {
  /** Threads of `tsieved check -` while it waits for its script on stdin (Linux /proc). */
  const threadsWhileWaiting = async (env: NodeJS.ProcessEnv): Promise<number> => {
    const child = spawn(process.execPath, [CLI, 'check', '--capabilities', 'fileinto', '-'], {
      env,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    try {
      // The pool has started once the ES module loader has read cli.js; wait until
      // the count settles rather than for a fixed time.
      let last = -1;
      for (let stable = 0; stable < 5;) {
        await new Promise((r) => setTimeout(r, 100));
        const n = readdirSync(`/proc/${child.pid}/task`).length;
        stable = n === last ? stable + 1 : 0;
        last = n;
      }
      return last;
    } finally {
      child.kill();
    }
  };

  it.skipIf(!existsSync('/proc/self/task'))(
    "starts libuv's pool with 16 threads, and an operator's UV_THREADPOOL_SIZE wins",
    async () => {
      // Password hashing runs in that pool (src/tsieved.cts says why 4 is too few);
      // set from an ES module the variable comes too late and the pool keeps 4.
      const env = { ...process.env };
      delete env.UV_THREADPOOL_SIZE;
      const byDefault = await threadsWhileWaiting(env);
      const withFour = await threadsWhileWaiting({ ...env, UV_THREADPOOL_SIZE: '4' });
      expect(byDefault - withFour).toBe(12);
    },
    20_000,
  );
});
