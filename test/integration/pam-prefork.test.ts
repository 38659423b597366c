/**
 * The PAM helper's waiting session process: forked before a login arrives, with
 * pam_start for the service already made, it takes the next login; the listener
 * then forks the next one. The server connects ahead too (pam-spawner.ts): once
 * logins come, one of those session processes has accepted the server's spare
 * connection and waits for its credentials. Real PAM (pam_pwdfile), through
 * PamBackend and through the helper program driven by hand: one waits at a time
 * besides the spare, killed ones are replaced and logins go on meanwhile, none
 * outlives the helper, a changed PAM configuration is read again (also by a
 * connection waiting for its credentials), and what follows the credentials on
 * the connection reaches the broker.
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

/**
 * The helper's children once no session is open and logins have come: the spare
 * connection's session process and the one waiting to accept, neither with a broker.
 */
async function theWaiting(parent: number): Promise<number[]> {
  await until(() => {
    const children = childPids(parent);
    return children.length === 2 && children.every((c) => childPids(c).length === 0);
  });
  return childPids(parent);
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
    if (first.length > 0) this.socket.write(first);
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
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
  async function startHelper(
    extra: string[] = [],
  ): Promise<{ helper: ChildProcess; socket: string; stderr: () => string }> {
    const socket = join(fx.dir, `helper-${helpers.length}.sock`);
    const helper = spawn(defaultPamHelperPath(), ['--listen', socket, ...extra], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    helpers.push(helper);
    let logged = '';
    helper.stderr.on('data', (d: Buffer) => {
      logged += d.toString();
      process.stderr.write(d);
    });
    await new Promise<void>((r) => helper.stdout.once('data', () => r()));
    return { helper, socket, stderr: () => logged };
  }

  it('the waiting process has the service started before the login, and the login is served in it', async () => {
    const first = await login();
    await first.store.close();
    const spawner = backend.spawnerPid!;
    const waiting = await theWaiting(spawner);
    // The listener started the transaction; the waiting processes have it by fork.
    expect(maps(spawner)).toContain('pam_pwdfile.so');
    for (const pid of waiting) expect(maps(pid)).toContain('pam_pwdfile.so');

    const traced = fx.readTrace(traceLog).length;
    const { outcome, store } = await login();
    const authenticated = fx
      .readTrace(traceLog)
      .slice(traced)
      .filter((e) => e.what === 'authenticate')
      .map((e) => e.pid);
    // Served in the spare connection's process, one of those that waited.
    expect(authenticated).toHaveLength(1);
    const servedIn = authenticated[0];
    expect(waiting).toContain(servedIn);
    // The broker is the child of that session process; the other waiting one took
    // the next spare connection and the listener forked another to accept.
    expect(childPids(servedIn)).toEqual([outcome.attached!.pid]);
    await until(() => childPids(spawner).length === 3);
    expect(childPids(spawner)).toEqual(expect.arrayContaining(waiting));
    await store.close();
    const next = await theWaiting(spawner);
    expect(next).not.toContain(servedIn);
    expect(next).toContain(waiting.find((p) => p !== servedIn));
  });

  it('a login works right after the waiting processes were killed (the spare one too), and they wait again', async () => {
    const spawner = backend.spawnerPid!;
    for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
      const waiting = await theWaiting(spawner);
      for (const pid of waiting) process.kill(pid, signal);
      await until(() => waiting.every((pid) => !runningProcess(pid)));
      // At once: the server may not have seen its spare connection close yet.
      const { store } = await login();
      await store.close();
      const next = await theWaiting(spawner);
      expect(next.filter((p) => waiting.includes(p))).toEqual([]);
    }
  });

  it('never more than one waits besides the spare: after a burst of concurrent logins exactly two are left', async () => {
    const spawner = backend.spawnerPid!;
    const sessions = await Promise.all(Array.from({ length: 8 }, () => login()));
    // Eight sessions, each a session process with its broker, the spare and one waiting.
    await until(() => childPids(spawner).length === 10);
    await Promise.all(sessions.map((s) => s.store.close()));
    await theWaiting(spawner);
    await sleep(300);
    expect(childPids(spawner)).toHaveLength(2);
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

  it('a connection made ahead of its login reads a changed configuration while it waits, and one closed unused ends quietly', async () => {
    const changing = fx.service('prefork-ahead', [
      `auth required pam_pwdfile.so pwdfile=${fx.pwdfile}`,
      'account required pam_permit.so',
      'session required pam_permit.so',
    ]);
    const { helper, socket, stderr } = await startHelper(['--service', changing, '--prime-max-age-ms', '200']);
    await theOnlyChild(helper.pid!);
    const ahead = new RawLogin(socket, Buffer.alloc(0));
    expect((await ahead.fields(2))[0]).toBe('helper');
    writeFileSync(join('/etc/pam.d', changing), 'auth required pam_deny.so\naccount required pam_permit.so\n');
    await sleep(600); // past --prime-max-age-ms: the connected process has read it again
    ahead.send(Buffer.concat([credentials(changing, alice), NO_COMMAND]));
    expect((await ahead.fields(3))[2]).toBe('rejected');
    ahead.end();

    // The server lets a spare connection go (it stopped, or the process behind it
    // was replaced): not a failed login, nothing logged.
    const unused = new RawLogin(socket, Buffer.alloc(0));
    const unusedPid = Number((await unused.fields(2))[1]);
    expect(runningProcess(unusedPid)).toBe(true);
    unused.end();
    await until(() => !runningProcess(unusedPid));
    expect(stderr()).not.toContain(`[${unusedPid}]`);
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
