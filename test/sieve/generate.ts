/**
 * A seeded generator of plausible scripts from the dialect's signatures: real
 * command and test names with random tags, strings drawn from a pool of
 * awkward values, numbers and nesting. Used to compare verdicts with Exim and
 * to fuzz the passes with inputs that get past the grammar.
 */
import { COMMANDS, TESTS, type Signature, type ValueKind } from '../../src/sieve/signatures.js';

export type Random = () => number;

export function rng(seed: number): Random {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STRINGS = [
  'subject',
  'from',
  'to',
  'cc',
  'list-id',
  'x-spam',
  'From',
  'TO',
  'resent-from',
  'sender',
  '',
  'a b',
  'x:y',
  'é',
  'a@example.org',
  'Bob <bob@example.org>',
  '"q"@example.org',
  'a@',
  '@b',
  'user@localhost',
  'a@b@c',
  'x@[127.0.0.1]',
  'Junk',
  'lists/exim',
  '.hidden',
  '|cmd',
  '/abs',
  'a/../b',
  'dir/',
  'INBOX',
  '~x',
  '*',
  '?',
  '\\\\',
  'a\\\\*',
  'x\\\\',
  '${hex:41}',
  '${hex:7c}cmd',
  '${unicode:263a}',
  '${unicode:110000}',
  '${HEX: 41 42 }',
  'i;octet',
  'i;ascii-casemap',
  'en;ascii-casemap',
  'i;ascii-numeric',
  'i;unicode-casemap',
  'mailto:a@example.org',
  'mailto:a@example.org%2Cb@example.org',
  'MAILTO:a@example.org',
  'mailto:',
  'mailto:a@example.org?subject=x',
  'xmpp:a@b',
  '1',
  '2',
  '3',
  '4',
  'online',
  'yes',
  '7',
  '07',
  'Grüße',
  'line\nbreak',
];
const CAPS = [
  'comparator-i;ascii-numeric',
  'copy',
  'encoded-character',
  'envelope',
  'fileinto',
  'subaddress',
  'vacation',
  'enotify',
  'Fileinto',
  'comparator-i;octet',
  'reject',
  'variables',
];

function pick<T>(r: Random, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)];
}

function quoted(s: string): string {
  return '"' + s.replace(/"/g, '\\"') + '"';
}

function value(r: Random, kind: ValueKind): string {
  if (kind === 'number') return String(pick(r, [0, 1, 7, 31, 32, 100, 1024])) + pick(r, ['', '', 'K', 'M', 'k']);
  if (kind === 'string' || r() < 0.6) return quoted(pick(r, STRINGS));
  const n = Math.floor(r() * 3);
  return '[' + Array.from({ length: n }, () => quoted(pick(r, STRINGS))).join(', ') + ']';
}

function args(r: Random, sig: Signature): string {
  const parts: string[] = [];
  for (const tag of sig.tags) {
    if (r() < 0.25) parts.push(`:${tag.name}` + (tag.value ? ' ' + value(r, tag.value) : ''));
  }
  if (r() < 0.05 && sig.tags.length > 0)
    parts.push(`:${pick(r, ['regex', 'count', 'value', 'create', 'flags', 'seconds'])}`);
  for (const p of sig.positional) parts.push(value(r, p.kind));
  if (r() < 0.03) parts.pop();
  return parts.join(' ');
}

function test(r: Random, depth: number): string {
  const names = [...TESTS.keys()];
  const name = depth > 3 ? pick(r, ['true', 'false', 'header', 'exists', 'size']) : pick(r, names);
  const sig = TESTS.get(name)!;
  const a = args(r, sig);
  if (sig.tests === 'list')
    return `${name} (${Array.from({ length: 1 + Math.floor(r() * 3) }, () => test(r, depth + 1)).join(', ')})`;
  if (sig.tests === 'one') return `${name} ${test(r, depth + 1)}`;
  return `${name} ${a}`.trim();
}

function command(r: Random, depth: number): string {
  const pool = [...COMMANDS.keys()].filter((n) => n !== 'require' && n !== 'elsif' && n !== 'else');
  const name = depth > 2 ? pick(r, ['keep', 'discard', 'stop', 'fileinto', 'redirect']) : pick(r, pool);
  if (name === 'if') {
    let s = `if ${test(r, 0)} {\n${block(r, depth + 1)}}`;
    while (r() < 0.3) s += ` elsif ${test(r, 0)} {\n${block(r, depth + 1)}}`;
    if (r() < 0.4) s += ` else {\n${block(r, depth + 1)}}`;
    return s + '\n';
  }
  return `${name} ${args(r, COMMANDS.get(name)!)};\n`.replace(' ;', ';');
}

function block(r: Random, depth: number): string {
  let s = '';
  for (let i = 0, n = Math.floor(r() * 3); i < n; i++) s += command(r, depth);
  return s;
}

export function generateScript(r: Random): string {
  let s = '';
  if (r() < 0.8) {
    const caps = CAPS.filter(() => r() < 0.5);
    if (caps.length > 0) s += `require [${caps.map(quoted).join(', ')}];\n`;
  }
  return s + block(r, 0) + (r() < 0.5 ? command(r, 0) : '');
}
