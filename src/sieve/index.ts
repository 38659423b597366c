/**
 * The Sieve validator for Exim's dialect: the public surface for the server and
 * the CLI. See validate.ts for the pipeline and profile.ts for the dialect.
 *
 * Must not know: the protocol (nothing here imports protocol/, commands/ or server/).
 */
export type { Diagnostic, DiagnosticCode, Severity } from './diagnostics.js';
export {
  formatDiagnosticForClient,
  formatDiagnosticsForClient,
  formatDiagnosticForTerminal,
  hasErrors,
  sortDiagnostics,
} from './diagnostics.js';
export type { SieveProfile, FileintoPolicy } from './profile.js';
export { defaultProfile, notifyMethods, EXIM_EXTENSIONS, EXIM_IMPLICIT_CAPABILITIES } from './profile.js';
export { validateScript } from './validate.js';
export { loadProfile, ProfileError } from './load-profile.js';
export { createValidator, type Validator, type ValidatorOptions } from './validation-pool.js';
