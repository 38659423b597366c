/**
 * Opening a store checks for a foreign filter and an interrupted change without the
 * lock first (src/storage/open-check.ts): a store with nothing to repair is opened
 * with reads only, and does not wait for another session's lock; one that needs a
 * repair still gets it, under the lock.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renderFilter } from '../../src/storage/filter-file.js';
import { nodeFileOps } from '../../src/storage/file-ops.js';
import { acquireLock, DEFAULT_LOCK_OPTIONS } from '../../src/storage/lock.js';
import { LOCK_DIR } from '../../src/storage/layout.js';
import { recordingOps as recording } from './helpers/recording-ops.js';
import { openStore, tempHome, withActive, type TempHome } from './helpers/store.js';

let h: TempHome;
beforeEach(async () => {
  h = await tempHome();
});
afterEach(async () => {
  await h.cleanup();
});

const A = Buffer.from('keep;\n');
const B = Buffer.from('discard;\n');

describe('opening a store with nothing to repair', () => {
  it('only reads: no lock is taken and no file is written', async () => {
    await withActive(h, 'a', A);
    const { ops, changes } = recording();
    const store = await openStore(h, { fileOps: ops });
    expect(changes).toEqual([]);
    expect(await store.list()).toEqual([{ name: 'a', active: true }]);
  });

  it("does not wait for another session's lock", async () => {
    await withActive(h, 'a', A);
    const other = await acquireLock(nodeFileOps, join(h.scriptsDir, LOCK_DIR), DEFAULT_LOCK_OPTIONS);
    try {
      const t0 = performance.now();
      // Waiting for the lock would take the whole wait and then log a warning.
      const store = await openStore(h, { lock: { waitMs: 60_000 } });
      expect(performance.now() - t0).toBeLessThan(30_000);
      expect(await store.list()).toEqual([{ name: 'a', active: true }]);
    } finally {
      await other.release();
    }
  });
});

describe('opening a store that needs a repair', () => {
  it('takes the lock and repairs (an interrupted PUTSCRIPT over the active script)', async () => {
    await withActive(h, 'a', A);
    await writeFile(join(h.scriptsDir, 'a.sieve'), B);
    const { ops, changes } = recording();
    await openStore(h, { fileOps: ops });
    expect(changes.some((c) => c.startsWith(`mkdir ${join(h.scriptsDir, LOCK_DIR)}`))).toBe(true);
    expect(await readFile(h.filterPath)).toEqual(renderFilter(B));
  });

  it('takes the lock and preserves a foreign filter file', async () => {
    await writeFile(h.filterPath, 'user@example.org\n');
    const { ops, changes } = recording();
    const store = await openStore(h, { fileOps: ops });
    expect(changes.some((c) => c.startsWith(`mkdir ${join(h.scriptsDir, LOCK_DIR)}`))).toBe(true);
    expect(await store.list()).toEqual([{ name: 'old-forward', active: true }]);
  });

  it("waits for another session's lock before repairing", async () => {
    await withActive(h, 'a', A);
    await writeFile(join(h.scriptsDir, 'a.sieve'), B);
    const other = await acquireLock(nodeFileOps, join(h.scriptsDir, LOCK_DIR), DEFAULT_LOCK_OPTIONS);
    const opening = openStore(h, { lock: { waitMs: 60_000, retryMs: 10 } });
    await new Promise((r) => setTimeout(r, 200));
    // Not repaired while the other session holds the lock...
    expect(await readFile(h.filterPath)).toEqual(renderFilter(A));
    await other.release();
    await opening;
    // ...and repaired once it has it.
    expect(await readFile(h.filterPath)).toEqual(renderFilter(B));
  });
});
