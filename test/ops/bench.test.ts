/**
 * `bench/run.mjs` works end to end at a tiny size (it is not a speed test: nothing
 * here asserts how fast anything is): against the built tsieved, and side by side
 * with a throwaway Dovecot when one is installed. Checks that every workload ran,
 * without errors, and that the JSON result holds the numbers BENCHMARKS.md quotes.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ROOT as AS_ROOT, inCI, needs, requirement } from '../helpers/tools.js';

const ROOT = resolve(__dirname, '../..');
const RUN = join(ROOT, 'bench/run.mjs');
const DOVECOT_MANAGESIEVE = requirement(
  "Dovecot's managesieve (dovecot-managesieved)",
  ['/usr/lib/dovecot/managesieve', '/usr/libexec/dovecot/managesieve'].some((p) => existsSync(p)),
);
const built = existsSync(join(ROOT, 'dist/cli.js'));
// npm test builds first; in CI a missing build is a failure, not a skip.
if (!built && inCI) throw new Error('dist/cli.js is missing: run npm run build');

interface Side {
  login: {
    logins: number;
    loginsPerSecond: number;
    p50Ms: number;
    p99Ms: number;
    errors: number;
    serverCpuMsPerLogin?: number;
  };
  idle: { sessions: number; errors: number; during: { rss: number; pss: number } };
  validate: { bytes: number; medianMs: number; status: string };
}

interface IsolationSide {
  authenticateToOkMs: { n: number; p50: number };
  barePamInterleavedMs: { n: number; p50: number };
  barePamInterleavedWithoutStartMs: { n: number; p50: number };
  idle: Record<
    string,
    { sessions: number; errors: number; pssPerSessionKiB: number; childrenPssPerSessionKiB: number }
  >;
  full: { sessions: number; errors: number; p50Ms: number; p99Ms: number };
}
/** The isolation figures (bench/isolation.mjs, run by run.mjs as root), if it ran. */
let isolation: { barePamMs: { n: number; p50: number }; servers: Record<string, IsolationSide> } | undefined;

function bench(args: string[]): Record<string, Side> {
  const dir = mkdtempSync(join(tmpdir(), 'tsieved-bench-test-'));
  try {
    const out = join(dir, 'result.json');
    execFileSync(
      process.execPath,
      [
        RUN,
        '--duration',
        '1',
        '--warmup',
        '0',
        '--concurrency',
        '3',
        '--idle',
        '10',
        '--users',
        '5',
        '--processes',
        '1',
        '--json',
        out,
        ...args,
      ],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 240_000,
      },
    );
    isolation = existsSync(`${out}.isolation.json`)
      ? JSON.parse(readFileSync(`${out}.isolation.json`, 'utf8'))
      : undefined;
    return (JSON.parse(readFileSync(out, 'utf8')) as { results: Record<string, Side> }).results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function expectComplete(side: Side | undefined): void {
  expect(side).toBeDefined();
  const s = side as Side;
  expect(s.login.errors).toBe(0);
  expect(s.login.logins).toBeGreaterThan(0);
  expect(s.login.p99Ms).toBeGreaterThanOrEqual(s.login.p50Ms);
  // A login costs its server some CPU time: zero would mean the wrong processes were read.
  expect(s.login.serverCpuMsPerLogin).toBeGreaterThan(0);
  expect(s.idle).toMatchObject({ sessions: 10, errors: 0 });
  expect(s.idle.during.pss).toBeGreaterThan(0);
  expect(s.validate.status).toBe('OK');
  expect(s.validate.bytes).toBe(1_048_000);
}

// bench/lib/fixtures.mjs makes its certificate with openssl.
describe.skipIf(!built)('npm run bench', needs('openssl'), () => {
  it('runs every workload against tsieved', () => {
    const r = bench(['--no-dovecot']);
    expect(Object.keys(r)).toEqual(['tsieved', 'tsieved-2w']);
    expectComplete(r.tsieved);
    expectComplete(r['tsieved-2w']);
  }, 240_000);

  it(
    'runs the same workloads against Dovecot side by side',
    { ...needs('dovecot', DOVECOT_MANAGESIEVE, AS_ROOT), timeout: 240_000 },
    () => {
      const r = bench(['--workers', '1']);
      expect(Object.keys(r)).toEqual(['tsieved', 'dovecot']);
      expectComplete(r.tsieved);
      expectComplete(r.dovecot);
      // As root, the isolation figures too: PAM logins with a process per session, both servers.
      expect(isolation?.barePamMs.n).toBe(5);
      for (const name of ['tsieved', 'dovecot']) {
        const side = isolation!.servers[name];
        expect(side.authenticateToOkMs.n).toBe(5);
        // The bare PAM transaction once more, one right before each of those logins.
        expect(side.barePamInterleavedMs.n).toBe(5);
        expect(side.barePamInterleavedWithoutStartMs.p50).toBeGreaterThan(0);
        expect(side.barePamInterleavedWithoutStartMs.p50).toBeLessThan(side.barePamInterleavedMs.p50);
        expect(side.full).toMatchObject({ sessions: 12, errors: 0 });
        expect(side.idle['10']).toMatchObject({ sessions: 10, errors: 0 });
        expect(side.idle['10'].pssPerSessionKiB).toBeGreaterThan(0);
      }
    },
  );
});
