/**
 * Address syntax. Exim's `redirect` only looks for an "@" (exim-sieve.md
 * section 5 item 9), so "a@b, c@d" or "x@" pass there and fail at delivery; we
 * require an RFC 5321 section 4.1.2 Mailbox (ASCII, dot-string or
 * quoted-string local part, host name or address literal). Vacation `:from`
 * may also carry a display name (RFC 5322 section 3.4 name-addr).
 *
 * Must not know: Sieve, or which command asks.
 */

const ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]";
const DOT_STRING = new RegExp(`^${ATEXT}+(?:\\.${ATEXT}+)*$`);
const QUOTED_STRING = /^"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"$/;
const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/**
 * RFC 5322 section 3.2.5 phrase, as far as Exim agrees: words are atoms (with
 * "." as obs-phrase allows, and UTF-8 letters) or quoted strings.
 * Comments are left out on purpose.
 */
const WORD = `(?:[A-Za-z0-9!#$%&'*+/=?^_\`{|}~.\u0080-\uffff-]+|"(?:[^"\\\\\r\n]|\\\\.)*")`;
const DISPLAY_NAME = new RegExp(`^${WORD}(?:[ \t]+${WORD})*$`);

/** Why `s` is not an RFC 5321 mailbox, or undefined when it is one. */
export function mailboxProblem(s: string): string | undefined {
  if (s.length === 0) return 'empty address';
  if (s.length > 254) return 'address longer than 254 characters';
  const at = s.lastIndexOf('@');
  if (at < 0) return 'no "@"';
  const local = s.slice(0, at);
  const domain = s.slice(at + 1);
  if (local.length === 0) return 'empty local part';
  if (local.length > 64) return 'local part longer than 64 characters';
  if (!DOT_STRING.test(local) && !QUOTED_STRING.test(local)) return `invalid local part "${local}"`;
  if (domain.length === 0) return 'empty domain';
  if (domain.startsWith('[')) {
    const lit = /^\[(?:IPv6:([0-9A-Fa-f:.]+)|([0-9.]+))\]$/.exec(domain);
    if (lit === null || (lit[2] !== undefined && !IPV4.test(lit[2]))) return `invalid address literal "${domain}"`;
    return undefined;
  }
  if (domain.length > 253) return 'domain longer than 253 characters';
  for (const label of domain.split('.')) {
    if (!LABEL.test(label)) return `invalid domain "${domain}"`;
  }
  return undefined;
}

/**
 * Why `s` is not an RFC 5322 mailbox (addr-spec, or display name followed by
 * `<addr-spec>`), or undefined.
 */
export function headerMailboxProblem(s: string): string | undefined {
  const t = s.trim();
  if (t.length === 0) return 'empty address';
  const angle = /^(.*?)<([^<>]*)>$/s.exec(t);
  if (angle === null) return mailboxProblem(t);
  const display = angle[1]!.trim();
  if (display !== '' && !DISPLAY_NAME.test(display)) {
    // Exim's parser refuses specials such as "]" or "," outside quotes
    // (verified with exim4 -bf).
    return 'invalid display name (put it in double quotes)';
  }
  return mailboxProblem(angle[2]!.trim());
}
