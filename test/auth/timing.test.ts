/**
 * No login timing oracle: over 100 + 100 interleaved attempts against a real file
 * with mixed hash costs, "no such user" and "wrong password for a typical account"
 * (and, for SCRAM, the first server-first message for an unknown and for a real
 * cleartext name) are not told apart by a Mann-Whitney test at p < 0.001. Each
 * test first shows that it can tell apart what does differ (the costly account),
 * so a test that could not fail would not pass.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PasswdFileBackend } from '../../src/auth/passwd-file.js';
import type { AuthContext } from '../../src/auth/types.js';
import { mannWhitneyP } from '../helpers/mann-whitney.js';
import { captureLogger, madeBy } from './util.js';

const ctx: AuthContext = { remoteAddress: '127.0.0.1', secure: true };
const ALPHA = 0.001;
const N = 100;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsieved-timing-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/**
 * `n` rounds of one a and one b, in random order within each round, so drift in
 * machine load hits both alike and neither always runs first.
 */
async function interleaved(
  n: number,
  a: (i: number) => Promise<unknown>,
  b: (i: number) => Promise<unknown>,
): Promise<[number[], number[]]> {
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < n; i++) {
    if (Math.random() < 0.5) {
      ta.push(await timed(() => a(i)));
      tb.push(await timed(() => b(i)));
    } else {
      tb.push(await timed(() => b(i)));
      ta.push(await timed(() => a(i)));
    }
  }
  return [ta, tb];
}

describe('login timing', () => {
  it('an unknown name costs what a wrong password for a typical account costs, with one costly hash in the file', async () => {
    const lines = [0, 1, 2, 3, 4, 5, 6, 7].map(
      (i) => `user${i}:${madeBy('openssl', ['passwd', '-6', `pw${i}`]).trim()}:1:1::/h::`,
    );
    const costly = madeBy('openssl', ['passwd', '-6', '-salt', 'costlysalt', 'pw'])
      .trim()
      .replace(/^\$6\$/, '$6$rounds=60000$');
    // openssl cannot set rounds; libcrypt reads them from the setting, so the hash
    // is a valid (if wrong for "pw") $6$rounds=60000$ entry: 12x the default cost.
    lines.push(`costly:${costly}:1:1::/h::`);
    const file = join(dir, 'passwd');
    await writeFile(file, lines.join('\n') + '\n');
    const b = new PasswdFileBackend(file, captureLogger().log);
    await b.reload();
    const unknown = (i: number) => b.verifyPassword(`nobody${i}`, 'guess', ctx);
    const wrong = (i: number) => b.verifyPassword(`user${i % 8}`, 'guess', ctx);
    expect(await unknown(0)).toMatchObject({ kind: 'rejected', reason: 'unknown user' });
    expect(await wrong(0)).toMatchObject({ kind: 'rejected', reason: 'wrong password' });
    await interleaved(10, unknown, wrong); // warm-up

    // The test can see a cost difference: the costly account stands out.
    const [costlyTimes, typical] = await interleaved(20, () => b.verifyPassword('costly', 'guess', ctx), wrong);
    expect(mannWhitneyP(costlyTimes, typical)).toBeLessThan(ALPHA);

    const [u, w] = await interleaved(N, unknown, wrong);
    if (process.env.TSIEVED_TIMING_DEBUG) console.log('password p', mannWhitneyP(u, w), median(u), median(w));
    expect(mannWhitneyP(u, w)).toBeGreaterThanOrEqual(ALPHA);
  }, 60_000);

  it("SCRAM parameters of unknown names are derived at the cost of a real cleartext name's", async () => {
    const lines = Array.from({ length: N + 60 }, (_, i) => `real${i}:{PLAIN}password ${i}:1:1::/h::`);
    const file = join(dir, 'passwd');
    await writeFile(file, lines.join('\n') + '\n');
    const b = new PasswdFileBackend(file, captureLogger().log);
    await b.reload();
    // First exchanges only (later ones are cached for both): a fresh name each time.
    const unknown = (i: number) => b.lookupScram(`nobody${i}`, 'SHA-256', ctx);
    const real = (i: number) => b.lookupScram(`real${i}`, 'SHA-256', ctx);
    expect(await unknown(N + 5)).toMatchObject({ kind: 'unknown' });
    expect(await real(N + 5)).toMatchObject({ kind: 'found' });
    await interleaved(
      5,
      (i) => unknown(N + i),
      (i) => real(N + i),
    ); // warm-up

    // The test can see a derivation: a cached (second) lookup against a first one.
    const [cached, first] = await interleaved(
      40,
      (i) => real(N + (i % 5)),
      (i) => real(N + 10 + i),
    );
    expect(mannWhitneyP(cached, first)).toBeLessThan(ALPHA);

    const [u, r] = await interleaved(N, unknown, real);
    if (process.env.TSIEVED_TIMING_DEBUG) console.log('scram p', mannWhitneyP(u, r), median(u), median(r));
    expect(mannWhitneyP(u, r)).toBeGreaterThanOrEqual(ALPHA);
  }, 60_000);
});
