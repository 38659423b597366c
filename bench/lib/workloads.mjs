// The workloads of `npm run bench`, each run against one started server from
// separate load-generator processes: login throughput and latency, memory per idle
// session, validation time of a 1 MiB script.
// Must not know: how the server was started (tsieved.mjs, dovecot.mjs).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SieveClient } from './client.mjs';
import { makeScript, scriptVariant } from './fixtures.mjs';
import { treeCpuMs, treeMemory } from './procmem.mjs';
import { median, percentile } from './stats.mjs';

const LOADGEN = fileURLToPath(new URL('./loadgen.mjs', import.meta.url));

function startLoadgen(job) {
  const child = spawn(process.execPath, [LOADGEN, JSON.stringify(job)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = [];
  const waiters = [];
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
      waiters.shift()?.();
    }
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    child,
    exited,
    async nextLine() {
      while (lines.length === 0) {
        const more = new Promise((r) => waiters.push(r));
        const code = await Promise.race([more.then(() => undefined), exited]);
        if (code !== undefined && lines.length === 0)
          throw new Error(`load generator exited (${code}) without a result`);
      }
      return lines.shift();
    },
  };
}

function split(total, parts) {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

/**
 * connect + STARTTLS + AUTHENTICATE PLAIN + PUTSCRIPT + SETACTIVE + LOGOUT, `concurrency`
 * clients, for `durationMs`, or `logins` of them in all when that is given.
 */
export async function loginWorkload(server, opts) {
  let first = 0;
  const quotas = opts.logins !== undefined ? split(opts.logins, opts.processes) : [];
  const gens = split(opts.concurrency, opts.processes).map((clients, i) => {
    const job = {
      mode: 'login',
      host: '127.0.0.1',
      port: server.port,
      clients,
      firstClient: first,
      users: opts.users.users,
      password: opts.users.password,
      scriptBytes: opts.scriptBytes,
      durationMs: opts.durationMs,
      warmupMs: opts.warmupMs,
      ...(opts.logins !== undefined ? { logins: quotas[i] } : {}),
    };
    first += clients;
    return startLoadgen(job);
  });
  // CPU time of every server process over the measured window (after the warm-up):
  // what a login costs the server, whatever else shares the machine's cores.
  const cpu = {};
  const timers =
    opts.logins === undefined
      ? [
          setTimeout(() => (cpu.start = treeCpuMs(server.pid)), opts.warmupMs),
          setTimeout(() => (cpu.end = treeCpuMs(server.pid)), opts.warmupMs + opts.durationMs),
        ]
      : [];
  const results = await Promise.all(gens.map((g) => g.nextLine()));
  await Promise.all(gens.map((g) => g.exited));
  timers.forEach(clearTimeout);
  const latencies = results.flatMap((r) => r.latencies);
  const measuredMs = Math.max(...results.map((r) => r.measuredMs));
  const loginsPerSecond = latencies.length / (measuredMs / 1000);
  return {
    logins: latencies.length,
    loginsPerSecond,
    serverCpuMsPerLogin:
      cpu.start !== undefined && cpu.end !== undefined
        ? (cpu.end - cpu.start) / (loginsPerSecond * (opts.durationMs / 1000))
        : undefined,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    errors: results.reduce((n, r) => n + r.errors.count, 0),
    errorSamples: results.flatMap((r) => r.errors.samples).slice(0, 5),
  };
}

/** Memory of the server's process tree with `count` idle logged-in sessions, minus before. */
export async function idleWorkload(server, opts) {
  await new Promise((r) => setTimeout(r, opts.settleMs));
  const before = treeMemory(server.pid);
  let first = 0;
  const gens = split(opts.count, opts.processes).map((clients) => {
    const job = {
      mode: 'idle',
      host: '127.0.0.1',
      port: server.port,
      clients,
      firstClient: first,
      users: opts.users.users,
      password: opts.users.password,
      parallel: 20,
    };
    first += clients;
    return startLoadgen(job);
  });
  try {
    const ready = await Promise.all(gens.map((g) => g.nextLine()));
    const sessions = ready.reduce((n, r) => n + r.ready, 0);
    await new Promise((r) => setTimeout(r, opts.settleMs));
    const during = treeMemory(server.pid);
    // Anything else the caller wants measured while the sessions are open.
    const extra = opts.measure?.();
    return {
      extra,
      sessions,
      errors: ready.reduce((n, r) => n + r.errors.count, 0),
      errorSamples: ready.flatMap((r) => r.errors.samples).slice(0, 5),
      before,
      during,
      rssPerSessionBytes: (during.rss - before.rss) / Math.max(1, sessions),
      pssPerSessionBytes: (during.pss - before.pss) / Math.max(1, sessions),
    };
  } finally {
    for (const g of gens) g.child.stdin.end('close\n');
    await Promise.all(gens.map((g) => g.exited));
  }
}

/** CHECKSCRIPT of a script just under 1 MiB (both servers' limit), median of `repeat` runs after one warm-up. */
export async function validationWorkload(server, opts) {
  const script = makeScript(opts.bytes);
  const c = await SieveClient.connect('127.0.0.1', server.port);
  try {
    await c.starttls();
    await c.authenticatePlain(opts.users.users[0], opts.users.password);
    const times = [];
    let status = '';
    for (let i = 0; i <= opts.repeat; i++) {
      const text = scriptVariant(script, i);
      const t0 = performance.now();
      const r = await c.checkScript(text);
      const ms = performance.now() - t0;
      status = r.status === 'OK' ? 'OK' : r.text.slice(0, 200);
      if (i > 0) times.push(ms);
    }
    return { bytes: script.length, medianMs: median(times), maxMs: Math.max(...times), status };
  } finally {
    await c.logout().catch(() => c.destroy());
  }
}
