/**
 * Listener changes on SIGHUP with `[server] workers = 2`, against the real server.
 * With node:cluster a worker's listen() and close() go through the primary, which
 * owns the listening socket and closes it once no worker listens on it any more:
 * so a removed address must stop accepting, a new one must be served by both
 * workers, a changed one bound again with its new options in both, and sessions
 * opened on a removed address go on to their end, on whichever worker they live.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { freePort } from '../server-proxy/haproxy.js';
import { SieveTestClient } from '../helpers/client.js';
import { ALICE, startFixture, type Fixture } from '../helpers/fixture.js';
import { CLI } from '../helpers/tsieved.js';

function who(fx: Fixture): { worker: number; workerPid: number; remote: string }[] {
  const r = spawnSync(process.execPath, [CLI, 'who', '--json', '--config', fx.server.configFile], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`who failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { worker: number; workerPid: number; remote: string }[];
}

const listen = (entries: string[]): string => `listen = [${entries.join(', ')}]`;

/** Connections in a row, held open so that round robin gives each worker some. */
async function spread(port: number, n = 4): Promise<SieveTestClient[]> {
  const clients = [];
  for (let i = 0; i < n; i++) clients.push(await SieveTestClient.connect(port));
  return clients;
}

describe.skipIf(process.platform !== 'linux')('SIGHUP listener changes with two workers', () => {
  let fx: Fixture;
  let a: number, b: number, c: number;
  beforeAll(async () => {
    [a, b, c] = [await freePort(), await freePort(), await freePort()];
    fx = await startFixture({
      listeners: listen([`"127.0.0.1:${a}"`, `"127.0.0.1:${b}"`]),
      extra: { server: 'workers = 2' },
    });
    await fx.server.waitForLog((l) => l.event === 'cluster-ready', 30_000);
  }, 60_000);
  afterAll(async () => fx?.stop());

  it('binds new listeners in every worker, closes removed ones (sessions there go on), rebinds changed ones', async () => {
    // Sessions on b in both workers, one of them logged in.
    const onB = await spread(b);
    expect(new Set(who(fx).map((s) => s.worker))).toEqual(new Set([1, 2]));
    await onB[0].startTls(fx.ca);
    expect((await onB[0].authenticatePlain(ALICE.name, ALICE.password)).statusLine).toBe('OK');
    const onA = await SieveTestClient.connect(a);
    expect(onA.greeting.lines).toContain('"SASL" ""');

    const config = readFileSync(fx.server.configFile, 'utf8');
    const next = config.replace(
      listen([`"127.0.0.1:${a}"`, `"127.0.0.1:${b}"`]),
      listen([`{ address = "127.0.0.1:${a}", allow_plaintext = true }`, `"127.0.0.1:${c}"`]),
    );
    expect(next).not.toBe(config);
    writeFileSync(fx.server.configFile, next);
    fx.server.process.kill('SIGHUP');
    // One line from the primary once both workers applied the change.
    const line = await fx.server.waitForLog((l) => l.event === 'reloaded', 20_000);
    expect(line).toMatchObject({
      workers: 2,
      listenersBound: [`127.0.0.1:${c}`],
      listenersClosed: [`127.0.0.1:${b}`],
      listenersRebound: [`127.0.0.1:${a}`],
    });
    expect(line.notApplied).toBeUndefined();
    expect(fx.server.logLines().filter((l) => l.event === 'worker-reloaded')).toHaveLength(2);

    // Removed: the primary's socket is closed, so no worker gets new connections there...
    await expect(SieveTestClient.connect(b)).rejects.toThrow(/ECONNREFUSED/);
    // ...but the sessions opened there go on, in both workers.
    for (const [i, client] of onB.entries())
      expect((await client.command(`NOOP "b${i}"`)).statusLine).toBe(`OK (TAG "b${i}")`);
    expect((await onB[0].command('LISTSCRIPTS')).status).toBe('OK');
    expect((await onA.command('NOOP')).status).toBe('OK');
    // Changed and new: served by both workers, the changed one with its new options.
    const againA = await spread(a);
    for (const client of againA) expect(client.greeting.lines.find((l) => l.startsWith('"SASL"'))).toMatch(/PLAIN/);
    const onC = await spread(c);
    const sessions = who(fx);
    expect(new Set(sessions.filter((s) => onC.some((x) => x.clientField === s.remote)).map((s) => s.worker))).toEqual(
      new Set([1, 2]),
    );
    expect(
      new Set(sessions.filter((s) => againA.some((x) => x.clientField === s.remote)).map((s) => s.worker)),
    ).toEqual(new Set([1, 2]));
    for (const client of [onA, ...onB, ...againA, ...onC]) client.close();

    // An address that cannot be bound is named once, for the server; the rest still applies.
    const squatter = createServer();
    const d = await freePort();
    await new Promise<void>((r) => squatter.listen(d, '127.0.0.1', () => r()));
    try {
      writeFileSync(fx.server.configFile, next.replace(`"127.0.0.1:${c}"`, `"127.0.0.1:${d}"`));
      fx.server.process.kill('SIGHUP');
      const partial = await fx.server.waitForLog((l) => l.event === 'reloaded' && l.notApplied !== undefined, 20_000);
      expect(partial.notApplied).toEqual([
        expect.stringMatching(new RegExp(`^listener 127\\.0\\.0\\.1:${d}: .*EADDRINUSE`)),
      ]);
      expect(partial.listenersClosed).toEqual([`127.0.0.1:${c}`]);
      await expect(SieveTestClient.connect(c)).rejects.toThrow(/ECONNREFUSED/);
      for (const client of await spread(a, 2)) client.close();
    } finally {
      squatter.close();
    }
  });

  it('a replacement worker runs the configuration in force, not an edit that was not reloaded', async () => {
    const inForce = readFileSync(fx.server.configFile, 'utf8');
    writeFileSync(
      fx.server.configFile,
      inForce.replace(/capabilities = \[[^\]]*\]/, 'capabilities = ["fileinto", "envelope"]'),
    );
    const before = await spread(a, 2);
    const victim = who(fx).find((s) => s.remote === before[0].clientField)!;
    for (const client of before) client.close();
    const readyBefore = fx.server.logLines().filter((l) => l.event === 'worker-ready').length;
    process.kill(victim.workerPid, 'SIGKILL');
    const deadline = Date.now() + 15_000;
    while (fx.server.logLines().filter((l) => l.event === 'worker-ready').length === readyBefore) {
      if (Date.now() > deadline) throw new Error('no replacement worker');
      await new Promise((r) => setTimeout(r, 50));
    }
    // Both workers, the new one included, greet as before the edit...
    const after = await spread(a, 4);
    expect(new Set(who(fx).map((s) => s.worker)).size).toBe(2);
    for (const client of after)
      expect(client.greeting.lines.find((l) => l.startsWith('"SIEVE"'))).not.toBe('"SIEVE" "fileinto envelope"');
    for (const client of after) client.close();
    // ...until the edit is reloaded, in all of them.
    fx.server.process.kill('SIGHUP');
    await fx.server.waitForLog(
      (l) =>
        l.event === 'reloaded' &&
        l.listenersBound !== undefined &&
        (l.listenersBound as string[]).length === 0 &&
        (l.listenersClosed as string[]).length === 0,
      20_000,
    );
    const reloaded = await spread(a, 4);
    for (const client of reloaded) expect(client.greeting.lines).toContain('"SIEVE" "fileinto envelope"');
    for (const client of reloaded) client.close();
  });
});
