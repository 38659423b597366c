// Does a flood hold the server? Starts the built tsieved with its log consumer
// stalled (stderr not read, as when journald falls behind), floods it from
// separate processes with pipelined NOOPs on --connections connections (half of
// them reading the replies, half never reading), and meanwhile measures another
// session's NOOP round trips and the server's RSS. Reports the peak RSS, the NOOP
// latencies (with a baseline before the flood), and the log lines saying what was
// dropped or summarised. A benchmark: figures go into BENCHMARKS.md; the test
// suite runs it shorter and checks fixed bounds (test/ops/flood.test.ts).
//   npm run build && node bench/flood.mjs [--seconds 60] [--connections 4] [--json FILE]
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SieveClient } from './lib/client.mjs';
import { freePort, makeCert, makeUsers, makeWorkDir } from './lib/fixtures.mjs';
import { percentile, round } from './lib/stats.mjs';
import { startTsieved } from './lib/tsieved.mjs';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    connections: { type: 'string', default: '4' },
    json: { type: 'string' },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function statusKiB(pid, key) {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** Sequential NOOP round trips on one session until `stop()` (at least `min`). */
async function noops(client, stop, min) {
  const times = [];
  while (times.length < min || !stop()) {
    const t0 = performance.now();
    const r = await client.command('NOOP');
    if (r.status !== 'OK') throw new Error(`NOOP: ${r.status} ${r.text ?? ''}`);
    times.push(performance.now() - t0);
  }
  return times;
}

function flooders(port, count, read) {
  return new Promise((resolve, reject) => {
    if (count === 0) return resolve({ connections: 0, read, sent: 0, received: 0, closedEarly: 0 });
    const args = [join(root, 'bench/lib/flooder.mjs'), String(port), String(count), String(seconds)];
    if (!read) args.push('--no-read');
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`flooder exited with ${code}`)),
    );
  });
}

const summary = (times) => ({
  count: times.length,
  p50Ms: round(percentile(times, 50), 2),
  p99Ms: round(percentile(times, 99), 2),
  maxMs: round(
    times.reduce((a, b) => Math.max(a, b), 0),
    2,
  ),
});

const work = makeWorkDir();
const events = { 'log-dropped': 0, 'commands-not-logged': 0, droppedLines: 0, summarisedCommands: 0 };
const server = await startTsieved({
  root,
  dir: work.dir,
  port: await freePort(),
  cert: makeCert(work.dir),
  users: makeUsers(1),
  onLogLine: (line) => {
    const m = /"event":"(log-dropped|commands-not-logged)".*?"count":(\d+)/.exec(line);
    if (!m) return;
    events[m[1]]++;
    if (m[1] === 'log-dropped') events.droppedLines += Number(m[2]);
    else events.summarisedCommands += Number(m[2]);
  },
});
let result;
try {
  const probe = await SieveClient.connect('127.0.0.1', server.port);
  const baseline = await noops(probe, () => true, 300);
  const rssBefore = statusKiB(server.pid, 'VmRSS');
  server.pauseLog();
  let rssPeak = rssBefore;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, statusKiB(server.pid, 'VmRSS'))), 100);
  const started = Date.now();
  const floods = Promise.all([
    flooders(server.port, Math.ceil(connections / 2), true),
    flooders(server.port, Math.floor(connections / 2), false),
  ]);
  let flooding = true;
  floods.finally(() => (flooding = false)).catch(() => undefined);
  // Give the flood a moment to build up before measuring.
  await new Promise((r) => setTimeout(r, 500));
  const during = await noops(probe, () => !flooding, 100);
  const [readers, nonReaders] = await floods;
  clearInterval(sampler);
  const floodSeconds = (Date.now() - started) / 1000;
  server.resumeLog();
  // The server reports dropped lines about once a second once its log drains.
  await new Promise((r) => setTimeout(r, 2500));
  await probe.logout().catch(() => undefined);
  result = {
    seconds,
    connections,
    floodSeconds: round(floodSeconds, 1),
    commandsAnswered: Math.round(readers.received / 'OK\r\n'.length),
    commandsPerSecond: Math.round(readers.received / 'OK\r\n'.length / floodSeconds),
    floodConnectionsClosedEarly: readers.closedEarly + nonReaders.closedEarly,
    rssBeforeMiB: round(rssBefore / 1024, 1),
    rssPeakMiB: round(rssPeak / 1024, 1),
    serverAlive: server.isAlive(),
    noopAlone: summary(baseline),
    noopDuringFlood: summary(during),
    log: events,
  };
} finally {
  await server.stop();
  work.remove();
}
console.log(JSON.stringify(result, null, 2));
if (values.json) writeFileSync(values.json, JSON.stringify(result, null, 2) + '\n');
