/**
 * One client connection: greets, reads one command at a time, runs it, writes the
 * result, and enforces the per-connection limits (idle timeouts, bad commands,
 * literal sizes by state). Owns the STARTTLS upgrade, including dropping any
 * clear-text bytes the client sent behind the STARTTLS command (RFC 5804 section
 * 2.2; the STARTTLS command-injection attack).
 *
 * Must not know: what commands mean (commands/), where scripts live (storage/).
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Duplex } from 'node:stream';
import type { Logger } from '../log/logger.js';
import { LineBudget } from '../log/line-budget.js';
import { ProtocolError } from '../protocol/errors.js';
import { CommandFramer, type FrameResult, type FramerLimits, type LiteralVerdict } from '../protocol/framer.js';
import { bye, encodeResponse, ok, type Response } from '../protocol/response.js';
import type { CommandContext, CommandResult, ContinuationLine } from '../commands/command.js';
import { dispatch } from '../commands/dispatch.js';
import { Session, type SessionOrigin } from '../session/session.js';
import type { ServerServices } from '../session/services.js';
import type { EndReason } from '../session/events.js';

/** Stop reading from the socket while this much input waits behind the running command. */
const MAX_PENDING_INPUT = 64 * 1024;
/** A TLS handshake that takes longer than this is abandoned. */
const TLS_HANDSHAKE_TIMEOUT_MS = 30_000;
/**
 * A literal somewhat over the script limit is read and dropped so the client gets
 * NO (QUOTA/MAXSIZE) instead of a dropped connection; beyond this factor it is
 * cheaper to hang up than to read it.
 */
const DISCARDABLE_FACTOR = 4;
/** Per-command info lines per connection: a burst, then this many a second (the rest summarised). */
const COMMAND_LINES_PER_SECOND = 20;
const COMMAND_LINE_BURST = 100;

export type Closed = { readonly kind: 'closed' };

/** One line of `tsieved who`. */
export interface SessionInfo {
  readonly user?: string;
  /** Client address and port (from the PROXY header when there is one). */
  readonly remote: string;
  /** ISO time the connection was accepted. */
  readonly since: string;
  readonly state: 'non-authenticated' | 'authenticated';
  readonly secure: boolean;
  readonly lastCommand?: string;
  /** The storage worker's pid with process isolation. */
  readonly pid?: number;
  /** Octets read from and written to the TCP connection so far (`--json` only). */
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Reply octets handed to the socket but not yet taken by the kernel: backpressure keeps this to one reply. */
  readonly outputQueued: number;
}

export class Connection {
  private stream: Duplex;
  private readonly framer: CommandFramer;
  private readonly session: Session;
  private wake: (() => void) | undefined;
  private ended = false;
  private closing = false;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Which limit the timer enforces, and since when the client has been logging in. */
  private timerFor: 'login' | 'idle' | undefined;
  private loginSince = performance.now();
  /** Between STARTTLS's OK and the handshake's end nothing may be written in clear. */
  private upgrading = false;
  private readonly log: Logger;
  private readonly commandLines = new LineBudget(COMMAND_LINES_PER_SECOND, COMMAND_LINE_BURST);
  private readonly since = new Date();
  private commands = 0;
  private lastCommand: string | undefined;
  /** Set where the server decides to end the session; otherwise the client went away. */
  private endReason: EndReason | undefined;
  private readonly onData = (chunk: Buffer): void => {
    this.touch();
    this.framer.push(chunk);
    if (this.framer.bufferedBytes > MAX_PENDING_INPUT) this.stream.pause();
    this.wakeReader();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.wakeReader();
  };

  constructor(
    private readonly socket: Socket,
    private readonly services: ServerServices,
    origin: SessionOrigin,
    mechanisms: () => readonly string[],
    log: Logger,
  ) {
    this.log = log;
    this.session = new Session(services, origin, mechanisms);
    this.framer = new CommandFramer(this.limits());
    this.stream = socket;
    socket.setNoDelay(true);
  }

  /** The session's stream is ready (plain, or implicit TLS already negotiated). */
  async run(initial?: Duplex): Promise<void> {
    if (initial) this.stream = initial;
    this.attach(this.stream);
    try {
      await this.write(Buffer.concat([this.session.capabilities(), encodeResponse(ok())]));
      await this.loop();
    } catch (error) {
      this.log.debug({ err: error }, 'connection ended with an error');
      this.endReason ??= 'error';
    } finally {
      clearTimeout(this.idleTimer);
      this.reportUnloggedCommands(true);
      const user = this.session.user;
      const authenticated = this.session.state === 'authenticated';
      await this.session.logout().catch((error) => this.log.warn({ err: error }, 'closing the store failed'));
      this.destroy();
      this.logEnd(user, authenticated);
    }
  }

  /** Server shutdown: say BYE and close once the running command is done. */
  async shutdown(text: string, reason: EndReason = 'shutdown'): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.endReason ??= reason;
    await this.write(encodeResponse(bye(text))).catch(() => undefined);
    this.destroy();
  }

  get user(): string | undefined {
    return this.session.user;
  }

  /** For `tsieved who`. */
  info(): SessionInfo {
    const { session } = this;
    return {
      ...(session.user !== undefined ? { user: session.user } : {}),
      remote: `${session.origin.remoteAddress}:${session.origin.remotePort}`,
      since: this.since.toISOString(),
      state: session.state,
      secure: session.secure,
      ...(this.lastCommand !== undefined ? { lastCommand: this.lastCommand } : {}),
      ...(session.isolatedPid !== undefined ? { pid: session.isolatedPid } : {}),
      bytesIn: this.socket.bytesRead,
      bytesOut: this.socket.bytesWritten,
      outputQueued: this.stream.writableLength,
    };
  }

  /**
   * The session log's last line for this connection: how long, who, how much, and
   * why it ended; the same summary goes to the metrics. Bytes are those of the TCP
   * connection, TLS records and any PROXY header included.
   */
  private logEnd(user: string | undefined, authenticated: boolean): void {
    const reason = this.endReason ?? 'client-closed';
    const seconds = (Date.now() - this.since.getTime()) / 1000;
    const bytesIn = this.socket.bytesRead;
    const bytesOut = this.socket.bytesWritten;
    this.log.info(
      {
        event: 'disconnect',
        remote: this.session.origin.remoteAddress,
        user: user ?? '',
        reason,
        seconds: Math.round(seconds * 1000) / 1000,
        bytes_in: bytesIn,
        bytes_out: bytesOut,
        commands: this.commands,
      },
      'connection closed',
    );
    this.services.events.connectionClosed({
      reason,
      seconds,
      bytesIn,
      bytesOut,
      commands: this.commands,
      authenticated,
    });
  }

  private async loop(): Promise<void> {
    const ctx: CommandContext = {
      session: this.session,
      services: this.services,
      log: this.log,
      // A peer gone in the middle of a multi-step command is not the command's
      // failure: the write is dropped and the next read reports the closed stream.
      write: (data) =>
        this.write(data).catch(() => {
          this.ended = true;
          this.wakeReader();
        }),
      readContinuation: () => this.readContinuation(),
    };
    for (;;) {
      const frame = await this.nextFrame();
      if (frame.kind === 'closed' || this.closing) return;
      if (frame.kind === 'fatal') {
        this.endReason ??= 'limit';
        this.log.info({ event: 'protocol-error', reason: frame.error.message }, 'closing connection');
        await this.write(encodeResponse(bye(frame.error.message, frame.error.code)));
        return;
      }
      const started = performance.now();
      const dispatched = await dispatch(ctx, frame.tokens, frame.error);
      const { result } = dispatched;
      let response = result.response;
      let then = result.then;
      // Only consecutive bad commands count (as in Dovecot): a long Thunderbird or
      // KMail session sends the odd malformed command (KManageSieve's argument-less
      // RENAMESCRIPT probe) among hours of good ones, and must not be cut off for it.
      if (!dispatched.bad) this.session.badCommands = 0;
      else if (++this.session.badCommands >= this.services.config.server.max_bad_commands) {
        response = bye('Too many invalid commands');
        then = 'close';
      }
      const parts = result.data ? [result.data, encodeResponse(response)] : [encodeResponse(response)];
      await this.write(Buffer.concat(parts));
      // Backpressure: no next reply while this one waits for a client that does not read.
      await this.drained();
      const ms = performance.now() - started;
      this.logCommand(dispatched.command, response, ms, result.log);
      this.commands++;
      // Only names the server knows become metric labels; a client cannot add series.
      const name = dispatched.known && dispatched.command ? dispatched.command : 'UNKNOWN';
      this.lastCommand = name;
      this.services.events.commandCompleted(name, response.status, ms / 1000);
      if (then === 'close' || response.status === 'BYE') {
        // A BYE to a client already gone (it closed during AUTHENTICATE) is no limit.
        this.endReason ??=
          name === 'LOGOUT' && response.status === 'OK' ? 'logout' : this.ended ? 'client-closed' : 'limit';
      }
      // Limits and the idle timeout follow the state the command left behind.
      this.framer.setLimits(this.limits());
      this.touch();
      if (then === 'close' || response.status === 'BYE') return;
      if (then === 'starttls') {
        try {
          await this.startTls();
        } catch (error) {
          this.endReason ??= 'tls-failed';
          throw error;
        }
      }
      // Fairness: pipelined commands of one client run one per event-loop turn, so
      // other connections' I/O is served between them (a batch of thousands of
      // NOOPs once held the loop for hundreds of milliseconds).
      if (this.framer.bufferedBytes > 0) await nextTurn();
    }
  }

  private async drained(): Promise<void> {
    const stream = this.stream;
    if (!stream.writableNeedDrain || stream.destroyed) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        stream.off('drain', done);
        stream.off('close', done);
        resolve();
      };
      stream.on('drain', done);
      stream.on('close', done);
    });
  }

  /** One line for the command lines the budget kept out of the log (when due, or at the end). */
  private reportUnloggedCommands(final: boolean): void {
    const count = this.commandLines.due(final);
    if (count > 0) {
      this.log.info(
        { event: 'commands-not-logged', count, user: this.session.user, remote: this.session.origin.remoteAddress },
        `${count} command lines not logged (more than ${COMMAND_LINES_PER_SECOND} a second)`,
      );
    }
  }

  private logCommand(command: string | undefined, response: Response, ms: number, extra?: CommandResult['log']): void {
    if (!this.log.isLevelEnabled('info')) return;
    this.reportUnloggedCommands(false);
    if (!this.commandLines.take()) return;
    const code =
      response.code === undefined
        ? undefined
        : typeof response.code === 'string'
          ? response.code
          : 'tag' in response.code
            ? 'TAG'
            : 'SASL';
    this.log.info(
      {
        event: 'command',
        command: command ?? '?',
        status: response.status,
        ...(code ? { code } : {}),
        ...extra,
        ms: Math.round(ms * 10) / 10,
        user: this.session.user,
        remote: this.session.origin.remoteAddress,
      },
      'command',
    );
  }

  /** Limits depend on the state: before login only small literals (SASL data) are read. */
  private limits(): FramerLimits {
    const { server, storage } = this.services.config;
    const authenticated = this.session.state === 'authenticated';
    const maxLiteral = authenticated ? storage.max_script_bytes : server.max_preauth_literal_bytes;
    return {
      maxLineBytes: server.max_line_bytes,
      literalVerdict(size, sizeSoFar): LiteralVerdict {
        const total = size + sizeSoFar;
        // After login a command may carry a script of the full size plus a script
        // name sent as a literal (names are at most 1024 octets).
        if (total <= maxLiteral + (authenticated ? 1024 : 0)) return { action: 'accept' };
        if (authenticated && total <= maxLiteral * DISCARDABLE_FACTOR) {
          return {
            action: 'discard',
            error: ProtocolError.recoverable(`Script is too large (at most ${maxLiteral} octets)`, 'QUOTA/MAXSIZE'),
          };
        }
        return {
          action: 'refuse',
          error: ProtocolError.fatal(
            authenticated ? `Literal too large (at most ${maxLiteral} octets)` : 'Literal too large before login',
          ),
        };
      },
    };
  }

  private async nextFrame(): Promise<Exclude<FrameResult, { kind: 'need-more' }> | Closed> {
    for (;;) {
      const result = this.framer.parse();
      if (result.kind !== 'need-more') return result;
      if (this.ended || this.closing) return { kind: 'closed' };
      this.stream.resume();
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private async readContinuation(): Promise<ContinuationLine> {
    const frame = await this.nextFrame();
    if (frame.kind === 'fatal') return { kind: 'fatal', error: frame.error };
    if (frame.kind !== 'command') return { kind: 'closed' };
    return frame.error
      ? { kind: 'line', tokens: frame.tokens, error: frame.error }
      : { kind: 'line', tokens: frame.tokens };
  }

  private wakeReader(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private attach(stream: Duplex): void {
    // A client that half-closed while its admission was being decided (a cluster
    // worker asks the primary) has had its 'end' already: nobody would emit it again.
    if (stream.readableEnded) this.ended = true;
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('close', this.onEnd);
    stream.on('error', (error) => {
      this.log.debug({ err: error }, 'socket error');
      this.onEnd();
    });
    this.touch();
  }

  private detach(stream: Duplex): void {
    stream.off('data', this.onData);
    stream.off('end', this.onEnd);
    stream.off('close', this.onEnd);
  }

  /**
   * RFC 5804 section 2.2. Nothing the client sent after STARTTLS in clear text may
   * be executed: stop reading and drop it before the OK goes out; the handshake
   * starts right after. The new capabilities are pushed without being asked.
   */
  private async startTls(): Promise<void> {
    const secureContext = this.services.tls;
    if (!secureContext) throw new Error('STARTTLS without TLS context');
    // The OK has already been written; bytes that arrived after the STARTTLS line
    // are clear-text injection attempts.
    this.detach(this.stream);
    this.stream.pause();
    this.framer.discardBuffered();
    const tlsSocket = new TLSSocket(this.socket, {
      isServer: true,
      secureContext,
      requestCert: false,
    });
    this.upgrading = true;
    await handshake(tlsSocket);
    this.upgrading = false;
    if (this.closing) throw new Error('closed during the TLS handshake');
    this.stream = tlsSocket;
    this.session.secure = true;
    this.attach(tlsSocket);
    this.framer.setLimits(this.limits());
    await this.write(Buffer.concat([this.session.capabilities(), encodeResponse(ok())]));
  }

  private write(data: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.stream.destroyed || !this.stream.writable) {
        reject(new Error('connection closed'));
        return;
      }
      this.stream.write(data, (error) => (error ? reject(error) : resolve()));
    });
  }

  /**
   * Before login, an absolute deadline counted from connect (or UNAUTHENTICATE) that
   * no traffic extends: a client trickling a byte a second, or a NOOP every few
   * seconds, once held its connection slot forever. After login, an idle limit that
   * every command resets, at least 30 minutes (RFC 5804 section 1.2).
   */
  private touch(): void {
    const { server } = this.services.config;
    const login = this.session.state !== 'authenticated';
    if (login && this.timerFor === 'login') return;
    if (login && this.timerFor === 'idle') this.loginSince = performance.now();
    clearTimeout(this.idleTimer);
    this.timerFor = login ? 'login' : 'idle';
    const ms = login
      ? server.login_timeout_seconds * 1000 - (performance.now() - this.loginSince)
      : server.idle_timeout_seconds * 1000;
    this.idleTimer = setTimeout(
      () => {
        this.log.info(
          { event: login ? 'login-timeout' : 'idle-timeout', user: this.session.user },
          login ? 'disconnecting: no login in time' : 'disconnecting idle client',
        );
        this.closing = true;
        this.endReason ??= 'idle';
        const text = `${server.greeting_name}: ${login ? 'login took too long' : 'disconnected for inactivity'}`;
        // Mid-STARTTLS the client expects a handshake: a clear-text BYE would be garbage to it.
        const farewell = this.upgrading ? Promise.resolve() : this.write(encodeResponse(bye(text)));
        if (this.upgrading) this.socket.destroy();
        farewell.catch(() => undefined).finally(() => this.destroy());
        this.wakeReader();
      },
      Math.max(0, ms),
    );
    this.idleTimer.unref();
  }

  private destroy(): void {
    this.closing = true;
    this.ended = true;
    clearTimeout(this.idleTimer);
    const stream = this.stream;
    stream.end();
    setTimeout(() => {
      stream.destroy();
      this.socket.destroy();
    }, 1000).unref();
    this.wakeReader();
  }
}

function handshake(socket: TLSSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('TLS handshake timed out'));
    }, TLS_HANDSHAKE_TIMEOUT_MS);
    socket.once('secure', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('error', (error: Error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      reject(new Error('connection closed during the TLS handshake'));
    });
  });
}
