/**
 * isolation = "process": every session's storage runs in its own worker process
 * (worker-main.ts) as the session's user. The launcher either adopts the worker the
 * PAM helper started after pam_setcred (it holds the user's Kerberos/AFS
 * credentials), or spawns one itself with the identity's uid/gid, optionally through
 * `storage.token_command` (e.g. k5start with a per-user keytab) so that userdb users
 * get AFS tokens too. Either way the worker gets its configuration as its first
 * message over the pipe, never through argv or the environment.
 *
 * Must not know: auth backends, PAM, the wire protocol.
 */
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AttachedWorker, Identity } from '../../auth/types.js';
import type { Logger } from '../../log/logger.js';
import type { StoreLauncher } from '../launcher.js';
import { expandTemplate, type StorageConfig } from '../paths.js';
import { StorageError, type ScriptStore } from '../types.js';
import { RemoteStore } from './remote-store.js';
import type { SieveProfile } from '../../sieve/index.js';
import { relayChildLog } from '../../log/relay.js';
import { processIsolationProblem } from './privileges.js';

/** The package root, from src/storage/worker or dist/storage/worker alike. */
const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * The command that runs a worker: this Node binary and the compiled entry point
 * (dist/, as `npm run build` makes it; tests running from src/ use it too).
 */
export function workerCommand(): string[] {
  return [process.execPath, join(PACKAGE_ROOT, 'dist/storage/worker/worker-main.js')];
}

export interface ProcessLauncherOptions {
  readonly storage: StorageConfig;
  readonly log: Logger;
  /** Log level inside workers; default: the launcher logger's level. */
  readonly logLevel?: string;
  /** Default: workerCommand(). */
  readonly workerCommand?: readonly string[];
  readonly callTimeoutMs?: number;
  /**
   * Nice value added to workers (0-19, default 10), so that many workers starting
   * or validating at once cannot starve the server's event loop, which serves every
   * session. Applied with nice(1) after the uid switch, so it needs no privilege.
   */
  readonly workerNice?: number;
  /** Lets each worker validate its session's scripts (RemoteStore.validate). */
  readonly sieveProfile?: SieveProfile;
}

const DEFAULT_WORKER_NICE = 10;

export class ProcessLauncher implements StoreLauncher {
  private readonly command: readonly string[];
  private readonly live = new Set<RemoteStore>();

  constructor(private readonly options: ProcessLauncherOptions) {
    this.command = options.workerCommand ?? workerCommand();
  }

  async open(identity: Identity, attached?: AttachedWorker): Promise<ScriptStore> {
    const log = this.options.log.child({ user: identity.user });
    const channel = attached ?? this.spawnWorker(identity, log);
    // Closing the store (LOGOUT, disconnect, idle) or the worker dying forgets it.
    const forget = (): void => {
      this.live.delete(store);
    };
    const store: RemoteStore = new RemoteStore(channel, {
      log,
      onClose: forget,
      ...(this.options.callTimeoutMs !== undefined ? { callTimeoutMs: this.options.callTimeoutMs } : {}),
    });
    try {
      await store.init({
        storage: this.options.storage,
        identity,
        logLevel: this.options.logLevel ?? this.options.log.level,
        ...(this.options.sieveProfile ? { sieve: this.options.sieveProfile } : {}),
      });
    } catch (err) {
      await store.close();
      throw err instanceof StorageError ? err : new StorageError('trylater', 'storage worker failed to start', err);
    }
    this.live.add(store);
    void channel.exited.then(forget);
    log.info({ event: 'storage-worker', workerPid: store.pid, adopted: attached !== undefined }, 'storage worker ready');
    return store;
  }

  /** Server shutdown: end every worker still running. */
  async close(): Promise<void> {
    await Promise.all([...this.live].map((s) => s.close()));
  }

  /** Number of workers currently open (for tests and metrics). */
  get openCount(): number {
    return this.live.size;
  }

  private spawnWorker(identity: Identity, log: Logger): AttachedWorker {
    // Root, or CAP_SETUID + CAP_SETGID (privileges.ts): workers run as the user.
    const canSwitch = processIsolationProblem() === undefined;
    const { uid, gid } = identity;
    let ids: { uid: number; gid: number } | undefined;
    if (canSwitch) {
      // A worker must never keep root: it would defeat the per-user permissions.
      if (uid === undefined || gid === undefined) {
        throw new StorageError('permission', `account ${identity.user} has no uid/gid; isolation = "process" needs them`);
      }
      if (uid === 0) throw new StorageError('permission', `refusing a root storage worker for ${identity.user}`);
      ids = { uid, gid };
    } else if (uid !== undefined && uid !== process.getuid?.()) {
      throw new StorageError('permission', 'starting a worker as another user needs root');
    }
    const wrapper = this.options.storage.token_command.map((part) => expandTemplate(part, identity));
    const nice = Math.min(19, Math.max(0, Math.trunc(this.options.workerNice ?? DEFAULT_WORKER_NICE)));
    const argv = [...(nice > 0 ? ['nice', '-n', String(nice)] : []), ...wrapper, ...this.command];
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      USER: identity.user,
      LOGNAME: identity.user,
      ...(identity.home ? { HOME: identity.home } : {}),
    };
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['pipe', 'pipe', 'pipe'],
      cwd: '/',
      env,
      // libuv drops supplementary groups when it sets the uid: right for virtual users.
      ...(ids ?? {}),
    });
    const exited = new Promise<void>((r) => {
      child.once('exit', () => r());
      child.once('error', (err) => {
        log.error({ err: err.message, command: argv[0] }, 'cannot start the storage worker');
        r();
      });
    });
    relayChildLog(child.stderr!, log);
    let killTimer: NodeJS.Timeout | undefined;
    void exited.then(() => clearTimeout(killTimer));
    return {
      pid: child.pid ?? -1,
      input: child.stdin!,
      output: child.stdout!,
      exited,
      terminate() {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        killTimer ??= setTimeout(() => child.kill('SIGKILL'), 2_000).unref();
      },
    };
  }
}
