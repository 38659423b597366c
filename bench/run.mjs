// `npm run bench`: load tests of tsieved, and the same workloads against Dovecot's
// ManageSieve side by side when it is installed (dovecot-managesieved +
// dovecot-sieve), with the ratios. Everything runs on loopback in a temp directory;
// both servers are started here and stopped again. Workloads and sizes:
//   logins:   connect + STARTTLS + AUTHENTICATE PLAIN + PUTSCRIPT (4 KiB) + SETACTIVE
//             + LOGOUT, --concurrency clients (50) for --duration seconds;
//             logins per second, p50/p99 latency, server CPU time per login
//   idle:     --idle sessions (2000) connected, TLS, logged in, doing nothing;
//             RSS and PSS of the server's process tree, per session
//   validate: CHECKSCRIPT of a 1 MiB script (1,048,000 bytes: under both servers' limit);
//             then bench/validate.mjs: the validator in-process and `tsieved check`
//             beside Pigeonhole's sievec (1 MiB, 4 KiB, 45,000 elsif, 200,000-item list)
//   isolation (as root, bench/isolation.mjs): PAM logins with a process per session
//             as the user, side by side with Dovecot configured the same way
//   Every workload runs against tsieved once per --workers count (default "1,2":
//   one server process, then two sharing the listener), then against Dovecot.
// Options: --workers N,N..., --duration S, --warmup S, --concurrency N, --idle N, --users N,
//          --processes N (load generators), --only tsieved|dovecot, --no-dovecot,
//          --no-isolation, --json FILE (the isolation figures go to FILE.isolation.json)
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpus, totalmem, release } from 'node:os';
import { freePort, makeCert, makeUsers, makeWorkDir } from './lib/fixtures.mjs';
import { findDovecot, startDovecot } from './lib/dovecot.mjs';
import { startTsieved } from './lib/tsieved.mjs';
import { idleWorkload, loginWorkload, validationWorkload } from './lib/workloads.mjs';
import { round } from './lib/stats.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '15' },
    warmup: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '50' },
    workers: { type: 'string', default: '1,2' },
    idle: { type: 'string', default: '2000' },
    users: { type: 'string', default: '200' },
    processes: { type: 'string', default: '2' },
    only: { type: 'string' },
    'no-dovecot': { type: 'boolean', default: false },
    'no-isolation': { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const num = (name, min, max) => {
  const n = Number(values[name]);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number from ${min} to ${max}`);
  return n;
};
const opts = {
  durationMs: num('duration', 1, 600) * 1000,
  warmupMs: num('warmup', 0, 60) * 1000,
  concurrency: num('concurrency', 1, 1000),
  idle: num('idle', 0, 10000),
  usersCount: num('users', 1, 10000),
  processes: num('processes', 1, 16),
};

if (!existsSync(join(root, 'dist/cli.js'))) {
  console.error('bench: dist/cli.js is missing; run `npm run build` (npm run bench does)');
  process.exit(2);
}
const dovecotBinary = values['no-dovecot'] || values.only === 'tsieved' ? undefined : findDovecot();
const workerCounts = values.workers.split(',').map((w) => {
  const n = Number(w);
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new Error('--workers must be a list of numbers from 1 to 64, e.g. 1,2');
  return n;
});
/** Result key of tsieved with n workers ("tsieved" for one). */
const tsievedName = (n) => (n === 1 ? 'tsieved' : `tsieved-${n}w`);
const targets = [];
if (values.only !== 'dovecot') targets.push(...workerCounts.map(tsievedName));
if (dovecotBinary) targets.push('dovecot');
else if (values.only === 'dovecot') {
  console.error('bench: Dovecot with ManageSieve is not installed (dovecot-managesieved, dovecot-sieve)');
  process.exit(2);
}
if (targets.includes('dovecot') && process.getuid?.() !== 0) {
  console.error('bench: running Dovecot needs root (its master drops privileges itself); use --no-dovecot');
  process.exit(2);
}

const work = makeWorkDir();
const cert = makeCert(work.dir);
const users = makeUsers(opts.usersCount);
const results = {};
let current;
const cleanup = async () => {
  await current?.stop().catch(() => undefined);
  work.remove();
};
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));

try {
  for (const name of targets) {
    const log = (msg) => console.error(`[${name}] ${msg}`);
    const start = async () =>
      name.startsWith('tsieved')
        ? startTsieved({
            root,
            dir: work.dir,
            port: await freePort(),
            cert,
            users,
            workers: workerCounts.find((n) => tsievedName(n) === name),
          })
        : startDovecot({
            dir: work.dir,
            port: await freePort(),
            cert,
            users,
            binary: dovecotBinary,
            sessions: opts.idle,
          });
    log('starting');
    current = await start();
    const r = { version: current.version };
    log(`logins: ${opts.concurrency} clients for ${opts.durationMs / 1000}s`);
    r.login = await loginWorkload(current, {
      concurrency: opts.concurrency,
      processes: opts.processes,
      users,
      scriptBytes: 4096,
      durationMs: opts.durationMs,
      warmupMs: opts.warmupMs,
    });
    log('validation of a 1 MiB script');
    r.validate = await validationWorkload(current, { users, bytes: 1_048_000, repeat: 5 });
    await current.stop();
    current = undefined;
    if (opts.idle > 0) {
      // A fresh server: the heap the other workloads grew (and a garbage collection
      // during the measurement) would otherwise distort the per-session difference.
      log(`${opts.idle} idle sessions (fresh start)`);
      current = await start();
      r.idle = await idleWorkload(current, { count: opts.idle, processes: opts.processes, users, settleMs: 3000 });
      await current.stop();
      current = undefined;
    }
    results[name] = r;
  }
} finally {
  await cleanup();
}

const mib = (b) => round(b / 1048576, 1);
const kib = (b) => round(b / 1024, 1);
const rows = [
  ['logins per second', (r) => round(r.login.loginsPerSecond, 1)],
  ['login p50 latency (ms)', (r) => round(r.login.p50Ms, 1)],
  ['login p99 latency (ms)', (r) => round(r.login.p99Ms, 1)],
  ['login errors', (r) => r.login.errors],
  [
    'server CPU per login, all its processes (ms)',
    (r) => (r.login.serverCpuMsPerLogin === undefined ? '-' : round(r.login.serverCpuMsPerLogin, 2)),
  ],
  ['idle sessions held', (r) => r.idle?.sessions ?? '-'],
  ['memory with idle sessions, RSS (MiB)', (r) => (r.idle ? mib(r.idle.during.rss) : '-')],
  ['memory with idle sessions, PSS (MiB)', (r) => (r.idle ? mib(r.idle.during.pss) : '-')],
  ['processes with idle sessions', (r) => r.idle?.during.processes ?? '-'],
  ['RSS per idle session (KiB)', (r) => (r.idle ? kib(r.idle.rssPerSessionBytes) : '-')],
  ['PSS per idle session (KiB)', (r) => (r.idle ? kib(r.idle.pssPerSessionBytes) : '-')],
  ['CHECKSCRIPT 1 MiB, median (ms)', (r) => round(r.validate.medianMs, 1)],
  ['CHECKSCRIPT 1 MiB, result', (r) => r.validate.status],
];
const names = Object.keys(results);
const ours = names.filter((n) => n.startsWith('tsieved'));
const withDovecot = names.includes('dovecot');
const header = ['metric', ...names.map((n) => results[n].version)];
if (withDovecot) header.push(...ours.map((n) => `ratio ${results[n].version}/dovecot`));
const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
for (const [label, get] of rows) {
  const cells = names.map((n) => get(results[n]));
  if (withDovecot) {
    const b = get(results.dovecot);
    for (const n of ours) {
      const a = get(results[n]);
      cells.push(typeof a === 'number' && typeof b === 'number' && b !== 0 ? Number((a / b).toPrecision(3)) : '-');
    }
  }
  lines.push(`| ${label} | ${cells.join(' | ')} |`);
}
const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${mib(totalmem())} MiB RAM, Linux ${release()}, Node ${process.version}`;
console.log(`\nmachine: ${machine}`);
console.log(
  `workload: ${opts.concurrency} concurrent clients, ${opts.durationMs / 1000}s (+${opts.warmupMs / 1000}s warm-up), ${opts.idle} idle sessions, ${opts.usersCount} users, ${opts.processes} load-generator processes\n`,
);
console.log(lines.join('\n'));
for (const n of names) {
  for (const s of [...results[n].login.errorSamples, ...(results[n].idle?.errorSamples ?? [])])
    console.log(`${n} error: ${s}`);
}
if (values.json) writeFileSync(values.json, JSON.stringify({ machine, opts, results }, null, 2) + '\n');

// The validator alone, side by side with Pigeonhole's sievec (bench/validate.mjs).
if (values.only !== 'dovecot') {
  const child = spawn(
    process.execPath,
    [join(root, 'bench/validate.mjs'), ...(values.json ? ['--json', `${values.json}.validate.json`] : [])],
    { stdio: 'inherit' },
  );
  const code = await new Promise((r) => child.once('exit', (c) => r(c)));
  if (code !== 0) process.exitCode = code ?? 1;
}

// Per-session isolation (PAM helper + file broker against Dovecot's per-user
// processes) needs root for users and PAM service files; its own program and table.
// Its sizes follow this run's: the defaults give its defaults (50 users, 50 and 500
// idle sessions, 200 full sessions at 20), a tiny run stays tiny.
if (!values['no-isolation'] && values.only !== 'dovecot') {
  if (process.getuid?.() !== 0) {
    console.log('\nisolation figures skipped: they need root (bench/isolation.mjs)');
  } else {
    const full = opts.durationMs >= 10_000;
    const args = [
      join(root, 'bench/isolation.mjs'),
      '--users',
      String(Math.min(50, opts.usersCount)),
      '--idle-small',
      String(Math.min(50, opts.idle)),
      '--idle-large',
      String(Math.min(500, opts.idle)),
      '--sessions',
      String(full ? 200 : 4 * opts.concurrency),
      '--concurrent',
      String(Math.min(20, opts.concurrency)),
      '--logins',
      String(full ? 40 : 5),
      '--warmup',
      String(full ? 10 : 1),
      '--warmup-sessions',
      String(full ? 2000 : opts.concurrency),
    ];
    if (values['no-dovecot']) args.push('--no-dovecot');
    if (values.json) args.push('--json', `${values.json}.isolation.json`);
    const child = spawn(process.execPath, args, { stdio: 'inherit' });
    // Passed on, so that it removes its users and PAM service file when we are stopped.
    for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
    const code = await new Promise((r) => child.once('exit', (c) => r(c)));
    if (code !== 0) process.exitCode = code ?? 1;
  }
}
