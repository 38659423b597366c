/**
 * Splits one segment of a command line (the text between literals) into tokens.
 * RFC 5804 section 4: atoms, quoted strings with only \" and \\ escapes, and a
 * literal announcement `{n}` / `{n+}` that can only stand last on a segment.
 *
 * Must not know: which command is being parsed, or any limits beyond its input.
 */
import { ProtocolError } from './errors.js';

export type Token =
  | { readonly type: 'atom'; readonly value: string }
  | { readonly type: 'string'; readonly value: Buffer; readonly literal: boolean };

export interface SegmentTokens {
  readonly tokens: Token[];
  /** Set when the segment ends with `{n}` / `{n+}`: the literal that follows. */
  readonly literalLength?: number;
  readonly error?: ProtocolError;
}

const SP = 0x20;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;

/** RFC 5804 section 4: ATOM-CHAR excludes specials, CTLs, SP, DQUOTE, braces, parentheses. */
function isAtomChar(byte: number): boolean {
  if (byte <= 0x20 || byte >= 0x7f) return false;
  return (
    byte !== DQUOTE &&
    byte !== 0x28 &&
    byte !== 0x29 &&
    byte !== LBRACE &&
    byte !== 0x7d &&
    byte !== 0x25 &&
    byte !== 0x2a &&
    byte !== BACKSLASH
  );
}

/** Matches a trailing literal announcement; the digits are bounded so the number stays exact. */
const LITERAL_TAIL = /(?:^|[ ])\{(\d{1,12})(\+?)\}$/;

/** Returns the declared length if the raw segment ends with a literal announcement. */
export function literalAnnouncement(segment: Buffer): number | undefined {
  // The announcement is short; look only at the tail to keep this O(1).
  const tail = segment.subarray(Math.max(0, segment.length - 16)).toString('latin1');
  const m = LITERAL_TAIL.exec(tail);
  if (!m) return undefined;
  return Number(m[1]);
}

export function tokenizeSegment(segment: Buffer): SegmentTokens {
  // A SASL cancel sent bare (sieve-connect does) rather than as the string "*" that
  // RFC 5804 section 2.1 asks for: let it through as an atom so it can be honoured.
  if (segment.length === 1 && segment[0] === 0x2a) return { tokens: [{ type: 'atom', value: '*' }] };
  const tokens: Token[] = [];
  let i = 0;
  const n = segment.length;
  while (i < n) {
    const c = segment[i];
    if (c === SP) {
      i++;
      continue;
    }
    if (c === DQUOTE) {
      const parsed = readQuoted(segment, i + 1);
      if (parsed instanceof ProtocolError) return { tokens, error: parsed };
      tokens.push({ type: 'string', value: parsed.value, literal: false });
      i = parsed.end;
      if (i < n && segment[i] !== SP) {
        return { tokens, error: ProtocolError.recoverable('Expected a space after a quoted string') };
      }
      continue;
    }
    if (c === LBRACE) {
      const m = /^\{(\d{1,12})(\+?)\}$/.exec(segment.subarray(i).toString('latin1'));
      if (!m) return { tokens, error: ProtocolError.recoverable('Malformed literal announcement') };
      return { tokens, literalLength: Number(m[1]) };
    }
    if (!isAtomChar(c)) {
      return { tokens, error: ProtocolError.recoverable('Invalid character in command') };
    }
    const start = i;
    while (i < n && isAtomChar(segment[i])) i++;
    if (i < n && segment[i] !== SP) {
      return { tokens, error: ProtocolError.recoverable('Invalid character in command') };
    }
    tokens.push({ type: 'atom', value: segment.toString('latin1', start, i) });
  }
  return { tokens };
}

function readQuoted(segment: Buffer, from: number): { value: Buffer; end: number } | ProtocolError {
  const out: number[] = [];
  let i = from;
  while (i < segment.length) {
    const c = segment[i];
    if (c === DQUOTE) return { value: Buffer.from(out), end: i + 1 };
    if (c === BACKSLASH) {
      const next = segment[i + 1];
      // RFC 5804 section 4: QUOTED-SPECIALS are only DQUOTE and "\".
      if (next !== DQUOTE && next !== BACKSLASH) {
        return ProtocolError.recoverable('Invalid escape in quoted string (only \\" and \\\\ are allowed)');
      }
      out.push(next);
      i += 2;
      continue;
    }
    // QUOTED-CHAR excludes CR, LF and NUL (segments never contain CR/LF).
    if (c === 0) return ProtocolError.recoverable('NUL in quoted string');
    out.push(c);
    i++;
  }
  return ProtocolError.recoverable('Unterminated quoted string');
}
