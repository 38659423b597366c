// Per-session isolation, side by side with Dovecot's ManageSieve configured the same
// way: both log Unix accounts in through one PAM service (pam_pwdfile, $6$ hashes;
// account pam_unix; session pam_permit) with a session and credentials, and both
// run a process per session as the user (tsieved: the PAM helper and its file
// broker; Dovecot: the managesieve process). `npm run bench` runs it as root after
// the other workloads (skip with --no-isolation); alone: `node bench/isolation.mjs`.
//   pam:    the bare PAM transaction (pam_start to pam_open_session, in a small C
//           program in this process tree, no server; also without pam_start, which
//           tsieved's helper makes before a login arrives), and AUTHENTICATE to OK
//           (after STARTTLS, the AUTHENTICATE command's round trip only), sequential.
//           The bare transaction is measured at the start, and again interleaved
//           with each server's logins (one right before each, for the same user, by
//           a program that waits for the next name): the machine's speed moves in a
//           run, and the two figures compare best when taken in the same seconds
//   idle:   PSS per idle logged-in TLS session, with --idle-small (50) and
//           --idle-large (500) sessions, each on a fresh server; for tsieved also
//           the helper + broker processes alone
//   full:   --sessions (200) full sessions (connect, STARTTLS, AUTHENTICATE,
//           PUTSCRIPT 4 KiB, SETACTIVE, LOGOUT), --concurrent (20) at a time; p50/p99,
//           and the CPU time all the server's processes used, per session (less
//           noisy than wall-clock times on a shared machine)
// Both servers are measured warm, as they run in service: first --warmup-sessions
// (2000) full sessions, unmeasured, of the accounts the measured logins do not use,
// then --warmup (20: ten for each of two workers) logins of those accounts, then
// the measured logins and sessions. A fresh Node process goes on compiling its hot
// code for thousands of sessions: V8's log of each of two workers (--log-code)
// showed 10-35 functions a second optimized over its first 300 sessions, and still
// 3-5 a second after 1,500, each costing its compiler thread milliseconds of CPU.
// Dovecot's processes are C.
// --warmup 0 --warmup-sessions 0 measures from a cold start (the first login is
// never measured).
// Needs root, gcc and the PAM headers, useradd/userdel, openssl, a build. Users,
// the service file and directories are temporary and removed afterwards.
// Options: --users N (50), --logins N (40), --warmup N, --warmup-sessions N,
//          --idle-small N, --idle-large N,
//          --sessions N, --concurrent N, --workers N (tsieved's server processes;
//          default: half the cores, rounded up, as [server] workers = "auto"
//          resolves with PAM in src/cluster/primary.ts),
//          --no-dovecot, --json FILE
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import { SieveClient } from './lib/client.mjs';
import { findDovecot, startDovecot } from './lib/dovecot.mjs';
import { freePort, makeCert, makeWorkDir } from './lib/fixtures.mjs';
import { processTree, treeCpuMs } from './lib/procmem.mjs';
import { percentile, round } from './lib/stats.mjs';
import { startTsieved } from './lib/tsieved.mjs';
import { idleWorkload, loginWorkload } from './lib/workloads.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '50' },
    logins: { type: 'string', default: '40' },
    'idle-small': { type: 'string', default: '50' },
    'idle-large': { type: 'string', default: '500' },
    sessions: { type: 'string', default: '200' },
    concurrent: { type: 'string', default: '20' },
    workers: { type: 'string', default: String(Math.ceil(availableParallelism() / 2)) },
    warmup: { type: 'string', default: '20' },
    'warmup-sessions': { type: 'string', default: '2000' },
    'no-dovecot': { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const N = (k) => Number(values[k]);

if (process.getuid?.() !== 0) {
  console.error('bench/isolation.mjs: needs root (useradd, /etc/pam.d, the PAM helper)');
  process.exit(2);
}
for (const f of ['dist/cli.js', 'helper/build/tsieved-pam-helper', 'helper/build/tsieved-broker']) {
  if (!existsSync(join(root, f))) {
    console.error(`bench/isolation.mjs: ${f} is missing; run \`npm run build\``);
    process.exit(2);
  }
}
const moduleDir = [
  '/lib/x86_64-linux-gnu/security',
  '/usr/lib/x86_64-linux-gnu/security',
  '/lib/security',
  '/usr/lib/security',
].find((d) => existsSync(join(d, 'pam_pwdfile.so')));
if (!moduleDir) {
  console.error('bench/isolation.mjs: pam_pwdfile is not installed (libpam-pwdfile)');
  process.exit(2);
}

const work = makeWorkDir();
const tag = randomBytes(3).toString('hex');
const created = [];
const service = `tsieved-bench-${tag}`;
let current;
async function cleanup() {
  await current?.stop().catch(() => undefined);
  rmSync(join('/etc/pam.d', service), { force: true });
  // A session process of the user may still be ending: retry, then force.
  for (const u of created) {
    for (let i = 0; i < 20 && spawnSync('userdel', [u], { stdio: 'ignore' }).status === 8; i++)
      await new Promise((r) => setTimeout(r, 100));
    spawnSync('userdel', ['-f', u], { stdio: 'ignore' });
  }
  work.remove();
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => void cleanup().then(() => process.exit(130)));

/** Unix accounts with homes below the work dir, one password, in a pam_pwdfile file. */
function makeAccounts(count) {
  const password = `bench-${randomBytes(4).toString('hex')}`;
  const homes = join(work.dir, 'homes');
  mkdirSync(homes, { mode: 0o755 });
  const hash = execFileSync('openssl', ['passwd', '-6', password], { encoding: 'utf8' }).trim();
  const users = [];
  for (let i = 0; i < count; i++) {
    const name = `tsb${tag}${i.toString(36)}`;
    const home = join(homes, name);
    execFileSync('useradd', ['-M', '-U', '-d', home, '-s', '/usr/sbin/nologin', name], { stdio: 'pipe' });
    created.push(name);
    mkdirSync(home, { mode: 0o700 });
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }));
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }));
    chownSync(home, uid, gid);
    users.push(name);
  }
  const pwdfile = join(work.dir, 'pwdfile');
  writeFileSync(pwdfile, users.map((u) => `${u}:${hash}`).join('\n') + '\n', { mode: 0o600 });
  writeFileSync(
    join('/etc/pam.d', service),
    [
      `auth required pam_pwdfile.so pwdfile=${pwdfile}`,
      'account required pam_unix.so',
      'session required pam_permit.so',
    ].join('\n') + '\n',
  );
  return { users, password, homes };
}

// The PAM transaction alone, as the helper makes it up to the session being open.
const PAMTIME = String.raw`
#include <security/pam_appl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static const char *pw;
static int conv(int n, const struct pam_message **m, struct pam_response **r, void *d) {
    (void)d; struct pam_response *a = calloc((size_t)n, sizeof *a);
    for (int i = 0; i < n; i++) if (m[i]->msg_style == PAM_PROMPT_ECHO_OFF) a[i].resp = strdup(pw);
    *r = a; return PAM_SUCCESS;
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
static int transaction(const char *service, const char *user) {
    struct pam_conv c = {conv, NULL}; pam_handle_t *h;
    double t0 = now();
    if (pam_start(service, user, &c, &h) != PAM_SUCCESS) return 2;
    double ta = now();
    if (pam_authenticate(h, PAM_DISALLOW_NULL_AUTHTOK) != PAM_SUCCESS) return 3;
    if (pam_acct_mgmt(h, 0) != PAM_SUCCESS) return 4;
    struct passwd *p = getpwnam(user);
    if (!p || initgroups(p->pw_name, p->pw_gid) != 0) return 5;
    if (pam_setcred(h, PAM_ESTABLISH_CRED) != PAM_SUCCESS) return 6;
    if (pam_open_session(h, 0) != PAM_SUCCESS) return 7;
    double t1 = now();
    pam_close_session(h, 0); pam_setcred(h, PAM_DELETE_CRED); pam_end(h, PAM_SUCCESS);
    printf("%.3f %.3f\n", t1 - t0, t1 - ta);
    fflush(stdout);
    return 0;
}
/* SERVICE PASSWORD: one transaction per user name read from stdin, a line each. */
int main(int argc, char **argv) {
    if (argc != 3) return 1;
    pw = argv[2];
    char user[256];
    while (fgets(user, sizeof user, stdin)) {
        user[strcspn(user, "\n")] = '\0';
        if (transaction(argv[1], user) != 0) return 1;
    }
    return 0;
}
`;

function pamtimeProgram() {
  const src = join(work.dir, 'pamtime.c');
  const bin = join(work.dir, 'pamtime');
  writeFileSync(src, PAMTIME);
  execFileSync('gcc', ['-O2', '-o', bin, src, '-lpam']);
  return bin;
}

/** The bare transaction on demand: one per call, for the user given, in one process. */
function barePamServer(bin, password) {
  const child = spawn(bin, [service, password], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const waiting = [];
  lines.on('line', (line) => waiting.shift()?.resolve(line.split(' ').map(Number)));
  child.once('exit', (code) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`the PAM timing program ended (${code})`));
  });
  return {
    /** [whole, without pam_start] in ms. */
    one(user) {
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        child.stdin.write(`${user}\n`);
      });
    },
    close() {
      child.stdin.end();
    },
  };
}

/**
 * `count` bare transactions one after another, after one that warms the program up:
 * whole, and without pam_start (reading the PAM configuration and loading its
 * modules), which tsieved's PAM helper does before a login arrives.
 */
async function barePam(bin, accounts, count) {
  const bare = barePamServer(bin, accounts.password);
  const whole = [];
  const withoutStart = [];
  try {
    for (let i = 0; i <= count; i++) {
      const [w, s] = await bare.one(accounts.users[i % accounts.users.length]);
      if (i === 0) continue;
      whole.push(w);
      withoutStart.push(s);
    }
  } finally {
    bare.close();
  }
  return { whole, withoutStart };
}

async function authenticateToOk(server, accounts, count, warmup, bare) {
  const times = [];
  const bareTimes = { whole: [], withoutStart: [] };
  const n = accounts.users.length;
  await bare.one(accounts.users[0]); // the program's first transaction warms it up
  // Warm-up logins of the last users, so that the measured ones (from the first user
  // on) are each user's first login on this server whenever there are enough users.
  for (let i = -Math.max(1, warmup); i < count; i++) {
    const user = accounts.users[(i + n) % n];
    const c = await SieveClient.connect('127.0.0.1', server.port);
    await c.starttls();
    if (i >= 0) {
      // The same user's bare transaction, right before the login.
      const [whole, withoutStart] = await bare.one(user);
      bareTimes.whole.push(whole);
      bareTimes.withoutStart.push(withoutStart);
    }
    const t0 = performance.now();
    await c.authenticatePlain(user, accounts.password);
    if (i >= 0) times.push(performance.now() - t0);
    await c.logout().catch(() => c.destroy());
  }
  return { times, bareTimes };
}

/** PSS of the server's descendants alone (tsieved: helpers and brokers). */
function childrenPss(pid) {
  let pss = 0;
  for (const p of processTree(pid)) {
    if (p === pid) continue;
    try {
      pss += Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'))?.[1] ?? 0) * 1024;
    } catch {
      /* gone */
    }
  }
  return pss;
}

const stat = (ms) => ({
  n: ms.length,
  p50: round(percentile(ms, 50), 1),
  p95: round(percentile(ms, 95), 1),
  p99: round(percentile(ms, 99), 1),
});

const results = { opts: values, servers: {} };
try {
  // Enough accounts that the measured logins are each user's first on the server.
  const accounts = makeAccounts(Math.max(N('users'), N('logins') + N('warmup')));
  // The workloads' users: the first --users accounts (the others only warm up).
  const users = { users: accounts.users.slice(0, N('users')), password: accounts.password };
  // The warm-up sessions' users: those the measured logins do not use, so that each
  // measured login stays its user's first on the server.
  const spare = accounts.users.slice(N('logins'));
  const warmupUsers = { users: spare.length > 0 ? spare : accounts.users, password: accounts.password };
  const cert = makeCert(work.dir);
  const pamtime = pamtimeProgram();
  const bare = await barePam(pamtime, accounts, N('logins'));
  results.barePamMs = stat(bare.whole);
  results.barePamWithoutStartMs = stat(bare.withoutStart);
  console.error(
    `[pam] bare PAM transaction p50 ${results.barePamMs.p50} ms, without pam_start ${results.barePamWithoutStartMs.p50} ms`,
  );
  const dovecot = values['no-dovecot'] ? undefined : findDovecot();
  const targets = ['tsieved', ...(dovecot ? ['dovecot'] : [])];
  for (const name of targets) {
    const log = (m) => console.error(`[${name}] ${m}`);
    const start = async (sessions) =>
      name === 'tsieved'
        ? startTsieved({
            root,
            dir: work.dir,
            port: await freePort(),
            cert,
            users,
            pam: { service, homes: accounts.homes },
            workers: N('workers'),
          })
        : startDovecot({
            dir: work.dir,
            port: await freePort(),
            cert,
            users,
            binary: dovecot,
            sessions,
            pam: { service },
          });
    const r = {};
    current = await start(N('idle-large'));
    r.version = current.version;
    const fullSessions = (logins, who = users) =>
      loginWorkload(current, {
        concurrency: N('concurrent'),
        processes: 2,
        users: who,
        scriptBytes: 4096,
        durationMs: 600_000,
        warmupMs: 0,
        logins,
      });
    if (N('warmup-sessions') > 0) {
      log(`${N('warmup-sessions')} full sessions to warm up, ${N('concurrent')} at a time`);
      await fullSessions(N('warmup-sessions'), warmupUsers);
    }
    log(`AUTHENTICATE to OK, ${N('logins')} sequential, each after a bare PAM transaction`);
    const barePamNow = barePamServer(pamtime, accounts.password);
    try {
      const measured = await authenticateToOk(current, accounts, N('logins'), N('warmup'), barePamNow);
      r.authenticateToOkMs = stat(measured.times);
      r.barePamInterleavedMs = stat(measured.bareTimes.whole);
      r.barePamInterleavedWithoutStartMs = stat(measured.bareTimes.withoutStart);
    } finally {
      barePamNow.close();
    }
    log(`${N('sessions')} full sessions, ${N('concurrent')} at a time`);
    const cpuBefore = treeCpuMs(current.pid);
    const full = await fullSessions(N('sessions'));
    // Let the last sessions end (and be reaped) before reading the CPU time.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const cpuMs = treeCpuMs(current.pid) - cpuBefore;
    r.full = {
      cpuMsPerSession: round(cpuMs / Math.max(1, full.logins), 2),
      sessions: full.logins,
      errors: full.errors,
      errorSamples: full.errorSamples,
      p50Ms: round(full.p50Ms, 1),
      p99Ms: round(full.p99Ms, 1),
    };
    await current.stop();
    current = undefined;
    r.idle = {};
    for (const count of [N('idle-small'), N('idle-large')]) {
      log(`${count} idle sessions (fresh start)`);
      current = await start(count);
      const server = current;
      const before = childrenPss(server.pid);
      const idle = await idleWorkload(server, {
        count,
        processes: 2,
        users,
        settleMs: 2000,
        measure: () => childrenPss(server.pid),
      });
      r.idle[count] = {
        sessions: idle.sessions,
        errors: idle.errors,
        pssPerSessionKiB: round(idle.pssPerSessionBytes / 1024, 1),
        rssPerSessionKiB: round(idle.rssPerSessionBytes / 1024, 1),
        processes: idle.during.processes,
        // tsieved: the per-session processes alone (PAM helper + file broker).
        childrenPssPerSessionKiB: round((idle.extra - before) / Math.max(1, idle.sessions) / 1024, 1),
      };
      await current.stop();
      current = undefined;
    }
    results.servers[name] = r;
  }
} finally {
  await cleanup();
}

const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 1048576)} MiB RAM, Linux ${release()}, Node ${process.version}`;
const names = Object.keys(results.servers);
const rows = [
  [
    'bare PAM transaction (pam_start..pam_open_session), p50 / p95 (ms)',
    () => `${results.barePamMs.p50} / ${results.barePamMs.p95}`,
  ],
  [
    'bare PAM transaction without pam_start (pam_authenticate..pam_open_session), p50 (ms)',
    () => results.barePamWithoutStartMs.p50,
  ],
  ['AUTHENTICATE to OK, p50 / p95 (ms)', (r) => `${r.authenticateToOkMs.p50} / ${r.authenticateToOkMs.p95}`],
  ['AUTHENTICATE to OK minus bare PAM, p50 (ms)', (r) => round(r.authenticateToOkMs.p50 - results.barePamMs.p50, 1)],
  [
    'AUTHENTICATE to OK minus bare PAM without pam_start, p50 (ms)',
    (r) => round(r.authenticateToOkMs.p50 - results.barePamWithoutStartMs.p50, 1),
  ],
  [
    'bare PAM transaction interleaved with these logins, with / without pam_start, p50 (ms)',
    (r) => `${r.barePamInterleavedMs.p50} / ${r.barePamInterleavedWithoutStartMs.p50}`,
  ],
  [
    'AUTHENTICATE to OK minus the interleaved bare PAM, with / without pam_start, p50 (ms)',
    (r) =>
      `${round(r.authenticateToOkMs.p50 - r.barePamInterleavedMs.p50, 1)} / ${round(r.authenticateToOkMs.p50 - r.barePamInterleavedWithoutStartMs.p50, 1)}`,
  ],
  ...Object.keys(results.servers[names[0]]?.idle ?? {}).flatMap((n) => [
    [`PSS per idle session, ${n} sessions, whole server (KiB)`, (r) => r.idle[n]?.pssPerSessionKiB],
    [
      `PSS per idle session, ${n} sessions, per-session processes only (KiB)`,
      (r) => r.idle[n]?.childrenPssPerSessionKiB,
    ],
  ]),
  [`${N('sessions')} full sessions at ${N('concurrent')}: p50 / p99 (ms)`, (r) => `${r.full.p50Ms} / ${r.full.p99Ms}`],
  ['full sessions: CPU time of all server processes per session (ms)', (r) => r.full.cpuMsPerSession],
  ['errors', (r) => r.full.errors + Object.values(r.idle).reduce((n, i) => n + i.errors, 0)],
];
const header = ['metric', ...names.map((n) => results.servers[n].version)];
const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
for (const [label, get] of rows) lines.push(`| ${label} | ${names.map((n) => get(results.servers[n])).join(' | ')} |`);
console.log(`\nisolation (PAM, a process per session as the user); machine: ${machine}\n`);
console.log(lines.join('\n'));
for (const n of names) for (const s of results.servers[n].full.errorSamples) console.log(`${n} error: ${s}`);
if (values.json) writeFileSync(values.json, JSON.stringify({ machine, ...results }, null, 2) + '\n');
