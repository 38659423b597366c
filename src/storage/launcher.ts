/**
 * Turning a verified identity into that user's ScriptStore. The in-process launcher
 * (isolation = "none") resolves the path templates and opens a FileStore in this
 * process; when the server runs as root, files it creates are chowned to the
 * identity's uid/gid (Exim defers a filter not owned by the user). A launcher that
 * runs the store in a per-session worker process lives in ./worker/.
 *
 * Must not know: auth backends, the wire protocol, sessions.
 */
import type { AttachedWorker, Identity } from '../auth/types.js';
import type { Logger } from '../log/logger.js';
import type { ScriptStore } from './types.js';
import { FileStore } from './file-store.js';
import { resolveUserPaths, parseFilterMode, type StorageConfig } from './paths.js';

export interface StoreLauncher {
  open(identity: Identity, attached?: AttachedWorker): Promise<ScriptStore>;
  close?(): Promise<void>;
}

/** The FileStore options for one identity, shared by every launcher (and workers). */
export function fileStoreOptionsFor(storage: StorageConfig, identity: Identity, log: Logger) {
  const { scriptsDir, filterPath } = resolveUserPaths(storage, identity);
  const home = identity.home?.replace(/\/+$/, '');
  return {
    scriptsDir,
    filterPath,
    limits: {
      maxScripts: storage.max_scripts,
      maxScriptBytes: storage.max_script_bytes,
      maxTotalBytes: storage.max_total_bytes,
    },
    filterMode: parseFilterMode(storage.filter_mode),
    owner: identity.uid !== undefined && identity.gid !== undefined ? { uid: identity.uid, gid: identity.gid } : undefined,
    // Directories are created below the user's home only, never above it.
    createBelow: home && scriptsDir.startsWith(home + '/') ? home : undefined,
    log: log.child({ user: identity.user }),
  };
}

export class InProcessLauncher implements StoreLauncher {
  constructor(
    private readonly storage: StorageConfig,
    private readonly log: Logger,
  ) {}

  async open(identity: Identity, attached?: AttachedWorker): Promise<ScriptStore> {
    let store: FileStore;
    try {
      const options = fileStoreOptionsFor(this.storage, identity, this.log);
      if (options.owner === undefined && typeof process.getuid === 'function' && process.getuid() === 0) {
        // Exim's check_owner (on by default with check_local_user) defers a filter
        // that is not owned by the user.
        options.log.warn('running as root without a uid/gid for this user: files will be owned by root');
      }
      store = await FileStore.open(options);
    } catch (err) {
      attached?.terminate();
      throw err;
    }
    if (!attached) return store;
    // A worker handed over by the login (PAM helper) is not needed in-process, but
    // ending it ends the PAM session, so it lives as long as the store.
    return {
      list: () => store.list(),
      get: (n) => store.get(n),
      checkSpace: (n, s) => store.checkSpace(n, s),
      put: (n, c) => store.put(n, c),
      delete: (n) => store.delete(n),
      rename: (a, b) => store.rename(a, b),
      setActive: (n) => store.setActive(n),
      async close() {
        await store.close();
        attached.terminate();
        await attached.exited;
      },
    };
  }
}
