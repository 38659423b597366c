/**
 * Differential check against Pigeonhole's `sievec` (Debian package
 * dovecot-sieve) on the corpus scripts that use only RFC 5228 core syntax (no
 * extension beyond fileinto and envelope): both must agree on syntax. What
 * tsieved accepts sievec must compile; a script tsieved refuses for a grammar
 * reason sievec must refuse too; what sievec refuses tsieved must refuse.
 * `sievec -c /dev/null` runs without any Dovecot configuration; it writes its
 * binary next to the output path we give it, inside a temporary directory.
 * Scripts generated from the signatures are compared the same way.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateScript } from '../../src/sieve/index.js';
import { findTool, needs } from '../helpers/tools.js';
import { bytesOf, corpus, type CorpusEntry } from '../sieve/corpus.js';
import { generateScript, rng } from '../sieve/generate.js';
import { fullProfile } from '../sieve/helpers.js';

/** Where Pigeonhole and RFC 5228 deliberately differ from Exim's dialect. */
const KNOWN_DIFFERENCES: Record<string, { sievecAccepts: boolean; reason: string }> = {
  'lone CR': { sievecAccepts: true, reason: 'Pigeonhole ignores a stray CR outside strings; Exim does not' },
  'byte order mark is dropped': {
    sievecAccepts: false,
    reason: 'Pigeonhole does not skip a byte order mark; the filter writer strips it',
  },
  'header comparator en casemap': {
    sievecAccepts: false,
    reason: 'en;ascii-casemap is an Exim comparator Pigeonhole does not have',
  },
};

function isCore(e: CorpusEntry): boolean {
  const requires = [...e.script.matchAll(/require\s+(\[[^\]]*\]|"[^"]*")/gi)].flatMap((m) =>
    [...m[1].matchAll(/"([^"]*)"/g)].map((x) => x[1]),
  );
  return (
    requires.every((r) => r === 'fileinto' || r === 'envelope') &&
    !/\brequire\b/i.test(e.script.replace(/require\s+(\[[^\]]*\]|"[^"]*")/gi, ''))
  );
}

function runSievec(sievec: string, file: string, out: string): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(sievec, ['-c', '/dev/null', file, out], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ ok: err === null, output: stdout + stderr });
    });
  });
}

describe('syntax agreement with Pigeonhole sievec', needs('sievec'), () => {
  const sievec = findTool('sievec')!;
  const core = corpus.filter(isCore);
  const results = new Map<string, { ok: boolean; output: string }>();
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsieved-sievec-'));
    const queue = [...core.entries()];
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
          const [i, entry] = next;
          const file = join(dir, `s${i}.sieve`);
          writeFileSync(file, bytesOf(entry));
          results.set(entry.name, await runSievec(sievec, file, join(dir, `s${i}.svbin`)));
        }
      }),
    );
  }, 120_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('compares a substantial part of the corpus', () => {
    expect(core.length).toBeGreaterThan(100);
    expect(results.size).toBe(core.length);
  });

  it.each(core.map((e) => [e.name, e] as const))('%s', (_name, entry) => {
    const pig = results.get(entry.name)!;
    const diags = validateScript(bytesOf(entry), fullProfile(entry.profile));
    const errors = diags.filter((d) => d.severity === 'error');
    const context = `sievec said:\n${pig.output}\ntsieved said:\n${errors.map((d) => `${d.line}: [${d.code}] ${d.message}`).join('\n')}`;
    const known = KNOWN_DIFFERENCES[entry.name];
    if (known !== undefined) {
      expect(pig.ok, `known difference no longer holds: ${known.reason}\n${context}`).toBe(known.sievecAccepts);
      expect(errors.length === 0, context).toBe(!known.sievecAccepts);
      return;
    }
    if (errors.length === 0) expect(pig.ok, context).toBe(true);
    if (errors[0]?.code === 'syntax') expect(pig.ok, context).toBe(false);
    if (!pig.ok) expect(errors.length, context).toBeGreaterThan(0);
  });

  it('agrees on 1500 generated core scripts', async () => {
    const r = rng(Number(process.env.SIEVE_FUZZ_SEED ?? 5228));
    let compared = 0;
    const disagreements: string[] = [];
    for (let n = 0; n < 1500; n++) {
      const script = generateScript(r);
      const entry: CorpusEntry = { name: `generated ${n}`, script, verdict: 'valid' };
      // Core only, and without Exim's own comparator name.
      if (!isCore(entry) || script.includes('en;ascii-casemap')) continue;
      const errors = validateScript(Buffer.from(script, 'utf8'), fullProfile()).filter((d) => d.severity === 'error');
      if (errors.length > 0 && errors[0].code !== 'syntax') continue;
      compared++;
      const file = join(dir, `g${n}.sieve`);
      writeFileSync(file, script);
      const pig = await runSievec(sievec, file, join(dir, `g${n}.svbin`));
      if (pig.ok !== (errors.length === 0)) {
        disagreements.push(`${JSON.stringify(script)}\nsievec: ${pig.output}\ntsieved: ${errors[0]?.message ?? 'ok'}`);
      }
    }
    expect(compared).toBeGreaterThan(50);
    expect(disagreements).toEqual([]);
  }, 120_000);
});
