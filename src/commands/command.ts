/**
 * What a command is: the states it is valid in, the shape of its arguments, and a
 * function from arguments to a result. Results are data; the connection writes
 * them. Dispatch (dispatch.ts) checks state and arguments before `run` is called,
 * so a command body only deals with its own meaning.
 *
 * Must not know: sockets, TLS, how bytes are framed.
 */
import type { Logger } from '../log/logger.js';
import type { Response } from '../protocol/response.js';
import type { Token } from '../protocol/tokens.js';
import type { ProtocolError } from '../protocol/errors.js';
import type { Session, SessionState } from '../session/session.js';
import type { ServerServices } from '../session/services.js';

export type ArgKind = 'string' | 'number';

export interface ArgSpec {
  readonly name: string;
  readonly kind: ArgKind;
  readonly optional?: boolean;
}

export type ArgValue = Buffer | number | undefined;

/** The next line from the client, for multi-step commands (SASL). */
export type ContinuationLine =
  | { readonly kind: 'line'; readonly tokens: Token[]; readonly error?: ProtocolError }
  /** The line broke a limit that ends the connection (too long, literal too large). */
  | { readonly kind: 'fatal'; readonly error: ProtocolError }
  | { readonly kind: 'closed' };

export interface CommandContext {
  readonly session: Session;
  readonly services: ServerServices;
  readonly log: Logger;
  /** Writes data now (SASL challenges); resolves when the socket has taken it. */
  write(data: Buffer): Promise<void>;
  readContinuation(): Promise<ContinuationLine>;
}

export interface CommandResult {
  /** Untagged data sent before the response (capability lines, script lists, literals). */
  readonly data?: Buffer;
  readonly response: Response;
  /** What the connection does after sending the response. */
  readonly then?: 'starttls' | 'close';
}

export interface Command {
  readonly name: string;
  readonly states: readonly SessionState[];
  readonly args: readonly ArgSpec[];
  run(ctx: CommandContext, args: ArgValue[]): Promise<CommandResult>;
}

export const ANY_STATE: readonly SessionState[] = ['non-authenticated', 'authenticated'];
export const AUTHENTICATED: readonly SessionState[] = ['authenticated'];
export const NOT_AUTHENTICATED: readonly SessionState[] = ['non-authenticated'];
