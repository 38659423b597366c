/**
 * The limits that must hold for the whole server with `[server] workers = 2`, not
 * per worker: an account's sessions against max_sessions_per_user (given back
 * when the worker holding one dies), and the failed-login penalty of an address
 * whose failures land on different workers. Against the real server; which
 * worker serves a connection is read from `tsieved who`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, needs } from '../helpers/tools.js';
import { SieveTestClient } from '../helpers/client.js';
import { ALICE, startFixture, type Fixture } from '../helpers/fixture.js';
import { CLI } from '../helpers/tsieved.js';

interface WhoEntry {
  worker: number;
  workerPid: number;
  remote: string;
  user?: string;
  pid?: number;
}

function who(fx: Fixture): WhoEntry[] {
  const r = spawnSync(process.execPath, [CLI, 'who', '--json', '--config', fx.server.configFile], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`who failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as WhoEntry[];
}

const workerOf = (fx: Fixture, c: SieveTestClient): WhoEntry => {
  const entry = who(fx).find((s) => s.remote === c.clientField);
  if (!entry) throw new Error(`no session for ${c.clientField}`);
  return entry;
};

async function connected(fx: Fixture): Promise<SieveTestClient> {
  const c = await SieveTestClient.connect(fx.server.port);
  await c.startTls(fx.ca);
  return c;
}

/** Two connections served by different workers (round robin gives them so; checked). */
async function onBothWorkers(fx: Fixture): Promise<[SieveTestClient, SieveTestClient]> {
  const a = await connected(fx);
  for (let i = 0; i < 4; i++) {
    const b = await connected(fx);
    if (workerOf(fx, b).worker !== workerOf(fx, a).worker) return [a, b];
    b.close();
  }
  throw new Error('round robin never gave the second worker a connection');
}

const waitFor = async (predicate: () => boolean, ms = 15_000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe.skipIf(process.platform !== 'linux')('limits that hold across two workers', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await startFixture({
      extra: {
        server: 'workers = 2\nmax_sessions_per_user = 2\nmax_auth_failures = 10\nauth_failure_delay_ms = 200',
      },
    });
    await fx.server.waitForLog((l) => l.event === 'cluster-ready', 30_000);
  }, 60_000);
  afterAll(async () => fx?.stop());

  it('an account holds at most max_sessions_per_user sessions in all workers together', async () => {
    const [s1, s2] = await onBothWorkers(fx);
    for (const s of [s1, s2]) expect((await s.authenticatePlain(ALICE.name, ALICE.password)).status).toBe('OK');
    // A third, on either worker: each worker alone holds one, the server two.
    for (let i = 0; i < 2; i++) {
      const s3 = await connected(fx);
      const refused = await s3.authenticatePlain(ALICE.name, ALICE.password);
      expect(refused.status).toBe('NO');
      expect(refused.statusLine).toMatch(/TRYLATER.*Too many sessions for this account \(at most 2\)/);
      s3.close();
    }
    // Given back at logout...
    expect((await s1.command('LOGOUT')).status).toBe('OK');
    s1.close();
    const s3 = await connected(fx);
    await waitFor(() => who(fx).filter((s) => s.user === ALICE.name).length === 1);
    expect((await s3.authenticatePlain(ALICE.name, ALICE.password)).status).toBe('OK');
    // ...and when the worker holding one dies: s2's worker is killed.
    const victim = workerOf(fx, s2);
    const survivor = workerOf(fx, s3);
    const readyBefore = fx.server.logLines().filter((l) => l.event === 'worker-ready').length;
    process.kill(victim.workerPid, 'SIGKILL');
    await waitFor(() => fx.server.logLines().filter((l) => l.event === 'worker-ready').length > readyBefore);
    expect(who(fx).filter((s) => s.user === ALICE.name)).toHaveLength(victim.worker === survivor.worker ? 0 : 1);
    const held = victim.worker === survivor.worker ? [] : [s3];
    while (held.length < 2) {
      const s = await connected(fx);
      expect((await s.authenticatePlain(ALICE.name, ALICE.password)).status).toBe('OK');
      held.push(s);
    }
    const over = await connected(fx);
    expect((await over.authenticatePlain(ALICE.name, ALICE.password)).status).toBe('NO');
    for (const s of [s2, s3, over, ...held]) s.close();
    await waitFor(() => who(fx).length === 0);
  });

  it('the failed-login penalty of an address grows with failures on any worker', async () => {
    const [a, b] = await onBothWorkers(fx);
    const [wa, wb] = [workerOf(fx, a).worker, workerOf(fx, b).worker];
    const seen = fx.server.logLines().length;
    const fail = async (c: SieveTestClient): Promise<void> =>
      expect((await c.authenticatePlain(ALICE.name, 'wrong')).status).toBe('NO');
    // Alternate workers. The turns of an address are spaced base x 2^(failures-1)
    // apart, so later attempts wait (and say so, with the failures they count); a
    // worker counting alone would never see more than two.
    for (const c of [a, b, a, b, a, b]) await fail(c);
    const penalties = (): Record<string, unknown>[] =>
      fx.server
        .logLines()
        .slice(seen)
        .filter((l) => l.event === 'auth-penalty' && Number(l.failures) >= 3);
    // (An attempt whose turn had already come when it arrived waits nothing and logs
    // nothing; the base delay is large enough that the fourth and fifth always wait.)
    await waitFor(() => penalties().some((l) => l.failures === 5));
    const seenCounts = penalties().map((l) => [l.worker, l.failures]);
    expect(seenCounts).toContainEqual([wa, 4]);
    expect(seenCounts).toContainEqual([wb, 5]);
    const delay = (n: number): number => Number(penalties().find((l) => l.failures === n)?.delay_ms);
    expect(delay(5)).toBeGreaterThan(delay(4));
    // A success (on either worker) clears the address for all: counting starts again.
    expect((await a.authenticatePlain(ALICE.name, ALICE.password)).status).toBe('OK');
    const after = fx.server.logLines().length;
    for (let i = 0; i < 5; i++) await fail(b);
    const again = (): Record<string, unknown>[] =>
      fx.server
        .logLines()
        .slice(after)
        .filter((l) => l.event === 'auth-penalty');
    await waitFor(() => again().some((l) => l.failures === 4));
    expect(again().every((l) => Number(l.failures) <= 4)).toBe(true);
    for (const c of [a, b]) c.close();
  }, 60_000);
});

describe.skipIf(process.platform !== 'linux')('isolated sessions across two workers', () => {
  let fx: Fixture | undefined;
  afterAll(async () => fx?.stop());

  it("who and /metrics show every worker's isolated sessions with their storage processes", needs(ROOT), async () => {
    fx = await startFixture({
      extra: { server: 'workers = 2', storage: 'isolation = "process"', metrics: 'listen = "127.0.0.1:0"' },
    });
    const f = fx;
    await f.server.waitForLog((l) => l.event === 'cluster-ready', 30_000);
    // The storage process runs as the entry's uid, which must not be root's.
    chmodSync(f.dir, 0o755);
    chownSync(f.home(ALICE.name), 42112, 42112);
    const userdb = join(f.dir, 'userdb');
    writeFileSync(
      userdb,
      readFileSync(userdb, 'utf8').replace(/^(alice@example\.org\t)uid=\d+\|gid=\d+/m, '$1uid=42112|gid=42112'),
    );
    const pair = await onBothWorkers(f);
    for (const c of pair) expect((await c.authenticatePlain(ALICE.name, ALICE.password)).status).toBe('OK');
    const sessions = who(f);
    expect(new Set(sessions.map((s) => s.worker))).toEqual(new Set([1, 2]));
    const pids = sessions.map((s) => s.pid);
    for (const [i, pid] of pids.entries()) {
      expect(pid).toBeGreaterThan(1);
      expect(pid).not.toBe(sessions[i].workerPid);
      expect(existsSync(`/proc/${pid}`)).toBe(true);
    }
    expect(new Set(pids).size).toBe(2);
    const metricsPort = (await f.server.waitForLog((l) => l.event === 'metrics-listening')).port as number;
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^tsieved_isolated_sessions 2$/m);
    for (const c of pair) c.close();
  });
});
