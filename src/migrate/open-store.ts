/**
 * Opening a user's store for the migration.
 *
 * Real run: as root, the store of any user but uid 0 reads and writes through a
 * file broker running as that user (storage/broker/), never in this process:
 * opening it reads the filter path, and root would follow a link the user planted
 * there to any file.
 *
 * Dry run: nothing on disk may change, yet the report must be the real run's, and
 * a real open repairs what an interrupted change left (storage/filter-guard.ts
 * reconcile) before the migration decides anything. So the store is opened over
 * file operations that cannot write to disk (safe-fs.ts) with an overlay in memory
 * on top (shadow-ops.ts): the store's own open runs its checks and repairs there,
 * and the dry run sees the store as the real run will. As root for another user it
 * must not follow that user's symlinks either: the store's directory is opened
 * without following a link below the home and read through that open directory,
 * and files are read as safe-fs.ts allows.
 *
 * Must not know: the old layouts, the decisions, the report.
 */
import { access, stat } from 'node:fs/promises';
import type { Identity } from '../auth/types.js';
import { FileStore, type FileStoreOptions } from '../storage/file-store.js';
import type { BrokerLauncher } from '../storage/broker/launcher.js';
import { silentLogger } from '../log/logger.js';
import type { FileOps, FileStat } from '../storage/file-ops.js';
import { StorageError, withClose, type ScriptStore } from '../storage/types.js';
import { dryRunFileOps, errorText, openDirBelow, type ReadPolicy, type SafeDir } from './safe-fs.js';
import { ShadowOps } from './shadow-ops.js';

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

/** A dry run's store, opened over an overlay in memory. */
export interface DryRunStore {
  readonly store: ScriptStore;
  /** What opening it changed (in memory only). */
  readonly shadow: ShadowOps;
  /** The script recorded active before the open's checks ran. */
  readonly activeBefore: string | undefined;
}

/** The dry run's store, or undefined when the user has no scripts directory yet. */
export async function openDryRunStore(
  home: string,
  isolate: boolean,
  options: FileStoreOptions,
  policy: ReadPolicy,
): Promise<DryRunStore | undefined> {
  if (!isolate) {
    try {
      await access(options.scriptsDir);
    } catch {
      return undefined;
    }
    return openOver(dryRunFileOps(policy), options);
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
  try {
    const opened = await openOver(throughOpenDir(dryRunFileOps(policy, dir), dir), {
      ...options,
      scriptsDir: dir.via,
    });
    return { ...opened, store: withClose(opened.store, () => dir.close()) };
  } catch (err) {
    await dir.close();
    throw err;
  }
}

/**
 * The store's directory itself is `dir.via`, a link in /proc naming the directory
 * that was opened: its stat is that directory's (the open checks it is one), where
 * the dry run's lstat would see the link.
 */
function throughOpenDir(ops: FileOps, dir: SafeDir): FileOps {
  const own = (path: string, other: (p: string) => Promise<FileStat>): Promise<FileStat> =>
    path === dir.via ? stat(path) : other(path);
  return { ...ops, stat: (p) => own(p, (q) => ops.stat(q)), lstat: (p) => own(p, (q) => ops.lstat(q)) };
}

async function openOver(disk: FileOps, options: FileStoreOptions): Promise<DryRunStore> {
  // Constructing does not touch the disk; list only reads.
  const before = await new FileStore({ ...options, fileOps: disk }).list();
  const shadow = new ShadowOps(disk);
  // Its log would tell of repairs that are not made: silent.
  const store = await FileStore.open({ ...options, fileOps: shadow, log: silentLogger() });
  return { store, shadow, activeBefore: before.find((s) => s.active)?.name };
}
