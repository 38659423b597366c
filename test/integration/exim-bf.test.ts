/**
 * Agreement with the real consumer: every corpus script goes through
 * `exim4 -bf` (Exim's filter test mode; it exits 0 even on errors, so stdout is
 * read for "Sieve error:"). What tsieved accepts Exim must accept; what Exim
 * rejects tsieved must reject; where tsieved is stricter the corpus entry says
 * why, and Exim must indeed accept it (so the reason stays true).
 *
 * The script is fed as the filter file is written, by the storage's own
 * renderFilter (LF line ends, "# Sieve filter" first line, final LF).
 * Beyond the corpus, seeded mutations of it and scripts generated from the
 * signatures are compared the same way (SIEVE_FUZZ_SEED picks other seeds).
 * enotify entries are skipped: -bf always runs with enotify disabled. An Exim
 * crash counts as a refusal (delivery would panic and defer).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateScript } from '../../src/sieve/index.js';
import { renderFilter } from '../../src/storage/filter-file.js';
import { findTool, needs } from '../helpers/tools.js';
import { bytesOf, corpus, type CorpusEntry } from '../sieve/corpus.js';
import { generateScript, rng } from '../sieve/generate.js';
import { fullProfile } from '../sieve/helpers.js';

const MESSAGE = [
  'From: Alice Example <alice@example.org>',
  'To: bob@example.net',
  'Cc: carol@example.com',
  'Subject: quarterly report',
  'Date: Sat, 28 Nov 2026 12:00:00 +0000',
  'Message-ID: <t1@example.org>',
  'X-Spam-Flag: NO',
  '',
  'Hello.',
  '',
].join('\n');

interface EximVerdict {
  accepted: boolean;
  output: string;
}

function runExim(exim: string, file: string, message: string): Promise<EximVerdict> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      exim,
      ['-bf', file, '-f', 'alice@example.org'],
      { timeout: 20_000 },
      (err, stdout, stderr) => {
        // Exim 4.96 crashes on some scripts (empty strings with encoded-character):
        // as good as a refusal, since delivery would panic and defer.
        if (/SIGSEGV|SIGBUS|SIGABRT/.test(stderr)) {
          resolve({ accepted: false, output: `${stdout}\n[crashed]\n${stderr}` });
          return;
        }
        if (err && stdout === '') {
          reject(new Error(`exim -bf failed: ${err.message} ${stderr}`));
          return;
        }
        resolve({
          accepted: !stdout.includes('Sieve error:') && /Implicit keep|No implicit keep/.test(stdout),
          output: stdout,
        });
      },
    );
    child.stdin?.end(message);
  });
}

describe('agreement with exim4 -bf', needs('exim4'), () => {
  const exim = findTool('exim4')!;
  let dir: string;
  let messageFile: string;
  const results = new Map<string, EximVerdict>();
  const checked = corpus.filter((e) => e.eximSkip === undefined);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsieved-exim-bf-'));
    messageFile = join(dir, 'message');
    writeFileSync(messageFile, MESSAGE);
    // A few at a time: each run is a short-lived process.
    const queue = [...checked.entries()];
    const workers = Array.from({ length: 6 }, async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        const [i, entry] = next;
        const file = join(dir, `script-${i}.sieve`);
        writeFileSync(file, renderFilter(bytesOf(entry)));
        results.set(entry.name, await runExim(exim, file, MESSAGE));
      }
    });
    await Promise.all(workers);
  }, 120_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('judged most of the corpus', () => {
    expect(checked.length).toBeGreaterThan(200);
    expect(results.size).toBe(checked.length);
  });

  it.each(checked.map((e) => [e.name, e] as const))('%s', (_name, entry: CorpusEntry) => {
    const exim = results.get(entry.name)!;
    const diags = validateScript(bytesOf(entry), fullProfile(entry.profile));
    const weAccept = !diags.some((d) => d.severity === 'error');
    const context = `exim said:\n${exim.output}\ntsieved said:\n${diags.map((d) => `${d.line}: ${d.message}`).join('\n')}`;
    if (weAccept) expect(exim.accepted, context).toBe(true);
    if (!exim.accepted) expect(weAccept, context).toBe(false);
    if (!weAccept && exim.accepted) {
      expect(entry.stricter, `tsieved is stricter than Exim without a stated reason\n${context}`).toBeTruthy();
    }
    if (entry.stricter !== undefined) expect(exim.accepted, `entry claims Exim accepts it\n${context}`).toBe(true);
  });

  it('accepts nothing Exim rejects among 600 seeded mutations of the corpus', async () => {
    const r = rng(Number(process.env.SIEVE_FUZZ_SEED ?? 20261128));
    const seeds = checked.filter((e) => e.verdict !== 'invalid' && e.encoding === undefined).map((e) => e.script);
    const pieces = [
      '{',
      '}',
      '[',
      ']',
      '(',
      ')',
      ';',
      ',',
      '"',
      ':',
      '#',
      '/*',
      '*/',
      '\\',
      '.',
      '\n',
      ' ',
      'text:\n',
      'K',
      'not ',
      'stop;',
      'true',
      ':is',
      ':copy',
      '""',
      'if ',
      'else',
      '\r\n',
    ];
    let compared = 0;
    const disagreements: string[] = [];
    for (let n = 0; n < 600; n++) {
      let s = seeds[Math.floor(r() * seeds.length)];
      for (let e = 0, edits = 1 + Math.floor(r() * 2); e < edits; e++) {
        const at = Math.floor(r() * (s.length + 1));
        s =
          r() < 0.4
            ? s.slice(0, at) + s.slice(at + 1 + Math.floor(r() * 3))
            : s.slice(0, at) + pieces[Math.floor(r() * pieces.length)] + s.slice(at);
      }
      if (validateScript(Buffer.from(s, 'utf8'), fullProfile()).some((d) => d.severity === 'error')) continue;
      compared++;
      const file = join(dir, `mutant-${n}.sieve`);
      writeFileSync(file, renderFilter(Buffer.from(s, 'utf8')));
      const verdict = await runExim(exim, file, MESSAGE);
      if (!verdict.accepted) disagreements.push(`${JSON.stringify(s)}\n${verdict.output}`);
    }
    // Mutations that stay valid are the interesting ones; make sure there were some.
    expect(compared).toBeGreaterThan(50);
    expect(disagreements).toEqual([]);
  }, 120_000);

  it('accepts nothing Exim rejects among 800 generated scripts', async () => {
    const r = rng(Number(process.env.SIEVE_FUZZ_SEED ?? 4190));
    let compared = 0;
    const disagreements: string[] = [];
    for (let n = 0; n < 800; n++) {
      const s = generateScript(r);
      // exim -bf always refuses enotify.
      if (s.includes('"enotify"')) continue;
      if (validateScript(Buffer.from(s, 'utf8'), fullProfile()).some((d) => d.severity === 'error')) continue;
      compared++;
      const file = join(dir, `generated-${n}.sieve`);
      writeFileSync(file, renderFilter(Buffer.from(s, 'utf8')));
      const verdict = await runExim(exim, file, MESSAGE);
      if (!verdict.accepted) disagreements.push(`${JSON.stringify(s)}\n${verdict.output}`);
    }
    expect(compared).toBeGreaterThan(40);
    expect(disagreements).toEqual([]);
  }, 120_000);
});
