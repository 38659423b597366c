/**
 * FileOps for one hold of the user's lock, in which a read is not repeated: a file,
 * a listing or a stat read once gives the same answer to the next asker, until a
 * change made through this view touches that path (or, for a listing, an entry of
 * that directory); then the next read goes to the file system again.
 *
 * Why that is safe: while the lock is held no other session or server changes
 * these files, so a second read within the hold could only see a change made
 * outside tsieved (the user in a shell) in the instants between the two reads,
 * which the first read would have missed just the same had it come a moment
 * later; every decision still rests on reads made under the lock. Nothing read
 * before the lock is taken comes through here (each hold starts empty), and the
 * lock's own files are read directly, never through this.
 *
 * Over a file broker each read is a round trip, and one command used to read the
 * filter file, `.active` and `.verbatim` two or three times.
 *
 * Must not know: what the files mean, the lock.
 */
import { dirname } from 'node:path';
import { createFile, type FileOps, type FileStat, type NewFileOptions, type WritableFile } from './file-ops.js';

const READS = ['read', 'readdir', 'stat', 'lstat'] as const;
type Read = (typeof READS)[number];

const key = (op: Read, path: string): string => `${op}\0${path}`;

/**
 * The reads of FileOps through a cache: the same read asked again gets the first
 * answer (a failure too). What the writes do is the subclass's: HeldReads forgets
 * what they touch, the open check's read-only view (open-check.ts) refuses them.
 */
export abstract class CachedReads {
  private readonly cache = new Map<string, Promise<unknown>>();

  constructor(protected readonly ops: FileOps) {}

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

  /** Drops every read of `path`, and the listing of its directory. */
  protected forget(path: string): void {
    for (const op of READS) this.cache.delete(key(op, path));
    this.cache.delete(key('readdir', dirname(path)));
  }

  private memo<T>(op: Read, path: string, read: () => Promise<T>): Promise<T> {
    const k = key(op, path);
    let p = this.cache.get(k) as Promise<T> | undefined;
    if (p === undefined) {
      p = read();
      // Read ahead and perhaps never asked for: a failure is the asker's to see.
      p.catch(() => undefined);
      this.cache.set(k, p);
    }
    return p;
  }
}

export class HeldReads extends CachedReads implements FileOps {
  readonly ordered: boolean | undefined = this.ops.ordered;
  /** As the FileOps below: a call made through this view reaches them at once. */
  readonly ifPreviousSucceeded: FileOps['ifPreviousSucceeded'] =
    this.ops.ifPreviousSucceeded === undefined
      ? undefined
      : <T>(call: () => Promise<T>): Promise<T> => this.ops.ifPreviousSucceeded!(call);

  /** Starts reading files now, so that they go out together; askers get the results. */
  readAhead(paths: readonly string[]): void {
    for (const p of paths) void this.readFile(p);
  }

  async createExclusive(path: string, mode: number): Promise<WritableFile> {
    const file = await this.changing([path], () => this.ops.createExclusive(path, mode));
    return {
      writeAll: (data) => this.changing([path], () => file.writeAll(data)),
      sync: () => file.sync(),
      chmod: (m) => this.changing([path], () => file.chmod(m)),
      close: () => this.changing([path], () => file.close()),
    };
  }
  /**
   * Only where the FileOps below makes a new file in one call (as `ordered`, what
   * they do is told as it is: prepareThenLook in filter-guard.ts relies on it).
   */
  readonly createFile: FileOps['createFile'] =
    this.ops.createFile === undefined
      ? undefined
      : (path: string, data: Uint8Array, options: NewFileOptions): Promise<void> =>
          this.changing([path], () => createFile(this.ops, path, data, options));
  rename(from: string, to: string): Promise<void> {
    return this.changing([from, to], () => this.ops.rename(from, to));
  }
  unlink(path: string): Promise<void> {
    return this.changing([path], () => this.ops.unlink(path));
  }
  mkdir(path: string, mode: number): Promise<void> {
    return this.changing([path], () => this.ops.mkdir(path, mode));
  }
  rmdir(path: string): Promise<void> {
    return this.changing([path], () => this.ops.rmdir(path));
  }
  syncDir(path: string): Promise<void> {
    return this.ops.syncDir(path);
  }

  /**
   * Runs a change, forgetting what was read of `paths` and the listings of their
   * directories before it starts and again once it is over (a read made meanwhile
   * may have seen either side of it).
   */
  private async changing<T>(paths: readonly string[], change: () => Promise<T>): Promise<T> {
    for (const path of paths) this.forget(path);
    try {
      return await change();
    } finally {
      for (const path of paths) this.forget(path);
    }
  }
}
