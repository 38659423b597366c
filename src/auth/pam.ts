/**
 * backend = "pam": each login runs one PAM transaction in its own helper process
 * (helper/tsieved-pam-helper.c). The helper authenticates, checks the account,
 * establishes credentials and opens the session, then forks the per-session worker
 * as the user; it closes the session and deletes the credentials when the worker
 * exits. The server only awaits pipes: a wrong password's fail delay or a hung
 * module costs one helper process, never the event loop or the libuv thread pool
 * (reference/auth-and-grammar.md 1.3 and 1.4).
 *
 * Credentials go to the helper through a pipe (fd 3), never argv or environment.
 * The worker the helper started is returned as `attached`; the storage launcher
 * adopts it.
 *
 * Must not know: storage (the worker command is given), the wire protocol.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from '../log/logger.js';
import { relayChildLog } from '../log/relay.js';
import type { AttachedWorker, AuthBackend, AuthContext, AuthOutcome, Identity } from './types.js';

const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Where `npm run build` puts the helper (helper/build.sh). */
export function defaultPamHelperPath(): string {
  return join(PACKAGE_ROOT, 'helper/build/tsieved-pam-helper');
}

/** The helper's limits; longer input is refused before any PAM call. */
const MAX_USER_BYTES = 256;
const MAX_PASSWORD_BYTES = 1024;
/** Exit statuses of the helper (checkpassword convention). */
const EXIT_REJECTED = 1;

export interface PamBackendOptions {
  /** PAM service name ([auth] pam_service), i.e. the file in /etc/pam.d. */
  readonly service: string;
  /** [auth] pam_helper; default defaultPamHelperPath(). */
  readonly helperPath?: string;
  /** argv of the per-session worker the helper execs (absolute program path). */
  readonly workerCommand: readonly string[];
  readonly log: Logger;
  /** A PAM transaction (including a module's fail delay) that takes longer is abandoned. */
  readonly timeoutMs?: number;
  /**
   * Nice value added to the worker (0-19, default 10). The server multiplexes every
   * session on one event loop; a crowd of workers starting at once must not starve
   * it of CPU (measured on 2 cores: 20 logins delayed an idle NOOP by 250-340 ms at
   * nice 0, under 35 ms at nice 10).
   */
  readonly workerNice?: number;
}

export const DEFAULT_WORKER_NICE = 10;

/** Why the pam backend cannot work with this helper, or undefined when it can. */
export function pamProblem(helperPath: string = defaultPamHelperPath()): string | undefined {
  try {
    if (!statSync(helperPath).isFile()) return `PAM helper ${helperPath} is not a file`;
    accessSync(helperPath, constants.X_OK);
  } catch {
    return (
      `[auth] backend = "pam" needs the PAM helper at ${helperPath}, which is missing or not executable. ` +
      'Build it with `npm run build` (needs a C compiler and libpam0g-dev) or set [auth] pam_helper.'
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

type HelperStatus =
  | { kind: 'ok'; user: string; uid: number; gid: number; home: string; workerPid: number }
  | { kind: 'rejected' | 'expired' | 'newauthtok' | 'tempfail'; reason: string }
  | { kind: 'none' };

function parseStatus(bytes: Buffer): HelperStatus {
  const fields = bytes.toString('utf8').split('\0');
  const [kind, ...rest] = fields;
  if (kind === 'ok' && rest.length >= 5) {
    const [user, uid, gid, home, pid] = rest as [string, string, string, string, string];
    const n = (s: string) => (/^\d+$/.test(s) ? Number(s) : NaN);
    if (user && Number.isSafeInteger(n(uid)) && Number.isSafeInteger(n(gid)) && Number.isSafeInteger(n(pid))) {
      return { kind: 'ok', user, uid: n(uid), gid: n(gid), home, workerPid: n(pid) };
    }
  }
  if (kind === 'rejected' || kind === 'expired' || kind === 'newauthtok' || kind === 'tempfail') {
    return { kind, reason: rest[0] ?? kind };
  }
  return { kind: 'none' };
}

export class PamBackend implements AuthBackend {
  readonly name = 'pam';
  private readonly helperPath: string;
  private readonly timeoutMs: number;

  constructor(private readonly options: PamBackendOptions) {
    this.helperPath = options.helperPath ?? defaultPamHelperPath();
    this.timeoutMs = options.timeoutMs ?? 60_000;
  }

  async verifyPassword(user: string, password: string, context: AuthContext): Promise<AuthOutcome> {
    // The helper splits on NUL: a NUL inside either would let "pw\0junk" log in as "pw".
    if (user.includes('\0') || password.includes('\0')) return { kind: 'rejected', reason: 'NUL in user name or password' };
    if (user === '' || Buffer.byteLength(user) > MAX_USER_BYTES) return { kind: 'rejected', reason: 'bad user name length' };
    if (password === '' || Buffer.byteLength(password) > MAX_PASSWORD_BYTES) {
      return { kind: 'rejected', reason: 'empty or over-long password' };
    }
    const [program, ...args] = this.options.workerCommand;
    if (!program) return { kind: 'unavailable', reason: 'no worker command configured' };
    const log = this.options.log.child({ user, rhost: context.remoteAddress });

    let child;
    try {
      const nice = Math.min(19, Math.max(0, Math.trunc(this.options.workerNice ?? DEFAULT_WORKER_NICE)));
      child = spawn(this.helperPath, ['-n', String(nice), this.options.service, context.remoteAddress, program, ...args], {
        stdio: ['pipe', 'pipe', 'pipe', 'pipe', 'pipe'],
        cwd: '/',
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...(process.env.LANG ? { LANG: process.env.LANG } : {}) },
      });
    } catch (err) {
      return { kind: 'unavailable', reason: `cannot start the PAM helper: ${(err as Error).message}` };
    }
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((r) => {
      child.once('exit', (code, signal) => r({ code, signal }));
      child.once('error', (error) => r({ code: null, signal: null, error }));
    });
    // The helper's own text lines and the worker's pino JSON lines.
    relayChildLog(child.stderr!, log, { textFrom: 'pam-helper', textLevel: 'info' });
    const creds = child.stdio[3] as Writable;
    const statusPipe = child.stdio[4] as Readable;
    creds.on('error', () => undefined);
    child.stdin!.on('error', () => undefined);
    creds.end(Buffer.concat([Buffer.from(user, 'utf8'), Buffer.from([0]), Buffer.from(password, 'utf8'), Buffer.from([0])]));

    const chunks: Buffer[] = [];
    statusPipe.on('data', (c: Buffer) => chunks.push(c));
    const statusDone = new Promise<void>((r) => {
      statusPipe.once('end', () => r());
      statusPipe.once('close', () => r());
      statusPipe.once('error', () => r());
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), this.timeoutMs);
    });
    const first = await Promise.race([statusDone, timedOut]);
    clearTimeout(timer);
    if (first === 'timeout') {
      // The helper may already have started the worker (the status is written after
      // the fork): closing its pipes ends that worker (EOF on its requests), and
      // SIGTERM lets the helper close the PAM session; SIGKILL if it is stuck.
      child.stdin?.destroy();
      child.stdout?.destroy();
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
      log.error({ timeoutMs: this.timeoutMs }, 'PAM helper did not answer in time');
      return { kind: 'unavailable', reason: 'PAM transaction timed out' };
    }
    const status = parseStatus(Buffer.concat(chunks));
    if (status.kind !== 'ok') {
      // The helper exits right after writing a failure; wait so no zombie remains.
      const end = await exited;
      if (end.error) return { kind: 'unavailable', reason: `cannot start the PAM helper: ${end.error.message}` };
      if (status.kind === 'none') {
        return { kind: 'unavailable', reason: `PAM helper ended without a status (exit ${end.code ?? end.signal})` };
      }
      if (status.kind === 'tempfail') return { kind: 'unavailable', reason: status.reason };
      if (end.code !== EXIT_REJECTED) log.warn({ code: end.code }, 'PAM helper rejected with an unexpected exit status');
      // expired and newauthtok are rejections to the client; the reason tells the log.
      return { kind: 'rejected', reason: `${status.kind}: ${status.reason}` };
    }

    const identity: Identity = { user: status.user, uid: status.uid, gid: status.gid, home: status.home, fields: {} };
    let killTimer: NodeJS.Timeout | undefined;
    const attached: AttachedWorker = {
      pid: status.workerPid,
      input: child.stdin!,
      output: child.stdout!,
      exited: exited.then(() => clearTimeout(killTimer)),
      // The helper passes SIGTERM to the worker (SIGKILL after 5 s), then closes the
      // PAM session; only a helper that is itself stuck is killed, later.
      terminate() {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.stdin?.end();
        child.kill('SIGTERM');
        killTimer ??= setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
      },
    };
    log.info({ event: 'pam-session', workerPid: status.workerPid, helperPid: child.pid, pamUser: status.user }, 'PAM session opened');
    return { kind: 'ok', identity, attached };
  }
}
