/**
 * backend = "pam": each login runs one PAM transaction in its own helper process
 * (helper/tsieved-pam-helper.c). The helper authenticates, checks the account,
 * establishes credentials and opens the session, reports the account PAM settled
 * on, then forks the session's file broker as the user with the command this side
 * sends back (token_command expanded for that account); it closes the session and
 * deletes the credentials when the broker exits. The server only awaits pipes: a wrong password's fail delay or a hung
 * module costs one helper process, never the event loop or the libuv thread pool
 * (reference/auth-and-grammar.md 1.3 and 1.4).
 *
 * Credentials go to the helper through a pipe (fd 3), never argv or environment.
 * The broker the helper started is returned as `attached`; the storage launcher
 * adopts it.
 *
 * Must not know: storage (the broker command is given), the wire protocol.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from '../log/logger.js';
import { relayChildLog } from '../log/relay.js';
import type { AttachedBroker, AuthBackend, AuthContext, AuthOutcome, Identity } from './types.js';

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
  /**
   * argv of the file broker the helper execs as the account PAM settled on
   * (token_command expanded for it, then the broker). Throwing refuses the login.
   */
  readonly brokerCommand: (identity: Identity) => readonly string[];
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

type Refusal = { kind: 'rejected' | 'expired' | 'newauthtok' | 'tempfail'; reason: string };

/** NUL-terminated fields of the status pipe, and whether the first message is whole. */
function statusFields(bytes: Buffer): { fields: string[]; complete: boolean } {
  const parts = bytes.toString('utf8').split('\0');
  const fields = parts.slice(0, -1); // the last part is unterminated (or '')
  const need = fields[0] === 'ok' ? 5 : 2;
  return { fields, complete: fields.length >= need };
}

function refusal(fields: readonly string[]): Refusal | undefined {
  const [kind, reason] = fields;
  if (kind === 'rejected' || kind === 'expired' || kind === 'newauthtok' || kind === 'tempfail') return { kind, reason: reason ?? kind };
  return undefined;
}

const count = (s: string | undefined): number => (s !== undefined && /^\d+$/.test(s) ? Number(s) : NaN);

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
    if (user.includes('\0') || password.includes('\0')) return { kind: 'rejected', reason: 'NUL in user name or password', class: 'malformed' };
    if (user === '' || Buffer.byteLength(user) > MAX_USER_BYTES) return { kind: 'rejected', reason: 'bad user name length', class: 'malformed' };
    if (password === '' || Buffer.byteLength(password) > MAX_PASSWORD_BYTES) {
      return { kind: 'rejected', reason: 'empty or over-long password', class: 'malformed' };
    }
    const log = this.options.log.child({ user, rhost: context.remoteAddress });

    let child;
    try {
      child = spawn(this.helperPath, [this.options.service, context.remoteAddress], {
        stdio: ['pipe', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe'],
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
    // The helper's own text lines, and whatever a token wrapper or the broker says.
    relayChildLog(child.stderr!, log, { textFrom: 'pam-helper', textLevel: 'info' });
    const creds = child.stdio[3] as Writable;
    const statusPipe = child.stdio[4] as Readable;
    const commandPipe = (child.stdio as unknown as (Readable | Writable)[])[5] as Writable;
    for (const w of [creds, commandPipe, child.stdin!]) w.on('error', () => undefined);
    creds.end(Buffer.concat([Buffer.from(user, 'utf8'), Buffer.from([0]), Buffer.from(password, 'utf8'), Buffer.from([0])]));

    // The status pipe carries a first message (ok, or a refusal), and after an ok
    // the broker's pid once the helper has our command; then it is closed.
    const chunks: Buffer[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    statusPipe.on('data', (c: Buffer) => {
      chunks.push(c);
      wake?.();
    });
    const onEnd = (): void => {
      ended = true;
      wake?.();
    };
    statusPipe.once('end', onEnd);
    statusPipe.once('close', onEnd);
    statusPipe.once('error', onEnd);
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const deadline = new Promise<void>((r) => {
      timer = setTimeout(() => {
        timedOut = true;
        r();
      }, this.timeoutMs);
    });
    /** Waits until `done` holds, the pipe ends or the time is up. */
    const until = async (done: () => boolean): Promise<void> => {
      while (!done() && !ended && !timedOut) await Promise.race([new Promise<void>((r) => (wake = r)), deadline]);
    };
    const abandon = (why: string): AuthOutcome => {
      // The helper may have opened a session: closing its pipes ends it (EOF on the
      // command pipe, or on the broker's requests), and SIGTERM lets the helper
      // close the PAM session; SIGKILL if it is stuck.
      commandPipe.destroy();
      child.stdin?.destroy();
      child.stdout?.destroy();
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
      return { kind: 'unavailable', reason: why };
    };

    try {
      await until(() => statusFields(Buffer.concat(chunks)).complete);
      if (timedOut) {
        log.error({ timeoutMs: this.timeoutMs }, 'PAM helper did not answer in time');
        return abandon('PAM transaction timed out');
      }
      const first = statusFields(Buffer.concat(chunks));
      if (first.fields[0] !== 'ok') {
        // The helper exits right after writing a failure; wait so no zombie remains.
        const end = await exited;
        if (end.error) return { kind: 'unavailable', reason: `cannot start the PAM helper: ${end.error.message}` };
        const refused = refusal(first.fields);
        if (refused === undefined) return { kind: 'unavailable', reason: `PAM helper ended without a status (exit ${end.code ?? end.signal})` };
        if (refused.kind === 'tempfail') return { kind: 'unavailable', reason: refused.reason };
        if (end.code !== EXIT_REJECTED) log.warn({ code: end.code }, 'PAM helper rejected with an unexpected exit status');
        // expired and newauthtok are rejections to the client; the reason tells the log.
        // PAM answers an unknown user like a wrong password (pam_unix does on purpose).
        return { kind: 'rejected', reason: `${refused.kind}: ${refused.reason}`, class: refused.kind === 'rejected' ? 'bad-password' : 'policy' };
      }
      const [, name, uid, gid, home] = first.fields as [string, string, string, string, string];
      if (!name || !Number.isSafeInteger(count(uid)) || !Number.isSafeInteger(count(gid))) return abandon('malformed status from the PAM helper');
      const identity: Identity = { user: name, uid: count(uid), gid: count(gid), home, fields: {} };
      let command: readonly string[];
      try {
        command = this.options.brokerCommand(identity);
      } catch (err) {
        log.error({ err: (err as Error).message, pamUser: name }, 'no broker command for this account');
        return abandon(`no broker command for ${name}: ${(err as Error).message}`);
      }
      commandPipe.end(Buffer.concat(command.map((part) => Buffer.from(`${part}\0`, 'utf8'))));

      const okBytes = Buffer.byteLength(first.fields.slice(0, 5).join('\0') + '\0');
      const second = () => statusFields(Buffer.concat(chunks).subarray(okBytes));
      await until(() => second().complete);
      if (timedOut) {
        log.error({ timeoutMs: this.timeoutMs }, 'PAM helper did not start the broker in time');
        return abandon('PAM transaction timed out');
      }
      const rest = second();
      const brokerPid = rest.fields[0] === 'broker' ? count(rest.fields[1]) : NaN;
      if (!Number.isSafeInteger(brokerPid)) {
        const why = refusal(rest.fields)?.reason ?? 'the PAM helper did not start the broker';
        log.error({ reason: why }, 'file broker not started');
        return abandon(why);
      }
      let killTimer: NodeJS.Timeout | undefined;
      const attached: AttachedBroker = {
        pid: brokerPid,
        input: child.stdin!,
        output: child.stdout!,
        exited: exited.then(() => clearTimeout(killTimer)),
        // The helper passes SIGTERM to the broker (SIGKILL after 5 s), then closes
        // the PAM session; only a helper that is itself stuck is killed, later.
        terminate() {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.stdin?.end();
          child.kill('SIGTERM');
          killTimer ??= setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
        },
      };
      log.info({ event: 'pam-session', brokerPid, helperPid: child.pid, pamUser: name }, 'PAM session opened');
      return { kind: 'ok', identity, attached };
    } finally {
      clearTimeout(timer);
    }
  }
}
