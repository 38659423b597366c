import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFile, failureAfterCreate, nodeFileOps, type FileOps } from '../../src/storage/file-ops.js';
import { acquireLock, withLock } from '../../src/storage/lock.js';
import { kindOf } from './helpers/store.js';
import { errnoError, faultyOps } from './helpers/faulty-ops.js';
import { FsThreadPool } from '../../src/storage/thread-ops.js';
import { silentLogger } from '../../src/log/logger.js';
import { countingOps } from '../helpers/counting-ops.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsieved-lock-'));
});
afterEach(async () => {
  vi.restoreAllMocks();
  await rm(dir, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A holder whose refreshes never land, as if its process were stopped (AFS hang,
 * SIGSTOP, a paused VM) while the others run on.
 */
const stalledOps: FileOps = {
  ...nodeFileOps,
  createExclusive: (path, mode) =>
    /\/\.lock\/beat\.[^/]*$/.test(path)
      ? Promise.reject(errnoError('EIO', 'open'))
      : nodeFileOps.createExclusive(path, mode),
};

const opts = { staleMs: 60_000, waitMs: 200, retryMs: 5 };

describe('the user lock', () => {
  it('serialises holders in one process and is removed after use', async () => {
    const lockDir = join(dir, '.lock');
    const order: string[] = [];
    const slow = withLock(nodeFileOps, lockDir, { ...opts, waitMs: 5_000 }, async () => {
      order.push('a-in');
      await new Promise((r) => setTimeout(r, 50));
      order.push('a-out');
    });
    await new Promise((r) => setTimeout(r, 5));
    const second = withLock(nodeFileOps, lockDir, { ...opts, waitMs: 5_000 }, async () => {
      order.push('b');
    });
    await Promise.all([slow, second]);
    expect(order).toEqual(['a-in', 'a-out', 'b']);
    expect(await readdir(dir)).toEqual([]);
  });

  it('a release in this process lets the oldest waiter here in at once, not after its retry delay', async () => {
    const lockDir = join(dir, '.lock');
    // Retry delays of 2.5-7.5 s: without the wake-up, each waiter would sleep that long.
    const slow = { staleMs: 60_000, waitMs: 60_000, retryMs: 5_000 };
    const order: string[] = [];
    const first = await acquireLock(nodeFileOps, lockDir, slow);
    const waiter = (name: string) =>
      withLock(nodeFileOps, lockDir, slow, async () => {
        order.push(name);
        await sleep(20);
      });
    const second = waiter('second');
    await sleep(50); // second has tried and sleeps
    const third = waiter('third');
    await sleep(50);
    const releasedAt = performance.now();
    await first.release();
    await Promise.all([second, third]);
    // Oldest first, each let in by the release before it.
    expect(order).toEqual(['second', 'third']);
    expect(performance.now() - releasedAt).toBeLessThan(2_000);
    expect(await readdir(dir)).toEqual([]);
  });

  it('reports trylater after bounded waiting, and releases after a throwing holder', async () => {
    const lockDir = join(dir, '.lock');
    const held = await acquireLock(nodeFileOps, lockDir, opts);
    expect(await kindOf(acquireLock(nodeFileOps, lockDir, opts))).toBe('trylater');
    await held.release();
    await expect(withLock(nodeFileOps, lockDir, opts, async () => Promise.reject(new Error('boom')))).rejects.toThrow(
      'boom',
    );
    await (await acquireLock(nodeFileOps, lockDir, opts)).release();
  });

  it('breaks a stale lock left by a crashed holder', async () => {
    const lockDir = join(dir, '.lock');
    await mkdir(lockDir);
    const old = new Date(Date.now() - 120_000);
    await utimes(lockDir, old, old);
    const lock = await acquireLock(nodeFileOps, lockDir, opts);
    expect((await stat(lockDir)).mtimeMs).toBeGreaterThan(old.getTime() + 60_000);
    await lock.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('a slow second breaker never breaks the lock the first breaker has just taken', async () => {
    const lockDir = join(dir, '.lock');
    await mkdir(lockDir);
    await writeFile(join(lockDir, 'owner.deadbeef'), 'crashed holder\n');
    const old = new Date(Date.now() - 120_000);
    await utimes(lockDir, old, old);
    // B2 judges the lock stale, then stalls right before breaking it (unlink of the
    // stale owner, or a rename of the directory as older versions did)...
    let judged!: () => void;
    const b2Judged = new Promise<void>((r) => (judged = r));
    let resumeB2!: () => void;
    const gate = new Promise<void>((r) => (resumeB2 = r));
    const stall = async (): Promise<void> => {
      judged();
      await gate;
    };
    const slowOps: FileOps = {
      ...nodeFileOps,
      unlink: async (path) => {
        if (path.endsWith('/owner.deadbeef')) await stall();
        return nodeFileOps.unlink(path);
      },
      rename: async (from, to) => {
        await stall();
        return nodeFileOps.rename(from, to);
      },
    };
    const b2 = acquireLock(slowOps, lockDir, { ...opts, waitMs: 1_000 });
    await b2Judged;
    // ...while B1 breaks it and takes it.
    const b1 = await acquireLock(nodeFileOps, lockDir, opts);
    resumeB2();
    await sleep(200);
    // B1 keeps it: B2 broke nothing, and is still waiting (or has given up).
    expect(await b1.stillHeld()).toBe(true);
    expect(await readdir(lockDir)).toEqual([expect.stringMatching(/^owner\./)]);
    expect(await kindOf(b2)).toBe('trylater');
    await b1.release();
  });

  it('keeps a long-held lock fresh so nobody breaks it', async () => {
    const lockDir = join(dir, '.lock');
    const fast = { staleMs: 150, waitMs: 400, retryMs: 5 };
    const lock = await acquireLock(nodeFileOps, lockDir, fast);
    expect(await kindOf(acquireLock(nodeFileOps, lockDir, fast))).toBe('trylater');
    await lock.release();
  });

  it("a holder that stalled past staleMs loses the lock, cannot release the new holder's, and knows before committing", async () => {
    const lockDir = join(dir, '.lock');
    const o = { staleMs: 200, waitMs: 5_000, retryMs: 10 };
    const events: string[] = [];
    const inside = new Set<string>();
    let overlap: string | undefined;
    const enter = (who: string): void => {
      // A overlapping B is the stall itself; B and C must never overlap.
      if (who !== 'A' && [...inside].some((w) => w !== 'A'))
        overlap ??= `${who} entered while ${[...inside].join(',')} inside`;
      inside.add(who);
      events.push(`${who}-in`);
    };
    const leave = (who: string): void => {
      inside.delete(who);
      events.push(`${who}-out`);
    };
    let aHeld: boolean | undefined;
    let aAssert: string | undefined;
    const a = withLock(stalledOps, lockDir, o, async (lock) => {
      enter('A');
      // Stalled until B has taken the lock over (at least 400 ms; a loaded machine
      // may take B longer to notice the stale lock than a fixed sleep allows).
      await sleep(400);
      for (let waited = 0; !events.includes('B-in') && waited < 10_000; waited += 20) await sleep(20);
      aHeld = await lock.stillHeld();
      aAssert = await kindOf(lock.assertHeld());
      leave('A');
    });
    await sleep(250);
    const b = withLock(nodeFileOps, lockDir, o, async (lock) => {
      enter('B');
      await sleep(600);
      expect(await lock.stillHeld()).toBe(true);
      leave('B');
    });
    await sleep(250);
    const c = withLock(nodeFileOps, lockDir, o, async () => {
      enter('C');
      await sleep(50);
      leave('C');
    });
    await Promise.all([a, b, c]);
    expect(overlap).toBeUndefined();
    expect(events).toEqual(['A-in', 'B-in', 'A-out', 'B-out', 'C-in', 'C-out']);
    expect(aHeld).toBe(false);
    expect(aAssert).toBe('trylater');
    expect(await readdir(dir)).toEqual([]);
  });

  it('release leaves a lock that is no longer ours in place', async () => {
    const lockDir = join(dir, '.lock');
    const first = await acquireLock(nodeFileOps, lockDir, opts);
    expect(await first.stillHeld()).toBe(true);
    await first.assertHeld();
    // Someone judged it stale and broke it, then a new holder took the lock.
    await rename(lockDir, join(dir, 'aside'));
    await rm(join(dir, 'aside'), { recursive: true });
    const second = await acquireLock(nodeFileOps, lockDir, opts);
    expect(await first.stillHeld()).toBe(false);
    expect(await kindOf(first.assertHeld())).toBe('trylater');
    await first.release();
    expect((await readdir(lockDir)).filter((e) => e.startsWith('owner.'))).toHaveLength(1);
    expect(await second.stillHeld()).toBe(true);
    expect(await kindOf(acquireLock(nodeFileOps, lockDir, opts))).toBe('trylater');
    await second.release();
    expect(await second.stillHeld()).toBe(false);
    expect(await readdir(dir)).toEqual([]);
  });

  it('checks a lock taken moments ago with one look at its owner file, and refreshes an older one first', async () => {
    const lockDir = join(dir, '.lock');
    const counting = countingOps(dir);
    // Long enough that the timer's own refresh (every staleMs / 3) does not run here.
    const o = { ...opts, staleMs: 1_200 };
    const lock = await acquireLock(counting.ops, lockDir, o);
    counting.reset();
    expect(await lock.stillHeld()).toBe(true);
    expect(counting.calls).toEqual([{ op: 'lstat', path: '.lock/owner' }]);
    // Older than a sixth of staleMs: refreshed (a beat created and removed) before it counts as held.
    await sleep(250);
    counting.reset();
    expect(await lock.stillHeld()).toBe(true);
    expect(counting.calls.map((c) => `${c.op} ${c.path}`)).toEqual(
      expect.arrayContaining(['createExclusive .lock/beat', 'unlink .lock/beat', 'lstat .lock/owner']),
    );
    // Refreshed just now: one look again, and a broken lock is seen by it.
    counting.reset();
    await rename(lockDir, join(dir, 'aside'));
    expect(await lock.stillHeld()).toBe(false);
    expect(counting.calls).toEqual([{ op: 'lstat', path: '.lock/owner' }]);
    await lock.release();
    await rm(join(dir, 'aside'), { recursive: true });
  });

  it.each([
    ['node:fs, create then write', false],
    ['one call for the whole file, sent with the look at the directory', true],
  ])(
    'an owner file made but not written in full still holds the lock; one not made fails and removes the directory (%s)',
    async (_how, whole) => {
      const lockDir = join(dir, '.lock');
      const owner = /\/\.lock\/owner\.[^/]*$/;
      /** Owner files are made, then their content fails (AFS quota at close), or they cannot be made at all. */
      const faulty = (made: boolean): FileOps =>
        whole
          ? {
              ...nodeFileOps,
              ordered: true,
              createFile: (path, data, options) => {
                if (!owner.test(path)) return createFile(nodeFileOps, path, data, options);
                if (!made) return Promise.reject(errnoError('EACCES', 'open'));
                // Made at once, so the look at the directory sent after it finds it.
                writeFileSync(path, '', { flag: 'wx', mode: 0o600 });
                return Promise.reject(failureAfterCreate(errnoError('EDQUOT', 'close')));
              },
            }
          : faultyOps(
              made
                ? { closeFails: { match: owner, code: 'EDQUOT' } }
                : { createFails: { match: owner, code: 'EACCES' } },
            );
      let ran = false;
      await withLock(faulty(true), lockDir, opts, async () => {
        ran = true;
        expect((await readdir(lockDir)).filter((e) => e.startsWith('owner.'))).toHaveLength(1);
      });
      expect(ran).toBe(true);
      expect(await readdir(dir)).toEqual([]);
      expect(await kindOf(acquireLock(faulty(false), lockDir, opts))).toBe('permission');
      expect(await readdir(dir)).toEqual([]);
    },
  );

  it('withLock hands the lock to the function (callers without a parameter still work)', async () => {
    const lockDir = join(dir, '.lock');
    expect(await withLock(nodeFileOps, lockDir, opts, async (lock) => lock.stillHeld())).toBe(true);
    expect(await withLock(nodeFileOps, lockDir, opts, async () => 7)).toBe(7);
    expect(await readdir(dir)).toEqual([]);
  });

  it('a directory with two owners belongs to neither: the later one backs off', async () => {
    const lockDir = join(dir, '.lock');
    let raced = false;
    // Another session's token lands in "our" fresh directory, as after a stalled
    // release removed a lock directory between someone's mkdir and token.
    const racingOps: FileOps = {
      ...nodeFileOps,
      mkdir: async (path, mode) => {
        await nodeFileOps.mkdir(path, mode);
        if (!raced && path === lockDir) {
          raced = true;
          await writeFile(join(lockDir, 'owner.someone-else'), '');
        }
      },
    };
    expect(await kindOf(acquireLock(racingOps, lockDir, opts))).toBe('trylater');
    expect(await readdir(lockDir)).toEqual(['owner.someone-else']);
  });

  describe('with clocks that disagree between machines', () => {
    it("does not break a live lock when this machine's clock is ahead", async () => {
      const lockDir = join(dir, '.lock');
      const held = await acquireLock(nodeFileOps, lockDir, opts);
      const realNow = Date.now.bind(Date);
      vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 10 * 60_000);
      expect(await kindOf(acquireLock(nodeFileOps, lockDir, opts))).toBe('trylater');
      vi.restoreAllMocks();
      expect(await held.stillHeld()).toBe(true);
      await held.release();
    });

    it("breaks an abandoned lock when this machine's clock is behind", async () => {
      const lockDir = join(dir, '.lock');
      await mkdir(lockDir);
      const old = new Date(Date.now() - 120_000);
      await utimes(lockDir, old, old);
      const realNow = Date.now.bind(Date);
      vi.spyOn(Date, 'now').mockImplementation(() => realNow() - 10 * 60_000);
      const lock = await acquireLock(nodeFileOps, lockDir, opts);
      vi.restoreAllMocks();
      await lock.release();
      expect(await readdir(dir)).toEqual([]);
    });
  });
});

/**
 * Over ordered FileOps (the in-process file threads; the file broker alike) the
 * release's two calls go out together (the rmdir made only if the unlink
 * succeeded), and with the last change when releaseAfter carries it (made only if
 * that succeeded); a look made ahead stands in for the one before a commit only while
 * the lock is fresh.
 */
describe('the user lock over ordered FileOps', () => {
  const pool = new FsThreadPool({ threads: 1, log: silentLogger() });
  afterAll(() => pool.close());
  const ownerOf = async (lockDir: string): Promise<string> =>
    join(
      lockDir,
      (await readdir(lockDir)).find((e) => e.startsWith('owner.'))!,
    );

  it('releases in one round trip, and leaves a lock broken and taken by another in place', async () => {
    const lockDir = join(dir, '.lock');
    const counting = countingOps(dir, pool.fileOps());
    const lock = await acquireLock(counting.ops, lockDir, opts);
    counting.reset();
    await lock.release();
    expect(counting.groups).toEqual([['unlink .lock/owner', 'rmdir .lock']]);
    expect(await readdir(dir)).toEqual([]);

    // Broken (its owner file removed by a breaker) and taken by another, unknown to
    // the first: its unlink fails, so the rmdir sent with it is not made, and the
    // one that follows (for a directory left empty) finds the other's owner.
    const first = await acquireLock(counting.ops, lockDir, opts);
    await rm(await ownerOf(lockDir));
    await rm(lockDir, { recursive: true });
    const second = await acquireLock(nodeFileOps, lockDir, opts);
    counting.reset();
    await first.release();
    expect(counting.groups).toEqual([['unlink .lock/owner', 'rmdir .lock'], ['rmdir .lock']]);
    expect((await readdir(lockDir)).filter((e) => e.startsWith('owner.'))).toHaveLength(1);
    expect(await second.stillHeld()).toBe(true);
    await second.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('after a failed unlink of its owner file leaves the lock to go stale, and the next holder breaks it', async () => {
    const lockDir = join(dir, '.lock');
    const failing = faultyOps({ unlinkFails: { match: /\/\.lock\/owner\./, code: 'EIO' } }, pool.fileOps());
    const lock = await acquireLock(failing, lockDir, { ...opts, staleMs: 300 });
    await lock.release(); // never throws
    expect((await readdir(lockDir)).filter((e) => e.startsWith('owner.'))).toHaveLength(1);
    const next = await acquireLock(pool.fileOps(), lockDir, { ...opts, staleMs: 300, waitMs: 5_000 });
    await next.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('a lock broken and left empty is removed by the rmdir that follows the failed unlink, and can be taken again', async () => {
    const lockDir = join(dir, '.lock');
    const lock = await acquireLock(pool.fileOps(), lockDir, opts);
    await rm(await ownerOf(lockDir)); // a breaker, before its rmdir
    await lock.release();
    expect(await readdir(dir)).toEqual([]);
    await (await acquireLock(pool.fileOps(), lockDir, opts)).release();
  });

  it('sends the calls of `along` after the look that decides the lock is ours, in its round trip; a failed attempt calls it again', async () => {
    const lockDir = join(dir, '.lock');
    await writeFile(join(dir, 'record'), 'r');
    const counting = countingOps(dir, pool.fileOps());
    let calls = 0;
    let read: Promise<Buffer> | undefined;
    const along = (): void => {
      calls++;
      read = counting.ops.readFile(join(dir, 'record'));
    };
    const lock = await acquireLock(counting.ops, lockDir, opts, along);
    // The owner file, made only if the mkdir succeeds, and the look go out with it.
    expect(counting.groups).toEqual([['mkdir .lock', 'createFile .lock/owner', 'readdir .lock', 'readFile record']]);
    expect([calls, (await read!).toString()]).toEqual([1, 'r']);
    await lock.release();

    // An attempt that finds another owner's token beside its own fails; the next
    // attempt, once the directory is free, calls it again.
    counting.reset();
    calls = 0;
    let raced = false;
    let made: Promise<void> | undefined;
    const racing: FileOps = {
      ...counting.ops,
      ordered: true,
      mkdir: (path, mode) => (made = counting.ops.mkdir(path, mode)),
      readdir: async (path) => {
        if (!raced && path === lockDir) {
          raced = true;
          // Once the mkdir (and the owner file made with it) has been made.
          await made;
          await writeFile(join(lockDir, 'owner.someone-else'), '');
          // The other leaves last, and removes the directory.
          setTimeout(() => void rm(lockDir, { recursive: true, force: true }), 20);
        }
        return counting.ops.readdir(path);
      },
    };
    await (await acquireLock(racing, lockDir, { ...opts, waitMs: 5_000 }, along)).release();
    // Once in the attempt that raced, once in the one that took the lock, and in
    // each attempt between them that found the other's directory.
    expect(calls).toBe(counting.calls.filter((c) => c.op === 'mkdir').length);
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(await readdir(dir)).toEqual(['record']);
  });

  it('takes the lock as without them when `along` throws, and never calls it over unordered FileOps', async () => {
    const lockDir = join(dir, '.lock');
    const lock = await acquireLock(pool.fileOps(), lockDir, opts, () => {
      throw new Error('a caller bug');
    });
    expect(await lock.stillHeld()).toBe(true);
    await lock.release();
    let called = false;
    await (await acquireLock(nodeFileOps, lockDir, opts, () => (called = true))).release();
    expect(called).toBe(false);
    expect(await readdir(dir)).toEqual([]);
  });

  it('releaseAfter sends the release after the last change, in its round trip; a change that fails keeps the lock held', async () => {
    const lockDir = join(dir, '.lock');
    const counting = countingOps(dir, pool.fileOps());
    const lock = await acquireLock(counting.ops, lockDir, opts);
    await writeFile(join(dir, 'a'), 'a');
    counting.reset();
    await lock.releaseAfter(() => counting.ops.rename(join(dir, 'a'), join(dir, 'b')));
    expect(counting.groups).toEqual([['rename b', 'unlink .lock/owner', 'rmdir .lock']]);
    expect(await readdir(dir)).toEqual(['b']);

    // The release went out with the failed rename and was not made: the lock is
    // still ours (whatever undoes the change runs under it), until release().
    const again = await acquireLock(counting.ops, lockDir, opts);
    counting.reset();
    const failed = again.releaseAfter(() => counting.ops.rename(join(dir, 'missing'), join(dir, 'c')));
    await expect(failed).rejects.toMatchObject({ code: 'ENOENT' });
    expect(counting.groups).toEqual([['rename c', 'unlink .lock/owner', 'rmdir .lock']]);
    expect((await readdir(lockDir)).filter((e) => e.startsWith('owner.'))).toHaveLength(1);
    expect(await again.stillHeld()).toBe(true);
    await again.release();
    expect(await readdir(dir)).toEqual(['b']);
  });

  it('releaseAfter over unordered FileOps releases only once the change has succeeded', async () => {
    const lockDir = join(dir, '.lock');
    const counting = countingOps(dir, nodeFileOps);
    const lock = await acquireLock(counting.ops, lockDir, opts);
    await writeFile(join(dir, 'a'), 'a');
    counting.reset();
    await lock.releaseAfter(() => counting.ops.rename(join(dir, 'a'), join(dir, 'b')));
    expect(counting.groups).toEqual([['rename b'], ['unlink .lock/owner'], ['rmdir .lock']]);
    expect(await readdir(dir)).toEqual(['b']);

    const again = await acquireLock(counting.ops, lockDir, opts);
    counting.reset();
    await expect(
      again.releaseAfter(() => counting.ops.rename(join(dir, 'missing'), join(dir, 'c'))),
    ).rejects.toMatchObject({ code: 'ENOENT' });
    expect(counting.groups).toEqual([['rename c']]);
    expect(await again.stillHeld()).toBe(true);
    await again.release();
    expect(await readdir(dir)).toEqual(['b']);
  });

  it('a look made ahead answers the next check while the lock is fresh, and sees a broken lock', async () => {
    const lockDir = join(dir, '.lock');
    const counting = countingOps(dir, pool.fileOps());
    const lock = await acquireLock(counting.ops, lockDir, { ...opts, staleMs: 60_000 });
    counting.reset();
    void counting.ops.readdir(dir);
    lock.lookAhead();
    await lock.assertHeld();
    expect(counting.groups).toEqual([['readdir .', 'lstat .lock/owner']]);

    await rm(await ownerOf(lockDir));
    lock.lookAhead();
    expect(await kindOf(lock.assertHeld())).toBe('trylater');
    await lock.release();
    await rm(lockDir, { recursive: true });
  });

  it('a look made ahead is not trusted once the lock is no longer fresh: the check refreshes it first', async () => {
    const lockDir = join(dir, '.lock');
    const counting = countingOps(dir, pool.fileOps());
    // Long enough that the timer's own refresh (every staleMs / 3) does not run here.
    const lock = await acquireLock(counting.ops, lockDir, { ...opts, staleMs: 1_200 });
    counting.reset();
    lock.lookAhead();
    // The calls up to the commit took longer than a sixth of staleMs (a slow file system).
    await sleep(250);
    expect(await lock.stillHeld()).toBe(true);
    expect(counting.calls.map((c) => `${c.op} ${c.path}`)).toEqual(
      expect.arrayContaining(['createExclusive .lock/beat', 'unlink .lock/beat']),
    );
    await lock.release();
    expect(await readdir(dir)).toEqual([]);
  });
});
