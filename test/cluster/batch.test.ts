import { describe, expect, it } from 'vitest';
import { TurnBatcher, unbatched, type Batch } from '../../src/cluster/batch.js';

type M = { t: string; n: number };
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('TurnBatcher', () => {
  it('posts the messages of one turn as one batch, in the order queued', async () => {
    const posted: (M | Batch<M>)[] = [];
    const batcher = new TurnBatcher<M>((m) => posted.push(m));
    batcher.send({ t: 'tsieved:failed', n: 1 });
    batcher.send({ t: 'tsieved:attempt', n: 2 });
    batcher.send({ t: 'tsieved:release', n: 3 });
    expect(posted).toEqual([]); // nothing before the end of the turn
    await turn();
    expect(posted).toHaveLength(1);
    expect(unbatched(posted[0])).toEqual([
      { t: 'tsieved:failed', n: 1 },
      { t: 'tsieved:attempt', n: 2 },
      { t: 'tsieved:release', n: 3 },
    ]);
  });

  it('posts a message alone as itself, and each turn separately', async () => {
    const posted: (M | Batch<M>)[] = [];
    const batcher = new TurnBatcher<M>((m) => posted.push(m));
    batcher.send({ t: 'tsieved:claim', n: 1 });
    await turn();
    batcher.send({ t: 'tsieved:unclaim', n: 2 });
    await turn();
    expect(posted).toEqual([
      { t: 'tsieved:claim', n: 1 },
      { t: 'tsieved:unclaim', n: 2 },
    ]);
  });

  it('gathers what callbacks of the same turn send', async () => {
    const posted: (M | Batch<M>)[] = [];
    const batcher = new TurnBatcher<M>((m) => posted.push(m));
    // A timer's callback and what it leaves for later in the same turn (a tick, a
    // microtask) all run before the turn's setImmediate. (Two timers due "together"
    // are not always: on a loaded machine the clock can tick between their starts.)
    await new Promise<void>((resolve) => {
      setTimeout(() => {
        process.nextTick(() => batcher.send({ t: 'tsieved:admit', n: 2 }));
        batcher.send({ t: 'tsieved:admit', n: 1 });
      }, 1);
      setTimeout(resolve, 20);
    });
    expect(posted).toEqual([
      {
        t: 'tsieved:batch',
        messages: [
          { t: 'tsieved:admit', n: 1 },
          { t: 'tsieved:admit', n: 2 },
        ],
      },
    ]);
  });

  it('flush() posts at once; the turn then has nothing left to post', async () => {
    const posted: (M | Batch<M>)[] = [];
    const batcher = new TurnBatcher<M>((m) => posted.push(m));
    batcher.send({ t: 'tsieved:release', n: 1 });
    batcher.flush();
    expect(posted).toEqual([{ t: 'tsieved:release', n: 1 }]);
    await turn();
    expect(posted).toHaveLength(1);
  });
});

describe('unbatched', () => {
  it('takes a batch apart and leaves anything else whole', () => {
    expect(unbatched({ t: 'tsieved:batch', messages: [1, 2] })).toEqual([1, 2]);
    expect(unbatched({ t: 'tsieved:who', id: 1 })).toEqual([{ t: 'tsieved:who', id: 1 }]);
    // prom-client's own messages and anything else pass through untouched.
    expect(unbatched({ type: 'prom-client:getMetricsReq' })).toEqual([{ type: 'prom-client:getMetricsReq' }]);
    expect(unbatched({ t: 'tsieved:batch', messages: 'nonsense' })).toEqual([]);
  });
});
