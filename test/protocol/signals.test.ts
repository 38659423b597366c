/**
 * Service behaviour on signals, against the real process: SIGHUP reloads the
 * configuration without dropping sessions (and keeps the old one when the new one
 * is broken); SIGTERM stops accepting, lets sessions finish, then says BYE.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
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
    writeFileSync(server.configFile, config.replace(/capabilities = \[[^\]]*\]/, 'capabilities = ["fileinto", "envelope"]'));
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
