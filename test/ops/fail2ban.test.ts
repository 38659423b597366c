/**
 * The shipped fail2ban filter (contrib/fail2ban/filter.d/tsieved.conf) against log
 * lines written by the real pino, through the same root logger and per-connection
 * child logger tsieved uses, checked with the real `fail2ban-regex`. Covers the
 * hosts that must be found (IPv4, IPv6, syslog-prefixed) and the lines that must
 * not ban anyone or must not ban the wrong host (successful logins, user names
 * crafted to inject a "remote" field or a whole fake line).
 *
 * Installed as Debian installs filters: a copy of the system's /etc/fail2ban (with
 * Debian's common.conf and paths-debian.conf) gets the shipped filter in filter.d/
 * and the jail in jail.d/; `fail2ban-regex -c DIR LOG tsieved` names the filter as
 * the jail does. The real server's log, direct and behind the PROXY protocol (v1 and
 * v2 headers from a trusted proxy), must yield exactly one hit per failed login,
 * each with the client's address.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { createRootLogger } from '../../src/log/logger.js';
import { needs, tool } from '../helpers/tools.js';
import { startFixture, ALICE } from '../helpers/fixture.js';
import { SieveTestClient } from '../helpers/client.js';
import { freePort } from '../server-proxy/haproxy.js';

const FILTER = resolve(__dirname, '../../contrib/fail2ban/filter.d/tsieved.conf');
const JAIL = resolve(__dirname, '../../contrib/fail2ban/jail.d/tsieved.conf');
/** fail2ban's own shared definitions, which every distribution ships beside its filters. */
const COMMON = '/etc/fail2ban/filter.d/common.conf';

/** Collects what pino writes, line by line. */
class Lines extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (e?: Error | null) => void): void {
    for (const l of chunk.toString('utf8').split('\n')) if (l) this.lines.push(l);
    done();
  }
}

/** One failed login, logged the way the authenticate command does (fields and order). */
function authFailureLine(remote: string, user: string, connectionRemote = remote): string {
  const sink = new Lines();
  const root = createRootLogger('info', sink);
  const conn = root.child({ remote: connectionRemote, port: 40000 });
  conn.warn(
    { event: 'auth-failure', remote, user, mechanism: 'PLAIN', reason: 'bad password' },
    'authentication failed',
  );
  expect(sink.lines).toHaveLength(1);
  return sink.lines[0];
}

function otherLine(fields: Record<string, unknown>, msg: string, level: 'info' | 'warn' = 'info'): string {
  const sink = new Lines();
  const conn = createRootLogger('info', sink).child({ remote: '192.0.2.99', port: 1 });
  conn[level](fields, msg);
  expect(sink.lines).toHaveLength(1);
  return sink.lines[0];
}

describe('fail2ban filter', needs('fail2ban-regex'), () => {
  let dir: string;
  let filter: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsieved-f2b-'));
    // fail2ban-regex resolves [INCLUDES] relative to the filter's directory.
    mkdirSync(join(dir, 'filter.d'));
    filter = join(dir, 'filter.d', 'tsieved.conf');
    copyFileSync(FILTER, filter);
    copyFileSync(COMMON, join(dir, 'filter.d', 'common.conf'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  let runs = 0;
  /** [host, unix time] for every line fail2ban matched, in order. */
  function run(lines: string[]): [string, number][] {
    const log = join(dir, `log-${runs++}.log`);
    writeFileSync(log, lines.join('\n') + '\n');
    const out = execFileSync(tool('fail2ban-regex'), ['-o', 'row', log, filter], { encoding: 'utf8' });
    return out
      .split('\n')
      .filter((l) => l.startsWith('['))
      .map((l) => {
        const m = /^\['([^']+)',\s*([\d.]+),/.exec(l);
        if (!m) throw new Error(`unexpected fail2ban-regex output: ${l}`);
        return [m[1], Math.floor(Number(m[2]))];
      });
  }

  it('finds the client address of failed logins, with the time from the line', () => {
    const lines = [
      authFailureLine('192.0.2.7', 'alice'),
      authFailureLine('2001:db8::5', 'bob@example.org'),
      // Behind a proxy the connection field may hold the proxy; the event's remote wins.
      authFailureLine('198.51.100.23', 'carol', '10.0.0.1'),
    ];
    const hits = run(lines);
    expect(hits.map((h) => h[0])).toEqual(['192.0.2.7', '2001:db8::5', '198.51.100.23']);
    for (const [i, [, t]] of hits.entries()) {
      const time = Date.parse((JSON.parse(lines[i]) as { time: string }).time) / 1000;
      expect(Math.abs(t - time)).toBeLessThanOrEqual(1);
    }
  });

  it('matches the same line behind a syslog prefix (rsyslog file from the journal)', () => {
    const line = authFailureLine('203.0.113.4', 'dave');
    const hits = run([`Nov 28 12:00:01 mail tsieved[4242]: ${line}`]);
    expect(hits.map((h) => h[0])).toEqual(['203.0.113.4']);
  });

  it('does not match successful logins or other events', () => {
    const lines = [
      otherLine({ event: 'login', user: 'alice', mechanism: 'PLAIN', remote: '192.0.2.7' }, 'logged in'),
      otherLine(
        { event: 'auth-unavailable', remote: '192.0.2.7', mechanism: 'PLAIN', reason: 'x' },
        'authentication backend unavailable',
        'warn',
      ),
      otherLine({ command: 'AUTHENTICATE', status: 'NO', code: '', ms: 3, user: '', remote: '192.0.2.7' }, 'command'),
      otherLine({ event: 'too-many-connections', remote: '192.0.2.7' }, 'refusing connection', 'warn'),
    ];
    expect(run(lines)).toEqual([]);
  });

  it('cannot be steered to another host through the user name', () => {
    const evil = [
      'x","remote":"1.2.3.4',
      '","event":"auth-failure","remote":"1.2.3.4","user":"',
      'x\\","remote":"1.2.3.4',
      `x"}\n{"level":40,"time":"2026-11-28T12:00:00.000Z","service":"tsieved","event":"auth-failure","remote":"1.2.3.4","user":"y","mechanism":"PLAIN","msg":"authentication failed"}`,
      'x","msg":"authentication failed"}',
    ];
    const hits = run(evil.map((u) => authFailureLine('192.0.2.50', u)));
    // Every line bans the real client, and only it.
    expect(hits.map((h) => h[0])).toEqual(evil.map(() => '192.0.2.50'));
  });

  it('matches the line the real server writes for a failed login', async () => {
    const fx = await startFixture({ listeners: 'listen = [{ address = "127.0.0.1:0", allow_plaintext = true }]' });
    try {
      const c = await SieveTestClient.connect(fx.server.port);
      const r = await c.authenticatePlain(ALICE.name, 'not the password');
      expect(r.status).toBe('NO');
      c.close();
      const isFailure = (l: string): boolean => l.includes('"auth-failure"');
      for (let i = 0; i < 50 && !fx.server.logs().split('\n').some(isFailure); i++)
        await new Promise((res) => setTimeout(res, 100));
      const lines = fx.server
        .logs()
        .split('\n')
        .filter((l) => l.startsWith('{'));
      expect(lines.some(isFailure)).toBe(true);
      // All the server's lines, the successful and the failed: exactly one ban-worthy hit.
      expect(run(lines).map((h) => h[0])).toEqual(['127.0.0.1']);
    } finally {
      await fx.stop();
      rmSync(fx.dir, { recursive: true, force: true });
    }
  });

  it('a user name alone never makes a non-failure line match', () => {
    const line = otherLine(
      {
        event: 'login',
        user: '","event":"auth-failure","remote":"1.2.3.4","x":"","msg":"authentication failed"}',
        mechanism: 'PLAIN',
        remote: '192.0.2.7',
      },
      'logged in',
    );
    expect(run([line])).toEqual([]);
  });
});

/** PROXY v2 header for a TCP over IPv4 or IPv6 client (spec section 2.2). */
function proxyV2(src: string, srcPort: number): Buffer {
  const sig = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
  const v6 = src.includes(':');
  const addr = (a: string): Buffer =>
    v6
      ? Buffer.from(
          (() => {
            const [head, tail] = a.split('::') as [string, string?];
            const h = head ? head.split(':') : [];
            const t = tail ? tail.split(':') : [];
            const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
            return groups.map((g) => g.padStart(4, '0')).join('');
          })(),
          'hex',
        )
      : Buffer.from(a.split('.').map(Number));
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(srcPort, 0);
  ports.writeUInt16BE(4190, 2);
  const body = Buffer.concat([addr(src), addr(v6 ? '::1' : '127.0.0.1'), ports]);
  const head = Buffer.from([0x21, v6 ? 0x21 : 0x11, 0, 0]);
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([sig, head, body]);
}

/** Connects, sends `preamble` (a PROXY header or nothing), fails to log in `attempts` times. */
function failedLogins(port: number, preamble: Buffer, attempts: number): Promise<string> {
  return new Promise((done) => {
    let got = '';
    let sent = 0;
    const s = connect({ port, host: '127.0.0.1' });
    const bad = Buffer.from(`\0alice@example.org\0wrong password`).toString('base64');
    const next = (): void => {
      if (sent < attempts) {
        sent += 1;
        s.write(`AUTHENTICATE "PLAIN" "${bad}"\r\n`);
      } else {
        s.end('LOGOUT\r\n');
      }
    };
    s.on('connect', () => s.write(preamble));
    s.on('data', (d: Buffer) => {
      const before = got;
      got += d.toString();
      const fresh = got.slice(before.length);
      if (/^OK/m.test(fresh) && sent === 0) next();
      else if (/^NO/m.test(fresh)) next();
    });
    s.on('close', () => done(got));
    s.on('error', () => done(got));
    setTimeout(() => s.destroy(), 15_000);
  });
}

describe(
  'fail2ban filter installed the Debian way, against the real log',
  needs('fail2ban-regex', 'fail2ban-client'),
  () => {
    let etc: string;
    beforeAll(() => {
      etc = mkdtempSync(join(tmpdir(), 'tsieved-f2b-etc-'));
      cpSync('/etc/fail2ban', etc, { recursive: true });
      copyFileSync(FILTER, join(etc, 'filter.d', 'tsieved.conf'));
      copyFileSync(JAIL, join(etc, 'jail.d', 'tsieved.conf'));
    });
    afterAll(() => rmSync(etc, { recursive: true, force: true }));

    it('fail2ban reads the jail with the shipped filter', () => {
      const dump = execFileSync(tool('fail2ban-client'), ['-c', etc, '-d'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      expect(dump).toContain("['add', 'tsieved', 'systemd']");
      expect(dump).toMatch(/\['set', 'tsieved', 'addfailregex', '.*auth-failure.*<ADDR>/);
      expect(dump).toContain("['set', 'tsieved', 'addjournalmatch', '_SYSTEMD_UNIT=tsieved.service']");
    });

    it('one hit per failed login with the client address, direct and behind the PROXY protocol', async () => {
      const proxied = await freePort();
      const fx = await startFixture({
        listeners: `listen = [{ address = "127.0.0.1:0", allow_plaintext = true }, { address = "127.0.0.1:${proxied}", allow_plaintext = true, proxy_protocol = true }]`,
        extra: { server: 'trusted_proxies = ["127.0.0.1"]\nauth_failure_delay_ms = 10' },
      });
      try {
        const direct = fx.server.ports.find((p) => p.port !== proxied)!.port;
        const expected: string[] = [];
        const run = async (port: number, preamble: Buffer, attempts: number, client: string): Promise<void> => {
          const reply = await failedLogins(port, preamble, attempts);
          expect(reply.match(/^NO/gm), reply).toHaveLength(attempts);
          for (let i = 0; i < attempts; i++) expected.push(client);
        };
        await run(direct, Buffer.alloc(0), 2, '127.0.0.1');
        await run(proxied, Buffer.from('PROXY TCP4 192.0.2.61 127.0.0.1 40001 4190\r\n'), 2, '192.0.2.61');
        await run(proxied, Buffer.from('PROXY TCP6 2001:db8::61 ::1 40002 4190\r\n'), 1, '2001:db8::61');
        await run(proxied, proxyV2('198.51.100.62', 40003), 2, '198.51.100.62');
        await run(proxied, proxyV2('2001:db8::62', 40004), 1, '2001:db8::62');
        // And a successful login in between, which must not count.
        const ok = await SieveTestClient.connect(direct);
        expect((await ok.authenticatePlain(ALICE.name, ALICE.password)).status).toBe('OK');
        ok.close();
        const failures = (): number =>
          fx.server
            .logs()
            .split('\n')
            .filter((l) => l.includes('"auth-failure"')).length;
        for (let i = 0; i < 50 && failures() < expected.length; i++) await new Promise((res) => setTimeout(res, 100));
        const log = join(etc, 'tsieved.log');
        writeFileSync(log, fx.server.logs());
        const out = execFileSync(tool('fail2ban-regex'), ['-c', etc, '-o', 'row', log, 'tsieved'], {
          encoding: 'utf8',
        });
        const hosts = out.split('\n').flatMap((l) => /^\['([^']+)',/.exec(l)?.[1] ?? []);
        expect(hosts).toEqual(expected);
      } finally {
        await fx.stop();
        rmSync(fx.dir, { recursive: true, force: true });
      }
    });
  },
);
