/**
 * Several new files put in place together under the user's lock: prepared first
 * (atomic-write.ts: temp files written whole), then renamed in order, each rename
 * made only if the one before succeeded, so that a failure leaves the files after it
 * as they were and the caller can undo the ones before (filter-guard.ts puts the
 * filter back). Over a file broker the renames, and the lock's release after the
 * last, go out in one round trip.
 *
 * Must not know: what the files are (scripts, the filter, records).
 */
import { prepareAll, type PreparedWrite } from './atomic-write.js';
import { inSequence, type FileOps } from './file-ops.js';
import type { HeldLock } from './lock.js';

/**
 * prepareAll(), with the look at the lock that the commit starts with (commitAll)
 * sent after the new files' calls, in their round trip (HeldLock.lookAhead), where
 * it then runs once each file is complete: over ordered FileOps that make a new
 * file in one call (FileOps.createFile: created, written, synced and closed).
 * Each of `prepares` must make its call at once (its content known beforehand).
 * Otherwise the commit looks in a round trip of its own.
 */
export function prepareThenLook(
  ops: FileOps,
  lock: HeldLock,
  prepares: readonly (() => Promise<PreparedWrite>)[],
): Promise<PreparedWrite[]> {
  const prepared = prepareAll(prepares);
  if (ops.ordered && ops.createFile !== undefined) lock.lookAhead();
  return prepared;
}

/**
 * Renames prepared files into place in order; on a failure the rest are not made
 * (their temp files removed), and `undoFirst` runs when the first one was already
 * in place. A session that stalled long enough for its lock to be broken as stale
 * changes nothing: another session may be working on these files now.
 *
 * Each rename is made only if the one before succeeded (the filter goes first so
 * that a failed script rename can be undone; see script-changes.ts); with `releaseLock`
 * (the caller does nothing more under the lock after a success) so is the lock's
 * release, after the last (HeldLock.releaseAfter): a failure keeps the lock for the
 * undo. Over FileOps with ifPreviousSucceeded (a file broker, the file threads) all
 * of that goes out in one round trip, the directories' fsyncs after it; otherwise
 * each waits for the one before.
 */
export async function commitAll(
  ops: FileOps,
  writes: readonly PreparedWrite[],
  lock: HeldLock,
  { undoFirst, releaseLock = false }: { readonly undoFirst?: () => Promise<void>; readonly releaseLock?: boolean } = {},
): Promise<void> {
  try {
    await lock.assertHeld();
  } catch (err) {
    await Promise.all(writes.map((w) => w.abort()));
    throw err;
  }
  const lastIndex = writes.length - 1;
  const renamed = inSequence(
    ops,
    writes.map((w, i) =>
      i === lastIndex && releaseLock ? () => lock.releaseAfter(() => w.rename()) : () => w.rename(),
    ),
  );
  // After a rename that failed or was not made, a directory's fsync does no harm.
  const chained = ops.ifPreviousSucceeded !== undefined;
  const synced = writes.map((w, i) =>
    chained
      ? w.syncDir()
      : renamed[i].then(
          () => w.syncDir(),
          () => undefined,
        ),
  );
  const results = await Promise.allSettled(renamed);
  await Promise.all(synced);
  // The first failure; the renames after it were not made (SkippedCall).
  const failedAt = results.findIndex((r) => r.status === 'rejected');
  if (failedAt === -1) return;
  await Promise.all(writes.slice(failedAt + 1).map((w) => w.abort()));
  if (failedAt > 0) await undoFirst?.();
  throw (results[failedAt] as PromiseRejectedResult).reason;
}
