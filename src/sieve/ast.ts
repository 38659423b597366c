/**
 * The syntax tree the generated parser (grammar/sieve.peggy) builds: RFC 5228
 * section 8 shapes, every node a Span of the source (its own start and end
 * offsets, no separate position object: that was 40% of the objects of the
 * tree of a 1 MiB script, and the garbage collector's time grows with them). It records what was
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
 * a 1 MiB script several times slower to parse. Every node is a Span, so a
 * node can be handed to the diagnostic sink as it is.
 */
export interface Span {
  start: number;
  end: number;
}

export interface QuotedString extends Span {
  type: 'string';
  kind: 'quoted';
  /**
   * Value after escape processing (RFC 5228 section 2.4.2: `\x` means `x`), as
   * Exim holds it: a raw line break is CR LF, an escaped one LF (exim-string.ts).
   */
  value: string;
}

export interface MultiLineString extends Span {
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
}

export type SieveString = QuotedString | MultiLineString;

export interface StringList extends Span {
  type: 'stringlist';
  /** True for `[...]`, false for a lone string. */
  bracketed: boolean;
  items: SieveString[];
}

export interface NumberArg extends Span {
  type: 'number';
  digits: string;
  /** Quantifier as written: '', 'K', 'M', 'G' or a lower-case variant. */
  unit: string;
}

export interface TagArg extends Span {
  type: 'tag';
  /** Name without the colon, as written. */
  name: string;
}

export type Argument = StringList | NumberArg | TagArg;

/** A test starts at its name (which ends `name.length` later) and ends after its arguments and tests. */
export interface Test extends Span {
  type: 'test';
  name: string;
  args: Argument[];
  /** Nested tests: a single test, or the members of a parenthesised list. */
  tests: Test[];
  /** True when the nested tests were written as `( ... )`. */
  testList: boolean;
}

/** A command starts at its name and ends after its ";" or block (and the white space after it). */
export interface Command extends Span {
  type: 'command';
  name: string;
  args: Argument[];
  tests: Test[];
  testList: boolean;
  /** Null when the command ended with `;` (or with nothing: see `terminated`). */
  block: Command[] | null;
  /** False when neither `;` nor a block followed (before a "}" or the end of the script). */
  terminated: boolean;
  /** Offset just past the name, arguments and tests (where a missing `;` belongs). */
  headEnd: number;
}

export interface Script {
  type: 'script';
  commands: Command[];
}
