/**
 * Turns a file-system failure into a typed StorageError. One table, so every
 * storage module reports the same fault the same way.
 *
 * Must not know: response codes (src/commands/to-response.ts maps kinds to those).
 */
import { StorageError, type StorageErrorKind } from './types.js';

/** The errno code of a Node system error, if it is one. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = err.code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

export function kindForErrno(code: string | undefined): StorageErrorKind {
  switch (code) {
    case 'ENOSPC': // disk full
    case 'EDQUOT': // quota; AFS reports it at close(2)
    case 'EFBIG':
      return 'quota';
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return 'permission';
    case 'ENOENT': // a directory vanished under us (e.g. an AFS volume move)
    case 'ENOTDIR':
    case 'ESTALE':
    case 'ETIMEDOUT':
    case 'EAGAIN':
    case 'EBUSY':
    case 'EINTR':
    case 'ENOTCONN':
    case 'EHOSTDOWN':
      return 'trylater';
    default:
      return 'io';
  }
}

/** Wraps any failure; StorageErrors pass through unchanged. */
export function toStorageError(err: unknown, what: string): StorageError {
  if (err instanceof StorageError) return err;
  const code = errnoCode(err);
  const detail = err instanceof Error ? err.message : String(err);
  return new StorageError(kindForErrno(code), `${what}: ${detail}`, err);
}
