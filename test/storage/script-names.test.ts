import { describe, expect, it } from 'vitest';
import {
  decodeNameBytes,
  decodeScriptFileName,
  encodeScriptFileName,
  MAX_SCRIPT_NAME_OCTETS,
  validateScriptName,
} from '../../src/storage/script-names.js';

describe('validateScriptName (RFC 5804 section 1.6)', () => {
  it('accepts ordinary names and returns them unchanged', () => {
    expect(validateScriptName('vacation')).toEqual({ ok: true, name: 'vacation' });
    expect(validateScriptName(' spaced "quoted" \\ ')).toEqual({ ok: true, name: ' spaced "quoted" \\ ' });
  });

  it('normalises to NFC so decomposed and composed forms are one name', () => {
    const decomposed = 'cafe\u0301';
    const r = validateScriptName(decomposed);
    expect(r).toEqual({ ok: true, name: 'caf\u00e9' });
  });

  it.each([
    ['empty', ''],
    ['NUL', 'a\u0000b'],
    ['tab', 'a\tb'],
    ['LF', 'a\nb'],
    ['DEL', 'a\u007fb'],
    ['C1 control', 'a\u0085b'],
    ['line separator', 'a\u2028b'],
    ['paragraph separator', 'a\u2029b'],
    ['lone surrogate', 'a\ud800b'],
  ])('refuses a name with %s', (_what, name) => {
    const r = validateScriptName(name);
    expect(r.ok).toBe(false);
  });

  it('allows 128 four-octet characters (512 octets) and refuses, never truncates, longer', () => {
    const long = '\u{1F600}'.repeat(128);
    expect(validateScriptName(long)).toEqual({ ok: true, name: long });
    const tooLong = 'x'.repeat(MAX_SCRIPT_NAME_OCTETS + 1);
    const r = validateScriptName(tooLong);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/too long/);
  });
});

describe('script file names', () => {
  const awkward = ['../x', 'a/b', '.forward', '.active', '.', '..', '...', 'a%2Fb', 'é', '#x', 'x.sieve', 'CON', '-rf'];

  it.each(awkward)('encodes %j into one safe path component that decodes back', (name) => {
    const enc = encodeScriptFileName(name);
    expect(enc.file).not.toContain('/');
    expect(enc.file.startsWith('.')).toBe(false);
    expect(enc.file).not.toBe('.');
    expect(enc.file).not.toBe('..');
    expect(enc.nameFile).toBeUndefined();
    expect(decodeScriptFileName(enc.file)).toEqual({ kind: 'script', name });
  });

  it('distinct names never share a file', () => {
    const files = new Set(awkward.map((n) => encodeScriptFileName(n).file));
    expect(files.size).toBe(awkward.length);
  });

  it('hashes names whose encoding would not fit a 255-byte component', () => {
    const name = 'é'.repeat(128); // 256 octets, 768 when percent-encoded
    const enc = encodeScriptFileName(name);
    expect(Buffer.byteLength(enc.file)).toBeLessThanOrEqual(255);
    expect(enc.nameFile).toBeDefined();
    expect(decodeScriptFileName(enc.file)).toEqual({ kind: 'hashed', nameFile: enc.nameFile });
    expect(encodeScriptFileName('é'.repeat(127)).file).not.toBe(enc.file);
  });

  it('tells files that are not canonical script files (counted, never listed) from metadata', () => {
    for (const f of ['notes.txt', 'a%2fb.sieve', '%61.sieve', '#zz.sieve', '%FF.sieve', '%EF%BB.sieve']) {
      expect(decodeScriptFileName(f)).toEqual({ kind: 'other' });
    }
    for (const f of ['.active', '.lock', '.x.sieve', '#' + 'a'.repeat(64) + '.name']) {
      expect(decodeScriptFileName(f)).toEqual({ kind: 'metadata' });
    }
  });

  it('keeps a leading U+FEFF when decoding a file name (a BOM-stripping decoder hid such scripts)', () => {
    for (const name of ['\ufeffhidden', '\ufeff', '\u200bx', 'a\ufeff']) {
      expect(decodeScriptFileName(encodeScriptFileName(name).file)).toEqual({ kind: 'script', name });
    }
    expect(decodeNameBytes(Buffer.from([0xef, 0xbb, 0xbf, 0x61]))).toBe('\ufeffa');
    expect(decodeNameBytes(Buffer.from([0xff]))).toBeUndefined();
  });
});
