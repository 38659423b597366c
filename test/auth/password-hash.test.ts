import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import {
  deriveScramCredentials,
  parseStored,
  prepScramPassword,
  scramCredentialsFrom,
  scramSourceOf,
  verifyPasswordHash,
} from '../../src/auth/password-hash.js';
import { PASSWORDS, captureLogger, madeBy } from './util.js';

const pwList = Object.entries(PASSWORDS);

/**
 * The binary digest the Courier {..} forms store. Node's digests are OpenSSL's own
 * (what `openssl dgst -binary` prints), so no program is needed.
 */
function opensslDigest(alg: string, data: Buffer): Buffer {
  return createHash(alg).update(data).digest();
}

describe('Dovecot schemes from doveadm pw', () => {
  const schemes = [
    'CRYPT',
    'MD5',
    'MD5-CRYPT',
    'SHA256-CRYPT',
    'SHA512-CRYPT',
    'BLF-CRYPT',
    'DES-CRYPT',
    'SHA',
    'SHA256',
    'SHA512',
    'SSHA',
    'SSHA256',
    'SSHA512',
    'SMD5',
    'PLAIN-MD5',
    'LDAP-MD5',
    'PLAIN',
    'CLEAR',
    'CLEARTEXT',
    'SCRAM-SHA-1',
    'SCRAM-SHA-256',
  ];
  for (const scheme of schemes) {
    for (const [label, pw] of pwList) {
      // DES-CRYPT reads 8 bytes: test it with the ASCII password and an early change only.
      if (scheme === 'DES-CRYPT' && label !== 'ascii') continue;
      it(`{${scheme}} with the ${label} password`, async () => {
        const stored = madeBy('doveadm', ['pw', '-s', scheme, '-p', pw]);
        expect(stored.startsWith(`{${scheme}}`)).toBe(true);
        expect(await verifyPasswordHash(pw, stored)).toEqual({ kind: 'match' });
        expect(await verifyPasswordHash('Q' + pw.slice(1), stored)).toEqual({ kind: 'mismatch' });
        if (scheme !== 'DES-CRYPT' && scheme !== 'BLF-CRYPT' && scheme !== 'CRYPT') {
          expect(await verifyPasswordHash(pw + 'x', stored)).toEqual({ kind: 'mismatch' });
        }
      });
    }
  }

  for (const scheme of ['ARGON2ID', 'PBKDF2', 'CRAM-MD5', 'DIGEST-MD5']) {
    it(`{${scheme}} is unsupported: clear log message, never a match`, async () => {
      const args = ['pw', '-s', scheme, '-p', 'pw'];
      if (scheme === 'DIGEST-MD5') args.push('-u', 'someone@example.org');
      const stored = madeBy('doveadm', args);
      const cap = captureLogger();
      const r = await verifyPasswordHash('pw', stored, cap.log);
      expect(r).toEqual({ kind: 'unsupported', scheme });
      expect(cap.text()).toContain(`unsupported password scheme {${scheme}}`);
      expect(cap.text()).not.toContain(stored.slice(scheme.length + 2));
    });
  }

  it('accepts the .HEX encoding suffix', async () => {
    const stored = madeBy('doveadm', ['pw', '-s', 'SHA256.HEX', '-p', 'pw']);
    expect(stored).toMatch(/^\{SHA256\.HEX\}[0-9a-f]{64}$/);
    expect(await verifyPasswordHash('pw', stored)).toEqual({ kind: 'match' });
    expect(await verifyPasswordHash('pW', stored)).toEqual({ kind: 'mismatch' });
  });

  it('reads SCRAM keys from {SCRAM-SHA-*} values, only for the matching algorithm', async () => {
    const s256 = madeBy('doveadm', ['pw', '-s', 'SCRAM-SHA-256', '-p', PASSWORDS.nonAscii]);
    const keys = scramCredentialsFrom(s256, 'SHA-256');
    expect(keys).toBeDefined();
    expect(keys!.iterations).toBe(4096);
    expect(keys!.storedKey).toHaveLength(32);
    expect(scramCredentialsFrom(s256, 'SHA-1')).toBeUndefined();
    // Our derivation (with SASLprep) reproduces doveadm's keys for NFC text.
    const derived = await deriveScramCredentials(
      prepScramPassword(PASSWORDS.nonAscii),
      'SHA-256',
      keys!.salt,
      keys!.iterations,
    );
    expect(derived.storedKey.equals(keys!.storedKey)).toBe(true);
    expect(derived.serverKey.equals(keys!.serverKey)).toBe(true);
    const s1 = madeBy('doveadm', ['pw', '-s', 'SCRAM-SHA-1', '-p', PASSWORDS.ascii]);
    const k1 = scramCredentialsFrom(s1, 'SHA-1')!;
    const d1 = await deriveScramCredentials(PASSWORDS.ascii, 'SHA-1', k1.salt, k1.iterations);
    expect(d1.storedKey.equals(k1.storedKey)).toBe(true);
  });
});

describe('Courier {SCHEME} forms', () => {
  for (const [label, pw] of pwList) {
    const bytes = Buffer.from(pw, 'utf8');
    it(`{MD5}, {MD5RAW}, {SHA}, {SHA256}, {SHA512}, {SSHA} with the ${label} password`, async () => {
      const md5 = opensslDigest('md5', bytes);
      const forms = [
        `{MD5}${md5.toString('base64')}`,
        `{MD5RAW}${md5.toString('hex')}`,
        `{SHA}${opensslDigest('sha1', bytes).toString('base64')}`,
        `{SHA256}${opensslDigest('sha256', bytes).toString('base64')}`,
        `{SHA512}${opensslDigest('sha512', bytes).toString('base64')}`,
      ];
      // Courier's {SSHA}: base64(SHA1(password || salt) || salt) with a 4-byte salt.
      const salt = Buffer.from([0x01, 0xfe, 0x7a, 0x00]);
      forms.push(
        `{SSHA}${Buffer.concat([opensslDigest('sha1', Buffer.concat([bytes, salt])), salt]).toString('base64')}`,
      );
      for (const stored of forms) {
        expect(await verifyPasswordHash(pw, stored), stored).toEqual({ kind: 'match' });
        expect(await verifyPasswordHash(pw + ' ', stored), stored).toEqual({ kind: 'mismatch' });
      }
    });
  }

  it('a crypt-style hash libcrypt does not know (openssl passwd -apr1) is unsupported, with a clear log line', async () => {
    const apr1 = madeBy('openssl', ['passwd', '-apr1', '-stdin'], 'pw');
    expect(apr1.startsWith('$apr1$')).toBe(true);
    for (const stored of [apr1, `{CRYPT}${apr1}`]) {
      const cap = captureLogger();
      expect(await verifyPasswordHash('pw', stored, cap.log)).toEqual({ kind: 'unsupported', scheme: 'CRYPT $apr1$' });
      expect(cap.text()).toContain(
        'crypt(3) hash of kind $apr1$ is not supported by the system libcrypt, or is malformed: login refused',
      );
    }
    // A truncated hash of a known kind is refused the same way, never "matched".
    expect((await verifyPasswordHash('pw', '$y$')).kind).toBe('unsupported');
  });

  it('{CRYPT} prefix hands the rest to crypt(3)', async () => {
    const hash = madeBy('openssl', ['passwd', '-6', '-stdin'], 'pw');
    expect(await verifyPasswordHash('pw', `{CRYPT}${hash}`)).toEqual({ kind: 'match' });
    expect(await verifyPasswordHash('pw', `{crypt}${hash}`)).toEqual({ kind: 'match' });
    expect(await verifyPasswordHash('px', `{CRYPT}${hash}`)).toEqual({ kind: 'mismatch' });
  });

  it('a bare value is crypt(3); locked and empty values never match', async () => {
    const hash = madeBy('openssl', ['passwd', '-5', '-stdin'], 'pw');
    expect(await verifyPasswordHash('pw', hash)).toEqual({ kind: 'match' });
    for (const s of [
      '',
      '!',
      '!' + hash,
      '*',
      '{CRYPT}',
      '{CRYPT}!' + hash,
      '{SHA}',
      '{SSHA}AAAA',
      '{MD5}not-base64!!',
    ]) {
      expect(await verifyPasswordHash('pw', s), s).toEqual({ kind: 'mismatch' });
    }
  });
});

describe('stored value parsing', () => {
  it('splits scheme, suffix and value', () => {
    expect(parseStored('{SHA256.HEX}ab')).toEqual({ scheme: 'SHA256', encoding: 'hex', value: 'ab' });
    expect(parseStored('{ssha}x')).toEqual({ scheme: 'SSHA', value: 'x' });
    expect(parseStored('$6$a$b')).toEqual({ scheme: '', value: '$6$a$b' });
  });

  it('a {PLAIN} comparison is exact (no normalisation, no trimming)', async () => {
    expect(await verifyPasswordHash('pässwörd', '{PLAIN}pässwörd')).toEqual({ kind: 'match' });
    expect(await verifyPasswordHash('pässwörd'.normalize('NFD'), '{PLAIN}pässwörd')).toEqual({ kind: 'mismatch' });
    expect(await verifyPasswordHash('pw ', '{PLAIN}pw')).toEqual({ kind: 'mismatch' });
  });

  it('knows which stored values can supply SCRAM keys', () => {
    expect(scramSourceOf('{PLAIN}pw', 'SHA-1')).toEqual({ kind: 'cleartext', password: 'pw' });
    expect(scramSourceOf('{CLEARTEXT}pw', 'SHA-256').kind).toBe('cleartext');
    expect(scramSourceOf('{SHA}' + createHash('sha1').update('pw').digest('base64'), 'SHA-1').kind).toBe('none');
    expect(scramSourceOf('$6$x$y', 'SHA-256').kind).toBe('none');
    expect(scramSourceOf('{PLAIN}', 'SHA-256').kind).toBe('none');
    expect(scramSourceOf('{SCRAM-SHA-1}4096,c2FsdA==,AAAA,BBBB', 'SHA-1').kind).toBe('none'); // wrong key lengths
  });
});

describe('SASLprep of SCRAM passwords (RFC 4013)', () => {
  it('maps non-ASCII spaces to a space, removes "mapped to nothing" characters, applies NFKC', () => {
    expect(prepScramPassword('a\u00a0b')).toBe('a b');
    expect(prepScramPassword('pass\u00adword')).toBe('password');
    expect(prepScramPassword('\u2168')).toBe('IX');
    expect(prepScramPassword('cafe\u0301')).toBe('caf\u00e9');
  });

  it('leaves a password SASLprep prohibits as it is (doveadm hashed the raw bytes)', () => {
    expect(prepScramPassword('a\u0007b')).toBe('a\u0007b');
  });
});
