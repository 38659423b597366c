/**
 * Checks on the strings a client offers as user name and password before any
 * backend sees them: valid text, no NUL or control characters in names (they end
 * up in logs, paths and PAM items), and length limits so a client cannot make us
 * hash megabytes.
 *
 * Must not know: which backend or mechanism is in use, or the wire protocol.
 */

/** Longest accepted user name, in UTF-8 bytes (user@domain fits easily). */
export const MAX_USER_BYTES = 255;
/** Longest accepted password, in UTF-8 bytes. bcrypt uses 72, others more; 1 KiB is ample. */
export const MAX_PASSWORD_BYTES = 1024;

export type NameCheck = { readonly ok: true } | { readonly ok: false; readonly reason: string };

// C0 controls, DEL and C1 controls. U+2028/2029 (line/paragraph separators) are
// refused as well: they split log lines in some viewers.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u;

export function checkUserName(user: string): NameCheck {
  if (user.length === 0) return { ok: false, reason: 'empty user name' };
  if (Buffer.byteLength(user, 'utf8') > MAX_USER_BYTES) return { ok: false, reason: 'user name too long' };
  if (CONTROL.test(user)) return { ok: false, reason: 'control character in user name' };
  if (hasLoneSurrogate(user)) return { ok: false, reason: 'user name is not valid Unicode' };
  return { ok: true };
}

/**
 * Passwords may contain any character except NUL (crypt(3) and PAM take C
 * strings, so a NUL would silently truncate the password).
 */
export function checkPassword(password: string): NameCheck {
  if (password.length === 0) return { ok: false, reason: 'empty password' };
  if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) return { ok: false, reason: 'password too long' };
  if (password.includes('\u0000')) return { ok: false, reason: 'NUL in password' };
  if (hasLoneSurrogate(password)) return { ok: false, reason: 'password is not valid Unicode' };
  return { ok: true };
}

/** Strict UTF-8 decoding: SASL (RFC 4616 section 2, RFC 5802 section 5.1) carries UTF-8. */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

// In a /u regex a surrogate pair is one code point, so this class matches only
// lone (ill-formed) surrogates.
function hasLoneSurrogate(s: string): boolean {
  return /[\ud800-\udfff]/u.test(s);
}
