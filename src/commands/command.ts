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
  /** Extra fields for the command's log line (e.g. why a script was refused). */
  readonly log?: Readonly<Record<string, string | number>>;
}

/** The value dispatch hands over for one declared argument. */
type ArgValueOf<Spec extends ArgSpec> =
  (Spec['kind'] extends 'string' ? Buffer : number) | (Spec['optional'] extends true ? undefined : never);

/** The argument tuple a command's `run` receives, derived from its declared signature. */
export type ArgsOf<Specs extends readonly ArgSpec[]> = {
  readonly [K in keyof Specs]: Specs[K] extends ArgSpec ? ArgValueOf<Specs[K]> : never;
};

export interface Command<Specs extends readonly ArgSpec[] = readonly ArgSpec[]> {
  readonly name: string;
  readonly states: readonly SessionState[];
  readonly args: Specs;
  run(ctx: CommandContext, args: ArgsOf<Specs>): Promise<CommandResult>;
}

/** A command as the registry keeps it: dispatch has checked the arguments against `args`. */
export type RegisteredCommand = Omit<Command, 'run'> & {
  run(ctx: CommandContext, args: readonly ArgValue[]): Promise<CommandResult>;
};

/**
 * Declares a command whose `run` sees its arguments typed from `args` (a quoted
 * string or literal is a Buffer, a number a number, an optional one may be
 * undefined). The one cast below is sound because dispatch (parseArgs) produces
 * exactly those values before calling `run`.
 */
export function defineCommand<const Specs extends readonly ArgSpec[]>(command: Command<Specs>): RegisteredCommand {
  return command;
}

export const ANY_STATE: readonly SessionState[] = ['non-authenticated', 'authenticated'];
export const AUTHENTICATED: readonly SessionState[] = ['authenticated'];
export const NOT_AUTHENTICATED: readonly SessionState[] = ['non-authenticated'];
