/**
 * Turns the bytes a ManageSieve client sent into the text the grammar parses.
 * Refuses what Exim or the filter file cannot carry: NUL, invalid UTF-8 (policy:
 * RFC 5228 section 8.1 says scripts are UTF-8), a CR that is not part of CRLF
 * (RFC 5228 section 8.1; Exim only knows LF: exim-sieve.md section 3), and
 * scripts over the size limit.
 *
 * The text handed on is what Exim will read from the filter file that
 * src/storage/filter-file.ts renders: no byte-order mark, LF line ends, ending
 * in LF. Line numbers are unchanged by that.
 *
 * Must not know: the grammar or any Sieve command.
 */
import { DiagnosticSink } from './diagnostics.js';

export interface DecodedInput {
  /** LF-only text, or undefined when the bytes were refused. */
  text: string | undefined;
  /** Length of the part of `text` the user wrote (without the appended final LF). */
  userLength: number;
}

/** Offset of the first byte that breaks UTF-8 (RFC 3629), or -1. */
export function firstInvalidUtf8(buf: Uint8Array): number {
  let i = 0;
  const n = buf.length;
  while (i < n) {
    const b = buf[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
      min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      min = 0x10000;
    } else return i;
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const c = buf[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

/** Line and column (in code points, as diagnostics.ts counts) of a byte offset. */
function positionOf(buf: Buffer, offset: number): { line: number; column: number } {
  const before = buf.subarray(0, offset);
  let line = 1;
  let lastLf = -1;
  for (let i = 0; i < before.length; i++) {
    if (before[i] === 0x0a) {
      line++;
      lastLf = i;
    }
  }
  const column = [...before.subarray(lastLf + 1).toString('utf8')].length + 1;
  return { line, column };
}

export function decodeInput(script: Buffer, maxBytes: number, sink: DiagnosticSink): DecodedInput {
  if (script.length > maxBytes) {
    sink.error({ line: 1, column: 1 }, `script is ${script.length} bytes, more than the limit of ${maxBytes}`, 'limit');
    return { text: undefined, userLength: 0 };
  }
  const nul = script.indexOf(0);
  if (nul >= 0) {
    sink.error(positionOf(script, nul), 'NUL character is not allowed in a Sieve script', 'input');
    return { text: undefined, userLength: 0 };
  }
  const bad = firstInvalidUtf8(script);
  if (bad >= 0) {
    sink.error(
      positionOf(script, bad),
      `invalid UTF-8 at byte ${bad} (0x${script[bad].toString(16).padStart(2, '0')}); scripts must be UTF-8`,
      'input',
    );
    return { text: undefined, userLength: 0 };
  }
  let cr = script.indexOf(0x0d);
  while (cr >= 0) {
    if (script[cr + 1] !== 0x0a) {
      sink.error(positionOf(script, cr), 'carriage return without line feed; lines end with CRLF or LF', 'input');
      return { text: undefined, userLength: 0 };
    }
    cr = script.indexOf(0x0d, cr + 2);
  }
  // The BOM is stripped by the filter writer (Exim would otherwise not see the
  // "# Sieve filter" line), so it is not part of what Exim parses.
  let text = script.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.indexOf('\r') >= 0) text = text.replace(/\r\n/g, '\n');
  // The filter file always ends in LF, so a final comment or "." line is closed.
  const userLength = text.length;
  if (text.length > 0 && !text.endsWith('\n')) text += '\n';
  return { text, userLength };
}
