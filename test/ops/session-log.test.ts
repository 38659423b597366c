/**
 * The session log against the real server: one `disconnect` line per connection
 * with duration, user, bytes, command count and why it ended (LOGOUT, idle, BYE
 * for a limit, client closed, shutdown), and one `auth-failure` line per refused
 * login with its class (bad password, unknown user, malformed SASL, policy), which
 * the shipped fail2ban filter (run through the real fail2ban-regex) still finds.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SieveTestClient } from '../helpers/client.js';
import { ALICE, courierSha256, startFixture, type Fixture } from '../helpers/fixture.js';
import { haveTools, tool } from '../helpers/tools.js';

type Line = Record<string, unknown>;

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

async function loggedIn(fx: Fixture): Promise<SieveTestClient> {
  const c = await SieveTestClient.connect(fx.server.port);
  await c.startTls(fx.ca);
  expect((await c.authenticatePlain(ALICE.name, ALICE.password)).statusLine).toBe('OK');
  return c;
}

/** Takes the client's address while its socket is open (a closed one has none). */
function disconnectOf(fx: Fixture, c: SieveTestClient | string): Promise<Line> {
  const client = typeof c === 'string' ? c : c.clientField;
  return fx.server.waitForLog((l) => l.event === 'disconnect' && l.client === client, 10_000);
}

describe('session log', () => {
  let fx: Fixture | undefined;
  afterEach(async () => {
    await fx?.stop();
    fx = undefined;
  });

  it('logs how a session ended: LOGOUT, client closed, BYE for a limit, idle', async () => {
    fx = await startFixture({ extra: { server: 'login_timeout_seconds = 1\nmax_bad_commands = 2' } });

    const a = await loggedIn(fx);
    const client = a.clientField;
    expect((await a.command('LISTSCRIPTS')).statusLine).toBe('OK');
    expect((await a.command('LOGOUT')).statusLine).toBe('OK');
    const logout = await disconnectOf(fx, a);
    expect(logout).toMatchObject({
      remote: '127.0.0.1',
      user: ALICE.name,
      reason: 'logout',
      commands: 4,
      msg: 'connection closed',
    });
    // STARTTLS, the handshake and the capability lines: well over a few hundred bytes each way.
    expect(logout.bytes_in as number).toBeGreaterThan(300);
    expect(logout.bytes_out as number).toBeGreaterThan(1000);
    expect(logout.seconds as number).toBeGreaterThanOrEqual(0);
    expect(logout.seconds as number).toBeLessThan(30);
    expect(client).toMatch(/^127\.0\.0\.1:\d+$/);

    const b = await loggedIn(fx);
    const bField = b.clientField;
    b.close();
    expect(await disconnectOf(fx, bField)).toMatchObject({ user: ALICE.name, reason: 'client-closed', commands: 2 });

    const c = await SieveTestClient.connect(fx.server.port);
    const cField = c.clientField;
    await c.command('BOGUS');
    expect((await c.command('BOGUS')).status).toBe('BYE');
    await c.waitClosed();
    expect(await disconnectOf(fx, cField)).toMatchObject({ user: '', reason: 'limit', commands: 2 });

    const d = await SieveTestClient.connect(fx.server.port);
    const dField = d.clientField;
    await d.waitClosed(5000);
    expect(await disconnectOf(fx, dField)).toMatchObject({ user: '', reason: 'idle', commands: 0 });
  });

  it('logs sessions closed by a shutdown as such', async () => {
    fx = await startFixture({ extra: { server: 'shutdown_grace_seconds = 0' } });
    const a = await loggedIn(fx);
    const aField = a.clientField;
    fx.server.process.kill('SIGTERM');
    await a.waitClosed();
    expect(await disconnectOf(fx, aField)).toMatchObject({ user: ALICE.name, reason: 'shutdown' });
  });

  it('classes every refused login, and fail2ban finds each of them', async () => {
    fx = await startFixture();
    const uid = process.getuid?.() ?? 1000;
    const gid = process.getgid?.() ?? 1000;
    const home = fx.home('locked@example.org');
    mkdirSync(home, { recursive: true });
    // A locked account ("!" before the hash, as usermod -L does): the right password is refused by policy.
    appendFileSync(
      join(fx.dir, 'userdb'),
      `locked@example.org\tuid=${uid}|gid=${gid}|home=${home}|systempw=!${courierSha256('pw')}\n`,
    );

    const attempts: [string, string][] = [
      [`AUTHENTICATE "PLAIN" "${b64(`\0${ALICE.name}\0wrong`)}"`, 'bad-password'],
      [`AUTHENTICATE "PLAIN" "${b64('\0nobody@example.org\0pw')}"`, 'unknown-user'],
      ['AUTHENTICATE "PLAIN" "not base64!"', 'malformed'],
      [`AUTHENTICATE "PLAIN" "${b64('\0locked@example.org\0pw')}"`, 'policy'],
    ];
    for (const [line, cls] of attempts) {
      const c = await SieveTestClient.connect(fx.server.port);
      await c.startTls(fx.ca);
      expect((await c.command(line)).status).toBe('NO');
      c.close();
      const failure = await fx.server.waitForLog((l) => l.event === 'auth-failure' && l.class === cls);
      expect(failure).toMatchObject({ remote: '127.0.0.1', msg: 'authentication failed' });
    }
    const failures = fx.server
      .logs()
      .split('\n')
      .filter((l) => l.includes('"event":"auth-failure"'));
    expect(failures).toHaveLength(4);
    // The reasons in the log tell the operator more than the class (never the password).
    expect(failures.join('\n')).not.toContain('wrong"');

    if (!haveTools('fail2ban-regex')) return;
    const dir = mkdtempSync(join(tmpdir(), 'tsieved-f2b-log-'));
    try {
      mkdirSync(join(dir, 'filter.d'));
      copyFileSync(
        resolve(__dirname, '../../contrib/fail2ban/filter.d/tsieved.conf'),
        join(dir, 'filter.d', 'tsieved.conf'),
      );
      copyFileSync('/etc/fail2ban/filter.d/common.conf', join(dir, 'filter.d', 'common.conf'));
      // The whole log, disconnect lines and all: only the four failures may match.
      writeFileSync(join(dir, 'server.log'), fx.server.logs());
      const out = execFileSync(
        tool('fail2ban-regex'),
        ['-o', 'row', join(dir, 'server.log'), join(dir, 'filter.d', 'tsieved.conf')],
        { encoding: 'utf8' },
      );
      const hosts = out
        .split('\n')
        .filter((l) => l.startsWith('['))
        .map((l) => /^\['([^']+)'/.exec(l)?.[1]);
      expect(hosts).toEqual(['127.0.0.1', '127.0.0.1', '127.0.0.1', '127.0.0.1']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
