/**
 * The per-session worker, driven through ProcessLauncher and RemoteStore on real
 * processes and temp directories: byte-exact storage, typed errors across the pipe,
 * and a worker that dies, hangs or talks nonsense failing its session with TRYLATER.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync, mkdirSync, chownSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log/logger.js';
import { ProcessLauncher, workerCommand } from '../../src/storage/worker/process-launcher.js';
import { RemoteStore } from '../../src/storage/worker/remote-store.js';
import { StorageError } from '../../src/storage/types.js';
import { processIsolationProblem } from '../../src/storage/worker/privileges.js';
import { requireRoot } from '../helpers/tools.js';
import type { Identity } from '../../src/auth/types.js';
import { defaultProfile, validateScript } from '../../src/sieve/index.js';

const WORKER = workerCommand()[1]!;
if (!existsSync(WORKER)) throw new Error(`${WORKER} is missing: run \`npm run build\` first (npm test does)`);

function storageConfig(over: Record<string, unknown> = {}) {
  return configSchema.parse({ storage: { scripts_dir: '{home}/sieve', filter_path: '{home}/.forward', ...over } }).storage;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pid: number): Promise<void> {
  for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 25));
}

async function rejection(p: Promise<unknown>): Promise<StorageError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(StorageError);
    return err as StorageError;
  }
  throw new Error('expected a StorageError');
}

let base: string;
beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'tsieved-worker-'));
  chmodSync(base, 0o755);
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

function homeFor(name: string): string {
  const home = join(base, name);
  mkdirSync(home, { recursive: true });
  return home;
}

describe('storage worker', () => {
  // As root a worker must run as some user (never root); otherwise it runs as us.
  const UID = 41230;
  const self = (name: string): Identity => {
    const home = homeFor(name);
    if (process.getuid?.() !== 0) return { user: name, home, fields: {} };
    chownSync(home, UID, UID);
    return { user: name, uid: UID, gid: UID, home, fields: {} };
  };

  it('stores byte-exact, activates, and reports typed errors across the pipe', async () => {
    const launcher = new ProcessLauncher({ storage: storageConfig(), log: silentLogger() });
    const id = self('alice');
    const store = (await launcher.open(id)) as RemoteStore;
    try {
      const script = Buffer.from('require "fileinto";\r\nfileinto "x";\r\n\u0000\u00ff', 'latin1');
      await store.put('my script', script);
      expect((await store.get('my script')).equals(script)).toBe(true);
      await store.setActive('my script');
      expect(await store.list()).toEqual([{ name: 'my script', active: true }]);
      expect(readFileSync(join(id.home!, '.forward'), 'utf8')).toMatch(/^# Sieve filter\n/);
      expect((await rejection(store.get('absent'))).kind).toBe('nonexistent');
      expect((await rejection(store.delete('my script'))).kind).toBe('active');
      await store.rename('my script', 'renamed');
      expect(await store.list()).toEqual([{ name: 'renamed', active: true }]);
      const info = await store.whoami();
      expect(info.pid).toBe(store.pid);
      expect(info.pid).not.toBe(process.pid);
      expect(info.nice).toBe(10);
    } finally {
      await store.close();
    }
    expect(launcher.openCount).toBe(0);
  });

  it('carries the operations migration needs (put if absent, set active if none, preserved forwards, metadata)', async () => {
    const launcher = new ProcessLauncher({ storage: storageConfig(), log: silentLogger() });
    const id = self('migrating');
    const store = await launcher.open(id);
    try {
      expect(await store.putIfAbsent('a', Buffer.from('keep;'))).toBe(true);
      expect(await store.putIfAbsent('a', Buffer.from('discard;'))).toBe(false);
      const forward = Buffer.from('# Exim filter\ndeliver x@elsewhere.example\n');
      expect(await store.preserveForward(forward)).toBe('old-forward');
      expect(await store.isVerbatim('old-forward')).toBe(true);
      expect(await store.isVerbatim('a')).toBe(false);
      expect(await store.setActiveIfNone('old-forward')).toEqual({ active: 'old-forward', activated: true });
      expect(await store.setActiveIfNone('a')).toEqual({ active: 'old-forward', activated: false });
      expect(readFileSync(join(id.home!, '.forward')).equals(forward)).toBe(true);
      expect(await store.readMeta('migrated')).toBeUndefined();
      await store.writeMeta('migrated', Buffer.from('settled\n'));
      expect((await store.readMeta('migrated'))?.toString()).toBe('settled\n');
    } finally {
      await store.close();
    }
  });

  it('moves a 1 MiB script byte-exact', async () => {
    const launcher = new ProcessLauncher({ storage: storageConfig(), log: silentLogger() });
    const store = await launcher.open(self('big'));
    try {
      const big = Buffer.alloc(1024 * 1024 - 256);
      for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
      await store.put('big', big);
      expect((await store.get('big')).equals(big)).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('validates a 1 MiB script in the worker, with the same diagnostics as in-process', async () => {
    const profile = defaultProfile();
    const launcher = new ProcessLauncher({ storage: storageConfig(), log: silentLogger(), sieveProfile: profile });
    const store = (await launcher.open(self('validator'))) as RemoteStore;
    try {
      const line = 'if header :contains "subject" "x" { fileinto "a"; }\r\n';
      const big = Buffer.from('require "fileinto";\r\n' + line.repeat(Math.floor((profile.maxScriptBytes - 40) / line.length)));
      const bad = Buffer.from('require "nosuchext";\r\nfrobnicate;\r\n');
      const [remoteBig, remoteBad] = await Promise.all([store.validate(big), store.validate(bad)]);
      expect(remoteBig).toEqual(validateScript(big, profile));
      expect(remoteBad).toEqual(validateScript(bad, profile));
      expect(remoteBad.some((d) => d.severity === 'error')).toBe(true);
    } finally {
      await store.close();
    }
    const plain = (await new ProcessLauncher({ storage: storageConfig(), log: silentLogger() }).open(self('noprofile'))) as RemoteStore;
    await expect(plain.validate(Buffer.from('keep;'))).rejects.toMatchObject({ kind: 'io' });
    await plain.close();
  });

  it('exits when the store is closed', async () => {
    const launcher = new ProcessLauncher({ storage: storageConfig(), log: silentLogger() });
    const store = (await launcher.open(self('closer'))) as RemoteStore;
    const pid = store.pid;
    expect(alive(pid)).toBe(true);
    await store.close();
    await waitGone(pid);
    expect(alive(pid)).toBe(false);
    expect((await rejection(store.list())).kind).toBe('trylater');
  });

  it('a killed worker fails pending and later operations with trylater, and only its own session', async () => {
    const launcher = new ProcessLauncher({ storage: storageConfig(), log: silentLogger() });
    const victim = (await launcher.open(self('victim'))) as RemoteStore;
    const bystander = await launcher.open(self('bystander'));
    try {
      await victim.put('a', Buffer.from('keep;'));
      const pending = victim.put('b', Buffer.alloc(900 * 1024, 0x61));
      process.kill(victim.pid, 'SIGKILL');
      expect((await rejection(pending)).kind).toBe('trylater');
      expect((await rejection(victim.list())).kind).toBe('trylater');
      await bystander.put('fine', Buffer.from('keep;'));
      expect(await bystander.list()).toEqual([{ name: 'fine', active: false }]);
    } finally {
      await victim.close();
      await bystander.close();
    }
  });

  it('a worker that never answers is terminated and the call fails with trylater', async () => {
    const launcher = new ProcessLauncher({
      storage: storageConfig(),
      log: silentLogger(),
      workerCommand: [process.execPath, '-e', 'process.stdin.resume(); setInterval(() => {}, 1000)'],
      callTimeoutMs: 300,
    });
    const started = Date.now();
    const err = await rejection(launcher.open(self('hung')));
    expect(err.kind).toBe('trylater');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('a worker that sends garbage fails with trylater', async () => {
    const launcher = new ProcessLauncher({
      storage: storageConfig(),
      log: silentLogger(),
      workerCommand: [process.execPath, '-e', 'process.stdout.write(Buffer.alloc(64, 0xff)); process.stdin.resume()'],
    });
    expect((await rejection(launcher.open(self('garbage')))).kind).toBe('trylater');
  });

  it('a worker that answers with a malformed list is dropped (its answers are untrusted)', async () => {
    const fake = join(base, 'fake-worker.mjs');
    const protocol = WORKER.replace(/worker-main\.js$/, 'protocol.js');
    writeFileSync(
      fake,
      `import { FrameDecoder, encodeFrame } from ${JSON.stringify(protocol)};
const d = new FrameDecoder();
process.stdin.on('data', (c) => {
  for (const f of d.push(c)) {
    const result = f.header.op === 'list' ? [{ name: 42, active: 'yes' }] : null;
    process.stdout.write(encodeFrame({ id: f.header.id, ok: true, result }));
  }
});
`,
    );
    chmodSync(fake, 0o644);
    const launcher = new ProcessLauncher({ storage: storageConfig(), log: silentLogger(), workerCommand: [process.execPath, fake] });
    const store = await launcher.open(self('liar'));
    expect((await rejection(store.list())).kind).toBe('trylater');
    expect((await rejection(store.get('x'))).kind).toBe('trylater');
    await store.close();
  });

  it('a worker command that does not exist fails with trylater', async () => {
    const launcher = new ProcessLauncher({ storage: storageConfig(), log: silentLogger(), workerCommand: ['/nonexistent/tsieved-worker'] });
    expect((await rejection(launcher.open(self('nocmd')))).kind).toBe('trylater');
  });

  it('runs the worker through token_command with the identity expanded', async () => {
    const launcher = new ProcessLauncher({
      storage: storageConfig({ token_command: ['/usr/bin/env', 'TSIEVED_TOKEN_FOR={user}'] }),
      log: silentLogger(),
    });
    const store = (await launcher.open(self('tokenuser'))) as RemoteStore;
    try {
      const info = await store.whoami();
      expect(info.credentialEnv).toContain('TSIEVED_TOKEN_FOR');
      // The wrapper exec'd the worker: the process we talk to is the one whose pid we hold.
      expect(info.pid).toBe(store.pid);
    } finally {
      await store.close();
    }
  });

  it('launcher.close() ends every open worker (server shutdown)', async () => {
    const launcher = new ProcessLauncher({ storage: storageConfig(), log: silentLogger() });
    const a = (await launcher.open(self('s1'))) as RemoteStore;
    const b = (await launcher.open(self('s2'))) as RemoteStore;
    expect(launcher.openCount).toBe(2);
    await launcher.close();
    await waitGone(a.pid);
    await waitGone(b.pid);
    expect(alive(a.pid) || alive(b.pid)).toBe(false);
  });
});

describe.skipIf(!requireRoot())('storage worker as another user (root)', () => {
  const UID_A = 41234;
  const UID_B = 41235;

  it('is possible here (start-up check passes as root)', () => {
    expect(processIsolationProblem()).toBeUndefined();
  });

  it('writes files owned by the identity and runs without root', async () => {
    const home = homeFor('owned');
    chownSync(home, UID_A, UID_A);
    const launcher = new ProcessLauncher({ storage: storageConfig(), log: silentLogger() });
    const store = (await launcher.open({ user: 'owned', uid: UID_A, gid: UID_A, home, fields: {} })) as RemoteStore;
    try {
      const info = await store.whoami();
      expect([info.uid, info.gid]).toEqual([UID_A, UID_A]);
      expect(info.groups.filter((g) => g !== UID_A)).toEqual([]);
      await store.put('s', Buffer.from('keep;'));
      await store.setActive('s');
      for (const p of [join(home, 'sieve'), join(home, '.forward')]) {
        const st = statSync(p);
        expect([st.uid, st.gid]).toEqual([UID_A, UID_A]);
      }
    } finally {
      await store.close();
    }
  });

  it("cannot touch another user's scripts even when the paths point there", async () => {
    const homeA = homeFor('victim-a');
    chownSync(homeA, UID_A, UID_A);
    const launcher = new ProcessLauncher({ storage: storageConfig(), log: silentLogger() });
    const a = await launcher.open({ user: 'victim-a', uid: UID_A, gid: UID_A, home: homeA, fields: {} });
    await a.put('secret', Buffer.from('keep;'));
    await a.setActive('secret');
    await a.close();
    const before = readFileSync(join(homeA, '.forward'));
    // A crafted account (or template) whose home is A's home, but whose uid is B's.
    const err = await rejection(launcher.open({ user: 'intruder', uid: UID_B, gid: UID_B, home: homeA, fields: {} }).then(async (b) => {
      try {
        await b.put('evil', Buffer.from('discard;'));
        await b.setActive('evil');
        await b.get('secret');
      } finally {
        await b.close();
      }
    }));
    expect(err.kind).toBe('permission');
    expect(readFileSync(join(homeA, '.forward')).equals(before)).toBe(true);
    expect(existsSync(join(homeA, 'sieve', 'evil.sieve'))).toBe(false);
  });

  it('refuses to start a root worker', async () => {
    const launcher = new ProcessLauncher({ storage: storageConfig(), log: silentLogger() });
    expect((await rejection(launcher.open({ user: 'r', uid: 0, gid: 0, home: homeFor('r'), fields: {} }))).kind).toBe('permission');
    expect((await rejection(launcher.open({ user: 'nouid', home: homeFor('nouid'), fields: {} }))).kind).toBe('permission');
  });

  it('the start-up check refuses a server that cannot switch users', async () => {
    const { execFileSync } = await import('node:child_process');
    const script = join(base, 'check.mjs');
    const mod = WORKER.replace(/worker-main\.js$/, 'privileges.js');
    writeFileSync(script, `import { processIsolationProblem } from ${JSON.stringify(mod)};\nprocess.stdout.write(processIsolationProblem() ?? 'none');\n`);
    chmodSync(script, 0o644);
    const out = execFileSync(process.execPath, [script], { uid: 65534, gid: 65534, encoding: 'utf8', cwd: '/' });
    expect(out).toMatch(/needs root/);
  });
});
