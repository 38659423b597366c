/**
 * A holder killed with kill -9 (a real process, SIGKILLed while it holds the lock
 * and has a temp file half written) costs its user nothing: the lock is taken over
 * at once, the repair at open runs, its temp file goes at the next open. A live
 * holder, or one on another host, is still waited for.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireLock, DEFAULT_LOCK_OPTIONS } from '../../src/storage/lock.js';
import { nodeFileOps } from '../../src/storage/file-ops.js';
import { TEMP_MARKER } from '../../src/storage/atomic-write.js';
import { currentOwner, formatOwner, parseOwner } from '../../src/storage/process-owner.js';
import { renderFilter } from '../../src/storage/filter-file.js';
import { encodeScriptFileName } from '../../src/storage/script-names.js';
import { compileStore, type CompiledStore } from './helpers/compiled.js';
import { faultyOps } from './helpers/faulty-ops.js';
import { kindOf, openStore, tempHome, type TempHome } from './helpers/store.js';

const b = (s: string) => Buffer.from(s, 'utf8');

const HOLDER = `
import { acquireLock } from './storage/lock.js';
import { nodeFileOps } from './storage/file-ops.js';
import { prepareWrite } from './storage/atomic-write.js';
const [lockDir, target] = process.argv.slice(2);
await acquireLock(nodeFileOps, lockDir, { staleMs: 30000, waitMs: 5000, retryMs: 20 });
await prepareWrite(nodeFileOps, target, Buffer.from('half written'), { mode: 0o600 });
process.stdout.write('ready\\n');
setInterval(() => {}, 1000);
`;

let compiled: CompiledStore;
let h: TempHome;
const children: ChildProcess[] = [];

beforeAll(async () => {
  compiled = await compileStore();
  await writeFile(join(compiled.dir, 'holder.mjs'), HOLDER);
});
afterAll(async () => compiled?.cleanup());
beforeEach(async () => {
  h = await tempHome();
  await mkdir(h.scriptsDir, { mode: 0o700 });
});
afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  await h.cleanup();
});

/** A process holding the store's lock with a temp file of `target` written. */
async function holder(target = join(h.scriptsDir, 'x.sieve')): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(compiled.dir, 'holder.mjs'), join(h.scriptsDir, '.lock'), target], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`holder exited with ${code}`)));
  });
  return child;
}

async function killed(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

const temps = async () => (await readdir(h.scriptsDir)).filter((f) => f.includes(TEMP_MARKER));

describe('lock owner records', () => {
  it('name host, boot id, pid namespace, pid and start time, and read back', () => {
    const me = currentOwner();
    expect(me.pid).toBe(process.pid);
    expect(me.boot).toMatch(/^[0-9a-f-]{36}$/);
    expect(me.start).toMatch(/^\d+$/);
    expect(parseOwner(formatOwner(me))).toEqual(me);
    expect(parseOwner(formatOwner({ ...me, host: 'odd host name' }))).toEqual({ ...me, host: 'odd host name' });
  });
});

describe('a holder killed with kill -9', () => {
  it('leaves a lock that is taken over at once, not after the stale age', async () => {
    await killed(await holder());
    const started = performance.now();
    const lock = await acquireLock(nodeFileOps, join(h.scriptsDir, '.lock'), DEFAULT_LOCK_OPTIONS);
    expect(performance.now() - started).toBeLessThan(1000); // stale age 30 s, wait 5 s
    await lock.release();
  });

  it('does not hold up the repair at open, and its temp file goes at that open', async () => {
    // Interrupted SETACTIVE: "a" is recorded active, the filter is still b's.
    const store = await openStore(h);
    await store.put('a', b('keep;\n'));
    await store.put('b', b('discard;\n'));
    await store.setActive('b');
    await writeFile(join(h.scriptsDir, '.active'), 'a');
    const child = await holder();
    expect(await temps()).toHaveLength(1);
    await killed(child);
    const started = performance.now();
    const again = await openStore(h);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await readFile(h.filterPath)).toEqual(renderFilter(b('keep;\n')));
    expect(await again.list()).toEqual([
      { name: 'a', active: true },
      { name: 'b', active: false },
    ]);
    expect(await temps()).toEqual([]);
  });
});

describe('a live holder', () => {
  it('is waited for (TRYLATER), and its temp file is left alone', async () => {
    await holder();
    expect(
      await kindOf(acquireLock(nodeFileOps, join(h.scriptsDir, '.lock'), { ...DEFAULT_LOCK_OPTIONS, waitMs: 300 })),
    ).toBe('trylater');
    await openStore(h, { lock: { waitMs: 300 } });
    expect(await temps()).toHaveLength(1);
  });

  it("blocking the repair at open: the repair runs before this session's first change", async () => {
    const store = await openStore(h);
    await store.put('a', b('keep;\n'));
    await store.put('b', b('discard;\n'));
    await store.setActive('b');
    await writeFile(join(h.scriptsDir, '.active'), 'a');
    const child = await holder();
    const session = await openStore(h, { lock: { waitMs: 300 } });
    expect(await readFile(h.filterPath)).toEqual(renderFilter(b('discard;\n'))); // not repaired yet
    await killed(child);
    await session.put('c', b('keep;\n'));
    expect(await readFile(h.filterPath)).toEqual(renderFilter(b('keep;\n')));
  });
});

describe('an owner on another host', () => {
  it('keeps the stale age even when its pid is not running here', async () => {
    const lockDir = join(h.scriptsDir, '.lock');
    await mkdir(lockDir);
    const dead = spawn(process.execPath, ['-e', '']);
    await new Promise((r) => dead.once('exit', r));
    await writeFile(
      join(lockDir, 'owner.0123456789abcdef01234567'),
      formatOwner({ ...currentOwner(), host: 'other.example', boot: 'another-boot', pid: dead.pid! }),
    );
    expect(await kindOf(acquireLock(nodeFileOps, lockDir, { ...DEFAULT_LOCK_OPTIONS, waitMs: 300 }))).toBe('trylater');
    // The same record from this machine is a dead owner: taken over at once.
    await writeFile(
      join(lockDir, 'owner.0123456789abcdef01234567'),
      formatOwner({ ...currentOwner(), pid: dead.pid! }),
    );
    await (await acquireLock(nodeFileOps, lockDir, { ...DEFAULT_LOCK_OPTIONS, waitMs: 300 })).release();
  });
});

describe('a refused PUTSCRIPT', () => {
  it('leaves no orphan name file of a hashed name (the script cannot be put in place)', async () => {
    const long = 'ü'.repeat(150);
    const enc = encodeScriptFileName(long);
    expect(enc.nameFile).toBeDefined();
    const store = await openStore(h, {
      fileOps: faultyOps({ renameFails: { match: /#[0-9a-f]{64}\.sieve$/, code: 'ENOSPC' } }),
    });
    expect(await kindOf(store.put(long, b('keep;\n')))).toBe('quota');
    expect(await readdir(h.scriptsDir)).toEqual([]);
    // Replacing an existing hashed script that fails keeps its name file.
    await (await openStore(h)).put(long, b('keep;\n'));
    expect(await kindOf(store.put(long, b('discard;\n')))).toBe('quota');
    expect((await readdir(h.scriptsDir)).sort()).toEqual([enc.file, enc.nameFile].sort());
    expect(await store.list()).toEqual([{ name: long, active: false }]);
  });
});
