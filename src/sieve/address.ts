/**
 * Address syntax. Exim's `redirect` only looks for an "@" (exim-sieve.md
 * section 5 item 9), so "a@b, c@d" or "x@" pass there and fail at delivery; we
 * require an RFC 5321 section 4.1.2 Mailbox (ASCII, dot-string or
 * quoted-string local part, host name or address literal). Vacation `:from`
 * may also carry a display name (RFC 5322 section 3.4 name-addr); inside its
 * `<...>` Exim's parse_extract_address refuses address literals unless
 * allow_domain_literals is set, which it is not by default ("domain literals
 * not allowed", verified with exim4 -bf), while a bare `bob@[192.0.2.1]` passes.
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
    // RFC 5321 section 4.1.3: the "IPv6:" tag is case-insensitive, as ABNF strings are.
    const lit = /^\[(?:IPv6:([0-9A-Fa-f:.]+)|([0-9.]+))\]$/i.exec(domain);
    if (lit === null || (lit[2] !== undefined && !IPV4.test(lit[2]))) return `invalid address literal "${domain}"`;
    return undefined;
  }
  if (domain.length > 253) return 'domain longer than 253 characters';
  for (const label of domain.split('.')) {
    if (!LABEL.test(label)) return `invalid domain "${domain}"`;
  }
  return undefined;
}

/** Index of the first "<" outside quoted strings, or -1. */
function angleOpen(t: string): number {
  for (let i = 0; i < t.length; i++) {
    const c = t[i];
    if (c === '"') {
      for (i++; i < t.length && t[i] !== '"'; i++) if (t[i] === '\\') i++;
    } else if (c === '<') return i;
  }
  return -1;
}

/**
 * Exim's address parser skips ASCII white space only (String.prototype.trim would
 * also drop U+00A0 and the like, which Exim keeps: as part of the local part at
 * the start, and as "may not follow" garbage at the end).
 */
function asciiTrim(s: string): string {
  return s.replace(/^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g, '');
}

/**
 * Why `s` is not an RFC 5322 mailbox (addr-spec, or display name followed by
 * `<addr-spec>`), or undefined.
 */
export function headerMailboxProblem(s: string): string | undefined {
  // Exim writes the value into the reply's From: header as it is; a line break
  // would end the headers there (To and Subject would become body).
  if (/[\r\n]/.test(s)) return 'line breaks are not allowed in an address';
  const t = asciiTrim(s);
  if (t.length === 0) return 'empty address';
  const open = t.endsWith('>') ? angleOpen(t) : -1;
  if (open < 0) {
    if (/^[^"]*\(/.test(t))
      return 'comments "(...)" are not supported; write a display name: "Name <user@example.org>"';
    return mailboxProblem(t);
  }
  const display = asciiTrim(t.slice(0, open));
  if (display !== '' && !DISPLAY_NAME.test(display)) {
    // Exim's parser refuses specials such as "]" or "," outside quotes
    // (verified with exim4 -bf).
    return 'invalid display name (put it in double quotes)';
  }
  const addr = asciiTrim(t.slice(open + 1, -1));
  if (addr.startsWith('@')) return 'source routes ("<@host:user@example.org>") are not supported';
  const p = mailboxProblem(addr);
  if (p !== undefined) return p;
  if (addr.endsWith(']')) {
    const literal = addr.slice(addr.lastIndexOf('@') + 1);
    return `address literal "${literal}" is not allowed inside <...> (Exim: "domain literals not allowed"); use a domain name`;
  }
  return undefined;
}
