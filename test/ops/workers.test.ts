/**
 * `[server] workers = 2` against the real server: the workers share the listener,
 * the connection limit per address holds across them (the primary counts), `who`
 * and /metrics answer for both, SIGHUP reloads both, and a worker killed with
 * SIGKILL is replaced while the other worker's sessions go on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { SieveTestClient } from '../helpers/client.js';
import { ALICE, startFixture, type Fixture } from '../helpers/fixture.js';
import { CLI } from '../helpers/tsieved.js';
import { childPids } from '../helpers/processes.js';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

function who(fx: Fixture): Record<string, unknown>[] {
  const r = spawnSync(process.execPath, [CLI, 'who', '--json', '--config', fx.server.configFile], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`who failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>[];
}

async function login(fx: Fixture): Promise<SieveTestClient> {
  const c = await SieveTestClient.connect(fx.server.port);
  await c.startTls(fx.ca);
  const r = await c.command(`AUTHENTICATE "PLAIN" "${b64(`\0${ALICE.name}\0${ALICE.password}`)}"`);
  expect(r.status).toBe('OK');
  return c;
}

const waitFor = async (predicate: () => boolean, ms = 15_000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe.skipIf(process.platform !== 'linux')('two workers', () => {
  let fx: Fixture;
  let metricsPort: number;
  beforeAll(async () => {
    fx = await startFixture({
      extra: {
        server: 'workers = 2\nmax_connections_per_ip = 4\nshutdown_grace_seconds = 1',
        metrics: 'listen = "127.0.0.1:0"',
      },
    });
    await waitFor(() => fx.server.logLines().some((l) => l.event === 'cluster-ready'));
    metricsPort = (await fx.server.waitForLog((l) => l.event === 'metrics-listening')).port as number;
  }, 60_000);
  afterAll(async () => fx?.stop());

  it('shares the listener, counts the per-address limit across workers, and answers who and /metrics for both', async () => {
    const sessions = [await login(fx), await login(fx), await login(fx), await login(fx)];
    // A fifth connection from 127.0.0.1 is over the limit, whichever worker gets it.
    const fifth = await SieveTestClient.connect(fx.server.port).catch(() => undefined);
    if (fifth) {
      expect(fifth.greeting.status).toBe('BYE');
      expect(fifth.greeting.text).toContain('too many connections from your address');
    }
    const listed = who(fx);
    expect(listed).toHaveLength(4);
    expect(new Set(listed.map((s) => s.worker))).toEqual(new Set([1, 2]));
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^tsieved_logins_total\{backend="userdb",mechanism="PLAIN",outcome="success"\} 4$/m);
    expect(metrics).toMatch(/^tsieved_sessions_authenticated 4$/m);
    expect(metrics).toMatch(/^tsieved_connections_refused_total\{reason="per-ip-limit"\} 1$/m);
    for (const s of sessions) s.close();
    await waitFor(() => who(fx).length === 0);
  });

  it('reloads every worker on SIGHUP', async () => {
    const config = readFileSync(fx.server.configFile, 'utf8');
    writeFileSync(
      fx.server.configFile,
      config.replace(/capabilities = \[[^\]]*\]/, 'capabilities = ["fileinto", "envelope"]'),
    );
    fx.server.process.kill('SIGHUP');
    // One `reloaded` line, from the primary, once both workers have reloaded.
    await waitFor(() => fx.server.logLines().some((l) => l.event === 'reloaded'));
    expect(fx.server.logLines().find((l) => l.event === 'reloaded')).toMatchObject({ workers: 2 });
    expect(fx.server.logLines().filter((l) => l.event === 'worker-reloaded')).toHaveLength(2);
    // Round robin: two connections in a row reach both workers.
    for (let i = 0; i < 4; i++) {
      const c = await SieveTestClient.connect(fx.server.port);
      expect(c.greeting.lines).toContain('"SIEVE" "fileinto envelope"');
      c.close();
    }
    writeFileSync(fx.server.configFile, config);
  });

  it("replaces a killed worker without dropping the other worker's sessions", async () => {
    const a = await login(fx);
    const b = await login(fx);
    const listed = who(fx);
    expect(new Set(listed.map((s) => s.worker)).size).toBe(2);
    const pids = childPids(fx.server.process.pid!);
    expect(pids).toHaveLength(2);
    const readyBefore = fx.server.logLines().filter((l) => l.event === 'worker-ready').length;
    process.kill(pids[0], 'SIGKILL');
    await waitFor(() => fx.server.logLines().filter((l) => l.event === 'worker-ready').length > readyBefore);
    // One of the two sessions lived on the killed worker; the other still works.
    const alive = [];
    for (const c of [a, b]) {
      const r = await c.command('NOOP').catch(() => undefined);
      if (r?.status === 'OK') alive.push(c);
    }
    expect(alive).toHaveLength(1);
    // The dead worker's connection slots were given back: four new logins fit beside the survivor... up to the limit.
    const more = [await login(fx), await login(fx), await login(fx)];
    expect(who(fx)).toHaveLength(4);
    for (const c of [a, b, ...more]) c.close();
    await waitFor(() => who(fx).length === 0);
  });

  it('drains every worker on SIGTERM: sessions finish their command, get BYE, and the server exits 0', async () => {
    const sessions = [await login(fx), await login(fx)];
    const fields = sessions.map((s) => s.clientField);
    const exited = new Promise<number | null>((r) => fx.server.process.once('exit', (code) => r(code)));
    fx.server.process.kill('SIGTERM');
    await waitFor(() => fx.server.logLines().filter((l) => l.event === 'stopping').length >= 3);
    for (const s of sessions) expect((await s.putScript('late', 'keep;\r\n')).status).toBe('OK');
    for (const s of sessions) expect((await s.readResponse(5000)).status).toBe('BYE');
    expect(await exited).toBe(0);
    for (const client of fields) {
      expect(fx.server.logLines().find((l) => l.event === 'disconnect' && l.client === client)).toMatchObject({
        reason: 'shutdown',
      });
    }
  });
});

/** A connection through a (pretend) trusted proxy: PROXY v1 header, then a command. */
function proxied(port: number, source: string, command: string): Promise<{ socket: Socket; text: () => string }> {
  return new Promise((resolve, reject) => {
    let received = '';
    const socket = connect(port, '127.0.0.1', () =>
      socket.write(`PROXY TCP4 ${source} 127.0.0.1 40000 4190\r\n${command}\r\n`),
    );
    socket.on('data', (d) => {
      received += d.toString();
      if (received.includes('(TAG "') || received.startsWith('BYE')) resolve({ socket, text: () => received });
    });
    socket.on('error', reject);
    setTimeout(() => resolve({ socket, text: () => received }), 5000);
  });
}

describe.skipIf(process.platform !== 'linux')('two workers behind a PROXY-protocol listener', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await startFixture({
      listeners: 'listen = [{ address = "127.0.0.1:0", proxy_protocol = true }]',
      extra: { server: 'workers = 2\ntrusted_proxies = ["127.0.0.0/8"]\nmax_connections_per_ip = 2' },
    });
    await waitFor(() => fx.server.logLines().some((l) => l.event === 'cluster-ready'));
  }, 60_000);
  afterAll(async () => fx?.stop());

  it('takes the client address from the header in every worker, and limits per header address across workers', async () => {
    const held = [];
    for (const source of ['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.4']) {
      const c = await proxied(fx.server.port, source, 'NOOP "hello"');
      expect(c.text()).toContain('OK (TAG "hello")');
      held.push(c.socket);
    }
    const who = spawnSync(process.execPath, [CLI, 'who', '--json', '--config', fx.server.configFile], {
      encoding: 'utf8',
    });
    const sessions = JSON.parse(who.stdout) as { remote: string; worker: number }[];
    expect(sessions.map((s) => s.remote.replace(/:\d+$/, '')).sort()).toEqual([
      '203.0.113.1',
      '203.0.113.2',
      '203.0.113.3',
      '203.0.113.4',
    ]);
    expect(new Set(sessions.map((s) => s.worker))).toEqual(new Set([1, 2]));
    // Two from one client address fill its quota, whichever workers they reach; the third is refused.
    for (let i = 0; i < 2; i++) held.push((await proxied(fx.server.port, '198.51.100.9', 'NOOP "x"')).socket);
    const third = await proxied(fx.server.port, '198.51.100.9', 'NOOP "x"');
    expect(third.text()).toMatch(/^BYE .*too many connections from your address/);
    for (const s of [...held, third.socket]) s.destroy();
  });

  it('ends a session whose client half-closed while the primary was deciding its admission', async () => {
    // The header and the FIN arrive together, so the socket's end comes before the
    // primary's answer: the session must still see it (not wait for the login timeout).
    for (const source of ['192.0.2.7', '192.0.2.8']) {
      const closed = await new Promise<string>((resolve, reject) => {
        let received = '';
        const socket = connect(fx.server.port, '127.0.0.1', () =>
          socket.end(`PROXY TCP4 ${source} 127.0.0.1 40000 4190\r\n`),
        );
        socket.on('data', (d) => (received += d.toString()));
        socket.on('close', () => resolve(received));
        socket.on('error', reject);
      });
      expect(closed).toMatch(/^"IMPLEMENTATION"/);
      const line = await fx.server.waitForLog((l) => l.event === 'disconnect' && l.remote === source, 10_000);
      expect(line.reason).toBe('client-closed');
    }
  });
});
