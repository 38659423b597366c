/**
 * A worker's side of the limits the cluster primary keeps for every worker:
 * connections (max_connections, max_connections_per_ip), session slots per
 * account (max_sessions_per_user) and the failed-login penalty per address. Each
 * question goes to the primary over the IPC channel and is answered there, so a
 * client cannot escape a limit by landing on another worker. Slots a worker holds
 * are given back by the primary when the worker dies.
 *
 * Except one question: a login attempt from an address without failed logins has
 * nothing to wait for, and that is nearly every attempt (and a success from such an
 * address has nothing to clear: it is not sent either). The primary tells every
 * worker which addresses have a penalty (when it starts, and at each failure or
 * success that changes it), so a worker asks only about those: one IPC round trip
 * less between AUTHENTICATE and OK. A failure reported by another worker reaches
 * this one within the same round trip's time; attempts from the address already
 * under way then were not held up by it either.
 *
 * Must not know: what the limits are for (server/admission.ts, session/login-limits.ts).
 */
import type { Admission, AdmissionLimits, AdmissionVerdict } from '../server/admission.js';
import {
  addressKey,
  MAX_ADDRESSES,
  PENALTY_FORGET_MS,
  type LoginLimiter,
  type SessionSlot,
  type Turn,
} from '../session/login-limits.js';
import { onPrimaryMessage, TurnBatcher } from './batch.js';
import { isMessage, type Answer, type ToPrimary, type ToWorker } from './messages.js';

/** To the primary, once per turn (batch.ts). */
const toPrimary = new TurnBatcher<ToPrimary>((message) => process.send?.(message));
const send = (message: ToPrimary): void => toPrimary.send(message);

/** Questions to the primary and their answers, matched by id. */
class PrimaryChannel {
  private next = 1;
  private readonly waiting = new Map<number, (value: Answer) => void>();

  constructor() {
    onPrimaryMessage((message) => {
      if (!isMessage<ToWorker>(message) || message.t !== 'tsieved:answer') return;
      const resolve = this.waiting.get(message.id);
      this.waiting.delete(message.id);
      resolve?.(message.value);
    });
  }

  ask(make: (id: number) => ToPrimary): Promise<Answer> {
    const id = this.next++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      send(make(id));
    });
  }
}

/**
 * The address keys with a failed-login penalty, as the primary last told (with when
 * this worker last heard of a failure there). Undefined until the primary has sent
 * the whole list: until then every attempt is asked about.
 */
let penalized: Map<string, number> | undefined;

/** Takes the primary's list (with the configuration) and, from then on, its changes. */
export function followPenalties(keys: readonly string[]): void {
  const first = penalized === undefined;
  penalized = new Map(keys.map((key) => [key, performance.now()]));
  if (!first) return;
  onPrimaryMessage((message) => {
    if (!isMessage<ToWorker>(message)) return;
    if (message.t === 'tsieved:penalized') notePenalty(message.key);
    else if (message.t === 'tsieved:cleared') penalized?.delete(message.key);
  });
}

function notePenalty(key: string): void {
  if (penalized === undefined) return;
  penalized.delete(key);
  penalized.set(key, performance.now());
  // Bounded as the primary's table is (oldest failures forgotten first).
  while (penalized.size > MAX_ADDRESSES) penalized.delete(penalized.keys().next().value!);
}

/** False only when the primary's list says the address has no penalty to wait for. */
function mayHavePenalty(address: string): boolean {
  if (penalized === undefined) return true;
  const key = addressKey(address);
  const since = penalized.get(key);
  if (since === undefined) return false;
  if (performance.now() - since <= PENALTY_FORGET_MS) return true;
  penalized.delete(key); // the primary has forgotten it too
  return false;
}

let channel: PrimaryChannel | undefined;
const primary = (): PrimaryChannel => (channel ??= new PrimaryChannel());

/** Connection limits counted by the primary for every worker. */
export class PrimaryAdmission implements Admission {
  async acquire(address: string, limits: AdmissionLimits): Promise<AdmissionVerdict> {
    return (await primary().ask((id) => ({
      t: 'tsieved:admit',
      id,
      address,
      total: limits.total,
      perAddress: limits.perAddress,
    }))) as AdmissionVerdict;
  }

  release(address: string): void {
    send({ t: 'tsieved:release', address });
  }
}

/**
 * Session slots and the penalty kept by the primary. Messages from one worker
 * arrive in the order sent, so a failure reported here counts before this
 * worker's next attempt is given its turn.
 */
export class PrimaryLoginLimits implements LoginLimiter {
  async claimSession(user: string, max: number): Promise<SessionSlot> {
    const slot = await primary().ask((id) => ({ t: 'tsieved:claim', id, user, max }));
    if (typeof slot !== 'number') return undefined;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      send({ t: 'tsieved:unclaim', slot });
    };
  }

  attempt(address: string, baseMs: number): Turn | Promise<Turn> {
    if (!mayHavePenalty(address)) return { waitMs: 0, failures: 0 };
    return primary().ask((id) => ({ t: 'tsieved:attempt', id, address, baseMs })) as Promise<Turn>;
  }

  failed(address: string): void {
    // Known here at once: this worker's next attempt from the address asks.
    notePenalty(addressKey(address));
    send({ t: 'tsieved:failed', address });
  }

  succeeded(address: string): void {
    // Only a penalty has anything to clear: nearly every login has none, and the
    // message would be one more wake-up of the primary between AUTHENTICATE and OK.
    if (!mayHavePenalty(address)) return;
    send({ t: 'tsieved:succeeded', address });
  }
}
