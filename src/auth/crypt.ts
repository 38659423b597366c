/**
 * crypt(3) verification through the system libxcrypt, so every scheme the
 * system's PAM accepts (DES, $1$, $5$, $6$, $2b$/$2y$, $y$, ...) gives exactly the
 * answer glibc/libxcrypt gives. The reentrant crypt_rn() is called through koffi's
 * `.async`, so the hashing runs on the libuv thread pool and never blocks the event
 * loop; each call owns its `struct crypt_data` (crypt() would share one static
 * buffer between pool threads).
 *
 * Must not know: user names, backends, or the `{SCHEME}` prefixes of Courier or
 * Dovecot (password-hash.ts strips those).
 */
import { timingSafeEqual } from 'node:crypto';
import koffi from 'koffi';

/** sizeof(struct crypt_data) in libxcrypt (crypt.h: CRYPT_DATA_... = 32768). */
const CRYPT_DATA_SIZE = 32768;

type CryptRnAsync = (
  phrase: Buffer,
  setting: Buffer,
  data: Buffer,
  size: number,
  cb: (err: unknown, res: string | null) => void,
) => void;

let cryptRn: { async: CryptRnAsync } | undefined;
let loadError: string | undefined;

function load(): { async: CryptRnAsync } | undefined {
  if (cryptRn !== undefined || loadError !== undefined) return cryptRn;
  try {
    const lib = koffi.load('libcrypt.so.1');
    // crypt_rn returns a pointer into `data`, or NULL on any failure (it never
    // returns the "*0"/"*1" failure tokens that crypt/crypt_r may).
    const fn = lib.func('const char *crypt_rn(const char *phrase, const char *setting, void *data, int size)');
    cryptRn = fn;
  } catch (e) {
    loadError = e instanceof Error ? e.message : String(e);
  }
  return cryptRn;
}

/** Why libcrypt could not be loaded, if it could not (for a start-up check). */
export function cryptUnavailableReason(): string | undefined {
  load();
  return loadError;
}

/** Raw crypt_rn: the hash string, or undefined when libcrypt refuses the setting. */
export function cryptRaw(password: string | Buffer, setting: string): Promise<string | undefined> {
  const fn = load();
  if (fn === undefined) return Promise.resolve(undefined);
  const pw = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  // A NUL would silently truncate the C string; such a password cannot match honestly.
  if (pw.includes(0) || setting.includes('\u0000')) return Promise.resolve(undefined);
  const phrase = Buffer.alloc(pw.length + 1);
  pw.copy(phrase);
  const settingC = Buffer.from(setting + '\u0000', 'utf8');
  const data = Buffer.alloc(CRYPT_DATA_SIZE);
  return new Promise((resolve) => {
    try {
      fn.async(phrase, settingC, data, CRYPT_DATA_SIZE, (err, res) => {
        // Wipe our copies of the password (the work area holds derived state too).
        phrase.fill(0);
        data.fill(0);
        resolve(err || res === null || res === undefined || res.startsWith('*') ? undefined : res);
      });
    } catch {
      phrase.fill(0);
      resolve(undefined);
    }
  });
}

export type CryptCheck = 'match' | 'mismatch' | 'refused';

/**
 * Like cryptVerify, but tells a wrong password ('mismatch') from a hash libcrypt
 * will not compute at all ('refused': unknown scheme such as `$apr1$` or
 * `$argon2id$`, a malformed setting, or libcrypt missing), so the caller can log
 * the latter clearly. Locked entries ("!", "*", empty) are a plain mismatch.
 */
export async function cryptCheck(password: string | Buffer, hash: string): Promise<CryptCheck> {
  if (hash.length === 0 || hash.startsWith('!') || hash.startsWith('*')) return 'mismatch';
  const pw = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  if (pw.includes(0)) return 'mismatch';
  const out = await cryptRaw(pw, hash);
  if (out === undefined) return 'refused';
  const a = Buffer.from(out, 'utf8');
  const b = Buffer.from(hash, 'utf8');
  // Lengths of a hash are not secret; the contents are compared in constant time.
  return a.length === b.length && timingSafeEqual(a, b) ? 'match' : 'mismatch';
}

/**
 * True when `password` hashes to `hash` under the setting embedded in `hash`.
 * False for a wrong password and for anything libcrypt refuses (locked "!"/"*"
 * entries, empty or malformed settings, unknown schemes). Never throws.
 */
export async function cryptVerify(password: string | Buffer, hash: string): Promise<boolean> {
  return (await cryptCheck(password, hash)) === 'match';
}
