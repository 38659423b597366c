/**
 * The old layout's active script, read-only, for sources.ts: where the active link
 * (pysieved's `.forward`, Dovecot's `.dovecot.sieve`) points, or, for Dovecot, a
 * regular file there kept as a script of its own. The link must point at a file
 * directly inside the old scripts directory (a user could otherwise have root copy
 * /etc/shadow into their scripts), and files are read as safe-fs.ts allows.
 *
 * Must not know: tsieved's own storage layout, validation, the CLI.
 */
import { lstat, readlink } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import { isTsievedFilter } from '../storage/filter-file.js';
import { errorText, openDirBelow, readOwnedRegularFile, TOO_LARGE, type ReadPolicy, type SafeDir } from './safe-fs.js';
import type { OldScript, SourceLayout, SourceProblem } from './sources.js';

/** Name for a Dovecot active script that is a regular file rather than a link into the store. */
export const DOVECOT_UNLINKED_ACTIVE_NAME = 'dovecot-active';

export async function readRegularFile(path: string, maxBytes: number, policy: ReadPolicy): Promise<Buffer> {
  const buf = await readOwnedRegularFile(path, maxBytes, policy);
  if (buf === TOO_LARGE) throw new Error(`larger than ${maxBytes} bytes`);
  return buf;
}

/** A problem from a failed openDirBelow; undefined when something on the way is missing. */
export function dirProblem(err: unknown, fallback: string): SourceProblem | undefined {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOENT') return undefined;
  return { file: e?.path ?? fallback, message: errorText(err) };
}

export async function describeActive(home: string, layout: SourceLayout, notes: string[]): Promise<string[]> {
  const link = join(home, layout.activeLink);
  try {
    const st = await lstat(link);
    if (st.isFile())
      notes.push(`${link} is a regular file, not managed by ${layout.kind} (the file itself is left as it is)`);
  } catch {
    /* absent: nothing to say */
  }
  return notes;
}

/** Marker result of readActive: the link is a filter file tsieved wrote. */
export const TSIEVED_FILTER = Symbol('tsieved-filter');

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

export async function readActive(
  home: string,
  ctx: ActiveContext,
): Promise<OldScript | typeof TSIEVED_FILTER | undefined> {
  const link = join(home, ctx.layout.activeLink);
  let linkDir: SafeDir;
  try {
    linkDir = await openDirBelow(home, dirname(link));
  } catch (err) {
    const problem = dirProblem(err, dirname(link));
    if (problem)
      ctx.problems.push({ file: link, message: `${problem.file} ${problem.message}; no script made active` });
    return undefined;
  }
  try {
    return await readActiveIn(linkDir.at(basename(link)), link, ctx);
  } finally {
    await linkDir.close();
  }
}

/** readActive, with `at` naming the link inside its opened directory. */
async function readActiveIn(
  at: string,
  link: string,
  ctx: ActiveContext,
): Promise<OldScript | typeof TSIEVED_FILTER | undefined> {
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
      problems.push({
        file: link,
        message: `points to ${target}, which is not a readable script; no script made active`,
      });
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
