/**
 * The checks a store makes when it opens (a foreign filter to preserve, an
 * interrupted change to repair), first made without the lock and without changing
 * anything: in the usual case there is nothing to do, and then the login needs
 * neither the lock's system calls nor waiting for another session that holds it.
 *
 * The checks (filter-guard.ts) call `lock.assertHeld()` before every change, so
 * running them with a lock whose assertHeld() refuses, over files that refuse every
 * change, either finishes (nothing to repair) or stops at the first change it would
 * make; the caller then takes the lock and runs them again, as before. Without the
 * lock the reads are not one snapshot, but what they can miss is only a change that
 * another session makes at that moment under the lock, which writes the filter and
 * the record of the active script from content it read under that lock; a state
 * that looks inconsistent (such a change half done) merely sends us to the lock.
 *
 * Reads are memoised for the length of one check, and the likely ones are asked for
 * together up front: over a file broker each read is a round trip, and requests
 * sent together are answered in one.
 *
 * Must not know: what the files mean (the caller names what to read ahead), the
 * wire protocol.
 */
import type { FileOps, WritableFile } from './file-ops.js';
import { CachedReads } from './held-reads.js';
import type { HeldLock } from './lock.js';

/** Stops a check at the first change it would make. */
class WouldChange extends Error {
  constructor() {
    super('the check would change a file; it needs the lock');
    this.name = 'WouldChange';
  }
}

const refuse = (): Promise<never> => Promise.reject(new WouldChange());

/** A lock that is never held: the check stops where it would commit a change. */
const NO_LOCK: HeldLock = {
  stillHeld: () => Promise.resolve(false),
  assertHeld: refuse,
  lookAhead: () => undefined,
  release: () => Promise.resolve(),
  releaseAfter: refuse,
};

/** FileOps that read through a per-check cache and refuse every change. */
export class ReadOnlyView extends CachedReads implements FileOps {
  /** Starts reads now, so that they go out together; their results wait in the cache. */
  readAhead(reads: { readonly file?: readonly string[]; readonly lstat?: readonly string[] }): void {
    for (const p of reads.file ?? []) void this.readFile(p);
    for (const p of reads.lstat ?? []) void this.lstat(p);
  }

  createExclusive(): Promise<WritableFile> {
    return refuse();
  }
  rename = refuse;
  unlink = refuse;
  mkdir = refuse;
  rmdir = refuse;
  syncDir = refuse;
}

/**
 * Runs `check` with a lock that is never held. True when it finished: nothing
 * needed changing. False when it would have changed something, or failed: the
 * caller runs it again under the lock, which also reports any failure as before.
 */
export async function finishesWithoutChange(check: (lock: HeldLock) => Promise<void>): Promise<boolean> {
  try {
    await check(NO_LOCK);
    return true;
  } catch {
    return false;
  }
}
