/**
 * A linear pre-scan that measures nesting before the recursive-descent parser
 * runs, so that a script nested thousands deep gets a clear "too deep" error at
 * its line instead of a stack overflow (Exim itself crashes and defers mail:
 * exim-sieve.md section 5 item 11). It skips strings, comments and `text:`
 * bodies roughly as the grammar does; where it is unsure (an unterminated
 * string) it stops and leaves the verdict to the parser.
 *
 * Must not know: command names or any other rule.
 */
import type { DiagnosticSink } from './diagnostics.js';

/** Slack over the configured limit; the structure pass reports exact depths. */
const SLACK = 8;

// Character codes, not regular expressions on one-character strings: this loop
// sees every character of a 1 MiB script (profiled: the regular expressions
// were most of its time).
function isWordChar(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x5f;
}

/** `text:` in any case at `i`. */
function isTextColon(text: string, i: number): boolean {
  return (
    (text.charCodeAt(i) | 0x20) === 0x74 &&
    (text.charCodeAt(i + 1) | 0x20) === 0x65 &&
    (text.charCodeAt(i + 2) | 0x20) === 0x78 &&
    (text.charCodeAt(i + 3) | 0x20) === 0x74 &&
    text.charCodeAt(i + 4) === 0x3a
  );
}

/** False after reporting a script that nests deeper than the limit. */
export function prescanNesting(text: string, maxNesting: number, sink: DiagnosticSink): boolean {
  const limit = maxNesting + SLACK;
  let brackets = 0;
  let chain = 0;
  const n = text.length;
  let i = 0;
  const fail = (at: number): boolean => {
    sink.error({ start: at, end: at }, `script nests deeper than the limit of ${maxNesting}`, 'limit');
    return false;
  };
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x0a) {
      i++;
    } else if (c === 0x22 /* " */) {
      i++;
      while (i < n && text.charCodeAt(i) !== 0x22) {
        if (text.charCodeAt(i) === 0x5c) i++;
        i++;
      }
      if (i >= n) return true;
      i++;
    } else if (c === 0x23 /* # */) {
      const e = text.indexOf('\n', i);
      if (e < 0) return true;
      i = e;
    } else if (c === 0x2f && text.charCodeAt(i + 1) === 0x2a /* */) {
      const e = text.indexOf('*/', i + 2);
      if (e < 0) return true;
      i = e + 2;
    } else if ((c === 0x74 || c === 0x54) && isTextColon(text, i) && !isWordChar(text.charCodeAt(i - 1))) {
      // Skip to the terminating "." line.
      let e = text.indexOf('\n', i);
      while (e >= 0) {
        const next = text.indexOf('\n', e + 1);
        const l = text.slice(e + 1, next < 0 ? n : next);
        if (l === '.' && next >= 0) {
          e = next;
          break;
        }
        e = next;
      }
      if (e < 0) return true;
      i = e + 1;
    } else if (c === 0x7b || c === 0x28 || c === 0x5b /* { ( [ */) {
      brackets++;
      chain = 0;
      if (brackets > limit) return fail(i);
      i++;
    } else if (c === 0x7d || c === 0x29 || c === 0x5d /* } ) ] */) {
      brackets = Math.max(0, brackets - 1);
      chain = 0;
      i++;
    } else if (c === 0x3b || c === 0x2c /* ; , */) {
      chain = 0;
      i++;
    } else if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f) {
      // Identifiers in a row nest tests ("not not not ..."); a tag does not.
      const tag = text.charCodeAt(i - 1) === 0x3a;
      while (i < n && isWordChar(text.charCodeAt(i))) i++;
      if (!tag && ++chain + brackets > limit) return fail(i);
    } else {
      i++;
    }
  }
  return true;
}
