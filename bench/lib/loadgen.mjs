// A load-generator process: the measuring side runs outside the server and outside
// the orchestrating process, so neither's event loop skews the numbers. Started
// by bench/lib/workloads.mjs with one JSON argument; prints one JSON line result.
//   mode "login": each client repeats connect + STARTTLS + AUTHENTICATE PLAIN +
//     PUTSCRIPT + SETACTIVE + LOGOUT until the deadline, or until this process has
//     started `logins` of them when that is given; latency per repetition.
//   mode "idle": opens sessions (connect + STARTTLS + login), prints {"ready":...},
//     holds them until stdin closes or says "close", then logs out.
// Must not know: which server it talks to.
import { SieveClient } from './client.mjs';
import { makeScript } from './fixtures.mjs';

const job = JSON.parse(process.argv[2]);
let started = 0;

async function loginLoop(clientIndex, deadline, warmupEnd, latencies, errors) {
  const user = job.users[clientIndex % job.users.length];
  const script = makeScript(job.scriptBytes);
  while (Date.now() < deadline) {
    if (job.logins !== undefined && started >= job.logins) break;
    started++;
    const t0 = performance.now();
    let c;
    try {
      c = await SieveClient.connect(job.host, job.port);
      await c.starttls();
      await c.authenticatePlain(user, job.password);
      await c.putScript('bench', script);
      await c.setActive('bench');
      await c.logout();
      if (Date.now() >= warmupEnd) latencies.push(performance.now() - t0);
    } catch (e) {
      c?.destroy();
      errors.count++;
      if (errors.samples.length < 5) errors.samples.push(String(e?.message ?? e));
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function runLogin() {
  const latencies = [];
  const errors = { count: 0, samples: [] };
  const start = Date.now();
  const warmupEnd = start + job.warmupMs;
  const deadline = warmupEnd + job.durationMs;
  await Promise.all(
    Array.from({ length: job.clients }, (_, i) =>
      loginLoop(job.firstClient + i, deadline, warmupEnd, latencies, errors),
    ),
  );
  process.stdout.write(JSON.stringify({ latencies, errors, measuredMs: Date.now() - warmupEnd }) + '\n');
}

async function runIdle() {
  const clients = [];
  const errors = { count: 0, samples: [] };
  let next = 0;
  // Open with bounded parallelism: a burst of thousands of handshakes at once would
  // measure the accept queue, not idle memory.
  async function opener() {
    while (next < job.clients) {
      const i = next++;
      try {
        const c = await SieveClient.connect(job.host, job.port, 120_000);
        await c.starttls();
        await c.authenticatePlain(job.users[(job.firstClient + i) % job.users.length], job.password);
        clients.push(c);
      } catch (e) {
        errors.count++;
        if (errors.samples.length < 5) errors.samples.push(String(e?.message ?? e));
      }
    }
  }
  await Promise.all(Array.from({ length: job.parallel }, opener));
  process.stdout.write(JSON.stringify({ ready: clients.length, errors }) + '\n');
  await new Promise((resolve) => {
    process.stdin.on('data', (d) => d.toString().includes('close') && resolve());
    process.stdin.on('end', resolve);
  });
  await Promise.all(clients.map((c) => c.logout().catch(() => c.destroy())));
  process.stdout.write(JSON.stringify({ closed: clients.length }) + '\n');
}

if (job.mode === 'login') await runLogin();
else if (job.mode === 'idle') await runIdle();
else throw new Error(`unknown mode ${job.mode}`);
