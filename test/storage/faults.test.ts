/**
 * Faults: disk full (a real tmpfs), read-only file system (a real remount),
 * quota reported at close and a vanished directory (injected through FileOps, as
 * AFS reports quota only at close). Each must give a typed StorageError and leave
 * the previous script and filter, and no temp files.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openBrokerFiles, type BrokerFiles } from '../helpers/broker-files.js';
import { BROKER, tool, ROOT, needs } from '../helpers/tools.js';
import { renderFilter } from '../../src/storage/filter-file.js';
import type { FileStore } from '../../src/storage/file-store.js';
import { faultyOps } from './helpers/faulty-ops.js';
import { nodeFileOps, type FileOps, type NewFileOptions } from '../../src/storage/file-ops.js';
import { FsThreadPool } from '../../src/storage/thread-ops.js';
import { silentLogger } from '../../src/log/logger.js';
import { kindOf, openStore, tempHome, type TempHome } from './helpers/store.js';

const b = (s: string) => Buffer.from(s, 'utf8');

const pool = new FsThreadPool({ threads: 1, log: silentLogger() });
afterAll(() => pool.close());

async function allFiles(h: TempHome): Promise<string[]> {
  return [...(await readdir(h.home)), ...(await readdir(h.scriptsDir)).map((f) => `sieve/${f}`)].sort();
}

/** A store with an active script "main" and an inactive "other". */
async function populated(h: TempHome, over: Parameters<typeof openStore>[1] = {}): Promise<FileStore> {
  const store = await openStore(h, over);
  await store.put('main', b('keep;\n'));
  await store.put('other', b('discard;\n'));
  await store.setActive('main');
  return store;
}

async function expectUnchanged(h: TempHome, store: FileStore, files: string[]): Promise<void> {
  expect(await store.list()).toEqual([
    { name: 'main', active: true },
    { name: 'other', active: false },
  ]);
  expect((await store.get('main')).toString()).toBe('keep;\n');
  expect(await readFile(h.filterPath)).toEqual(renderFilter(b('keep;\n')));
  expect(await allFiles(h)).toEqual(files);
}

describe('injected faults', () => {
  let h: TempHome;
  beforeEach(async () => {
    h = await tempHome();
  });
  afterEach(async () => {
    await h.cleanup();
  });

  it.each([
    ['EDQUOT at close (AFS quota)', { closeFails: { match: /tsieved-tmp/, code: 'EDQUOT' } }, 'quota'],
    [
      'EDQUOT at close of the filter only',
      { closeFails: { match: /\.forward\.tsieved-tmp/, code: 'EDQUOT' } },
      'quota',
    ],
    [
      'ENOSPC at write of the script only',
      { writeFails: { match: /main\.sieve\.tsieved-tmp/, code: 'ENOSPC' } },
      'quota',
    ],
    ['EIO at close', { closeFails: { match: /tsieved-tmp/, code: 'EIO' } }, 'io'],
    ['EACCES at write', { writeFails: { match: /tsieved-tmp/, code: 'EACCES' } }, 'permission'],
  ] as const)('PUTSCRIPT over the active script with %s', async (_what, faults, kind) => {
    await populated(h);
    const files = await allFiles(h);
    const store = await openStore(h, { fileOps: faultyOps(faults) });
    expect(await kindOf(store.put('main', b('discard;\n')))).toBe(kind);
    await expectUnchanged(h, store, files);
  });

  it('SETACTIVE with EDQUOT at close leaves the old filter and active script', async () => {
    await populated(h);
    const files = await allFiles(h);
    const store = await openStore(h, { fileOps: faultyOps({ closeFails: { match: /tsieved-tmp/, code: 'EDQUOT' } }) });
    expect(await kindOf(store.setActive('other'))).toBe('quota');
    await expectUnchanged(h, store, files);
  });

  it('a scripts directory that really vanished is trylater for every mutation', async () => {
    const store = await populated(h);
    await rm(h.scriptsDir, { recursive: true });
    expect(await kindOf(store.put('main', b('discard;\n')))).toBe('trylater');
    expect(await kindOf(store.setActive('main'))).toBe('trylater');
    expect(await kindOf(store.list())).toBe('trylater');
    expect(await readFile(h.filterPath)).toEqual(renderFilter(b('keep;\n')));
  });

  it('a directory that vanishes at rename is trylater and leaves no temp file', async () => {
    await populated(h);
    const files = await allFiles(h);
    const store = await openStore(h, { fileOps: faultyOps({ renameFails: { match: /\.forward$/, code: 'ENOENT' } }) });
    expect(await kindOf(store.setActive('other'))).toBe('trylater');
    await expectUnchanged(h, store, files);
  });
});

/**
 * Each change of a command is made only if the one before succeeded, and the lock's
 * release only if the last did (lock.ts releaseAfter), over FileOps that send them
 * together (file-ops.ts ifPreviousSucceeded: the file threads, the file broker) as
 * over node:fs: a failure of any change must leave everything as it was, no temp
 * file, and the lock released once what undoes the first change has run under it.
 */
describe('a change failing, over unordered FileOps', () => {
  changeFailureTests(() => nodeFileOps);
});

describe('a change failing, over ordered FileOps', () => {
  changeFailureTests(() => pool.fileOps());
});

describe('a change failing, over the file broker', needs(BROKER), () => {
  // As root the broker runs as another user, who is given the home.
  const uid = process.getuid?.() === 0 ? 41233 : undefined;
  let files: BrokerFiles | undefined;
  beforeAll(() => {
    files = openBrokerFiles('faults', uid);
  });
  afterAll(async () => {
    await files?.close();
  });
  changeFailureTests(
    () => files!.ops,
    (h) => {
      if (uid !== undefined) execFileSync('chown', ['-R', `${uid}:${uid}`, h.home]);
    },
  );
});

function changeFailureTests(base: () => FileOps, prepare: (h: TempHome) => void = () => undefined): void {
  let h: TempHome;
  beforeEach(async () => {
    h = await tempHome();
  });

  /**
   * `ops`, noting for each rename into the filter file whether the lock was held when
   * it was made: the filter put back after a failed second rename must be (the
   * release sent with that rename is not made).
   */
  function notingLockAtFilterRenames(ops: FileOps): { ops: FileOps; held: boolean[] } {
    const held: boolean[] = [];
    const lockDir = join(h.scriptsDir, '.lock');
    const lockHeld = (): boolean => existsSync(lockDir) && readdirSync(lockDir).some((e) => e.startsWith('owner.'));
    return {
      held,
      ops: {
        ...ops,
        rename: (from: string, to: string) => {
          if (to === h.filterPath) held.push(lockHeld());
          return ops.rename(from, to);
        },
      },
    };
  }
  afterEach(async () => {
    await h.cleanup();
  });

  it('PUTSCRIPT of a new script whose rename fails: NO, no script, no temp file, the lock released', async () => {
    await populated(h);
    prepare(h);
    const files = await allFiles(h);
    const store = await openStore(h, {
      fileOps: faultyOps({ renameFails: { match: /new\.sieve$/, code: 'EIO' } }, base()),
    });
    expect(await kindOf(store.put('new', b('keep;\n')))).toBe('io');
    await expectUnchanged(h, store, files);
  });

  it('PUTSCRIPT of the active script whose rename fails after the filter: the filter put back, the lock released', async () => {
    await populated(h);
    prepare(h);
    const files = await allFiles(h);
    const noting = notingLockAtFilterRenames(
      faultyOps({ renameFails: { match: /main\.sieve$/, code: 'EIO' } }, base()),
    );
    const store = await openStore(h, { fileOps: noting.ops });
    expect(await kindOf(store.put('main', b('discard;\n')))).toBe('io');
    // The new filter, then the old one put back: both under the lock.
    expect(noting.held).toEqual([true, true]);
    await expectUnchanged(h, store, files);
  });

  it('PUTSCRIPT of the active script whose filter rename fails: the script not renamed after it, the lock released', async () => {
    await populated(h);
    prepare(h);
    const files = await allFiles(h);
    const store = await openStore(h, {
      fileOps: faultyOps({ renameFails: { match: /\/\.forward$/, code: 'EIO' } }, base()),
    });
    expect(await kindOf(store.put('main', b('discard;\n')))).toBe('io');
    await expectUnchanged(h, store, files);
  });

  it('SETACTIVE of another script whose record rename fails after the filter: the filter put back, the lock released', async () => {
    await populated(h);
    prepare(h);
    const files = await allFiles(h);
    const noting = notingLockAtFilterRenames(faultyOps({ renameFails: { match: /\/\.active$/, code: 'EIO' } }, base()));
    const store = await openStore(h, { fileOps: noting.ops });
    expect(await kindOf(store.setActive('other'))).toBe('io');
    expect(noting.held).toEqual([true, true]);
    await expectUnchanged(h, store, files);
  });

  it('DELETESCRIPT whose unlink fails: NO, the script kept, the lock released', async () => {
    await populated(h);
    prepare(h);
    const files = await allFiles(h);
    const store = await openStore(h, {
      fileOps: faultyOps({ unlinkFails: { match: /other\.sieve$/, code: 'EACCES' } }, base()),
    });
    expect(await kindOf(store.delete('other'))).toBe('permission');
    await expectUnchanged(h, store, files);
  });

  /**
   * `ops` where a breaker empties the lock directory (as one that judged it stale
   * would, before its rmdir) when a call on a path matching `at` is made: before
   * the look at the lock that goes out with or after that call.
   */
  function breakingAt(ops: FileOps, at: RegExp): FileOps {
    const breakLock = (path: string): void => {
      const lockDir = join(h.scriptsDir, '.lock');
      if (at.test(path) && existsSync(lockDir)) for (const e of readdirSync(lockDir)) rmSync(join(lockDir, e));
    };
    return Object.assign(faultyOps({}, ops), {
      readFile: (path: string) => (breakLock(path), ops.readFile(path)),
      createExclusive: (path: string, mode: number) => (breakLock(path), ops.createExclusive(path, mode)),
      // A new file in one call where the base has that (the file threads): as the store meets it.
      ...(ops.createFile === undefined
        ? {}
        : {
            createFile: (path: string, data: Uint8Array, options: NewFileOptions) => (
              breakLock(path),
              ops.createFile!(path, data, options)
            ),
          }),
    });
  }

  it('DELETESCRIPT under a lock broken just before its look: trylater, the script kept', async () => {
    await populated(h);
    prepare(h);
    const store = await openStore(h, { fileOps: breakingAt(base(), /\/\.active$/) });
    expect(await kindOf(store.delete('other'))).toBe('trylater');
    expect((await store.get('other')).toString()).toBe('discard;\n');
  });

  it.each([
    ['PUTSCRIPT of the active script', (store: FileStore) => store.put('main', b('discard;\n'))],
    ['PUTSCRIPT of a new script', (store: FileStore) => store.put('new', b('discard;\n'))],
    ['SETACTIVE of another script', (store: FileStore) => store.setActive('other')],
  ] as const)(
    '%s under a lock broken while its new files are made: trylater, nothing changed',
    async (_what, change) => {
      await populated(h);
      prepare(h);
      const files = await allFiles(h);
      const store = await openStore(h, { fileOps: breakingAt(base(), /\.tsieved-tmp\./) });
      expect(await kindOf(change(store))).toBe('trylater');
      // The lock directory the breaker emptied is left for the breaker to remove.
      await rm(join(h.scriptsDir, '.lock'), { recursive: true, force: true });
      await expectUnchanged(h, store, files);
    },
  );
}

describe('real faults on a small tmpfs', needs(ROOT), () => {
  let mountPoint: string;
  let h: TempHome;
  const mounted: string[] = [];

  beforeAll(async () => {
    mountPoint = await mkdtemp(join(tmpdir(), 'tsieved-tmpfs-'));
    execFileSync(tool('mount'), ['-t', 'tmpfs', '-o', 'size=64k,mode=0755', 'tmpfs', mountPoint]);
    mounted.push(mountPoint);
  });
  afterAll(async () => {
    for (const m of mounted) execFileSync(tool('umount'), [m]);
    await rm(mountPoint, { recursive: true, force: true });
  });
  beforeEach(async () => {
    h = await tempHome(mountPoint);
  });
  afterEach(async () => {
    execFileSync(tool('mount'), ['-o', 'remount,rw', mountPoint]);
    await h.cleanup();
  });

  const big = (n: number) => Buffer.alloc(n, 0x23); // '#': a valid Sieve comment

  it('a full disk (ENOSPC) is quota and leaves script and filter', async () => {
    const store = await populated(h, { limits: { maxScripts: 10, maxScriptBytes: 1 << 20, maxTotalBytes: 0 } });
    const files = await allFiles(h);
    expect(await kindOf(store.put('main', big(100 * 1024)))).toBe('quota');
    await expectUnchanged(h, store, files);
    expect(await kindOf(store.put('new', big(100 * 1024)))).toBe('quota');
    await expectUnchanged(h, store, files);
  });

  it('disk full while writing the filter after the script fitted leaves both', async () => {
    const store = await populated(h, { limits: { maxScripts: 10, maxScriptBytes: 1 << 20, maxTotalBytes: 0 } });
    const files = await allFiles(h);
    // 36 KiB fits once in 64 KiB, not twice: the script's temp file is written,
    // the filter's is not, and neither may be renamed into place.
    expect(await kindOf(store.put('main', big(36 * 1024)))).toBe('quota');
    await expectUnchanged(h, store, files);
  });

  it('a read-only file system (EROFS) is permission and changes nothing', async () => {
    const store = await populated(h);
    const files = await allFiles(h);
    execFileSync(tool('mount'), ['-o', 'remount,ro', mountPoint]);
    expect(await kindOf(store.put('main', b('discard;\n')))).toBe('permission');
    expect(await kindOf(store.put('third', b('discard;\n')))).toBe('permission');
    expect(await kindOf(store.setActive('other'))).toBe('permission');
    expect(await kindOf(store.setActive(''))).toBe('permission');
    expect(await kindOf(store.rename('other', 'x'))).toBe('permission');
    expect(await kindOf(store.delete('other'))).toBe('permission');
    await expectUnchanged(h, store, files);
  });
});
