/**
 * The hint of the active script's name a store's open reads ahead with
 * (src/storage/active-hints.ts): bounded, and only ever a hint, so a wrong or
 * stale one changes nothing but a read.
 */
import { readFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ActiveHints } from '../../src/storage/active-hints.js';
import { renderFilter } from '../../src/storage/filter-file.js';
import { countingOps } from '../helpers/counting-ops.js';
import { openStore, tempHome, type TempHome } from './helpers/store.js';

describe('ActiveHints', () => {
  it('keeps the most recently used names up to its capacity; no active script is no entry', () => {
    const hints = new ActiveHints(2);
    hints.set('/a', 'x');
    hints.set('/b', 'y');
    expect(hints.get('/a')).toBe('x'); // now the most recent
    hints.set('/c', 'z');
    expect([hints.get('/a'), hints.get('/b'), hints.get('/c'), hints.size]).toEqual(['x', undefined, 'z', 2]);
    hints.set('/a', undefined);
    expect([hints.get('/a'), hints.size]).toEqual([undefined, 1]);
  });
});

describe('a store opened with a hint', () => {
  let h: TempHome;
  beforeEach(async () => {
    h = await tempHome();
  });
  afterEach(async () => {
    await h.cleanup();
  });

  it('reads the hinted script with the record, and a wrong or stale hint only costs that read', async () => {
    const hints = new ActiveHints();
    const setup = await openStore(h, { activeHints: hints });
    await setup.put('main', Buffer.from('keep;\n'));
    await setup.put('other', Buffer.from('discard;\n'));
    await setup.setActive('main');
    hints.set(h.scriptsDir, 'other'); // stale: "main" became active elsewhere
    const counting = countingOps(h.home);
    const store = await openStore(h, { activeHints: hints, fileOps: counting.ops });
    expect(counting.calls.map((c) => `${c.op} ${c.path}`)).toContain('readFile sieve/other.sieve');
    // Nothing was repaired or changed on its account; the hint now follows the record.
    expect(await store.list()).toEqual([
      { name: 'main', active: true },
      { name: 'other', active: false },
    ]);
    expect(await readFile(h.filterPath)).toEqual(renderFilter(Buffer.from('keep;\n')));
    expect(hints.get(h.scriptsDir)).toBe('main');

    hints.set(h.scriptsDir, 'gone'); // names no script at all
    expect(await (await openStore(h, { activeHints: hints })).list()).toHaveLength(2);
    await store.setActive('');
    await openStore(h, { activeHints: hints });
    expect(hints.get(h.scriptsDir)).toBeUndefined();
  });
});
