/**
 * The cluster primary's bookkeeping of the limits it keeps for all workers: one
 * count per account and per address whatever worker asks, and a dead worker's
 * connection and session slots given back (its sessions died with it), while
 * the failed-login penalty stays.
 */
import { describe, expect, it } from 'vitest';
import { SharedLimits } from '../../src/cluster/shared-limits.js';
import type { Answer, ToPrimary } from '../../src/cluster/messages.js';

function asker(limits: SharedLimits) {
  let id = 0;
  return (worker: number, message: Omit<ToPrimary, 'id'> & { t: ToPrimary['t'] }): Answer | undefined => {
    let value: Answer | undefined;
    const handled = limits.handle(worker, { ...message, id: ++id } as ToPrimary, (_id, v) => (value = v));
    expect(handled).toBe(true);
    return value;
  };
}

describe('SharedLimits', () => {
  it('counts an account across workers and gives back the slots of a worker that died', () => {
    const limits = new SharedLimits();
    const ask = asker(limits);
    const one = ask(1, { t: 'tsieved:claim', user: 'u', max: 2 } as never);
    const two = ask(2, { t: 'tsieved:claim', user: 'u', max: 2 } as never);
    expect(typeof one).toBe('number');
    expect(typeof two).toBe('number');
    expect(ask(1, { t: 'tsieved:claim', user: 'u', max: 2 } as never)).toBeNull();
    ask(1, { t: 'tsieved:unclaim', slot: one } as never);
    // Once only, and only by the worker that holds it.
    ask(1, { t: 'tsieved:unclaim', slot: one } as never);
    ask(1, { t: 'tsieved:unclaim', slot: two } as never);
    expect(limits.sessionsOf('u')).toBe(1);
    limits.workerGone(2);
    expect(limits.sessionsOf('u')).toBe(0);
  });

  it('counts connections per address across workers; a dead worker gives its back', () => {
    const limits = new SharedLimits();
    const ask = asker(limits);
    const admit = (w: number): Answer | undefined =>
      ask(w, { t: 'tsieved:admit', address: 'a', total: 10, perAddress: 2 } as never);
    expect(admit(1)).toBe('ok');
    expect(admit(2)).toBe('ok');
    expect(admit(1)).toBe('max_connections_per_ip');
    // A release from a worker that holds nothing for the address is ignored.
    ask(3, { t: 'tsieved:release', address: 'a' } as never);
    expect(admit(3)).toBe('max_connections_per_ip');
    limits.workerGone(2);
    expect(admit(3)).toBe('ok');
  });

  it('keeps one failed-login penalty per address for all workers, and it outlives a worker', () => {
    let now = 0;
    const limits = new SharedLimits(undefined, () => now);
    const ask = asker(limits);
    ask(1, { t: 'tsieved:failed', address: '192.0.2.1' } as never);
    ask(2, { t: 'tsieved:failed', address: '192.0.2.1' } as never);
    limits.workerGone(1);
    expect(ask(2, { t: 'tsieved:attempt', address: '192.0.2.1', baseMs: 100 } as never)).toEqual({
      waitMs: 0,
      failures: 2,
    });
    // The turn just taken spaces the next: 100 x 2^(2-1).
    expect(ask(1, { t: 'tsieved:attempt', address: '192.0.2.1', baseMs: 100 } as never)).toEqual({
      waitMs: 200,
      failures: 2,
    });
    now = 1000;
    ask(2, { t: 'tsieved:succeeded', address: '192.0.2.1' } as never);
    expect(ask(1, { t: 'tsieved:attempt', address: '192.0.2.1', baseMs: 100 } as never)).toEqual({
      waitMs: 0,
      failures: 0,
    });
  });

  it('tells every worker which addresses have a penalty, and lists them for a worker that starts', () => {
    const told: unknown[] = [];
    const limits = new SharedLimits((m) => told.push(m));
    const ask = asker(limits);
    // A success from an address without failures changes nothing: nothing to tell.
    ask(1, { t: 'tsieved:succeeded', address: '192.0.2.9' } as never);
    expect(told).toEqual([]);
    ask(1, { t: 'tsieved:failed', address: '2001:db8:1:2::5' } as never);
    ask(2, { t: 'tsieved:failed', address: '192.0.2.1' } as never);
    // Keyed as the penalty is: IPv6 by /64.
    expect(told).toEqual([
      { t: 'tsieved:penalized', key: '2001:db8:1:2::/64' },
      { t: 'tsieved:penalized', key: '192.0.2.1' },
    ]);
    expect(limits.penalizedKeys().sort()).toEqual(['192.0.2.1', '2001:db8:1:2::/64']);
    ask(2, { t: 'tsieved:succeeded', address: '2001:db8:1:2::7' } as never);
    expect(told.at(-1)).toEqual({ t: 'tsieved:cleared', key: '2001:db8:1:2::/64' });
    expect(limits.penalizedKeys()).toEqual(['192.0.2.1']);
  });

  it('leaves the messages that are not about limits to the primary', () => {
    const limits = new SharedLimits();
    expect(limits.handle(1, { t: 'tsieved:ready' }, () => undefined)).toBe(false);
  });
});
