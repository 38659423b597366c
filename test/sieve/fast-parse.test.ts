/**
 * The fast reader (src/sieve/fast-parse.ts) against the generated parser, which
 * stays the definition of the language: for every corpus script, generated
 * script and seeded mutation of them, either the fast reader gives up or both
 * build equal trees; and whenever the generated parser refuses a script, the
 * fast reader gives up too (so users always see the grammar's message).
 */
import { describe, expect, it } from 'vitest';
import { fastParse } from '../../src/sieve/fast-parse.js';
import { parse } from '../../src/sieve/generated/parser.js';
import { corpus } from './corpus.js';
import { generateScript, rng } from './generate.js';

/** The text the parsers see (input.ts): LF line ends, no BOM, a final LF. */
function asParsed(script: string): string {
  let t = script.replace(/^\ufeff/, '').replace(/\r\n/g, '\n');
  if (t.length > 0 && !t.endsWith('\n')) t += '\n';
  return t;
}

function peggy(text: string): unknown {
  try {
    return parse(text, { grammarSource: 'script' });
  } catch {
    return undefined;
  }
}

function agree(text: string): void {
  const slow = peggy(text);
  const fast = fastParse(text);
  if (slow === undefined) expect(fast, JSON.stringify(text)).toBeUndefined();
  else expect(fast, JSON.stringify(text)).toEqual(slow);
}

const PIECES = [
  '"',
  '\\',
  '[',
  ']',
  '(',
  ')',
  '{',
  '}',
  ';',
  ',',
  ':',
  '#',
  '/*',
  '*/',
  '\n',
  ' ',
  'text:',
  'TEXT:\n',
  '.\n',
  'x',
  '1K',
  ':is',
];

function mutate(text: string, r: () => number): string {
  const at = Math.floor(r() * (text.length + 1));
  const k = r();
  if (k < 0.4) return text.slice(0, at) + PIECES[Math.floor(r() * PIECES.length)] + text.slice(at);
  if (k < 0.8) return text.slice(0, at) + text.slice(at + 1 + Math.floor(r() * 3));
  return text.slice(0, at);
}

describe('fast reader agrees with the grammar', () => {
  it('on every corpus script, and takes the fast path for those that parse', () => {
    let fast = 0;
    for (const e of corpus) {
      const text = asParsed(e.script);
      agree(text);
      if (fastParse(text) !== undefined) fast++;
    }
    expect(fast).toBeGreaterThan(corpus.length * 0.8);
  });

  it('on generated scripts and mutations of scripts', () => {
    const r = rng(Number(process.env.SIEVE_FUZZ_SEED ?? 12));
    const sources = [
      ...corpus.map((e) => asParsed(e.script)),
      ...Array.from({ length: 300 }, () => asParsed(generateScript(r))),
    ];
    for (const s of sources) {
      agree(s);
      let m = s;
      for (let k = 0; k < 6; k++) {
        m = mutate(m, r);
        agree(m);
      }
    }
  });

  it('on the shapes that need care', () => {
    for (const s of [
      '',
      '\n',
      'keep',
      'keep;',
      'if true { keep }\n',
      'if true {\n',
      'if true { keep; } x\n',
      'require ["a" "b"];\n',
      'require ["a",];\n',
      'require [];\n',
      'x 100Kx;\n',
      'x :1;\n',
      'x : a;\n',
      'if anyof(true, ) {}\n',
      'if anyof() {}\n',
      'if not not true {}\n',
      'vacation text:\n.\n;\n',
      'vacation text: # c\n..a\n..b\n.\n;\n',
      'vacation text:\nno end\n',
      'vacation TeXt: \t\nx\n.\n;\n',
      'vacation text: /* */\nx\n.\n;\n',
      'x "a\\"b\\\\" "c\nd";\n',
      'x "unterminated\\\n',
      'x "a" # comment without line feed',
      '/* open comment\n',
      'x;/**/y;#c\nz;\n',
      'if true { if false { stop; } }\n',
    ]) {
      agree(s);
    }
  });
});
