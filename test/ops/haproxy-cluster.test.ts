/**
 * Scale-out as deployed: a real haproxy running contrib/haproxy/haproxy.cfg as
 * shipped (PROXY v2, health checks on) in front of two tsieved processes that share
 * one storage directory. The test replaces only addresses, ports and paths, each
 * exactly once (see `shippedConfig`): the frontend's `:4190`, the two servers'
 * `10.0.0.11:4190` / `10.0.0.12:4190`, the log target `/dev/log` (a UDP syslog
 * receiver here) and the stats socket path. haproxy runs with a soft descriptor
 * limit of 1024 and a hard one of 20,000 (below Debian's defaults).
 *   - both servers pass every health check and are never marked DOWN (stats
 *     socket: status UP, no failed check, no transition to DOWN; log: no DOWN);
 *   - haproxy logs each session with the client's address, and so does tsieved;
 *   - the client's own address (a second loopback address, 127.0.0.2) reaches the
 *     instance's log lines, not haproxy's (127.0.0.1);
 *   - a direct connection from an address that is not a trusted proxy is refused;
 *   - several clients of the same user, spread over both instances by round robin,
 *     writing, activating and reading scripts at the same time, never see or leave
 *     a torn script, and the filter file always matches the active script.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { needs, tool } from '../helpers/tools.js';
import { testCerts } from '../helpers/certs.js';
import { SieveTestClient } from '../helpers/client.js';
import { startTsieved, type RunningTsieved } from '../helpers/tsieved.js';
import { courierSha256 } from '../helpers/fixture.js';
import { freePort, startHaproxyConfig, type RunningHaproxy } from '../server-proxy/haproxy.js';
import { renderFilter } from '../../src/storage/filter-file.js';

const SHIPPED = resolve(__dirname, '../../contrib/haproxy/haproxy.cfg');
const USER = 'alice@example.org';

/**
 * The shipped file with each placeholder replaced; every one must occur exactly
 * once outside comments (comments stay as they are).
 */
function shippedConfig(replacements: readonly [string, string][]): string {
  const lines = readFileSync(SHIPPED, 'utf8').split('\n');
  for (const [from, to] of replacements) {
    const at = lines.flatMap((l, i) => (!/^\s*#/.test(l) && l.includes(from) ? [i] : []));
    expect(at, `"${from}" in contrib/haproxy/haproxy.cfg`).toHaveLength(1);
    lines[at[0]] = lines[at[0]].replace(from, to);
  }
  return lines.join('\n');
}

interface ServerStat {
  readonly status: string;
  readonly chkfail: number;
  readonly chkdown: number;
  readonly checkStatus: string;
}

/** `show stat` on haproxy's stats socket: the servers of backend tsieved. */
function showStat(socket: string): Promise<Map<string, ServerStat>> {
  return new Promise((resolveStat, reject) => {
    let text = '';
    const s = connect(socket);
    s.on('connect', () => s.write('show stat\n'));
    s.on('data', (d: Buffer) => (text += d.toString()));
    s.on('error', reject);
    s.on('close', () => {
      const lines = text.split('\n').filter((l) => l !== '');
      const header = (lines[0] ?? '').replace(/^# /, '').split(',');
      const col = (row: string[], name: string): string => row[header.indexOf(name)] ?? '';
      const out = new Map<string, ServerStat>();
      for (const l of lines.slice(1)) {
        const row = l.split(',');
        if (col(row, 'pxname') !== 'tsieved' || col(row, 'svname') === 'BACKEND') continue;
        out.set(col(row, 'svname'), {
          status: col(row, 'status'),
          chkfail: Number(col(row, 'chkfail')),
          chkdown: Number(col(row, 'chkdown')),
          // "* " before it: a check is running at that moment; the status is the last one's.
          checkStatus: col(row, 'check_status').replace(/^\* /, ''),
        });
      }
      resolveStat(out);
    });
  });
}

const PASSWORD = 'correct horse';
const CLIENTS = 6;
const ROUNDS = 12;

/** A script whose every line carries its tag, so a mix of two writes is visible. */
function tagged(tag: string, lines = 400): Buffer {
  const body = [`# tag ${tag}`];
  for (let i = 0; i < lines; i++) body.push(`# ${tag} line ${i} ${'x'.repeat(32)}`);
  body.push('keep;', '');
  return Buffer.from(body.join('\n'), 'utf8');
}

function tagOf(content: Buffer): string {
  const text = content.toString('utf8');
  const m = /^# tag (\S+)\n/.exec(text);
  if (!m) throw new Error(`script without tag: ${JSON.stringify(text.slice(0, 80))}`);
  const tag = m[1];
  // Every line must carry the same tag, and the script must be complete.
  expect(
    text.split('\n').filter((l) => l.startsWith('# ') && !l.startsWith(`# ${tag} `) && !l.startsWith('# tag ')),
  ).toEqual([]);
  expect(text.endsWith('keep;\n')).toBe(true);
  return tag;
}

/** Connect from a chosen local address, send a failing login, return what came back. */
function failedLoginFrom(localAddress: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const s = connect({ port, host: '127.0.0.1', localAddress });
    const bad = Buffer.from(`\0${USER}\0wrong password`).toString('base64');
    s.on('data', (d: Buffer) => {
      got += d.toString();
      if (/^OK/m.test(got) && !got.includes('AUTHENTICATE sent')) {
        got += 'AUTHENTICATE sent\n';
        s.write(`AUTHENTICATE "PLAIN" "${bad}"\r\n`);
      } else if (/^NO/m.test(got)) {
        s.end('LOGOUT\r\n');
      }
    });
    s.on('close', () => resolve(got));
    s.on('error', () => resolve(got));
    setTimeout(() => s.destroy(), 15_000);
  });
}

describe('haproxy in front of two tsieved instances on shared storage', needs('haproxy', 'prlimit'), () => {
  let dir: string;
  let homes: string;
  const instances: RunningTsieved[] = [];
  let haproxy: RunningHaproxy | undefined;
  let front = 0;
  let syslog: UdpSocket | undefined;
  const syslogLines: string[] = [];
  let statsSocket = '';

  /** Both servers UP, every check passed so far, none ever marked DOWN. */
  async function expectBothUp(): Promise<void> {
    const stat = await showStat(statsSocket);
    expect([...stat.keys()].sort()).toEqual(['sieve1', 'sieve2']);
    for (const [name, v] of stat) {
      expect({ name, status: v.status, checkStatus: v.checkStatus, chkfail: v.chkfail, chkdown: v.chkdown }).toEqual({
        name,
        status: 'UP',
        checkStatus: 'L7OK',
        chkfail: 0,
        chkdown: 0,
      });
    }
    expect(syslogLines.filter((l) => /is DOWN|backend .* has no server available/.test(l))).toEqual([]);
    expect(haproxy!.output()).not.toMatch(/is DOWN|FD limit|ALERT/);
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsieved-cluster-'));
    homes = join(dir, 'homes');
    mkdirSync(join(homes, USER), { recursive: true });
    const uid = process.getuid?.() ?? 1000;
    const gid = process.getgid?.() ?? 1000;
    writeFileSync(
      join(dir, 'userdb'),
      `${USER}\tuid=${uid}|gid=${gid}|home=${join(homes, USER)}|systempw=${courierSha256(PASSWORD)}\n`,
    );
    const certs = testCerts();
    const toml = `
[server]
# allow_plaintext: lets the raw failed-login client below skip STARTTLS (loopback only).
listen = [{ address = "127.0.0.1:0", proxy_protocol = true, allow_plaintext = true }]
trusted_proxies = ["127.0.0.1"]
auth_failure_delay_ms = 10
[tls]
cert_file = "${certs.certFile}"
key_file = "${certs.keyFile}"
[auth]
backend = "userdb"
userdb = "${join(dir, 'userdb')}"
[storage]
scripts_dir = "{home}/sieve"
filter_path = "{home}/.forward"
roots = ["${homes}"]
[sieve]
capabilities = ["fileinto", "envelope", "copy", "subaddress", "encoded-character", "comparator-i;ascii-numeric", "vacation"]
[log]
level = "info"
`;
    // As shipped: `workers` left to its default, one per core.
    const asShipped = { defaultWorkers: true };
    instances.push(await startTsieved(toml, asShipped), await startTsieved(toml, asShipped));
    front = await freePort();
    syslog = createSocket('udp4');
    syslog.on('message', (m: Buffer) => syslogLines.push(m.toString('utf8')));
    await new Promise<void>((r) => syslog!.bind(0, '127.0.0.1', () => r()));
    statsSocket = join(dir, 'haproxy-admin.sock');
    const config = shippedConfig([
      ['log /dev/log local0', `log 127.0.0.1:${syslog.address().port} local0`],
      ['/run/haproxy/admin.sock', statsSocket],
      ['bind :4190', `bind 127.0.0.1:${front}`],
      ['10.0.0.11:4190', `127.0.0.1:${instances[0].port}`],
      ['10.0.0.12:4190', `127.0.0.1:${instances[1].port}`],
    ]);
    haproxy = await startHaproxyConfig(config, [front], [tool('prlimit'), '--nofile=1024:20000']);
    // Wait for the first health check of each server (spread over `inter`) to pass.
    for (let i = 0; i < 150; i++) {
      const stat = await showStat(statsSocket);
      if ([...stat.values()].filter((v) => v.checkStatus === 'L7OK').length === 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(async () => {
    await haproxy?.stop();
    syslog?.close();
    await Promise.all(instances.map((t) => t.stop()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('health checks pass through the PROXY header: both servers UP, no failed check', async () => {
    await expectBothUp();
    // tsieved saw the checks as the proxy's own connections (PROXY v2 LOCAL), not as errors.
    for (const t of instances) expect(t.logLines().filter((l) => (l.level as number) >= 50)).toEqual([]);
  });

  it("logs the client's address from the PROXY header, not haproxy's", async () => {
    // Round robin alternates between the instances (haproxy's own start-up probe
    // shifts the phase): log in wrongly until both have seen a failure, bounded.
    const seen = (t: RunningTsieved): boolean => t.logLines().some((l) => l.event === 'auth-failure');
    for (let i = 0; i < 6 && !instances.every(seen); i++) {
      const reply = await failedLoginFrom('127.0.0.2', front);
      expect(reply, reply).toMatch(/^NO "/m);
      console.log(
        'DBG',
        i,
        instances.map((t) => t.logLines().filter((l) => l.event === 'auth-failure').length),
        syslogLines.slice(-2),
      );
      // pino writes asynchronously: give the line a moment to arrive.
      for (
        let w = 0;
        w < 20 && !instances.some((t) => t.logLines().filter((l) => l.event === 'auth-failure').length > 0);
        w++
      ) {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    for (const t of instances) {
      for (let w = 0; w < 50 && !seen(t); w++) await new Promise((r) => setTimeout(r, 100));
      const failures = t.logLines().filter((l) => l.event === 'auth-failure');
      expect(failures.length).toBeGreaterThanOrEqual(1);
      for (const f of failures) expect(f.remote).toBe('127.0.0.2');
    }
    // haproxy's own session log line (option tcplog) names the client too.
    // (The only other sessions are the helper's readiness probe from 127.0.0.1.)
    // haproxy logs a session when it ends, so wait for the last lines.
    const servers = (): Set<string> =>
      new Set(
        syslogLines.flatMap(
          (l) => /\]: 127\.0\.0\.2:\d+ \[[^\]]+\] managesieve tsieved\/(sieve[12]) /.exec(l)?.[1] ?? [],
        ),
      );
    for (let w = 0; w < 50 && servers().size < 2; w++) await new Promise((r) => setTimeout(r, 100));
    expect(servers()).toEqual(new Set(['sieve1', 'sieve2']));
  });

  it('refuses a direct connection from an address that is not a trusted proxy', async () => {
    const reply = await failedLoginFrom('127.0.0.2', instances[0].port);
    expect(reply).toBe('');
    const refused = (): boolean =>
      instances[0].logLines().some((l) => l.event === 'untrusted-proxy' && l.remote === '127.0.0.2');
    for (let w = 0; w < 50 && !refused(); w++) await new Promise((r) => setTimeout(r, 100));
    expect(refused()).toBe(true);
  });

  it("clients of one user on both instances never corrupt each other's scripts", async () => {
    const certs = testCerts();
    const clients: SieveTestClient[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const c = await SieveTestClient.connect(front);
      await c.startTls(certs.ca);
      expect((await c.authenticatePlain(USER, PASSWORD)).status).toBe('OK');
      clients.push(c);
    }
    // Both instances got sessions of this user.
    for (const t of instances) expect(t.logLines().some((l) => l.event === 'login')).toBe(true);

    const written = new Set<string>();
    const lastOwn = new Map<number, string>();
    await Promise.all(
      clients.map(async (c, i) => {
        for (let k = 0; k < ROUNDS; k++) {
          const own = `c${i}r${k}`;
          const shared = `shared-c${i}r${k}`;
          written.add(shared);
          expect((await c.putScript(`own-${i}`, tagged(own))).status).toBe('OK');
          lastOwn.set(i, own);
          expect((await c.putScript('shared', tagged(shared))).status).toBe('OK');
          const target = k % 2 === 0 ? 'shared' : `own-${i}`;
          expect((await c.command(`SETACTIVE "${target}"`)).status).toBe('OK');
          // Read-your-writes through whichever instance this session is on.
          const got = await c.getScript(`own-${i}`);
          expect(tagOf(got.content!)).toBe(own);
          const sharedNow = await c.getScript('shared');
          expect(written.has(tagOf(sharedNow.content!))).toBe(true);
        }
      }),
    );

    const check = clients[0];
    const list = await check.command('LISTSCRIPTS');
    const names = list.lines.map((l) => /^"([^"]+)"/.exec(l)?.[1]).sort();
    expect(names).toEqual(['shared', ...Array.from({ length: CLIENTS }, (_, i) => `own-${i}`)].sort());
    for (let i = 0; i < CLIENTS; i++) {
      expect(tagOf((await check.getScript(`own-${i}`)).content!)).toBe(lastOwn.get(i));
    }
    // The filter Exim reads is exactly the rendering of the script marked active.
    const active = list.lines.find((l) => / ACTIVE$/.test(l));
    const activeName = /^"([^"]+)"/.exec(active ?? '')?.[1];
    expect(activeName).toBeDefined();
    const activeContent = (await check.getScript(activeName!)).content!;
    const filter = readFileSync(join(homes, USER, '.forward'));
    expect(filter.equals(renderFilter(activeContent))).toBe(true);
    // No temp files or leftovers beside the scripts.
    const files = readdirSync(join(homes, USER, 'sieve')).filter((f) => !f.startsWith('.'));
    expect(files.sort()).toEqual(names.map((n) => `${n}.sieve`).sort());
    for (const c of clients) {
      await c.command('LOGOUT');
      c.close();
    }
  });

  it('both servers are still UP after all the sessions, never marked DOWN', async () => {
    await expectBothUp();
  });
});
