/** nodeFileOps that record every call changing something, for tests of what an operation writes. */
import { nodeFileOps, type FileOps } from '../../../src/storage/file-ops.js';

export function recordingOps(): { ops: FileOps; changes: string[] } {
  const changes: string[] = [];
  const log =
    <A extends unknown[], R>(name: string, f: (...a: A) => Promise<R>) =>
    (...a: A): Promise<R> => {
      changes.push(`${name} ${String(a[0])}`);
      return f(...a);
    };
  const ops: FileOps = {
    ...nodeFileOps,
    createExclusive: log('create', nodeFileOps.createExclusive),
    rename: log('rename', nodeFileOps.rename),
    unlink: log('unlink', nodeFileOps.unlink),
    mkdir: log('mkdir', nodeFileOps.mkdir),
    rmdir: log('rmdir', nodeFileOps.rmdir),
  };
  return { ops, changes };
}
