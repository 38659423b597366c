import { describe, expect, it } from 'vitest';
import { cryptVerify, cryptUnavailableReason } from '../../src/auth/crypt.js';
import { PASSWORDS, madeBy } from './util.js';

const pwList = Object.entries(PASSWORDS);

describe('cryptVerify through libxcrypt', () => {
  it('loads libcrypt.so.1', () => {
    expect(cryptUnavailableReason()).toBeUndefined();
  });

  describe('openssl passwd hashes', () => {
    for (const flag of ['-1', '-5', '-6']) {
      for (const [label, pw] of pwList) {
        it(`openssl passwd ${flag}, ${label} password`, async () => {
          const hash = madeBy('openssl', ['passwd', flag, '-stdin'], pw);
          expect(hash).toMatch(/^\$[156]\$/);
          expect(await cryptVerify(pw, hash)).toBe(true);
          expect(await cryptVerify(pw + 'x', hash)).toBe(false);
          expect(await cryptVerify(pw.slice(0, -1), hash)).toBe(false);
        });
      }
    }
  });

  describe('mkpasswd hashes', () => {
    for (const method of ['yescrypt', 'bcrypt', 'sha512crypt', 'sha256crypt', 'md5crypt']) {
      for (const [label, pw] of pwList) {
        it(`mkpasswd -m ${method}, ${label} password`, async () => {
          const hash = madeBy('mkpasswd', ['-s', '-m', method], pw);
          expect(await cryptVerify(pw, hash)).toBe(true);
          // Change the first character: bcrypt only reads 72 bytes of the long password.
          expect(await cryptVerify('?' + pw.slice(1), hash)).toBe(false);
        });
      }
    }
    it('mkpasswd -m descrypt (only 8 bytes count: a property of DES, shown by libxcrypt too)', async () => {
      const hash = madeBy('mkpasswd', ['-s', '-m', 'descrypt'], 'abcdefgh');
      expect(hash).toHaveLength(13);
      expect(await cryptVerify('abcdefgh', hash)).toBe(true);
      expect(await cryptVerify('abcdefgX', hash)).toBe(false);
      expect(await cryptVerify('abcdefgh-ignored', hash)).toBe(true);
    });
    it('bcrypt $2y$ spelling is accepted as well as $2b$', async () => {
      const hash = madeBy('mkpasswd', ['-s', '-m', 'bcrypt'], PASSWORDS.ascii);
      expect(hash.startsWith('$2b$')).toBe(true);
      expect(await cryptVerify(PASSWORDS.ascii, '$2y$' + hash.slice(4))).toBe(true);
    });
  });

  describe('Courier userdbpw hashes', () => {
    for (const [label, pw] of pwList) {
      it(`userdbpw (DES) and userdbpw -md5, ${label} password`, async () => {
        const des = madeBy('userdbpw', [], pw + '\n');
        const md5 = madeBy('userdbpw', ['-md5'], pw + '\n');
        expect(des).toHaveLength(13);
        expect(md5.startsWith('$1$')).toBe(true);
        expect(await cryptVerify(pw, md5)).toBe(true);
        expect(await cryptVerify(pw + '!', md5)).toBe(false);
        // DES: only the first 8 bytes matter, so change an early character.
        expect(await cryptVerify(pw, des)).toBe(true);
        expect(await cryptVerify('Q' + pw.slice(1), des)).toBe(false);
      });
    }
  });

  it('returns false, never throws, for locked, empty, malformed and unknown settings', async () => {
    for (const bad of [
      '',
      '!',
      '!$6$abc$def',
      '*',
      '*LK*',
      '$1$',
      '$6$',
      '$9$zzz$zzz',
      '$y$',
      'x',
      '$2b$99$abc',
      '$apr1$abc$def',
    ]) {
      await expect(cryptVerify('whatever', bad)).resolves.toBe(false);
    }
  });

  it('refuses a password containing NUL instead of silently truncating it', async () => {
    const hash = madeBy('openssl', ['passwd', '-6', '-stdin'], 'abc');
    expect(await cryptVerify('abc', hash)).toBe(true);
    expect(await cryptVerify('abc\u0000def', hash)).toBe(false);
  });

  it('runs concurrent verifications with separate work areas', async () => {
    const a = madeBy('mkpasswd', ['-s', '-m', 'yescrypt'], 'alpha');
    const b = madeBy('openssl', ['passwd', '-6', '-stdin'], 'beta');
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? cryptVerify('alpha', a) : cryptVerify('beta', b))),
    );
    expect(results.every((r) => r)).toBe(true);
    const crossed = await Promise.all([cryptVerify('beta', a), cryptVerify('alpha', b)]);
    expect(crossed).toEqual([false, false]);
  });

  it('does not block the event loop while hashing', async () => {
    const hash = madeBy('mkpasswd', ['-s', '-m', 'sha512crypt', '-R', '500000'], 'slow');
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const ok = await cryptVerify('slow', hash);
    clearInterval(timer);
    expect(ok).toBe(true);
    // The hash takes well over 10 ms; a blocked loop would not have ticked at all.
    expect(ticks).toBeGreaterThan(0);
  });
});
