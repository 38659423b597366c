/**
 * Opening a user's store for the migration.
 *
 * Real run: as root, the store of any user but uid 0 reads and writes through a
 * file broker running as that user (storage/broker/), never in this process:
 * opening it reads the filter path, and root would follow a link the user planted
 * there to any file.
 *
 * Dry run: the store is not opened (opening creates directories and backups): it
 * is read here, through file operations that cannot write. As root for another
 * user it must not follow that user's symlinks either: the store's directory is
 * opened without following a link below the home and read through that open
 * directory, and files are read as safe-fs.ts allows.
 *
 * Must not know: the old layouts, the decisions, the report.
 */
import { access } from 'node:fs/promises';
import type { Identity } from '../auth/types.js';
import { FileStore, type FileStoreOptions } from '../storage/file-store.js';
import type { BrokerLauncher } from '../storage/broker/launcher.js';
import { StorageError, withClose, type ScriptStore } from '../storage/types.js';
import { dryRunFileOps, errorText, openDirBelow, type ReadPolicy, type SafeDir } from './safe-fs.js';

export async function openRealStore(
  identity: Identity,
  isolate: boolean,
  launcher: Pick<BrokerLauncher, 'openFiles'> | undefined,
  options: FileStoreOptions,
): Promise<ScriptStore> {
  if (!isolate) return FileStore.open(options);
  // Root never touches the user's files itself: the broker runs as the user, so the
  // user's symlinks lead only where the user could go anyway.
  if (!launcher) throw new StorageError('permission', 'running as root without a file broker launcher');
  const files = launcher.openFiles(identity);
  let store: FileStore;
  try {
    store = await FileStore.open({ ...options, fileOps: files.ops });
    if (!files.ops.alive) throw new StorageError('trylater', 'storage unavailable: the file broker ended');
  } catch (err) {
    await files.close();
    throw err;
  }
  return withClose(store, async () => {
    await store.close();
    await files.close();
  });
}

/** A read-only store, or undefined when the user has no scripts directory yet. */
export async function openDryRunStore(
  home: string,
  isolate: boolean,
  options: FileStoreOptions,
  policy: ReadPolicy,
): Promise<ScriptStore | undefined> {
  if (!isolate) {
    try {
      await access(options.scriptsDir);
    } catch {
      return undefined;
    }
    // Constructing does not touch the disk; list/get only read.
    return new FileStore({ ...options, fileOps: dryRunFileOps(policy) });
  }
  let dir: SafeDir;
  try {
    dir = await openDirBelow(home, options.scriptsDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    const path = (err as { path?: string }).path ?? options.scriptsDir;
    throw new Error(`${path} ${errorText(err)} (a dry run as root reads the store itself and does not follow links)`, {
      cause: err,
    });
  }
  const store = new FileStore({ ...options, scriptsDir: dir.via, fileOps: dryRunFileOps(policy, dir) });
  return withClose(store, () => dir.close());
}
