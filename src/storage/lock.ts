/**
 * A per-user mutation lock that works across processes and machines sharing a file
 * system (several tsieved instances behind HAProxy on one AFS/NFS volume).
 *
 * The lock is a directory created with mkdir(2), which is atomic on local file
 * systems, NFS and AFS alike (O_EXCL files are not reliable on old NFS). The holder
 * touches it while it works; a lock not touched for `staleMs` belongs to a crashed
 * process and is broken by renaming it aside (only one breaker can win the rename).
 * Waiting is bounded: contention that lasts longer than `waitMs` is reported as
 * StorageError('trylater') (RFC 5804 TRYLATER) rather than blocking the session.
 *
 * Must not know: what the lock protects.
 */
import { randomBytes } from 'node:crypto';
import type { FileOps } from './file-ops.js';
import { errnoCode, toStorageError } from './errors.js';
import { StorageError } from './types.js';

export interface LockOptions {
  /** A lock untouched this long is considered abandoned. */
  readonly staleMs: number;
  /** Give up (trylater) after waiting this long. */
  readonly waitMs: number;
  /** First retry delay; grows, with jitter, up to 8x. */
  readonly retryMs: number;
}

export const DEFAULT_LOCK_OPTIONS: LockOptions = { staleMs: 30_000, waitMs: 5_000, retryMs: 20 };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface HeldLock {
  release(): Promise<void>;
}

export async function acquireLock(ops: FileOps, lockDir: string, options: LockOptions): Promise<HeldLock> {
  const started = Date.now();
  let delay = options.retryMs;
  for (;;) {
    try {
      await ops.mkdir(lockDir, 0o700);
      return holdLock(ops, lockDir, options);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw toStorageError(err, `cannot create lock ${lockDir}`);
    }
    try {
      const st = await ops.stat(lockDir);
      if (Date.now() - st.mtimeMs > options.staleMs) {
        const aside = `${lockDir}.stale.${randomBytes(6).toString('hex')}`;
        await ops.rename(lockDir, aside); // fails for everyone but one breaker
        await ops.rmdir(aside).catch(() => undefined);
        continue;
      }
    } catch (err) {
      // Released (or broken by someone else) between our mkdir and stat: retry now.
      if (errnoCode(err) === 'ENOENT') continue;
      throw toStorageError(err, `cannot inspect lock ${lockDir}`);
    }
    if (Date.now() - started >= options.waitMs) {
      throw new StorageError('trylater', `another session of this user holds the lock ${lockDir}`);
    }
    await sleep(delay * (0.5 + Math.random()));
    delay = Math.min(delay * 2, options.retryMs * 8);
  }
}

function holdLock(ops: FileOps, lockDir: string, options: LockOptions): HeldLock {
  // Keep the lock fresh during slow operations so nobody takes it for stale.
  const timer = setInterval(() => {
    void ops.utimes(lockDir, new Date()).catch(() => undefined);
  }, Math.max(50, Math.floor(options.staleMs / 3)));
  timer.unref();
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await ops.rmdir(lockDir).catch(() => undefined);
    },
  };
}

export async function withLock<T>(ops: FileOps, lockDir: string, options: LockOptions, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(ops, lockDir, options);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
