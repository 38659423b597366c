/**
 * The generated parser on its own: the AST it builds (values, raw spellings,
 * offsets) and that it accepts shapes the passes judge later (empty lists,
 * unknown names, upper-case "TEXT:").
 */
import { describe, expect, it } from 'vitest';
import type { Argument, Command, SieveString, StringList, Test } from '../../src/sieve/ast.js';
import { DiagnosticSink } from '../../src/sieve/diagnostics.js';
import { eximString } from '../../src/sieve/exim-string.js';
import { parse, SyntaxError as PeggySyntaxError } from '../../src/sieve/generated/parser.js';
import { decodeInput } from '../../src/sieve/input.js';
import { bytesOf, corpus } from './corpus.js';

function first(text: string): Command {
  return parse(text).commands[0];
}

describe('grammar', () => {
  it('builds commands, tests, tags and string lists with offsets', () => {
    const text = 'if header :contains ["a", "b"] "c" { keep; }\n';
    const cmd = first(text);
    expect(cmd.name).toBe('if');
    expect([cmd.start, cmd.end]).toEqual([0, text.length]);
    const test = cmd.tests[0];
    expect(test.name).toBe('header');
    expect(test.args.map((a) => a.type)).toEqual(['tag', 'stringlist', 'stringlist']);
    const list = test.args[1] as StringList;
    expect(list.bracketed).toBe(true);
    expect(list.items.map((s) => s.value)).toEqual(['a', 'b']);
    expect(text.slice(list.start, list.end)).toBe('["a", "b"]');
    expect(text.slice(test.start, test.end)).toBe('header :contains ["a", "b"] "c"');
    const c = test.args[2] as StringList;
    expect([c.start, c.end]).toEqual([c.items[0].start, c.items[0].end]);
    expect(cmd.block!.map((c) => c.name)).toEqual(['keep']);
  });

  it('unescapes quoted strings (RFC 5228 section 2.4.2)', () => {
    const s = (first('x "a\\"b\\\\c\\d";\n').args[0] as StringList).items[0];
    expect(s.value).toBe('a"b\\cd');
  });

  it('reads multi-line strings with dot-unstuffing and CRLF line ends', () => {
    const s = (first('x text: # note\nline one\n..two\n.three\n.\n;\n').args[0] as StringList).items[0];
    expect(s.kind).toBe('multiline');
    expect(s.value).toBe('line one\r\n.two\r\n.three\r\n');
    if (s.kind === 'multiline') expect(s.rawLines).toEqual(['line one', '..two', '.three']);
  });

  it('stores a raw line break in a quoted string as CR LF, an escaped one as LF, as Exim does', () => {
    const s = (first('x "a\nb\\\nc";\n').args[0] as StringList).items[0];
    expect(s.value).toBe('a\r\nb\nc');
  });

  it('gives every string the value Exim holds for it (exim-string.ts agrees)', () => {
    const strings: SieveString[] = [];
    const args = (a: Argument[]): void => a.forEach((x) => x.type === 'stringlist' && strings.push(...x.items));
    const test = (t: Test): void => (args(t.args), t.tests.forEach(test));
    const command = (c: Command): void => (args(c.args), c.tests.forEach(test), c.block?.forEach(command));
    let checked = 0;
    for (const e of corpus) {
      const { text } = decodeInput(bytesOf(e), 1 << 20, new DiagnosticSink());
      if (text === undefined) continue;
      let script;
      try {
        script = parse(text);
      } catch {
        continue;
      }
      strings.length = 0;
      script.commands.forEach(command);
      for (const s of strings) {
        // The first line of text: is not unstuffed by Exim; the grammar agrees.
        expect(Buffer.from(eximString(s, text).bytes).toString('utf8'), e.name).toBe(s.value);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(300);
  });

  it('keeps raw spellings for the passes to judge', () => {
    const cmd = first('x TEXT:\nA\n.\n 10k [];\n');
    const [str, num, empty] = cmd.args;
    expect(str).toMatchObject({ type: 'stringlist', items: [{ kind: 'multiline', prefix: 'TEXT:' }] });
    expect(num).toMatchObject({ type: 'number', digits: '10', unit: 'k' });
    expect(empty).toMatchObject({ type: 'stringlist', bracketed: true, items: [] });
  });

  it('parses empty test lists and nested tests', () => {
    const cmd = first('if anyof () { }\n');
    expect(cmd.tests[0]).toMatchObject({ name: 'anyof', testList: true, tests: [] });
    expect(first('if not not true {}\n').tests[0].tests[0].tests[0].name).toBe('true');
  });

  it('reports syntax errors with their position', () => {
    try {
      parse('keep;\nif true { keep;\n');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(PeggySyntaxError);
      expect((e as PeggySyntaxError).location.start.line).toBe(3);
    }
    expect(() => parse('x "abc;\n')).toThrow('unterminated string');
    expect(() => parse('x; /* open\n')).toThrow('unterminated comment');
    expect(() => parse('x text: /* no */\n.\n;')).toThrow('"text:" must be followed');
  });
});
