/**
 * Encodes server responses (RFC 5804 section 4) in the wire profile every known
 * client accepts (docs/managesieve-wire-profile.md):
 * bare `OK` on success, upper-case atoms, registered response codes only, quoted
 * strings where they are safe and `{n}` literals where they are not.
 *
 * Must not know: why a response is sent; sessions; storage.
 */

/** Only registered codes (RFC 5804 section 1.3): Cyrus isieve aborts on others. */
export type ResponseCode =
  | 'AUTH-TOO-WEAK'
  | 'ENCRYPT-NEEDED'
  | 'QUOTA'
  | 'QUOTA/MAXSCRIPTS'
  | 'QUOTA/MAXSIZE'
  | 'NONEXISTENT'
  | 'ALREADYEXISTS'
  | 'ACTIVE'
  | 'TRYLATER'
  | 'WARNINGS'
  | 'TRANSITION-NEEDED'
  | { readonly tag: Buffer }
  | { readonly sasl: string };

export type Status = 'OK' | 'NO' | 'BYE';

export interface Response {
  readonly status: Status;
  readonly code?: ResponseCode;
  /** Human-readable text; omitted on plain success (bare `OK`). */
  readonly text?: string;
}

const CRLF = '\r\n';

/**
 * A string as the client will read it. Quoted when it is short, 7-bit and free of
 * CR/LF/NUL (Cyrus isieve rejects 8-bit quoted strings; RFC 5804 erratum 2655 caps
 * quoted strings at 1024 octets), otherwise a `{n}` literal.
 */
export function encodeString(value: string | Buffer): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  if (canQuote(bytes, false)) return Buffer.from(quote(bytes), 'latin1');
  return encodeLiteral(bytes);
}

/**
 * A string that clients only accept quoted (LISTSCRIPTS names: Net_Sieve and
 * sieve-connect drop literal names; capability values). Raw UTF-8 is kept inside
 * the quotes; only `"` and `\` are escaped.
 */
export function encodeQuoted(value: string | Buffer): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const parts: number[] = [0x22];
  for (const b of bytes) {
    if (b === 0x22 || b === 0x5c) parts.push(0x5c);
    parts.push(b);
  }
  parts.push(0x22);
  return Buffer.from(parts);
}

export function encodeLiteral(bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`{${bytes.length}}${CRLF}`, 'latin1'), bytes]);
}

function canQuote(bytes: Buffer, allow8bit: boolean): boolean {
  if (bytes.length > 1024) return false;
  for (const b of bytes) {
    if (b === 0 || b === 0x0a || b === 0x0d) return false;
    if (!allow8bit && b > 0x7e) return false;
  }
  return true;
}

function quote(bytes: Buffer): string {
  return '"' + bytes.toString('latin1').replace(/[\\"]/g, (c) => '\\' + c) + '"';
}

function encodeCode(code: ResponseCode): Buffer {
  if (typeof code === 'string') return Buffer.from(`(${code})`, 'latin1');
  if ('tag' in code) {
    // A literal inside the parentheses must still end in CRLF (stalwart#396 broke
    // sieve-connect by omitting it); encodeString takes care of that by quoting
    // whenever it can.
    return Buffer.concat([Buffer.from('(TAG ', 'latin1'), encodeString(code.tag), Buffer.from(')', 'latin1')]);
  }
  return Buffer.concat([Buffer.from('(SASL ', 'latin1'), encodeQuoted(code.sasl), Buffer.from(')', 'latin1')]);
}

export function encodeResponse(response: Response): Buffer {
  const parts: Buffer[] = [Buffer.from(response.status, 'latin1')];
  if (response.code !== undefined) parts.push(Buffer.from(' '), encodeCode(response.code));
  if (response.text !== undefined && response.text !== '') parts.push(Buffer.from(' '), encodeString(response.text));
  parts.push(Buffer.from(CRLF));
  return Buffer.concat(parts);
}

/** One `"NAME" "value"` capability line (values never contain `"` or `\`: KDE and Net_Sieve do not unescape). */
export function encodeCapabilityLine(name: string, value?: string): Buffer {
  const text = value === undefined ? `"${name}"` : `"${name}" "${value}"`;
  return Buffer.from(text + CRLF, 'utf8');
}

export const ok = (code?: ResponseCode): Response => (code === undefined ? { status: 'OK' } : { status: 'OK', code });
export const no = (text: string, code?: ResponseCode): Response =>
  code === undefined ? { status: 'NO', text } : { status: 'NO', code, text };
export const bye = (text: string, code?: ResponseCode): Response =>
  code === undefined ? { status: 'BYE', text } : { status: 'BYE', code, text };
