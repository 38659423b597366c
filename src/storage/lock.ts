/**
 * A per-user mutation lock that works across processes and machines sharing a file
 * system (several tsieved instances behind HAProxy on one AFS/NFS volume).
 *
 * The lock is a directory created with mkdir(2), which is atomic on local file
 * systems, NFS and AFS alike (O_EXCL files are not reliable on old NFS); that stays
 * the one step that decides who gets it. Its creator then puts an owner file with a
 * random name (the token) inside, and counts the lock as its own only while that
 * file is there and is the only owner file.
 *
 * The holder keeps the lock fresh while it works; a lock not refreshed for `staleMs`
 * belongs to a crashed or stalled process and is broken by removing the owner file
 * that was judged stale (only one breaker can win that unlink, and a lock taken
 * after the judgement has another owner file, so it is never touched). So a
 * holder that stalled past `staleMs` (an AFS hang, SIGSTOP, a paused VM) finds
 * its token gone: its refresh and release leave the new holder's lock alone, and
 * `stillHeld()` / `assertHeld()`, called right before committing, tell it not to
 * commit (one look at the owner file; a refresh first unless the lock was stamped
 * less than a sixth of `staleMs` ago, as it is in most commands, which commit
 * moments after taking it; over ordered FileOps that look may go out after the
 * last reads before the commit, in their round trip: `lookAhead()`). What remains
 * is the gap between that last check and the commit itself, which no file system
 * lock without fencing can close; it is a few system calls wide.
 *
 * Over FileOps that make a call depend on the one before (FileOps.ifPreviousSucceeded:
 * a file broker, the file threads) the owner file goes out with the mkdir, made
 * only if the mkdir succeeded (never in another session's lock directory), and the
 * release goes out with the last change when nothing after it needs the lock
 * (`releaseAfter()`), made only if that change succeeded (a failed one leaves the
 * lock held for whatever undoes it), its rmdir only if its unlink succeeded: under
 * load every round trip waits for the broker's and then the server's turn on the CPU.
 *
 * Clocks: ages are judged on the file server's clock, not this machine's, so
 * instances whose clocks disagree do not break each other's live locks. A refresh
 * creates and removes an entry in the lock directory, so the server sets the
 * directory's mtime (NFS servers and the AFS fileserver stamp a directory changed
 * by a create or remove with their own time; a utimes(2) with an explicit time
 * would carry the client's clock). A contender reads "now" the same way: it creates
 * and removes a probe file beside the lock and reads the parent directory's mtime.
 * Assumed: the client does not serve the lock directory's attributes from a cache
 * older than `staleMs` (NFS: acdirmax well below staleMs, or `noac`); stale cached
 * attributes make a live lock look old.
 *
 * A dead owner on this machine is not waited for: the owner file records host, boot
 * id, pid namespace, pid and process start time (process-owner.ts), and a lock
 * whose owner ran here and is certainly gone (kill -9, a crash) is broken at once,
 * the same way a stale one is. A crashed holder once kept its user waiting out
 * `staleMs` (every login 5 s, then TRYLATER). An owner on another host, or one that
 * cannot be judged, still gets the stale age.
 *
 * Waiting is bounded: contention that lasts longer than `waitMs` is reported as
 * StorageError('trylater') (RFC 5804 TRYLATER) rather than blocking the session.
 *
 * Must not know: what the lock protects.
 */
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createdBeforeFailure, createFile, inSequence, isSkipped, whenSucceeded, type FileOps } from './file-ops.js';
import { tempPathFor } from './atomic-write.js';
import { currentOwner, formatOwner, ownerGone, parseOwner } from './process-owner.js';
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

/** Owner files inside the lock directory: `owner.<token>`; one at a time. */
const OWNER_PREFIX = 'owner.';
/** Created and removed by each refresh: `beat.<token>`. */
const BEAT_PREFIX = 'beat.';
/** A lock stamped less than this share of staleMs ago is committed under without a refresh. */
const FRESH_FOR_COMMIT = 1 / 6;

/**
 * Sessions of this process waiting for a lock directory, oldest first. A holder in
 * this process that releases the lock wakes the oldest at once, instead of leaving
 * it to sleep out a retry delay that grows to 160 ms: two sessions of one user in
 * one process (Roundcube's connection per click, or a client and a script) took
 * turns at the pace of the back-off. Waiters in other processes (workers, hosts)
 * still find the lock free at their next retry.
 */
const waitingHere = new Map<string, (() => void)[]>();

function sleepUnlessReleased(lockDir: string, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const queue = waitingHere.get(lockDir) ?? [];
    waitingHere.set(lockDir, queue);
    const wake = (): void => {
      clearTimeout(timer);
      const i = queue.indexOf(wake);
      if (i !== -1) queue.splice(i, 1);
      if (queue.length === 0 && waitingHere.get(lockDir) === queue) waitingHere.delete(lockDir);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    queue.push(wake);
  });
}

/** The lock was released by a session of this process: the oldest waiter here tries now. */
function releasedHere(lockDir: string): void {
  waitingHere.get(lockDir)?.[0]?.();
}
const newToken = (): string => randomBytes(12).toString('hex');
const gone = (err: unknown): boolean => errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR';

export interface HeldLock {
  /**
   * Whether the lock is still ours (our token is in it), refreshing it first. False
   * once another session broke it as stale, or when that cannot be ruled out.
   * Call right before committing a change.
   */
  stillHeld(): Promise<boolean>;
  /** stillHeld(), or StorageError('trylater'). */
  assertHeld(): Promise<void>;
  /**
   * Over ordered FileOps, makes stillHeld()'s look at the owner file now, so that it
   * goes out after the calls just made and in their round trip; the next stillHeld()
   * or assertHeld() takes its answer instead of a round trip of its own, as long as
   * the lock is still fresh then. Call it with the last calls before a commit.
   */
  lookAhead(): void;
  /** Removes the lock if it is still ours; never touches anyone else's. Never throws. */
  release(): Promise<void>;
  /**
   * Runs `last`, the final change made under the lock (one FileOps call, made at
   * once, settling as that call does: as for whenSucceeded() in file-ops.ts), and
   * releases the lock once it has succeeded. Over FileOps with ifPreviousSucceeded
   * the release's calls go out right after it, in its round trip, each made only if
   * the one before succeeded; otherwise the release follows `last`'s success. A
   * `last` that fails leaves the lock held (what undoes it runs under the lock;
   * release() then). Nothing after a success may need the lock. Settles as `last`
   * does, once the lock is released when it succeeded.
   */
  releaseAfter<T>(last: () => Promise<T>): Promise<T>;
}

/**
 * Takes the lock, waiting at most `options.waitMs`. `along`, over FileOps with
 * ifPreviousSucceeded: called in every attempt, right after the look at the lock
 * directory that decides whether it is ours has been asked for; calls it makes go
 * out with the attempt's mkdir and that look and run after them, so they run under
 * the lock when the attempt takes it (a command's first reads: one round trip
 * less). An attempt that fails (the directory is another's) is followed by another
 * call: only what the last call started belongs to the hold.
 */
export async function acquireLock(
  ops: FileOps,
  lockDir: string,
  options: LockOptions,
  along?: () => void,
): Promise<HeldLock> {
  const started = performance.now();
  let delay = options.retryMs;
  let clock: ServerClock | undefined;
  for (;;) {
    const attempt = attemptLock(ops, lockDir, along);
    let created = false;
    try {
      await attempt.made;
      created = true;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw toStorageError(err, `cannot create lock ${lockDir}`);
    }
    if (created) {
      const held = await takeOwnership(ops, lockDir, options, attempt);
      if (held) return held;
    } else {
      try {
        clock ??= await serverClock(ops, lockDir);
        // Owners first, then the age: a lock broken and taken again between the two
        // reads shows a fresh mtime, so its new owner is never the one judged stale.
        const owners = (await ops.readdir(lockDir)).filter((e) => e.startsWith(OWNER_PREFIX));
        const st = await ops.stat(lockDir);
        if (clock.now() - st.mtimeMs > options.staleMs || (await ownerIsGone(ops, lockDir, owners))) {
          await breakStale(ops, lockDir, owners);
          continue;
        }
      } catch (err) {
        // Released (or broken by someone else) between our mkdir and stat: retry now.
        if (errnoCode(err) === 'ENOENT') continue;
        throw toStorageError(err, `cannot inspect lock ${lockDir}`);
      }
    }
    if (performance.now() - started >= options.waitMs) {
      throw new StorageError('trylater', `another session of this user holds the lock ${lockDir}`);
    }
    await sleepUnlessReleased(lockDir, delay * (0.5 + Math.random()));
    delay = Math.min(delay * 2, options.retryMs * 8);
  }
}

export async function withLock<T>(
  ops: FileOps,
  lockDir: string,
  options: LockOptions,
  fn: (lock: HeldLock) => Promise<T>,
  along?: () => void,
): Promise<T> {
  const lock = await acquireLock(ops, lockDir, options, along);
  try {
    return await fn(lock);
  } finally {
    await lock.release();
  }
}

/** One attempt at the lock: the calls made for it, and the token it puts in. */
interface Attempt {
  readonly token: string;
  readonly ownerName: string;
  /** When it started: the owner file, once made, has the server stamp the directory later. */
  readonly stamped: number;
  /** The mkdir that decides whether the directory is ours. */
  readonly made: Promise<void>;
  /** The owner file, made only if the mkdir succeeded (SkippedCall otherwise). */
  readonly owned: Promise<void>;
  /** A listing of the directory made after the owner file, where it went out with it. */
  readonly listed: Promise<string[]> | undefined;
}

/**
 * Makes an attempt's calls: the mkdir, then the owner file only if the mkdir
 * succeeded, so that an owner file never lands in another session's lock directory.
 * Over FileOps with ifPreviousSucceeded the owner file, a listing of the directory
 * and `along`'s calls go out with the mkdir (one round trip); otherwise the owner
 * file follows the mkdir's success, and the listing the owner file.
 */
function attemptLock(ops: FileOps, lockDir: string, along: (() => void) | undefined): Attempt {
  const token = newToken();
  const ownerName = OWNER_PREFIX + token;
  const stamped = performance.now();
  // The name is the token; the content says which process holds it (a contender
  // on this machine breaks the lock at once when that process is gone). A file made
  // and then not written in full still holds the token, so that failure is ignored.
  const [made, owned] = inSequence(ops, [
    () => ops.mkdir(lockDir, 0o700),
    () => createFile(ops, join(lockDir, ownerName), Buffer.from(formatOwner(currentOwner()))),
  ]) as [Promise<void>, Promise<void>];
  const ownedOrPartly = owned.catch((err: unknown) => {
    if (!createdBeforeFailure(err)) throw err;
  });
  // Not made when the mkdir failed: that failure is the one reported.
  ownedOrPartly.catch(() => undefined);
  let listed: Promise<string[]> | undefined;
  if (ops.ifPreviousSucceeded !== undefined) {
    // Runs after the owner file (in order): lists it when the mkdir was ours.
    listed = ops.readdir(lockDir);
    listed.catch(() => undefined);
    try {
      along?.();
    } catch {
      /* the caller's calls are the caller's: the lock is taken as without them */
    }
  }
  return { token, ownerName, stamped, made, owned: ownedOrPartly, listed };
}

/**
 * After our mkdir: our token goes in (attemptLock). Undefined when the directory
 * turned out not to be ours alone (a holder that stalled inside release() removed
 * it, and someone else's directory now stands there); the caller then goes on
 * waiting.
 */
async function takeOwnership(
  ops: FileOps,
  lockDir: string,
  options: LockOptions,
  attempt: Attempt,
): Promise<HeldLock | undefined> {
  const { token, ownerName, stamped } = attempt;
  const ownerPath = join(lockDir, ownerName);
  try {
    await attempt.owned;
  } catch (err) {
    if (gone(err)) return undefined;
    await ops.rmdir(lockDir).catch(() => undefined);
    throw toStorageError(err, `cannot take lock ${lockDir}`);
  }
  let entries: string[];
  try {
    entries = await (attempt.listed ?? ops.readdir(lockDir));
  } catch (err) {
    if (gone(err)) return undefined;
    await ops.unlink(ownerPath).catch(() => undefined);
    throw toStorageError(err, `cannot take lock ${lockDir}`);
  }
  const owners = entries.filter((e) => e.startsWith(OWNER_PREFIX));
  if (owners.length === 1 && owners[0] === ownerName) return holdLock(ops, lockDir, token, options, stamped);
  if (owners.includes(ownerName)) {
    // Two owners in one directory: neither may keep it. Whoever leaves last removes it.
    await ops.unlink(ownerPath).catch(() => undefined);
    await ops.rmdir(lockDir).catch(() => undefined);
  }
  return undefined;
}

function holdLock(ops: FileOps, lockDir: string, token: string, options: LockOptions, stamped: number): HeldLock {
  const ownerPath = join(lockDir, OWNER_PREFIX + token);
  const beatPath = join(lockDir, BEAT_PREFIX + token);
  let lost = false;
  let released = false;
  let lastRefresh = stamped;
  let running: Promise<boolean> | undefined;

  const ownerPresent = async (): Promise<boolean> => {
    try {
      if ((await ops.lstat(ownerPath)).isFile()) return true;
      lost = true;
    } catch (err) {
      if (gone(err)) lost = true;
    }
    return false; // gone, or cannot tell: not safe to commit
  };

  /**
   * Creating and removing an entry has the server stamp the directory's mtime. Then
   * whether our owner file is still there (ownerPresent): whether the refresh was
   * ours. Over ordered FileOps the close, the unlink and that look go out together.
   */
  const refreshThenLook = async (): Promise<{ refreshed: boolean; present: boolean }> => {
    let changed = false;
    let closed: Promise<void> | undefined;
    try {
      const beat = await ops.createExclusive(beatPath, 0o600);
      closed = beat.close().catch(() => undefined);
      changed = true;
    } catch {
      /* EEXIST (a beat left behind) is removed below, which refreshes as well */
    }
    // Over ordered FileOps the close and the unlink go out together (in that order).
    if (!ops.ordered) await closed;
    const removed = ops.unlink(beatPath).then(
      () => true,
      () => false, // nothing to remove
    );
    if (!ops.ordered) await removed;
    const present = ownerPresent();
    await closed;
    return { refreshed: (await removed) || changed, present: await present };
  };

  const check = async (): Promise<boolean> => {
    if (lost || released) return false;
    // Checked before the refresh too, so a holder that lost the lock does not keep
    // the new holder's lock fresh on its behalf after it has crashed.
    if (!(await ownerPresent())) return false;
    const before = performance.now();
    const { refreshed, present } = await refreshThenLook();
    // Still there after the refresh: our directory stood at lockDir all along (a
    // broken lock never comes back), so the refresh was ours.
    if (!present) return false;
    if (refreshed) lastRefresh = before;
    return performance.now() - lastRefresh < options.staleMs / 2;
  };

  const beat = (): Promise<boolean> => {
    running ??= check().finally(() => {
      running = undefined;
    });
    return running;
  };

  const timer = setInterval(
    () => {
      void beat().then((ok) => {
        if (lost) clearInterval(timer);
        return ok;
      });
    },
    Math.max(50, Math.floor(options.staleMs / 3)),
  );
  timer.unref();

  // Stamped (taken or refreshed) less than FRESH_FOR_COMMIT of staleMs ago: no
  // contender can judge it stale for most of staleMs yet, far longer than the few
  // calls up to the commit, so a refresh (create, close, unlink, and a look on each
  // side) would change nothing.
  const fresh = (): boolean =>
    !lost && !released && performance.now() - lastRefresh < options.staleMs * FRESH_FOR_COMMIT;
  /** A look at the owner file made ahead (lookAhead), for the next stillHeld(). */
  let lookedAhead: Promise<boolean> | undefined;

  const stillHeld = async (): Promise<boolean> => {
    const looked = lookedAhead;
    lookedAhead = undefined;
    await running; // a beat started earlier may be old: check afresh
    // Whether our owner file is still there is looked at all the same: a lock broken
    // some other way is never committed under. Fresh still once the answer is in
    // (a hung file system may have held it, or the calls before it, for long):
    // otherwise the full refresh.
    if (fresh()) {
      const present = await (looked ?? ownerPresent());
      if (!present || fresh()) return present;
    }
    return beat();
  };

  let releasing: Promise<void> | undefined;
  const release = (): Promise<void> => {
    releasing ??= (async () => {
      released = true;
      clearInterval(timer);
      if (running !== undefined) await running;
      await removeLock();
    })();
    return releasing;
  };

  /**
   * The owner file, then the directory, the rmdir only if the unlink succeeded
   * (over FileOps with ifPreviousSucceeded both go out at once). After a failed
   * unlink (the lock was broken while we stalled, or the owner file cannot be
   * removed) the lock is left to go stale, and a second rmdir removes the directory
   * only if it is empty: one a breaker was about to remove, or one a contender has
   * just made and not yet put its owner file in (its creation fails, and it waits
   * on: takeOwnership). Never one with an owner. With `after` (the last change, just
   * made), the unlink too is made only if that succeeded, in its round trip; false
   * when it did not: nothing was done and the lock is still held.
   */
  const removeLock = async (after?: Promise<unknown>): Promise<boolean> => {
    if (lost) return true;
    const unlink = (): Promise<void> => ops.unlink(ownerPath);
    const unlinked = after === undefined ? unlink() : whenSucceeded(ops, after, unlink);
    const removed = whenSucceeded(ops, unlinked, () => ops.rmdir(lockDir));
    removed.catch(() => undefined);
    try {
      await unlinked;
    } catch (err) {
      if (isSkipped(err)) return false; // `after` failed: nothing was done
      // Not ours any more, or cannot tell: the lock is left to go stale. Its directory
      // goes only if it was left empty (a breaker's, about to be removed by it); one
      // with an owner file or a beat inside stays (ENOTEMPTY).
      await ops.rmdir(lockDir).catch(() => undefined);
      return true;
    }
    try {
      await removed;
    } catch {
      // A beat of ours left behind (its unlink failed) keeps it non-empty; anything
      // else belongs to someone else.
      const rest = await ops.readdir(lockDir).catch(() => [] as string[]);
      if (rest.length === 1 && rest[0] === BEAT_PREFIX + token) {
        await ops.unlink(beatPath).catch(() => undefined);
        await ops.rmdir(lockDir).catch(() => undefined);
      }
    }
    releasedHere(lockDir);
    return true;
  };

  return {
    stillHeld,
    lookAhead() {
      if (ops.ordered && running === undefined && fresh()) {
        lookedAhead = ownerPresent();
      }
    },
    async assertHeld() {
      if (!(await stillHeld())) {
        throw new StorageError(
          'trylater',
          `lost the lock ${lockDir}: another session took it over while this one stalled`,
        );
      }
    },
    release,
    async releaseAfter<T>(last: () => Promise<T>): Promise<T> {
      if (releasing !== undefined || running !== undefined || lost) {
        // Released already, or a refresh under way (the release waits for it): in turn.
        const result = await last();
        await release();
        return result;
      }
      const result = last(); // its call is made now ...
      const removing = removeLock(result); // ... and the release's right after it
      try {
        return await result;
      } finally {
        if (await removing) {
          released = true;
          clearInterval(timer);
          releasing ??= Promise.resolve();
        }
      }
    },
  };
}

/**
 * Breaks a lock judged stale, touching only what was judged: the owner files seen
 * before the age was read. Unlinking one of them is the step only one breaker can
 * win (the others get ENOENT and start over); a slow breaker therefore never
 * removes a lock someone took after the judgement, which renaming the directory
 * by its path could. Then the stale owner's beats go, and the directory, which
 * nobody else can have entered (mkdir fails while it exists). A directory with no
 * owner file (its creator died before writing one) loses its beats and is removed
 * only if nothing else is left in it.
 */
async function breakStale(ops: FileOps, lockDir: string, owners: readonly string[]): Promise<void> {
  for (const owner of owners) {
    try {
      await ops.unlink(join(lockDir, owner));
    } catch (err) {
      if (gone(err)) return; // another breaker won, or the holder released it
      throw err;
    }
  }
  // The stale owners' beats; with no owner at all, any beat is a dead holder's
  // (a holder writes its owner file before its first beat).
  const tokens = owners.map((o) => o.slice(OWNER_PREFIX.length));
  const entries = await ops.readdir(lockDir).catch(() => [] as string[]);
  for (const e of entries) {
    if (e.startsWith(BEAT_PREFIX) && (owners.length === 0 || tokens.includes(e.slice(BEAT_PREFIX.length)))) {
      await ops.unlink(join(lockDir, e)).catch(() => undefined);
    }
  }
  try {
    await ops.rmdir(lockDir);
  } catch (err) {
    // ENOENT: someone else finished the job. ENOTEMPTY: something that is not a
    // stale owner's is inside (the owner of a lock taken since): leave it.
    if (!gone(err) && errnoCode(err) !== 'ENOTEMPTY' && errnoCode(err) !== 'EEXIST') throw err;
  }
}

/** One owner file whose process ran on this machine and is certainly gone. */
async function ownerIsGone(ops: FileOps, lockDir: string, owners: readonly string[]): Promise<boolean> {
  if (owners.length !== 1) return false;
  let text: string;
  try {
    text = (await ops.readFile(join(lockDir, owners[0]))).toString('utf8');
  } catch {
    return false; // released meanwhile, or unreadable: the age rule decides
  }
  const owner = parseOwner(text);
  return owner !== undefined && ownerGone(owner);
}

interface ServerClock {
  /** The file server's idea of now, in ms since the epoch. */
  now(): number;
}

/**
 * Reads the server's time once (the parent's mtime right after we create a probe
 * in it) and keeps its offset from ours. The probe is named like a temp file, so
 * the store's clean-up removes it if we crash before we do. Falls back to our own
 * clock when the probe cannot be made.
 */
async function serverClock(ops: FileOps, lockDir: string): Promise<ServerClock> {
  const probe = tempPathFor(lockDir);
  let offset = 0;
  try {
    await (await ops.createExclusive(probe, 0o600)).close().catch(() => undefined);
    try {
      offset = (await ops.stat(dirname(lockDir))).mtimeMs - Date.now();
    } finally {
      await ops.unlink(probe).catch(() => undefined);
    }
  } catch {
    offset = 0;
  }
  return { now: () => Date.now() + offset };
}
