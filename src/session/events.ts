/**
 * What the server reports about itself while it runs: connections accepted,
 * refused and ended, logins, commands, validations, storage errors, reloads. The
 * connection loop and the commands call these methods; main.ts wires in an
 * implementation (Prometheus metrics, src/metrics/) or the silent one.
 *
 * Must not know: what is done with the reports (metrics library, exporters).
 */
import type { RejectionClass } from '../auth/types.js';

/** Why a connection was turned away before a session started. */
export type ConnectionRefusal =
  /** max_connections_per_ip reached. */
  | 'per-ip-limit'
  /** max_connections reached (the kernel socket is closed at once). */
  | 'max-connections'
  /** A PROXY-protocol listener was reached by an address not in trusted_proxies. */
  | 'untrusted-proxy'
  /** A trusted proxy sent a bad or no PROXY header in time. */
  | 'proxy-header'
  /** Implicit TLS: the handshake failed or timed out. */
  | 'tls-handshake';

/** Why a session ended (the `reason` of the `disconnect` log line). */
export type EndReason =
  /** The client sent LOGOUT. */
  | 'logout'
  /** Idle or login timeout. */
  | 'idle'
  /** The server said BYE for a limit: bad commands, failed logins, line or literal size. */
  | 'limit'
  /** The client closed the connection (or it broke) without LOGOUT. */
  | 'client-closed'
  /** Server shutdown (SIGTERM) after the grace period. */
  | 'shutdown'
  /** An operator ended it (`tsieved kick`). */
  | 'kicked'
  /** STARTTLS handshake failed. */
  | 'tls-failed'
  /** An unexpected error in the server. */
  | 'error';

/** The class of a refused login: the backend's rejection class, or why the exchange failed. */
export type LoginFailureClass = RejectionClass | 'cancelled' | 'unavailable' | 'unclassified';

export interface ConnectionSummary {
  readonly reason: EndReason;
  readonly seconds: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly commands: number;
  readonly authenticated: boolean;
}

export type ValidationVerdict = 'valid' | 'warnings' | 'invalid';

export interface ServerEvents {
  connectionAccepted(): void;
  connectionRefused(reason: ConnectionRefusal): void;
  connectionClosed(summary: ConnectionSummary): void;
  loginSucceeded(backend: string, mechanism: string): void;
  loginFailed(backend: string, mechanism: string, failure: LoginFailureClass): void;
  /** How long a failed login was held before the answer (auth_failure_delay_ms). */
  failedLoginDelay(seconds: number): void;
  /** `command` is a known command name or "UNKNOWN"; `status` OK, NO or BYE. */
  commandCompleted(command: string, status: string, seconds: number): void;
  scriptValidated(
    command: 'PUTSCRIPT' | 'CHECKSCRIPT' | 'SETACTIVE',
    verdict: ValidationVerdict,
    seconds: number,
  ): void;
  storageError(kind: string): void;
  reloaded(outcome: 'success' | 'failure'): void;
}

/** Reports go nowhere: tests, `config check`, and servers without [metrics]. */
export const NO_EVENTS: ServerEvents = {
  connectionAccepted: () => undefined,
  connectionRefused: () => undefined,
  connectionClosed: () => undefined,
  loginSucceeded: () => undefined,
  loginFailed: () => undefined,
  failedLoginDelay: () => undefined,
  commandCompleted: () => undefined,
  scriptValidated: () => undefined,
  storageError: () => undefined,
  reloaded: () => undefined,
};
