/**
 * Limits that protect the server, each proven over a real socket against the real
 * process: idle timeouts, failed-login limits and delays, connections per address,
 * a backend that cannot answer, and input trickled one byte at a time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SieveTestClient } from '../helpers/client.js';
import { ALICE, startFixture, type Fixture } from '../helpers/fixture.js';

describe('limits', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await startFixture({
      extra: {
        server:
          'login_timeout_seconds = 1\nmax_auth_failures = 2\nmax_connections_per_ip = 4\nauth_failure_delay_ms = 300',
      },
    });
  });
  afterAll(async () => fx?.stop());

  it('says BYE to a client idle before login', async () => {
    const c = await SieveTestClient.connect(fx.server.port);
    const r = await c.readResponse(5000);
    expect(r.status).toBe('BYE');
    await c.waitClosed();
  });

  it('delays a failed login for that connection only, and hangs up after too many', async () => {
    const c = await SieveTestClient.connect(fx.server.port);
    await c.startTls(fx.ca);
    const other = await SieveTestClient.connect(fx.server.port);
    const started = Date.now();
    const pending = c.authenticatePlain(ALICE.name, 'wrong');
    // Another session is answered while the failed login waits out its delay.
    const noopStarted = Date.now();
    expect((await other.command('NOOP "x"')).statusLine).toBe('OK (TAG "x")');
    const noopMs = Date.now() - noopStarted;
    expect((await pending).status).toBe('NO');
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(noopMs).toBeLessThan(250);
    expect((await c.authenticatePlain(ALICE.name, 'wrong again')).status).toBe('BYE');
    await c.waitClosed();
    other.close();
  });

  it('counts a cancelled exchange toward the failed-login limit, without an auth-failure line', async () => {
    const failures = (): number => fx.server.logLines().filter((l) => l.event === 'auth-failure').length;
    const failuresBefore = failures();
    const c = await SieveTestClient.connect(fx.server.port);
    await c.startTls(fx.ca);
    for (const expected of ['NO', 'BYE']) {
      c.write('AUTHENTICATE "LOGIN"\r\n');
      await c.readLine();
      c.write('"*"\r\n');
      expect((await c.readResponse()).status).toBe(expected);
    }
    await c.waitClosed();
    const cancels = fx.server.logLines().filter((l) => l.event === 'auth-cancelled');
    expect(cancels.length).toBeGreaterThanOrEqual(2);
    expect(failures()).toBe(failuresBefore);
  });

  it('refuses connections beyond the per-address limit with BYE', async () => {
    const clients = await Promise.all([0, 1, 2, 3].map(() => SieveTestClient.connect(fx.server.port)));
    const refused = await SieveTestClient.connect(fx.server.port);
    expect(refused.greeting.status).toBe('BYE');
    await refused.waitClosed();
    for (const c of clients) c.close();
    await new Promise((r) => setTimeout(r, 200));
    const again = await SieveTestClient.connect(fx.server.port);
    expect(again.greeting.statusLine).toBe('OK');
    again.close();
  });

  it('handles a session whose every byte arrives separately', async () => {
    const c = await SieveTestClient.connect(fx.server.port);
    await c.startTls(fx.ca);
    const ir = Buffer.from(`\0${ALICE.name}\0${ALICE.password}`).toString('base64');
    const script = 'require "fileinto";\r\nfileinto "x";\r\n';
    const input = `AUTHENTICATE "PLAIN" {${ir.length}+}\r\n${ir}\r\nPUTSCRIPT "t" {${script.length}+}\r\n${script}\r\nGETSCRIPT "t"\r\n`;
    for (const byte of Buffer.from(input)) {
      c.write(Buffer.from([byte]));
      await new Promise((r) => setImmediate(r));
    }
    expect((await c.readResponse()).statusLine).toBe('OK');
    expect((await c.readResponse()).statusLine).toBe('OK');
    const got = await c.readResponse();
    expect(got.rawLines[0]?.toString()).toBe(`{${script.length}}\r\n${script}`);
    c.close();
  });
});

describe('a backend that cannot answer', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await startFixture({ extra: { auth: '' } });
  });
  afterAll(async () => fx?.stop());

  it('answers NO (TRYLATER) when the userdb cannot be read, never "wrong password"', async () => {
    const { rmSync } = await import('node:fs');
    rmSync(`${fx.dir}/userdb`);
    const c = await SieveTestClient.connect(fx.server.port);
    await c.startTls(fx.ca);
    const r = await c.authenticatePlain(ALICE.name, ALICE.password);
    expect(r.status).toBe('NO');
    expect(r.code).toBe('TRYLATER');
    c.close();
  });
});

describe('a user whose storage is not set up', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await startFixture({ filterPath: '{home}/.public/.forward' });
  });
  afterAll(async () => fx?.stop());

  it('says the filter directory is missing instead of "try later", and keeps the script', async () => {
    const c = await SieveTestClient.connect(fx.server.port);
    await c.startTls(fx.ca);
    await c.authenticatePlain(ALICE.name, ALICE.password);
    expect((await c.putScript('rules', 'keep;\r\n')).statusLine).toBe('OK');
    const r = await c.command('SETACTIVE "rules"');
    expect(r.status).toBe('NO');
    expect(r.code).toBeUndefined();
    expect(r.text).toMatch(/directory for your mail filter does not exist/);
    expect((await c.command('LISTSCRIPTS')).lines).toEqual(['"rules"']);
    c.close();
  });
});
