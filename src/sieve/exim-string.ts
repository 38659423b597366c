/**
 * The bytes Exim 4.96 holds for a Sieve string once parse_string (sieve.c) has
 * read it, with the script offset each byte came from, so that checks on the
 * string (encoded characters first) see what Exim sees and can point into the
 * script:
 * - quoted string: `\x` is x for any x (an escaped LF is a bare LF); a raw LF
 *   is stored as CR LF;
 * - `text:`: every line ends in CR LF; a leading ".." becomes "." on every line
 *   but the first, which Exim never checks (exim-sieve.md section 3).
 * The grammar's `value` is the same text as a JS string.
 *
 * Must not know: what the string is used for.
 */
import type { SieveString } from './ast.js';

export interface EximString {
  bytes: Uint8Array;
  /** Per byte, the offset in the script text (UTF-16 units, as in Span) it came from. */
  from: number[];
}

function pushCodePoint(bytes: number[], from: number[], cp: number, at: number): void {
  const start = bytes.length;
  if (cp < 0x80) bytes.push(cp);
  else if (cp < 0x800) bytes.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
  else if (cp < 0x10000) bytes.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  else bytes.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  for (let k = start; k < bytes.length; k++) from.push(at);
}

/** Copies source[start, end) as UTF-8. */
function pushText(bytes: number[], from: number[], source: string, start: number, end: number): void {
  for (let i = start; i < end;) {
    const cp = source.codePointAt(i)!;
    pushCodePoint(bytes, from, cp, i);
    i += cp > 0xffff ? 2 : 1;
  }
}

export function eximString(s: SieveString, source: string): EximString {
  const bytes: number[] = [];
  const from: number[] = [];
  if (s.kind === 'quoted') {
    const end = s.end - 1;
    for (let i = s.start + 1; i < end;) {
      let c = source.codePointAt(i)!;
      if (c === 0x5c /* \ */ && i + 1 < end) {
        i++;
        c = source.codePointAt(i)!;
      } else if (c === 0x0a) {
        pushCodePoint(bytes, from, 0x0d, i);
      }
      pushCodePoint(bytes, from, c, i);
      i += c > 0xffff ? 2 : 1;
    }
  } else {
    // The body starts after the line holding "text:" (and maybe a # comment).
    let pos = source.indexOf('\n', s.start) + 1;
    s.rawLines.forEach((line, k) => {
      const skip = k > 0 && line.startsWith('..') ? 1 : 0;
      pushText(bytes, from, source, pos + skip, pos + line.length);
      pushCodePoint(bytes, from, 0x0d, pos + line.length);
      pushCodePoint(bytes, from, 0x0a, pos + line.length);
      pos += line.length + 1;
    });
  }
  return { bytes: Uint8Array.from(bytes), from };
}
