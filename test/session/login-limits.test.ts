import { describe, expect, it } from 'vitest';
import {
  addressKey,
  LoginLimits,
  MAX_ADDRESSES,
  PENALTY_FORGET_MS,
  PENALTY_MAX_MS,
} from '../../src/session/login-limits.js';

describe('LoginLimits: sessions per account', () => {
  it('hands out max slots, refuses the next, and a slot given back (once) is free again', () => {
    const l = new LoginLimits();
    const a = l.claimSession('u', 2);
    const b = l.claimSession('u', 2);
    expect(a && b).toBeTruthy();
    expect(l.claimSession('u', 2)).toBeUndefined();
    expect(l.claimSession('other', 2)).toBeDefined();
    a!();
    a!();
    expect(l.sessionsOf('u')).toBe(1);
    expect(l.claimSession('u', 2)).toBeDefined();
  });
});

describe('LoginLimits: failed-login penalty per address', () => {
  it('spaces attempts from one address (whatever connection) by a growing interval, reset on success', () => {
    let now = 0;
    const l = new LoginLimits(() => now);
    expect(l.attempt('192.0.2.1', 1000)).toEqual({ waitMs: 0, failures: 0 });
    l.failed('192.0.2.1');
    l.failed('192.0.2.1');
    // Three attempts at once (three connections): one turn each, 2 s apart.
    expect([0, 1, 2].map(() => l.attempt('192.0.2.1', 1000).waitMs)).toEqual([0, 2000, 4000]);
    expect(l.attempt('192.0.2.2', 1000).waitMs).toBe(0); // another address is not held up
    for (let i = 0; i < 10; i++) l.failed('192.0.2.1');
    now = 100_000;
    l.attempt('192.0.2.1', 1000);
    expect(l.attempt('192.0.2.1', 1000).waitMs).toBe(PENALTY_MAX_MS);
    l.succeeded('192.0.2.1');
    expect(l.attempt('192.0.2.1', 1000).waitMs).toBe(0);
  });

  it('forgets an address quiet for long, and never remembers more than MAX_ADDRESSES', () => {
    let now = 0;
    const l = new LoginLimits(() => now);
    l.failed('192.0.2.1');
    l.failed('192.0.2.1');
    now = PENALTY_FORGET_MS + 1;
    expect(l.attempt('192.0.2.1', 1000)).toEqual({ waitMs: 0, failures: 0 });
    for (let i = 0; i <= MAX_ADDRESSES; i++) l.failed(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    expect((l as unknown as { penalties: Map<string, unknown> }).penalties.size).toBe(MAX_ADDRESSES);
  });

  it('counts IPv6 addresses per /64', () => {
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2::ffff')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('192.0.2.1')).toBe('192.0.2.1');
    const l = new LoginLimits(() => 0);
    l.failed('2001:db8:1:2::1');
    l.failed('2001:db8:1:2::2');
    expect(l.attempt('2001:db8:1:2::3', 1000).failures).toBe(2);
  });
});
