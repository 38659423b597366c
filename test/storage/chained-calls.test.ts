/**
 * Calls made only if the call before them succeeded (file-ops.ts inSequence,
 * whenSucceeded; FileOps.ifPreviousSucceeded), with the same outcome over every
 * FileOps: node:fs (which waits for the call before), the in-process file threads
 * and the file broker (which get both calls in one go and decide there). A call not
 * made rejects with SkippedCall, which has no errno code, and has no effect; a lock
 * directory that is another session's never gets an owner file of ours.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log/logger.js';
import {
  createFile,
  inSequence,
  isSkipped,
  nodeFileOps,
  SkippedCall,
  whenSucceeded,
  type FileOps,
} from '../../src/storage/file-ops.js';
import { acquireLock } from '../../src/storage/lock.js';
import { FsThreadPool } from '../../src/storage/thread-ops.js';
import { openBrokerFiles, type BrokerFiles } from '../helpers/broker-files.js';
import { errnoCodeOf } from '../helpers/errno.js';
import { BROKER, needs } from '../helpers/tools.js';
import { kindOf } from './helpers/store.js';

const pool = new FsThreadPool({ threads: 1, log: silentLogger() });
afterAll(() => pool.close());

/** As root the broker runs as this user, who is given the test directories. */
const UID = process.getuid?.() === 0 ? 41232 : undefined;
let broker: BrokerFiles | undefined;
afterAll(async () => {
  await broker?.close();
});

function brokerOps(): FileOps {
  broker ??= openBrokerFiles('chained', UID);
  return broker.ops;
}

/** Whether `p` rejects with SkippedCall (and nothing else), without an errno code. */
async function skipped(p: Promise<unknown>): Promise<boolean> {
  try {
    await p;
  } catch (err) {
    expect((err as { code?: unknown }).code).toBeUndefined();
    return isSkipped(err) && err instanceof SkippedCall;
  }
  return false;
}

describe('calls made only if the one before succeeded, over node:fs', () => {
  chainTests('node:fs', () => nodeFileOps);
});

describe('calls made only if the one before succeeded, over the file threads', () => {
  chainTests('the file threads', () => pool.fileOps());
  dependentCallTests(() => pool.fileOps());
});

describe('calls made only if the one before succeeded, over the file broker', needs(BROKER), () => {
  chainTests('the file broker', brokerOps);
  dependentCallTests(brokerOps);
});

function chainTests(kind: string, opsFor: () => FileOps): void {
  let dir: string;
  let ops: FileOps;
  beforeAll(() => {
    ops = opsFor();
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsieved-chain-'));
    chmodSync(dir, 0o755);
    if (kind === 'the file broker' && UID !== undefined) execFileSync('chown', [`${UID}:${UID}`, dir]);
    return () => rmSync(dir, { recursive: true, force: true });
  });
  it('after a failure, the next call is not made, nor the one after it; an independent call is', async () => {
    writeFileSync(join(dir, 'keep'), 'k');
    const [made, created, removed] = inSequence(ops, [
      () => ops.mkdir(dir, 0o700), // EEXIST
      () => createFile(ops, join(dir, 'owner'), Buffer.from('x')),
      () => ops.unlink(join(dir, 'keep')),
    ]);
    const independent = ops.mkdir(join(dir, 'other'), 0o700);
    expect(await errnoCodeOf(made)).toBe('EEXIST');
    expect(await skipped(created)).toBe(true);
    expect(await skipped(removed)).toBe(true);
    await independent;
    expect(readdirSync(dir).sort()).toEqual(['keep', 'other']);
  });

  it('after successes, each call is made in order; a failure in the middle stops only what follows it', async () => {
    writeFileSync(join(dir, 'a'), 'a');
    writeFileSync(join(dir, 'c'), 'c');
    const done = inSequence(ops, [
      () => ops.rename(join(dir, 'a'), join(dir, 'b')),
      () => ops.mkdir(join(dir, 'd'), 0o700),
      () => ops.rename(join(dir, 'missing'), join(dir, 'e')), // ENOENT
      () => ops.rename(join(dir, 'c'), join(dir, 'f')),
    ]);
    const outcomes = await Promise.all(
      done.map((p) =>
        p.then(
          () => 'ok',
          async (err: unknown) => (isSkipped(err) ? 'skipped' : (err as { code?: string }).code),
        ),
      ),
    );
    expect(outcomes).toEqual(['ok', 'ok', 'ENOENT', 'skipped']);
    expect(readdirSync(dir).sort()).toEqual(['b', 'c', 'd']);
  });

  it('whenSucceeded: a call after one that succeeded is made, after one that failed is not', async () => {
    const first = ops.mkdir(join(dir, 'x'), 0o700);
    const second = whenSucceeded(ops, first, () => ops.mkdir(join(dir, 'x', 'y'), 0o700));
    await Promise.all([first, second]);
    const again = ops.mkdir(join(dir, 'x'), 0o700);
    const inside = whenSucceeded(ops, again, () => ops.rmdir(join(dir, 'x', 'y')));
    expect(await errnoCodeOf(again)).toBe('EEXIST');
    expect(await skipped(inside)).toBe(true);
    expect(readdirSync(join(dir, 'x'))).toEqual(['y']);
  });

  it("a lock directory that is another session's never gets an owner file of ours", async () => {
    const lockDir = join(dir, '.lock');
    const holder = await acquireLock(nodeFileOps, lockDir, { staleMs: 30_000, waitMs: 5_000, retryMs: 20 });
    if (kind === 'the file broker' && UID !== undefined) execFileSync('chown', ['-R', `${UID}:${UID}`, lockDir]);
    const before = readdirSync(lockDir);
    expect(await kindOf(acquireLock(ops, lockDir, { staleMs: 30_000, waitMs: 150, retryMs: 20 }))).toBe('trylater');
    expect(readdirSync(lockDir)).toEqual(before);
    expect(await holder.stillHeld()).toBe(true);
    await holder.release();
    expect(existsSync(lockDir)).toBe(false);
  });
}

/** ifPreviousSucceeded itself, on the FileOps that have it. */
function dependentCallTests(opsFor: () => FileOps): void {
  let ops: FileOps;
  beforeAll(() => {
    ops = opsFor();
  });

  it('refuses a call with no call before it in this turn, or one that makes no call', async () => {
    expect(ops.ifPreviousSucceeded).toBeDefined();
    const dependent = (): Promise<string[]> => ops.ifPreviousSucceeded!(() => ops.readdir(tmpdir()));
    // Nothing made yet in this turn (the earlier calls were made before an await).
    await ops.stat(tmpdir());
    expect(dependent).toThrow(/no call made before it/);
    void ops.stat(tmpdir());
    expect(() => ops.ifPreviousSucceeded!(() => Promise.resolve('no call'))).toThrow(/made no/);
    // The mark is not left for a later call: this one is made whatever came before.
    expect(await ops.readdir(tmpdir())).toContain(readdirSync(tmpdir())[0]);
  });
}

describe('a dependent call over the file threads', () => {
  it('must follow the call it depends on at once: not behind another store on the same thread', async () => {
    const one = new FsThreadPool({ threads: 1, log: silentLogger() });
    const dir = mkdtempSync(join(tmpdir(), 'tsieved-chain-'));
    try {
      const first = one.fileOps();
      const second = one.fileOps();
      const made = first.stat(dir);
      const between = second.stat(dir);
      const dependent = first.ifPreviousSucceeded!(() => first.mkdir(join(dir, 'never'), 0o700));
      await expect(dependent).rejects.toThrow(/must follow the call it depends on/);
      await Promise.all([made, between]);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      one.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
