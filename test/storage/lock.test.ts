import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readdir, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeFileOps } from '../../src/storage/file-ops.js';
import { acquireLock, withLock } from '../../src/storage/lock.js';
import { kindOf } from './helpers/store.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsieved-lock-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const opts = { staleMs: 60_000, waitMs: 200, retryMs: 5 };

describe('the user lock', () => {
  it('serialises holders in one process and is removed after use', async () => {
    const lockDir = join(dir, '.lock');
    const order: string[] = [];
    const slow = withLock(nodeFileOps, lockDir, { ...opts, waitMs: 5_000 }, async () => {
      order.push('a-in');
      await new Promise((r) => setTimeout(r, 50));
      order.push('a-out');
    });
    await new Promise((r) => setTimeout(r, 5));
    const second = withLock(nodeFileOps, lockDir, { ...opts, waitMs: 5_000 }, async () => {
      order.push('b');
    });
    await Promise.all([slow, second]);
    expect(order).toEqual(['a-in', 'a-out', 'b']);
    expect(await readdir(dir)).toEqual([]);
  });

  it('reports trylater after bounded waiting, and releases after a throwing holder', async () => {
    const lockDir = join(dir, '.lock');
    const held = await acquireLock(nodeFileOps, lockDir, opts);
    expect(await kindOf(acquireLock(nodeFileOps, lockDir, opts))).toBe('trylater');
    await held.release();
    await expect(withLock(nodeFileOps, lockDir, opts, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await (await acquireLock(nodeFileOps, lockDir, opts)).release();
  });

  it('breaks a stale lock left by a crashed holder', async () => {
    const lockDir = join(dir, '.lock');
    await mkdir(lockDir);
    const old = new Date(Date.now() - 120_000);
    await utimes(lockDir, old, old);
    const lock = await acquireLock(nodeFileOps, lockDir, opts);
    expect((await stat(lockDir)).mtimeMs).toBeGreaterThan(old.getTime() + 60_000);
    await lock.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('keeps a long-held lock fresh so nobody breaks it', async () => {
    const lockDir = join(dir, '.lock');
    const fast = { staleMs: 150, waitMs: 400, retryMs: 5 };
    const lock = await acquireLock(nodeFileOps, lockDir, fast);
    expect(await kindOf(acquireLock(nodeFileOps, lockDir, fast))).toBe('trylater');
    await lock.release();
  });
});
