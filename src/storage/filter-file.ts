/**
 * The filter file Exim reads, as bytes: rendering it from a stored script, and
 * recognising what is already at the filter path.
 *
 * Exim (src/rda.c; docs/exim-dialect.md) treats a file as Sieve when,
 * after leading white space, it starts with `#`, `sieve`, `filter` in any case with
 * optional blanks between; its Sieve parser expects LF line ends; anything else is an
 * Exim filter or a plain forward list. We always write LF, a `# Sieve filter` first
 * line, and a second comment line that marks the file as ours, so a later start
 * recognises it and never "imports" its own output.
 *
 * Must not know: where files live, how they are written, script names.
 */
import { mergeRequires } from '../sieve/merge-requires.js';

export const SIEVE_HEADER_LINE = '# Sieve filter';
/** Exim's MAX_FILTER_SIZE: a larger filter file defers delivery (exim-sieve.md 10.2). */
export const EXIM_MAX_FILTER_BYTES = 1024 * 1024;
/** Second line of every filter tsieved writes; how we recognise our own files. */
export const TSIEVED_MARKER_LINE =
  '# Managed by tsieved (ManageSieve). Edits to this file will be overwritten; change the script instead.';

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
// Exim's rda_is_filter(), applied to a whole file (leading white space allowed).
const EXIM_SIEVE_START = /^\s*#\s*sieve\s*filter/i;
// The same test confined to the first line, for "does the script already begin with it".
const SIEVE_FIRST_LINE = /^[ \t]*#[ \t]*sieve[ \t]*filter/i;

/** Does Exim read these bytes as a Sieve filter? */
export function isSieveFilter(bytes: Buffer): boolean {
  // latin1 maps bytes 1:1, so non-UTF-8 content cannot break the test.
  return EXIM_SIEVE_START.test(bytes.subarray(0, 512).toString('latin1'));
}

/** Strips a UTF-8 BOM and turns CRLF and lone CR into LF (Exim is built without RFC_EOL). */
export function normaliseLineEnds(script: Buffer): Buffer {
  const body = script.subarray(0, 3).equals(BOM) ? script.subarray(3) : script;
  if (!body.includes(0x0d)) return Buffer.from(body);
  const out = Buffer.alloc(body.length);
  let n = 0;
  for (let i = 0; i < body.length; i++) {
    const b = body[i];
    if (b === 0x0d) {
      out[n++] = 0x0a;
      if (body[i + 1] === 0x0a) i++;
    } else {
      out[n++] = b;
    }
  }
  return out.subarray(0, n);
}

/**
 * The filter file for a script: `# Sieve filter` (the script's own first line when it
 * already is one, so there is never a second), the tsieved marker line, the rest of
 * the script with LF line ends and its leading requires merged into one where Exim
 * needs that, ending in LF.
 */
export function renderFilter(script: Buffer): Buffer {
  let body = normaliseLineEnds(script);
  const firstLf = body.indexOf(0x0a);
  const firstLine = (firstLf < 0 ? body : body.subarray(0, firstLf)).toString('latin1');
  let header = SIEVE_HEADER_LINE;
  if (SIEVE_FIRST_LINE.test(firstLine)) {
    header = firstLine;
    body = firstLf < 0 ? Buffer.alloc(0) : body.subarray(firstLf + 1);
  }
  // Exim reads only requires written right after the previous ";" (sieve/merge-requires.ts).
  const merged = mergeRequires(body.toString('latin1'));
  if (merged !== undefined) body = Buffer.from(merged, 'latin1');
  const parts = [Buffer.from(header, 'latin1'), Buffer.from('\n' + TSIEVED_MARKER_LINE + '\n', 'latin1'), body];
  if (body.length > 0 && body[body.length - 1] !== 0x0a) parts.push(Buffer.from('\n'));
  return Buffer.concat(parts);
}

/**
 * Did tsieved write this file (a Sieve first line, then our marker line)? The first
 * line is the script's own when it was a Sieve header, so it may be long: look at
 * the first two lines whole, not at a fixed-size head.
 */
export function isTsievedFilter(bytes: Buffer): boolean {
  const firstLf = bytes.indexOf(0x0a);
  if (firstLf < 0) return false;
  const secondLf = bytes.indexOf(0x0a, firstLf + 1);
  if (secondLf < 0) return false;
  const first = bytes.subarray(0, firstLf).toString('latin1');
  return (
    SIEVE_FIRST_LINE.test(first) && bytes.subarray(firstLf + 1, secondLf).toString('latin1') === TSIEVED_MARKER_LINE
  );
}
