/**
 * A worker's side of the limits the cluster primary keeps: what it sends to the
 * primary. A success from an address the primary has told of no penalty has
 * nothing to clear, so it is not sent; one after a failure (here or, as the
 * primary told, in another worker) is.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { followPenalties, PrimaryLoginLimits } from '../../src/cluster/worker-limits.js';
import type { ToPrimary } from '../../src/cluster/messages.js';
import { unbatched } from '../../src/cluster/batch.js';
import { addressKey } from '../../src/session/login-limits.js';

const sent: ToPrimary[] = [];
const original = process.send;
// This test file runs in a process without an IPC channel: stand in for it.
process.send = ((message: ToPrimary) => {
  sent.push(message);
  return true;
}) as typeof process.send;
afterEach(() => {
  sent.length = 0;
});
/** What reached the channel by the end of the turn (messages go once per turn, batch.ts). */
async function posted(): Promise<unknown[]> {
  await new Promise((resolve) => setImmediate(resolve));
  return sent.flatMap((m) => unbatched(m));
}
process.on('exit', () => (process.send = original));

describe('PrimaryLoginLimits (a worker)', () => {
  it('sends a success only from an address that may have a penalty to clear', async () => {
    followPenalties([addressKey('198.51.100.2')]);
    const limits = new PrimaryLoginLimits();
    limits.succeeded('198.51.100.1');
    expect(await posted()).toEqual([]);
    // A penalty the primary told of (another worker's failure).
    limits.succeeded('198.51.100.2');
    expect(await posted()).toEqual([{ t: 'tsieved:succeeded', address: '198.51.100.2' }]);
    sent.length = 0;
    // A failure in this worker counts at once.
    limits.failed('198.51.100.1');
    limits.succeeded('198.51.100.1');
    expect(await posted()).toEqual([
      { t: 'tsieved:failed', address: '198.51.100.1' },
      { t: 'tsieved:succeeded', address: '198.51.100.1' },
    ]);
  });
});
