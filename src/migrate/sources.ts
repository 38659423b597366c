/**
 * Reading the script layouts tsieved replaces, read-only, for `tsieved migrate`:
 *   pysieved (Exim storage): <home>/.pysieved/<urllib-quoted name>, the active one
 *     named by <home>/.forward, a relative symlink to it (docs/pysieved.md);
 *   Dovecot (Pigeonhole file storage): <home>/sieve/<name>.sieve, the active one named
 *     by <home>/.dovecot.sieve, a symlink to it.
 *
 * The migration runs as root over directories users control, so nothing here
 * follows a symlink it was not asked to: the scripts directory (and every directory
 * between the home and it) must be a real directory, scripts are opened with
 * O_NOFOLLOW|O_NONBLOCK and must be regular files (a FIFO or device is refused
 * without blocking), and the active link must point at a file directly inside the
 * scripts directory (a user could otherwise have root copy /etc/shadow into their
 * scripts). As root, a file is only read when the opened file is owned by the user,
 * or by root with a single link where users cannot hard-link root's files (pysieved
 * with uid = -1 wrote root-owned scripts; a hard link the user made to someone else's
 * file is neither; safe-fs.ts rootOwnedPolicy).
 *
 * Must not know: tsieved's own storage layout, validation, the CLI.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describeActive, dirProblem, readActive, readRegularFile, TSIEVED_FILTER } from './active-link.js';
import { errorText, openDirBelow, ownerProblem, type ReadPolicy, type SafeDir } from './safe-fs.js';

export type { ReadPolicy } from './safe-fs.js';

export type SourceKind = 'pysieved' | 'dovecot';

export interface SourceLayout {
  readonly kind: SourceKind;
  /** Scripts directory, relative to the home directory. */
  readonly scriptsDir: string;
  /** The active-script link, relative to the home directory. */
  readonly activeLink: string;
}

export const DEFAULT_LAYOUTS: Readonly<Record<SourceKind, SourceLayout>> = {
  pysieved: { kind: 'pysieved', scriptsDir: '.pysieved', activeLink: '.forward' },
  dovecot: { kind: 'dovecot', scriptsDir: 'sieve', activeLink: '.dovecot.sieve' },
};

export { DOVECOT_UNLINKED_ACTIVE_NAME } from './active-link.js';

export interface OldScript {
  readonly name: string;
  readonly file: string;
  readonly content: Buffer;
}

export interface SourceProblem {
  /** The file concerned. */
  readonly file: string;
  readonly message: string;
}

export interface OldScripts {
  readonly scriptsDir: string;
  /** False when the user has no scripts directory at all (nothing to migrate). */
  readonly found: boolean;
  readonly scripts: readonly OldScript[];
  /** The active script (one of `scripts`, by identity: two files may decode to one name). */
  readonly active?: OldScript;
  /** Scripts that could not be read or named, and oddities of the active link. */
  readonly problems: readonly SourceProblem[];
  /** Things worth telling the admin that are not errors. */
  readonly notes: readonly string[];
  /** The active link has already been replaced by a filter file tsieved wrote (an earlier run). */
  readonly activeIsTsievedFilter?: boolean;
}

/** pysieved names files with Python 2 urllib.quote(name, ''): percent-encoded UTF-8. */
export function decodePysievedName(file: string): string | undefined {
  if (!/^(?:[^%]|%[0-9A-Fa-f]{2})*$/.test(file)) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < file.length;) {
    if (file[i] === '%') {
      bytes.push(parseInt(file.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      const b = Buffer.from(file[i], 'utf8');
      for (const x of b) bytes.push(x);
      i += 1;
    }
  }
  return strictUtf8(Buffer.from(bytes));
}

/** Dovecot names files <name>.sieve with the name as is (UTF-8). */
export function decodeDovecotName(file: string): string | undefined {
  if (!file.endsWith('.sieve') || file.length === '.sieve'.length) return undefined;
  return file.slice(0, -'.sieve'.length);
}

function strictUtf8(bytes: Buffer): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** Which directory entries the old server listed as scripts. */
function scriptName(kind: SourceKind, file: string): string | undefined | null {
  if (kind === 'pysieved') {
    // pysieved's FileStorage skipped names starting with '.' or ending with '~'.
    if (file.startsWith('.') || file.endsWith('~')) return null;
    return decodePysievedName(file);
  }
  // Dovecot: only *.sieve is a script; .svbin (compiled), tmp/, dot files are not.
  if (file.startsWith('.') || !file.endsWith('.sieve')) return null;
  return decodeDovecotName(file);
}

/**
 * Read one user's old scripts. `home` comes from the user database (trusted);
 * everything below it is the user's and is treated as untrusted. The scripts
 * directory is opened once (safe-fs.ts openDirBelow) and everything in it is
 * looked up in that open directory, never again by a path the user could redirect.
 */
export async function readOldScripts(
  home: string,
  layout: SourceLayout,
  maxBytes: number,
  policy: ReadPolicy = {},
): Promise<OldScripts> {
  const scriptsDir = join(home, layout.scriptsDir);
  const problems: SourceProblem[] = [];
  const notes: string[] = [];
  const scripts: OldScript[] = [];
  let dir: SafeDir;
  try {
    dir = await openDirBelow(home, scriptsDir);
  } catch (err) {
    const problem = dirProblem(err, scriptsDir);
    if (problem === undefined) {
      return { scriptsDir, found: false, scripts, problems, notes: await describeActive(home, layout, notes) };
    }
    problems.push(problem);
    return { scriptsDir, found: true, scripts, problems, notes };
  }
  try {
    // A directory cannot be hard-linked: a root-owned one was made by root (pysieved
    // with uid = -1), whatever fs.protected_hardlinks says; its files are checked each.
    const dirOwner = ownerProblem({ uid: await dir.owner(), nlink: 1 }, { ...policy, rootOwned: true });
    if (dirOwner !== undefined) {
      problems.push({ file: scriptsDir, message: dirOwner });
      return { scriptsDir, found: true, scripts, problems, notes };
    }
    let entries: string[];
    try {
      entries = (await readdir(dir.via)).sort();
    } catch (err) {
      problems.push({ file: scriptsDir, message: errorText(err) });
      return { scriptsDir, found: true, scripts, problems, notes };
    }
    const byFile = new Map<string, OldScript>();
    /** Every name a script file decodes to, read or not: the unlinked active file's name avoids them all. */
    const taken = new Set<string>();
    for (const entry of entries) {
      const file = join(scriptsDir, entry);
      const name = scriptName(layout.kind, entry);
      if (name === null) continue;
      let st;
      try {
        st = await lstat(dir.at(entry));
      } catch (err) {
        problems.push({ file, message: errorText(err) });
        continue;
      }
      if (st.isDirectory()) continue; // Dovecot's tmp/ and the like
      if (name === undefined) {
        problems.push({ file, message: 'file name does not decode to a UTF-8 script name' });
        continue;
      }
      taken.add(name.normalize('NFC'));
      // Not even opened: a device's open(2) may have effects of its own.
      if (!st.isFile()) {
        problems.push({
          file,
          message: st.isSymbolicLink() ? 'is a symbolic link; not followed' : 'is not a regular file',
        });
        continue;
      }
      try {
        const content = await readRegularFile(dir.at(entry), maxBytes, policy);
        const script = { name, file, content };
        scripts.push(script);
        byFile.set(entry, script);
        if (layout.kind === 'pysieved' && /^tmp[A-Za-z0-9_]{6}$/.test(entry)) {
          notes.push(`${file} looks like a temp file pysieved left behind after a crash; imported as it was listed`);
        }
      } catch (err) {
        problems.push({ file, message: errorText(err) });
      }
    }
    const active = await readActive(home, {
      layout,
      scriptsDir,
      byFile,
      taken,
      maxBytes,
      policy,
      scripts,
      problems,
      notes,
    });
    if (active === TSIEVED_FILTER)
      return { scriptsDir, found: true, scripts, problems, notes, activeIsTsievedFilter: true };
    return { scriptsDir, found: true, scripts, problems, notes, ...(active !== undefined ? { active } : {}) };
  } finally {
    await dir.close();
  }
}
