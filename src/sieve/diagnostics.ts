/**
 * Diagnostics: the one result type of validation (errors refuse a script,
 * warnings are reported with OK), a sink the passes write to, and the client
 * wording for NO / OK (WARNINGS) responses (RFC 5804 section 2.6 and 2.12: the
 * human-readable text should name the line of the first error).
 *
 * Must not know: the wire encoding of responses (quoting is the protocol's job).
 */
import type { Position, Span } from './ast.js';

export type Severity = 'error' | 'warning';

/**
 * Why a diagnostic was raised: `syntax` (RFC 5228 grammar), `input` (bytes,
 * encoding, line ends), `dialect` (what Exim's parser or run time refuses),
 * `semantic` (RFC extension rules), `policy` (our deliberate strictness),
 * `limit` (size, nesting, counts), `internal` (a validator bug, turned into a
 * refusal instead of a crash).
 */
export type DiagnosticCode = 'syntax' | 'input' | 'dialect' | 'semantic' | 'policy' | 'limit' | 'internal';

export interface Diagnostic {
  severity: Severity;
  line: number;
  column: number;
  message: string;
  /** Optional classification; added compatibly to the agreed shape. */
  code?: DiagnosticCode;
}

/**
 * Diagnostics kept per script. A 1 MiB script of one repeated mistake would
 * otherwise produce hundreds of thousands; nobody reads past the first few and
 * clients are sent at most max_reported_errors.
 */
export const MAX_DIAGNOSTICS = 500;

export class DiagnosticSink {
  readonly items: Diagnostic[] = [];
  private sawError = false;
  private text = '';
  private userLength = Number.MAX_SAFE_INTEGER;
  private lineStarts: number[] | undefined;
  /** Offsets of the high halves of surrogate pairs, ascending. */
  private pairs: number[] | undefined;

  /**
   * The decoded text that Span offsets refer to. `userLength` is where the
   * user's own text ends (input.ts appends a line feed the user did not write):
   * positions past it are reported there, not on a line that does not exist.
   */
  setText(text: string, userLength = text.length): void {
    this.text = text;
    this.userLength = Math.min(userLength, text.length);
    this.lineStarts = undefined;
    this.pairs = undefined;
  }

  /**
   * 1-based line and column of an offset into the text. Columns count code
   * points, which is what a person counts as characters: JavaScript offsets
   * count UTF-16 units, so an emoji (one character, four UTF-8 bytes) would
   * otherwise push every later column on its line one too far.
   */
  positionOf(offset: number): Position {
    offset = Math.max(0, Math.min(offset, this.userLength));
    if (this.lineStarts === undefined) {
      const starts = [0];
      for (let i = this.text.indexOf('\n'); i >= 0; i = this.text.indexOf('\n', i + 1)) starts.push(i + 1);
      this.lineStarts = starts;
      const pairs: number[] = [];
      const re = /[\uD800-\uDBFF](?=[\uDC00-\uDFFF])/g;
      for (let m = re.exec(this.text); m !== null; m = re.exec(this.text)) pairs.push(m.index);
      this.pairs = pairs;
    }
    const starts = this.lineStarts;
    const lo = lastAtOrBelow(starts, offset);
    const lineStart = starts[lo];
    // Surrogate pairs that start on this line before the offset.
    const pairs = this.pairs!;
    const before = lastAtOrBelow(pairs, offset - 1) - lastAtOrBelow(pairs, lineStart - 1);
    return { line: lo + 1, column: offset - lineStart - before + 1 };
  }

  error(at: Span | Position, message: string, code: DiagnosticCode = 'semantic'): void {
    this.add('error', at, message, code);
  }

  warning(at: Span | Position, message: string, code: DiagnosticCode = 'semantic'): void {
    this.add('warning', at, message, code);
  }

  private add(severity: Severity, at: Span | Position, message: string, code: DiagnosticCode): void {
    // Past the cap, still keep a first error: it decides the verdict.
    if (this.items.length >= MAX_DIAGNOSTICS && (severity === 'warning' || this.sawError)) return;
    if (severity === 'error') this.sawError = true;
    const p = 'start' in at ? this.positionOf(at.start) : at;
    this.items.push({ severity, line: p.line, column: p.column, message: visible(message), code });
  }
}

/** Index of the last element <= x in an ascending array, or -1. */
function lastAtOrBelow(sorted: number[], x: number): number {
  let lo = -1;
  let hi = sorted.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (sorted[mid] <= x) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * Messages quote script strings, which may hold line breaks (CR LF, as Exim
 * stores them) or other control characters: show them escaped, so that a
 * message stays one line.
 */
function visible(message: string): string {
  return message.replace(/[\x00-\x1f\x7f]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

/** Position order, stable for equal positions (passes run in a meaningful order). */
export function sortDiagnostics(diags: readonly Diagnostic[]): Diagnostic[] {
  return diags
    .map((d, i) => ({ d, i }))
    .sort((a, b) => a.d.line - b.d.line || a.d.column - b.d.column || a.i - b.i)
    .map((x) => x.d);
}

export function hasErrors(diags: readonly Diagnostic[]): boolean {
  return diags.some((d) => d.severity === 'error');
}

/**
 * One diagnostic as Pigeonhole words it on the wire, which clients parse:
 * `line N: error: MESSAGE (column C)`, prefixed with `NAME: ` for a named
 * script (PUTSCRIPT). Roundcube's raw editor splits the text on `NAME:` and
 * reads `line N:` from each part to mark every line in error.
 */
export function formatDiagnosticForClient(d: Diagnostic, scriptName?: string): string {
  const prefix = scriptName === undefined ? '' : `${visible(scriptName)}: `;
  return `${prefix}line ${d.line}: ${d.severity}: ${d.message} (column ${d.column})`;
}

/**
 * Lines for a NO or OK (WARNINGS) response, one per diagnostic
 * (formatDiagnosticForClient), errors before warnings, at most `max` lines plus
 * a count of what was left out.
 */
export function formatDiagnosticsForClient(diags: readonly Diagnostic[], max: number, scriptName?: string): string {
  const ordered = [
    ...sortDiagnostics(diags.filter((d) => d.severity === 'error')),
    ...sortDiagnostics(diags.filter((d) => d.severity === 'warning')),
  ];
  const cap = Math.max(1, Math.floor(max));
  const shown = ordered.slice(0, cap).map((d) => formatDiagnosticForClient(d, scriptName));
  if (ordered.length > cap) shown.push(`(${ordered.length - cap} more not shown)`);
  return shown.join('\n');
}

/** `FILE:LINE:COL: error|warning: MESSAGE`, the compiler convention editors understand. */
export function formatDiagnosticForTerminal(file: string, d: Diagnostic): string {
  return `${file}:${d.line}:${d.column}: ${d.severity}: ${d.message}`;
}
