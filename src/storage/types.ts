/**
 * The storage seam: a ScriptStore is scoped to one user after login and is all the
 * command layer ever sees of where scripts live. It knows nothing of the wire
 * protocol; failures are typed StorageErrors that exactly one place
 * (src/commands/to-response.ts) turns into ManageSieve response codes.
 */
import type { MetaKey } from './layout.js';

export type { MetaKey } from './layout.js';

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
  /**
   * This server cannot act for the account at all as configured (e.g. root with
   * isolation = "none" and a uid other than 0): only the administrator can help.
   */
  | 'misconfigured'
  /** Transient: lock contention, a file broker that died, a vanished directory (TRYLATER). */
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

/**
 * A look at the bytes a change is about to store or activate, taken under the
 * store's lock: what it approved is exactly what is written, and SETACTIVE need not
 * read the script first to validate it. false: nothing is changed.
 */
export type Approval = (content: Buffer) => Promise<boolean>;

/** What setActiveIfNone did. */
export interface ActivationResult {
  /** The script active afterwards (undefined: none). */
  readonly active: string | undefined;
  /** Whether this call activated the script. */
  readonly activated: boolean;
  /** The store's preserved copy of the old filter file, active and identical, that was removed. */
  readonly dropped?: string;
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
   * filter file Exim reads is rewritten from it as well. `approve` is asked after
   * the quota checks (a script that cannot be stored is not looked at); false when
   * it refused (nothing stored).
   */
  put(name: string, content: Buffer, approve?: Approval): Promise<boolean>;
  /** StorageError('active') for the active script, 'nonexistent' if absent. */
  delete(name: string): Promise<void>;
  /** Renaming the active script keeps it active. */
  rename(oldName: string, newName: string): Promise<void>;
  /**
   * Write the filter file from the named script; '' removes the filter. `approve`
   * is asked about the script as read under the lock, unless it is a preserved
   * forward (isVerbatim); false when it refused (nothing changed).
   */
  setActive(name: string, approve?: Approval): Promise<boolean>;
  /**
   * Is this script a preserved non-Sieve filter file (an Exim filter or an address
   * list kept when tsieved took over)? Activation writes such a script back byte for
   * byte, so it is not validated as Sieve; once replaced by PUTSCRIPT it is Sieve.
   */
  isVerbatim(name: string): Promise<boolean>;
  /**
   * Stores the script only if no script of that name exists, decided under the
   * store's lock; false when one does (nothing changed).
   */
  putIfAbsent(name: string, content: Buffer): Promise<boolean>;
  /**
   * Activates the script only if no script is active, decided under the lock. The
   * store's own preserved copy of the filter file, when active and byte-identical to
   * `name`, does not count as a choice and is removed.
   */
  setActiveIfNone(name: string): Promise<ActivationResult>;
  /**
   * Keeps filter-file bytes read elsewhere (the file Exim read before a change of
   * `filter_path`) as a script the way a foreign filter file is kept ("old-forward",
   * verbatim unless Exim reads it as Sieve); returns its name. Activates nothing.
   */
  preserveForward(content: Buffer): Promise<string>;
  /** Per-user metadata beside the scripts (layout.ts META_FILES); undefined if absent. */
  readMeta(key: MetaKey): Promise<Buffer | undefined>;
  /** Writes metadata atomically, under the store's lock. */
  writeMeta(key: MetaKey, content: Buffer): Promise<void>;
  /** Release whatever the store holds (file broker, locks). */
  close(): Promise<void>;
  /** The pid of the separate process that touches the files (the file broker), if there is one. */
  readonly pid?: number;
}

/** The same store with another close(): for a store that must take something down with it. */
export function withClose(store: ScriptStore, close: () => Promise<void>): ScriptStore {
  return {
    list: () => store.list(),
    get: (name) => store.get(name),
    checkSpace: (name, size) => store.checkSpace(name, size),
    put: (name, content, approve) => store.put(name, content, approve),
    delete: (name) => store.delete(name),
    rename: (from, to) => store.rename(from, to),
    setActive: (name, approve) => store.setActive(name, approve),
    isVerbatim: (name) => store.isVerbatim(name),
    putIfAbsent: (name, content) => store.putIfAbsent(name, content),
    setActiveIfNone: (name) => store.setActiveIfNone(name),
    preserveForward: (content) => store.preserveForward(content),
    readMeta: (key) => store.readMeta(key),
    writeMeta: (key, content) => store.writeMeta(key, content),
    close,
  };
}
