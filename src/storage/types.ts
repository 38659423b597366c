/**
 * The storage seam: a ScriptStore is scoped to one user after login and is all the
 * command layer ever sees of where scripts live. It knows nothing of the wire
 * protocol; failures are typed StorageErrors that exactly one place
 * (src/commands/to-response.ts) turns into ManageSieve response codes.
 */

export interface ScriptInfo {
  readonly name: string;
  readonly active: boolean;
}

export type StorageErrorKind =
  /** No script of that name (RFC 5804 NONEXISTENT). */
  | 'nonexistent'
  /** The target name is taken (ALREADYEXISTS). */
  | 'already-exists'
  /** The script is active and cannot be deleted (ACTIVE). */
  | 'active'
  /** Too many scripts (QUOTA/MAXSCRIPTS). */
  | 'quota-maxscripts'
  /** The script is larger than allowed (QUOTA/MAXSIZE). */
  | 'quota-maxsize'
  /** The user's storage quota or the disk is full (QUOTA). */
  | 'quota'
  /** A name storage cannot accept (bad characters, too long). */
  | 'bad-name'
  /** Permission denied, read-only file system. */
  | 'permission'
  /**
   * The user's storage is not set up: a directory the configuration expects (such
   * as `~/.public` on AFS, which only the user or an administrator can create with
   * the right ACL) does not exist. Waiting will not help.
   */
  | 'not-set-up'
  /** Transient: lock contention, a worker that died, a vanished directory (TRYLATER). */
  | 'trylater'
  /** Anything else that went wrong with the file system. */
  | 'io';

export class StorageError extends Error {
  constructor(
    readonly kind: StorageErrorKind,
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}

export interface ScriptStore {
  /** All scripts, the active one marked. */
  list(): Promise<ScriptInfo[]>;
  /** The bytes exactly as stored; StorageError('nonexistent') if absent. */
  get(name: string): Promise<Buffer>;
  /**
   * Would a script of this name and size fit (HAVESPACE, and the check before
   * PUTSCRIPT)? Throws quota-maxscripts / quota-maxsize / quota when not.
   */
  checkSpace(name: string, size: number): Promise<void>;
  /**
   * Store the script byte-exact (atomically). If it is the active script, the
   * filter file Exim reads is rewritten from it as well.
   */
  put(name: string, content: Buffer): Promise<void>;
  /** StorageError('active') for the active script, 'nonexistent' if absent. */
  delete(name: string): Promise<void>;
  /** Renaming the active script keeps it active. */
  rename(oldName: string, newName: string): Promise<void>;
  /** Write the filter file from the named script; '' removes the filter. */
  setActive(name: string): Promise<void>;
  /** Release whatever the store holds (worker process, locks). */
  close(): Promise<void>;
}

/** The same store with another close(): for a store that must take something down with it. */
export function withClose(store: ScriptStore, close: () => Promise<void>): ScriptStore {
  return {
    list: () => store.list(),
    get: (name) => store.get(name),
    checkSpace: (name, size) => store.checkSpace(name, size),
    put: (name, content) => store.put(name, content),
    delete: (name) => store.delete(name),
    rename: (from, to) => store.rename(from, to),
    setActive: (name) => store.setActive(name),
    close,
  };
}
