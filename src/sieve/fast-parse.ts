/**
 * A hand-written reader for the language grammar/sieve.peggy defines, building
 * the same syntax tree, for scripts that parse. The generated parser spent
 * most of the time of validating a 1 MiB script (profiled with node
 * --cpu-prof: rule calls and garbage for every character); this one reads
 * character codes in one pass. It gives up (returns undefined) at the first
 * thing that does not parse and at every place where the grammar raises an
 * error of its own, and parse.ts then runs the generated parser, whose words
 * and positions stay the ones users see. So the grammar file remains the
 * definition: test/sieve/fast-parse.test.ts checks that both give equal trees
 * for the corpus and generated scripts, and that this one never accepts what
 * the grammar refuses.
 *
 * Must not know: any semantic rule (like the grammar).
 */
import type { Argument, Command, MultiLineString, QuotedString, Script, SieveString, StringList, Test } from './ast.js';

const LF = 0x0a;
const SP = 0x20;
const TAB = 0x09;
const HASH = 0x23;
const SLASH = 0x2f;
const STAR = 0x2a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const SEMI = 0x3b;
const COMMA = 0x2c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LPAREN = 0x28;
const RPAREN = 0x29;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const DOT = 0x2e;

/**
 * One frozen empty array for every empty argument, test and block list, and one
 * string per distinct command or test name: a 45,000-branch elsif chain kept
 * about a kilobyte of tree per branch. Frozen, so a pass that tried to change
 * one would fail loudly instead of changing them all.
 */
const EMPTY: never[] = Object.freeze([]) as unknown as never[];

/**
 * Thrown to abandon the fast path; parse.ts falls back to the generated parser.
 * Not an Error on purpose: one shared value, no stack captured on every give-up,
 * and it never leaves this module (the catch below takes it).
 */
class GiveUp {}
const GIVE_UP = new GiveUp();
/* eslint-disable @typescript-eslint/only-throw-error -- GIVE_UP, see above */

function isIdentStart(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f;
}

function isIdentPart(c: number): boolean {
  return isIdentStart(c) || (c >= 0x30 && c <= 0x39);
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** As the grammar's unescapeQuoted: `\x` is x; a raw LF is CR LF (exim-string.ts). */
function unescapeQuoted(raw: string): string {
  if (raw.indexOf('\\') < 0 && raw.indexOf('\n') < 0) return raw;
  return raw.replace(/\\([\s\S])|\n/g, (_, c: string | undefined) => (c !== undefined ? c : '\r\n'));
}

class Reader {
  pos = 0;
  readonly n: number;
  private readonly names = new Map<string, string>();
  private readonly recent: (string | undefined)[] = new Array<string | undefined>(256).fill(undefined);
  /**
   * Lists are gathered here and copied out at their exact length: an array
   * grown by push keeps room for 16 more entries, and the tree of a 1 MiB
   * script holds some 60,000 lists. Each list uses the part above the length
   * it found (nested lists finish before their parent continues).
   */
  private readonly stack: unknown[] = [];

  /** The entries pushed since `mark`, as their own array; the stack drops them. */
  private take<T>(mark: number): T[] {
    const out = this.stack.slice(mark) as T[];
    this.stack.length = mark;
    return out;
  }
  constructor(readonly s: string) {
    this.n = s.length;
  }

  /** The grammar's `_`: white space and comments. */
  skip(): void {
    const s = this.s;
    const n = this.n;
    let p = this.pos;
    for (;;) {
      const c = s.charCodeAt(p);
      if (c === SP || c === TAB || c === LF) p++;
      else if (c === HASH) {
        const e = s.indexOf('\n', p);
        if (e < 0) throw GIVE_UP; // the grammar reports a comment without a line break
        p = e + 1;
      } else if (c === SLASH && s.charCodeAt(p + 1) === STAR) {
        const e = s.indexOf('*/', p + 2);
        if (e < 0) throw GIVE_UP;
        p = e + 2;
      } else break;
      if (p >= n) break;
    }
    this.pos = p;
  }

  /**
   * Identifier at pos (pos moves past it), or undefined (pos unchanged). One
   * string per distinct name: a 1 MiB script names a dozen commands, tests and
   * tags some 60,000 times.
   */
  identifier(start: number): string | undefined {
    const s = this.s;
    if (!isIdentStart(s.charCodeAt(start))) return undefined;
    let p = start + 1;
    while (isIdentPart(s.charCodeAt(p))) p++;
    this.pos = p;
    // The name last seen with this first letter and length is compared in place,
    // without cutting a string out of the script for it.
    const slot = (s.charCodeAt(start) * 31 + (p - start)) & 255;
    const last = this.recent[slot];
    if (last !== undefined && last.length === p - start && s.startsWith(last, start)) return last;
    const text = s.slice(start, p);
    let known = this.names.get(text);
    if (known === undefined) this.names.set(text, (known = text));
    this.recent[slot] = known;
    return known;
  }

  quoted(): QuotedString {
    const s = this.s;
    const start = this.pos;
    const n = this.n;
    let p = start + 1;
    for (;;) {
      if (p >= n) throw GIVE_UP; // unterminated: the grammar says so
      const c = s.charCodeAt(p);
      if (c === QUOTE) break;
      if (c === BACKSLASH) {
        if (p + 1 >= n) throw GIVE_UP;
        p += 2;
      } else p++;
    }
    const raw = s.slice(start + 1, p);
    this.pos = p + 1;
    return { type: 'string', kind: 'quoted', value: unescapeQuoted(raw), start, end: p + 1 };
  }

  /** `text:` (any case) at pos: RFC 5228 section 8.1, as the grammar reads it. */
  multiLine(): MultiLineString {
    const s = this.s;
    const start = this.pos;
    const prefix = s.slice(start, start + 5);
    let p = start + 5;
    while (s.charCodeAt(p) === SP || s.charCodeAt(p) === TAB) p++;
    const c = s.charCodeAt(p);
    if (c === HASH) {
      const e = s.indexOf('\n', p);
      if (e < 0) throw GIVE_UP;
      p = e + 1;
    } else if (c === LF) p++;
    else throw GIVE_UP;
    const rawLines: string[] = [];
    let value = '';
    for (;;) {
      const e = s.indexOf('\n', p);
      if (e < 0) throw GIVE_UP;
      if (e === p + 1 && s.charCodeAt(p) === DOT) {
        p = e + 1;
        break;
      }
      const line = s.slice(p, e);
      value += (rawLines.length > 0 && line.startsWith('..') ? line.slice(1) : line) + '\r\n';
      rawLines.push(line);
      p = e + 1;
    }
    this.pos = p;
    return { type: 'string', kind: 'multiline', prefix, rawLines, value, start, end: p };
  }

  isTextColon(p: number): boolean {
    const s = this.s;
    return (
      (s.charCodeAt(p) | 0x20) === 0x74 &&
      (s.charCodeAt(p + 1) | 0x20) === 0x65 &&
      (s.charCodeAt(p + 2) | 0x20) === 0x78 &&
      (s.charCodeAt(p + 3) | 0x20) === 0x74 &&
      s.charCodeAt(p + 4) === COLON
    );
  }

  /** A string at pos, or undefined when none starts here. */
  string(): SieveString | undefined {
    if (this.isTextColon(this.pos)) return this.multiLine();
    if (this.s.charCodeAt(this.pos) === QUOTE) return this.quoted();
    return undefined;
  }

  stringList(): StringList | undefined {
    const s = this.s;
    const start = this.pos;
    if (s.charCodeAt(start) === LBRACKET) {
      this.pos++;
      this.skip();
      const mark = this.stack.length;
      const first = this.string();
      if (first !== undefined) {
        this.stack.push(first);
        this.skip();
        for (;;) {
          if (s.charCodeAt(this.pos) === COMMA) {
            this.pos++;
            this.skip();
            const next = this.string();
            if (next === undefined) throw GIVE_UP;
            this.stack.push(next);
            this.skip();
          } else if (this.isTextColon(this.pos) || s.charCodeAt(this.pos) === QUOTE) {
            throw GIVE_UP; // the grammar: missing ","
          } else break;
        }
      }
      if (s.charCodeAt(this.pos) !== RBRACKET) throw GIVE_UP;
      this.pos++;
      const items = this.take<SieveString>(mark);
      return { type: 'stringlist', bracketed: true, items, start, end: this.pos };
    }
    const one = this.string();
    if (one === undefined) return undefined;
    return { type: 'stringlist', bracketed: false, items: [one], start: one.start, end: one.end };
  }

  argument(): Argument | undefined {
    const s = this.s;
    const start = this.pos;
    const list = this.stringList();
    if (list !== undefined) {
      this.skip();
      return list;
    }
    const c = s.charCodeAt(start);
    if (isDigit(c)) {
      let p = start + 1;
      while (isDigit(s.charCodeAt(p))) p++;
      const digits = s.slice(start, p);
      let unit = '';
      const u = s.charCodeAt(p) | 0x20;
      if (u === 0x6b || u === 0x6d || u === 0x67) {
        unit = s[p]!;
        p++;
      }
      this.pos = p;
      const num: Argument = { type: 'number', digits, unit, start, end: p };
      this.skip();
      return num;
    }
    if (c === COLON) {
      const name = this.identifier(start + 1);
      if (name === undefined) throw GIVE_UP;
      const tag: Argument = { type: 'tag', name, start, end: this.pos };
      this.skip();
      return tag;
    }
    return undefined;
  }

  arguments(): Argument[] {
    let a = this.argument();
    if (a === undefined) return EMPTY;
    const mark = this.stack.length;
    for (; a !== undefined; a = this.argument()) this.stack.push(a);
    return this.take<Argument>(mark);
  }

  /** The grammar's TestPart: `( test, ... )` or one test; undefined when neither. */
  testPart(): { tests: Test[]; list: boolean; end: number } | undefined {
    const s = this.s;
    if (s.charCodeAt(this.pos) === LPAREN) {
      this.pos++;
      this.skip();
      let tests: Test[] = EMPTY;
      const first = this.test();
      if (first !== undefined) {
        const mark = this.stack.length;
        this.stack.push(first);
        while (s.charCodeAt(this.pos) === COMMA) {
          this.pos++;
          this.skip();
          const t = this.test();
          if (t === undefined) throw GIVE_UP;
          this.stack.push(t);
        }
        tests = this.take<Test>(mark);
      }
      if (s.charCodeAt(this.pos) !== RPAREN) throw GIVE_UP;
      this.pos++;
      const end = this.pos;
      this.skip();
      return { tests, list: true, end };
    }
    const t = this.test();
    return t === undefined ? undefined : { tests: [t], list: false, end: t.end };
  }

  test(): Test | undefined {
    const start = this.pos;
    const name = this.identifier(start);
    if (name === undefined) return undefined;
    const nameEnd = this.pos;
    this.skip();
    const args = this.arguments();
    const tp = this.testPart();
    const end = tp !== undefined ? tp.end : args.length > 0 ? args[args.length - 1].end : nameEnd;
    return {
      type: 'test',
      name,
      args,
      tests: tp !== undefined ? tp.tests : EMPTY,
      testList: tp !== undefined ? tp.list : false,
      start,
      end,
    };
  }

  command(): Command | undefined {
    const start = this.pos;
    const name = this.identifier(start);
    if (name === undefined) return undefined;
    const nameEnd = this.pos;
    this.skip();
    const args = this.arguments();
    const tp = this.testPart();
    const headEnd = tp !== undefined ? tp.end : args.length > 0 ? args[args.length - 1].end : nameEnd;
    const c = this.s.charCodeAt(this.pos);
    let block: Command[] | null = null;
    let terminated = true;
    if (c === SEMI) {
      this.pos++;
      this.skip();
    } else if (c === LBRACE) {
      this.pos++;
      this.skip();
      block = this.commands();
      if (this.s.charCodeAt(this.pos) !== RBRACE) throw GIVE_UP; // the grammar names the unclosed block
      this.pos++;
      this.skip();
    } else if (c === RBRACE || this.pos >= this.n) {
      terminated = false;
    } else {
      throw GIVE_UP;
    }
    return {
      type: 'command',
      name,
      args,
      tests: tp !== undefined ? tp.tests : EMPTY,
      testList: tp !== undefined ? tp.list : false,
      block,
      terminated,
      headEnd,
      start,
      end: this.pos,
    };
  }

  commands(): Command[] {
    let c = this.command();
    if (c === undefined) return EMPTY;
    const mark = this.stack.length;
    for (; c !== undefined; c = this.command()) this.stack.push(c);
    return this.take<Command>(mark);
  }
}

/** The syntax tree, or undefined when the script needs the generated parser's verdict. */
export function fastParse(text: string): Script | undefined {
  const r = new Reader(text);
  try {
    r.skip();
    const commands = r.commands();
    if (r.pos !== r.n) return undefined;
    return { type: 'script', commands };
  } catch (e) {
    if (e === GIVE_UP || e instanceof RangeError) return undefined;
    throw e;
  }
}
