/**
 * backend = "pam": each login runs one PAM transaction in its own process, forked
 * by the long-lived PAM helper (helper/tsieved-pam-helper.c, started by
 * pam-spawner.ts) for a connection to its socket. It authenticates, checks the account,
 * establishes credentials and opens the session, reports the account PAM settled
 * on, then forks the session's file broker as the user with the command this side
 * sends back (token_command expanded for that account); it closes the session and
 * deletes the credentials when the broker exits. The server only awaits its socket:
 * a wrong password's fail delay or a hung module costs one session process, never
 * the event loop or the libuv thread pool
 * (docs/pam.md).
 *
 * Credentials go to the helper over that connection, never argv or environment
 * (with the broker's command when it is the same for every account);
 * once the broker runs, the connection is the broker's stdin and stdout. The
 * broker is returned as `attached`; the storage launcher adopts it.
 *
 * Must not know: storage (the broker command is given), the wire protocol.
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../log/logger.js';
import { PamSpawner } from './pam-spawner.js';
import type { AttachedBroker, AuthBackend, AuthContext, AuthOutcome, Identity } from './types.js';

const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Where `npm run build` puts the helper (helper/build.sh). */
export function defaultPamHelperPath(): string {
  return join(PACKAGE_ROOT, 'helper/build/tsieved-pam-helper');
}

/** The helper's limits; longer input is refused before any PAM call. */
const MAX_USER_BYTES = 256;
const MAX_PASSWORD_BYTES = 1024;
const spawners = new Map<string, PamSpawner>();

export interface PamBackendOptions {
  /** PAM service name ([auth] pam_service), i.e. the file in /etc/pam.d. */
  readonly service: string;
  /** [auth] pam_helper; default defaultPamHelperPath(). */
  readonly helperPath?: string;
  /**
   * argv of the file broker the helper execs as the account PAM settled on
   * (token_command expanded for it, then the broker); empty: the helper's session
   * child serves the broker protocol itself, without an exec. Throwing refuses the login.
   */
  readonly brokerCommand: (identity: Identity) => readonly string[];
  /**
   * The broker's argv when it is the same for every account (no token_command: the
   * empty one). It is then sent with the credentials, and the helper finds it
   * waiting once the session is open: one round trip less per login.
   */
  readonly fixedBrokerCommand?: readonly string[];
  readonly log: Logger;
  /** A PAM transaction (including a module's fail delay) that takes longer is abandoned. */
  readonly timeoutMs?: number;
}

/** Why the pam backend cannot work with this helper, or undefined when it can. */
export function pamProblem(helperPath: string = defaultPamHelperPath()): string | undefined {
  try {
    if (!statSync(helperPath).isFile()) return `PAM helper ${helperPath} is not a file`;
    accessSync(helperPath, constants.X_OK);
  } catch {
    return (
      `[auth] backend = "pam" needs the PAM helper at ${helperPath}, which is missing or not executable. ` +
      'Build it with `tsieved build-helper` (or `npm run build` in a clone; either needs a C compiler and libpam0g-dev) or set [auth] pam_helper.'
    );
  }
  if (process.getuid?.() !== 0) {
    return (
      '[auth] backend = "pam" needs root: the helper reads the shadow database through pam_unix, ' +
      'creates credentials and starts each session as its user.'
    );
  }
  return undefined;
}

export function pamAvailable(helperPath?: string): boolean {
  return pamProblem(helperPath) === undefined;
}

export class PamUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PamUnavailableError';
  }
}

/** For main.ts at start-up: throws PamUnavailableError with a clear message. */
export function assertPamUsable(helperPath?: string): void {
  const problem = pamProblem(helperPath);
  if (problem) throw new PamUnavailableError(problem);
}

type Refusal = { kind: 'rejected' | 'expired' | 'newauthtok' | 'tempfail'; reason: string };

function refusal(fields: readonly string[]): Refusal | undefined {
  const [kind, reason] = fields;
  if (kind === 'rejected' || kind === 'expired' || kind === 'newauthtok' || kind === 'tempfail')
    return { kind, reason: reason ?? kind };
  return undefined;
}

const count = (s: string | undefined): number => (s !== undefined && /^\d+$/.test(s) ? Number(s) : NaN);

export class PamBackend implements AuthBackend {
  readonly name = 'pam';
  private readonly helperPath: string;
  private readonly timeoutMs: number;

  private readonly spawner: PamSpawner;
  private readonly spawnerKey: string;

  constructor(private readonly options: PamBackendOptions) {
    this.helperPath = options.helperPath ?? defaultPamHelperPath();
    this.timeoutMs = options.timeoutMs ?? 60_000;
    // One per helper program and service, shared by the backends a reload makes.
    this.spawnerKey = `${this.helperPath}\0${options.service}`;
    let spawner = spawners.get(this.spawnerKey);
    if (!spawner)
      spawners.set(
        this.spawnerKey,
        (spawner = new PamSpawner(this.helperPath, options.log.child({ component: 'pam-helper' }), options.service)),
      );
    this.spawner = spawner;
  }

  async verifyPassword(user: string, password: string, context: AuthContext): Promise<AuthOutcome> {
    // The helper splits on NUL: a NUL inside either would let "pw\0junk" log in as "pw".
    if (user.includes('\0') || password.includes('\0'))
      return { kind: 'rejected', reason: 'NUL in user name or password', class: 'malformed' };
    if (user === '' || Buffer.byteLength(user) > MAX_USER_BYTES)
      return { kind: 'rejected', reason: 'bad user name length', class: 'malformed' };
    if (password === '' || Buffer.byteLength(password) > MAX_PASSWORD_BYTES) {
      return { kind: 'rejected', reason: 'empty or over-long password', class: 'malformed' };
    }
    const rhost = context.remoteAddress.replace(/\0/g, '').slice(0, 128);
    const log = this.options.log.child({ user, rhost });

    let socket: Socket;
    try {
      socket = await this.spawner.connect();
    } catch (err) {
      return { kind: 'unavailable', reason: `cannot start the PAM helper: ${(err as Error).message}` };
    }
    socket.on('error', () => undefined);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    const field = (f: string) => Buffer.from(`${f}\0`, 'utf8');
    const commandBytes = (argv: readonly string[]) => Buffer.concat([...argv.map(field), Buffer.from([0])]);
    const fixed = this.options.fixedBrokerCommand;
    socket.write(
      Buffer.concat([
        field(this.options.service),
        field(rhost),
        field(user),
        field(password),
        ...(fixed ? [commandBytes(fixed)] : []),
      ]),
    );

    // What the helper says before the connection becomes the broker's: NUL-terminated
    // fields (helper PID, then ok USER UID GID HOME or a refusal, then broker PID).
    let bytes = Buffer.alloc(0);
    let wake: (() => void) | undefined;
    let ended = false;
    const onData = (c: Buffer): void => {
      bytes = Buffer.concat([bytes, c]);
      wake?.();
    };
    socket.on('data', onData);
    void closed.then(() => {
      ended = true;
      wake?.();
    });
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const deadline = new Promise<void>((r) => {
      timer = setTimeout(() => {
        timedOut = true;
        r();
      }, this.timeoutMs);
    });
    const fields = (): string[] => bytes.toString('utf8').split('\0').slice(0, -1);
    /** Waits until `n` fields are in, the connection ends or the time is up. */
    const until = async (n: number): Promise<void> => {
      while (fields().length < n && !ended && !timedOut)
        await Promise.race([new Promise<void>((r) => (wake = r)), deadline]);
    };
    let helperPid: number | undefined;
    const helperAlive = (): boolean => helperPid !== undefined && processAlive(helperPid);
    const abandon = (why: string): AuthOutcome => {
      // The session process may have opened a PAM session: closing the connection
      // ends it (EOF on its input, or on the broker's), and SIGTERM lets it close the
      // PAM session; SIGKILL if it is stuck.
      socket.destroy();
      if (helperAlive()) {
        const pid = helperPid!;
        process.kill(pid, 'SIGTERM');
        setTimeout(() => helperAlive() && process.kill(pid, 'SIGKILL'), 5_000).unref();
      }
      return { kind: 'unavailable', reason: why };
    };

    try {
      await until(4); // helper PID, and the status's kind and first field
      const f = fields();
      if (f[0] === 'helper' && Number.isSafeInteger(count(f[1]))) helperPid = count(f[1]);
      if (timedOut) {
        log.error({ timeoutMs: this.timeoutMs }, 'PAM helper did not answer in time');
        return abandon('PAM transaction timed out');
      }
      if (helperPid === undefined) return abandon('malformed answer from the PAM helper');
      const status = f.slice(2);
      if (status[0] !== 'ok') {
        const refused = refusal(status);
        socket.destroy();
        if (refused === undefined) return { kind: 'unavailable', reason: 'PAM helper ended without a status' };
        if (refused.kind === 'tempfail') return { kind: 'unavailable', reason: refused.reason };
        // expired and newauthtok are rejections to the client; the reason tells the log.
        // PAM answers an unknown user like a wrong password (pam_unix does on purpose).
        return {
          kind: 'rejected',
          reason: `${refused.kind}: ${refused.reason}`,
          class: refused.kind === 'rejected' ? 'bad-password' : 'policy',
        };
      }
      await until(7);
      if (timedOut) return abandon('PAM transaction timed out');
      const [, name, uid, gid, home] = fields().slice(2) as [string, string, string, string, string];
      if (!name || !Number.isSafeInteger(count(uid)) || !Number.isSafeInteger(count(gid)) || home === undefined) {
        return abandon('malformed status from the PAM helper');
      }
      const identity: Identity = { user: name, uid: count(uid), gid: count(gid), home, fields: {} };
      if (!fixed) {
        let command: readonly string[];
        try {
          command = this.options.brokerCommand(identity);
        } catch (err) {
          log.error({ err: (err as Error).message, pamUser: name }, 'no broker command for this account');
          return abandon(`no broker command for ${name}: ${(err as Error).message}`);
        }
        socket.write(commandBytes(command));
      }

      // "ok" comes before the session process forks the broker, whose pid follows:
      // the store opens meanwhile, its first requests waiting in the connection.
      let brokerPid = -1;
      const helper = helperPid;
      const started = until(9).then(() => {
        const after = fields().slice(7);
        const pid = after[0] === 'broker' ? count(after[1]) : NaN;
        const end = endOfFields(bytes, 9);
        if (!Number.isSafeInteger(pid) || end < 0) {
          const why = refusal(after)?.reason ?? 'the PAM helper did not start the broker';
          log.error({ reason: why }, 'file broker not started');
          throw new Error(why);
        }
        brokerPid = pid;
        // From here on the connection is the broker's: what came after its pid is
        // its answers, handed back to the stream for the broker's reader.
        socket.pause();
        socket.removeListener('data', onData);
        if (end < bytes.length) socket.unshift(bytes.subarray(end));
        log.info({ event: 'pam-session', brokerPid, helperPid: helper, pamUser: name }, 'PAM session opened');
      });
      // Whoever adopts the broker learns of a failure; nobody may be left to (a login
      // refused for too many sessions terminates it unadopted).
      started.catch(() => undefined);
      let killTimer: NodeJS.Timeout | undefined;
      const attached: AttachedBroker = {
        get pid() {
          return brokerPid;
        },
        input: socket,
        output: socket,
        started,
        // The session process closes the PAM session once the broker has ended.
        exited: closed.then(() => whenGone(helper)).then(() => clearTimeout(killTimer)),
        // The session process passes SIGTERM to the broker (SIGKILL after 5 s), then
        // closes the PAM session; only a session process that is itself stuck is
        // killed, later.
        terminate() {
          socket.end();
          if (!processAlive(helper)) return;
          process.kill(helper, 'SIGTERM');
          killTimer ??= setTimeout(() => processAlive(helper) && process.kill(helper, 'SIGKILL'), 15_000).unref();
        },
      };
      return { kind: 'ok', identity, attached };
    } finally {
      clearTimeout(timer);
    }
  }

  /** The long-lived helper that forks the session processes (tests). */
  get spawnerPid(): number | undefined {
    return this.spawner.pid;
  }

  async close(): Promise<void> {
    spawners.delete(this.spawnerKey);
    await this.spawner.close();
  }
}

/** The offset just past the `n`th NUL in `buf`, or -1 when fewer are in. */
function endOfFields(buf: Buffer, n: number): number {
  let at = -1;
  for (let i = 0; i < n; i++) {
    at = buf.indexOf(0, at + 1);
    if (at < 0) return -1;
  }
  return at + 1;
}

/** Is the process there and not a zombie? (The helper reaps its session processes.) */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Resolves once `pid` has ended (checked every 50 ms, for at most a minute). */
async function whenGone(pid: number): Promise<void> {
  for (let i = 0; i < 1200 && processAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
}
