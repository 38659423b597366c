/**
 * The dry run's overlay (src/migrate/shadow-ops.ts) over real files: changes are
 * seen through it as the store expects them (reads, listings, stats, the errors
 * O_EXCL and a missing parent give), nothing reaches the disk, and it records which
 * paths a change put a file at or removed.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeFileOps } from '../../src/storage/file-ops.js';
import { ShadowOps } from '../../src/migrate/shadow-ops.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsieved-shadow-'));
  writeFileSync(join(dir, 'filter'), 'old');
  writeFileSync(join(dir, '.tmp'), 'partial');
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'sub', 'a'), 'a');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const code = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => 'ok',
    (e: NodeJS.ErrnoException) => e.code,
  );

describe('ShadowOps', () => {
  it('replaces, removes and creates in memory only, and says which paths changed', async () => {
    const disk = (): Record<string, string> =>
      Object.fromEntries(readdirSync(dir).map((e) => [e, e === 'sub' ? 'dir' : readFileSync(join(dir, e), 'utf8')]));
    const before = disk();
    const ops = new ShadowOps(nodeFileOps);
    // An atomic write: temp file, then rename over the target.
    const f = await ops.createExclusive(join(dir, '.filter.new'), 0o644);
    await f.writeAll(Buffer.from('new'));
    await f.close();
    await ops.rename(join(dir, '.filter.new'), join(dir, 'filter'));
    await ops.unlink(join(dir, '.tmp'));
    await ops.mkdir(join(dir, 'lock'), 0o700);
    await (await ops.createExclusive(join(dir, 'lock', 'owner'), 0o600)).close();

    expect((await ops.readFile(join(dir, 'filter'))).toString()).toBe('new');
    expect((await ops.stat(join(dir, 'filter'))).size).toBe(3);
    expect((await ops.readdir(dir)).sort()).toEqual(['filter', 'lock', 'sub']);
    expect(await ops.readdir(join(dir, 'lock'))).toEqual(['owner']);
    expect((await ops.lstat(join(dir, 'lock'))).isDirectory()).toBe(true);
    expect(await code(ops.readFile(join(dir, '.tmp')))).toBe('ENOENT');
    expect(await code(ops.rmdir(join(dir, 'lock')))).toBe('ENOTEMPTY');
    await ops.unlink(join(dir, 'lock', 'owner'));
    await ops.rmdir(join(dir, 'lock'));
    expect(await code(ops.stat(join(dir, 'lock')))).toBe('ENOENT');

    expect([...ops.written]).toEqual([join(dir, 'filter')]);
    expect([...ops.removed]).toEqual([join(dir, '.tmp')]);
    expect(disk()).toEqual(before);
  });

  it('refuses what the file system would: an existing name, a missing parent, a directory removed here', async () => {
    const ops = new ShadowOps(nodeFileOps);
    expect(await code(ops.createExclusive(join(dir, 'filter'), 0o600))).toBe('EEXIST');
    expect(await code(ops.createExclusive(join(dir, 'nodir', 'x'), 0o600))).toBe('ENOENT');
    expect(await code(ops.mkdir(join(dir, 'sub'), 0o700))).toBe('EEXIST');
    await ops.unlink(join(dir, 'sub', 'a'));
    await ops.rmdir(join(dir, 'sub'));
    expect(await code(ops.readFile(join(dir, 'sub', 'a')))).toBe('ENOENT');
    expect(await code(ops.readdir(join(dir, 'sub')))).toBe('ENOENT');
    // Made again here, it holds only what is made here.
    await ops.mkdir(join(dir, 'sub'), 0o700);
    expect(await ops.readdir(join(dir, 'sub'))).toEqual([]);
    expect(readFileSync(join(dir, 'sub', 'a'), 'utf8')).toBe('a');
  });
});
