/**
 * Limits that hold across connections, kept for the life of the server process
 * (not per connection, which a client escapes by opening more of them):
 *
 * - Sessions per account (`max_sessions_per_user`, as Dovecot's
 *   mail_max_userip_connections): one account once held 100 sessions and 100
 *   storage processes.
 * - A failed-login penalty per source address (IPv6: per /64, what one host
 *   usually gets): after failures, every attempt from that address, on whatever
 *   connection, waits for its turn before the password is even checked, turns
 *   spaced by base x 2^(failures-1) up to PENALTY_MAX_MS. Waiting before the check
 *   (as Dovecot's auth_penalty) means a client cannot skip the wait by hanging up
 *   early: a success is not answered sooner than a failure. A login that succeeds
 *   clears its address; an address without failures for PENALTY_FORGET_MS is
 *   forgotten. Fifty parallel connections once tried 24.6 passwords a second.
 *
 * Memory is bounded: at most MAX_ADDRESSES addresses are remembered (the longest
 * quiet ones are forgotten first).
 *
 * One process counts for itself (LoginLimits); with `[server] workers` above 1
 * the workers ask the cluster primary, which keeps the one LoginLimits for all of
 * them (src/cluster/), so the limits hold for the server and not per worker:
 * hence the LoginLimiter contract, whose answers may come later.
 *
 * Must not know: protocols, SASL, how accounts are checked.
 */
import { isIPv6 } from 'node:net';

export const PENALTY_MAX_MS = 15_000;
export const PENALTY_FORGET_MS = 15 * 60_000;
export const MAX_ADDRESSES = 100_000;

/** A login attempt's turn: how long to wait before checking it, and the failures so far. */
export interface Turn {
  readonly waitMs: number;
  readonly failures: number;
}

/** Gives back a session slot (once, however often called); undefined: all slots taken. */
export type SessionSlot = (() => void) | undefined;

/** What AUTHENTICATE needs of the limits; LoginLimits here, or the cluster primary's. */
export interface LoginLimiter {
  claimSession(user: string, max: number): SessionSlot | Promise<SessionSlot>;
  attempt(address: string, baseMs: number): Turn | Promise<Turn>;
  failed(address: string): void;
  succeeded(address: string): void;
}

interface Penalty {
  failures: number;
  /** When the next attempt from this address may start (ms, this.now's clock). */
  nextTurn: number;
  lastFailure: number;
}

export class LoginLimits implements LoginLimiter {
  private readonly sessions = new Map<string, number>();
  private readonly penalties = new Map<string, Penalty>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /**
   * Takes one of the account's `max` session slots; the function returned gives it
   * back (once, however often called). Undefined when all are taken.
   */
  claimSession(user: string, max: number): SessionSlot {
    const held = this.sessions.get(user) ?? 0;
    if (held >= max) return undefined;
    this.sessions.set(user, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.sessions.get(user) ?? 1) - 1;
      if (left <= 0) this.sessions.delete(user);
      else this.sessions.set(user, left);
    };
  }

  sessionsOf(user: string): number {
    return this.sessions.get(user) ?? 0;
  }

  /**
   * Reserves the address's next turn for a login attempt: how long to wait before
   * checking it (0 without earlier failures), and the failures so far.
   */
  attempt(address: string, baseMs: number): Turn {
    const key = addressKey(address);
    const p = this.current(key);
    if (!p) return { waitMs: 0, failures: 0 };
    const now = this.now();
    const turn = Math.max(now, p.nextTurn);
    p.nextTurn = turn + Math.min(baseMs * 2 ** (p.failures - 1), PENALTY_MAX_MS);
    return { waitMs: turn - now, failures: p.failures };
  }

  /** A failed (or cancelled) login from the address; returns its failures now. */
  failed(address: string): number {
    const key = addressKey(address);
    const now = this.now();
    const p = this.current(key) ?? { failures: 0, nextTurn: now, lastFailure: now };
    p.failures++;
    p.lastFailure = now;
    // Re-inserted so the map's order is the order of last failures (oldest first).
    this.penalties.delete(key);
    this.penalties.set(key, p);
    while (this.penalties.size > MAX_ADDRESSES) this.penalties.delete(this.penalties.keys().next().value!);
    return p.failures;
  }

  succeeded(address: string): void {
    this.penalties.delete(addressKey(address));
  }

  /** Whether attempts from the address wait for a turn now (it has failures not yet forgotten). */
  penalized(address: string): boolean {
    return this.current(addressKey(address)) !== undefined;
  }

  /** The keys (addressKey) of every address with a penalty now. */
  penalizedKeys(): string[] {
    return [...this.penalties.keys()].filter((key) => this.current(key) !== undefined);
  }

  private current(key: string): Penalty | undefined {
    const p = this.penalties.get(key);
    if (p && this.now() - p.lastFailure > PENALTY_FORGET_MS) {
      this.penalties.delete(key);
      return undefined;
    }
    return p;
  }
}

/** The address itself for IPv4; the /64 prefix for IPv6. */
export function addressKey(address: string): string {
  if (!isIPv6(address)) return address;
  const [head = '', tail] = address.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  // An embedded IPv4 tail (::ffff:1.2.3.4) sits in the low 64 bits: irrelevant here.
  const groups =
    tail === undefined ? h : [...h, ...new Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return (
    groups
      .slice(0, 4)
      .map((g) => parseInt(g, 16).toString(16))
      .join(':') + '::/64'
  );
}
