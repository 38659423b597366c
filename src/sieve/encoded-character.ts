/**
 * RFC 5228 section 2.4.2.4 encoded characters, decoded the way Exim does once
 * `encoded-character` is required: `${hex: 41 42}` and `${unicode: 263a}`,
 * prefix case-insensitive, malformed sequences left as they are, a well-formed
 * code point outside 0-D7FF / E000-10FFFF an error ("unicode character out of
 * range"). Later checks (folder names, addresses) look at the decoded text, so
 * `${hex:7c}` cannot smuggle a "|" past them.
 *
 * Must not know: where the string is used.
 */

export interface DecodeResult {
  value: string;
  /** Code points written that lie outside Unicode's scalar values. */
  outOfRange: string[];
}

const BLANK = '[ \\t\\r\\n]';
const ENCODED = new RegExp(
  `\\$\\{(hex|unicode):${BLANK}*([0-9A-Fa-f]+(?:${BLANK}+[0-9A-Fa-f]+)*)${BLANK}*\\}`,
  'gi',
);

export function decodeEncodedCharacters(input: string): DecodeResult {
  const outOfRange: string[] = [];
  if (input.indexOf('${') < 0) return { value: input, outOfRange };
  const value = input.replace(ENCODED, (whole, kind: string, body: string) => {
    const items = body.split(/[ \t\r\n]+/);
    if (kind.toLowerCase() === 'hex') {
      if (items.some((h) => h.length > 2)) return whole;
      return Buffer.from(items.map((h) => parseInt(h, 16))).toString('utf8');
    }
    let out = '';
    for (const h of items) {
      const trimmed = h.replace(/^0+(?=.)/, '');
      const cp = trimmed.length > 8 ? Infinity : parseInt(trimmed, 16);
      if (!(cp <= 0xd7ff || (cp >= 0xe000 && cp <= 0x10ffff))) {
        outOfRange.push(h);
        return whole;
      }
      out += String.fromCodePoint(cp);
    }
    return out;
  });
  return { value, outOfRange };
}
