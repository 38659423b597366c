/**
 * Names with code points a decoder could drop (U+FEFF, U+200B, ...) are listed and
 * counted like any other; files the store cannot map to a name still count.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { kindOf, openStore, tempHome, type TempHome } from './helpers/store.js';

const b = (s: string) => Buffer.from(s, 'utf8');
// BOM, zero-width space, joiner, non-joiner, word joiner, soft hyphen, variation selector.
const INVISIBLE = ['\ufeff', '\u200b', '\u200d', '\u200c', '\u2060', '\u00ad', '\ufe0f'];

let h: TempHome;
beforeEach(async () => {
  h = await tempHome();
});
afterEach(async () => {
  await h.cleanup();
});

function capture(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean))
        lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

describe('names with invisible code points', () => {
  it.each(INVISIBLE.map((c) => [c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0'), c]))(
    'U+%s leading, inside and alone: stored, listed under the same name, read back',
    async (_hex, c) => {
      const store = await openStore(h);
      const names = [c + 'hidden', 'in' + c + 'side', c];
      for (const n of names) await store.put(n, b(`# ${n.length}\nkeep;\n`));
      expect((await store.list()).map((s) => s.name).sort()).toEqual([...names].sort());
      for (const n of names) expect((await store.get(n)).toString()).toBe(`# ${n.length}\nkeep;\n`);
      // "hidden" without the invisible prefix is another script, which does not exist.
      expect(await kindOf(store.get('hidden'))).toBe('nonexistent');
    },
  );

  it('a BOM-prefixed script counts against max_scripts and max_total_bytes', async () => {
    const store = await openStore(h, { limits: { maxScripts: 3, maxScriptBytes: 100, maxTotalBytes: 250 } });
    await store.put('\ufeffa', Buffer.alloc(100, 0x23));
    await store.put('\ufeffb', Buffer.alloc(100, 0x23));
    expect(await kindOf(store.put('\ufeffc', Buffer.alloc(100, 0x23)))).toBe('quota');
    await store.put('\ufeffc', Buffer.alloc(50, 0x23));
    expect(await kindOf(store.put('\ufeffd', b('#')))).toBe('quota-maxscripts');
    expect(await store.list()).toHaveLength(3);
  });

  it('an active BOM-prefixed script is listed active (what .forward runs)', async () => {
    const store = await openStore(h);
    await store.put('\ufeffhidden', b('discard;\n'));
    await store.setActive('\ufeffhidden');
    expect(await store.list()).toEqual([{ name: '\ufeffhidden', active: true }]);
    expect((await readFile(h.filterPath)).toString()).toContain('discard;');
    // A long (hashed) name starting with a BOM round-trips through its side file too.
    const long = '\ufeff' + 'ü'.repeat(150);
    await store.put(long, b('keep;\n'));
    await store.setActive(long);
    expect(await store.list()).toEqual(
      [
        { name: '\ufeffhidden', active: false },
        { name: long, active: true },
      ].sort((x, y) => (x.name < y.name ? -1 : 1)),
    );
  });

  it('refuses names with unassigned code points or noncharacters (their NFC is not stable)', async () => {
    const store = await openStore(h);
    for (const n of ['a\uffffb', 'a\ufffe', '\u{10ffff}', 'x\u0378y'])
      expect(await kindOf(store.put(n, b('keep;')))).toBe('bad-name');
    expect(await readdir(h.scriptsDir)).toEqual([]);
  });
});

describe('files the store cannot map to a name', () => {
  it('count against both quotas, are never listed, and are reported in the log', async () => {
    const { log, lines } = capture();
    const store = await openStore(h, { log, limits: { maxScripts: 4, maxScriptBytes: 100, maxTotalBytes: 250 } });
    // Non-canonical encodings, invalid UTF-8, a hashed file without its side file, a stray file.
    await writeFile(join(h.scriptsDir, '%61.sieve'), Buffer.alloc(100, 0x23));
    await writeFile(join(h.scriptsDir, '%FF.sieve'), Buffer.alloc(100, 0x23));
    await store.put('ok', Buffer.alloc(10, 0x23));
    expect(await store.list()).toEqual([{ name: 'ok', active: false }]);
    expect(await kindOf(store.put('more', Buffer.alloc(41, 0x23)))).toBe('quota');
    await store.put('more', b('#'));
    expect(await kindOf(store.put('another', b('#')))).toBe('quota-maxscripts');
    // Replacing a listed script is still allowed within the remaining bytes.
    expect(await kindOf(store.put('ok', Buffer.alloc(50, 0x23)))).toBe('quota');
    await store.put('ok', Buffer.alloc(49, 0x23));
    const warn = lines.find((l) => l.level === 40 && String(l.msg).includes('counted against the quotas'));
    expect(warn).toMatchObject({ count: 2, files: expect.arrayContaining(['%61.sieve', '%FF.sieve']) });

    await writeFile(join(h.scriptsDir, '#' + 'a'.repeat(64) + '.sieve'), b('x'));
    await writeFile(join(h.scriptsDir, 'notes.txt'), b('x'));
    expect((await store.list()).map((s) => s.name)).toEqual(['more', 'ok']);
    expect(lines.filter((l) => l.level === 40).at(-1)).toMatchObject({ count: 4 });
  });
});
