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
import type { FileOps, FileStat, WritableFile } from './file-ops.js';
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
  release: () => Promise.resolve(),
};

/** FileOps that read through a per-check cache and refuse every change. */
export class ReadOnlyView implements FileOps {
  private readonly cache = new Map<string, Promise<unknown>>();

  constructor(private readonly ops: FileOps) {}

  /** Starts reads now, so that they go out together; their results wait in the cache. */
  readAhead(reads: { readonly file?: readonly string[]; readonly lstat?: readonly string[] }): void {
    for (const p of reads.file ?? []) void this.readFile(p).catch(() => undefined);
    for (const p of reads.lstat ?? []) void this.lstat(p).catch(() => undefined);
  }

  readFile(path: string): Promise<Buffer> {
    return this.memo('read', path, () => this.ops.readFile(path));
  }
  readdir(path: string): Promise<string[]> {
    return this.memo('readdir', path, () => this.ops.readdir(path));
  }
  stat(path: string): Promise<FileStat> {
    return this.memo('stat', path, () => this.ops.stat(path));
  }
  lstat(path: string): Promise<FileStat> {
    return this.memo('lstat', path, () => this.ops.lstat(path));
  }

  createExclusive(): Promise<WritableFile> {
    return refuse();
  }
  rename = refuse;
  unlink = refuse;
  mkdir = refuse;
  rmdir = refuse;
  syncDir = refuse;

  private memo<T>(op: string, path: string, read: () => Promise<T>): Promise<T> {
    const key = `${op}\0${path}`;
    let p = this.cache.get(key) as Promise<T> | undefined;
    if (p === undefined) {
      p = read();
      // Read ahead and perhaps never asked for: a failure is the asker's to see.
      p.catch(() => undefined);
      this.cache.set(key, p);
    }
    return p;
  }
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
