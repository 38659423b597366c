/**
 * PROXY protocol on a listener: the address in a trusted proxy's header becomes the
 * session's remote address (logs, limits, fail2ban); an untrusted peer is refused.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixture, type Fixture } from '../helpers/fixture.js';

function rawSession(port: number, send: string): Promise<string> {
  return new Promise((resolve) => {
    let received = '';
    const socket = connect(port, '127.0.0.1', () => socket.write(send));
    socket.on('data', (d) => {
      received += d.toString();
      if (received.includes('OK (TAG "done")')) socket.end();
    });
    socket.on('close', () => resolve(received));
    socket.on('error', () => resolve(received));
    setTimeout(() => socket.destroy(), 5000);
  });
}

describe('PROXY protocol', () => {
  let trusted: Fixture;
  let untrusted: Fixture;
  beforeAll(async () => {
    const listeners = 'listen = [{ address = "127.0.0.1:0", proxy_protocol = true }]';
    trusted = await startFixture({ listeners, extra: { server: 'trusted_proxies = ["127.0.0.0/8"]' } });
    untrusted = await startFixture({ listeners, extra: { server: 'trusted_proxies = ["192.0.2.1"]' } });
  });
  afterAll(async () => {
    await trusted?.stop();
    await untrusted?.stop();
  });

  it("uses the client address from a trusted proxy's v1 header", async () => {
    const out = await rawSession(
      trusted.server.port,
      'PROXY TCP4 203.0.113.7 127.0.0.1 51000 4190\r\nFROB\r\nNOOP "done"\r\n',
    );
    expect(out).toContain('"IMPLEMENTATION"');
    expect(out).toContain('OK (TAG "done")');
    const line = await trusted.server.waitForLog((l) => l.event === 'command' && l.command === 'FROB');
    expect(line?.remote).toBe('203.0.113.7');
  });

  it('refuses a connection without a valid header', async () => {
    const out = await rawSession(trusted.server.port, 'NOOP "done"\r\n');
    expect(out).not.toContain('OK (TAG "done")');
  });

  it('refuses a header from an address that is not a trusted proxy', async () => {
    const out = await rawSession(
      untrusted.server.port,
      'PROXY TCP4 203.0.113.7 127.0.0.1 51000 4190\r\nNOOP "done"\r\n',
    );
    expect(out).toBe('');
    await untrusted.server.waitForLog((l) => l.event === 'untrusted-proxy');
  });
});
