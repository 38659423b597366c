/**
 * Scale-out as deployed: a real haproxy (contrib/haproxy style, PROXY v2) in front
 * of two tsieved processes that share one storage directory.
 *   - the client's own address (a second loopback address, 127.0.0.2) reaches the
 *     instance's log lines, not haproxy's (127.0.0.1);
 *   - a direct connection from an address that is not a trusted proxy is refused;
 *   - several clients of the same user, spread over both instances by round robin,
 *     writing, activating and reading scripts at the same time, never see or leave
 *     a torn script, and the filter file always matches the active script.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { haveTools } from '../helpers/tools.js';
import { testCerts } from '../helpers/certs.js';
import { SieveTestClient } from '../helpers/client.js';
import { startTsieved, type RunningTsieved } from '../helpers/tsieved.js';
import { courierSha256 } from '../helpers/fixture.js';
import { freePort, startHaproxy, type RunningHaproxy } from '../server-proxy/haproxy.js';
import { renderFilter } from '../../src/storage/filter-file.js';

const USER = 'alice@example.org';
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
  const tag = m[1] as string;
  // Every line must carry the same tag, and the script must be complete.
  expect(text.split('\n').filter((l) => l.startsWith('# ') && !l.startsWith(`# ${tag} `) && !l.startsWith('# tag '))).toEqual([]);
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

describe.skipIf(!haveTools('haproxy'))('haproxy in front of two tsieved instances on shared storage', () => {
  let dir: string;
  let homes: string;
  const instances: RunningTsieved[] = [];
  let haproxy: RunningHaproxy | undefined;
  let front = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsieved-cluster-'));
    homes = join(dir, 'homes');
    mkdirSync(join(homes, USER), { recursive: true });
    const uid = process.getuid?.() ?? 1000;
    const gid = process.getgid?.() ?? 1000;
    writeFileSync(join(dir, 'userdb'), `${USER}\tuid=${uid}|gid=${gid}|home=${join(homes, USER)}|systempw=${courierSha256(PASSWORD)}\n`);
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
    instances.push(await startTsieved(toml), await startTsieved(toml));
    front = await freePort();
    haproxy = await startHaproxy(
      [
        'listen managesieve',
        `  bind 127.0.0.1:${front}`,
        '  balance roundrobin',
        ...instances.map((t, i) => `  server sieve${i + 1} 127.0.0.1:${t.port} send-proxy-v2`),
      ].join('\n'),
      [front],
    );
  });

  afterAll(async () => {
    await haproxy?.stop();
    await Promise.all(instances.map((t) => t.stop()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("logs the client's address from the PROXY header, not haproxy's", async () => {
    // Round robin alternates between the instances (haproxy's own start-up probe
    // shifts the phase): log in wrongly until both have seen a failure, bounded.
    const seen = (t: RunningTsieved): boolean => t.logLines().some((l) => l.event === 'auth-failure');
    for (let i = 0; i < 6 && !instances.every(seen); i++) {
      const reply = await failedLoginFrom('127.0.0.2', front);
      expect(reply, reply).toMatch(/^NO "/m);
      // pino writes asynchronously: give the line a moment to arrive.
      for (let w = 0; w < 20 && !instances.some((t) => t.logLines().filter((l) => l.event === 'auth-failure').length > 0); w++) {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    for (const t of instances) {
      for (let w = 0; w < 50 && !seen(t); w++) await new Promise((r) => setTimeout(r, 100));
      const failures = t.logLines().filter((l) => l.event === 'auth-failure');
      expect(failures.length).toBeGreaterThanOrEqual(1);
      for (const f of failures) expect(f.remote).toBe('127.0.0.2');
    }
  });

  it('refuses a direct connection from an address that is not a trusted proxy', async () => {
    const reply = await failedLoginFrom('127.0.0.2', instances[0]!.port);
    expect(reply).toBe('');
    const refused = (): boolean => instances[0]!.logLines().some((l) => l.event === 'untrusted-proxy' && l.remote === '127.0.0.2');
    for (let w = 0; w < 50 && !refused(); w++) await new Promise((r) => setTimeout(r, 100));
    expect(refused()).toBe(true);
  });

  it('clients of one user on both instances never corrupt each other\'s scripts', async () => {
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

    const check = clients[0]!;
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
});
