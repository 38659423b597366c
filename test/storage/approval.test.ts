/**
 * A store's approval (PUTSCRIPT and SETACTIVE validate through it): asked under the
 * lock about exactly the bytes that will be written, after the quota checks, never
 * about a preserved forward; a refusal changes nothing.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renderFilter } from '../../src/storage/filter-file.js';
import { kindOf, openStore, tempHome, type TempHome } from './helpers/store.js';

let h: TempHome;
beforeEach(async () => {
  h = await tempHome();
});
afterEach(async () => {
  await h.cleanup();
});

const A = Buffer.from('keep;\n');
const B = Buffer.from('discard;\n');

/** An approval that records what it was asked about, and whether the lock was held then. */
function asking(answer: boolean): { approve: (c: Buffer) => Promise<boolean>; asked: string[]; locked: boolean[] } {
  const asked: string[] = [];
  const locked: boolean[] = [];
  return {
    asked,
    locked,
    approve: async (content) => {
      asked.push(content.toString());
      locked.push((await readdir(h.scriptsDir)).includes('.lock'));
      return answer;
    },
  };
}

describe('approval of a change', () => {
  it('PUTSCRIPT: asked under the lock; a refusal stores nothing', async () => {
    const store = await openStore(h);
    const no = asking(false);
    expect(await store.put('a', A, no.approve)).toBe(false);
    expect(no).toMatchObject({ asked: [A.toString()], locked: [true] });
    expect(await store.list()).toEqual([]);
    const yes = asking(true);
    expect(await store.put('a', A, yes.approve)).toBe(true);
    expect(await store.get('a')).toEqual(A);
  });

  it('PUTSCRIPT: the quotas come first, and a script over them is not looked at', async () => {
    const store = await openStore(h, { limits: { maxScripts: 1, maxScriptBytes: 4096, maxTotalBytes: 0 } });
    await store.put('a', A);
    const yes = asking(true);
    expect(await kindOf(store.put('b', B, yes.approve))).toBe('quota-maxscripts');
    expect(yes.asked).toEqual([]);
  });

  it('SETACTIVE: asked about the script as stored, under the lock; a refusal changes nothing', async () => {
    const store = await openStore(h);
    await store.put('a', A);
    await store.put('b', B);
    await store.setActive('a');
    const no = asking(false);
    expect(await store.setActive('b', no.approve)).toBe(false);
    expect(no).toMatchObject({ asked: [B.toString()], locked: [true] });
    expect(await readFile(h.filterPath)).toEqual(renderFilter(A));
    expect(await store.list()).toEqual([
      { name: 'a', active: true },
      { name: 'b', active: false },
    ]);
    const yes = asking(true);
    expect(await store.setActive('b', yes.approve)).toBe(true);
    expect(await readFile(h.filterPath)).toEqual(renderFilter(B));
  });

  it('SETACTIVE: a preserved forward is not asked about; "" neither', async () => {
    const forward = Buffer.from('someone@example.org\n');
    await writeFile(h.filterPath, forward);
    const store = await openStore(h);
    const no = asking(false);
    expect(await store.setActive('old-forward', no.approve)).toBe(true);
    expect(await store.setActive('', no.approve)).toBe(true);
    expect(await store.setActive('old-forward', no.approve)).toBe(true);
    expect(no.asked).toEqual([]);
    expect(await readFile(h.filterPath)).toEqual(forward);
  });

  it('SETACTIVE of a script that does not exist: nonexistent, nothing asked', async () => {
    const store = await openStore(h);
    const yes = asking(true);
    expect(await kindOf(store.setActive('none', yes.approve))).toBe('nonexistent');
    expect(yes.asked).toEqual([]);
  });
});
