/**
 * Four connections flood the built server with pipelined NOOPs (two reading the
 * replies, two never reading) while its log consumer is stalled; the server must
 * stay under a fixed memory budget and keep answering another session quickly.
 * Runs `bench/flood.mjs` for 15 s (the benchmark's default is 60 s): before the
 * fix RSS grew ~10 MiB/s with every line queued for the log, and the other
 * session's NOOP p99 was ~1.9 s because one client's batch held the event loop.
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { inCI, needs } from '../helpers/tools.js';

const ROOT = resolve(__dirname, '../..');
const built = existsSync(join(ROOT, 'dist/cli.js'));
if (!built && inCI) throw new Error('dist/cli.js is missing: run npm run build');

/** Fixed budget for the whole server process (it starts at ~70 MiB). */
const RSS_BUDGET_MIB = 160;

interface FloodResult {
  commandsAnswered: number;
  floodConnectionsClosedEarly: number;
  rssBeforeMiB: number;
  rssPeakMiB: number;
  serverAlive: boolean;
  noopDuringFlood: { count: number; p50Ms: number; p99Ms: number };
  log: { 'commands-not-logged': number; summarisedCommands: number };
}

// The flood bench makes a throwaway certificate with openssl.
describe.skipIf(!built)('flood of pipelined commands', needs('openssl'), () => {
  it('stays under the RSS budget, keeps another session fast, and summarises the command lines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsieved-flood-test-'));
    try {
      const out = join(dir, 'flood.json');
      await promisify(execFile)(
        process.execPath,
        [join(ROOT, 'bench/flood.mjs'), '--seconds', '15', '--connections', '4', '--json', out],
        {
          cwd: ROOT,
          timeout: 120_000,
        },
      );
      const r = JSON.parse(readFileSync(out, 'utf8')) as FloodResult;
      // The flood really happened and held on to its connections throughout.
      expect(r.commandsAnswered).toBeGreaterThan(20_000);
      expect(r.floodConnectionsClosedEarly).toBe(0);
      expect(r.serverAlive).toBe(true);
      expect(r.rssPeakMiB).toBeLessThan(RSS_BUDGET_MIB);
      expect(r.noopDuringFlood.count).toBeGreaterThanOrEqual(100);
      expect(r.noopDuringFlood.p99Ms).toBeLessThan(50);
      // Per-command lines were summarised, not written one per command.
      expect(r.log['commands-not-logged']).toBeGreaterThan(0);
      expect(r.log.summarisedCommands).toBeGreaterThan(r.commandsAnswered / 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 150_000);
});
