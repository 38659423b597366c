/**
 * Limits across connections, over real sockets against the real server: sessions
 * per account, and the failed-login penalty shared by every connection from one
 * address (growing, waited out before the check, reset by a success).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SieveTestClient } from '../helpers/client.js';
import { ALICE, startFixture, type Fixture } from '../helpers/fixture.js';

describe('sessions per account', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await startFixture({ extra: { server: 'max_sessions_per_user = 2' } });
  });
  afterAll(async () => fx?.stop());

  async function session(): Promise<SieveTestClient> {
    const c = await SieveTestClient.connect(fx.server.port);
    await c.startTls(fx.ca);
    return c;
  }

  it('refuses a login beyond max_sessions_per_user with NO (TRYLATER), and allows it once one ends', async () => {
    const [a, b, c] = await Promise.all([session(), session(), session()]);
    expect((await a.authenticatePlain(ALICE.name, ALICE.password)).status).toBe('OK');
    expect((await b.authenticatePlain(ALICE.name, ALICE.password)).status).toBe('OK');
    const refused = await c.authenticatePlain(ALICE.name, ALICE.password);
    expect(refused.status).toBe('NO');
    expect(refused.code).toBe('TRYLATER');
    expect(refused.text).toMatch(/Too many sessions/);
    expect((await c.command('LISTSCRIPTS')).status).toBe('NO'); // still not logged in
    await fx.server.waitForLog(
      (l) => l.event === 'too-many-sessions' && l.user === ALICE.name && l.remote === '127.0.0.1',
    );
    expect((await a.command('LOGOUT')).status).toBe('OK');
    await a.waitClosed();
    expect((await c.authenticatePlain(ALICE.name, ALICE.password)).status).toBe('OK');
    // UNAUTHENTICATE gives the slot back too.
    expect((await b.command('UNAUTHENTICATE')).status).toBe('OK');
    const d = await session();
    expect((await d.authenticatePlain(ALICE.name, ALICE.password)).status).toBe('OK');
    for (const x of [b, c, d]) x.close();
  });
});

describe('failed-login penalty per address', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await startFixture({ extra: { server: 'auth_failure_delay_ms = 300\nmax_auth_failures = 1' } });
  });
  afterAll(async () => fx?.stop());

  /** One attempt on a fresh connection; the time until its answer. */
  async function attempt(password: string): Promise<{ status: string; ms: number }> {
    const c = await SieveTestClient.connect(fx.server.port);
    await c.startTls(fx.ca);
    const t0 = Date.now();
    const r = await c.authenticatePlain(ALICE.name, password);
    const ms = Date.now() - t0;
    c.close();
    return { status: r.status, ms };
  }

  it('spaces attempts from parallel connections, holds up a correct password too, and a success resets it', async () => {
    for (let i = 0; i < 3; i++) expect((await attempt('wrong')).status).toBe('BYE');
    // Three failures: each further attempt from this address gets its own turn,
    // 300 ms x 2^2 apart, on whatever connection it comes.
    const parallel = await Promise.all([0, 1, 2].map(() => attempt('wrong')));
    expect(Math.max(...parallel.map((p) => p.ms))).toBeGreaterThanOrEqual(2 * 1200);
    const penalties = fx.server.logLines().filter((l) => l.event === 'auth-penalty' && l.remote === '127.0.0.1');
    expect(penalties.length).toBeGreaterThanOrEqual(2);
    // A correct password waits for its turn as well (no early answer for a success).
    const good = await attempt(ALICE.password);
    expect(good.status).toBe('OK');
    expect(good.ms).toBeGreaterThanOrEqual(400);
    // The success cleared the address: a failure now costs only its own delay.
    const after = await attempt('wrong');
    expect(after.ms).toBeLessThan(1200);
  }, 60_000);
});
