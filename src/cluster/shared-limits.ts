/**
 * The cluster primary's side of the limits that hold for the whole server, not
 * per worker: it answers the workers' questions (cluster/worker-limits.ts) from
 * one LocalAdmission (connections) and one LoginLimits (session slots per
 * account, failed-login penalty per address), and remembers what each worker
 * holds, so that a worker that dies gives back its connection and session slots.
 * The penalty table is the server's and outlives any worker.
 *
 * Must not know: sockets, sessions, how workers are started.
 */
import { LocalAdmission } from '../server/admission.js';
import { addressKey, LoginLimits } from '../session/login-limits.js';
import type { Answer, ToPrimary, ToWorker } from './messages.js';

interface Held {
  /** Connection slots by address. */
  readonly connections: Map<string, number>;
  /** Session slots by the primary's slot number, with the function that gives each back. */
  readonly sessions: Map<number, () => void>;
}

export class SharedLimits {
  private readonly admission = new LocalAdmission();
  private readonly logins: LoginLimits;
  private readonly held = new Map<number, Held>();
  private nextSlot = 1;

  /**
   * `tell` sends a message to every worker: which addresses have a penalty, so that
   * a worker asks about a login attempt only from those (worker-limits.ts).
   */
  constructor(
    private readonly tell: (message: ToWorker) => void = () => undefined,
    now?: () => number,
  ) {
    this.logins = new LoginLimits(now);
  }

  /** Every address key with a penalty now, for a worker that starts. */
  penalizedKeys(): string[] {
    return this.logins.penalizedKeys();
  }

  /**
   * Handles a worker's message about the limits; `answer` replies to a question.
   * False for messages that are not about the limits.
   */
  handle(worker: number, message: ToPrimary, answer: (id: number, value: Answer) => void): boolean {
    switch (message.t) {
      case 'tsieved:admit': {
        const verdict = this.admission.acquire(message.address, {
          total: message.total,
          perAddress: message.perAddress,
        });
        if (verdict === 'ok') this.holdConnection(worker, message.address, 1);
        answer(message.id, verdict);
        return true;
      }
      case 'tsieved:release':
        if (this.holdConnection(worker, message.address, -1)) this.admission.release(message.address);
        return true;
      case 'tsieved:claim': {
        const release = this.logins.claimSession(message.user, message.max);
        if (!release) {
          answer(message.id, null);
          return true;
        }
        const slot = this.nextSlot++;
        this.of(worker).sessions.set(slot, release);
        answer(message.id, slot);
        return true;
      }
      case 'tsieved:unclaim': {
        const sessions = this.of(worker).sessions;
        sessions.get(message.slot)?.();
        sessions.delete(message.slot);
        return true;
      }
      case 'tsieved:attempt':
        answer(message.id, this.logins.attempt(message.address, message.baseMs));
        return true;
      case 'tsieved:failed':
        this.logins.failed(message.address);
        this.tell({ t: 'tsieved:penalized', key: addressKey(message.address) });
        return true;
      case 'tsieved:succeeded':
        if (this.logins.penalized(message.address))
          this.tell({ t: 'tsieved:cleared', key: addressKey(message.address) });
        this.logins.succeeded(message.address);
        return true;
      case 'tsieved:config?':
      case 'tsieved:ready':
      case 'tsieved:reply':
        return false;
    }
  }

  /** A worker ended: everything it held is given back (its sessions ended with it). */
  workerGone(worker: number): void {
    const held = this.held.get(worker);
    this.held.delete(worker);
    if (!held) return;
    for (const [address, n] of held.connections) for (let i = 0; i < n; i++) this.admission.release(address);
    for (const release of held.sessions.values()) release();
  }

  /** Sessions of an account held now, in all workers. */
  sessionsOf(user: string): number {
    return this.logins.sessionsOf(user);
  }

  private of(worker: number): Held {
    let held = this.held.get(worker);
    if (!held) {
      held = { connections: new Map(), sessions: new Map() };
      this.held.set(worker, held);
    }
    return held;
  }

  /** Counts a worker's connection slots; false when it held none for the address to give back. */
  private holdConnection(worker: number, address: string, delta: number): boolean {
    const mine = this.of(worker).connections;
    const before = mine.get(address) ?? 0;
    if (before + delta < 0) return false;
    const n = before + delta;
    if (n === 0) mine.delete(address);
    else mine.set(address, n);
    return true;
  }
}
