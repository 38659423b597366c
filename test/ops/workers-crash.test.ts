/**
 * A worker that dies while the cluster primary still has messages for it (handed-
 * over connections, answers to its admission and login questions) must not take
 * the primary, and with it every other worker's sessions, down: writing to a
 * closed IPC channel fails with EPIPE, which node:cluster raises as an 'error'
 * event on the worker. The race is made wide on purpose: the primary is stopped
 * while connections pile up, a worker is killed, and the primary continues.
 * The configuration is larger than one environment variable may be (128 KiB):
 * workers, replacements included, get the text in force over the IPC channel.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readdirSync, statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { startFixture, type Fixture } from '../helpers/fixture.js';
import { childPids } from '../helpers/processes.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await startFixture({
    extra: {
      server: `workers = 2\nmax_connections = 100000\nmax_connections_per_ip = 100000\n# ${'x'.repeat(200 * 1024)}\n`,
    },
  });
  await fx.server.waitForLog((l) => l.event === 'cluster-ready', 30_000);
}, 60_000);
afterAll(async () => fx?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function open(n: number, into: Socket[]): void {
  for (let i = 0; i < n; i++) {
    const s = connect(fx.server.port, '127.0.0.1');
    s.on('error', () => undefined); // refused or reset once its worker is gone: expected here
    into.push(s);
  }
}

it.skipIf(!readdirSync('/proc').includes('self'))(
  'the primary survives a worker killed with messages in flight, and serves on',
  async () => {
    expect(statSync(fx.server.configFile).size).toBeGreaterThan(128 * 1024);
    const primary = fx.server.process.pid!;
    let exited: unknown;
    fx.server.process.once('exit', (code, signal) => (exited = { code, signal }));
    for (let round = 0; round < 4 && exited === undefined; round++) {
      const victim = childPids(primary)[0];
      const sockets: Socket[] = [];
      open(300, sockets);
      await sleep(30);
      process.kill(primary, 'SIGSTOP');
      open(300, sockets);
      await sleep(100);
      if (victim !== undefined) process.kill(victim, 'SIGKILL');
      await sleep(50);
      process.kill(primary, 'SIGCONT');
      await sleep(1500);
      for (const s of sockets) s.destroy();
      await sleep(1200); // the replacement worker starts after a second
    }
    expect(exited).toBeUndefined();
    // And it still serves: a greeting from whichever worker gets the connection.
    const greeting = await new Promise<string>((resolve, reject) => {
      const s = connect(fx.server.port, '127.0.0.1');
      let got = '';
      s.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        if (/^OK/m.test(got)) {
          s.destroy();
          resolve(got);
        }
      });
      s.on('error', reject);
    });
    expect(greeting).toMatch(/^OK/m);
  },
  120_000,
);
