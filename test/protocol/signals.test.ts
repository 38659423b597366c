/**
 * Service behaviour on signals, against the real process: SIGHUP reloads the
 * configuration without dropping sessions (and keeps the old one when the new one
 * is broken), and makes the listeners match the new `listen` (new ones bound,
 * removed ones closed with their sessions going on, changed ones bound again, a
 * bind that fails named in the log line); SIGTERM stops accepting, lets sessions
 * finish, then says BYE.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { freePort } from '../server-proxy/haproxy.js';
import { afterEach, describe, expect, it } from 'vitest';
import { SieveTestClient } from '../helpers/client.js';
import { ALICE, startFixture, type Fixture } from '../helpers/fixture.js';

const waitFor = async (predicate: () => boolean, ms = 5000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe('signals', () => {
  let fx: Fixture | undefined;
  afterEach(async () => {
    await fx?.stop();
    fx = undefined;
  });

  it('SIGHUP applies a new configuration to new sessions and keeps running ones', async () => {
    fx = await startFixture();
    const { server } = fx;
    const before = await SieveTestClient.connect(server.port);
    await before.startTls(fx.ca);
    expect((await before.authenticatePlain(ALICE.name, ALICE.password)).statusLine).toBe('OK');

    const config = readFileSync(server.configFile, 'utf8');
    writeFileSync(
      server.configFile,
      config.replace(/capabilities = \[[^\]]*\]/, 'capabilities = ["fileinto", "envelope"]'),
    );
    server.process.kill('SIGHUP');
    await waitFor(() => server.logLines().some((l) => l.event === 'reloaded'));

    const after = await SieveTestClient.connect(server.port);
    expect(after.greeting.lines).toContain('"SIEVE" "fileinto envelope"');
    expect((await before.command('NOOP "still"')).statusLine).toBe('OK (TAG "still")');
    before.close();
    after.close();

    writeFileSync(server.configFile, config + '\n[bogus]\nkey = 1\n');
    server.process.kill('SIGHUP');
    await waitFor(() => server.logLines().some((l) => l.event === 'reload-failed'));
    const still = await SieveTestClient.connect(server.port);
    expect(still.greeting.lines).toContain('"SIEVE" "fileinto envelope"');
    still.close();
  });

  it('SIGHUP binds new listeners, closes removed ones (their sessions finish), rebinds changed ones', async () => {
    const [a, b, c] = [await freePort(), await freePort(), await freePort()];
    const listen = (entries: string[]): string => `listen = [${entries.join(', ')}]`;
    fx = await startFixture({ listeners: listen([`"127.0.0.1:${a}"`, `"127.0.0.1:${b}"`]) });
    const { server } = fx;
    const onA = await SieveTestClient.connect(a);
    const onB = await SieveTestClient.connect(b);
    // Before: STARTTLS only, no mechanism offered in the clear.
    expect(onA.greeting.lines).toContain('"SASL" ""');
    await onB.startTls(fx.ca);
    expect((await onB.authenticatePlain(ALICE.name, ALICE.password)).statusLine).toBe('OK');

    const config = readFileSync(server.configFile, 'utf8');
    const next = config.replace(
      listen([`"127.0.0.1:${a}"`, `"127.0.0.1:${b}"`]),
      listen([`{ address = "127.0.0.1:${a}", allow_plaintext = true }`, `"127.0.0.1:${c}"`]),
    );
    expect(next).not.toBe(config);
    writeFileSync(server.configFile, next);
    server.process.kill('SIGHUP');
    const line = await server.waitForLog((l) => l.event === 'reloaded', 20_000);
    expect(line).toMatchObject({
      listenersBound: [`127.0.0.1:${c}`],
      listenersClosed: [`127.0.0.1:${b}`],
      listenersRebound: [`127.0.0.1:${a}`],
    });
    expect(line.notApplied).toBeUndefined();

    // Removed: no new connections, but the session opened there goes on.
    await expect(SieveTestClient.connect(b)).rejects.toThrow(/ECONNREFUSED/);
    expect((await onB.command('NOOP "on b"')).statusLine).toBe('OK (TAG "on b")');
    expect((await onB.command('LISTSCRIPTS')).status).toBe('OK');
    // Changed: bound again with the new options.
    const againA = await SieveTestClient.connect(a);
    expect(againA.greeting.lines.find((l) => l.startsWith('"SASL"'))).toMatch(/PLAIN/);
    expect((await onA.command('NOOP')).status).toBe('OK');
    // New.
    const onC = await SieveTestClient.connect(c);
    expect(onC.greeting.lines.some((l) => l.startsWith('"IMPLEMENTATION"'))).toBe(true);
    for (const client of [onA, onB, againA, onC]) client.close();

    // An address that cannot be bound is named in the line; the rest still applies.
    const squatter = createServer();
    const d = await freePort();
    await new Promise<void>((r) => squatter.listen(d, '127.0.0.1', () => r()));
    try {
      writeFileSync(server.configFile, next.replace(`"127.0.0.1:${c}"`, `"127.0.0.1:${d}"`));
      server.process.kill('SIGHUP');
      const partial = await server.waitForLog((l) => l.event === 'reloaded' && l.notApplied !== undefined, 20_000);
      expect(partial.level).toBe(40);
      expect(partial.notApplied).toEqual([
        expect.stringMatching(new RegExp(`^listener 127\\.0\\.0\\.1:${d}: .*EADDRINUSE`)),
      ]);
      expect(String(partial.msg)).toContain(`127.0.0.1:${d}`);
      expect(partial.listenersClosed).toEqual([`127.0.0.1:${c}`]);
      await expect(SieveTestClient.connect(c)).rejects.toThrow(/ECONNREFUSED/);
      (await SieveTestClient.connect(a)).close();
    } finally {
      squatter.close();
    }
  });

  it('SIGTERM stops accepting, lets a running session finish its work, then closes it with BYE', async () => {
    fx = await startFixture({ extra: { server: 'shutdown_grace_seconds = 2' } });
    const { server } = fx;
    const session = await SieveTestClient.connect(server.port);
    await session.startTls(fx.ca);
    await session.authenticatePlain(ALICE.name, ALICE.password);
    const exited = new Promise<number | null>((r) => server.process.once('exit', (code) => r(code)));
    server.process.kill('SIGTERM');
    await waitFor(() => server.logLines().some((l) => l.event === 'stopping'));
    await new Promise((r) => setTimeout(r, 200));
    const refused = await new Promise<boolean>((resolve) => {
      const s = connect(server.port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(false);
      });
      s.once('error', () => resolve(true));
    });
    expect(refused).toBe(true);
    expect((await session.putScript('late', 'keep;\r\n')).statusLine).toBe('OK');
    const bye = await session.readResponse(5000);
    expect(bye.status).toBe('BYE');
    expect(await exited).toBe(0);
  });
});
