// Benchmark: the validator side by side with Pigeonhole's compiler `sievec`
// (Debian dovecot-sieve; `sievec -c /dev/null FILE OUT`, skipped when absent).
// Run after `npm run build`; `npm run bench` runs it. Cases:
//   1 MiB     a 1,048,320-byte script of ordinary rules (tests, filing, stop;
//             fileinto rather than redirect, which the default limit of 10 caps)
//   4 KiB     the same rules, 4,096 bytes
//   elsif     one if with a 45,000-branch elsif chain
//   list      one test with a 200,000-item string list
// For each: tsieved in-process (median of --runs, after a warm-up; CPU time of
// this thread is shown too, which a busy machine disturbs less than wall time),
// the peak heap a fresh process needs to validate it once (V8's own figure from
// --trace-gc-nvp is not stable across versions, so the fresh process reports
// v8.getHeapStatistics().peak_malloced_memory and the largest heap size seen by
// a GC observer), `tsieved check FILE` wall time as a user would run it, and
// sievec's wall time (median of --runs), with the ratio.
// Options: --runs N (5), --json FILE.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { defaultProfile, validateScript } from '../dist/sieve/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: { runs: { type: 'string', default: '5' }, json: { type: 'string' }, 'heap-child': { type: 'string' } },
});
const runs = Math.max(1, Number(values.runs));

const profile = defaultProfile({
  extensions: [
    'comparator-i;ascii-numeric',
    'copy',
    'encoded-character',
    'envelope',
    'fileinto',
    'subaddress',
    'vacation',
  ],
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
  fileinto :copy "tickets/${i}";
}
`;
}

/** Ordinary rules up to exactly `bytes` bytes (the rest a comment line). */
function rules(bytes) {
  let s = 'require ["fileinto", "copy", "envelope"];\n';
  for (let i = 0; ; i++) {
    const r = rule(i);
    if (s.length + r.length > bytes) break;
    s += r;
  }
  return s + '#'.repeat(bytes - s.length - 1) + '\n';
}

function elsifChain(branches) {
  let s = 'if exists "x0" {}\n';
  for (let i = 1; i < branches; i++) s += `elsif exists "x${i % 10}" {}\n`;
  return s;
}

function longList(items) {
  return `if header :is "subject" [${Array.from({ length: items }, (_, i) => `"${i % 10}"`).join(',')}] { keep; }\n`;
}

const CASES = [
  ['1 MiB rules', () => rules(1_048_320)],
  ['4 KiB rules', () => rules(4096)],
  ['elsif x45000', () => elsifChain(45_000)],
  ['list x200000', () => longList(200_000)],
];

// A fresh process validates one file once and reports its peak heap.
if (values['heap-child'] !== undefined) {
  const { readFileSync } = await import('node:fs');
  const v8 = await import('node:v8');
  const buf = readFileSync(values['heap-child']);
  let peak = 0;
  const { PerformanceObserver } = await import('node:perf_hooks');
  const sample = () => (peak = Math.max(peak, v8.getHeapStatistics().used_heap_size));
  const obs = new PerformanceObserver(sample);
  obs.observe({ entryTypes: ['gc'] });
  const before = v8.getHeapStatistics().used_heap_size;
  validateScript(buf, profile);
  sample();
  await new Promise((r) => setTimeout(r, 50)); // let the GC entries arrive
  obs.disconnect();
  process.stdout.write(JSON.stringify({ peakMiB: peak / 2 ** 20, baseMiB: before / 2 ** 20 }));
  process.exit(0);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

function sievecPath() {
  const r = spawnSync('sh', ['-c', 'command -v sievec'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function wall(cmd, args) {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { ms: performance.now() - t0, status: r.status, out: r.stdout + r.stderr };
}

const dir = mkdtempSync(join(tmpdir(), 'tsieved-bench-validate-'));
const sievec = sievecPath();
const cli = join(root, 'dist/tsieved.cjs');
const results = [];
try {
  for (const [label, make] of CASES) {
    const text = make();
    const file = join(dir, `${label.replace(/\W+/g, '-')}.sieve`);
    writeFileSync(file, text);
    const buf = Buffer.from(text);
    const errors = validateScript(buf, profile).filter((d) => d.severity === 'error');
    if (errors.length > 0) throw new Error(`${label}: unexpected errors: ${JSON.stringify(errors.slice(0, 3))}`);
    const wallMs = [];
    const cpu = [];
    for (let i = 0; i < runs; i++) {
      const c0 = cpuMs();
      const t0 = performance.now();
      validateScript(buf, profile);
      wallMs.push(performance.now() - t0);
      cpu.push(cpuMs() - c0);
    }
    const heap = JSON.parse(
      execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--heap-child', file], { encoding: 'utf8' }),
    );
    // As a user runs it: the same capabilities, so no Exim probe is part of the figure.
    const caps = 'comparator-i;ascii-numeric copy encoded-character envelope fileinto subaddress vacation';
    const check = [];
    for (let i = 0; i < runs; i++) {
      const r = wall(process.execPath, [cli, 'check', '--capabilities', caps, file]);
      if (r.status !== 0) throw new Error(`${label}: tsieved check exited ${r.status}: ${r.out.slice(0, 300)}`);
      check.push(r.ms);
    }
    let sievecMs;
    let sievecNote = '';
    if (sievec !== undefined) {
      const t = [];
      for (let i = 0; i < runs; i++) {
        const r = wall(sievec, ['-c', '/dev/null', file, join(dir, 'out.svbin')]);
        if (r.status !== 0) sievecNote = r.out.split('\n')[0];
        t.push(r.ms);
      }
      sievecMs = median(t);
    }
    const row = {
      case: label,
      bytes: buf.length,
      tsievedMs: median(wallMs),
      tsievedCpuMs: median(cpu),
      peakHeapMiB: heap.peakMiB,
      checkMs: median(check),
      sievecMs,
      sievecNote,
    };
    results.push(row);
    const ratio = sievecMs === undefined ? '' : `  ratio ${(row.tsievedMs / sievecMs).toFixed(2)}`;
    console.log(
      `${label.padEnd(14)} ${String(row.bytes).padStart(8)} B  in-process ${row.tsievedMs.toFixed(1)} ms (cpu ${row.tsievedCpuMs.toFixed(1)})  ` +
        `peak heap ${row.peakHeapMiB.toFixed(1)} MiB  tsieved check ${row.checkMs.toFixed(0)} ms  ` +
        (sievecMs === undefined
          ? 'sievec not installed'
          : `sievec ${sievecMs.toFixed(1)} ms${ratio}${sievecNote ? ` (sievec: ${sievecNote})` : ''}`),
    );
  }
  const node0 = median(Array.from({ length: runs }, () => wall(process.execPath, ['-e', '0']).ms));
  console.log(`node -e 0 (start-up alone): ${node0.toFixed(0)} ms`);
  if (values.json) writeFileSync(values.json, JSON.stringify({ node0Ms: node0, results }, null, 2));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
