/**
 * `mailto:` notification URIs as Exim 4.96 parses them (exim-sieve.md section
 * 7; RFC 5436 / RFC 6068): the scheme must be exactly "mailto:" in lower case,
 * `%xx` must be valid hex ("Invalid URI encoding"), recipients are separated by
 * "%2C". Header fields after "?" are refused outright: 4.96 stores each value in
 * place of its name ("?subject=Hi" makes a header "Hi:"), so no use of them does
 * what the user meant.
 *
 * Must not know: Sieve syntax or the notify command's other arguments.
 */
import { mailboxProblem } from './address.js';

export interface MailtoResult {
  recipients: string[];
  problem?: string;
}

/** Characters Exim allows unencoded in the recipient part. */
const RECIPIENT_CHARS = /^[A-Za-z0-9$\-_.+!*',%@]*$/;

export function parseMailto(uri: string): MailtoResult {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(uri);
  if (scheme === null) return { recipients: [], problem: 'not a URI (expected "mailto:address")' };
  if (scheme[1] !== 'mailto') {
    return {
      recipients: [],
      problem:
        scheme[1].toLowerCase() === 'mailto'
          ? 'the scheme must be written "mailto:" in lower case for Exim'
          : `unknown notification method "${scheme[1]}" (only "mailto" is supported)`,
    };
  }
  const rest = uri.slice('mailto:'.length);
  const q = rest.indexOf('?');
  const to = q < 0 ? rest : rest.slice(0, q);
  if (q >= 0) {
    return {
      recipients: [],
      problem: 'header fields after "?" are not supported: Exim 4.96 mis-parses them; use :message for the subject',
    };
  }
  if (!RECIPIENT_CHARS.test(to)) return { recipients: [], problem: 'characters in the recipient must be %-encoded' };
  if (/%(?![0-9A-Fa-f]{2})/.test(to)) return { recipients: [], problem: 'invalid %-encoding' };
  const recipients = to
    .split(/%2C/i)
    .map((r) => r.replace(/%([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))));
  if (recipients.length === 1 && recipients[0] === '') return { recipients: [], problem: 'no recipient address' };
  for (const r of recipients) {
    const p = mailboxProblem(r);
    if (p !== undefined) return { recipients, problem: `invalid recipient "${r}": ${p}` };
  }
  return { recipients };
}
