/**
 * The one place where failures become wire responses: storage errors, protocol
 * errors, script diagnostics and anything unexpected. Commands throw or return
 * typed values; this module decides the response code and the words.
 *
 * Must not know: sockets, how the errors came about.
 */
import { ProtocolError } from '../protocol/errors.js';
import { bye, no, type Response, type ResponseCode } from '../protocol/response.js';
import { StorageError, type StorageErrorKind } from '../storage/types.js';
import type { ScriptDiagnostic, ScriptChecker } from '../session/services.js';

const STORAGE_CODES: Record<StorageErrorKind, ResponseCode | undefined> = {
  nonexistent: 'NONEXISTENT',
  'already-exists': 'ALREADYEXISTS',
  active: 'ACTIVE',
  'quota-maxscripts': 'QUOTA/MAXSCRIPTS',
  'quota-maxsize': 'QUOTA/MAXSIZE',
  quota: 'QUOTA',
  'bad-name': undefined,
  'not-set-up': undefined,
  misconfigured: undefined,
  permission: undefined,
  trylater: 'TRYLATER',
  io: 'TRYLATER',
};

/** Words a user can act on; details (paths, errno) stay in the log. */
const STORAGE_TEXTS: Partial<Record<StorageErrorKind, string>> = {
  permission: 'Permission denied by the storage; nothing was changed',
  io: 'Storage error; nothing was changed, please try again later',
  trylater: 'Storage is busy or unavailable; nothing was changed, please try again later',
  quota: 'Storage quota exceeded; nothing was changed',
  'not-set-up': 'The directory for your mail filter does not exist; nothing was changed. Please ask your administrator',
  misconfigured: 'This server is misconfigured and cannot serve your account. Please tell your administrator',
};

export interface MappedFailure {
  readonly response: Response;
  /** Internal detail for the log. */
  readonly detail: string;
  /** True when the failure was not foreseen (a bug or an unknown error). */
  readonly unexpected: boolean;
  /** The storage error's kind, when it was one (for metrics). */
  readonly storageError?: StorageErrorKind;
}

export function failureToResponse(error: unknown): MappedFailure {
  if (error instanceof StorageError) {
    const text = STORAGE_TEXTS[error.kind] ?? error.message;
    const code = STORAGE_CODES[error.kind];
    return {
      response: no(text, code),
      detail: `${error.kind}: ${error.message}${causeText(error.cause)}`,
      unexpected: false,
      storageError: error.kind,
    };
  }
  if (error instanceof ProtocolError) {
    return {
      response: error.fatal ? bye(error.message, error.code) : no(error.message, error.code),
      detail: error.message,
      unexpected: false,
    };
  }
  const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
  return {
    response: no('Internal error; nothing was changed, please try again later', 'TRYLATER'),
    detail,
    unexpected: true,
  };
}

/**
 * A login whose password was right but whose storage could not be opened: a
 * misconfiguration or a missing directory is said as such (waiting would not
 * help); anything else is a passing problem (TRYLATER).
 */
export function storeOpenFailureToResponse(error: unknown): Response {
  if (error instanceof StorageError && (error.kind === 'misconfigured' || error.kind === 'not-set-up')) {
    return no(STORAGE_TEXTS[error.kind]!);
  }
  return no('Your script storage is not available right now, please try again later', 'TRYLATER');
}

function causeText(cause: unknown): string {
  if (cause === undefined) return '';
  if (cause instanceof Error) return ` (${(cause as NodeJS.ErrnoException).code ?? cause.name}: ${cause.message})`;
  return ` (${typeof cause === 'string' ? cause : JSON.stringify(cause)})`;
}

/**
 * RFC 5804 section 2.6: an invalid script gets NO with human-readable text giving the
 * line of the first error; warnings MAY come with OK (WARNINGS). One line per
 * diagnostic, in the form Pigeonhole uses and clients parse (sieve/diagnostics.ts),
 * named after the script for PUTSCRIPT; the encoder picks a quoted string or a
 * literal.
 */
export function diagnosticsToResponse(
  diagnostics: readonly ScriptDiagnostic[],
  checker: ScriptChecker,
  maxReported: number,
  scriptName?: string,
): Response | undefined {
  // Lines of a multi-line text end in CRLF on the wire, like every other line.
  const text = (d: readonly ScriptDiagnostic[]): string =>
    checker.format(d, maxReported, scriptName).replace(/\r?\n/g, '\r\n');
  const errors = diagnostics.filter((d) => d.severity === 'error');
  if (errors.length > 0) return no(text(errors));
  if (diagnostics.length > 0) return { status: 'OK', code: 'WARNINGS', text: text(diagnostics) };
  return undefined;
}

/**
 * For the command's log line: the first diagnostic a client was shown (errors
 * first, as in the response) and how many there were, so an administrator can
 * see why a script was refused when the client only says "server error".
 */
export function diagnosticsLogFields(
  diagnostics: readonly ScriptDiagnostic[],
  checker: ScriptChecker,
): Readonly<Record<string, string | number>> | undefined {
  if (diagnostics.length === 0) return undefined;
  const errors = diagnostics.filter((d) => d.severity === 'error');
  const shown = errors.length > 0 ? errors : diagnostics;
  return { diagnostic: checker.format(shown, 1).split('\n')[0], diagnostics: shown.length };
}
