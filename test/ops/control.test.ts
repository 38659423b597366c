/**
 * `tsieved who`, `tsieved kick` and `tsieved reload` as an administrator runs them
 * (the built CLI with --config), against a real server's control socket: the
 * sessions listed are the ones open, a kicked session gets BYE and is logged as
 * kicked, reload prints its outcome, and the socket is private to its owner.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { SieveTestClient } from '../helpers/client.js';
import { ALICE, BOB, startFixture, type Fixture } from '../helpers/fixture.js';
import { CLI } from '../helpers/tsieved.js';
import { ROOT, needs } from '../helpers/tools.js';

function tsieved(fx: Fixture, ...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args, '--config', fx.server.configFile], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

async function loggedIn(fx: Fixture, user = ALICE): Promise<SieveTestClient> {
  const c = await SieveTestClient.connect(fx.server.port);
  await c.startTls(fx.ca);
  expect((await c.authenticatePlain(user.name, user.password)).status).toBe('OK');
  return c;
}

describe('control socket: who, kick, reload', () => {
  let fx: Fixture | undefined;
  afterEach(async () => {
    await fx?.stop();
    fx = undefined;
  });

  it('lists the open sessions, with who, from where, since when, state and last command', async () => {
    fx = await startFixture();
    const socket = join(fx.dir, 'control.sock');
    const st = statSync(socket);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(process.getuid?.());

    const alice = await loggedIn(fx);
    await alice.command('LISTSCRIPTS');
    const anonymous = await SieveTestClient.connect(fx.server.port);
    const r = tsieved(fx, 'who', '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const sessions = JSON.parse(r.stdout) as Record<string, unknown>[];
    expect(sessions).toHaveLength(2);
    const a = sessions.find((s) => s.user === ALICE.name)!;
    expect(a).toMatchObject({
      remote: alice.clientField,
      state: 'authenticated',
      secure: true,
      lastCommand: 'LISTSCRIPTS',
    });
    expect(Date.now() - Date.parse(a.since as string)).toBeLessThan(60_000);
    expect(a.pid).toBeUndefined();
    expect(sessions.find((s) => s.user === undefined)).toMatchObject({
      remote: anonymous.clientField,
      state: 'non-authenticated',
      secure: false,
    });

    const table = tsieved(fx, 'who');
    expect(table.status).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^USER\s+CLIENT\s+SINCE\s+STATE\s+TLS\s+LAST COMMAND\s+PID$/);
    expect(lines.find((l) => l.startsWith(ALICE.name))).toMatch(/authenticated\s+yes\s+LISTSCRIPTS\s+-$/);
    alice.close();
    anonymous.close();
  });

  it('kicks by user and by address with BYE, and says when nothing matched', async () => {
    fx = await startFixture();
    const alice = await loggedIn(fx);
    const bob = await loggedIn(fx, BOB);
    const aliceField = alice.clientField;

    const k = tsieved(fx, 'kick', ALICE.name);
    expect(k).toMatchObject({ status: 0, stdout: '1 session ended\n' });
    const bye = await alice.readResponse();
    expect(bye.status).toBe('BYE');
    await alice.waitClosed();
    expect(await fx.server.waitForLog((l) => l.event === 'disconnect' && l.client === aliceField)).toMatchObject({
      reason: 'kicked',
      user: ALICE.name,
    });
    // Bob is still there.
    expect((await bob.command('NOOP')).status).toBe('OK');

    expect(tsieved(fx, 'kick', '127.0.0.1')).toMatchObject({ status: 0, stdout: '1 session ended\n' });
    expect((await bob.readResponse()).status).toBe('BYE');
    const none = tsieved(fx, 'kick', 'nobody@example.org');
    expect(none).toMatchObject({ status: 1, stdout: '0 sessions ended\n' });
    expect(tsieved(fx, 'kick').status).toBe(2);
  });

  it('reload prints the outcome, and a broken configuration keeps the running one', async () => {
    fx = await startFixture();
    expect(tsieved(fx, 'reload')).toMatchObject({ status: 0, stdout: 'configuration reloaded\n' });
    const good = readFileSync(fx.server.configFile, 'utf8');
    writeFileSync(fx.server.configFile, good.replace('[server]', '[server]\nno_such_key = 1'));
    const bad = tsieved(fx, 'reload');
    // The CLI reads the file too (for the socket path) and stops at the same error.
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('no_such_key');
    writeFileSync(fx.server.configFile, good.replace(/cert_file = "[^"]*"/, 'cert_file = "/nonexistent/cert.pem"'));
    const failed = tsieved(fx, 'reload');
    expect(failed.status).toBe(1);
    expect(failed.stderr).toMatch(/^tsieved: reload failed: .*\/nonexistent\/cert\.pem/);
    // Still serving with the old configuration.
    const c = await loggedIn(fx);
    c.close();
  });

  it('reload says which part it could not apply (a new listener on a taken port)', async () => {
    fx = await startFixture();
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
    const taken = (squatter.address() as { port: number }).port;
    try {
      const good = readFileSync(fx.server.configFile, 'utf8');
      writeFileSync(
        fx.server.configFile,
        good.replace('listen = ["127.0.0.1:0"]', `listen = ["127.0.0.1:0", "127.0.0.1:${taken}"]`),
      );
      const r = tsieved(fx, 'reload');
      expect(r.status).toBe(1);
      expect(r.stdout).toMatch(
        new RegExp(
          `^configuration reloaded, except \\(fix it, or restart\\):\n  listener 127\\.0\\.0\\.1:${taken}: .*EADDRINUSE`,
        ),
      );
      // The rest took effect: the old listener still serves.
      (await SieveTestClient.connect(fx.server.port)).close();
    } finally {
      squatter.close();
    }
  });

  it("shows the pid of an isolated session's storage process", needs(ROOT), async () => {
    fx = await startFixture({ extra: { storage: 'isolation = "process"', metrics: 'listen = "127.0.0.1:0"' } });
    // The worker runs as the entry's uid, which must not be root's.
    const home = fx.home(ALICE.name);
    chmodSync(fx.dir, 0o755); // mkdtemp's 0700 would keep the worker out
    chownSync(home, 42111, 42111);
    const userdb = join(fx.dir, 'userdb');
    writeFileSync(
      userdb,
      readFileSync(userdb, 'utf8').replace(/^(alice@example\.org\t)uid=\d+\|gid=\d+/m, '$1uid=42111|gid=42111'),
    );
    const alice = await loggedIn(fx);
    const sessions = JSON.parse(tsieved(fx, 'who', '--json').stdout) as Record<string, unknown>[];
    const pid = sessions[0].pid as number;
    expect(pid).toBeGreaterThan(1);
    expect(pid).not.toBe(fx.server.process.pid);
    expect(existsSync(`/proc/${pid}`)).toBe(true);
    // The same session counts as an isolated one in the metrics.
    const metricsPort = (await fx.server.waitForLog((l) => l.event === 'metrics-listening')).port as number;
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^tsieved_isolated_sessions 1$/m);
    alice.close();
  });
});
