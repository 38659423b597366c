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
/** The cross-process mutation lock (a directory). */
export const LOCK_DIR = '.lock';

export const RESERVED_IN_SCRIPTS_DIR: readonly string[] = [ACTIVE_FILE, IMPORTED_FILE, LOCK_DIR];
