// A directory fsync after a rename never fails the change it follows, but a real
// failure (EIO) is reported instead of vanishing; a file system's refusal is quiet.
import { describe, expect, it } from 'vitest';
import { nodeFileOps, reportingDirSyncFailures, type FileOps } from '../../src/storage/file-ops.js';

const failing = (code: string): FileOps =>
  new Proxy(nodeFileOps, {
    get: (target, property) =>
      property === 'syncDir'
        ? async () => {
            throw Object.assign(new Error(`${code}: directory fsync`), { code });
          }
        : Reflect.get(target, property),
  });

describe('reportingDirSyncFailures', () => {
  it('reports an I/O error of a directory fsync without failing the caller', async () => {
    const reported: string[] = [];
    const ops = reportingDirSyncFailures(failing('EIO'), (path, err) =>
      reported.push(`${path} ${(err as Error).message}`),
    );
    await expect(ops.syncDir('/some/dir')).resolves.toBeUndefined();
    expect(reported).toEqual(['/some/dir EIO: directory fsync']);
  });

  it('stays quiet when the file system does not fsync directories (AFS: EINVAL)', async () => {
    const reported: unknown[] = [];
    const ops = reportingDirSyncFailures(failing('EINVAL'), (_path, err) => reported.push(err));
    await ops.syncDir('/afs/dir');
    expect(reported).toEqual([]);
  });

  it('passes every other operation through, bound to the wrapped object', async () => {
    class Counting {
      #calls = 0;
      async readdir(): Promise<string[]> {
        this.#calls += 1;
        return [`call ${this.#calls}`];
      }
    }
    const ops = reportingDirSyncFailures(new Counting() as unknown as FileOps, () => undefined);
    expect(await ops.readdir('/x')).toEqual(['call 1']);
  });
});
