/**
 * Script names (RFC 5804 section 1.6) and their reversible mapping to file names.
 *
 * A name is Net-Unicode (RFC 5198): valid UTF-8 (lone surrogates mean the bytes were
 * not UTF-8), normalised to NFC here so that names differing only in normalisation
 * are the same script, free of the control characters section 1.6 forbids, and of
 * unassigned code points (their NFC form is not stable, RFC 5198 section 2).
 *
 * Bytes become a name in one place only, `decodeNameBytes`: fatal on invalid UTF-8
 * and keeping a leading U+FEFF. A decoder that strips the BOM (TextDecoder's
 * default) made "\uFEFFx" stored under one file name decode to "x" when the
 * directory was scanned, so the script was neither listed nor counted in quotas.
 * A name never becomes a path
 * unencoded: `encodeScriptFileName` percent-encodes everything outside a small safe
 * set, so `/`, `..`, a leading dot and NUL cannot reach the file system, and hashes
 * names whose encoding would not fit a 255-byte file name component.
 *
 * Must not know: where scripts live, the wire protocol, or response codes.
 */
import { createHash } from 'node:crypto';

/**
 * Section 1.6: servers MUST allow at least 128 characters / 512 octets and MUST
 * NOT truncate. We allow more, and refuse (never truncate) beyond this.
 */
export const MAX_SCRIPT_NAME_OCTETS = 1024;

/** Suffix of every script file; metadata files start with '.' and so never clash. */
export const SCRIPT_SUFFIX = '.sieve';
/** Suffix of the side file holding the real name of a script stored under a hash. */
export const HASHED_NAME_SUFFIX = '.name';
/** Hashed file names start with this; the percent-encoding never produces it. */
const HASH_PREFIX = '#';
/** Longest encoded stem we store directly (255-byte component minus suffixes, margin). */
const MAX_ENCODED_STEM = 200;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The one decoding of name bytes (from the wire, a directory entry, a side file):
 * every code point kept, U+FEFF included; undefined when the bytes are not UTF-8.
 */
export function decodeNameBytes(bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** The one encoding of a name to bytes (the inverse of decodeNameBytes). */
export function encodeNameBytes(name: string): Buffer {
  return Buffer.from(name, 'utf8');
}

export type NameCheck = { ok: true; name: string } | { ok: false; reason: string };

// U+0000-001F, U+007F-009F, U+2028, U+2029 (RFC 5804 section 1.6).
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u;
// A lone surrogate cannot come from valid UTF-8.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
// Unassigned code points and noncharacters (U+FFFE, U+FFFF, ...), general category Cn.
const UNASSIGNED = /\p{Cn}/u;

/** Checks a script name and returns it normalised to NFC. `""` is refused here. */
export function validateScriptName(name: string): NameCheck {
  if (name.length === 0) return { ok: false, reason: 'script name is empty' };
  if (LONE_SURROGATE.test(name)) return { ok: false, reason: 'script name is not valid UTF-8' };
  if (FORBIDDEN.test(name)) return { ok: false, reason: 'script name contains a control character' };
  if (UNASSIGNED.test(name)) return { ok: false, reason: 'script name contains an unassigned code point' };
  const nfc = name.normalize('NFC');
  const octets = Buffer.byteLength(nfc, 'utf8');
  if (octets > MAX_SCRIPT_NAME_OCTETS) {
    return { ok: false, reason: `script name is too long (${octets} octets, at most ${MAX_SCRIPT_NAME_OCTETS})` };
  }
  return { ok: true, name: nfc };
}

function isSafeByte(b: number, first: boolean): boolean {
  return (
    (b >= 0x30 && b <= 0x39) || // 0-9
    (b >= 0x41 && b <= 0x5a) || // A-Z
    (b >= 0x61 && b <= 0x7a) || // a-z
    b === 0x5f || // _
    b === 0x2d || // -
    (b === 0x2e && !first) // '.', but never leading: no hidden files, no "." or ".."
  );
}

/** Percent-encodes the UTF-8 bytes of a (validated, NFC) name. */
export function percentEncodeName(name: string): string {
  let out = '';
  const bytes = encodeNameBytes(name);
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    out += isSafeByte(b, i === 0) ? String.fromCharCode(b) : '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** How a script is stored: its file name, and for hashed names the side file's. */
export interface ScriptFileName {
  readonly file: string;
  /** Present when the name is stored hashed; the side file holds the real name. */
  readonly nameFile?: string;
}

/** The file name(s) for a validated NFC name. Never contains '/', never starts with '.'. */
export function encodeScriptFileName(name: string): ScriptFileName {
  const encoded = percentEncodeName(name);
  if (encoded.length <= MAX_ENCODED_STEM) return { file: encoded + SCRIPT_SUFFIX };
  const stem = HASH_PREFIX + createHash('sha256').update(name, 'utf8').digest('hex');
  return { file: stem + SCRIPT_SUFFIX, nameFile: stem + HASHED_NAME_SUFFIX };
}

/**
 * What a directory entry is. `script` carries the decoded name; `hashed` needs its
 * side file read (`nameFromSideFile`); `metadata` is ours but no script (dot files,
 * hashed names' side files); `other` is a file the store cannot map to a name,
 * which is still counted against the quotas, so nothing stored escapes them.
 */
export type DecodedEntry =
  { kind: 'script'; name: string } | { kind: 'hashed'; nameFile: string } | { kind: 'metadata' } | { kind: 'other' };

const SIDE_FILE = /^#[0-9a-f]{64}\.name$/;

export function decodeScriptFileName(file: string): DecodedEntry {
  if (file.startsWith('.') || SIDE_FILE.test(file)) return { kind: 'metadata' };
  if (!file.endsWith(SCRIPT_SUFFIX)) return { kind: 'other' };
  const stem = file.slice(0, -SCRIPT_SUFFIX.length);
  if (stem.startsWith(HASH_PREFIX)) {
    return /^#[0-9a-f]{64}$/.test(stem) ? { kind: 'hashed', nameFile: stem + HASHED_NAME_SUFFIX } : { kind: 'other' };
  }
  if (!/^(?:[A-Za-z0-9_.-]|%[0-9A-F]{2})+$/.test(stem)) return { kind: 'other' };
  const bytes: number[] = [];
  for (let i = 0; i < stem.length;) {
    if (stem[i] === '%') {
      bytes.push(parseInt(stem.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      bytes.push(stem.charCodeAt(i));
      i += 1;
    }
  }
  const name = decodeNameBytes(Uint8Array.from(bytes));
  if (name === undefined) return { kind: 'other' };
  const check = validateScriptName(name);
  // Only the canonical encoding of a valid name counts, so one script has one file.
  if (!check.ok || check.name !== name || encodeScriptFileName(name).file !== file) return { kind: 'other' };
  return { kind: 'script', name };
}

/** The name a hashed script file belongs to, from its side file's bytes; undefined if they do not match. */
export function nameFromSideFile(file: string, sideFile: Uint8Array | undefined): string | undefined {
  const name = sideFile && decodeNameBytes(sideFile);
  if (name === undefined) return undefined;
  const check = validateScriptName(name);
  return check.ok && check.name === name && encodeScriptFileName(name).file === file ? name : undefined;
}
