/**
 * The asynchronous validator: large scripts go to a worker thread (the event
 * loop keeps turning meanwhile), results equal the synchronous validator's, and
 * a worker that dies or hangs yields a refusal instead of a crash or a hang.
 * Needs the build (`npm test` runs it): the worker is dist/sieve/worker.js.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createValidator, validateScript } from '../../src/sieve/index.js';
import { defaultWorkerUrl } from '../../src/sieve/validation-pool.js';
import { bytesOf, corpus } from './corpus.js';
import { fullProfile } from './helpers.js';

function bigScript(bytes: number): Buffer {
  let s = 'require ["fileinto"];\n';
  for (let i = 0; s.length < bytes; i++)
    s += `if header :contains "list-id" "<l${i}.example.org>" { fileinto "lists/l${i}"; }\n`;
  return Buffer.from(s);
}

describe('async validator', () => {
  const profile = fullProfile({ maxRedirects: 1000 });
  const dir = mkdtempSync(join(tmpdir(), 'tsieved-validator-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('finds the compiled worker (run npm run build first)', () => {
    expect(existsSync(fileURLToPath(defaultWorkerUrl()))).toBe(true);
  });

  it('validates large scripts off the event loop', async () => {
    const v = createValidator(profile, { workerThreshold: 1024 });
    try {
      const big = bigScript(256 * 1024);
      let turned = false;
      setImmediate(() => {
        turned = true;
      });
      const diags = await v.validate(big);
      // An inline validation would have resolved before the event loop turned.
      expect(turned).toBe(true);
      expect(diags).toEqual([]);
    } finally {
      await v.close();
    }
  });

  it('gives the same diagnostics as the synchronous validator', async () => {
    const v = createValidator(profile, { workerThreshold: 0 });
    try {
      const sample = corpus.filter((_, i) => i % 7 === 0);
      const results = await Promise.all(sample.map((e) => v.validate(bytesOf(e))));
      sample.forEach((e, i) => expect(results[i]).toEqual(validateScript(bytesOf(e), profile)));
    } finally {
      await v.close();
    }
  });

  it('validates small scripts inline', async () => {
    const v = createValidator(profile, { workerThreshold: 1 << 20 });
    let turned = false;
    setImmediate(() => {
      turned = true;
    });
    expect(await v.validate(Buffer.from('keep;\n'))).toEqual([]);
    expect(turned).toBe(false);
    await v.close();
  });

  it('keeps the verdict on a script seen again, and never an internal failure', async () => {
    // A worker that numbers its jobs in a file (a timed-out worker is replaced, the count
    // goes on) and leaves the first unanswered: a second answer shows a second validation.
    const file = join(dir, 'counting-worker.mjs');
    const counter = join(dir, 'jobs');
    writeFileSync(counter, '0');
    writeFileSync(
      file,
      [
        "import { readFileSync, writeFileSync } from 'node:fs';",
        "import { parentPort } from 'node:worker_threads';",
        "parentPort.on('message', ({ id }) => {",
        `  const n = Number(readFileSync(${JSON.stringify(counter)}, 'utf8')) + 1;`,
        `  writeFileSync(${JSON.stringify(counter)}, String(n));`,
        '  if (n === 1) return;',
        "  parentPort.postMessage({ id, diagnostics: [{ severity: 'warning', line: 1, column: 1, message: `answer ${n}`, code: 'x' }] });",
        '});',
      ].join('\n'),
    );
    const v = createValidator(profile, { workerThreshold: 0, workerUrl: pathToFileURL(file), timeoutMs: 500 });
    try {
      const a = Buffer.from('keep;\n');
      // The first job is never answered: an internal failure, which is not kept.
      expect((await v.validate(a))[0].code).toBe('internal');
      const first = await v.validate(a);
      expect(first[0].message).toBe('answer 2');
      first.pop(); // a caller's changes do not reach the kept verdict
      expect((await v.validate(Buffer.from('keep;\n')))[0].message).toBe('answer 2');
      expect((await v.validate(Buffer.from('discard;\n')))[0].message).toBe('answer 3');
    } finally {
      await v.close();
    }
  });

  it('refuses instead of crashing when the worker dies', async () => {
    const file = join(dir, 'dying-worker.mjs');
    writeFileSync(
      file,
      "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', () => process.exit(3));\n",
    );
    const v = createValidator(profile, { workerThreshold: 0, workerUrl: pathToFileURL(file) });
    const diags = await v.validate(Buffer.from('keep;\n'));
    expect(diags).toHaveLength(1);
    expect(diags[0].severity).toBe('error');
    expect(diags[0].code).toBe('internal');
    await v.close();
  });

  it('refuses instead of hanging when the worker never answers', async () => {
    const file = join(dir, 'silent-worker.mjs');
    writeFileSync(file, "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', () => {});\n");
    const v = createValidator(profile, { workerThreshold: 0, workerUrl: pathToFileURL(file), timeoutMs: 300 });
    const diags = await v.validate(Buffer.from('keep;\n'));
    expect(diags[0].message).toContain('took too long');
    // A fresh worker is started for the next script.
    const again = await v.validate(Buffer.from('keep;\n'));
    expect(again[0].message).toContain('took too long');
    await v.close();
  });

  it('refuses scripts over the size limit before parsing', async () => {
    const v = createValidator({ ...profile, maxScriptBytes: 1000 });
    const diags = await v.validate(Buffer.alloc(1001, 0x20));
    expect(diags[0].message).toContain('more than the limit of 1000');
    await v.close();
  });
});
