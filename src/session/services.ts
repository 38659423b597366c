/**
 * What a session needs from the rest of the program, as interfaces. main.ts builds
 * the concrete objects; sessions and commands see only these shapes.
 *
 * Must not know: which backend, store or validator implementation is behind them.
 */
import type { SecureContext } from 'node:tls';
import type { AuthBackend } from '../auth/types.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { StoreLauncher } from '../storage/launcher.js';
import type { ServerEvents } from './events.js';
import type { LoginLimiter } from './login-limits.js';

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
  /**
   * "[NAME: ]line N: error: ... (column C)" lines for a client, at most `max`
   * (the name for PUTSCRIPT, none for CHECKSCRIPT).
   */
  format(diagnostics: readonly ScriptDiagnostic[], max: number, scriptName?: string): string;
}

export interface ServerServices {
  readonly config: Config;
  readonly auth: AuthBackend;
  /** Turns a verified identity into the user's ScriptStore. */
  readonly stores: StoreLauncher;
  readonly checker: ScriptChecker;
  /** Present when TLS is configured and its certificate loaded. */
  readonly tls?: SecureContext;
  readonly log: Logger;
  readonly version: string;
  /** Where logins, commands and validations are reported (metrics). */
  readonly events: ServerEvents;
  /** Sessions per account and the failed-login penalty per address; one for the server's life. */
  readonly logins: LoginLimiter;
}
