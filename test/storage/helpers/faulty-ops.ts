/** FileOps with injected faults, for failures a test cannot cause for real (AFS quota at close). */
import { isSkipped, nodeFileOps, type FileOps, type WritableFile } from '../../../src/storage/file-ops.js';

export function errnoError(code: string, syscall: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: injected fault, ${syscall}`);
  err.code = code;
  err.syscall = syscall;
  return err;
}

export interface Faults {
  /** Fail the creation of new files whose path matches (nothing is created). */
  createFails?: { match: RegExp; code: string };
  /** Fail close() of new files whose path matches. */
  closeFails?: { match: RegExp; code: string };
  writeFails?: { match: RegExp; code: string };
  renameFails?: { match: RegExp; code: string };
  unlinkFails?: { match: RegExp; code: string };
}

/**
 * `base` with the faults injected. A failing call fails when it is made, without
 * waiting: over ordered FileOps (base.ordered, kept) the calls made after it still
 * go out in the order made. Where `base` makes a call depend on the one before
 * (ifPreviousSucceeded, kept), a creation, rename or unlink that is to fail is made
 * as a call that really fails (an lstat of a path that is not there), so that a
 * call depending on it is not made, as after a real failure, and so that it is not
 * made itself when it depends on a call that failed.
 */
export function faultyOps(faults: Faults, base: FileOps = nodeFileOps): FileOps {
  const fail = (path: string, code: string, syscall: string): Promise<never> =>
    base.lstat(`${path}.injected-fault-absent`).then(
      () => Promise.reject(new Error(`${path}.injected-fault-absent exists`)),
      (err: unknown) => Promise.reject(isSkipped(err) ? err : errnoError(code, syscall)),
    );
  return {
    // Each method called on base (the in-process file threads' FileOps is a class).
    // No createFile: every new file goes through createExclusive below, where the
    // faults are.
    readFile: (path) => base.readFile(path),
    readdir: (path) => base.readdir(path),
    stat: (path) => base.stat(path),
    lstat: (path) => base.lstat(path),
    mkdir: (path, mode) => base.mkdir(path, mode),
    rmdir: (path) => base.rmdir(path),
    syncDir: (path) => base.syncDir(path),
    ...(base.ordered === undefined ? {} : { ordered: base.ordered }),
    ...(base.ifPreviousSucceeded === undefined
      ? {}
      : { ifPreviousSucceeded: <T>(call: () => Promise<T>): Promise<T> => base.ifPreviousSucceeded!(call) }),
    async createExclusive(path, mode) {
      if (faults.createFails?.match.test(path)) return fail(path, faults.createFails.code, 'open');
      const file = await base.createExclusive(path, mode);
      const wrapped: WritableFile = {
        writeAll: async (data) => {
          if (faults.writeFails?.match.test(path)) throw errnoError(faults.writeFails.code, 'write');
          return file.writeAll(data);
        },
        sync: () => file.sync(),
        chmod: (m) => file.chmod(m),
        close: async () => {
          await file.close(); // the descriptor is gone either way, as with close(2)
          if (faults.closeFails?.match.test(path)) throw errnoError(faults.closeFails.code, 'close');
        },
      };
      return wrapped;
    },
    rename(from, to) {
      if (faults.renameFails?.match.test(to)) return fail(to, faults.renameFails.code, 'rename');
      return base.rename(from, to);
    },
    unlink(path) {
      if (faults.unlinkFails?.match.test(path)) return fail(path, faults.unlinkFails.code, 'unlink');
      return base.unlink(path);
    },
  };
}
