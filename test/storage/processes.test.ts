/**
 * FileStores in other processes: an unprivileged user meeting real permission
 * errors, files owned by the user whose process wrote them, and two "servers"
 * mutating one user's directory at once.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { chmod, chown, mkdir, readdir, readFile, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, needs } from '../helpers/tools.js';
import { renderFilter } from '../../src/storage/filter-file.js';
import { bytes, compileStore, type CompiledStore, type Step } from './helpers/compiled.js';
import { acquireLock } from '../../src/storage/lock.js';
import { nodeFileOps } from '../../src/storage/file-ops.js';
import { openStore, storeOptions, tempHome, type TempHome } from './helpers/store.js';

const NOBODY = { uid: 65534, gid: 65534 };
const b = (s: string) => Buffer.from(s, 'utf8');

describe('storage across processes', needs(ROOT), () => {
  let compiled: CompiledStore;
  let h: TempHome;
  const plainOptions = () => {
    const { log: _log, ...rest } = storeOptions(h);
    return rest as Record<string, unknown>;
  };

  beforeAll(async () => {
    compiled = await compileStore();
  });
  afterAll(async () => {
    await compiled.cleanup();
  });
  beforeEach(async () => {
    h = await tempHome();
    await chmod(h.home, 0o755); // root-owned, not writable by the user
  });
  afterEach(async () => {
    await h.cleanup();
  });

  it('an unprivileged user gets permission (real EACCES) where it cannot write, and nothing changes', async () => {
    await mkdir(h.scriptsDir, { mode: 0o700 });
    await chown(h.scriptsDir, NOBODY.uid, NOBODY.gid);
    const results = await compiled.run(
      plainOptions(),
      [
        ['put', 'main', bytes('keep;\n')],
        ['setActive', 'main'], // the filter's directory (the home) is root's
        ['list'],
      ],
      NOBODY,
    );
    expect(results[0]).toMatchObject({ ok: true });
    expect(results[1]).toMatchObject({ ok: false, kind: 'permission' });
    expect(results[2]).toEqual({ ok: true, out: [{ name: 'main', active: false }] });
    expect((await readdir(h.home)).sort()).toEqual(['sieve']);
    expect((await stat(join(h.scriptsDir, 'main.sieve'))).uid).toBe(NOBODY.uid);

    // Now the scripts directory is not writable either.
    await chown(h.scriptsDir, 0, 0);
    await chmod(h.scriptsDir, 0o755);
    const denied = await compiled.run(
      plainOptions(),
      [
        ['put', 'other', bytes('keep;\n')],
        ['delete', 'main'],
      ],
      NOBODY,
    );
    expect(denied).toMatchObject([
      { ok: false, kind: 'permission' },
      { ok: false, kind: 'permission' },
    ]);
    expect((await readdir(h.scriptsDir)).filter((f) => !f.startsWith('.'))).toEqual(['main.sieve']);
  });

  it('two processes mutating one user at once never leave a half-written or mismatched filter', async () => {
    const contents = new Map<string, Buffer>();
    const stepsFor = (writer: string): Step[] => {
      const steps: Step[] = [];
      for (let i = 0; i < 25; i++) {
        // Large enough that a torn write would be visible; every version distinct.
        const content = b(`# writer ${writer} version ${i}\n` + `# ${'x'.repeat(60)}\n`.repeat(400) + 'keep;\n');
        contents.set(renderFilter(content).toString('base64'), content);
        // Both writers replace the same active script: the race that must not
        // leave the filter rendered from a different version than the script.
        steps.push(
          ['put', 'shared', bytes(content)],
          ['setActive', 'shared'],
          ['put', `own-${writer}`, bytes(content)],
        );
      }
      return steps;
    };
    const options = { ...plainOptions(), limits: { maxScripts: 10, maxScriptBytes: 1 << 20, maxTotalBytes: 0 } };
    await openStore(h); // create the directory before the race
    const lockDir = join(h.scriptsDir, '.lock');
    let torn = 0;
    let mismatched = 0;
    let checked = 0;
    let done = false;
    // Any reader sees a whole filter; whoever holds the lock sees it match the active script.
    const watcher = (async () => {
      while (!done) {
        const lock = await acquireLock(nodeFileOps, lockDir, { waitMs: 20_000, staleMs: 30_000, retryMs: 2 });
        try {
          const filter = await readFile(h.filterPath).catch(() => undefined);
          if (filter) {
            if (!contents.has(filter.toString('base64'))) torn++;
            const script = await readFile(join(h.scriptsDir, 'shared.sieve'));
            if (!renderFilter(script).equals(filter)) mismatched++;
            checked++;
          }
        } finally {
          await lock.release();
        }
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    const [a, bResults] = await Promise.all([
      compiled.run(options, stepsFor('A')),
      compiled.run(options, stepsFor('B')),
    ]);
    done = true;
    await watcher;
    expect(a.filter((r) => !r.ok)).toEqual([]);
    expect(bResults.filter((r) => !r.ok)).toEqual([]);
    expect(checked).toBeGreaterThan(5);
    expect({ torn, mismatched }).toEqual({ torn: 0, mismatched: 0 });

    const store = await openStore(h);
    expect((await store.list()).find((s) => s.active)?.name).toBe('shared');
    expect(await readFile(h.filterPath)).toEqual(renderFilter(await store.get('shared')));
    expect((await readdir(h.scriptsDir)).filter((f) => f.includes('tsieved-tmp') || f === '.lock')).toEqual([]);
    expect((await readdir(h.home)).filter((f) => f.includes('tsieved-tmp'))).toEqual([]);
  });

  it('a second process waits for the lock and reports trylater only when it lasts too long', async () => {
    await openStore(h);
    const lockDir = join(h.scriptsDir, '.lock');
    await mkdir(lockDir);
    const options = { ...plainOptions(), lock: { waitMs: 300, staleMs: 60_000, retryMs: 10 } };
    expect(await compiled.run(options, [['put', 'x', bytes('keep;')]])).toMatchObject([
      { ok: false, kind: 'trylater' },
    ]);
    // A lock nobody refreshed for longer than staleMs is broken.
    const old = new Date(Date.now() - 120_000);
    await utimes(lockDir, old, old);
    expect(await compiled.run(options, [['put', 'x', bytes('keep;')]])).toMatchObject([{ ok: true }]);
  });
});
