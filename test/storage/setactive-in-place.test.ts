/**
 * SETACTIVE of the script that is already active, with the filter file already
 * exactly what activating it writes, changes nothing and takes no lock (clients
 * send it after every save); any difference in the filter (bytes, mode, a link,
 * another owner, a foreign file) still gets it written again, under the lock.
 */
import { chmod, chown, copyFile, readFile, rename, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renderFilter } from '../../src/storage/filter-file.js';
import { ROOT, needs } from '../helpers/tools.js';
import { recordingOps } from './helpers/recording-ops.js';
import { openStore, tempHome, type TempHome } from './helpers/store.js';

let h: TempHome;
beforeEach(async () => {
  h = await tempHome();
});
afterEach(async () => {
  await h.cleanup();
});

const A = Buffer.from('keep;\n');

async function activeA(): Promise<void> {
  const store = await openStore(h);
  await store.put('a', A);
  await store.setActive('a');
}

/**
 * The calls SETACTIVE "a" made that change something, other than the lock's;
 * `meanwhile` changes the files after the store opened (an open repairs some).
 */
async function setActiveChanges(meanwhile?: () => Promise<void>): Promise<string[]> {
  const { ops, changes } = recordingOps();
  const store = await openStore(h, { fileOps: ops });
  await meanwhile?.();
  changes.length = 0;
  await store.setActive('a');
  return changes.filter((c) => !c.includes('/.lock'));
}

describe('SETACTIVE of the active script', () => {
  it('writes nothing when the filter is already in place', async () => {
    await activeA();
    const before = await stat(h.filterPath);
    expect(await setActiveChanges()).toEqual([]);
    expect((await stat(h.filterPath)).ino).toBe(before.ino);
  });

  it('takes no lock either: reads alone find it in place', async () => {
    await activeA();
    const { ops, changes } = recordingOps();
    const store = await openStore(h, { fileOps: ops });
    changes.length = 0;
    expect(await store.setActive('a')).toBe(true);
    expect(changes).toEqual([]);
  });

  it('still asks the approval (SETACTIVE validates the script as it is), and a refusal is a refusal', async () => {
    await activeA();
    const store = await openStore(h);
    const asked: Buffer[] = [];
    const approve = async (content: Buffer): Promise<boolean> => (asked.push(content), false);
    expect(await store.setActive('a', approve)).toBe(false);
    expect(asked).toEqual([A]);
    expect(await readFile(h.filterPath)).toEqual(renderFilter(A));
  });

  it('preserves a foreign filter put in place since the store opened, then activates', async () => {
    await activeA();
    const { ops, changes } = recordingOps();
    const store = await openStore(h, { fileOps: ops });
    const foreign = Buffer.from('# Exim filter\nsave $home/mail/inbox\n');
    await writeFile(h.filterPath, foreign);
    changes.length = 0;
    expect(await store.setActive('a')).toBe(true);
    expect(changes.some((c) => c.includes('/.lock'))).toBe(true);
    expect(await readFile(h.filterPath)).toEqual(renderFilter(A));
    expect((await store.list()).map((s) => s.name)).toContain('old-forward');
  });

  it('writes the filter again when its bytes differ (a hand edit)', async () => {
    await activeA();
    const edited = Buffer.concat([renderFilter(A), Buffer.from('discard;\n')]);
    expect(
      (await setActiveChanges(() => writeFile(h.filterPath, edited))).some(
        (c) => c.startsWith(`rename `) && c.includes('.forward'),
      ),
    ).toBe(true);
    expect(await readFile(h.filterPath)).toEqual(renderFilter(A));
  });

  it('writes the filter again when its mode is not the configured one', async () => {
    await activeA();
    await chmod(h.filterPath, 0o600);
    expect(await setActiveChanges()).not.toEqual([]);
    expect((await stat(h.filterPath)).mode & 0o7777).toBe(0o644);
  });

  it('replaces a link to an identical filter with the file itself', async () => {
    await activeA();
    await rename(h.filterPath, join(h.home, 'elsewhere'));
    await symlink(join(h.home, 'elsewhere'), h.filterPath);
    expect(await setActiveChanges()).not.toEqual([]);
    expect((await stat(h.filterPath)).isFile()).toBe(true);
    expect(await readFile(h.filterPath)).toEqual(renderFilter(A));
  });
});

describe('SETACTIVE of the active script, as root', needs(ROOT), () => {
  it('writes the filter again when another user owns it', async () => {
    await activeA();
    const copy = join(h.home, 'copy');
    await copyFile(h.filterPath, copy);
    await chmod(copy, 0o644);
    await chown(copy, 41240, 41240);
    await rename(copy, h.filterPath);
    expect(await setActiveChanges()).not.toEqual([]);
    expect((await stat(h.filterPath)).uid).toBe(process.getuid!());
  });
});
