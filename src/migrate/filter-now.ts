/**
 * What a filter file in a user's home holds right now, read the way the migration
 * may read a user's files (safe-fs.ts): the file Exim's router reads today
 * (`--exim-file`, default `.forward`) and the file at tsieved's `filter_path`.
 *
 * Exim follows a symbolic link (pysieved's `.forward` is one, into `.pysieved/`).
 * Not running as root we follow it too (the user's own links, our own rights). As
 * root the link is resolved by hand: its target must lie below the home, every
 * directory on the way must be a real directory (openDirBelow), and the file must
 * be the user's (readOwnedRegularFile). A link anywhere else is reported as
 * unreadable, and routing through it cannot be proven.
 *
 * Must not know: the store, the report, the old layouts.
 */
import { lstat, readlink } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import { errorText, openDirBelow, readOwnedRegularFile, TOO_LARGE, type ReadPolicy } from './safe-fs.js';

/** Larger than any filter Exim reads (1 MiB); a larger file is reported, not read. */
const FILTER_READ_LIMIT = 4 * 1024 * 1024;

export type FilterNow =
  | { readonly kind: 'absent'; readonly path: string }
  | { readonly kind: 'file'; readonly path: string; readonly bytes: Buffer; readonly linkTo?: string }
  | { readonly kind: 'unreadable'; readonly path: string; readonly why: string };

async function readIn(home: string, path: string, policy: ReadPolicy): Promise<Buffer | string> {
  const dir = await openDirBelow(home, dirname(path));
  try {
    const bytes = await readOwnedRegularFile(dir.at(basename(path)), FILTER_READ_LIMIT, policy);
    return bytes === TOO_LARGE ? `is larger than ${FILTER_READ_LIMIT} bytes` : bytes;
  } finally {
    await dir.close();
  }
}

/** The file at `path` (absolute, below `home`) as Exim would read it. */
export async function readFilterNow(
  home: string,
  path: string,
  policy: ReadPolicy,
  asRoot: boolean,
): Promise<FilterNow> {
  try {
    if (!asRoot) {
      const bytes = await readOwnedRegularFile(path, FILTER_READ_LIMIT, { ...policy, follow: true });
      if (bytes === TOO_LARGE) return { kind: 'unreadable', path, why: `is larger than ${FILTER_READ_LIMIT} bytes` };
      const link = (await lstat(path)).isSymbolicLink() ? await readlink(path) : undefined;
      const linkTo =
        link === undefined ? undefined : posix.normalize(link.startsWith('/') ? link : join(dirname(path), link));
      return { kind: 'file', path, bytes, ...(linkTo !== undefined ? { linkTo } : {}) };
    }
    const dir = await openDirBelow(home, dirname(path));
    let link: string | undefined;
    try {
      const at = dir.at(basename(path));
      if ((await lstat(at)).isSymbolicLink()) link = await readlink(at);
    } finally {
      await dir.close();
    }
    let target = path;
    if (link !== undefined) {
      target = posix.normalize(link.startsWith('/') ? link : join(dirname(path), link));
      if (!target.startsWith(posix.normalize(home) + '/')) {
        return {
          kind: 'unreadable',
          path,
          why: `is a symbolic link to ${link}, outside the home directory; not followed as root`,
        };
      }
    }
    const bytes = await readIn(home, target, policy);
    if (typeof bytes === 'string') return { kind: 'unreadable', path, why: bytes };
    return { kind: 'file', path, bytes, ...(link !== undefined ? { linkTo: target } : {}) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent', path };
    const where = (err as { path?: string }).path;
    return { kind: 'unreadable', path, why: `${where && where !== path ? `${where} ` : ''}${errorText(err)}` };
  }
}

/**
 * Does the filter file's directory exist? The store never creates it (on AFS,
 * `~/.public` needs ACLs only the user or an administrator can set), so without it
 * no filter file can be written there, and Exim will find none.
 */
export async function filterDirExists(home: string, path: string): Promise<boolean> {
  try {
    const dir = await openDirBelow(home, dirname(path));
    await dir.close();
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}
