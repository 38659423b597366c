/**
 * Checks a password against a stored hash in any of the forms a Courier userdb or
 * a Dovecot passwd-file holds: `{SCHEME}value` or a bare crypt(3) string. Also
 * turns stored values into SCRAM keys (RFC 5802 section 3) where that is possible.
 *
 * Digests are compared with timingSafeEqual; crypt(3) strings go to libxcrypt
 * (crypt.ts). Passwords are hashed as their UTF-8 bytes, as userdbpw, openssl,
 * mkpasswd and doveadm do.
 *
 * Must not know: files, users, backends or SASL.
 */
import { createHash, createHmac, pbkdf2, timingSafeEqual } from 'node:crypto';
import type { Logger } from '../log/logger.js';
import { DEFAULT_SCRAM_ITERATIONS, type ScramAlgorithm, type ScramCredentials } from './types.js';
import { cryptCheck, cryptUnavailableReason } from './crypt.js';
import { saslprep } from '@mongodb-js/saslprep';

export type HashCheck =
  | { readonly kind: 'match' }
  | { readonly kind: 'mismatch' }
  | { readonly kind: 'unsupported'; readonly scheme: string };

const MATCH: HashCheck = { kind: 'match' };
const MISMATCH: HashCheck = { kind: 'mismatch' };

type Digest = 'md5' | 'sha1' | 'sha256' | 'sha512';
const DIGEST_LEN: Record<Digest, number> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };

/** Unsalted digests: Courier {MD5},{MD5RAW},{SHA},{SHA256},{SHA512}; Dovecot adds PLAIN-MD5, LDAP-MD5, SHA1. */
const PLAIN_DIGESTS: Record<string, Digest> = {
  MD5RAW: 'md5',
  'PLAIN-MD5': 'md5',
  'LDAP-MD5': 'md5',
  SHA: 'sha1',
  SHA1: 'sha1',
  SHA256: 'sha256',
  SHA512: 'sha512',
};
/** Salted digests: base64(H(password || salt) || salt). Courier {SSHA}; Dovecot also the rest. */
const SALTED_DIGESTS: Record<string, Digest> = { SMD5: 'md5', SSHA: 'sha1', SSHA256: 'sha256', SSHA512: 'sha512' };
/** Dovecot names for crypt(3) schemes, plus Courier's/Dovecot's {CRYPT}. */
const CRYPT_SCHEMES = new Set(['CRYPT', 'DES-CRYPT', 'MD5-CRYPT', 'SHA256-CRYPT', 'SHA512-CRYPT', 'BLF-CRYPT']);
const CLEARTEXT_SCHEMES = new Set(['PLAIN', 'CLEAR', 'CLEARTEXT']);
const SCRAM_SCHEMES: Record<string, ScramAlgorithm> = { 'SCRAM-SHA-1': 'SHA-1', 'SCRAM-SHA-256': 'SHA-256' };

export interface ParsedStored {
  /** Upper-cased scheme without braces and without a .HEX/.B64 suffix; "" for a bare crypt string. */
  readonly scheme: string;
  /** Dovecot's explicit encoding suffix, if any. */
  readonly encoding?: 'hex' | 'base64';
  readonly value: string;
}

/** Splits `{SCHEME}value` (Dovecot allows `{SHA256.HEX}` etc.). A bare string is crypt. */
export function parseStored(stored: string): ParsedStored {
  const m = /^\{([A-Za-z0-9_-]+)(?:\.(HEX|B64|BASE64))?\}(.*)$/is.exec(stored);
  if (m === null) return { scheme: '', value: stored };
  const enc = m[2]?.toUpperCase();
  return {
    scheme: m[1].toUpperCase(),
    ...(enc === undefined ? {} : { encoding: enc === 'HEX' ? ('hex' as const) : ('base64' as const) }),
    value: m[3],
  };
}

/** A stored value no password can match: empty, or locked the Unix way. */
export function isLocked(stored: string): boolean {
  return stored.length === 0 || stored.startsWith('!') || stored.startsWith('*');
}

/**
 * The `{SCHEME}` of a stored value when verifyPasswordHash certainly cannot check
 * it, for a warning when the file is loaded; undefined otherwise (bare crypt
 * strings are only known to be unsupported once libcrypt has been asked).
 */
export function unsupportedScheme(stored: string): string | undefined {
  if (isLocked(stored)) return undefined;
  const { scheme } = parseStored(stored);
  const known =
    scheme === '' ||
    scheme === 'MD5' ||
    CRYPT_SCHEMES.has(scheme) ||
    scheme in PLAIN_DIGESTS ||
    scheme in SALTED_DIGESTS ||
    CLEARTEXT_SCHEMES.has(scheme) ||
    scheme in SCRAM_SCHEMES;
  return known ? undefined : scheme;
}

/**
 * What decides the cost of checking against `stored`: the scheme and its cost
 * parameters, never the salt or hash (e.g. `$6$rounds=5000`, `$2y$10`,
 * `$y$j9T`, `{SSHA}`, `{SCRAM-SHA-256}4096`). Entries of one class cost the same.
 */
export function costClass(stored: string): string {
  const { scheme, value } = parseStored(stored);
  if (scheme === '' || CRYPT_SCHEMES.has(scheme) || (scheme === 'MD5' && value.startsWith('$1$'))) {
    const sha = /^\$([56])\$(?:rounds=(\d+)\$)?/.exec(value);
    if (sha) return `$${sha[1]}$rounds=${sha[2] ?? '5000'}`;
    const bcrypt = /^\$(2[abxy]?)\$(\d\d)\$/.exec(value);
    if (bcrypt) return `$${bcrypt[1]}$${bcrypt[2]}`;
    const yescrypt = /^\$(y|gy|7)\$([^$]*)\$/.exec(value);
    if (yescrypt) return `$${yescrypt[1]}$${yescrypt[2]}`;
    if (value.startsWith('$1$')) return '$1$';
    return 'DES';
  }
  if (SCRAM_SCHEMES[scheme] !== undefined)
    return `{${scheme}}${storedScramIterations(stored) ?? DEFAULT_SCRAM_ITERATIONS}`;
  return `{${scheme}}`;
}

/** The iteration count of a stored `{SCRAM-...}` value, if it is one. */
export function storedScramIterations(stored: string): number | undefined {
  const { scheme, value } = parseStored(stored);
  if (SCRAM_SCHEMES[scheme] === undefined) return undefined;
  const n = Number(/^(\d+),/.exec(value)?.[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

export async function verifyPasswordHash(password: string, stored: string, log?: Logger): Promise<HashCheck> {
  if (isLocked(stored)) return MISMATCH;
  const p = parseStored(stored);
  const pw = Buffer.from(password, 'utf8');
  try {
    if (p.scheme === '' || CRYPT_SCHEMES.has(p.scheme)) return await viaCrypt(pw, p.value, log);
    if (p.scheme === 'MD5') {
      // Dovecot's {MD5} is MD5-crypt ("$1$..."); Courier's is base64 MD5. The value tells them apart.
      if (p.value.startsWith('$1$')) return await viaCrypt(pw, p.value, log);
      return digestCheck(pw, p.value, 'md5', p.encoding);
    }
    const plain = PLAIN_DIGESTS[p.scheme];
    if (plain !== undefined) {
      // Courier's {MD5RAW} and Dovecot's PLAIN-MD5 default to hex; the rest to base64.
      const dflt = p.scheme === 'MD5RAW' || p.scheme === 'PLAIN-MD5' ? 'hex' : undefined;
      return digestCheck(pw, p.value, plain, p.encoding ?? dflt);
    }
    const salted = SALTED_DIGESTS[p.scheme];
    if (salted !== undefined) return saltedCheck(pw, p.value, salted, p.encoding);
    if (CLEARTEXT_SCHEMES.has(p.scheme)) return bool(safeEqual(pw, Buffer.from(p.value, 'utf8')));
    const scram = SCRAM_SCHEMES[p.scheme];
    if (scram !== undefined) return await scramCheck(password, p.value, scram);
  } finally {
    pw.fill(0);
  }
  log?.warn({ scheme: p.scheme }, `unsupported password scheme {${p.scheme}}: login refused`);
  return { kind: 'unsupported', scheme: p.scheme };
}

/** The crypt(3) family; a hash libcrypt refuses is reported as unsupported, by its `$id$`. */
async function viaCrypt(pw: Buffer, hash: string, log?: Logger): Promise<HashCheck> {
  const r = await cryptCheck(pw, hash);
  if (r !== 'refused') return bool(r === 'match');
  const id = /^\$[A-Za-z0-9.-]*\$/.exec(hash)?.[0] ?? (hash.length === 13 ? 'DES' : 'unrecognised');
  const scheme = `CRYPT ${id}`;
  const why = cryptUnavailableReason();
  log?.warn(
    { scheme },
    why === undefined
      ? `crypt(3) hash of kind ${id} is not supported by the system libcrypt, or is malformed: login refused`
      : `libcrypt could not be loaded (${why}): login refused`,
  );
  return { kind: 'unsupported', scheme };
}

function bool(ok: boolean): HashCheck {
  return ok ? MATCH : MISMATCH;
}

function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
const HEX = /^[0-9a-fA-F]*$/;

/** Decodes hex or base64 as told, or guesses from the length (Dovecot does the same). */
function decodeBinary(value: string, expectLen: number | undefined, enc?: 'hex' | 'base64'): Buffer | undefined {
  const v = value.trim();
  const asHex = (): Buffer | undefined => (HEX.test(v) && v.length % 2 === 0 ? Buffer.from(v, 'hex') : undefined);
  const asB64 = (): Buffer | undefined => (B64.test(v) && v.length % 4 === 0 ? Buffer.from(v, 'base64') : undefined);
  if (enc === 'hex') return asHex();
  if (enc === 'base64') return asB64();
  if (expectLen !== undefined && v.length === expectLen * 2) {
    const h = asHex();
    if (h !== undefined) return h;
  }
  return asB64();
}

function digestCheck(pw: Buffer, value: string, digest: Digest, enc?: 'hex' | 'base64'): HashCheck {
  const want = decodeBinary(value, DIGEST_LEN[digest], enc);
  if (want === undefined || want.length !== DIGEST_LEN[digest]) return MISMATCH;
  return bool(safeEqual(createHash(digest).update(pw).digest(), want));
}

function saltedCheck(pw: Buffer, value: string, digest: Digest, enc?: 'hex' | 'base64'): HashCheck {
  const raw = decodeBinary(value, undefined, enc);
  const n = DIGEST_LEN[digest];
  // A salt is required: without one it would be the unsalted scheme.
  if (raw === undefined || raw.length <= n) return MISMATCH;
  const salt = raw.subarray(n);
  return bool(safeEqual(createHash(digest).update(pw).update(salt).digest(), raw.subarray(0, n)));
}

// ---------------------------------------------------------------------------
// SCRAM (RFC 5802 section 3; RFC 7677 for SHA-256)

const SCRAM_HASH: Record<ScramAlgorithm, 'sha1' | 'sha256'> = { 'SHA-1': 'sha1', 'SHA-256': 'sha256' };
/** Dovecot's default and RFC 7677's minimum for SCRAM-SHA-256. */
/** A stored count above this would let a crafted file stall the thread pool. */
const MAX_SCRAM_ITERATIONS = 1_000_000;

/**
 * SASLprep (RFC 4013), which RFC 5802 section 2.2 requires for SCRAM passwords
 * ("stored strings": unassigned code points prohibited), through
 * @mongodb-js/saslprep. A password SASLprep prohibits (control characters,
 * bidi mixes) is used as it is: `doveadm pw` hashed its raw UTF-8 bytes, and a
 * client that prepares it would fail as well. For ASCII and ordinary NFC text
 * SASLprep is the identity.
 */
export function prepScramPassword(password: string): string {
  try {
    return saslprep(password);
  } catch {
    return password;
  }
}

function pbkdf2Async(pw: string, salt: Buffer, iterations: number, algorithm: ScramAlgorithm): Promise<Buffer> {
  const hash = SCRAM_HASH[algorithm];
  const len = hash === 'sha1' ? 20 : 32;
  return new Promise((resolve, reject) =>
    pbkdf2(Buffer.from(pw, 'utf8'), salt, iterations, len, hash, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** RFC 5802 section 3: SaltedPassword -> ClientKey -> StoredKey, ServerKey. */
export async function deriveScramCredentials(
  password: string,
  algorithm: ScramAlgorithm,
  salt: Buffer,
  iterations: number,
): Promise<ScramCredentials> {
  const hash = SCRAM_HASH[algorithm];
  const salted = await pbkdf2Async(password, salt, iterations, algorithm);
  const clientKey = createHmac(hash, salted).update('Client Key').digest();
  const storedKey = createHash(hash).update(clientKey).digest();
  const serverKey = createHmac(hash, salted).update('Server Key').digest();
  salted.fill(0);
  clientKey.fill(0);
  return { iterations, salt, storedKey, serverKey };
}

/**
 * Parses Dovecot's `{SCRAM-SHA-256}iterations,salt,storedkey,serverkey` (all
 * base64) for the given algorithm. Undefined when the value is of another scheme
 * or algorithm, or malformed. Cleartext values (`{PLAIN}` etc.) cannot be turned
 * into keys synchronously: see scramSourceOf/deriveScramCredentials.
 */
export function scramCredentialsFrom(stored: string, algorithm: ScramAlgorithm): ScramCredentials | undefined {
  const p = parseStored(stored);
  if (SCRAM_SCHEMES[p.scheme] !== algorithm) return undefined;
  return parseScramValue(p.value, algorithm);
}

function parseScramValue(value: string, algorithm: ScramAlgorithm): ScramCredentials | undefined {
  const parts = value.split(',');
  if (parts.length !== 4) return undefined;
  const [it, salt, stored, server] = parts as [string, string, string, string];
  if (!/^[1-9][0-9]{0,9}$/.test(it)) return undefined;
  const iterations = Number(it);
  if (iterations > MAX_SCRAM_ITERATIONS) return undefined;
  const len = SCRAM_HASH[algorithm] === 'sha1' ? 20 : 32;
  const s = decodeBinary(salt, undefined, 'base64');
  const sk = decodeBinary(stored, undefined, 'base64');
  const vk = decodeBinary(server, undefined, 'base64');
  if (s === undefined || s.length === 0 || sk?.length !== len || vk?.length !== len) return undefined;
  return { iterations, salt: s, storedKey: sk, serverKey: vk };
}

/** Where SCRAM keys for a stored value would come from, if anywhere. */
export type ScramSource =
  | { readonly kind: 'keys'; readonly credentials: ScramCredentials }
  | { readonly kind: 'cleartext'; readonly password: string }
  | { readonly kind: 'none' };

export function scramSourceOf(stored: string, algorithm: ScramAlgorithm): ScramSource {
  if (isLocked(stored)) return { kind: 'none' };
  const p = parseStored(stored);
  if (CLEARTEXT_SCHEMES.has(p.scheme))
    return p.value.length > 0 ? { kind: 'cleartext', password: p.value } : { kind: 'none' };
  const keys = scramCredentialsFrom(stored, algorithm);
  return keys === undefined ? { kind: 'none' } : { kind: 'keys', credentials: keys };
}

/** A plaintext login against stored SCRAM keys: derive StoredKey and compare. */
async function scramCheck(password: string, value: string, algorithm: ScramAlgorithm): Promise<HashCheck> {
  const keys = parseScramValue(value, algorithm);
  if (keys === undefined) return MISMATCH;
  // doveadm hashes the raw bytes; a SCRAM client would have applied SASLprep.
  // Accept either form, since both stand for the password the user means.
  const candidates = [password];
  const prepped = prepScramPassword(password);
  if (prepped !== password) candidates.push(prepped);
  for (const c of candidates) {
    const derived = await deriveScramCredentials(c, algorithm, keys.salt, keys.iterations);
    if (safeEqual(derived.storedKey, keys.storedKey)) return MATCH;
  }
  return MISMATCH;
}
