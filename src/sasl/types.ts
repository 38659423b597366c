/**
 * The contract between SASL mechanisms and the AUTHENTICATE command: raw bytes in,
 * steps out. The command turns base64 on the wire into Buffers and back, sends
 * challenges, and maps a failure's `reason` to a response (RFC 5804 section 2.1).
 *
 * Must not know: sockets, base64 framing, the `*` cancel (the command handles it).
 */
import type { AuthOutcome } from '../auth/types.js';

export type SaslFailureReason =
  /** Bad credentials, unknown user: the client cannot tell which. */
  | 'rejected'
  /** The backend could not answer: "try later". */
  | 'unavailable'
  /** The client's message does not follow the mechanism's syntax. */
  | 'malformed'
  /** An authorization identity other than empty or the authentication identity. */
  | 'authzid';

export type SaslStep =
  /** Send `data` to the client as a challenge. */
  | { readonly kind: 'challenge'; readonly data: Buffer }
  /** Logged in. `serverFinal`, if present, goes into `OK (SASL "<base64>")` (RFC 5804 section 2.1). */
  | { readonly kind: 'success'; readonly outcome: AuthOutcome & { kind: 'ok' }; readonly serverFinal?: Buffer }
  | {
      readonly kind: 'failure';
      readonly reason: SaslFailureReason;
      /** For the server log; never holds a password. */
      readonly logMessage: string;
      /** The backend's answer, when one was asked. */
      readonly outcome?: AuthOutcome;
      /** The user name the client claimed, when one could be read (for logs and rate limits). */
      readonly user?: string;
    };

export interface SaslExchange {
  /** initialResponse undefined = none given; an empty Buffer = "=" / empty string given. */
  start(initialResponse: Buffer | undefined): Promise<SaslStep>;
  /** The decoded bytes of the client's response to the last challenge. */
  respond(response: Buffer): Promise<SaslStep>;
}

export function failure(
  reason: SaslFailureReason,
  logMessage: string,
  extra: { outcome?: AuthOutcome; user?: string } = {},
): SaslStep {
  return { kind: 'failure', reason, logMessage, ...extra };
}
