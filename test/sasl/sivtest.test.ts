/**
 * Interoperability: Cyrus sivtest, whose SASL comes from libsasl2's own plugins
 * (an implementation independent of ours), logs in through src/sasl with SCRAM,
 * PLAIN and LOGIN. Also checks that libsasl2 verified our SCRAM server signature
 * (it aborts the login otherwise).
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needs } from '../helpers/tools.js';
import { madeBy } from '../auth/util.js';
import { passwdFixture, type Fixture } from './fixtures.js';
import { startMiniServer, type MiniServer } from './mini-server.js';

const SIVTEST = '/usr/lib/cyrus/bin/sivtest';

function sivtest(
  port: number,
  mech: string,
  user: string,
  password: string,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(SIVTEST, ['-p', String(port), '-m', mech, '-a', user, '-w', password, '127.0.0.1'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
    child.stdin.end('LOGOUT\r\n');
  });
}

describe('sivtest (libsasl2) against our mechanisms', needs(SIVTEST), () => {
  let fx256: Fixture;
  let fx1: Fixture;
  let s256: MiniServer;
  let s1: MiniServer;
  const pw = 'Grüße-pässwörd 7';
  beforeAll(async () => {
    fx256 = await passwdFixture([
      `alice:${madeBy('doveadm', ['pw', '-s', 'SCRAM-SHA-256', '-p', pw])}`,
      `bob:{PLAIN}${pw}`,
    ]);
    fx1 = await passwdFixture([
      `carol:${madeBy('doveadm', ['pw', '-s', 'SCRAM-SHA-1', '-p', pw])}`,
      `bob:{CLEAR}${pw}`,
    ]);
    s256 = await startMiniServer(fx256.backend);
    s1 = await startMiniServer(fx1.backend);
  });
  afterAll(async () => {
    await s256.close();
    await s1.close();
    await fx256.cleanup();
    await fx1.cleanup();
  });

  const cases: [string, () => MiniServer, string, string][] = [
    ['SCRAM-SHA-256', () => s256, 'alice', 'doveadm keys'],
    ['SCRAM-SHA-256', () => s256, 'bob', 'keys derived from {PLAIN}'],
    ['SCRAM-SHA-1', () => s1, 'carol', 'doveadm keys'],
    ['SCRAM-SHA-1', () => s1, 'bob', 'keys derived from {CLEAR}'],
    ['PLAIN', () => s256, 'alice', 'PLAIN against SCRAM keys'],
    ['LOGIN', () => s1, 'bob', 'LOGIN against cleartext'],
  ];
  for (const [mech, server, user, what] of cases) {
    it(`${mech} for ${user} (${what})`, async () => {
      const s = server();
      const before = s.results.length;
      const ok = await sivtest(s.port, mech, user, pw);
      expect(s.results.length, ok.out).toBe(before + 1);
      expect(s.results.at(-1)!.step.kind, ok.out).toBe('success');
      expect(ok.out).toMatch(/Authenticated/);

      const bad = await sivtest(s.port, mech, user, pw + 'x');
      expect(s.results.at(-1)!.step).toMatchObject({ kind: 'failure', reason: 'rejected' });
      expect(bad.out).not.toMatch(/Authenticated/);
    }, 40_000);
  }
});
