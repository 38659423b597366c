// Benchmark: validating a 1 MiB script of ordinary rules and a 64 KiB one, with
// the compiled validator in dist/ (run `npm run build` first). The 1 MiB case
// must stay well under a second; the async validator moves it off the event
// loop, which the last measurement shows (largest event-loop stall while a
// 1 MiB script is validated in the worker).
import { performance } from 'node:perf_hooks';
import { createValidator, defaultProfile, validateScript } from '../dist/sieve/index.js';

const profile = defaultProfile({
  extensions: ['comparator-i;ascii-numeric', 'copy', 'encoded-character', 'envelope', 'fileinto', 'subaddress', 'vacation'],
  maxScriptBytes: 4 * 1024 * 1024,
  maxRedirects: 1_000_000,
});

function rule(i) {
  return `# rule ${i}: sort mail from list ${i}
if anyof (header :contains "list-id" "<list${i}.example.org>",
          address :domain :is ["from", "sender"] "list${i}.example.org") {
  fileinto "lists/list${i}";
  stop;
} elsif allof (header :matches "subject" "*[ticket ${i}]*", size :under 100K) {
  redirect :copy "tickets+${i}@example.org";
}
`;
}

function script(bytes) {
  let s = 'require ["fileinto", "copy", "envelope"];\n';
  for (let i = 0; s.length < bytes; i++) s += rule(i);
  return Buffer.from(s);
}

function time(label, buf, runs) {
  validateScript(buf, profile); // warm-up
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const d = validateScript(buf, profile);
    times.push(performance.now() - t0);
    if (d.some((x) => x.severity === 'error')) throw new Error(`${label}: unexpected errors: ${JSON.stringify(d.slice(0, 3))}`);
  }
  times.sort((a, b) => a - b);
  console.log(`${label.padEnd(12)} ${String(buf.length).padStart(8)} bytes  median ${times[Math.floor(runs / 2)].toFixed(1)} ms  best ${times[0].toFixed(1)} ms  worst ${times[runs - 1].toFixed(1)} ms`);
}

time('64 KiB', script(64 * 1024), 20);
time('1 MiB', script(1024 * 1024 - 256), 7);

// Event-loop responsiveness while the worker validates a 1 MiB script.
const validator = createValidator(profile);
const big = script(1024 * 1024 - 256);
await validator.validate(big); // start the worker
let worst = 0;
let last = performance.now();
const timer = setInterval(() => {
  const now = performance.now();
  worst = Math.max(worst, now - last);
  last = now;
}, 1);
const t0 = performance.now();
await Promise.all([validator.validate(big), validator.validate(big)]);
clearInterval(timer);
console.log(`worker       two 1 MiB scripts in ${(performance.now() - t0).toFixed(1)} ms; longest event-loop gap ${worst.toFixed(1)} ms`);
await validator.close();
