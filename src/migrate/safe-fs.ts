/**
 * Reading files in directories a user controls while running as root, for
 * `tsieved migrate`: never through a symbolic link (directories below the home are
 * opened one step at a time with O_NOFOLLOW, files with O_NOFOLLOW inside the
 * directory that was opened), never blocking on a FIFO or opening a
 * device for real (O_NONBLOCK, then fstat must show a regular file), and only files
 * the user owns, or root-owned files with a single link (pysieved run with uid = -1
 * left root-owned scripts; a hard link the user made to another user's file, or to
 * one of root's, is refused). The owner check is made on the opened descriptor, so a
 * file swapped in between the checks is still caught.
 *
 * A single link proves nothing by itself: with fs.protected_hardlinks = 0 a user can
 * hard-link a root 0600 file into their directory, and once root replaces the
 * original by rename (passwd(1) does so with /etc/shadow) the user's link is root's
 * with one link. So root-owned files are read only when the kernel refuses such
 * links (rootOwnedPolicy: /proc/sys/fs/protected_hardlinks is 1, read once).
 * Left: a link made while the setting was 0 and still there after it became 1
 * (systemd sets it at boot, so only an administrator toggling it makes one).
 *
 * Also the FileOps a dry run gives FileStore: the same reads, and every write fails
 * with EROFS, so a dry run cannot change anything whatever the store tries.
 *
 * Must not know: script layouts, the CLI.
 */
import { constants } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { relative, join } from 'node:path';
import { MAX_READ_BYTES, readRegularFile, type FileOps, type FileStat } from '../storage/file-ops.js';

/** Whether root-owned files with one link may be read for a user: true, or why not. */
export type RootOwnedPolicy = true | string;

/** Whose files may be read. */
export interface ReadPolicy {
  /** The user's uid: files must be theirs, or (see rootOwned) root's with one link. Unset: anyone's (not root). */
  readonly ownerUid?: number | undefined;
  /** With ownerUid: root's files with one link are read too when true; otherwise why not. Unset: refused. */
  readonly rootOwned?: RootOwnedPolicy | undefined;
  /** Follow symbolic links (only when not running as root: the user's own links then). */
  readonly follow?: boolean;
}

/** Why a file with this owner and link count must not be read, if it must not. */
export function ownerProblem(st: { uid: number; nlink: number }, policy: ReadPolicy): string | undefined {
  if (policy.ownerUid === undefined || st.uid === policy.ownerUid) return undefined;
  if (st.uid === 0 && st.nlink > 1) return 'is owned by root and has other hard links; not read as root';
  if (st.uid === 0) {
    if (policy.rootOwned === true) return undefined;
    return `is owned by root; not read as root: ${policy.rootOwned ?? 'root-owned files are not read for a user'}`;
  }
  return `is owned by uid ${st.uid}, not by the user; not read as root`;
}

/** Linux: 1 when a user cannot hard-link a file they neither own nor may read and write. */
export const PROTECTED_HARDLINKS = '/proc/sys/fs/protected_hardlinks';
let protectedHardlinks: Promise<RootOwnedPolicy> | undefined;

/**
 * May root-owned files with one link be read for a user? Only when users cannot
 * hard-link root's files (fs.protected_hardlinks = 1); otherwise, or when that
 * cannot be read, the answer is why not, for the report. The real setting is read
 * once per process; another `path` (tests) is read every time.
 */
export function rootOwnedPolicy(path = PROTECTED_HARDLINKS): Promise<RootOwnedPolicy> {
  if (path !== PROTECTED_HARDLINKS) return readRootOwnedPolicy(path);
  protectedHardlinks ??= readRootOwnedPolicy(path);
  return protectedHardlinks;
}

async function readRootOwnedPolicy(path: string): Promise<RootOwnedPolicy> {
  let value: string;
  try {
    value = (await fsp.readFile(path, 'utf8')).trim();
  } catch (err) {
    return `${path} cannot be read (${errorText(err)}), so whether a user could have hard-linked a file of root's here is not known; root-owned files are not read`;
  }
  if (value === '1') return true;
  return `fs.protected_hardlinks is ${JSON.stringify(value.slice(0, 20)).slice(1, -1)}: a user could have hard-linked a file of root's here (e.g. /etc/shadow, which passwd then replaced by rename); set it to 1 to import root-owned scripts`;
}

/** An error whose message is already the explanation (errorText passes it through). */
function refused(message: string, code: string): Error {
  return Object.assign(new Error(message), { refused: true, code });
}

export function errorText(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { refused?: boolean };
  if (e?.refused) return e.message;
  if (e?.code === 'ELOOP') return 'is a symbolic link; not followed';
  return e?.message ?? String(err);
}

export const TOO_LARGE = Symbol('too-large');

/** A regular file's bytes under `policy`, or TOO_LARGE past `maxBytes`. */
export async function readOwnedRegularFile(
  path: string,
  maxBytes: number,
  policy: ReadPolicy,
): Promise<Buffer | typeof TOO_LARGE> {
  try {
    return await readRegularFile(path, {
      maxBytes,
      noFollow: !policy.follow,
      check: (st) => {
        const owner = ownerProblem(st, policy);
        return owner === undefined ? undefined : refused(owner, 'EFOREIGN');
      },
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ETOOLARGE') return TOO_LARGE;
    if (code === 'ENOTREGULAR') throw refused('is not a regular file', 'ENOTREGULAR');
    throw err;
  }
}

/** Linux's per-descriptor paths: a stand-in for openat(2), which node:fs lacks. */
const PROC_FD = '/proc/self/fd';
let procFd: boolean | undefined;

/**
 * A directory opened without following a link on the way (below the home), and a
 * path that names the opened directory itself: `${PROC_FD}/<fd>`. Names looked up
 * through it are resolved in that very directory, so a user who swaps a directory
 * for a symbolic link after the check gains nothing (with O_NOFOLLOW on the file,
 * nothing but the user's own directory is ever looked into). Without /proc, each
 * step is opened by its path, still with O_NOFOLLOW, which leaves a small race.
 */
export interface SafeDir {
  /** The directory's path, for messages. */
  readonly path: string;
  /** A path naming the directory that was opened, for system calls. */
  readonly via: string;
  /** `via` for a name inside the directory. */
  at(name: string): string;
  /** Its owner (fstat of the open directory). */
  owner(): Promise<number>;
  close(): Promise<void>;
}

/** An error naming the path it is about; `code` as the system call reported it. */
function pathError(path: string, message: string, code: string): Error {
  return Object.assign(new Error(message), { refused: true, code, path });
}

/** Why `path` could not be opened as a directory, as one of our errors. */
async function notADirectory(path: string, err: unknown): Promise<Error> {
  const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
  if (code === 'ENOTDIR' || code === 'ELOOP') {
    const link = await fsp.lstat(path).then(
      (st) => st.isSymbolicLink(),
      () => false,
    );
    return pathError(path, link ? 'is a symbolic link; not followed' : 'is not a directory', code);
  }
  return pathError(path, errorText(err), code);
}

/**
 * Opens `path`, a directory at or below `home` (the home itself is the
 * administrator's and may be reached through links), following no link below the
 * home. A `path` outside the home is opened with only its last step unfollowed (the
 * administrator's directories lead to it). Throws an error with `path` (the step
 * that failed) and `code` (ENOENT when something on the way does not exist).
 */
export async function openDirBelow(home: string, path: string): Promise<SafeDir> {
  procFd ??= await fsp.access(PROC_FD).then(
    () => true,
    () => false,
  );
  const rel = relative(home, path);
  const inside = !rel.startsWith('..') && !rel.startsWith('/');
  const start = inside ? home : path;
  const steps = inside ? rel.split('/').filter(Boolean) : [];
  const dirFlags = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NONBLOCK;
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(start, dirFlags | (inside ? 0 : constants.O_NOFOLLOW));
  } catch (err) {
    throw await notADirectory(start, err);
  }
  let cur = start;
  try {
    for (const step of steps) {
      const next = join(cur, step);
      const via = procFd ? `${PROC_FD}/${handle.fd}/${step}` : next;
      let opened: fsp.FileHandle;
      try {
        opened = await fsp.open(via, dirFlags | constants.O_NOFOLLOW);
      } catch (err) {
        throw await notADirectory(next, err);
      }
      await handle.close();
      handle = opened;
      cur = next;
    }
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
  const open = handle;
  const via = procFd ? `${PROC_FD}/${open.fd}` : path;
  return {
    path,
    via,
    at: (name) => `${via}/${name}`,
    owner: async () => (await open.stat()).uid,
    close: () => open.close().catch(() => undefined),
  };
}

function readOnly(): Promise<never> {
  return Promise.reject(Object.assign(new Error('dry run: nothing is changed'), { code: 'EROFS' }));
}

/**
 * FileOps for a dry run's FileStore: reads under `policy` (without `follow`, `stat`
 * is lstat, so a linked script is not listed and a linked `.active` is not read),
 * and no writes at all. `dir`, when given, is the store's directory opened with
 * openDirBelow: the store is then given `dir.via` as its directory, and messages
 * name the real path.
 */
export function dryRunFileOps(policy: ReadPolicy, dir?: SafeDir): FileOps {
  const shown = (path: string): string =>
    dir && path.startsWith(dir.via + '/') ? join(dir.path, path.slice(dir.via.length + 1)) : path;
  return {
    async readFile(path) {
      try {
        const buf = await readOwnedRegularFile(path, MAX_READ_BYTES, policy);
        if (buf === TOO_LARGE) throw refused(`is larger than ${MAX_READ_BYTES} bytes`, 'ETOOLARGE');
        return buf;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // ENOENT stays as it is: the store takes it for "absent".
        if (code === 'ENOENT') throw err;
        throw refused(`${shown(path)} ${errorText(err)}`, code ?? 'EIO');
      }
    },
    readdir: (path) => fsp.readdir(path),
    stat: (path): Promise<FileStat> => (policy.follow ? fsp.stat(path) : fsp.lstat(path)),
    lstat: (path) => fsp.lstat(path),
    createExclusive: readOnly,
    rename: readOnly,
    unlink: readOnly,
    mkdir: readOnly,
    rmdir: readOnly,
    syncDir: readOnly,
  };
}
