/**
 * The PAM helper's waiting session process: forked before a login arrives, with
 * pam_start for the service already made, it takes the next login; the listener
 * then forks the next one. Real PAM (pam_pwdfile), through PamBackend and through
 * the helper program driven by hand: one waits at a time, a killed one is replaced
 * and logins go on meanwhile, none outlives the helper, a changed PAM configuration
 * is read again, and what follows the credentials on the connection reaches the
 * broker.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log/logger.js';
import { PamBackend, defaultPamHelperPath } from '../../src/auth/pam.js';
import type { AuthOutcome } from '../../src/auth/types.js';
import { BrokerLauncher, pamBrokerCommand } from '../../src/storage/broker/launcher.js';
import { encodeRequest, ResponseDecoder, STATUS, type Response } from '../../src/storage/broker/protocol.js';
import { childPids, until, runningProcess } from '../helpers/processes.js';
import { BROKER, PAM_HELPER, ROOT, needs } from '../helpers/tools.js';
import { PAM_MODULE_DIR, PamFixture, type TestUser } from '../storage-broker/pam-fixture.js';

const ctx = { remoteAddress: '192.0.2.9', secure: true };
const enabled = needs(ROOT, PAM_HELPER, BROKER, 'gcc', 'useradd', 'userdel', 'chpasswd', 'usermod', 'chage', 'openssl');

const storage = () =>
  configSchema.parse({
    storage: { scripts_dir: '{home}/sieve', filter_path: '{home}/.forward', isolation: 'process' },
  }).storage;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function ok(outcome: AuthOutcome): Extract<AuthOutcome, { kind: 'ok' }> {
  if (outcome.kind !== 'ok') throw new Error(`expected ok, got ${JSON.stringify(outcome)}`);
  return outcome;
}

/** The one child of `parent` once it has exactly one (and no session is open). */
async function theOnlyChild(parent: number): Promise<number> {
  await until(() => childPids(parent).length === 1);
  return childPids(parent)[0];
}

/** Libraries a process has mapped: pam_start loads the service's modules. */
function maps(pid: number): string {
  return readFileSync(`/proc/${pid}/maps`, 'utf8');
}

/** A login connection to a helper started by hand, speaking its protocol directly. */
class RawLogin {
  private readonly socket: Socket;
  private bytes = Buffer.alloc(0);
  /** Each read, as it came. */
  readonly chunks: Buffer[] = [];
  private closed = false;
  private wake: (() => void) | undefined;

  constructor(path: string, first: Buffer) {
    this.socket = connect(path);
    this.socket.on('error', () => undefined);
    this.socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.bytes = Buffer.concat([this.bytes, d]);
      this.wake?.();
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    this.socket.write(first);
  }

  /** The first `n` NUL-terminated fields, once they are in (fewer if the connection closed). */
  async fields(n: number): Promise<string[]> {
    const have = () => this.bytes.toString('latin1').split('\0').slice(0, -1);
    while (have().length < n && !this.closed) await new Promise<void>((r) => (this.wake = r));
    return have().slice(0, n);
  }

  /** The broker's answers after the first `n` fields. */
  async answers(n: number, count: number): Promise<Response[]> {
    const after = () => {
      const text = this.bytes.toString('latin1');
      let at = 0;
      for (let i = 0; i < n; i++) at = text.indexOf('\0', at) + 1;
      return new ResponseDecoder().push(this.bytes.subarray(at));
    };
    while (after().length < count && !this.closed) await new Promise<void>((r) => (this.wake = r));
    return after();
  }

  end(): void {
    this.socket.end();
  }
}

const field = (f: string) => Buffer.from(`${f}\0`);
const credentials = (service: string, user: TestUser, password = user.password) =>
  Buffer.concat([field(service), field('192.0.2.9'), field(user.name), field(password)]);
/** No broker command: the session child serves the broker protocol itself. */
const NO_COMMAND = Buffer.from([0]);

describe('PAM helper: a session process waits ahead of each login', enabled, () => {
  let fx: PamFixture;
  let traceLog: string;
  let service: string;
  let alice: TestUser;
  let launcher: BrokerLauncher;
  let backend: PamBackend;
  const helpers: ChildProcess[] = [];

  beforeAll(() => {
    if (!PAM_MODULE_DIR) throw new Error('no PAM module directory');
    fx = new PamFixture();
    traceLog = fx.traceLog('prefork');
    alice = fx.user();
    service = fx.service('prefork', [
      `auth required pam_pwdfile.so pwdfile=${fx.pwdfile}`,
      `auth optional ${fx.traceModule} log=${traceLog}`,
      'account required pam_unix.so',
      'session required pam_permit.so',
    ]);
    launcher = new BrokerLauncher({ storage: storage(), log: silentLogger() });
    backend = new PamBackend({
      service,
      brokerCommand: (id) => pamBrokerCommand(storage(), id),
      fixedBrokerCommand: [],
      log: silentLogger(),
    });
  });

  afterAll(async () => {
    for (const h of helpers) h.kill('SIGKILL');
    try {
      await backend?.close();
      await launcher?.close();
    } finally {
      fx?.cleanup();
    }
  });

  /** A full login through the backend, with the store opened and a call made through the broker. */
  async function login() {
    const outcome = ok(await backend.verifyPassword(alice.name, alice.password, ctx));
    const store = await launcher.open(outcome.identity, outcome.attached);
    await store.list();
    return { outcome, store };
  }

  /** The helper program started by hand, as pam-spawner.ts starts it. */
  async function startHelper(extra: string[] = []): Promise<{ helper: ChildProcess; socket: string }> {
    const socket = join(fx.dir, `helper-${helpers.length}.sock`);
    const helper = spawn(defaultPamHelperPath(), ['--listen', socket, ...extra], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    helpers.push(helper);
    await new Promise<void>((r) => helper.stdout.once('data', () => r()));
    return { helper, socket };
  }

  it('the waiting process has the service started before the login, and the login is served in it', async () => {
    const first = await login();
    await first.store.close();
    const spawner = backend.spawnerPid!;
    const waiting = await theOnlyChild(spawner);
    // The listener started the transaction; the waiting process has it by fork.
    expect(maps(spawner)).toContain('pam_pwdfile.so');
    expect(maps(waiting)).toContain('pam_pwdfile.so');

    const traced = fx.readTrace(traceLog).length;
    const { outcome, store } = await login();
    const authenticated = fx
      .readTrace(traceLog)
      .slice(traced)
      .filter((e) => e.what === 'authenticate');
    expect(authenticated.map((e) => e.pid)).toEqual([waiting]);
    // The broker is the child of that session process; the listener has forked the next one.
    expect(childPids(waiting)).toEqual([outcome.attached!.pid]);
    await until(() => childPids(spawner).length === 2);
    expect(childPids(spawner)).toContain(waiting);
    await store.close();
    const next = await theOnlyChild(spawner);
    expect(next).not.toBe(waiting);
  });

  it('a login maps no library the listener had not: the name services are loaded once, ahead', async () => {
    const { outcome, store } = await login();
    try {
      // The broker is forked from the session process after every lookup of the
      // login (pam_unix, getpwnam, initgroups): what it has mapped, the login loaded.
      const libraries = (pid: number) =>
        new Set(
          maps(pid)
            .split('\n')
            .map((line) => line.split(/\s+/)[5] ?? '')
            .filter((path) => /\.so(\.|$)/.test(path)),
        );
      const listener = libraries(backend.spawnerPid!);
      const broker = libraries(outcome.attached!.pid);
      expect(broker.size).toBeGreaterThan(0);
      expect([...broker].filter((library) => !listener.has(library))).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('a login works right after the waiting process was killed, and one waits again', async () => {
    const spawner = backend.spawnerPid!;
    for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
      const waiting = await theOnlyChild(spawner);
      process.kill(waiting, signal);
      const { store } = await login();
      await store.close();
      const next = await theOnlyChild(spawner);
      expect(next).not.toBe(waiting);
      expect(runningProcess(waiting)).toBe(false);
    }
  });

  it('never more than one waits: after a burst of concurrent logins exactly one is left', async () => {
    const spawner = backend.spawnerPid!;
    const sessions = await Promise.all(Array.from({ length: 8 }, () => login()));
    // Eight sessions, each a session process with its broker, and one waiting.
    await until(() => childPids(spawner).length === 9);
    await Promise.all(sessions.map((s) => s.store.close()));
    await theOnlyChild(spawner);
    await sleep(300);
    expect(childPids(spawner)).toHaveLength(1);
  });

  it('what the server sends right behind the credentials and command is left for the broker, and answered after the status', async () => {
    const { socket } = await startHelper(['--service', service]);
    const stat = encodeRequest(1, 'stat', [{ path: alice.home }]);
    const c = new RawLogin(socket, Buffer.concat([credentials(service, alice), NO_COMMAND, stat]));
    const fields = await c.fields(9);
    // "ok" is sent before the fork, the broker's pid by the broker before any answer.
    expect([fields[0], fields[2], fields[3], fields[7]]).toEqual(['helper', 'ok', alice.name, 'broker']);
    const [answer] = await c.answers(9, 1);
    expect([answer.id, answer.status]).toEqual([1, STATUS.ok]);
    c.end();
  });

  it('a login for another service than the one started ahead gets that service, and a changed configuration is read again', async () => {
    const deny = fx.service('prefork-deny', ['auth required pam_deny.so', 'account required pam_permit.so']);
    const changing = fx.service('prefork-changing', [
      `auth required pam_pwdfile.so pwdfile=${fx.pwdfile}`,
      'account required pam_permit.so',
      'session required pam_permit.so',
    ]);
    const { helper, socket } = await startHelper(['--service', changing, '--prime-max-age-ms', '200']);
    const status = async (svc: string) => {
      const c = new RawLogin(socket, Buffer.concat([credentials(svc, alice), NO_COMMAND]));
      const fields = await c.fields(3);
      c.end();
      return fields[2];
    };
    await theOnlyChild(helper.pid!);
    expect(await status(deny)).toBe('rejected');
    await theOnlyChild(helper.pid!);
    expect(await status(changing)).toBe('ok');
    await theOnlyChild(helper.pid!);
    writeFileSync(join('/etc/pam.d', changing), 'auth required pam_deny.so\naccount required pam_permit.so\n');
    await sleep(600); // past --prime-max-age-ms: the waiting process has read it again
    expect(await status(changing)).toBe('rejected');
  });

  it('none outlives the helper: the waiting one ends with it, a session already open goes on to its end', async () => {
    // The helper's stdin ends (the server closed it).
    const { helper, socket } = await startHelper(['--service', service]);
    const waiting = await theOnlyChild(helper.pid!);
    const session = new RawLogin(socket, Buffer.concat([credentials(service, alice), NO_COMMAND]));
    expect((await session.fields(9))[7]).toBe('broker');
    const sessionPid = Number((await session.fields(2))[1]);
    expect(sessionPid).toBe(waiting);
    const next = childPids(helper.pid!).find((p) => p !== sessionPid)!;
    helper.stdin!.end();
    await until(() => !runningProcess(helper.pid!) && !runningProcess(next));
    expect(runningProcess(sessionPid)).toBe(true);
    session.end();
    await until(() => !runningProcess(sessionPid));

    // The helper killed outright (SIGKILL: no clean-up of its own).
    const killed = await startHelper(['--service', service]);
    const idle = await theOnlyChild(killed.helper.pid!);
    killed.helper.kill('SIGKILL');
    await until(() => !runningProcess(idle));
  });
});
