/**
 * Names the FileStore uses inside a user's scripts directory besides the scripts
 * themselves. All start with '.', which no encoded script file name does
 * (script-names.ts), so the two can never clash.
 *
 * Must not know: anything else.
 */

/** The active script's name (UTF-8); absent = no active script. */
export const ACTIVE_FILE = '.active';
/** sha256 of foreign filter files already preserved, one per line. */
export const IMPORTED_FILE = '.imported';
/** Preserved non-Sieve filter files, written back verbatim: `<sha256> <name>` per line. */
export const VERBATIM_FILE = '.verbatim';
/** The cross-process mutation lock (a directory). */
export const LOCK_DIR = '.lock';

/**
 * Per-user metadata other tools keep beside the scripts (ScriptStore.readMeta /
 * writeMeta): a fixed set of keys, so no caller can name a script or one of the
 * files above. `migrated`: `tsieved migrate` settled which script is active.
 */
export const META_FILES = { migrated: '.migrated' } as const;
export type MetaKey = keyof typeof META_FILES;
export const META_KEYS: readonly MetaKey[] = Object.keys(META_FILES) as MetaKey[];

export const RESERVED_IN_SCRIPTS_DIR: readonly string[] = [
  ACTIVE_FILE,
  IMPORTED_FILE,
  VERBATIM_FILE,
  LOCK_DIR,
  ...Object.values(META_FILES),
];
