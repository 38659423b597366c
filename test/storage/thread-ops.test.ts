/**
 * The in-process stores' FileOps served by file-I/O threads (src/storage/thread-ops.ts
 * and fs-thread.cjs): every call against a real directory, failures with their errno
 * codes, the order of calls sent together, special files, and a thread that hangs.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log/logger.js';
import { createdBeforeFailure, createFile, finishFile, nodeFileOps, type FileOps } from '../../src/storage/file-ops.js';
import { FsThreadPool } from '../../src/storage/thread-ops.js';
import { StorageError } from '../../src/storage/types.js';
import { needs, ROOT, tool } from '../helpers/tools.js';
import { errnoCodeOf } from '../helpers/errno.js';
import { kindOf, openStore, tempHome, type TempHome } from './helpers/store.js';

const pool = new FsThreadPool({ threads: 2, log: silentLogger() });
afterAll(() => pool.close());

let h: TempHome;
let ops: FileOps;
beforeEach(async () => {
  h = await tempHome();
  ops = pool.fileOps();
});
afterEach(async () => {
  await h.cleanup();
});

describe('FileOps over file-I/O threads', () => {
  it('makes every call against a real directory', async () => {
    const dir = join(h.home, 'd');
    await ops.mkdir(dir, 0o750);
    expect((await stat(dir)).mode & 0o777).toBe(0o750);
    const path = join(dir, 'f');
    const file = await ops.createExclusive(path, 0o600);
    await finishFile(ops, file, Buffer.from('hello, world\n'), { mode: 0o640, sync: true });
    expect(await readFile(path, 'utf8')).toBe('hello, world\n');
    expect((await stat(path)).mode & 0o777).toBe(0o640);
    expect((await ops.readFile(path)).toString()).toBe('hello, world\n');
    expect(await ops.readdir(dir)).toEqual(['f']);
    const st = await ops.stat(path);
    expect([st.size, st.isFile(), st.isDirectory(), st.uid]).toEqual([13, true, false, process.getuid?.() ?? st.uid]);
    await symlink('f', join(dir, 'link'));
    expect((await ops.lstat(join(dir, 'link'))).isSymbolicLink()).toBe(true);
    expect((await ops.stat(join(dir, 'link'))).isFile()).toBe(true);
    await ops.rename(path, join(dir, 'g'));
    await ops.syncDir(dir);
    await ops.unlink(join(dir, 'link'));
    expect((await ops.readdir(dir)).sort()).toEqual(['g']);
    await ops.unlink(join(dir, 'g'));
    await ops.rmdir(dir);
    expect(await errnoCodeOf(ops.stat(dir))).toBe('ENOENT');
  });

  it('reports failures with the errno code and path node:fs gives', async () => {
    const missing = join(h.home, 'missing');
    const failure = await ops.readFile(missing).catch((e: unknown) => e as { code?: string; path?: string });
    expect(failure).toMatchObject({ code: 'ENOENT', path: missing });
    await writeFile(join(h.home, 'x'), 'x');
    expect(await errnoCodeOf(ops.createExclusive(join(h.home, 'x'), 0o600))).toBe('EEXIST');
    expect(await errnoCodeOf(ops.mkdir(join(h.home, 'x'), 0o700))).toBe('EEXIST');
    await mkdir(join(h.home, 'full'));
    await writeFile(join(h.home, 'full', 'y'), 'y');
    expect(await errnoCodeOf(ops.rmdir(join(h.home, 'full')))).toBe('ENOTEMPTY');
    expect(await errnoCodeOf(ops.readdir(join(h.home, 'x')))).toBe('ENOTDIR');
    // The same codes as node:fs for the same calls.
    expect(await errnoCodeOf(nodeFileOps.rmdir(join(h.home, 'full')))).toBe('ENOTEMPTY');
  });

  it('never creates through a symbolic link', async () => {
    await symlink(join(h.home, 'target'), join(h.home, 'link'));
    expect(await errnoCodeOf(ops.createExclusive(join(h.home, 'link'), 0o600))).toBe('EEXIST');
    await expect(stat(join(h.home, 'target'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('runs calls sent together in the order made', async () => {
    expect(ops.ordered).toBe(true);
    const path = join(h.home, 'tmp');
    const file = await ops.createExclusive(path, 0o600);
    // Not waited for one by one: write, close, rename and read travel together.
    const [, , , read] = await Promise.all([
      file.writeAll(Buffer.from('ordered\n')),
      file.close(),
      ops.rename(path, join(h.home, 'final')),
      ops.readFile(join(h.home, 'final')),
    ]);
    expect(read.toString()).toBe('ordered\n');
  });

  it("keeps a store's open file on the thread that opened it while other stores come and go", async () => {
    // startAfterMs 0: a second thread as soon as the first has a call waiting.
    const two = new FsThreadPool({ threads: 2, log: silentLogger(), startAfterMs: 0 });
    try {
      const writer = two.fileOps();
      const other = two.fileOps();
      const file = await writer.createExclusive(join(h.home, 'f'), 0o600);
      // Another store's call waits on that thread now, so a store without an open
      // file would be sent to the second thread, which does not hold the descriptor.
      const busy = other.stat(h.home);
      await finishFile(writer, file, Buffer.from('same thread\n'), { sync: true });
      await busy;
      expect(await readFile(join(h.home, 'f'), 'utf8')).toBe('same thread\n');
    } finally {
      two.close();
    }
  });

  it('writes only the bytes of a view, and only to files it created', async () => {
    const big = Buffer.alloc(1 << 20, 0x61);
    const file = await ops.createExclusive(join(h.home, 'part'), 0o600);
    await file.writeAll(big.subarray(10, 15));
    await file.close();
    expect(await readFile(join(h.home, 'part'), 'utf8')).toBe('aaaaa');
    // A closed file's descriptor is no longer ours: nothing reaches whatever reuses the number.
    expect(await errnoCodeOf(file.writeAll(Buffer.from('late')))).toBe('EBADF');
  });

  it('makes a new file whole in one call (createFile), and never replaces or follows anything', async () => {
    const path = join(h.home, 'new');
    await createFile(ops, path, Buffer.from('keep;\n').subarray(0, 5), { mode: 0o644, sync: true });
    expect([await readFile(path, 'utf8'), (await stat(path)).mode & 0o777]).toEqual(['keep;', 0o644]);
    await createFile(ops, join(h.home, 'plain'), Buffer.alloc(0));
    expect((await stat(join(h.home, 'plain'))).mode & 0o777).toBe(0o600);
    await symlink(path, join(h.home, 'link'));
    for (const target of [path, join(h.home, 'link'), join(h.home, 'absent', 'f')]) {
      let err: unknown;
      await createFile(ops, target, Buffer.from('x')).catch((e: unknown) => (err = e));
      expect([target, (err as { code?: string }).code, createdBeforeFailure(err)]).toEqual([
        target,
        target.endsWith('f') ? 'ENOENT' : 'EEXIST',
        false,
      ]);
    }
    expect(await readFile(path, 'utf8')).toBe('keep;');
  });

  it(
    'says when createFile failed after making the file (a full disk), which is left closed',
    needs(ROOT, 'mount'),
    async () => {
      const mnt = join(h.home, 'small');
      await mkdir(mnt);
      execFileSync(tool('mount'), ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', mnt]);
      try {
        let err: unknown;
        await createFile(ops, join(mnt, 'big'), Buffer.alloc(64 * 1024), { mode: 0o644, sync: true }).catch(
          (e: unknown) => (err = e),
        );
        expect([(err as { code?: string }).code, createdBeforeFailure(err)]).toEqual(['ENOSPC', true]);
        expect((await stat(join(mnt, 'big'))).mode & 0o777).toBe(0o600);
        // The thread holds no descriptor of it: the mount can go.
      } finally {
        execFileSync(tool('umount'), [mnt]);
      }
    },
  );

  it('refuses a FIFO or a directory as a file at once, without blocking the thread', needs('mkfifo'), async () => {
    execFileSync(tool('mkfifo'), [join(h.home, 'pipe')]);
    const codes = await Promise.all(Array.from({ length: 10 }, () => errnoCodeOf(ops.readFile(join(h.home, 'pipe')))));
    expect(new Set(codes)).toEqual(new Set(['ENOTREGULAR']));
    expect(await errnoCodeOf(ops.readFile(h.home))).toBe('ENOTREGULAR');
    await writeFile(join(h.home, 'ok'), 'ok');
    expect((await ops.readFile(join(h.home, 'ok'))).toString()).toBe('ok');
  });

  it('serves a whole FileStore as node:fs does', async () => {
    const results: unknown[] = [];
    for (const fileOps of [nodeFileOps, ops]) {
      const home = await tempHome();
      try {
        const store = await openStore(home, { fileOps });
        await store.put('a', Buffer.from('keep;\n'));
        await store.put('b', Buffer.from('discard;\n'));
        await store.setActive('b');
        await store.rename('a', 'c');
        await store.delete('c');
        const kind = await kindOf(store.delete('b'));
        results.push({
          list: await store.list(),
          active: (await store.get('b')).toString(),
          filter: await readFile(home.filterPath, 'utf8'),
          kind,
        });
      } finally {
        await home.cleanup();
      }
    }
    expect(results[1]).toEqual(results[0]);
    expect(results[0]).toMatchObject({ list: [{ name: 'b', active: true }], kind: 'active' });
  });
});

describe('how many file-I/O threads run', () => {
  it('one, while it keeps up with the calls of several stores', async () => {
    const lazy = new FsThreadPool({ threads: 2, log: silentLogger(), startAfterMs: 10_000 });
    try {
      const stores = Array.from({ length: 5 }, () => lazy.fileOps());
      await Promise.all(stores.flatMap((ops) => [ops.stat(h.home), ops.readdir(h.home)]));
      expect(lazy.running).toBe(1);
    } finally {
      lazy.close();
    }
  });
});

describe('a file-I/O thread that hangs', () => {
  it('fails its calls with TRYLATER after the timeout, holds up no other store, and is replaced', async () => {
    const hanging = new FsThreadPool({
      threads: 2,
      log: silentLogger(),
      // Long enough for a thread to start on a loaded machine, which the timer counts too.
      callTimeoutMs: 2_000,
      threadFile: new URL('../fixtures/hanging-fs-thread.cjs', import.meta.url),
    });
    try {
      const stuck = hanging.fileOps();
      const other = hanging.fileOps();
      const hung = stuck.stat(join(h.home, 'hang'));
      const hungLater = stuck.stat(h.home);
      // Past startAfterMs (20 ms), a thread with a call still waiting is gone around.
      await new Promise((r) => setTimeout(r, 100));
      // Another store is served by another thread while the first is stuck.
      expect((await other.stat(h.home)).isDirectory()).toBe(true);
      expect(hanging.running).toBe(2);
      for (const p of [hung, hungLater]) {
        const err = await p.catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StorageError);
        expect((err as StorageError).kind).toBe('trylater');
      }
      // The stuck thread is gone; the store goes on with another.
      expect(hanging.running).toBe(1);
      expect((await stuck.stat(h.home)).isDirectory()).toBe(true);
    } finally {
      hanging.close();
    }
  });
});
