/**
 * A change cut off between its two renames (a crash, or a storage worker killed
 * mid-operation) leaves the script listed active and the filter Exim runs out of
 * step. The next session to open the store puts them back in line. Each test
 * builds on disk exactly the state a given interruption leaves.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renderFilter } from '../../src/storage/filter-file.js';
import { openStore, tempHome, type TempHome } from './helpers/store.js';

let h: TempHome;
beforeEach(async () => {
  h = await tempHome();
});
afterEach(async () => {
  await h.cleanup();
});

const A = Buffer.from('keep;\n');
const B = Buffer.from('discard;\n');

async function withActive(name: string, content: Buffer): Promise<void> {
  const store = await openStore(h);
  await store.put(name, content);
  await store.setActive(name);
}

describe('an interrupted change is repaired when the store is next opened', () => {
  it('PUTSCRIPT over the active script, stopped after the script and before the filter', async () => {
    await withActive('a', A);
    await writeFile(join(h.scriptsDir, 'a.sieve'), B); // the script's rename happened, the filter's did not
    const store = await openStore(h);
    expect(await readFile(h.filterPath)).toEqual(renderFilter(B));
    expect(await store.list()).toEqual([{ name: 'a', active: true }]);
  });

  it('SETACTIVE, stopped after the filter and before the record', async () => {
    await withActive('a', A);
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
    await withActive('old', A);
    await rename(join(h.scriptsDir, 'old.sieve'), join(h.scriptsDir, 'new.sieve'));
    const store = await openStore(h);
    expect(await store.list()).toEqual([{ name: 'new', active: true }]);
    expect(await readFile(h.filterPath)).toEqual(renderFilter(A));
  });

  it('a consistent store is left exactly as it is', async () => {
    await withActive('a', A);
    const before = await readFile(h.filterPath);
    const store = await openStore(h);
    expect(await readFile(h.filterPath)).toEqual(before);
    expect(await store.list()).toEqual([{ name: 'a', active: true }]);
  });
});
