/**
 * Worker-thread entry: validates the scripts the main thread sends, so a 1 MiB
 * script does not hold up other sessions' replies. Loaded from dist/ (plain
 * Node cannot run the .ts source in a worker).
 *
 * Must not know: anything but the message shapes of validator.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { SieveProfile } from './profile.js';
import { validateScript } from './validate.js';

interface Job {
  id: number;
  script: Uint8Array;
}

const profile = (workerData as { profile: SieveProfile }).profile;

parentPort?.on('message', (job: Job) => {
  const diagnostics = validateScript(
    Buffer.from(job.script.buffer, job.script.byteOffset, job.script.byteLength),
    profile,
  );
  parentPort?.postMessage({ id: job.id, diagnostics });
});
