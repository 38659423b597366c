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
