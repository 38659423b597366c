/**
 * Real PAM through the helper, driven directly (PamBackend + BrokerLauncher):
 * pam_pwdfile and pam_unix logins, refusals, the order of the PAM calls and which
 * process makes them, and the file broker's credentials and file ownership.
 */
import { existsSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log/logger.js';
import { PamBackend, defaultPamHelperPath, pamProblem } from '../../src/auth/pam.js';
import type { AuthOutcome } from '../../src/auth/types.js';
import {
  BrokerLauncher,
  brokerCommand,
  defaultBrokerPath,
  pamBrokerCommand,
} from '../../src/storage/broker/launcher.js';
import { StorageError } from '../../src/storage/types.js';
import { BROKER, PAM_HELPER, ROOT, needs } from '../helpers/tools.js';
import { PAM_MODULE_DIR, PamFixture, type TestUser } from '../storage-broker/pam-fixture.js';
import { until } from '../helpers/processes.js';

const ctx = { remoteAddress: '192.0.2.7', secure: true };
// gcc builds the fixture's tracing PAM module; openssl hashes the pwdfile passwords.
const enabled = needs(ROOT, PAM_HELPER, BROKER, 'gcc', 'useradd', 'userdel', 'chpasswd', 'usermod', 'chage', 'openssl');

function storage(over: Record<string, unknown> = {}) {
  return configSchema.parse({
    storage: { scripts_dir: '{home}/sieve', filter_path: '{home}/.forward', isolation: 'process', ...over },
  }).storage;
}

/** What the kernel says about a process: its parent, ids, groups, environment and descriptors. */
function proc(pid: number) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) =>
    new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)![1].trim().split(/\s+/).filter(Boolean).map(Number);
  const fds = readdirSync(`/proc/${pid}/fd`)
    .map(Number)
    .sort((a, b) => a - b);
  return {
    ppid: field('PPid')[0],
    uid: field('Uid')[0],
    gid: field('Gid')[0],
    groups: field('Groups'),
    env: readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0'),
    fds,
    fdLinks: fds.map((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return '';
      }
    }),
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function ok(outcome: AuthOutcome): Extract<AuthOutcome, { kind: 'ok' }> {
  if (outcome.kind !== 'ok') throw new Error(`expected ok, got ${JSON.stringify(outcome)}`);
  return outcome;
}

describe('PAM helper with real PAM', enabled, () => {
  let fx: PamFixture;
  let traceLog: string;
  let pwdService: string;
  let unixService: string;
  let mapService: string;
  let alice: TestUser;
  let bob: TestUser;
  let expired: TestUser;
  let launcher: BrokerLauncher;

  beforeAll(() => {
    if (!existsSync(defaultPamHelperPath())) throw new Error('PAM helper not built: run `npm run build`');
    if (!PAM_MODULE_DIR || !existsSync(join(PAM_MODULE_DIR, 'pam_pwdfile.so')))
      throw new Error('pam_pwdfile (libpam-pwdfile) is not installed');
    fx = new PamFixture();
    traceLog = fx.traceLog('main');
    const trace = (type: string) => `${type} optional ${fx.traceModule} log=${traceLog}`;
    alice = fx.user();
    bob = fx.user();
    expired = fx.user({ expired: true });
    pwdService = fx.service('pwdfile', [
      `auth required pam_pwdfile.so pwdfile=${fx.pwdfile}`,
      trace('auth'),
      'account required pam_unix.so',
      trace('account'),
      'session required pam_permit.so',
      trace('session'),
    ]);
    unixService = fx.service('unix', [
      'auth required pam_unix.so',
      'account required pam_unix.so',
      'session required pam_permit.so',
    ]);
    // A module that maps the login name: files must belong to the user PAM settled on.
    mapService = fx.service('map', [
      `auth required ${fx.traceModule} mapto=${bob.name}`,
      'account required pam_permit.so',
      'session required pam_permit.so',
    ]);
    launcher = new BrokerLauncher({ storage: storage(), log: silentLogger() });
  });

  afterAll(async () => {
    try {
      await launcher?.close();
    } finally {
      fx?.cleanup();
    }
  });

  // As main.ts builds it without token_command: the (empty) command goes with the credentials.
  const backend = (service: string) =>
    new PamBackend({
      service,
      brokerCommand: (id) => pamBrokerCommand(storage(), id),
      fixedBrokerCommand: [],
      log: silentLogger(),
    });

  it('the start-up check passes with a built helper as root', () => {
    expect(pamProblem()).toBeUndefined();
    expect(pamProblem('/nonexistent/helper')).toMatch(/missing or not executable/);
  });

  it('pam_pwdfile: right password opens a session whose broker runs as the user, in order, in one process', async () => {
    const log = fx.traceLog('order');
    const service = fx.service('order', [
      `auth required pam_pwdfile.so pwdfile=${fx.pwdfile}`,
      `auth optional ${fx.traceModule} log=${log}`,
      'account required pam_unix.so',
      `account optional ${fx.traceModule} log=${log}`,
      'session required pam_permit.so',
      `session optional ${fx.traceModule} log=${log}`,
    ]);
    const outcome = ok(await backend(service).verifyPassword(alice.name, alice.password, ctx));
    expect(outcome.identity).toMatchObject({ user: alice.name, uid: alice.uid, gid: alice.gid, home: alice.home });
    const store = await launcher.open(outcome.identity, outcome.attached);
    const info = proc(outcome.attached!.pid);
    const opened = fx.readTrace(log);
    expect(opened.map((e) => e.what)).toEqual(['authenticate', 'acct_mgmt', 'setcred-establish', 'open_session']);
    const helperPid = opened[0].pid;
    // Every PAM call ran in one session process (not in this server), as root, forked
    // by the long-lived helper this server started (not by the server itself).
    const b = backend(service);
    expect(b.spawnerPid).toBeDefined();
    expect(opened.every((e) => e.pid === helperPid && e.uid === 0 && e.ppid === b.spawnerPid)).toBe(true);
    expect(proc(b.spawnerPid!).ppid).toBe(process.pid);
    // The broker that writes the files is the child of the process that ran setcred;
    // with no token_command it serves in that child, without an exec...
    expect(info.ppid).toBe(helperPid);
    expect(readlinkSync(`/proc/${outcome.attached!.pid}/exe`)).toBe(readlinkSync(`/proc/${helperPid}/exe`));
    expect([info.uid, info.gid]).toEqual([alice.uid, alice.gid]);
    expect(info.groups).toContain(alice.gid);
    // ...and, holding what the PAM transaction left in memory, it is not dumpable: the
    // kernel gives its /proc files to root, so the user cannot read its memory.
    expect(statSync(`/proc/${outcome.attached!.pid}/mem`).uid).toBe(0);
    // Nothing another session could reach it by: its two unnamed pipes to this server, and the log.
    expect(info.fds).toEqual([0, 1, 2]);
    expect(info.fdLinks.slice(0, 2).every((l) => /^(pipe|socket):\[/.test(l))).toBe(true);

    await store.put('rules', Buffer.from('keep;\r\n'));
    await store.setActive('rules');
    for (const p of [
      join(alice.home, 'sieve'),
      join(alice.home, 'sieve', 'rules.sieve'),
      join(alice.home, '.forward'),
    ]) {
      const st = statSync(p);
      expect([p, st.uid, st.gid]).toEqual([p, alice.uid, alice.gid]);
    }
    expect(fx.readTrace(log).map((e) => e.what)).toHaveLength(4); // nothing closed yet

    await store.close(); // LOGOUT
    await until(() => fx.readTrace(log).length === 6);
    const all = fx.readTrace(log);
    expect(all.map((e) => e.what)).toEqual([
      'authenticate',
      'acct_mgmt',
      'setcred-establish',
      'open_session',
      'close_session',
      'setcred-delete',
    ]);
    expect(all.every((e) => e.pid === helperPid)).toBe(true);
    await until(() => !alive(outcome.attached!.pid) && !alive(helperPid));
  });

  it('a slow pam_close_session does not hold up closing the store (LOGOUT)', async () => {
    const log = fx.traceLog('slowclose');
    const service = fx.service('slowclose', [
      `auth required pam_pwdfile.so pwdfile=${fx.pwdfile}`,
      'account required pam_permit.so',
      'session required pam_permit.so',
      'session optional pam_exec.so quiet type=close_session /bin/sleep 2',
      `session optional ${fx.traceModule} log=${log}`,
    ]);
    const outcome = ok(await backend(service).verifyPassword(alice.name, alice.password, ctx));
    const store = await launcher.open(outcome.identity, outcome.attached);
    await store.list();
    const t = Date.now();
    await store.close();
    expect(Date.now() - t).toBeLessThan(1500);
    // ...while the helper still finishes the PAM session properly afterwards.
    await until(() => fx.readTrace(log).some((e) => e.what === 'close_session'));
  });

  it('a stalled broker is timed out, killed by the helper, and the PAM session closed and credentials deleted', async () => {
    const log = fx.traceLog('stuck');
    const service = fx.service('stuck', [
      `auth required pam_pwdfile.so pwdfile=${fx.pwdfile}`,
      `auth optional ${fx.traceModule} log=${log}`,
      'account required pam_permit.so',
      'session required pam_permit.so',
      `session optional ${fx.traceModule} log=${log}`,
    ]);
    // Stands in for a broker stuck in a hung file system (AFS): never answers, deaf to SIGTERM.
    const stuck = ['/bin/sh', '-c', "trap '' TERM; exec sleep 600"];
    const b = new PamBackend({ service, brokerCommand: () => stuck, log: silentLogger() });
    const outcome = ok(await b.verifyPassword(alice.name, alice.password, ctx));
    const attached = outcome.attached!;
    const stalling = new BrokerLauncher({ storage: storage(), log: silentLogger(), callTimeoutMs: 500 });
    const t = Date.now();
    // The first call (FileStore.open's) is not answered: the session fails with TRYLATER...
    await expect(stalling.open(outcome.identity, attached)).rejects.toMatchObject({ kind: 'trylater' });
    // ...and the helper kills the broker after its 5 s grace, then closes the PAM session.
    await attached.exited;
    expect(Date.now() - t).toBeLessThan(12_000); // the helper's 5 s grace, not the server's 15 s SIGKILL
    expect(alive(attached.pid)).toBe(false);
    expect(fx.readTrace(log).map((e) => e.what)).toEqual([
      'authenticate',
      'setcred-establish',
      'open_session',
      'close_session',
      'setcred-delete',
    ]);
  }, 20_000);

  it('a dropped connection (pipes destroyed) still closes the PAM session', async () => {
    const log = fx.traceLog('drop');
    const service = fx.service('drop', [
      `auth required pam_pwdfile.so pwdfile=${fx.pwdfile}`,
      'account required pam_permit.so',
      'session required pam_permit.so',
      `session optional ${fx.traceModule} log=${log}`,
    ]);
    const outcome = ok(await backend(service).verifyPassword(alice.name, alice.password, ctx));
    const store = await launcher.open(outcome.identity, outcome.attached);
    await store.list();
    // What a vanished server or a torn-down connection leaves: the pipes just close.
    (outcome.attached!.input as NodeJS.WritableStream & { destroy(): void }).destroy();
    await until(() => fx.readTrace(log).some((e) => e.what === 'close_session'));
    expect(fx.readTrace(log).map((e) => e.what)).toEqual(['open_session', 'close_session']);
    expect((await store.list().catch((e: StorageError) => e)) as StorageError).toMatchObject({ kind: 'trylater' });
    await store.close();
  });

  it('a killed broker fails the session with trylater and the helper still closes the PAM session', async () => {
    const log = fx.traceLog('kill');
    const service = fx.service('kill', [
      `auth required pam_pwdfile.so pwdfile=${fx.pwdfile}`,
      'account required pam_permit.so',
      'session required pam_permit.so',
      `session optional ${fx.traceModule} log=${log}`,
    ]);
    const outcome = ok(await backend(service).verifyPassword(alice.name, alice.password, ctx));
    const store = await launcher.open(outcome.identity, outcome.attached);
    process.kill(outcome.attached!.pid, 'SIGKILL');
    await expect(store.put('x', Buffer.from('keep;'))).rejects.toMatchObject({ kind: 'trylater' });
    await until(() => fx.readTrace(log).some((e) => e.what === 'close_session'));
    await store.close();
  });

  it('pam_pwdfile: wrong password, expired account and unknown user are rejected alike, without a broker', async () => {
    const log = fx.traceLog('refused');
    const service = fx.service('refused', [
      `auth required pam_pwdfile.so pwdfile=${fx.pwdfile} nodelay`,
      'account required pam_unix.so',
      'session required pam_permit.so',
      `session optional ${fx.traceModule} log=${log}`,
    ]);
    const b = backend(service);
    const wrong = await b.verifyPassword(alice.name, 'not-the-password', ctx);
    const exp = await b.verifyPassword(expired.name, expired.password, ctx);
    const unknown = await b.verifyPassword('tsv-nobody-here', 'whatever', ctx);
    expect(wrong).toMatchObject({ kind: 'rejected' });
    expect(exp).toMatchObject({ kind: 'rejected', reason: expect.stringMatching(/^expired:/) });
    expect(unknown).toMatchObject({ kind: 'rejected' });
    expect(fx.readTrace(log)).toEqual([]); // no session was ever opened
  });

  it('pam_unix: right password logs in; wrong password and expired account are refused', async () => {
    const b = backend(unixService);
    const good = ok(await b.verifyPassword(bob.name, bob.password, ctx));
    expect(good.identity.uid).toBe(bob.uid);
    const store = await launcher.open(good.identity, good.attached);
    await store.put('s', Buffer.from('keep;'));
    expect(statSync(join(bob.home, 'sieve', 's.sieve')).uid).toBe(bob.uid);
    await store.close();
    const [wrong, exp] = await Promise.all([
      b.verifyPassword(bob.name, `${bob.password}x`, ctx),
      b.verifyPassword(expired.name, expired.password, ctx),
    ]);
    expect(wrong).toMatchObject({ kind: 'rejected' });
    expect(exp).toMatchObject({ kind: 'rejected', reason: expect.stringMatching(/^expired:/) });
  });

  it('pam_unix: a password that must be changed is refused, and the log says why', async () => {
    const stale = fx.user({ mustChangePassword: true });
    const outcome = await backend(unixService).verifyPassword(stale.name, stale.password, ctx);
    expect(outcome).toMatchObject({ kind: 'rejected', reason: expect.stringMatching(/^newauthtok:/) });
  });

  it('uses the user name PAM settled on (PAM_USER), not the one typed', async () => {
    const outcome = ok(await backend(mapService).verifyPassword('someone-else', 'anything', ctx));
    expect(outcome.identity).toMatchObject({ user: bob.name, uid: bob.uid, gid: bob.gid });
    const store = await launcher.open(outcome.identity, outcome.attached);
    expect(proc(outcome.attached!.pid).uid).toBe(bob.uid);
    await store.close();
  });

  it('a PAM stack that hangs is given up after the timeout, and its helper does not linger', async () => {
    const log = fx.traceLog('hang');
    const service = fx.service('hang', [
      `auth required ${fx.traceModule} log=${log} sleep=30`,
      'account required pam_permit.so',
      'session required pam_permit.so',
    ]);
    const b = new PamBackend({
      service,
      brokerCommand: (id) => pamBrokerCommand(storage(), id),
      log: silentLogger(),
      timeoutMs: 500,
    });
    expect(await b.verifyPassword(alice.name, alice.password, ctx)).toEqual({
      kind: 'unavailable',
      reason: 'PAM transaction timed out',
    });
    const helperPid = fx.readTrace(log)[0].pid;
    await until(() => !alive(helperPid));
  });

  it('a group pam_setcred adds (an AFS PAG, pam_group) reaches the broker', async () => {
    const pag = 40_000 + Math.floor(Math.random() * 20_000);
    const service = fx.service('pag', [
      `auth required pam_pwdfile.so pwdfile=${fx.pwdfile}`,
      `auth optional ${fx.traceModule} addgroup=${pag}`,
      'account required pam_permit.so',
      'session required pam_permit.so',
    ]);
    const outcome = ok(await backend(service).verifyPassword(alice.name, alice.password, ctx));
    const store = await launcher.open(outcome.identity, outcome.attached);
    try {
      const info = proc(outcome.attached!.pid);
      expect(info.uid).toBe(alice.uid);
      expect(info.groups).toContain(pag);
      expect(info.groups).toContain(alice.gid);
    } finally {
      await store.close();
    }
  });

  it('runs the broker under token_command, expanded by the server for the account PAM settled on', async () => {
    // `env` (looked up in PATH) stands in for k5start: it sets variables and execs the rest.
    const wrapped = storage({
      token_command: [
        'env',
        'TSIEVED_TOKEN_USER={user}',
        'TSIEVED_TOKEN_KEYTAB=/etc/keytabs/{u1}/{u2}/{user}',
        'TSIEVED_TOKEN_HOME={home}',
      ],
    });
    const b = new PamBackend({
      service: mapService,
      brokerCommand: (id) => brokerCommand(wrapped, id),
      log: silentLogger(),
    });
    const outcome = ok(await b.verifyPassword('typed-name', 'anything', ctx));
    const store = await launcher.open(outcome.identity, outcome.attached);
    try {
      const info = proc(outcome.attached!.pid);
      expect(info.env).toContain(`TSIEVED_TOKEN_USER=${bob.name}`);
      expect(info.env).toContain(
        `TSIEVED_TOKEN_KEYTAB=/etc/keytabs/${bob.name.slice(0, 1)}/${bob.name.slice(0, 2)}/${bob.name}`,
      );
      expect(info.env).toContain(`TSIEVED_TOKEN_HOME=${bob.home}`);
      // The PAM environment (the ticket cache pam_setcred made) reaches the wrapper and broker.
      expect(info.env.some((e) => e.startsWith('KRB5CCNAME='))).toBe(true);
      expect(readFileSync(`/proc/${outcome.attached!.pid}/cmdline`, 'utf8').split('\0')[0]).toBe(defaultBrokerPath());
      expect(info.uid).toBe(bob.uid);
      await store.put('s', Buffer.from('keep;'));
      expect(statSync(join(bob.home, 'sieve', 's.sieve')).uid).toBe(bob.uid);
    } finally {
      await store.close();
    }
  });

  it('descriptors a PAM module leaves open do not reach the broker', async () => {
    const secret = fx.pwdfile; // root-only, like /etc/shadow
    const service = fx.service('leak', [
      `auth required pam_pwdfile.so pwdfile=${fx.pwdfile}`,
      `auth optional ${fx.traceModule} leak=${secret}`,
      'account required pam_permit.so',
      'session required pam_permit.so',
    ]);
    const outcome = ok(await backend(service).verifyPassword(alice.name, alice.password, ctx));
    const store = await launcher.open(outcome.identity, outcome.attached);
    try {
      await store.list();
      const helperPid = proc(outcome.attached!.pid).ppid;
      expect(proc(helperPid).fdLinks).toContain(secret); // the module really leaked it
      expect(proc(outcome.attached!.pid).fdLinks).not.toContain(secret);
    } finally {
      await store.close();
    }
  });

  it('refuses NUL and over-long credentials before running PAM', async () => {
    const b = backend(pwdService);
    const before = fx.readTrace(traceLog).length;
    expect(await b.verifyPassword(alice.name, `${alice.password}\0junk`, ctx)).toMatchObject({ kind: 'rejected' });
    expect(await b.verifyPassword(`${alice.name}\0x`, alice.password, ctx)).toMatchObject({ kind: 'rejected' });
    expect(await b.verifyPassword(alice.name, 'x'.repeat(5000), ctx)).toMatchObject({ kind: 'rejected' });
    expect(fx.readTrace(traceLog).length).toBe(before);
  });

  it('a missing helper or a broker that cannot start is "unavailable" or TRYLATER, never a crash', async () => {
    const missing = new PamBackend({
      service: pwdService,
      helperPath: '/nonexistent/helper',
      brokerCommand: (id) => brokerCommand(storage(), id),
      log: silentLogger(),
    });
    expect(await missing.verifyPassword(alice.name, alice.password, ctx)).toMatchObject({ kind: 'unavailable' });
    // The helper authenticates, but the broker it execs does not exist: the session
    // fails with TRYLATER when the launcher adopts it, and PAM is still closed.
    const log = fx.traceLog('noexec');
    const service = fx.service('noexec', [
      `auth required pam_pwdfile.so pwdfile=${fx.pwdfile}`,
      'account required pam_permit.so',
      'session required pam_permit.so',
      `session optional ${fx.traceModule} log=${log}`,
    ]);
    const b = new PamBackend({ service, brokerCommand: () => ['/nonexistent/broker'], log: silentLogger() });
    const outcome = ok(await b.verifyPassword(alice.name, alice.password, ctx));
    await expect(launcher.open(outcome.identity, outcome.attached)).rejects.toMatchObject({ kind: 'trylater' });
    await until(() => fx.readTrace(log).some((e) => e.what === 'close_session'));
  });
});
