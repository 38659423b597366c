/**
 * Writing a file so that a reader (Exim reads the filter with one fstat and one
 * fread) sees either the old or the new content, never a mix, and a failure
 * leaves the old file and no temp file behind.
 *
 * Steps (docs/exim-dialect.md, "Writing the file"): create a
 * temp file in the target's own directory (rename must not cross file systems;
 * O_EXCL and a 96-bit random name so servers sharing the mount never collide),
 * write, fchmod, fsync, close with its error checked (AFS
 * reports quota errors at close), rename over the target, fsync the directory
 * where the file system allows it. Split into prepare/commit so a caller can get
 * two files fully written before renaming either (script and filter together).
 *
 * Must not know: what the files contain, names, locks.
 */
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { createdBeforeFailure, createFile, isSkipped, type FileOps } from './file-ops.js';
import { toStorageError } from './errors.js';
import { currentOwner, machineTag, processGone } from './process-owner.js';

export interface WriteOptions {
  readonly mode: number;
}

/** A fully written and closed temp file, waiting to be renamed into place. */
export interface PreparedWrite {
  readonly target: string;
  readonly tempPath: string;
  /** Renames the temp file over the target, then makes that durable (syncDir). */
  commit(): Promise<void>;
  /**
   * commit() in two parts, for callers that chain renames (filter-guard.ts
   * commitAll): the rename alone, its one FileOps call made at once; on failure
   * the temp file is removed and the failure thrown, but for a rename not made
   * (SkippedCall, thrown as it is: then abort()) ...
   */
  rename(): Promise<void>;
  /** ... and the directory's fsync, once the rename is made; never fails (see commit). */
  syncDir(): Promise<void>;
  /** Removes the temp file; never throws. */
  abort(): Promise<void>;
}

/**
 * Marker in temp file names, so leftovers of a crashed server can be recognised:
 * every temp name starts with '.' and contains this (file-store.ts relies on both).
 */
export const TEMP_MARKER = '.tsieved-tmp.';

/** Bytes of the target's name kept in a temp name: enough to tell what it was for. */
export const TEMP_STEM_MAX_BYTES = 64;
/** The writer part: machine tag (8 hex), pid and start time (base 36, at most 8 and 13). */
const WRITER_MAX_BYTES = 8 + 1 + 8 + 1 + 13 + 1;
/** Longest temp file name: '.' + stem + marker + writer + 24 hex digits (134 bytes). */
export const TEMP_NAME_MAX_BYTES = 1 + TEMP_STEM_MAX_BYTES + TEMP_MARKER.length + WRITER_MAX_BYTES + 24;
const WRITER = /\.tsieved-tmp\.([0-9a-f]{8})-([0-9a-z]{1,8})-([0-9a-z]{0,13})-[0-9a-f]{24}$/;

/** The first `max` UTF-8 bytes of `s`, cut only between characters. */
function utf8Prefix(s: string, max: number): string {
  if (Buffer.byteLength(s, 'utf8') <= max) return s;
  let out = '';
  let bytes = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (bytes + n > max) break;
    out += ch;
    bytes += n;
  }
  return out;
}

/**
 * `.<start of the target's name>.tsieved-tmp.<machine>-<pid>-<start>-<random>`.
 * Its length is bounded (TEMP_NAME_MAX_BYTES) whatever the target's name, host
 * name or pid, so every target whose own name fits a 255-byte component has a temp
 * name that fits too. The random part alone keeps writers apart (together with
 * O_EXCL); the writer part lets the next open remove the leftovers of a writer
 * that is gone at once, instead of after an hour (`tempWriterGone`).
 */
export function tempPathFor(target: string): string {
  const stem = utf8Prefix(basename(target), TEMP_STEM_MAX_BYTES);
  const rand = randomBytes(12).toString('hex');
  const me = currentOwner();
  const start = me.start === '' ? '' : BigInt(me.start).toString(36);
  return join(dirname(target), `.${stem}${TEMP_MARKER}${machineTag(me)}-${me.pid.toString(36)}-${start}-${rand}`);
}

/** True when a temp file name records a writer that ran on this machine and is certainly gone. */
export function tempWriterGone(name: string): boolean {
  const m = WRITER.exec(name);
  if (!m) return false;
  const start = m[3] === '' ? '' : parseInt36(m[3]);
  return processGone(m[1], parseInt(m[2], 36), start);
}

function parseInt36(digits: string): string {
  let n = 0n;
  for (const d of digits) n = n * 36n + BigInt(parseInt(d, 36));
  return n.toString();
}

export async function prepareWrite(
  ops: FileOps,
  target: string,
  data: Uint8Array,
  options: WriteOptions,
): Promise<PreparedWrite> {
  const tempPath = tempPathFor(target);
  const removeTemp = async (): Promise<void> => {
    await ops.unlink(tempPath).catch(() => undefined);
  };
  try {
    // 0600 until the content is complete, then the wanted mode.
    await createFile(ops, tempPath, data, { mode: options.mode, sync: true });
  } catch (err) {
    if (!createdBeforeFailure(err)) throw toStorageError(err, `cannot create a temporary file beside ${target}`);
    // The descriptor is closed, whatever failed.
    await removeTemp();
    throw toStorageError(err, `cannot write ${target}`);
  }
  // Durability of the rename; the change has happened, so a directory that cannot
  // be synced is not reported as a failure of the write. The store's operations log
  // such a failure (file-ops.ts reportingDirSyncFailures).
  const syncDir = (): Promise<void> => ops.syncDir(dirname(target)).catch(() => undefined);
  const rename = async (): Promise<void> => {
    try {
      await ops.rename(tempPath, target);
    } catch (err) {
      // Not made: as a step that was never started (inSequence), the caller aborts it.
      if (isSkipped(err)) throw err;
      await removeTemp();
      throw toStorageError(err, `cannot rename into ${target}`);
    }
  };
  return {
    target,
    tempPath,
    rename,
    syncDir,
    async commit() {
      const renamed = rename();
      // Over ordered FileOps the directory's fsync goes out with the rename (it runs
      // after it; after a failed rename it does no harm); otherwise once it is done.
      const synced = ops.ordered ? syncDir() : undefined;
      await renamed;
      await (synced ?? syncDir());
    },
    abort: removeTemp,
  };
}

/**
 * Several prepareWrite()s at once (their calls go out together over a file broker),
 * in the order given; when any fails, the others' temp files are removed and the
 * first failure is thrown.
 */
export async function prepareAll(prepares: readonly (() => Promise<PreparedWrite>)[]): Promise<PreparedWrite[]> {
  const results = await Promise.allSettled(prepares.map((prepare) => prepare()));
  const failed = results.find((r) => r.status === 'rejected');
  if (failed === undefined) return results.map((r) => (r as PromiseFulfilledResult<PreparedWrite>).value);
  await Promise.all(results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.abort()] : [])));
  throw failed.reason;
}

/** prepare + commit in one step. */
export async function atomicWrite(
  ops: FileOps,
  target: string,
  data: Uint8Array,
  options: WriteOptions,
): Promise<void> {
  const prepared = await prepareWrite(ops, target, data, options);
  await prepared.commit();
}
