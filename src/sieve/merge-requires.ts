/**
 * Merges the `require` commands at the top of a script into one, for the filter
 * file Exim reads. RFC 5228 section 3.2 allows any number of requires before
 * the first other command, but Exim 4.96's parse_start reads a further require
 * only when it follows the previous `;` directly: a line break, space or
 * comment in between is a "syntax error" (verified with exim4 -bf). Users write
 * them one per line, so the stored script keeps what they wrote and the filter
 * file says the same in one `require [...]`.
 *
 * The merged command stands where the first require stood and the others are
 * replaced by their line breaks only, so every later line keeps its number;
 * comments between them stay. Names are written decoded where Exim decodes
 * them: with `encoded-character` required by an earlier require command, Exim
 * decodes the strings of the later ones (not of the same one), so
 * `require "encoded-character"; require "${hex:66}ileinto";` names fileinto.
 *
 * Works on bytes (a latin1 string maps them 1:1) so that it never alters a
 * script it does not understand: anything unexpected leaves the text as is.
 *
 * Must not know: which capabilities exist, files, or the rest of the grammar.
 */
import { decodeEncodedCharacters } from './encoded-character.js';

interface RequireCommand {
  start: number;
  end: number;
  names: string[];
}

const IDENT = /[A-Za-z0-9_]/;

class Scanner {
  i = 0;
  constructor(readonly s: string) {}

  /** White space and comments (RFC 5228 section 2.3); false at an unterminated comment. */
  skip(): boolean {
    const s = this.s;
    for (;;) {
      const c = s[this.i];
      if (c === ' ' || c === '\t' || c === '\n') this.i++;
      else if (c === '#') {
        const e = s.indexOf('\n', this.i);
        if (e < 0) return false;
        this.i = e + 1;
      } else if (c === '/' && s[this.i + 1] === '*') {
        const e = s.indexOf('*/', this.i + 2);
        if (e < 0) return false;
        this.i = e + 2;
      } else return true;
    }
  }

  keyword(word: string): boolean {
    const end = this.i + word.length;
    if (this.s.slice(this.i, end).toLowerCase() !== word || IDENT.test(this.s[end] ?? '')) return false;
    this.i = end;
    return true;
  }

  /** One string's value (as the grammar computes it), or undefined. */
  string(): string | undefined {
    const s = this.s;
    if (s[this.i] === '"') {
      let v = '';
      for (let j = this.i + 1; j < s.length; j++) {
        const c = s[j];
        if (c === '"') {
          this.i = j + 1;
          return v;
        }
        if (c === '\\') {
          j++;
          if (j >= s.length) return undefined;
          v += s[j];
        } else v += c === '\n' ? '\r\n' : c;
      }
      return undefined;
    }
    if (s.startsWith('text:', this.i)) {
      // RFC 5228 section 8.1; Exim never unstuffs the first line.
      let j = this.i + 5;
      while (s[j] === ' ' || s[j] === '\t') j++;
      if (s[j] !== '#' && s[j] !== '\n') return undefined;
      let lineStart = s.indexOf('\n', j) + 1;
      if (lineStart === 0) return undefined;
      let v = '';
      for (let k = 0; ; k++) {
        const e = s.indexOf('\n', lineStart);
        if (e < 0) return undefined;
        const line = s.slice(lineStart, e);
        lineStart = e + 1;
        if (line === '.') break;
        v += (k > 0 && line.startsWith('..') ? line.slice(1) : line) + '\r\n';
      }
      this.i = lineStart;
      return v;
    }
    return undefined;
  }

  /** A string or `[ string, ... ]`. */
  stringList(): string[] | undefined {
    if (this.s[this.i] !== '[') {
      const one = this.string();
      return one === undefined ? undefined : [one];
    }
    this.i++;
    const out: string[] = [];
    for (;;) {
      if (!this.skip()) return undefined;
      const v = this.string();
      if (v === undefined) return undefined;
      out.push(v);
      if (!this.skip()) return undefined;
      const c = this.s[this.i++];
      if (c === ']') return out;
      if (c !== ',') return undefined;
    }
  }
}

/** The require commands before the first other command, or undefined if they do not scan. */
function leadingRequires(text: string): RequireCommand[] | undefined {
  const sc = new Scanner(text);
  const out: RequireCommand[] = [];
  for (;;) {
    if (!sc.skip()) return out;
    const start = sc.i;
    if (!sc.keyword('require')) return out;
    if (!sc.skip()) return undefined;
    const names = sc.stringList();
    if (names === undefined || !sc.skip() || text[sc.i] !== ';') return undefined;
    sc.i++;
    out.push({ start, end: sc.i, names });
  }
}

/** Exim's view of a require name: decoded once encoded-character was required before. */
function eximName(raw: string, decode: boolean): string {
  if (!decode || raw.indexOf('$') < 0) return raw;
  const r = decodeEncodedCharacters(Buffer.from(raw, 'latin1'));
  return Buffer.from(r.bytes).toString('latin1');
}

function quote(name: string): string {
  return `"${name.replace(/[\\"]/g, (c) => '\\' + c)}"`;
}

function lineBreaks(s: string): string {
  return '\n'.repeat(s.split('\n').length - 1);
}

/**
 * The text with its leading requires merged into one, or undefined when Exim
 * reads them as they are (one require, or each right after the previous ";").
 * `text` is the script with LF line ends, as a latin1 string of its bytes.
 */
export function mergeRequires(text: string): string | undefined {
  const cmds = leadingRequires(text);
  if (cmds === undefined || cmds.length < 2) return undefined;
  if (cmds.every((c, k) => k === 0 || c.start === cmds[k - 1].end)) return undefined;
  const names: string[] = [];
  let decode = false;
  for (const c of cmds) {
    const now = decode;
    for (const n of c.names) {
      const name = eximName(n, now);
      if (!names.includes(name)) names.push(name);
      if (name === 'encoded-character') decode = true;
    }
  }
  const first = cmds[0];
  const last = cmds[cmds.length - 1];
  let out =
    text.slice(0, first.start) +
    `require [${names.map(quote).join(', ')}];` +
    lineBreaks(text.slice(first.start, first.end));
  for (let k = 1; k < cmds.length; k++) {
    const c = cmds[k];
    out += text.slice(cmds[k - 1].end, c.start) + lineBreaks(text.slice(c.start, c.end));
  }
  return out + text.slice(last.end);
}
