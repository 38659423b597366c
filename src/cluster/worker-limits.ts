/**
 * A worker's side of the limits the cluster primary keeps for every worker:
 * connections (max_connections, max_connections_per_ip), session slots per
 * account (max_sessions_per_user) and the failed-login penalty per address. Each
 * question goes to the primary over the IPC channel and is answered there, so a
 * client cannot escape a limit by landing on another worker. Slots a worker holds
 * are given back by the primary when the worker dies.
 *
 * Must not know: what the limits are for (server/admission.ts, session/login-limits.ts).
 */
import type { Admission, AdmissionLimits, AdmissionVerdict } from '../server/admission.js';
import type { LoginLimiter, SessionSlot, Turn } from '../session/login-limits.js';
import { isMessage, type Answer, type ToPrimary, type ToWorker } from './messages.js';

function send(message: ToPrimary): void {
  process.send?.(message);
}

/** Questions to the primary and their answers, matched by id. */
class PrimaryChannel {
  private next = 1;
  private readonly waiting = new Map<number, (value: Answer) => void>();

  constructor() {
    process.on('message', (message: unknown) => {
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

  async attempt(address: string, baseMs: number): Promise<Turn> {
    return (await primary().ask((id) => ({ t: 'tsieved:attempt', id, address, baseMs }))) as Turn;
  }

  failed(address: string): void {
    send({ t: 'tsieved:failed', address });
  }

  succeeded(address: string): void {
    send({ t: 'tsieved:succeeded', address });
  }
}
