/**
 * Protocol-level failures: what went wrong while reading a command off the wire.
 * A recoverable error answers the one command with NO and the session goes on; a
 * fatal one ends the connection with BYE, because the byte stream can no longer be
 * trusted to be in step (a literal too large to read past, a line without end).
 *
 * Must not know: sockets, sessions, storage.
 */
import type { ResponseCode } from './response.js';

export class ProtocolError extends Error {
  constructor(
    message: string,
    readonly fatal: boolean,
    readonly code?: ResponseCode,
  ) {
    super(message);
    this.name = 'ProtocolError';
  }

  static recoverable(message: string, code?: ResponseCode): ProtocolError {
    return new ProtocolError(message, false, code);
  }

  static fatal(message: string, code?: ResponseCode): ProtocolError {
    return new ProtocolError(message, true, code);
  }
}
