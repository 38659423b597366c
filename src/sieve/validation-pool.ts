/**
 * The asynchronous validator the server uses: small scripts are checked inline
 * (cheaper than a message round trip), larger ones in a worker thread so the
 * event loop keeps answering other sessions. A worker that dies or takes too
 * long is replaced and the script is refused with an internal error, never a
 * crash or a hang. The verdicts on the last few scripts are kept (by a SHA-256
 * of their bytes): SETACTIVE checks again the script a PUTSCRIPT has just checked
 * (Roundcube and the other clients do both on every save), and the answer for the
 * same bytes under the same profile is the same.
 *
 * Must not know: the protocol or the passes.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Diagnostic } from './diagnostics.js';
import type { SieveProfile } from './profile.js';
import { validateScript } from './validate.js';

export interface Validator {
  validate(script: Buffer): Promise<Diagnostic[]>;
  close(): Promise<void>;
}

export interface ValidatorOptions {
  /** Scripts of at least this many bytes go to the worker. */
  workerThreshold?: number;
  /** A worker job running longer than this is abandoned. */
  timeoutMs?: number;
  /** Override the worker script (tests). */
  workerUrl?: URL;
  /** How many verdicts are kept for scripts seen again (default 64). */
  cacheEntries?: number;
}

/**
 * The compiled worker. Under vitest this module is the .ts source, whose
 * neighbour worker.ts Node cannot load in a thread; use the build in dist/.
 */
export function defaultWorkerUrl(): URL {
  const here = import.meta.url;
  if (here.endsWith('.ts')) return new URL('../../dist/sieve/validation-thread.js', here);
  return new URL('./validation-thread.js', here);
}

interface Pending {
  /** The script's cache key. */
  key: string;
  resolve: (d: Diagnostic[]) => void;
  timer: NodeJS.Timeout;
  worker: Worker;
}

function internal(message: string): Diagnostic[] {
  return [{ severity: 'error', line: 1, column: 1, message, code: 'internal' }];
}

export function createValidator(profile: SieveProfile, options: ValidatorOptions = {}): Validator {
  const threshold = options.workerThreshold ?? 32 * 1024;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const url = options.workerUrl ?? defaultWorkerUrl();
  const workerAvailable = existsSync(fileURLToPath(url));
  let worker: Worker | undefined;
  let nextId = 1;
  const pending = new Map<number, Pending>();
  let closed = false;
  const cacheEntries = options.cacheEntries ?? 64;
  /** SHA-256 of a script -> its verdict, least recently used first; never an internal failure. */
  const verdicts = new Map<string, Diagnostic[]>();
  const remember = (key: string, diagnostics: Diagnostic[]): Diagnostic[] => {
    verdicts.set(key, diagnostics);
    if (verdicts.size > cacheEntries) verdicts.delete(verdicts.keys().next().value!);
    return [...diagnostics];
  };

  /** Refuses the jobs of one worker (or all, on close). */
  const failAll = (message: string, only?: Worker): void => {
    for (const [id, p] of pending) {
      if (only !== undefined && p.worker !== only) continue;
      clearTimeout(p.timer);
      p.resolve(internal(message));
      pending.delete(id);
    }
  };

  const getWorker = (): Worker => {
    if (worker !== undefined) return worker;
    const w = new Worker(url, { workerData: { profile } });
    w.unref();
    w.on('message', (m: { id: number; diagnostics: Diagnostic[] }) => {
      const p = pending.get(m.id);
      if (p === undefined) return;
      clearTimeout(p.timer);
      pending.delete(m.id);
      p.resolve(remember(p.key, m.diagnostics));
    });
    w.on('error', (e) => {
      if (worker === w) worker = undefined;
      failAll(`internal validator error: ${e.message}`, w);
    });
    w.on('exit', () => {
      if (worker === w) worker = undefined;
      failAll('internal validator error: the validation worker stopped', w);
    });
    worker = w;
    return w;
  };

  return {
    validate(script: Buffer): Promise<Diagnostic[]> {
      const key = createHash('sha256').update(script).digest('base64');
      const known = verdicts.get(key);
      if (known !== undefined) {
        verdicts.delete(key);
        return Promise.resolve(remember(key, known));
      }
      if (closed || script.length < threshold || !workerAvailable) {
        return Promise.resolve(remember(key, validateScript(script, profile)));
      }
      return new Promise((resolve) => {
        const id = nextId++;
        const w = getWorker();
        const timer = setTimeout(() => {
          pending.delete(id);
          resolve(internal('script validation took too long'));
          if (worker === w) worker = undefined;
          void w.terminate();
        }, timeoutMs);
        pending.set(id, { key, resolve, timer, worker: w });
        // A copy: the caller keeps its Buffer, which may share a pooled ArrayBuffer.
        w.postMessage({ id, script: new Uint8Array(script) });
      });
    },
    async close(): Promise<void> {
      closed = true;
      const w = worker;
      worker = undefined;
      if (w !== undefined) await w.terminate();
      failAll('validator closed');
    },
  };
}
