// Does validating a large script in one session hold up the others? Starts the
// built tsieved, has one session send CHECKSCRIPT of a 1 MiB script repeatedly
// while another sends NOOPs back to back, and reports the NOOP latencies (with a
// baseline measured while nothing else runs). A benchmark, not a test: numbers
// go into the README.
//   npm run build && node bench/noop-during-validate.mjs [--rounds N]
import { parseArgs } from 'node:util';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SieveClient } from './lib/client.mjs';
import { freePort, makeCert, makeScript, makeUsers, scriptVariant, makeWorkDir } from './lib/fixtures.mjs';
import { percentile, round } from './lib/stats.mjs';
import { startTsieved } from './lib/tsieved.mjs';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } });
const rounds = Number(values.rounds);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

async function login(server, users) {
  const c = await SieveClient.connect('127.0.0.1', server.port);
  await c.starttls();
  await c.authenticatePlain(users.users[0], users.password);
  return c;
}

/** NOOP round trips, back to back, until `until()` says stop (at least `min`). */
async function noops(client, until, min = 200) {
  const times = [];
  while (times.length < min || !until()) {
    const t0 = performance.now();
    await client.command('NOOP');
    times.push(performance.now() - t0);
  }
  return times;
}

const summary = (times) => ({
  count: times.length,
  p50: round(percentile(times, 50), 2),
  p99: round(percentile(times, 99), 2),
  max: round(Math.max(...times), 2),
});

const work = makeWorkDir();
const server = await startTsieved({
  root,
  dir: work.dir,
  port: await freePort(),
  cert: makeCert(work.dir),
  users: makeUsers(2),
});
try {
  const users = makeUsers(2);
  const validating = await login(server, users);
  const other = await login(server, users);
  const baseline = await noops(other, () => true, 500);
  const script = makeScript(1_000_000);
  let done = false;
  const validations = (async () => {
    const times = [];
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      const r = await validating.checkScript(scriptVariant(script, i));
      if (r.status !== 'OK') throw new Error(`CHECKSCRIPT: ${r.text}`);
      times.push(performance.now() - t0);
    }
    done = true;
    return times;
  })();
  const during = await noops(other, () => done);
  const checkTimes = await validations;
  console.log(`1 MiB CHECKSCRIPT x${rounds}: median ${round(percentile(checkTimes, 50), 1)} ms`);
  console.log('NOOP in another session, alone:          ', summary(baseline));
  console.log('NOOP in another session, while validating:', summary(during));
  await validating.logout();
  await other.logout();
} finally {
  await server.stop();
  work.remove();
}
