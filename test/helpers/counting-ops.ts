/**
 * FileOps that count every call, by operation and by path, for tests that bound
 * how many file-system operations a store operation makes (each is a thread-pool
 * round trip with node:fs, a pipe round trip over the file broker). Calls on an
 * open file (write, fchmod, fsync, close) count under the file's path.
 *
 * Paths are shown relative to `root`, with the random parts left out: a temp file
 * as `<name>.tmp`, the lock's owner and beat files as `.lock/owner` and `.lock/beat`,
 * so that counts of the same operation compare across runs.
 *
 * Calls are also grouped by when they were made: the calls made before the next
 * process.nextTick (before the caller waits for any answer) are one group, as the
 * file broker's FileOps send them in one write (broker-ops.ts corks its pipe until
 * then). Over ordered FileOps a group is one round trip, so the number of groups is
 * the number of round trips a command waits for one after another.
 */
import { basename, dirname, relative } from 'node:path';
import { nodeFileOps, type FileOps, type NewFileOptions, type WritableFile } from '../../src/storage/file-ops.js';
import { TEMP_MARKER } from '../../src/storage/atomic-write.js';

export interface OpCall {
  readonly op: string;
  readonly path: string;
  /** Made to run only if the call before it succeeded (FileOps.ifPreviousSucceeded). */
  readonly ifPrevious?: true;
}

export interface CountingOps {
  readonly ops: FileOps;
  /** Every call since the last reset(), in the order made. */
  readonly calls: OpCall[];
  /** The same calls, as `op path`, in groups sent together (see above). */
  readonly groups: string[][];
  reset(): void;
  /** Calls per operation ("readFile": 3). */
  byOp(): Record<string, number>;
  /** Calls per operation and path ("readFile .forward": 2). */
  byOpAndPath(): Record<string, number>;
}

/** The path as the counts show it: relative to root, random parts left out. */
export function displayPath(root: string, path: string): string {
  if (relative(root, path) === '') return '.';
  let name = basename(path);
  const marker = name.indexOf(TEMP_MARKER);
  if (marker >= 0) name = `${name.slice(1, marker)}.tmp`;
  name = name.replace(/^(owner|beat)\.[0-9a-f]+$/, '$1');
  const dir = relative(root, dirname(path));
  return dir === '' ? name : `${dir}/${name}`;
}

function tally(keys: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of [...keys].sort()) out[k] = (out[k] ?? 0) + 1;
  return out;
}

export function countingOps(root: string, base: FileOps = nodeFileOps): CountingOps {
  const calls: OpCall[] = [];
  const groups: string[][] = [];
  let open: string[] | undefined;
  /** The next call noted was made through ifPreviousSucceeded. */
  let dependent = false;
  const note = (op: string, path: string): void => {
    const call: OpCall = { op, path: displayPath(root, path), ...(dependent ? { ifPrevious: true as const } : {}) };
    dependent = false;
    calls.push(call);
    if (open === undefined) {
      const group: string[] = [];
      open = group;
      groups.push(group);
      process.nextTick(() => {
        if (open === group) open = undefined;
      });
    }
    open.push(`${call.op} ${call.path}`);
  };
  const counted =
    <A extends unknown[], R>(op: string, f: (path: string, ...rest: A) => Promise<R>) =>
    (path: string, ...rest: A): Promise<R> => {
      note(op, path);
      return f(path, ...rest);
    };
  const ops: FileOps = {
    async createExclusive(path, mode) {
      note('createExclusive', path);
      const file = await base.createExclusive(path, mode);
      const wrapped: WritableFile = {
        writeAll: (data) => (note('write', path), file.writeAll(data)),
        sync: () => (note('fsync', path), file.sync()),
        chmod: (m) => (note('fchmod', path), file.chmod(m)),
        close: () => (note('close', path), file.close()),
      };
      return wrapped;
    },
    readFile: counted('readFile', (p) => base.readFile(p)),
    readdir: counted('readdir', (p) => base.readdir(p)),
    stat: counted('stat', (p) => base.stat(p)),
    lstat: counted('lstat', (p) => base.lstat(p)),
    rename: (from, to) => (note('rename', to), base.rename(from, to)),
    unlink: counted('unlink', (p) => base.unlink(p)),
    mkdir: counted('mkdir', (p, mode: number) => base.mkdir(p, mode)),
    rmdir: counted('rmdir', (p) => base.rmdir(p)),
    syncDir: counted('syncDir', (p) => base.syncDir(p)),
    ...(base.ordered === undefined ? {} : { ordered: base.ordered }),
    // Calls made only if the one before succeeded, where the base makes them so
    // (they are counted as any other: the call made is the same).
    ...(base.ifPreviousSucceeded === undefined
      ? {}
      : {
          ifPreviousSucceeded: <T>(call: () => Promise<T>): Promise<T> =>
            base.ifPreviousSucceeded!(() => {
              dependent = true;
              try {
                return call();
              } finally {
                dependent = false;
              }
            }),
        }),
    // A new file made whole in one call, where the base has that (file threads, a broker).
    ...(base.createFile === undefined
      ? {}
      : {
          createFile: (path: string, data: Uint8Array, options: NewFileOptions) => (
            note('createFile', path),
            base.createFile!(path, data, options)
          ),
        }),
  };
  return {
    ops,
    calls,
    groups,
    reset: () => {
      calls.length = 0;
      groups.length = 0;
      open = undefined;
    },
    byOp: () => tally(calls.map((c) => c.op)),
    byOpAndPath: () => tally(calls.map((c) => `${c.op} ${c.path}`)),
  };
}
