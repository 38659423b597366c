/**
 * isolation = "process" (and every PAM login): a session's FileStore runs in the
 * server over BrokerFileOps, and its system calls run in a small C file broker
 * (helper/tsieved-broker.c) with the user's identity. The broker is either the one
 * the PAM helper started after pam_setcred (it holds the user's Kerberos/AFS
 * credentials), or one this launcher spawns with the identity's uid and gid (no
 * supplementary groups), through `storage.token_command` (e.g. k5start with a
 * per-user keytab) so that other users get AFS tokens too.
 *
 * Must not know: auth backends, PAM, the wire protocol.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AttachedBroker, Identity } from '../../identity.js';
import type { Logger } from '../../log/logger.js';
import { relayChildLog } from '../../log/relay.js';
import { FileStore } from '../file-store.js';
import { fileStoreOptionsFor, type StoreLauncher } from '../launcher.js';
import { expandTemplate, type StorageConfig } from '../paths.js';
import { StorageError, withClose, type ScriptStore } from '../types.js';
import { BrokerFileOps, type BrokerChannel } from './broker-ops.js';
import { processIsolationProblem } from './privileges.js';

/** The package root, from src/storage/broker or dist/storage/broker alike. */
const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Where `npm run build` puts the broker (helper/build.sh). */
export function defaultBrokerPath(): string {
  return join(PACKAGE_ROOT, 'helper/build/tsieved-broker');
}

/** Why the broker cannot be run, or undefined when it can. */
export function brokerProblem(path: string = defaultBrokerPath()): string | undefined {
  try {
    accessSync(path, constants.X_OK);
    return undefined;
  } catch {
    return `the file broker ${path} is missing or not executable; build it with \`tsieved build-helper\` (or \`npm run build\` in a clone; needs a C compiler)`;
  }
}

/**
 * The broker's argv for one identity: token_command with its placeholders expanded
 * (here, once, for spawned and PAM brokers alike), then the broker.
 */
export function brokerCommand(
  storage: StorageConfig,
  identity: Identity,
  brokerPath: string = defaultBrokerPath(),
): string[] {
  return [...storage.token_command.map((part) => expandTemplate(part, identity)), brokerPath];
}

/**
 * What the PAM helper's session child runs for one identity: nothing to exec (it
 * serves the broker protocol itself, built in, saving a program start per login)
 * unless token_command wraps the broker, which then has to be a program.
 */
export function pamBrokerCommand(
  storage: StorageConfig,
  identity: Identity,
  brokerPath: string = defaultBrokerPath(),
): string[] {
  return storage.token_command.length === 0 ? [] : brokerCommand(storage, identity, brokerPath);
}

export interface BrokerLauncherOptions {
  readonly storage: StorageConfig;
  readonly log: Logger;
  /** Default: defaultBrokerPath(). */
  readonly brokerPath?: string;
  /** Replaces the whole broker command (tests: a broker that hangs or lies). */
  readonly command?: readonly string[];
  readonly callTimeoutMs?: number;
}

/** A broker's FileOps and the way to end it. */
export interface OpenedFiles {
  readonly ops: BrokerFileOps;
  close(): Promise<void>;
}

export class BrokerLauncher implements StoreLauncher {
  private readonly live = new Set<OpenedFiles>();

  constructor(private readonly options: BrokerLauncherOptions) {}

  async open(identity: Identity, attached?: AttachedBroker): Promise<ScriptStore> {
    const files = this.openFiles(identity, attached);
    let store: FileStore;
    try {
      store = await FileStore.open({
        ...fileStoreOptionsFor(this.options.storage, identity, this.options.log),
        fileOps: files.ops,
      });
      // FileStore.open tolerates some failures (it logs them); a broker that is
      // already gone is not a session.
      if (!files.ops.alive) throw new StorageError('trylater', 'storage unavailable: the file broker ended');
    } catch (err) {
      await files.close();
      throw err instanceof StorageError ? err : new StorageError('trylater', 'the file broker failed', err);
    }
    this.options.log.info(
      { event: 'file-broker', user: identity.user, brokerPid: files.ops.pid, adopted: attached !== undefined },
      'file broker ready',
    );
    const pid = files.ops.pid;
    return {
      ...withClose(store, async () => {
        await store.close();
        await files.close();
      }),
      ...(pid > 0 ? { pid } : {}),
    };
  }

  /**
   * The broker's FileOps alone, for callers that build more than a FileStore on
   * them (migrate's marker of settled activation).
   */
  openFiles(identity: Identity, attached?: AttachedBroker): OpenedFiles {
    const log = this.options.log.child({ user: identity.user });
    const channel = attached ?? this.spawnBroker(identity, log);
    const ops = new BrokerFileOps(channel, {
      log,
      ...(this.options.callTimeoutMs !== undefined ? { callTimeoutMs: this.options.callTimeoutMs } : {}),
    });
    const files: OpenedFiles = {
      ops,
      close: async () => {
        this.live.delete(files);
        await ops.close();
      },
    };
    this.live.add(files);
    void channel.exited.then(() => this.live.delete(files));
    return files;
  }

  /** Server shutdown: end every broker still running. */
  async close(): Promise<void> {
    await Promise.all([...this.live].map((f) => f.close()));
  }

  /** Number of brokers currently open (for tests and metrics). */
  get openCount(): number {
    return this.live.size;
  }

  private spawnBroker(identity: Identity, log: Logger): BrokerChannel {
    // Root, or CAP_SETUID + CAP_SETGID (privileges.ts): brokers run as the user.
    const canSwitch = processIsolationProblem() === undefined;
    const { uid, gid } = identity;
    let ids: { uid: number; gid: number } | undefined;
    if (canSwitch) {
      // A broker must never keep root: it would defeat the per-user permissions.
      if (uid === undefined || gid === undefined) {
        throw new StorageError(
          'permission',
          `account ${identity.user} has no uid/gid; isolation = "process" needs them`,
        );
      }
      if (uid === 0) throw new StorageError('permission', `refusing a root file broker for ${identity.user}`);
      ids = { uid, gid };
    } else if (uid !== undefined && uid !== process.getuid?.()) {
      throw new StorageError('permission', 'starting a file broker as another user needs root');
    }
    const argv = this.options.command ?? brokerCommand(this.options.storage, identity, this.options.brokerPath);
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      USER: identity.user,
      LOGNAME: identity.user,
      ...(identity.home ? { HOME: identity.home } : {}),
    };
    const child = spawn(argv[0], argv.slice(1), {
      stdio: ['pipe', 'pipe', 'pipe'],
      cwd: '/',
      env,
      // libuv sets no supplementary groups when it sets the uid: right for virtual users.
      ...(ids ?? {}),
    });
    const exited = new Promise<void>((r) => {
      child.once('exit', () => r());
      child.once('error', (err) => {
        log.error({ err: err.message, command: argv[0] }, 'cannot start the file broker');
        r();
      });
    });
    relayChildLog(child.stderr, log, { textFrom: 'file-broker', textLevel: 'warn' });
    let killTimer: NodeJS.Timeout | undefined;
    void exited.then(() => clearTimeout(killTimer));
    return {
      pid: child.pid ?? -1,
      input: child.stdin,
      output: child.stdout,
      exited,
      terminate() {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        killTimer ??= setTimeout(() => child.kill('SIGKILL'), 2_000).unref();
      },
    };
  }
}
