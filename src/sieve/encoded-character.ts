/**
 * RFC 5228 section 2.4.2.4 encoded characters, decoded exactly as Exim 4.96's
 * string_decode, hex_decode and unicode_decode (src/src/sieve.c) do once
 * `encoded-character` is required. The input is the bytes Exim holds for the
 * string (exim-string.ts), not the script text: a raw line break in a quoted
 * string or a `text:` body is CR LF there.
 *
 * - `${hex:` and `${unicode:` match case-insensitively; the body runs to the
 *   first "}" after the prefix.
 * - Blanks are SP, TAB and LF only. The CR of a raw line break is not one, so
 *   such a sequence is malformed and stays literal (an escaped `\` LF is a
 *   bare LF, a blank).
 * - `${hex:}` takes items of 1-2 hex digits separated by blanks.
 * - `${unicode:}` items: leading zeros are skipped, then at most 7 hex digits
 *   are read. An item with 7 significant digits or outside 0-D7FF /
 *   E000-10FFFF is an error ("unicode character out of range") as soon as it
 *   is read, before Exim looks at what follows: `${unicode:110000x}` is an
 *   error, `${unicode:41x 110000}` is malformed (literal) text.
 * - A malformed sequence is copied one byte at a time, and scanning goes on at
 *   the next byte, so a well-formed sequence inside it is still decoded.
 * - Code points above FFFF are written with a wrong second byte (c>>10 where
 *   UTF-8 needs c>>12): `${unicode:1F600}` is not U+1F600 for Exim (verified
 *   with exim4 -bf: it does not match a Subject holding that character).
 *
 * Must not know: where the string is used.
 */

export interface EncodedProblem {
  /** `range`: Exim refuses the script; `astral`: Exim writes the wrong character. */
  kind: 'range' | 'astral';
  /** Index of the item's first byte (leading zeros included) in the input. */
  at: number;
  /** The item as written. */
  item: string;
}

export interface DecodeResult {
  /** The decoded bytes; the input unchanged after a `range` problem (Exim stops there). */
  bytes: Uint8Array;
  problems: EncodedProblem[];
}

const CLOSE = 0x7d; // }

function isBlank(b: number | undefined): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a;
}

function hexValue(b: number | undefined): number {
  if (b === undefined) return -1;
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  const l = b | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

function startsWithCi(src: Uint8Array, at: number, prefix: string): boolean {
  if (at + prefix.length > src.length) return false;
  for (let k = 0; k < prefix.length; k++) {
    let b = src[at + k];
    if (b >= 0x41 && b <= 0x5a) b |= 0x20;
    if (b !== prefix.charCodeAt(k)) return false;
  }
  return true;
}

/** hex_decode: the bytes of src[start, end), or undefined when malformed. */
function hexDecode(src: Uint8Array, start: number, end: number): number[] | undefined {
  const out: number[] = [];
  let i = start;
  while (isBlank(src[i])) i++;
  do {
    let x = 0;
    let d = 0;
    for (; d < 2 && i < end && hexValue(src[i]) >= 0; d++, i++) x = (x << 4) | hexValue(src[i]);
    if (d === 0) return undefined;
    out.push(x);
    if (i === end) return out;
    if (!isBlank(src[i])) return undefined;
    while (isBlank(src[i])) i++;
  } while (i < end);
  return out;
}

type UnicodeResult = { bytes: number[]; astral: EncodedProblem[] } | { malformed: true } | { range: EncodedProblem };

function itemText(src: Uint8Array, from: number, to: number): string {
  return Buffer.from(src.subarray(from, to)).toString('latin1');
}

/** unicode_decode on src[start, end). */
function unicodeDecode(src: Uint8Array, start: number, end: number): UnicodeResult {
  const out: number[] = [];
  const astral: EncodedProblem[] = [];
  let i = start;
  while (isBlank(src[i])) i++;
  do {
    for (;;) {
      const item = i;
      while (i < end && src[i] === 0x30) i++;
      let c = 0;
      let d = 0;
      for (; d < 7 && i < end && hexValue(src[i]) >= 0; d++, i++) c = (c << 4) | hexValue(src[i]);
      if (i === item) return { malformed: true };
      if (d === 7 || !(c <= 0xd7ff || (c >= 0xe000 && c <= 0x10ffff))) {
        // Exim reports this before reading on: what follows the item does not matter.
        let e = i;
        while (e < end && hexValue(src[e]) >= 0) e++;
        return { range: { kind: 'range', at: item, item: itemText(src, item, e) } };
      }
      if (c < 0x80) out.push(c);
      else if (c <= 0x7ff) out.push(0xc0 + (c >> 6), 0x80 + (c & 0x3f));
      else if (c <= 0xffff) out.push(0xe0 + (c >> 12), 0x80 + ((c >> 6) & 0x3f), 0x80 + (c & 0x3f));
      else {
        // Exim 4.96's bytes, not UTF-8's (see above).
        out.push(0xf0 + (c >> 18), 0x80 + ((c >> 10) & 0x3f), 0x80 + ((c >> 6) & 0x3f), 0x80 + (c & 0x3f));
        astral.push({ kind: 'astral', at: item, item: itemText(src, item, i) });
      }
      if (!isBlank(src[i])) break;
      while (isBlank(src[i])) i++;
      if (i === end) return { bytes: out, astral };
    }
  } while (i < end);
  return { bytes: out, astral };
}

/** string_decode over Exim's bytes of one string. */
export function decodeEncodedCharacters(src: Uint8Array): DecodeResult {
  const problems: EncodedProblem[] = [];
  if (src.indexOf(0x24) < 0) return { bytes: src, problems };
  const out: number[] = [];
  // The first "}" at or after a position; positions only grow, so one search
  // serves every "${" before it (searching afresh for each made a string of many
  // "${hex:" quadratic: 28 s for 1 MiB).
  let close = -2;
  const closeFrom = (from: number): number => {
    if (close === -1 || close >= from) return close;
    close = src.indexOf(CLOSE, from);
    return close;
  };
  let i = 0;
  while (i < src.length) {
    if (startsWithCi(src, i, '${hex:')) {
      const brace = closeFrom(i + 6);
      const bytes = brace < 0 ? undefined : hexDecode(src, i + 6, brace);
      if (bytes !== undefined) {
        for (const b of bytes) out.push(b);
        i = brace + 1;
        continue;
      }
    } else if (startsWithCi(src, i, '${unicode:')) {
      const brace = closeFrom(i + 10);
      if (brace >= 0) {
        const r = unicodeDecode(src, i + 10, brace);
        if ('range' in r) return { bytes: src, problems: [...problems, r.range] };
        if ('bytes' in r) {
          for (const b of r.bytes) out.push(b);
          for (const p of r.astral) problems.push(p);
          i = brace + 1;
          continue;
        }
      }
    }
    out.push(src[i]);
    i++;
  }
  return { bytes: Uint8Array.from(out), problems };
}
