/**
 * Turning a verified identity into that user's ScriptStore. The in-process launcher
 * (isolation = "none") resolves the path templates and opens a FileStore in this
 * process, with this process's rights, its system calls made by file-I/O threads. The launcher whose store makes its system
 * calls through a per-session file broker running as the user lives in ./broker/.
 *
 * In-process storage never acts for another uid as root: every open, read and
 * rename in the user's home would follow the user's own symlinks with root's
 * rights (a `~/sieve` linked to another user's directory, a `.forward` linked to
 * /etc/shadow). Running as root, `isolation = "process"` is required for them.
 *
 * Must not know: auth backends, the wire protocol, sessions.
 */
import type { AttachedBroker, Identity } from '../identity.js';
import type { Logger } from '../log/logger.js';
import { StorageError, withClose, type ScriptStore } from './types.js';
import { FileStore } from './file-store.js';
import { FsThreadPool } from './thread-ops.js';
import { resolveUserPaths, parseFilterMode, type StorageConfig } from './paths.js';

export interface StoreLauncher {
  open(identity: Identity, attached?: AttachedBroker): Promise<ScriptStore>;
  close?(): Promise<void>;
}

/** The FileStore options for one identity, shared by every launcher. */
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
    // Directories are created below the user's home only, never above it.
    createBelow: home && scriptsDir.startsWith(home + '/') ? home : undefined,
    log: log.child({ user: identity.user }),
  };
}

export function runningAsRoot(): boolean {
  return typeof process.geteuid === 'function' && process.geteuid() === 0;
}

/** Why this process must not open the identity's store itself, if it must not. */
export function inProcessRefusal(identity: Identity): string | undefined {
  if (!runningAsRoot() || identity.uid === 0) return undefined;
  const whose = identity.uid === undefined ? 'a user without a uid' : `uid ${identity.uid}`;
  return `isolation = "none" while running as root would handle the files of ${whose} with root's rights (following that user's symlinks); set [storage] isolation = "process", or run tsieved as the mail user`;
}

/**
 * Threads that make in-process stores' system calls (./thread-ops.ts), one set per
 * process whatever the reloads. Two at most, the second started only when the first
 * is held up (a slow or hung file system): each is a V8 isolate of about 8 MiB.
 */
const IN_PROCESS_IO_THREADS = 2;
let ioThreads: FsThreadPool | undefined;

export class InProcessLauncher implements StoreLauncher {
  constructor(
    private readonly storage: StorageConfig,
    private readonly log: Logger,
  ) {}

  async open(identity: Identity, attached?: AttachedBroker): Promise<ScriptStore> {
    let store: FileStore;
    try {
      const refusal = inProcessRefusal(identity);
      if (refusal !== undefined) {
        this.log.error(
          { event: 'isolation-required', user: identity.user, uid: identity.uid },
          `misconfigured: ${refusal}`,
        );
        throw new StorageError('misconfigured', refusal);
      }
      ioThreads ??= new FsThreadPool({ threads: IN_PROCESS_IO_THREADS, log: this.log });
      store = await FileStore.open({
        ...fileStoreOptionsFor(this.storage, identity, this.log),
        fileOps: ioThreads.fileOps(),
      });
    } catch (err) {
      attached?.terminate();
      throw err;
    }
    if (!attached) return store;
    // A broker handed over by the login (PAM helper) is not needed in-process, but
    // ending it ends the PAM session, so it lives as long as the store.
    return withClose(store, async () => {
      await store.close();
      attached.terminate();
      await attached.exited;
    });
  }
}
