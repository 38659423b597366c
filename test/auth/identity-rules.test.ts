import { describe, expect, it } from 'vitest';
import {
  MAX_PASSWORD_BYTES,
  MAX_USER_BYTES,
  checkPassword,
  checkUserName,
  decodeUtf8,
} from '../../src/auth/identity-rules.js';

describe('identity rules', () => {
  it('accepts ordinary and non-ASCII names up to the byte limit', () => {
    for (const ok of ['alice', 'alice@example.org', 'jörg@bücher.example', 'a b', 'x'.repeat(MAX_USER_BYTES)]) {
      expect(checkUserName(ok), ok).toEqual({ ok: true });
    }
  });

  it('refuses empty, over-long (in bytes), control characters, and lone surrogates', () => {
    const bad = [
      '',
      'ü'.repeat(MAX_USER_BYTES / 2 + 1),
      'a\u0000b',
      'a\tb',
      'a\r\nb',
      'a\u007fb',
      'a\u0085b',
      'a\u2028b',
      'a\ud800b',
    ];
    for (const b of bad) expect(checkUserName(b).ok, JSON.stringify(b)).toBe(false);
  });

  it('lets passwords hold anything but NUL, up to a limit', () => {
    expect(checkPassword('pa ss\tword ü€ 😀')).toEqual({ ok: true });
    expect(checkPassword('').ok).toBe(false);
    expect(checkPassword('a\u0000b').ok).toBe(false);
    expect(checkPassword('x'.repeat(MAX_PASSWORD_BYTES + 1)).ok).toBe(false);
  });

  it('decodes UTF-8 strictly', () => {
    expect(decodeUtf8(Buffer.from('grüße', 'utf8'))).toBe('grüße');
    expect(decodeUtf8(Buffer.from([0x67, 0xc3]))).toBeUndefined();
    expect(decodeUtf8(Buffer.from([0xed, 0xa0, 0x80]))).toBeUndefined(); // encoded surrogate
  });
});
