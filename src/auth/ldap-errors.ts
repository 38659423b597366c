/**
 * Turns whatever ldapts throws into one typed value, in one place, so the
 * backend can tell "the directory said no" (an LDAP result code) from "the
 * directory could not be asked" (refused, reset, timed out, TLS failed).
 *
 * Must not know: what a login is, or what the client is told.
 */
import { ResultCodeError } from 'ldapts';

/** RFC 4511 appendix A.1 result codes the backend treats specially. */
export const LDAP_RESULT = {
  noSuchObject: 32,
  invalidDNSyntax: 34,
  invalidCredentials: 49,
} as const;

export type LdapFailure =
  /** The server answered with a non-success result code. */
  | { readonly kind: 'result'; readonly code: number; readonly message: string }
  /** Our deadline, or ldapts' per-operation or connect timeout, fired. */
  | { readonly kind: 'timeout'; readonly message: string }
  /** No usable connection: refused, reset, closed, TLS handshake or certificate failure. */
  | { readonly kind: 'connection'; readonly message: string };

/** Thrown by the backend's own deadline; recognised by classifyLdapError. */
export class LdapDeadlineError extends Error {
  constructor(ms: number) {
    super(`no answer from the directory within ${ms} ms`);
    this.name = 'LdapDeadlineError';
  }
}

export function classifyLdapError(e: unknown): LdapFailure {
  if (e instanceof ResultCodeError) return { kind: 'result', code: e.code, message: e.message };
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof LdapDeadlineError || /timed? ?out/i.test(message)) return { kind: 'timeout', message };
  return { kind: 'connection', message };
}

export function describeLdapFailure(f: LdapFailure): string {
  return f.kind === 'result' ? `LDAP result ${f.code}: ${f.message}` : `${f.kind}: ${f.message}`;
}
