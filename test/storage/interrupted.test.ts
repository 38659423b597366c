/**
 * A change cut off between its two renames (a crash, or a storage worker killed
 * mid-operation) leaves the script listed active and the filter Exim runs out of
 * step. The next session to open the store puts them back in line. Each test
 * builds on disk exactly the state a given interruption leaves. A second rename
 * that fails inside a session is undone at once, and a session that lost its lock
 * changes nothing.
 */
import { readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renderFilter } from '../../src/storage/filter-file.js';
import { nodeFileOps, type FileOps } from '../../src/storage/file-ops.js';
import { faultyOps } from './helpers/faulty-ops.js';
import { kindOf, openStore, tempHome, withActive, type TempHome } from './helpers/store.js';

let h: TempHome;
beforeEach(async () => {
  h = await tempHome();
});
afterEach(async () => {
  await h.cleanup();
});

const A = Buffer.from('keep;\n');
const B = Buffer.from('discard;\n');

describe('an interrupted change is repaired when the store is next opened', () => {
  it('PUTSCRIPT over the active script, stopped after the script and before the filter', async () => {
    await withActive(h, 'a', A);
    await writeFile(join(h.scriptsDir, 'a.sieve'), B); // the script's rename happened, the filter's did not
    const store = await openStore(h);
    expect(await readFile(h.filterPath)).toEqual(renderFilter(B));
    expect(await store.list()).toEqual([{ name: 'a', active: true }]);
  });

  it('SETACTIVE, stopped after the filter and before the record', async () => {
    await withActive(h, 'a', A);
    const store0 = await openStore(h);
    await store0.put('b', B);
    await writeFile(h.filterPath, renderFilter(B)); // the filter moved to b; the record still says a
    const store = await openStore(h);
    // The record is what the client was last told: the filter follows it.
    expect(await readFile(h.filterPath)).toEqual(renderFilter(A));
    expect(await store.list()).toEqual([
      { name: 'a', active: true },
      { name: 'b', active: false },
    ]);
  });

  it('RENAMESCRIPT of the active script, stopped after the rename and before the record', async () => {
    await withActive(h, 'old', A);
    await rename(join(h.scriptsDir, 'old.sieve'), join(h.scriptsDir, 'new.sieve'));
    const store = await openStore(h);
    expect(await store.list()).toEqual([{ name: 'new', active: true }]);
    expect(await readFile(h.filterPath)).toEqual(renderFilter(A));
  });

  it('a consistent store is left exactly as it is', async () => {
    await withActive(h, 'a', A);
    const before = await readFile(h.filterPath);
    const store = await openStore(h);
    expect(await readFile(h.filterPath)).toEqual(before);
    expect(await store.list()).toEqual([{ name: 'a', active: true }]);
  });
});

describe('a change that fails half-way inside a session is undone at once', () => {
  for (const [which, match] of [
    ['the script', /\/a\.sieve$/],
    ['the filter', /\/\.forward$/],
  ] as const) {
    it(`PUTSCRIPT over the active script: when ${which} cannot be renamed in, neither changes`, async () => {
      await withActive(h, 'a', A);
      const store = await openStore(h, { fileOps: faultyOps({ renameFails: { match, code: 'EIO' } }) });
      expect(await kindOf(store.put('a', B))).toBe('io');
      expect(await readFile(join(h.scriptsDir, 'a.sieve'))).toEqual(A);
      expect(await readFile(h.filterPath)).toEqual(renderFilter(A));
    });
  }

  it('SETACTIVE: the record cannot be written, so the previous filter comes back', async () => {
    await withActive(h, 'a', A);
    await (await openStore(h)).put('b', B);
    const store = await openStore(h, { fileOps: faultyOps({ renameFails: { match: /\/\.active$/, code: 'EIO' } }) });
    expect(await kindOf(store.setActive('b'))).toBe('io');
    expect(await readFile(h.filterPath)).toEqual(renderFilter(A));
    expect((await store.list()).find((s) => s.active)?.name).toBe('a');
  });

  it('SETACTIVE with no script active before: the new filter is removed again', async () => {
    const store0 = await openStore(h);
    await store0.put('b', B);
    const store = await openStore(h, { fileOps: faultyOps({ renameFails: { match: /\/\.active$/, code: 'EIO' } }) });
    expect(await kindOf(store.setActive('b'))).toBe('io');
    await expect(readFile(h.filterPath)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe("a filter edited by hand below tsieved's marker lines", () => {
  it('is backed up before the next open renders the active script again', async () => {
    await withActive(h, 'a', A);
    const edited = Buffer.concat([renderFilter(A), Buffer.from('if header :contains "subject" "x" { discard; }\n')]);
    await writeFile(h.filterPath, edited);
    await openStore(h);
    expect(await readFile(h.filterPath)).toEqual(renderFilter(A));
    const backups = (await readdir(h.home)).filter((f) => f.startsWith('.forward.tsieved-backup-'));
    expect(backups).toHaveLength(1);
    expect(await readFile(join(h.home, backups[0]))).toEqual(edited);
  });
});

describe('a session that lost its lock while opening the store', () => {
  it('changes nothing: the repairs at open check the lock before writing', async () => {
    await withActive(h, 'a', A);
    // The state an interrupted PUTSCRIPT leaves, which open would repair...
    await writeFile(join(h.scriptsDir, 'a.sieve'), B);
    const before = await readFile(h.filterPath);
    // ...but this session's lock is broken after it took it (by a session that
    // came along while this one stalled): its owner file is gone when it checks.
    let checks = 0;
    const losing: FileOps = {
      ...nodeFileOps,
      async lstat(path) {
        if (/\/\.lock\/owner\.[^/]*$/.test(path)) {
          checks++;
          throw Object.assign(new Error('ENOENT: broken by another session'), { code: 'ENOENT' });
        }
        return nodeFileOps.lstat(path);
      },
    };
    await openStore(h, { fileOps: losing });
    expect(checks).toBeGreaterThan(0);
    expect(await readFile(h.filterPath)).toEqual(before);
  });
});
