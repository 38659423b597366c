import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log/logger.js';
import { InProcessLauncher } from '../../src/storage/launcher.js';
import type { AttachedBroker, Identity } from '../../src/auth/types.js';
import { kindOf, tempHome, type TempHome } from './helpers/store.js';
import { ROOT, needs } from '../helpers/tools.js';

/** The identities run as this process's own uid: in-process storage is not for other uids as root. */
const me = { uid: process.getuid?.() ?? 1000, gid: process.getgid?.() ?? 1000 };

let h: TempHome;
beforeEach(async () => {
  h = await tempHome();
});
afterEach(async () => {
  await h.cleanup();
});

function fakeWorker(): AttachedBroker & { terminated: number } {
  let resolveExit: () => void = () => undefined;
  const exited = new Promise<void>((r) => (resolveExit = r));
  const w = {
    pid: 999999,
    input: new PassThrough(),
    output: new PassThrough(),
    terminated: 0,
    terminate() {
      w.terminated++;
      resolveExit();
    },
    exited,
  };
  return w;
}

describe('InProcessLauncher', () => {
  it('resolves the templates and opens a working store for the identity', async () => {
    const storage = configSchema.parse({
      storage: {
        scripts_dir: '{home}/mail/{user}/sieve',
        filter_path: '{home}/.forward',
        roots: [h.home],
        filter_mode: '0640',
      },
    }).storage;
    const launcher = new InProcessLauncher(storage, silentLogger());
    const identity: Identity = { user: 'alice', home: h.home, fields: {}, ...me };
    const store = await launcher.open(identity);
    await store.put('main', Buffer.from('keep;\n'));
    await store.setActive('main');
    expect(await readFile(join(h.home, 'mail', 'alice', 'sieve', 'main.sieve'), 'utf8')).toBe('keep;\n');
    expect((await stat(h.filterPath)).mode & 0o777).toBe(0o640);
    expect(await store.list()).toEqual([{ name: 'main', active: true }]);
    await store.close();
  });

  it('refuses an identity whose paths would escape, and ends an attached worker', async () => {
    const storage = configSchema.parse({
      storage: { scripts_dir: '/srv/sieve/{user}', filter_path: '/srv/fwd/{user}' },
    }).storage;
    const launcher = new InProcessLauncher(storage, silentLogger());
    const worker = fakeWorker();
    expect(await kindOf(launcher.open({ user: '../root', fields: {}, ...me }, worker))).toBe('bad-name');
    expect(worker.terminated).toBe(1);
    const outside = configSchema.parse({ storage: { roots: ['/nonexistent-root'] } }).storage;
    expect(
      await kindOf(new InProcessLauncher(outside, silentLogger()).open({ user: 'a', home: h.home, fields: {}, ...me })),
    ).toBe('permission');
  });

  it(
    "as root, refuses another uid (or none) as a misconfiguration: root would follow that user's symlinks",
    needs(ROOT),
    async () => {
      const storage = configSchema.parse({ storage: { roots: [h.home] } }).storage;
      const launcher = new InProcessLauncher(storage, silentLogger());
      for (const identity of [
        { user: 'nobody', home: h.home, uid: 65534, gid: 65534, fields: {} },
        { user: 'nouid', home: h.home, fields: {} },
      ]) {
        expect(await kindOf(launcher.open(identity)), identity.user).toBe('misconfigured');
      }
      // Nothing was created for them.
      await expect(stat(join(h.home, 'sieve'))).rejects.toMatchObject({ code: 'ENOENT' });
    },
  );

  it('keeps an attached worker alive until the store is closed', async () => {
    const storage = configSchema.parse({}).storage;
    const worker = fakeWorker();
    const store = await new InProcessLauncher(storage, silentLogger()).open(
      { user: 'a', home: h.home, fields: {}, ...me },
      worker,
    );
    await store.put('x', Buffer.from('keep;'));
    expect(worker.terminated).toBe(0);
    await store.close();
    expect(worker.terminated).toBe(1);
  });
});
