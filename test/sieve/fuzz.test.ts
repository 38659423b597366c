/**
 * Fuzzing: thousands of random token soups and mutated corpus scripts must
 * never make the validator throw, hang or report an internal error, and every
 * diagnostic must carry a sane position. The generator is seeded, so a failure
 * reproduces.
 */
import { describe, expect, it } from 'vitest';
import { validateScript, type Diagnostic } from '../../src/sieve/index.js';
import { bytesOf, corpus } from './corpus.js';
import { generateScript, rng } from './generate.js';
import { fullProfile } from './helpers.js';

const TOKENS = [
  'if',
  'elsif',
  'else',
  'require',
  'stop',
  'keep',
  'discard',
  'redirect',
  'fileinto',
  'vacation',
  'notify',
  'header',
  'address',
  'envelope',
  'exists',
  'size',
  'allof',
  'anyof',
  'not',
  'true',
  'false',
  ':is',
  ':contains',
  ':matches',
  ':comparator',
  ':over',
  ':under',
  ':days',
  ':from',
  ':mime',
  ':handle',
  ':copy',
  '"x"',
  '"a@b.c"',
  '"|cmd"',
  '"${hex:7c}"',
  '"${unicode:110000}"',
  '["a","b"]',
  '[]',
  '(',
  ')',
  '{',
  '}',
  '[',
  ']',
  ',',
  ';',
  '100K',
  '1k',
  '99999999999999999999999',
  'text:\nline\n.\n',
  'text:\n.\n',
  '# c\n',
  '/* c */',
  '"unterminated',
  '\r\n',
  '\n',
  ' ',
  '\t',
  '\r',
  '\\',
  '"',
  'é',
  '\u{1F600}',
  '"encoded-character"',
  '"fileinto"',
  '"vacation"',
];

function check(diags: Diagnostic[], input: Buffer): void {
  expect(Array.isArray(diags)).toBe(true);
  // Positions stay within the user's text (not on a line the validator appended).
  const lines = input.filter((b) => b === 0x0a).length + 1;
  for (const d of diags) {
    expect(d.code, `${d.message} for ${JSON.stringify(input.toString('latin1').slice(0, 200))}`).not.toBe('internal');
    expect(Number.isInteger(d.line) && d.line >= 1 && d.line <= lines, `${d.line}:${d.column} ${d.message}`).toBe(true);
    expect(Number.isInteger(d.column) && d.column >= 1).toBe(true);
    expect(typeof d.message).toBe('string');
  }
}

describe('validator fuzzing', () => {
  const profile = fullProfile();

  it('survives 3000 random token soups', () => {
    const r = rng(0x5eed);
    for (let n = 0; n < 3000; n++) {
      const parts: string[] = [];
      const len = Math.floor(r() * 60);
      for (let k = 0; k < len; k++) {
        parts.push(TOKENS[Math.floor(r() * TOKENS.length)]);
        if (r() < 0.6) parts.push(' ');
      }
      const input = Buffer.from(parts.join(''), 'utf8');
      check(validateScript(input, profile), input);
    }
  });

  it('survives 3000 byte-level mutations of corpus scripts', () => {
    const r = rng(42);
    const seeds = corpus.map(bytesOf).filter((b) => b.length > 0);
    for (let n = 0; n < 3000; n++) {
      const base = seeds[Math.floor(r() * seeds.length)];
      const bytes = [...base];
      const edits = 1 + Math.floor(r() * 4);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(r() * (bytes.length + 1));
        const op = r();
        if (op < 0.3) bytes.splice(at, 1);
        else if (op < 0.6) bytes.splice(at, 0, Math.floor(r() * 256));
        else if (op < 0.8) bytes[at] = '{}[]();,":#/*\\.\n'.charCodeAt(Math.floor(r() * 16));
        else bytes.splice(at, 0, ...bytes.slice(Math.floor(r() * bytes.length), Math.floor(r() * bytes.length)));
      }
      const input = Buffer.from(bytes);
      check(validateScript(input, profile), input);
    }
  });

  it('survives 3000 generated scripts that get past the grammar', () => {
    const r = rng(7);
    let passedGrammar = 0;
    for (let n = 0; n < 3000; n++) {
      const input = Buffer.from(generateScript(r), 'utf8');
      const diags = validateScript(input, profile);
      check(diags, input);
      if (!diags.some((d) => d.code === 'syntax')) passedGrammar++;
    }
    // The point is to reach the semantic passes.
    expect(passedGrammar).toBeGreaterThan(1000);
  });

  it('turns pathological nesting into a limit error, not a crash', () => {
    for (const input of [
      'if true {'.repeat(100_000),
      'if ' + 'not '.repeat(100_000) + 'true {}',
      'if anyof('.repeat(50_000),
      '['.repeat(100_000),
      'if header :is "a" ' + '['.repeat(20_000) + '"x"' + ']'.repeat(20_000) + ' {}',
    ]) {
      const diags = validateScript(Buffer.from(input), profile);
      check(diags, Buffer.from(input.slice(0, 100)));
      expect(diags.some((d) => d.severity === 'error')).toBe(true);
    }
  });
});
