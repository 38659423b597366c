/**
 * The file-system calls the store makes, behind a small interface so tests can
 * inject the faults they cannot produce for real (AFS reports quota errors at
 * close(2); a test cannot make a local disk do that). The default implementation
 * is node:fs/promises.
 *
 * Must not know: scripts, names, locking, or what the files mean.
 */
import * as fsp from 'node:fs/promises';
import { constants } from 'node:fs';

export interface FileStat {
  readonly size: number;
  readonly mtimeMs: number;
  readonly uid: number;
  readonly mode: number;
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
}

/** A stat's fields as they travel from another process or thread, with the file's link count. */
export interface StatFields {
  readonly size: number;
  readonly mtimeMs: number;
  readonly uid: number;
  readonly mode: number;
  readonly nlink: number;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/** A FileStat of fields made elsewhere (a file broker, a file-I/O thread): the type from the mode. */
export function fileStatOf(fields: StatFields): FileStat & { readonly nlink: number } {
  const type = fields.mode & S_IFMT;
  return {
    ...fields,
    isFile: () => type === S_IFREG,
    isDirectory: () => type === S_IFDIR,
    isSymbolicLink: () => type === S_IFLNK,
  };
}

/**
 * A failure with its errno `code` (and `path`), as node:fs reports one, made by
 * FileOps that run the call elsewhere. Without a stack: it would say nothing about
 * the call, and the store meets several expected ENOENTs per session (capturing a
 * stack is most of an Error's cost).
 */
export function errnoError(code: string, message: string, path?: string): Error {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const err = new Error(message);
  Error.stackTraceLimit = limit;
  return Object.assign(err, { code }, path === undefined ? {} : { path });
}

/** An open file, written whole. */
export interface WritableFile {
  /** Writes all of `data` (loops over short writes). */
  writeAll(data: Uint8Array): Promise<void>;
  sync(): Promise<void>;
  chmod(mode: number): Promise<void>;
  /** Its error must be checked: network file systems report write failures here. */
  close(): Promise<void>;
}

export interface FileOps {
  /** Creates a new file exclusively (O_CREAT|O_EXCL|O_WRONLY), never follows a link. */
  createExclusive(path: string, mode: number): Promise<WritableFile>;
  readFile(path: string): Promise<Buffer>;
  readdir(path: string): Promise<string[]>;
  stat(path: string): Promise<FileStat>;
  lstat(path: string): Promise<FileStat>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  mkdir(path: string, mode: number): Promise<void>;
  rmdir(path: string): Promise<void>;
  /** fsync of a directory so a rename is durable; may be unsupported (then a no-op). */
  syncDir(path: string): Promise<void>;
  /**
   * Optional, used through createFile() below: a new file made whole in one call,
   * where that saves round trips (a file broker: one request instead of a create
   * and then the rest). Same contract as createFile().
   */
  createFile?(path: string, data: Uint8Array, options: NewFileOptions): Promise<void>;
  /**
   * True when calls made without waiting for each other are carried out one after
   * another in the order they were made (a file broker serves its pipe in order),
   * so a caller may send dependent calls together and wait once: one round trip
   * instead of several. node:fs runs them on a thread pool in any order (false).
   */
  readonly ordered?: boolean;
  /**
   * Optional, on ordered FileOps that can make a call depend on the one before it
   * (a file broker, the file threads): makes the first call that `call` makes (at
   * once, before it first waits) run only if the call made on these FileOps just
   * before it succeeded; otherwise that call is not made and rejects with
   * SkippedCall, which counts as a failure for a call depending on it in turn. The
   * call before must have been made in the same turn of the event loop (nothing
   * else can then come between them), or ifPreviousSucceeded throws. Used through
   * whenSucceeded() and inSequence(), which do the same by waiting elsewhere: so a
   * call that must not run after a failure goes out with the one it depends on, in
   * its round trip, instead of one round trip later.
   */
  ifPreviousSucceeded?<T>(call: () => Promise<T>): Promise<T>;
}

/**
 * A call that was not made because the call it depended on failed or was not made
 * itself (FileOps.ifPreviousSucceeded). It carries no errno code, so it is never
 * taken for an answer of the file system (ENOENT, EEXIST, ...): callers that
 * reach it expected the failure before it, which they report instead.
 */
export class SkippedCall extends Error {
  constructor(message = 'not made: the call it depended on failed') {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0; // as errnoError(): a stack would say nothing
    super(message);
    Error.stackTraceLimit = limit;
    this.name = 'SkippedCall';
  }
}

export function isSkipped(err: unknown): err is SkippedCall {
  return err instanceof SkippedCall;
}

/**
 * For ordered FileOps implementing ifPreviousSucceeded: the mark that the first
 * request a call makes depends on the one before it. around() raises it for the
 * call, the request take()s it; a call that made no request at once is refused,
 * since the mark left raised would fall on some later, unrelated request.
 */
export class DependentMark {
  private raised = false;

  around<T>(call: () => Promise<T>): Promise<T> {
    this.raised = true;
    let made: Promise<T>;
    try {
      made = call();
    } catch (err) {
      this.raised = false;
      throw err;
    }
    if (this.take()) {
      made.catch(() => undefined);
      throw new Error('ifPreviousSucceeded: the call made no request at once');
    }
    return made;
  }

  /** Whether the request being made depends on the one before; lowers the mark. */
  take(): boolean {
    const raised = this.raised;
    this.raised = false;
    return raised;
  }
}

/**
 * `call` (one FileOps call, made at once, settling as that call does), made only if
 * `previous` succeeded; otherwise it rejects with SkippedCall. `previous` must be
 * the call made on `ops` just before, in this turn of the event loop: over FileOps
 * with ifPreviousSucceeded both go out now (one round trip) and the file broker or
 * thread decides; over others `call` is made once `previous` has succeeded. The
 * outcome is the same either way.
 */
export function whenSucceeded<T>(ops: FileOps, previous: Promise<unknown>, call: () => Promise<T>): Promise<T> {
  if (ops.ifPreviousSucceeded) return ops.ifPreviousSucceeded(call);
  return previous.then(call, () => Promise.reject(new SkippedCall()));
}

/**
 * `steps` (each one FileOps call, as for whenSucceeded()) one after another, each
 * only if the one before succeeded; the promises of all of them, in order, which
 * the caller must each handle. Over FileOps with ifPreviousSucceeded all are made
 * now, in one round trip.
 */
export function inSequence(ops: FileOps, steps: readonly (() => Promise<unknown>)[]): Promise<unknown>[] {
  const made: Promise<unknown>[] = [];
  for (const step of steps) made.push(made.length === 0 ? step() : whenSucceeded(ops, made[made.length - 1], step));
  return made;
}

/**
 * Completes a new file: writes all of `data`, sets `mode` (when given), fsyncs (when
 * asked) and closes it, in that order, and reports the first failure; the file is
 * closed in any case (close(2)'s own error counts: AFS reports a full quota there).
 * Over ordered FileOps the calls go out together, so a failed write is followed by
 * the rest, which then do no harm (the caller removes the file).
 */
export async function finishFile(
  ops: FileOps,
  file: WritableFile,
  data: Uint8Array,
  options: { readonly mode?: number; readonly sync?: boolean } = {},
): Promise<void> {
  const steps: (() => Promise<void>)[] = [() => file.writeAll(data)];
  if (options.mode !== undefined) steps.push(() => file.chmod(options.mode!));
  if (options.sync) steps.push(() => file.sync());
  if (ops.ordered) {
    const results = await Promise.allSettled([...steps, () => file.close()].map((step) => step()));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    return;
  }
  try {
    for (const step of steps) await step();
  } catch (err) {
    await file.close().catch(() => undefined);
    throw err;
  }
  await file.close();
}

export interface NewFileOptions {
  /** Set with fchmod once the content is written (the file is created 0600). */
  readonly mode?: number;
  /** fsync before close. */
  readonly sync?: boolean;
}

/** Failures of createFile() that came after the file was created (it exists, closed). */
const failedAfterCreate = new WeakSet<object>();

/** Marks `err` as a failure after the file was created; returns it. */
export function failureAfterCreate<E>(err: E): E {
  if (typeof err === 'object' && err !== null) failedAfterCreate.add(err);
  return err;
}

/**
 * True when createFile() failed after creating the file: the file exists (closed,
 * perhaps incomplete) and is the caller's to remove or to keep. Otherwise nothing
 * was created.
 */
export function createdBeforeFailure(err: unknown): boolean {
  return typeof err === 'object' && err !== null && failedAfterCreate.has(err);
}

/**
 * A new file, made whole: created exclusively (O_EXCL, never through a link) with
 * mode 0600, then finishFile() (all of `data`, the mode, fsync when asked, close
 * with its error). The first failure is thrown; see createdBeforeFailure(). In one
 * call where the FileOps has one (a file broker: one round trip, not two).
 */
export async function createFile(
  ops: FileOps,
  path: string,
  data: Uint8Array,
  options: NewFileOptions = {},
): Promise<void> {
  if (ops.createFile) return ops.createFile(path, data, options);
  return createFileInSteps(ops, path, data, options);
}

/**
 * createFile() the long way, whatever `ops` has: createExclusive (0600), then
 * finishFile(), a failure after the creation marked as such. For FileOps whose own
 * createFile cannot take every file in one call (a file broker, above its request cap).
 */
export async function createFileInSteps(
  ops: FileOps,
  path: string,
  data: Uint8Array,
  options: NewFileOptions = {},
): Promise<void> {
  const file = await ops.createExclusive(path, 0o600);
  try {
    await finishFile(ops, file, data, options);
  } catch (err) {
    throw failureAfterCreate(err);
  }
}

class NodeWritableFile implements WritableFile {
  constructor(private readonly handle: fsp.FileHandle) {}
  async writeAll(data: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < data.length) {
      const { bytesWritten } = await this.handle.write(data, offset, data.length - offset);
      offset += bytesWritten;
    }
  }
  sync(): Promise<void> {
    return this.handle.sync();
  }
  chmod(mode: number): Promise<void> {
    return this.handle.chmod(mode);
  }
  close(): Promise<void> {
    return this.handle.close();
  }
}

/** Larger than any script or filter we write; a bigger file is not one of ours. */
export const MAX_READ_BYTES = 64 * 1024 * 1024;

export interface RegularReadOptions {
  /** Refused (code ETOOLARGE) past this size; default MAX_READ_BYTES. */
  readonly maxBytes?: number;
  /** O_NOFOLLOW: a symbolic link is refused (ELOOP). */
  readonly noFollow?: boolean;
  /** A further check on the open file's fstat; an error it returns is thrown. */
  readonly check?: (st: { readonly uid: number; readonly nlink: number }) => Error | undefined;
}

/**
 * Reads a regular file whole. O_NONBLOCK, then fstat: a FIFO or device put where a
 * script or the filter belongs (`mkfifo ~/sieve/x.sieve`) is refused at once
 * (code ENOTREGULAR) instead of blocking one of libuv's few I/O threads forever,
 * which would stall every other session's file operations. Checks are made on the
 * open descriptor, so a file swapped in between is still caught.
 */
export async function readRegularFile(path: string, options: RegularReadOptions = {}): Promise<Buffer> {
  const maxBytes = options.maxBytes ?? MAX_READ_BYTES;
  const tooLarge = (size: number): Error =>
    Object.assign(new Error(`${path} is too large (${size} bytes)`), { code: 'ETOOLARGE', path });
  const handle = await fsp.open(
    path,
    constants.O_RDONLY | constants.O_NONBLOCK | (options.noFollow ? constants.O_NOFOLLOW : 0),
  );
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'ENOTREGULAR', path });
    const refusal = options.check?.(st);
    if (refusal !== undefined) throw refusal;
    if (st.size > maxBytes) throw tooLarge(st.size);
    const buf = await handle.readFile();
    if (buf.length > maxBytes) throw tooLarge(buf.length); // grew while we read
    return buf;
  } finally {
    await handle.close().catch(() => undefined);
  }
}

export const nodeFileOps: FileOps = {
  async createExclusive(path, mode) {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    return new NodeWritableFile(await fsp.open(path, flags, mode));
  },
  readFile: (path) => readRegularFile(path),
  readdir: (path) => fsp.readdir(path),
  stat: (path) => fsp.stat(path),
  lstat: (path) => fsp.lstat(path),
  rename: (from, to) => fsp.rename(from, to),
  unlink: (path) => fsp.unlink(path),
  mkdir: async (path, mode) => {
    await fsp.mkdir(path, { mode });
  },
  rmdir: (path) => fsp.rmdir(path),
  async syncDir(path) {
    let handle: fsp.FileHandle | undefined;
    try {
      handle = await fsp.open(path, constants.O_RDONLY | constants.O_DIRECTORY);
      await handle.sync();
    } catch (err) {
      // Some file systems (AFS among them) refuse fsync on a directory; the
      // rename is then as durable as that file system makes it.
      if (!DIRECTORY_FSYNC_REFUSED.has((err as { code?: string }).code ?? '')) throw err;
    } finally {
      await handle?.close().catch(() => undefined);
    }
  },
};

/** What a file system says when it does not do fsync on a directory (AFS among them). */
export const DIRECTORY_FSYNC_REFUSED = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'EBADF', 'EISDIR']);

/**
 * The same operations, except that a directory fsync never fails the caller: it
 * runs after the rename it makes durable, so the change has happened and a NO
 * would be untrue. A refusal by the file system is expected and silent; any other
 * failure (EIO) is handed to `report`, so it is logged rather than lost.
 */
export function reportingDirSyncFailures(ops: FileOps, report: (path: string, err: unknown) => void): FileOps {
  return new Proxy(ops, {
    get(target, property) {
      if (property === 'syncDir') {
        return async (path: string): Promise<void> => {
          try {
            await target.syncDir(path);
          } catch (err) {
            if (!DIRECTORY_FSYNC_REFUSED.has((err as { code?: string }).code ?? '')) report(path, err);
          }
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
