/**
 * Files beside the filter that are not the filter: the backup copy of a foreign
 * filter file before anything replaces it, and temp files a crashed server left.
 *
 * Must not know: scripts, the lock, what the filter contains.
 */
import { basename, dirname, join } from 'node:path';
import { TEMP_MARKER, tempWriterGone } from './atomic-write.js';
import { errnoCode, toStorageError } from './errors.js';
import { createdBeforeFailure, createFile, type FileOps } from './file-ops.js';
import { StorageError } from './types.js';

export const BACKUP_MARKER = '.tsieved-backup-';
const TEMP_MAX_AGE_MS = 60 * 60 * 1000;

/**
 * Copies `bytes` beside `filterPath` as `<filter>.tsieved-backup-<UTC time>[-N]`,
 * under a name that did not exist (O_EXCL): no backup is ever overwritten.
 */
export async function writeBackup(ops: FileOps, filterPath: string, bytes: Buffer): Promise<string> {
  const stamp = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const base = join(dirname(filterPath), basename(filterPath) + BACKUP_MARKER + stamp);
  for (let n = 1; n < 1000; n++) {
    const path = n === 1 ? base : `${base}-${n}`;
    try {
      await createFile(ops, path, bytes, { sync: true });
    } catch (err) {
      const created = createdBeforeFailure(err);
      if (!created && errnoCode(err) === 'EEXIST') continue;
      if (created) await ops.unlink(path).catch(() => undefined);
      throw toStorageError(err, `cannot back up ${filterPath}`);
    }
    return path;
  }
  throw new StorageError('io', `cannot find a free backup name for ${filterPath}`);
}

/**
 * Temp files left by a crashed server (ours carry TEMP_MARKER): at once when their
 * writer ran on this machine and is gone, otherwise once older than an hour (a
 * writer on another host may still be working); best effort. Looks through the
 * listings of directories the caller has made (undefined: it could not list one).
 */
export async function removeStaleTemps(
  ops: FileOps,
  listings: readonly (readonly [dir: string, entries: readonly string[] | undefined])[],
): Promise<void> {
  for (const [dir, entries] of listings) {
    for (const e of entries ?? []) {
      if (!e.startsWith('.') || !e.includes(TEMP_MARKER)) continue;
      const p = join(dir, e);
      try {
        const st = await ops.lstat(p);
        if (st.isFile() && (tempWriterGone(e) || Date.now() - st.mtimeMs > TEMP_MAX_AGE_MS)) await ops.unlink(p);
      } catch {
        /* someone else's, or gone */
      }
    }
  }
}
