/**
 * End to end: the real tsieved with `[storage] isolation = "process"` for userdb
 * (virtual) users. Each session's file system calls run in its own file broker,
 * spawned with the entry's uid/gid through token_command; files are owned by the
 * entry; a broker that dies fails only its own session with NO (TRYLATER); brokers
 * end with their sessions (LOGOUT, disconnect, idle timeout, server shutdown).
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SieveTestClient } from '../helpers/client.js';
import { CLI, startTsieved, type RunningTsieved } from '../helpers/tsieved.js';
import { BROKER, ROOT, needs } from '../helpers/tools.js';
import { courierSha256 } from '../helpers/fixture.js';
import { until } from '../helpers/processes.js';

const USERS = [
  { name: 'ann@example.org', uid: 42101, password: 'ann-secret' },
  { name: 'ben@example.org', uid: 42102, password: 'ben-secret' },
] as const;

const gone = (pid: number) => !existsSync(`/proc/${pid}`);

describe('isolation = "process" with userdb users', needs(ROOT, BROKER), () => {
  let dir: string;
  let homes: string;
  let server: RunningTsieved;
  const home = (name: string) => join(homes, name.split('@')[0]);

  function toml(extra = ''): string {
    return `
[server]
listen = ["127.0.0.1:0"]
auth_failure_delay_ms = 50
${extra}
[auth]
backend = "userdb"
userdb = "${join(dir, 'userdb')}"
allow_plaintext = true
[storage]
scripts_dir = "{home}/sieve"
filter_path = "{home}/.forward"
roots = ["${homes}"]
isolation = "process"
token_command = ["/usr/bin/env", "TSIEVED_TOKEN_USER={user}"]
[sieve]
capabilities = ["fileinto", "envelope"]
[log]
level = "info"
`;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsieved-isolation-'));
    chmodSync(dir, 0o755);
    homes = join(dir, 'homes');
    mkdirSync(homes, { mode: 0o755 });
    const lines = USERS.map((u) => {
      mkdirSync(home(u.name), { mode: 0o700 });
      chownSync(home(u.name), u.uid, u.uid);
      return `${u.name}\tuid=${u.uid}|gid=${u.uid}|home=${home(u.name)}|systempw=${courierSha256(u.password)}`;
    });
    writeFileSync(join(dir, 'userdb'), lines.join('\n') + '\n', { mode: 0o600 });
    server = await startTsieved(toml());
  }, 30_000);

  afterAll(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function login(srv: RunningTsieved, u: (typeof USERS)[number]) {
    const client = await SieveTestClient.connect(srv.port);
    const response = await client.authenticatePlain(u.name, u.password);
    expect(response.status).toBe('OK');
    return client;
  }

  /** Broker pids the server has logged for a user so far (logs are asynchronous: wait for them). */
  function brokerPids(srv: RunningTsieved, user: string): number[] {
    return srv
      .logLines()
      .filter((l) => l.event === 'file-broker' && l.user === user)
      .map((l) => Number(l.brokerPid));
  }

  /** Logs in and returns the client with the pid of the broker started for this login. */
  async function loginWithBroker(srv: RunningTsieved, u: (typeof USERS)[number]) {
    const before = brokerPids(srv, u.name).length;
    const client = await login(srv, u);
    await until(() => brokerPids(srv, u.name).length > before);
    return { client, pid: brokerPids(srv, u.name)[before] };
  }

  it("runs the file broker with the entry uid/gid, through token_command, and files are the user's", async () => {
    const [ann] = USERS;
    const { client, pid } = await loginWithBroker(server, ann);
    const big = Buffer.from('keep;\r\n' + '#'.repeat(1024 * 1024 - 300) + '\r\n');
    expect((await client.putScript('big', big)).status).toBe('OK');
    expect((await client.putScript('rules', 'require "fileinto";\r\nfileinto "x";\r\n')).status).toBe('OK');
    expect((await client.command('SETACTIVE "rules"')).status).toBe('OK');
    expect((await client.getScript('big')).content?.equals(big)).toBe(true);
    for (const p of [
      join(home(ann.name), 'sieve'),
      join(home(ann.name), 'sieve', 'rules.sieve'),
      join(home(ann.name), '.forward'),
    ]) {
      const st = statSync(p);
      expect([p, st.uid, st.gid]).toEqual([p, ann.uid, ann.uid]);
    }
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    expect(status).toMatch(new RegExp(`^Uid:\\s+${ann.uid}\\s+${ann.uid}\\s+${ann.uid}\\s+${ann.uid}$`, 'm'));
    expect(status).toMatch(new RegExp(`^Gid:\\s+${ann.uid}\\s+${ann.uid}\\s+${ann.uid}\\s+${ann.uid}$`, 'm'));
    expect(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')).toContain(`TSIEVED_TOKEN_USER=${ann.name}`);
    expect((await client.command('LOGOUT')).status).toBe('OK');
    client.close();
    await until(() => gone(pid));
  });

  it('validates scripts in the server: errors with their line, and still answers CHECKSCRIPT once the broker is gone', async () => {
    const [ann] = USERS;
    const { client, pid } = await loginWithBroker(server, ann);
    const bad = await client.putScript('bad', 'keep;\r\nreject "no";\r\n');
    expect(bad.status).toBe('NO');
    expect(bad.text).toMatch(/line 2/);
    expect((await client.command('CHECKSCRIPT "keep;"')).statusLine).toBe('OK');
    process.kill(pid, 'SIGKILL');
    await until(() => gone(pid));
    // CHECKSCRIPT touches no file; storing does, and fails with TRYLATER.
    expect((await client.command('CHECKSCRIPT "keep;"')).statusLine).toBe('OK');
    expect((await client.putScript('after', 'keep;\r\n')).code).toBe('TRYLATER');
    client.close();
  });

  it('a dead broker fails its own session with TRYLATER and leaves others alone', async () => {
    const [ann, ben] = USERS;
    const { client: a, pid: annPid } = await loginWithBroker(server, ann);
    const b = await login(server, ben);
    process.kill(annPid, 'SIGKILL');
    await until(() => gone(annPid));
    const failed = await a.putScript('after', 'keep;\r\n');
    expect(failed.status).toBe('NO');
    expect(failed.code).toBe('TRYLATER');
    expect((await a.command('NOOP')).status).toBe('OK');
    expect((await b.putScript('fine', 'keep;\r\n')).status).toBe('OK');
    expect(statSync(join(home(ben.name), 'sieve', 'fine.sieve')).uid).toBe(ben.uid);
    a.close();
    expect((await b.command('LOGOUT')).status).toBe('OK');
    b.close();
  });

  it('a dropped connection ends its broker', async () => {
    const [, ben] = USERS;
    const { client: b, pid } = await loginWithBroker(server, ben);
    expect((await b.command('LISTSCRIPTS')).status).toBe('OK');
    expect(gone(pid)).toBe(false);
    b.close();
    await until(() => gone(pid));
  });

  it('refuses to start without the privilege to switch users, saying why', () => {
    const file = join(dir, 'unprivileged.toml');
    writeFileSync(
      file,
      toml().replace(`userdb = "${join(dir, 'userdb')}"`, `userdb = "${join(dir, 'userdb-public')}"`),
    );
    writeFileSync(join(dir, 'userdb-public'), '', { mode: 0o644 });
    chmodSync(file, 0o644);
    const r = spawnSync(process.execPath, [CLI, 'serve', '--config', file], {
      uid: 65534,
      gid: 65534,
      cwd: '/',
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/isolation = "process".*needs root/s);
  });

  it('the idle timeout and server shutdown end brokers', async () => {
    const idleServer = await startTsieved(toml('idle_timeout_seconds = 1\nshutdown_grace_seconds = 1'));
    try {
      const [ann, ben] = USERS;
      const { client: a, pid: idlePid } = await loginWithBroker(idleServer, ann);
      // The server arms the post-login idle timer on the next command.
      expect((await a.command('NOOP')).status).toBe('OK');
      await a.waitClosed(10_000);
      await until(() => gone(idlePid));
      const { client: b, pid: shutdownPid } = await loginWithBroker(idleServer, ben);
      expect(gone(shutdownPid)).toBe(false);
      await idleServer.stop();
      await until(() => gone(shutdownPid));
      b.close();
    } finally {
      // stop() of the test helper would wait forever on a process that already exited by a signal.
      if (idleServer.process.exitCode === null && idleServer.process.signalCode === null) await idleServer.stop();
    }
  }, 30_000);
});
