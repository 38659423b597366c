/**
 * The reads of one lock hold (src/storage/held-reads.ts): a second read of a file,
 * listing or stat is answered from the first, and a change made through the view
 * makes the next read of that path (and the listing of its directory) go to the
 * file system again, so nothing the holder itself changed is ever read stale.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { finishFile } from '../../src/storage/file-ops.js';
import { HeldReads } from '../../src/storage/held-reads.js';
import { countingOps, type CountingOps } from '../helpers/counting-ops.js';

let dir: string;
let counting: CountingOps;
let view: HeldReads;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsieved-held-reads-'));
  counting = countingOps(dir);
  view = new HeldReads(counting.ops);
  await writeFile(join(dir, 'a'), 'one');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const reads = (): string[] =>
  counting.calls.filter((c) => !/^(write|close|fsync|fchmod)$/.test(c.op)).map((c) => `${c.op} ${c.path}`);

describe('reads within one lock hold', () => {
  it('reads a file, a listing and a stat once', async () => {
    for (let i = 0; i < 3; i++) {
      expect((await view.readFile(join(dir, 'a'))).toString()).toBe('one');
      expect(await view.readdir(dir)).toEqual(['a']);
      expect((await view.lstat(join(dir, 'a'))).size).toBe(3);
    }
    expect(reads()).toEqual(['readFile a', 'readdir .', 'lstat a']);
  });

  it('a failed read is not repeated either', async () => {
    const missing = join(dir, 'missing');
    await expect(view.readFile(missing)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(view.readFile(missing)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(reads()).toEqual(['readFile missing']);
  });

  it('reads again what a rename into place changed, and the listing of its directory', async () => {
    const a = join(dir, 'a');
    await view.readFile(a);
    await view.readdir(dir);
    await view.lstat(a);
    const temp = join(dir, '.a.tmp');
    await finishFile(view, await view.createExclusive(temp, 0o600), Buffer.from('two'));
    expect(await view.readdir(dir)).toEqual(['.a.tmp', 'a'].sort());
    await view.rename(temp, a);
    expect((await view.readFile(a)).toString()).toBe('two');
    expect(await view.readdir(dir)).toEqual(['a']);
    expect((await view.lstat(a)).size).toBe(3);
    expect(reads()).toEqual([
      'readFile a',
      'readdir .',
      'lstat a',
      'createExclusive .a.tmp',
      'readdir .',
      'rename a',
      'readFile a',
      'readdir .',
      'lstat a',
    ]);
  });

  it('reads again what an unlink removed', async () => {
    const a = join(dir, 'a');
    await view.readFile(a);
    await view.unlink(a);
    await expect(view.readFile(a)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await view.readdir(dir)).toEqual([]);
  });

  it('keeps the order promise of the FileOps it reads through (the broker batches calls)', () => {
    expect(new HeldReads({ ...counting.ops, ordered: true }).ordered).toBe(true);
    expect(view.ordered).toBeFalsy();
  });
});
