// Benchmark of per-session isolation (issue 4): time from AUTHENTICATE to OK, and
// memory per idle authenticated session, for
//   pam-pwdfile   backend = "pam", pam_pwdfile ($6$ hashes)     -> helper + broker
//   pam-unix      backend = "pam", pam_unix (yescrypt via chpasswd) -> helper + broker
//   userdb-none   backend = "userdb" ($1$), isolation = "none"  -> in-process store
//   userdb-proc   backend = "userdb" ($1$), isolation = "process" -> spawned broker
// Needs root (PAM helper, useradd, /etc/pam.d) and a build (`npm run build`).
// Everything is temporary: users, service files and directories are removed after.
// Options: --logins N (sequential logins per setup, 30), --concurrency N (parallel
// logins, 10), --idle N (idle sessions for the memory figure, 20), --json FILE
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    logins: { type: 'string', default: '30' },
    concurrency: { type: 'string', default: '10' },
    idle: { type: 'string', default: '20' },
    json: { type: 'string' },
  },
});
const LOGINS = Number(values.logins);
const CONCURRENCY = Number(values.concurrency);
const IDLE = Number(values.idle);

if (process.getuid?.() !== 0) {
  console.error('bench/pam.mjs: needs root (PAM helper, useradd, /etc/pam.d)');
  process.exit(2);
}
for (const f of ['dist/cli.js', 'helper/build/tsieved-broker', 'helper/build/tsieved-pam-helper']) {
  if (!existsSync(join(root, f))) {
    console.error(`bench/pam.mjs: ${f} is missing; run \`npm run build\``);
    process.exit(2);
  }
}

// ---------- fixtures ----------
const tag = randomBytes(3).toString('hex');
const dir = mkdtempSync(join(tmpdir(), 'tsieved-bench-pam-'));
chmodSync(dir, 0o755);
const homes = join(dir, 'homes');
mkdirSync(homes, { mode: 0o755 });
const USERS = Math.max(IDLE, CONCURRENCY, 1);
const unixUsers = [];
const services = [];
const servers = [];

function cleanup() {
  for (const s of servers) s.kill();
  for (const s of services) rmSync(join('/etc/pam.d', s), { force: true });
  for (const u of unixUsers) {
    try {
      execFileSync('userdel', [u.name], { stdio: 'pipe' });
    } catch {
      /* gone */
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

function makeUnixUsers() {
  const pwdLines = [];
  for (let i = 0; i < USERS; i++) {
    const name = `tsb${tag}${i.toString(36)}`;
    const password = `pw-${randomBytes(6).toString('hex')}`;
    const home = join(homes, name);
    execFileSync('useradd', ['-M', '-U', '-d', home, '-s', '/usr/sbin/nologin', name], { stdio: 'pipe' });
    const user = { name, password, home };
    unixUsers.push(user);
    execFileSync('chpasswd', [], { input: `${name}:${password}\n`, stdio: ['pipe', 'pipe', 'pipe'] });
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }));
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }));
    mkdirSync(home, { mode: 0o700 });
    chownSync(home, uid, gid);
    pwdLines.push(`${name}:${execFileSync('openssl', ['passwd', '-6', password], { encoding: 'utf8' }).trim()}`);
  }
  const pwdfile = join(dir, 'pwdfile');
  writeFileSync(pwdfile, pwdLines.join('\n') + '\n', { mode: 0o600 });
  return pwdfile;
}

/**
 * Virtual users, each with a uid of their own (process isolation), or all with the
 * server's uid (isolation "none": the single-uid virtual-mail set-up; as root,
 * tsieved refuses in-process storage for any other uid).
 */
function makeVirtualUsers(kind) {
  const users = [];
  const lines = [];
  for (let i = 0; i < USERS; i++) {
    const name = `v${i}@bench.example`;
    const password = `vpw-${i}`;
    const uid = kind === 'own-uid' ? 43000 + i : process.getuid();
    const home = join(homes, `${kind}-v${i}`);
    mkdirSync(home, { mode: 0o700 });
    chownSync(home, uid, uid);
    const hash = execFileSync('openssl', ['passwd', '-1', password], { encoding: 'utf8' }).trim();
    lines.push(`${name}\tuid=${uid}|gid=${uid}|home=${home}|systempw=${hash}`);
    users.push({ name, password });
  }
  const userdb = join(dir, `userdb-${kind}`);
  writeFileSync(userdb, lines.join('\n') + '\n', { mode: 0o600 });
  return { users, userdb };
}

function service(name, lines) {
  const s = `tsieved-bench-${tag}-${name}`;
  writeFileSync(join('/etc/pam.d', s), lines.join('\n') + '\n');
  services.push(s);
  return s;
}

function configToml(auth, isolation) {
  return `
[server]
listen = ["127.0.0.1:0"]
max_connections_per_ip = 10000
auth_failure_delay_ms = 0
[auth]
allow_plaintext = true
${auth}
[storage]
scripts_dir = "{home}/sieve"
filter_path = "{home}/.forward"
roots = ["${homes}"]
isolation = "${isolation}"
[sieve]
capabilities = ["fileinto", "envelope"]
[log]
level = "info"
`;
}

// ---------- server and client ----------
async function startServer(name, toml) {
  const file = join(dir, `${name}.toml`);
  writeFileSync(file, toml);
  const child = spawn(process.execPath, [join(root, 'dist/tsieved.cjs'), 'serve', '--config', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  servers.push(child);
  let out = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: no listening line\n${out}`)), 20_000);
    const on = (chunk) => {
      out += chunk;
      const m = /"event":"listening"[^\n]*"port":(\d+)/.exec(out) ?? /"port":(\d+)[^\n]*"event":"listening"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout.on('data', on);
    child.stderr.on('data', on);
    child.once('exit', (code) => reject(new Error(`${name}: exited ${code}\n${out}`)));
  });
  return {
    child,
    port,
    stop: () => new Promise((r) => (child.exitCode !== null ? r() : (child.once('exit', r), child.kill('SIGTERM')))),
  };
}

class Client {
  static async open(port) {
    const c = new Client();
    c.socket = connect({ port, host: '127.0.0.1' });
    c.buf = '';
    c.waiters = [];
    c.socket.setEncoding('utf8');
    c.socket.on('data', (d) => {
      c.buf += d;
      c.pump();
    });
    c.socket.on('error', () => undefined);
    await new Promise((r, j) => (c.socket.once('connect', r), c.socket.once('error', j)));
    await c.response();
    return c;
  }
  pump() {
    while (this.waiters.length) {
      const m = /^(OK|NO|BYE)\b.*\r\n/m.exec(this.buf);
      if (!m) return;
      const line = m[0];
      this.buf = this.buf.slice(m.index + line.length);
      this.waiters.shift()(line.trim());
    }
  }
  response() {
    return new Promise((r) => {
      this.waiters.push(r);
      this.pump();
    });
  }
  async command(line) {
    this.socket.write(line + '\r\n');
    return this.response();
  }
  async authenticate(user, password) {
    const ir = Buffer.from(`\0${user}\0${password}`).toString('base64');
    return this.command(`AUTHENTICATE "PLAIN" "${ir}"`);
  }
  close() {
    this.socket.destroy();
  }
}

// ---------- measurements ----------
function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, p50: +q(0.5).toFixed(1), p95: +q(0.95).toFixed(1), max: +s[s.length - 1].toFixed(1) };
}

async function oneLogin(port, u) {
  const c = await Client.open(port);
  const t = performance.now();
  const r = await c.authenticate(u.name, u.password);
  const ms = performance.now() - t;
  if (!r.startsWith('OK')) throw new Error(`login of ${u.name} failed: ${r}`);
  await c.command('LOGOUT');
  c.close();
  return ms;
}

async function loginLatency(port, users) {
  await oneLogin(port, users[0]); // warm-up
  const seq = [];
  for (let i = 0; i < LOGINS; i++) seq.push(await oneLogin(port, users[i % users.length]));
  const par = [];
  const t0 = performance.now();
  await Promise.all(users.slice(0, CONCURRENCY).map(async (u) => par.push(await oneLogin(port, u))));
  const wall = performance.now() - t0;
  return { sequential: stats(seq), concurrent: { ...stats(par), clients: CONCURRENCY, wallMs: +wall.toFixed(1) } };
}

/** The server and all its descendants (helpers, brokers). */
function tree(pid) {
  const children = new Map();
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const ppid = Number(/^PPid:\s*(\d+)/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(p));
    } catch {
      /* vanished */
    }
  }
  const out = [];
  const walk = (p) => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

function memory(pid) {
  let rss = 0;
  let pss = 0;
  const pids = tree(pid);
  for (const p of pids) {
    try {
      const roll = readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
      rss += Number(/^Rss:\s+(\d+)/m.exec(roll)[1]);
      pss += Number(/^Pss:\s+(\d+)/m.exec(roll)[1]);
    } catch {
      /* vanished */
    }
  }
  return { rssKiB: rss, pssKiB: pss, processes: pids.length };
}

async function idleMemory(server, users) {
  await new Promise((r) => setTimeout(r, 300));
  const before = memory(server.child.pid);
  const clients = [];
  for (let i = 0; i < IDLE; i++) {
    const u = users[i % users.length];
    const c = await Client.open(server.port);
    const r = await c.authenticate(u.name, u.password);
    if (!r.startsWith('OK')) throw new Error(`login failed: ${r}`);
    await c.command('LISTSCRIPTS'); // the store is open
    clients.push(c);
  }
  await new Promise((r) => setTimeout(r, 500));
  const after = memory(server.child.pid);
  for (const c of clients) c.close();
  return {
    sessions: IDLE,
    rssPerSessionKiB: Math.round((after.rssKiB - before.rssKiB) / IDLE),
    pssPerSessionKiB: Math.round((after.pssKiB - before.pssKiB) / IDLE),
    processesPerSession: +((after.processes - before.processes) / IDLE).toFixed(2),
  };
}

// ---------- run ----------
const results = { cpus: cpus().length, node: process.version, logins: LOGINS, setups: {} };
try {
  const pwdfile = makeUnixUsers();
  const shared = makeVirtualUsers('server-uid');
  const own = makeVirtualUsers('own-uid');
  const pwdService = service('pwdfile', [
    `auth required pam_pwdfile.so pwdfile=${pwdfile}`,
    'account required pam_unix.so',
    'session required pam_permit.so',
  ]);
  const unixService = service('unix', [
    'auth required pam_unix.so',
    'account required pam_unix.so',
    'session required pam_permit.so',
  ]);
  const setups = [
    ['pam-pwdfile', `backend = "pam"\npam_service = "${pwdService}"`, 'process', unixUsers],
    ['pam-unix', `backend = "pam"\npam_service = "${unixService}"`, 'process', unixUsers],
    ['userdb-none', `backend = "userdb"\nuserdb = "${shared.userdb}"`, 'none', shared.users],
    ['userdb-proc', `backend = "userdb"\nuserdb = "${own.userdb}"`, 'process', own.users],
  ];
  for (const [name, auth, isolation, users] of setups) {
    const server = await startServer(name, configToml(auth, isolation));
    try {
      const latency = await loginLatency(server.port, users);
      const mem = await idleMemory(server, users);
      results.setups[name] = { isolation, authenticateToOkMs: latency, idle: mem };
      console.log(
        `${name.padEnd(12)} AUTHENTICATE->OK p50 ${latency.sequential.p50} ms, p95 ${latency.sequential.p95} ms ` +
          `(${CONCURRENCY} parallel: p50 ${latency.concurrent.p50} ms, max ${latency.concurrent.max} ms); ` +
          `idle session: RSS ${mem.rssPerSessionKiB} KiB, PSS ${mem.pssPerSessionKiB} KiB, ${mem.processesPerSession} processes`,
      );
    } finally {
      await server.stop();
    }
  }
  if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 2) + '\n');
} finally {
  cleanup();
}
