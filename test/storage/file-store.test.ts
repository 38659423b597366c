import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readdir, readFile, stat, writeFile, mkdir, symlink, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { FileStore } from '../../src/storage/file-store.js';
import { isTsievedFilter, renderFilter, TSIEVED_MARKER_LINE } from '../../src/storage/filter-file.js';
import { countingOps } from '../helpers/counting-ops.js';
import { kindOf, openStore, storeOptions, tempHome, type TempHome } from './helpers/store.js';

const b = (s: string) => Buffer.from(s, 'utf8');

let h: TempHome;
beforeEach(async () => {
  h = await tempHome();
});
afterEach(async () => {
  await h.cleanup();
});

describe('FileStore basics', () => {
  it('creates the scripts directory with mode 0700 and starts empty', async () => {
    const store = await openStore(h);
    expect(await store.list()).toEqual([]);
    expect((await stat(h.scriptsDir)).mode & 0o777).toBe(0o700);
  });

  it('refuses a scripts directory that is not one (io), and leaves the file alone', async () => {
    await writeFile(h.scriptsDir, 'not a directory');
    expect(await kindOf(openStore(h))).toBe('io');
    expect(await readFile(h.scriptsDir, 'utf8')).toBe('not a directory');
  });

  it('stores scripts byte-exact, CRLF and odd bytes included', async () => {
    const store = await openStore(h);
    const content = Buffer.concat([b('\ufeffrequire "fileinto";\r\nkeep;\r\n'), Buffer.from([0xff, 0x00, 0x0d])]);
    await store.put('mine', content);
    expect(await store.get('mine')).toEqual(content);
    expect(await store.list()).toEqual([{ name: 'mine', active: false }]);
  });

  it('treats names differing only in normalisation as one script', async () => {
    const store = await openStore(h);
    await store.put('cafe\u0301', b('keep;'));
    await store.put('caf\u00e9', b('discard;'));
    expect(await store.list()).toEqual([{ name: 'caf\u00e9', active: false }]);
    expect((await store.get('cafe\u0301')).toString()).toBe('discard;');
  });

  it('keeps awkward names inside the scripts directory and lists them by their real name', async () => {
    const store = await openStore(h);
    const names = ['../x', 'a/b', '.forward', '.active', '.lock', '..', '...', 'é'.repeat(128), 'x'.repeat(300)];
    for (const n of names) await store.put(n, b(`# ${n.length}\nkeep;\n`));
    expect((await store.list()).map((s) => s.name).sort()).toEqual([...names].sort());
    for (const n of names) expect((await store.get(n)).toString()).toBe(`# ${n.length}\nkeep;\n`);
    // Nothing escaped: the home holds only the scripts directory.
    expect(await readdir(h.home)).toEqual(['sieve']);
    for (const f of await readdir(h.scriptsDir)) expect(Buffer.byteLength(f)).toBeLessThanOrEqual(255);
  });

  it('refuses bad names with bad-name and "" for anything but setActive', async () => {
    const store = await openStore(h);
    expect(await kindOf(store.put('a\nb', b('keep;')))).toBe('bad-name');
    expect(await kindOf(store.put('', b('keep;')))).toBe('bad-name');
    expect(await kindOf(store.get('x'.repeat(2000)))).toBe('bad-name');
  });

  it('reports nonexistent for get, delete, rename and setActive of missing scripts', async () => {
    const store = await openStore(h);
    expect(await kindOf(store.get('nope'))).toBe('nonexistent');
    expect(await kindOf(store.delete('nope'))).toBe('nonexistent');
    expect(await kindOf(store.rename('nope', 'other'))).toBe('nonexistent');
    expect(await kindOf(store.setActive('nope'))).toBe('nonexistent');
  });

  it('deletes and renames; renaming onto an existing name is already-exists', async () => {
    const store = await openStore(h);
    await store.put('a', b('keep;'));
    await store.put('b', b('discard;'));
    expect(await kindOf(store.rename('a', 'b'))).toBe('already-exists');
    await store.rename('a', 'c');
    expect((await store.list()).map((s) => s.name)).toEqual(['b', 'c']);
    expect((await store.get('c')).toString()).toBe('keep;');
    await store.delete('b');
    expect((await store.list()).map((s) => s.name)).toEqual(['c']);
    // Long (hashed) names rename both ways too.
    const long = 'ü'.repeat(150);
    await store.rename('c', long);
    expect(await store.list()).toEqual([{ name: long, active: false }]);
    await store.rename(long, 'd');
    expect(await store.list()).toEqual([{ name: 'd', active: false }]);
    expect((await readdir(h.scriptsDir)).filter((f) => !f.startsWith('.'))).toEqual(['d.sieve']);
  });
});

describe('activation and the filter file', () => {
  it('SETACTIVE writes the rendered filter with mode 0644 and marks the script', async () => {
    const store = await openStore(h);
    await store.put('main', b('require "fileinto";\r\nfileinto "spam";\r\n'));
    await store.setActive('main');
    const filter = await readFile(h.filterPath);
    expect(filter).toEqual(renderFilter(b('require "fileinto";\r\nfileinto "spam";\r\n')));
    expect(filter.toString()).toBe(`# Sieve filter\n${TSIEVED_MARKER_LINE}\nrequire "fileinto";\nfileinto "spam";\n`);
    expect((await stat(h.filterPath)).mode & 0o777).toBe(0o644);
    expect(await store.list()).toEqual([{ name: 'main', active: true }]);
  });

  it('honours filter_mode', async () => {
    const store = await openStore(h, { filterMode: '0600' });
    await store.put('main', b('keep;'));
    await store.setActive('main');
    expect((await stat(h.filterPath)).mode & 0o777).toBe(0o600);
  });

  it('refuses to delete the active script, and PUTSCRIPT over it rewrites the filter', async () => {
    const store = await openStore(h);
    await store.put('main', b('keep;'));
    await store.setActive('main');
    expect(await kindOf(store.delete('main'))).toBe('active');
    await store.put('main', b('discard;'));
    expect((await readFile(h.filterPath)).toString()).toContain('\ndiscard;\n');
    await store.put('other', b('stop;'));
    expect((await readFile(h.filterPath)).toString()).toContain('\ndiscard;\n');
  });

  it('RENAMESCRIPT of the active script keeps it active and the filter unchanged', async () => {
    const store = await openStore(h);
    await store.put('main', b('keep;'));
    await store.setActive('main');
    const before = await readFile(h.filterPath);
    await store.rename('main', 'renamed');
    expect(await store.list()).toEqual([{ name: 'renamed', active: true }]);
    expect(await readFile(h.filterPath)).toEqual(before);
    await store.put('renamed', b('discard;'));
    expect((await readFile(h.filterPath)).toString()).toContain('discard;');
  });

  it('switches the active script and SETACTIVE "" removes the filter', async () => {
    const store = await openStore(h);
    await store.put('a', b('keep;'));
    await store.put('b', b('discard;'));
    await store.setActive('a');
    await store.setActive('b');
    expect(await store.list()).toEqual([
      { name: 'a', active: false },
      { name: 'b', active: true },
    ]);
    expect((await readFile(h.filterPath)).toString()).toContain('discard;');
    await store.setActive('');
    expect(await store.list()).toEqual([
      { name: 'a', active: false },
      { name: 'b', active: false },
    ]);
    await expect(stat(h.filterPath)).rejects.toMatchObject({ code: 'ENOENT' });
    await store.setActive(''); // idempotent
    await store.delete('b');
  });

  it('a new store on the same directory sees the same state and does not import its own filter', async () => {
    const store = await openStore(h);
    await store.put('main', b('# Sieve filter\nkeep;\n'));
    await store.setActive('main');
    const again = await openStore(h);
    expect(await again.list()).toEqual([{ name: 'main', active: true }]);
    expect((await readdir(h.home)).sort()).toEqual(['.forward', 'sieve']);
    const filter = (await readFile(h.filterPath)).toString();
    expect(filter.match(/sieve filter/gi)).toHaveLength(1);
  });

  it('leaves no temp files behind', async () => {
    const store = await openStore(h);
    await store.put('a', b('keep;'));
    await store.setActive('a');
    await store.put('a', b('discard;'));
    await store.rename('a', 'b');
    const all = [...(await readdir(h.home)), ...(await readdir(h.scriptsDir))];
    expect(all.filter((f) => f.includes('tsieved-tmp'))).toEqual([]);
    expect(all).not.toContain('.lock');
  });
});

describe('limits', () => {
  it('max_scripts counts new scripts only', async () => {
    const store = await openStore(h, { limits: { maxScripts: 2, maxScriptBytes: 100, maxTotalBytes: 0 } });
    await store.put('a', b('keep;'));
    await store.put('b', b('keep;'));
    expect(await kindOf(store.put('c', b('keep;')))).toBe('quota-maxscripts');
    expect(await kindOf(store.checkSpace('c', 1))).toBe('quota-maxscripts');
    await store.checkSpace('a', 50);
    await store.put('a', b('discard;'));
    await store.rename('a', 'c');
  });

  it('max_scripts counts regular files: at the limit every entry is looked at, below it the listing decides', async () => {
    const store = await openStore(h, { limits: { maxScripts: 3, maxScriptBytes: 100, maxTotalBytes: 0 } });
    await store.put('a', b('keep;'));
    // A directory named like a script is no script; a file that is no script counts.
    await mkdir(join(h.scriptsDir, 'dir.sieve'));
    await store.put('b', b('keep;')); // a, dir.sieve: fewer entries than allowed
    await store.put('c', b('keep;')); // a, b, dir.sieve: three entries, but two scripts
    expect(await kindOf(store.put('d', b('keep;')))).toBe('quota-maxscripts');
    await unlink(join(h.scriptsDir, 'c.sieve'));
    await writeFile(join(h.scriptsDir, 'notes.txt'), 'x');
    expect(await kindOf(store.put('d', b('keep;')))).toBe('quota-maxscripts');
    await store.put('b', b('discard;')); // replacing one is no new one
    expect((await store.get('b')).toString()).toBe('discard;');
  });

  it('max_script_bytes', async () => {
    const store = await openStore(h, { limits: { maxScripts: 5, maxScriptBytes: 10, maxTotalBytes: 0 } });
    await store.put('a', Buffer.alloc(10, 0x20));
    expect(await kindOf(store.put('b', Buffer.alloc(11, 0x20)))).toBe('quota-maxsize');
    expect(await kindOf(store.checkSpace('b', 11))).toBe('quota-maxsize');
  });

  it('max_total_bytes counts the replaced script once', async () => {
    const store = await openStore(h, { limits: { maxScripts: 5, maxScriptBytes: 100, maxTotalBytes: 30 } });
    await store.put('a', Buffer.alloc(20, 0x20));
    expect(await kindOf(store.put('b', Buffer.alloc(11, 0x20)))).toBe('quota');
    await store.put('b', Buffer.alloc(10, 0x20));
    await store.put('a', Buffer.alloc(5, 0x20));
    await store.checkSpace('b', 25);
    expect(await kindOf(store.checkSpace('b', 26))).toBe('quota');
  });
});

describe('a filter file tsieved did not write', () => {
  async function backups(): Promise<string[]> {
    return (await readdir(h.home)).filter((f) => f.startsWith('.forward.tsieved-backup-')).sort();
  }

  it('imports a Sieve .forward as the active script "old-forward" and backs it up', async () => {
    const original = b('# Sieve filter\r\nif header :contains "subject" "x" { discard; }\r\n');
    await writeFile(h.filterPath, original);
    const store = await openStore(h);
    expect(await store.list()).toEqual([{ name: 'old-forward', active: true }]);
    expect(await store.get('old-forward')).toEqual(original);
    const [backup] = await backups();
    expect(await readFile(join(h.home, backup))).toEqual(original);
    // Exim keeps running the same file until the user changes something.
    expect(await readFile(h.filterPath)).toEqual(original);
    // Opening again does not import it a second time.
    const again = await openStore(h);
    expect(await again.list()).toEqual([{ name: 'old-forward', active: true }]);
    expect(await backups()).toHaveLength(1);
    await again.put('old-forward', b('keep;'));
    expect(isTsievedFilter(await readFile(h.filterPath))).toBe(true);
  });

  it('keeps an address-list .forward as a backup and the active script (Exim runs it), until SETACTIVE replaces it', async () => {
    const original = b('alice@elsewhere.example\n');
    await writeFile(h.filterPath, original);
    const store = await openStore(h);
    expect(await store.list()).toEqual([{ name: 'old-forward', active: true }]);
    expect(await store.isVerbatim('old-forward')).toBe(true);
    expect(await readFile(h.filterPath)).toEqual(original); // mail still flows as before
    await store.put('new', b('keep;'));
    await store.setActive('new');
    expect(isTsievedFilter(await readFile(h.filterPath))).toBe(true);
    const [backup] = await backups();
    expect(await readFile(join(h.home, backup))).toEqual(original);
    expect(await store.get('old-forward')).toEqual(original);
    // Activated again, it is written back byte for byte, not as Sieve.
    await store.setActive('old-forward');
    expect(await readFile(h.filterPath)).toEqual(original);
    expect(await backups()).toHaveLength(1);
  });

  it('a preserved forward stays verbatim when renamed, and becomes Sieve once PUTSCRIPT replaces it', async () => {
    const original = b('# Exim filter\ndeliver bob@elsewhere.example\n');
    await writeFile(h.filterPath, original);
    const store = await openStore(h);
    await store.rename('old-forward', 'exim');
    expect(await store.list()).toEqual([{ name: 'exim', active: true }]);
    expect(await store.isVerbatim('exim')).toBe(true);
    await store.put('other', b('keep;'));
    await store.setActive('other');
    await store.setActive('exim');
    expect(await readFile(h.filterPath)).toEqual(original);
    await store.put('exim', b('discard;'));
    expect(await store.isVerbatim('exim')).toBe(false);
    expect(isTsievedFilter(await readFile(h.filterPath))).toBe(true);
    // The same bytes under a new name are no preserved forward.
    await store.put('again', original);
    expect(await store.isVerbatim('again')).toBe(false);
    // Reopening finds everything consistent: nothing re-imported.
    const again = await openStore(h);
    expect((await again.list()).map((s) => `${s.name}${s.active ? '*' : ''}`)).toEqual(['again', 'exim*', 'other']);
  });

  it('preserves a file that appears between open and SETACTIVE, and never overwrites a backup', async () => {
    const store = await openStore(h);
    await store.put('new', b('keep;'));
    await writeFile(h.filterPath, b('# Exim filter\nsave $home/mail/x\n'));
    await store.setActive('new');
    await writeFile(h.filterPath, b('bob@elsewhere.example\n'));
    await store.setActive('');
    const files = await backups();
    expect(files).toHaveLength(2);
    const contents = await Promise.all(files.map((f) => readFile(join(h.home, f), 'utf8')));
    expect(contents.sort()).toEqual(['# Exim filter\nsave $home/mail/x\n', 'bob@elsewhere.example\n']);
    expect((await store.list()).map((s) => s.name)).toEqual(['new', 'old-forward', 'old-forward-2']);
    await expect(stat(h.filterPath)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('imports the target of a pysieved-style symlink and replaces only the link', async () => {
    await mkdir(join(h.home, '.pysieved'));
    const target = join(h.home, '.pysieved', 'exim');
    await writeFile(target, b('# Sieve filter\nkeep;\n'));
    await symlink('.pysieved/exim', h.filterPath);
    const store = await openStore(h);
    expect(await store.list()).toEqual([{ name: 'old-forward', active: true }]);
    await store.put('x', b('discard;'));
    await store.setActive('x');
    expect((await readFile(target)).toString()).toBe('# Sieve filter\nkeep;\n');
    expect((await readFile(h.filterPath)).toString()).toContain('discard;');
  });

  it('refuses to replace a filter path it cannot read (a directory)', async () => {
    await mkdir(h.filterPath);
    const store = await openStore(h);
    await store.put('x', b('keep;'));
    expect(await kindOf(store.setActive('x'))).toBe('io');
    expect((await stat(h.filterPath)).isDirectory()).toBe(true);
  });
});

describe('directories', () => {
  it('creates missing directories only below createBelow', async () => {
    const deep = join(h.home, 'a', 'b', 'sieve');
    const store = await openStore(h, { scriptsDir: deep });
    expect(await store.list()).toEqual([]);
    expect((await stat(join(h.home, 'a'))).mode & 0o777).toBe(0o700);
    const elsewhere = join(h.home, 'c', 'd', 'sieve');
    expect(await kindOf(FileStore.open(storeOptions(h, { scriptsDir: elsewhere, createBelow: undefined })))).toBe(
      'trylater',
    );
  });

  it("a user's first login makes the missing scripts directory at once, without looking at its parent first", async () => {
    const counted = countingOps(h.home);
    await openStore(h, { fileOps: counted.ops });
    expect((await stat(h.scriptsDir)).isDirectory()).toBe(true);
    // Over a file broker each group is a round trip: the first reads, then the mkdir.
    expect(counted.groups.filter((g) => g.some((c) => c.startsWith('mkdir ')))).toEqual([['mkdir sieve']]);
    expect(counted.calls.filter((c) => c.path === '.' && c.op !== 'readdir')).toEqual([]);
    expect(counted.groups).toHaveLength(2);
  });

  it('a missing filter directory is a set-up problem (not "try later") and changes nothing', async () => {
    const store = await openStore(h, { filterPath: join(h.home, '.public', '.forward') });
    await store.put('x', b('keep;'));
    expect(await kindOf(store.setActive('x'))).toBe('not-set-up');
    expect(await store.list()).toEqual([{ name: 'x', active: false }]);
  });
});

describe("Exim's size limit", () => {
  it('refuses to activate a script whose filter file would exceed 1 MiB, leaving everything', async () => {
    const store = await openStore(h, { limits: { maxScripts: 5, maxScriptBytes: 2 << 20, maxTotalBytes: 0 } });
    await store.put('small', b('keep;'));
    await store.setActive('small');
    await store.put('huge', Buffer.alloc(1024 * 1024, 0x23));
    expect(await kindOf(store.setActive('huge'))).toBe('quota-maxsize');
    expect(await store.list()).toEqual([
      { name: 'huge', active: false },
      { name: 'small', active: true },
    ]);
    expect(await kindOf(store.put('small', Buffer.alloc(1024 * 1024, 0x23)))).toBe('quota-maxsize');
    expect((await store.get('small')).toString()).toBe('keep;');
  });
});

describe('state changed behind the store', () => {
  it('a filter file deleted in a shell means no script is active on the next open', async () => {
    const store = await openStore(h);
    await store.put('main', b('keep;'));
    await store.setActive('main');
    await unlink(h.filterPath);
    const again = await openStore(h);
    expect(await again.list()).toEqual([{ name: 'main', active: false }]);
    await again.delete('main');
  });

  it('a filter file replaced by a link to nowhere is still something there: the record stays', async () => {
    const store = await openStore(h);
    await store.put('main', b('keep;'));
    await store.setActive('main');
    await unlink(h.filterPath);
    await symlink(join(h.home, 'nowhere'), h.filterPath);
    const again = await openStore(h);
    expect(await again.list()).toEqual([{ name: 'main', active: true }]);
  });
});

describe('a foreign filter appearing while a script is active', () => {
  it('PUTSCRIPT of the formerly active script keeps the foreign file and the listing consistent', async () => {
    const store = await openStore(h);
    await store.put('main', b('keep;'));
    await store.setActive('main');
    await writeFile(h.filterPath, b('carol@elsewhere.example\n'));
    await store.put('main', b('discard;'));
    // Exim runs the address list, so it is the active script and the filter is the user's file.
    expect(await readFile(h.filterPath, 'utf8')).toBe('carol@elsewhere.example\n');
    expect(await store.list()).toEqual([
      { name: 'main', active: false },
      { name: 'old-forward', active: true },
    ]);
  });
});

describe('leftovers of a crashed server', () => {
  it('removes its own temp files older than an hour, and nothing else', async () => {
    await mkdir(h.scriptsDir, { mode: 0o700 });
    const old = new Date(Date.now() - 2 * 3600_000);
    const stale = [
      join(h.scriptsDir, '.a.sieve.tsieved-tmp.host.1.abc'),
      join(h.home, '.forward.tsieved-tmp.host.1.abc'),
    ];
    const kept = [join(h.scriptsDir, '.b.sieve.tsieved-tmp.host.2.def'), join(h.home, '.other-old-file')];
    for (const p of [...stale, ...kept]) await writeFile(p, 'x');
    for (const p of [...stale, kept[1]]) await utimes(p, old, old);
    await openStore(h);
    for (const p of stale) await expect(stat(p)).rejects.toMatchObject({ code: 'ENOENT' });
    for (const p of kept) expect((await stat(p)).isFile()).toBe(true);
  });
});

describe('the operations migration needs, decided under the lock', () => {
  it('putIfAbsent stores a new name and leaves an existing one alone', async () => {
    const store = await openStore(h);
    expect(await store.putIfAbsent('a', b('keep;'))).toBe(true);
    expect(await store.putIfAbsent('a', b('discard;'))).toBe(false);
    expect((await store.get('a')).toString()).toBe('keep;');
    expect(await kindOf(store.putIfAbsent('b', Buffer.alloc(5000, 0x23)))).toBe('quota-maxsize');
  });

  it("setActiveIfNone activates only when nothing is, and replaces only the store's identical preserved copy", async () => {
    const store = await openStore(h);
    await store.put('a', b('keep;'));
    await store.put('b', b('discard;'));
    expect(await store.setActiveIfNone('a')).toEqual({ active: 'a', activated: true });
    expect(await store.setActiveIfNone('b')).toEqual({ active: 'a', activated: false });
    expect(await store.setActiveIfNone('a')).toEqual({ active: 'a', activated: false });
    expect(await kindOf(store.setActiveIfNone('nope'))).toBe('nonexistent');

    const other = await tempHome();
    try {
      const sieve = b('# Sieve filter\nkeep;\n');
      await writeFile(other.filterPath, sieve);
      const fresh = await openStore(other);
      expect(await fresh.list()).toEqual([{ name: 'old-forward', active: true }]);
      await fresh.put('main', sieve);
      expect(await fresh.setActiveIfNone('main')).toEqual({ active: 'main', activated: true, dropped: 'old-forward' });
      expect(await fresh.list()).toEqual([{ name: 'main', active: true }]);
      // A preserved copy with other bytes is the user's filter: it stays active.
      await writeFile(other.filterPath, b('someone@elsewhere.example\n'));
      const reopened = await openStore(other);
      expect(await reopened.setActiveIfNone('main')).toEqual({ active: 'old-forward', activated: false });
      expect(await readFile(other.filterPath, 'utf8')).toBe('someone@elsewhere.example\n');
    } finally {
      await other.cleanup();
    }
  });

  it('preserveForward keeps bytes read elsewhere as a script, verbatim unless Exim reads them as Sieve', async () => {
    const store = await openStore(h);
    const forward = b('# Exim filter\ndeliver x@elsewhere.example\n');
    expect(await store.preserveForward(forward)).toBe('old-forward');
    expect(await store.preserveForward(forward)).toBe('old-forward');
    expect(await store.isVerbatim('old-forward')).toBe(true);
    expect(await store.list()).toEqual([{ name: 'old-forward', active: false }]);
    expect(await store.preserveForward(b('# Sieve filter\nkeep;\n'))).toBe('old-forward-2');
    expect(await store.isVerbatim('old-forward-2')).toBe(false);
    await store.setActive('old-forward');
    expect(await readFile(h.filterPath)).toEqual(forward);
  });

  it('metadata is kept beside the scripts and never listed as one', async () => {
    const store = await openStore(h);
    expect(await store.readMeta('migrated')).toBeUndefined();
    await store.writeMeta('migrated', b('done\n'));
    expect((await store.readMeta('migrated'))?.toString()).toBe('done\n');
    expect(await readFile(join(h.scriptsDir, '.migrated'), 'utf8')).toBe('done\n');
    expect(await store.list()).toEqual([]);
  });
});
