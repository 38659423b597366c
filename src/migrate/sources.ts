/**
 * Reading the script layouts tsieved replaces, read-only, for `tsieved migrate`:
 *   pysieved (Exim storage): <home>/.pysieved/<urllib-quoted name>, the active one
 *     named by <home>/.forward, a relative symlink to it (reference/pysieved-hcoop.md 1.5);
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
import { lstat, readdir, readlink } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import { isTsievedFilter } from '../storage/filter-file.js';
import { errorText, openDirBelow, ownerProblem, readOwnedRegularFile, TOO_LARGE, type ReadPolicy, type SafeDir } from './safe-fs.js';

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

/** Name for a Dovecot active script that is a regular file rather than a link into the store. */
export const DOVECOT_UNLINKED_ACTIVE_NAME = 'dovecot-active';

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
  for (let i = 0; i < file.length; ) {
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

async function readRegularFile(path: string, maxBytes: number, policy: ReadPolicy): Promise<Buffer> {
  const buf = await readOwnedRegularFile(path, maxBytes, policy);
  if (buf === TOO_LARGE) throw new Error(`larger than ${maxBytes} bytes`);
  return buf;
}

/** A problem from a failed openDirBelow; undefined when something on the way is missing. */
function dirProblem(err: unknown, fallback: string): SourceProblem | undefined {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOENT') return undefined;
  return { file: e?.path ?? fallback, message: errorText(err) };
}

/**
 * Read one user's old scripts. `home` comes from the user database (trusted);
 * everything below it is the user's and is treated as untrusted. The scripts
 * directory is opened once (safe-fs.ts openDirBelow) and everything in it is
 * looked up in that open directory, never again by a path the user could redirect.
 */
export async function readOldScripts(home: string, layout: SourceLayout, maxBytes: number, policy: ReadPolicy = {}): Promise<OldScripts> {
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
        problems.push({ file, message: st.isSymbolicLink() ? 'is a symbolic link; not followed' : 'is not a regular file' });
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
    const active = await readActive(home, { layout, scriptsDir, byFile, taken, maxBytes, policy, scripts, problems, notes });
    if (active === TSIEVED_FILTER) return { scriptsDir, found: true, scripts, problems, notes, activeIsTsievedFilter: true };
    return { scriptsDir, found: true, scripts, problems, notes, ...(active !== undefined ? { active } : {}) };
  } finally {
    await dir.close();
  }
}

async function describeActive(home: string, layout: SourceLayout, notes: string[]): Promise<string[]> {
  const link = join(home, layout.activeLink);
  try {
    const st = await lstat(link);
    if (st.isFile()) notes.push(`${link} is a regular file, not managed by ${layout.kind} (the file itself is left as it is)`);
  } catch {
    /* absent: nothing to say */
  }
  return notes;
}

/** Marker result of readActive: the link is a filter file tsieved wrote. */
const TSIEVED_FILTER = Symbol('tsieved-filter');

/** What readActive works with, and adds to. */
interface ActiveContext {
  readonly layout: SourceLayout;
  readonly scriptsDir: string;
  readonly byFile: ReadonlyMap<string, OldScript>;
  /** Names of the script files, read or not. */
  readonly taken: ReadonlySet<string>;
  readonly maxBytes: number;
  readonly policy: ReadPolicy;
  readonly scripts: OldScript[];
  readonly problems: SourceProblem[];
  readonly notes: string[];
}

async function readActive(home: string, ctx: ActiveContext): Promise<OldScript | typeof TSIEVED_FILTER | undefined> {
  const link = join(home, ctx.layout.activeLink);
  let linkDir: SafeDir;
  try {
    linkDir = await openDirBelow(home, dirname(link));
  } catch (err) {
    const problem = dirProblem(err, dirname(link));
    if (problem) ctx.problems.push({ file: link, message: `${problem.file} ${problem.message}; no script made active` });
    return undefined;
  }
  try {
    return await readActiveIn(linkDir.at(basename(link)), link, ctx);
  } finally {
    await linkDir.close();
  }
}

/** readActive, with `at` naming the link inside its opened directory. */
async function readActiveIn(at: string, link: string, ctx: ActiveContext): Promise<OldScript | typeof TSIEVED_FILTER | undefined> {
  const { layout, scriptsDir, byFile, taken, maxBytes, policy, scripts, problems, notes } = ctx;
  let st;
  try {
    st = await lstat(at);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') problems.push({ file: link, message: errorText(err) });
    return undefined;
  }
  if (st.isSymbolicLink()) {
    let target: string;
    try {
      target = await readlink(at);
    } catch (err) {
      problems.push({ file: link, message: errorText(err) });
      return undefined;
    }
    const resolved = posix.normalize(target.startsWith('/') ? target : join(dirname(link), target));
    if (dirname(resolved) !== posix.normalize(scriptsDir)) {
      problems.push({ file: link, message: `points to ${target}, outside ${scriptsDir}; no script made active` });
      return undefined;
    }
    const script = byFile.get(basename(resolved));
    if (script === undefined) {
      problems.push({ file: link, message: `points to ${target}, which is not a readable script; no script made active` });
    }
    return script;
  }
  if (!st.isFile()) {
    problems.push({ file: link, message: 'is neither a symbolic link nor a regular file' });
    return undefined;
  }
  // tsieved's own filter file where the old link was (the filter path is the same
  // file and an earlier run activated): the old link is in the backup file.
  try {
    const head = await readRegularFile(at, maxBytes, policy);
    if (isTsievedFilter(head)) return TSIEVED_FILTER;
  } catch {
    /* reported below when it matters */
  }
  if (layout.kind === 'pysieved') {
    // pysieved never wrote a regular .forward; whoever did, tsieved's filter-file
    // preservation keeps it when the filter path is the same file.
    notes.push(`${link} is a regular file, not managed by pysieved (the file itself is left as it is)`);
    return undefined;
  }
  // Dovecot runs a regular active file as is; keep it as a script of its own, under a
  // name none of the user's script files has (the file depends only on the old
  // layout, so a second run picks the same name and finds it unchanged).
  try {
    const content = await readRegularFile(at, maxBytes, policy);
    const existing = scripts.find((s) => s.content.equals(content));
    if (existing) return existing;
    let name = DOVECOT_UNLINKED_ACTIVE_NAME;
    for (let n = 2; taken.has(name); n++) name = `${DOVECOT_UNLINKED_ACTIVE_NAME}-${n}`;
    const script = { name, file: link, content };
    scripts.push(script);
    notes.push(`${link} is a regular file; imported as ${JSON.stringify(name)}`);
    return script;
  } catch (err) {
    problems.push({ file: link, message: errorText(err) });
    return undefined;
  }
}
