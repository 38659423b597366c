/**
 * The syntax tree the generated parser (grammar/sieve.peggy) builds: RFC 5228
 * section 8 shapes with a source position on every node. It records what was
 * written (raw spellings, list brackets, the `text:` prefix) so that later passes
 * can judge it; it judges nothing itself.
 *
 * Must not know: which commands exist, Exim, or the profile.
 */

/**
 * 1-based line and column. The column counts Unicode code points (characters),
 * not UTF-16 units or bytes: diagnostics.ts says why.
 */
export interface Position {
  line: number;
  column: number;
}

/**
 * Offsets into the decoded text. Line and column are worked out only for the
 * nodes a diagnostic names (diagnostics.ts): computing them for every node made
 * a 1 MiB script several times slower to parse.
 */
export interface Span {
  start: number;
  end: number;
}

export interface QuotedString {
  type: 'string';
  kind: 'quoted';
  /**
   * Value after escape processing (RFC 5228 section 2.4.2: `\x` means `x`), as
   * Exim holds it: a raw line break is CR LF, an escaped one LF (exim-string.ts).
   */
  value: string;
  loc: Span;
}

export interface MultiLineString {
  type: 'string';
  kind: 'multiline';
  /** The `text:` prefix as written (Exim only knows lower case). */
  prefix: string;
  /** Content lines before dot-unstuffing, without line ends. */
  rawLines: string[];
  /**
   * Value after dot-unstuffing (not of the first line, as in Exim), lines
   * ended with CRLF (RFC 5228 section 8.1).
   */
  value: string;
  loc: Span;
}

export type SieveString = QuotedString | MultiLineString;

export interface StringList {
  type: 'stringlist';
  /** True for `[...]`, false for a lone string. */
  bracketed: boolean;
  items: SieveString[];
  loc: Span;
}

export interface NumberArg {
  type: 'number';
  digits: string;
  /** Quantifier as written: '', 'K', 'M', 'G' or a lower-case variant. */
  unit: string;
  loc: Span;
}

export interface TagArg {
  type: 'tag';
  /** Name without the colon, as written. */
  name: string;
  loc: Span;
}

export type Argument = StringList | NumberArg | TagArg;

export interface Test {
  type: 'test';
  name: string;
  nameLoc: Span;
  args: Argument[];
  /** Nested tests: a single test, or the members of a parenthesised list. */
  tests: Test[];
  /** True when the nested tests were written as `( ... )`. */
  testList: boolean;
  loc: Span;
}

export interface Command {
  type: 'command';
  name: string;
  nameLoc: Span;
  args: Argument[];
  tests: Test[];
  testList: boolean;
  /** Null when the command ended with `;` (or with nothing: see `terminated`). */
  block: Command[] | null;
  /** False when neither `;` nor a block followed (before a "}" or the end of the script). */
  terminated: boolean;
  /** Offset just past the name, arguments and tests (where a missing `;` belongs). */
  headEnd: number;
  loc: Span;
}

export interface Script {
  type: 'script';
  commands: Command[];
}
