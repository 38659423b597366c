/**
 * What a session needs from the rest of the program, as interfaces. main.ts builds
 * the concrete objects; sessions and commands see only these shapes.
 *
 * Must not know: which backend, store or validator implementation is behind them.
 */
import type { SecureContext } from 'node:tls';
import type { AuthBackend, AttachedWorker, Identity } from '../auth/types.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { ScriptStore } from '../storage/types.js';

export interface ScriptDiagnostic {
  readonly severity: 'error' | 'warning';
  readonly line: number;
  readonly column: number;
  readonly message: string;
}

/** Checks a script for the dialect that will run it (src/sieve). */
export interface ScriptChecker {
  /** SIEVE capability words, in the order advertised. */
  readonly extensions: readonly string[];
  check(script: Buffer): Promise<readonly ScriptDiagnostic[]>;
  /** "line N: error: ..." lines for a client, at most `max`. */
  format(diagnostics: readonly ScriptDiagnostic[], max: number): string;
}

/**
 * A store that can also check scripts where it runs (the per-session worker), so
 * validation costs the user's own process rather than the server's.
 */
export interface ValidatingStore {
  validate(script: Buffer): Promise<readonly ScriptDiagnostic[]>;
}

/** Turns a verified identity into the user's ScriptStore (in-process or a worker). */
export interface StoreOpener {
  open(identity: Identity, attached?: AttachedWorker): Promise<ScriptStore>;
}

export interface ServerServices {
  readonly config: Config;
  readonly auth: AuthBackend;
  readonly stores: StoreOpener;
  readonly checker: ScriptChecker;
  /** Present when TLS is configured and its certificate loaded. */
  readonly tls?: SecureContext;
  readonly log: Logger;
  readonly version: string;
}
