/**
 * What a user can put in their own directories instead of a file: a FIFO where a
 * script or the filter belongs must be refused at once, never block the server's
 * I/O threads (one blocked open(2) per request would soon stall every session).
 */
import { execFileSync } from 'node:child_process';
import { lstatSync, symlinkSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { needs, tool } from '../helpers/tools.js';
import { kindOf, openStore, tempHome, type TempHome } from './helpers/store.js';

let h: TempHome;
beforeEach(async () => {
  h = await tempHome();
});
afterEach(async () => {
  await h.cleanup();
});

describe("special files in the user's directories", () => {
  it(
    'GETSCRIPT of a FIFO named like a script fails at once, and other scripts still work',
    needs('mkfifo'),
    async () => {
      const store = await openStore(h);
      await store.put('good', Buffer.from('keep;\n'));
      execFileSync(tool('mkfifo'), [join(h.scriptsDir, 'pipe.sieve')]);
      // More requests than libuv has threads: each would hang forever if it blocked.
      const kinds = await Promise.all(Array.from({ length: 40 }, () => kindOf(store.get('pipe'))));
      expect(new Set(kinds)).toEqual(new Set(['io']));
      expect((await store.get('good')).toString()).toBe('keep;\n');
      // Not a script: not listed.
      expect((await store.list()).map((s) => s.name)).toEqual(['good']);
    },
  );

  it('a FIFO at the filter path neither hangs opening the store nor gets replaced', needs('mkfifo'), async () => {
    execFileSync(tool('mkfifo'), [h.filterPath]);
    const store = await openStore(h);
    await store.put('main', Buffer.from('keep;\n'));
    // What is there cannot be read, so it cannot be preserved: it is not overwritten.
    expect(await kindOf(store.setActive('main'))).toBe('io');
    expect(lstatSync(h.filterPath).isFIFO()).toBe(true);
  });

  it('a regular file is still read through a symlink the user made to their own file', async () => {
    const store = await openStore(h);
    await writeFile(join(h.home, 'mine.txt'), 'discard;\n');
    symlinkSync(join(h.home, 'mine.txt'), join(h.scriptsDir, 'linked.sieve'));
    expect((await store.get('linked')).toString()).toBe('discard;\n');
  });
});
