/**
 * The /metrics endpoint scraped by a real Prometheus server (Debian's `prometheus`,
 * on loopback with a private configuration and data directory, a short scrape
 * interval and the bearer token from a file), then asked through its HTTP API for
 * the logins this test made: the numbers must be the ones produced here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SieveTestClient } from '../helpers/client.js';
import { ALICE, BOB, startFixture, type Fixture } from '../helpers/fixture.js';
import { needs, tool } from '../helpers/tools.js';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const TOKEN = 'scrape-me-0123456789';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function login(fx: Fixture, user: string, password: string): Promise<string> {
  const c = await SieveTestClient.connect(fx.server.port);
  await c.startTls(fx.ca);
  const r = await c.command(`AUTHENTICATE "PLAIN" "${b64(`\0${user}\0${password}`)}"`);
  if (r.status === 'OK') await c.command('LOGOUT');
  c.close();
  return r.status;
}

describe('metrics scraped by Prometheus', needs('prometheus'), () => {
  let fx: Fixture;
  let dir: string;
  let prometheus: ChildProcess | undefined;
  let promOutput = '';
  let metricsPort: number;
  let promPort: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsieved-prom-'));
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    fx = await startFixture({ extra: { metrics: `listen = "127.0.0.1:0"\ntoken_file = "${tokenFile}"` } });
    metricsPort = (await fx.server.waitForLog((l) => l.event === 'metrics-listening')).port as number;

    promPort = await freePort();
    mkdirSync(join(dir, 'data'));
    writeFileSync(
      join(dir, 'prometheus.yml'),
      `global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: tsieved
    authorization:
      type: Bearer
      credentials_file: ${tokenFile}
    static_configs:
      - targets: ["127.0.0.1:${metricsPort}"]
`,
    );
    prometheus = spawn(
      tool('prometheus'),
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    prometheus.stdout!.on('data', (d: Buffer) => (promOutput += d.toString()));
    prometheus.stderr!.on('data', (d: Buffer) => (promOutput += d.toString()));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (prometheus.exitCode !== null) throw new Error(`prometheus exited:\n${promOutput}`);
      const ready = await fetch(`http://127.0.0.1:${promPort}/-/ready`).then(
        (r) => r.ok,
        () => false,
      );
      if (ready) break;
      if (Date.now() > deadline) throw new Error(`prometheus not ready:\n${promOutput}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 60_000);

  afterAll(async () => {
    if (prometheus && prometheus.exitCode === null) {
      const exited = new Promise((r) => prometheus!.once('exit', r));
      prometheus.kill('SIGTERM');
      await exited;
    }
    await fx?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function query(expr: string): Promise<number | undefined> {
    const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; data: { result: { value: [number, string] }[] } };
    if (body.status !== 'success' || body.data.result.length === 0) return undefined;
    return Number(body.data.result[0].value[1]);
  }

  async function eventually(expr: string, expected: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: number | undefined;
    for (;;) {
      last = await query(expr).catch(() => undefined);
      if (last === expected) return;
      if (Date.now() > deadline)
        throw new Error(`${expr} = ${last}, expected ${expected}; prometheus said:\n${promOutput.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  it('counts the logins this test made, by outcome, as Prometheus sees them', async () => {
    expect(await login(fx, ALICE.name, ALICE.password)).toBe('OK');
    expect(await login(fx, BOB.name, BOB.password)).toBe('OK');
    expect(await login(fx, ALICE.name, ALICE.password)).toBe('OK');
    expect(await login(fx, ALICE.name, 'wrong')).toBe('NO');
    expect(await login(fx, 'nobody@example.org', 'x')).toBe('NO');

    await eventually('up{job="tsieved"}', 1);
    await eventually('sum(tsieved_logins_total{outcome="success",backend="userdb",mechanism="PLAIN"})', 3);
    await eventually('tsieved_logins_total{outcome="bad-password"}', 1);
    await eventually('tsieved_logins_total{outcome="unknown-user"}', 1);
    await eventually('tsieved_failed_login_delay_seconds_count', 2);
    // Five connections came and went; each one logged out or was closed by the client.
    await eventually('tsieved_connections_accepted_total', 5);
    await eventually('sum(tsieved_connections_closed_total)', 5);
    await eventually('tsieved_command_duration_seconds_count{command="LOGOUT",status="OK"}', 3);
    await eventually('tsieved_connections_open', 0);
    expect(await query('tsieved_process_resident_memory_bytes')).toBeGreaterThan(1_000_000);
  }, 90_000);

  it('shows a session logged in now, and validation verdicts', async () => {
    const c = await SieveTestClient.connect(fx.server.port);
    await c.startTls(fx.ca);
    expect((await c.authenticatePlain(ALICE.name, ALICE.password)).status).toBe('OK');
    expect((await c.command('CHECKSCRIPT "keep;"')).status).toBe('OK');
    expect((await c.command('CHECKSCRIPT "frobnicate;"')).status).toBe('NO');
    await eventually('tsieved_sessions_authenticated', 1);
    await eventually('tsieved_script_validation_seconds_count{command="CHECKSCRIPT",verdict="valid"}', 1);
    await eventually('tsieved_script_validation_seconds_count{command="CHECKSCRIPT",verdict="invalid"}', 1);
    c.close();
    await eventually('tsieved_sessions_authenticated', 0);
  }, 90_000);

  it('refuses scrapes without the token, and serves nothing but /metrics', async () => {
    expect((await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).status).toBe(401);
    expect(
      (await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { headers: { authorization: 'Bearer nope' } })).status,
    ).toBe(401);
    const ok = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(ok.status).toBe(200);
    const text = await ok.text();
    const names = [...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]);
    expect(names.length).toBeGreaterThan(20);
    expect(names.filter((n) => !n.startsWith('tsieved_'))).toEqual([]);
    expect(
      (await fetch(`http://127.0.0.1:${metricsPort}/`, { headers: { authorization: `Bearer ${TOKEN}` } })).status,
    ).toBe(404);
  });
});
