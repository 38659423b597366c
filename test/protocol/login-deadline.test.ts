/**
 * Limits a slow client cannot trickle past: the login deadline counts from connect
 * whatever is sent (NOOPs, single bytes), a STARTTLS left without a handshake gets
 * no clear-text BYE, and a full server says BYE with a reason before hanging up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { SieveTestClient } from '../helpers/client.js';
import { ALICE, startFixture, type Fixture } from '../helpers/fixture.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('login deadline', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await startFixture({
      extra: { server: 'login_timeout_seconds = 2\nmax_connections = 4\nmax_connections_per_ip = 10' },
    });
  });
  afterAll(async () => fx?.stop());

  it('ends a connection sending a NOOP every 400 ms at the deadline, with BYE', async () => {
    const started = Date.now();
    const c = await SieveTestClient.connect(fx.server.port);
    let last;
    for (;;) {
      await sleep(400);
      last = await c.command('NOOP');
      if (last.status !== 'OK') break;
      expect(Date.now() - started).toBeLessThan(4000);
    }
    expect(last.status).toBe('BYE');
    expect(last.text).toMatch(/login took too long/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    await c.waitClosed();
  });

  it('ends a connection trickling one byte every 200 ms at the deadline', async () => {
    const started = Date.now();
    const c = await SieveTestClient.connect(fx.server.port);
    const bytes = Buffer.from('NOOP "trickle trickle trickle trickle"\r\n');
    for (const byte of bytes) {
      if (c.isClosed) break;
      c.write(Buffer.from([byte]));
      await sleep(200);
    }
    const r = await c.readResponse(3000);
    expect(r.status).toBe('BYE');
    await c.waitClosed();
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('does not apply once logged in', async () => {
    const c = await SieveTestClient.connect(fx.server.port);
    await c.startTls(fx.ca);
    expect((await c.authenticatePlain(ALICE.name, ALICE.password)).status).toBe('OK');
    await sleep(2500);
    expect((await c.command('NOOP')).status).toBe('OK');
    c.close();
  });

  it('sends nothing in clear after STARTTLS when the deadline passes before the handshake', async () => {
    const socket = connect({ port: fx.server.port, host: '127.0.0.1' });
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    await new Promise((r) => socket.once('connect', r));
    await sleep(200);
    socket.write('STARTTLS\r\n');
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('error', () => undefined);
    await closed;
    // Greeting, then STARTTLS's OK, and nothing after it.
    expect(received.trimEnd().split('\r\n').at(-1)).toMatch(/^OK/);
    expect(received).not.toContain('BYE');
  });

  it('says BYE with a reason when max_connections is reached', async () => {
    const clients = await Promise.all([0, 1, 2, 3].map(() => SieveTestClient.connect(fx.server.port)));
    const refused = await SieveTestClient.connect(fx.server.port);
    expect(refused.greeting.status).toBe('BYE');
    expect(refused.greeting.text).toMatch(/too many connections/);
    await refused.waitClosed();
    for (const c of clients) c.close();
    await sleep(200);
    const again = await SieveTestClient.connect(fx.server.port);
    expect(again.greeting.status).toBe('OK');
    again.close();
    await fx.server.waitForLog((l) => l.event === 'too-many-connections' && l.limit === 'max_connections');
  });

  it('still says BYE at max_connections after a reload (SIGHUP)', async () => {
    const reloads = () => fx.server.logLines().filter((l) => l.event === 'reloaded').length;
    const before = reloads();
    fx.server.process.kill('SIGHUP');
    for (let i = 0; i < 100 && reloads() === before; i++) await sleep(50);
    expect(reloads()).toBe(before + 1);
    const clients = await Promise.all([0, 1, 2, 3].map(() => SieveTestClient.connect(fx.server.port)));
    const refused = await SieveTestClient.connect(fx.server.port);
    expect(refused.greeting.status).toBe('BYE');
    expect(refused.greeting.text).toMatch(/too many connections/);
    for (const c of clients) c.close();
    refused.close();
  });
});
