/**
 * Messages between the cluster primary and a worker, sent once per event-loop turn:
 * everything one side queues while it handles the I/O of one turn (the limits'
 * questions, answers and notices of many connections) goes over the IPC channel as
 * one message. Each IPC message costs both processes a JSON round and a system
 * call with a wake-up (about 25 us of CPU on each side on the bench machine), and a
 * login took about ten of them: with the limits' messages left out altogether (an
 * experiment, not a configuration), two workers used 8-11% less CPU per login.
 *
 * The order of messages is kept: a batch holds them in the order queued, and node's
 * channel delivers batches in the order sent, so a failed login reported before an
 * attempt still counts first (worker-limits.ts).
 *
 * Must not know: what the messages mean.
 */
import { isMessage } from './messages.js';

/** Several messages of one turn, in order. */
export interface Batch<T> {
  readonly t: 'tsieved:batch';
  readonly messages: readonly T[];
}

/**
 * Queues messages and posts them at the end of the turn (setImmediate: after the
 * turn's I/O callbacks), one alone as itself, several as one Batch.
 */
export class TurnBatcher<T> {
  private queued: T[] = [];

  constructor(private readonly post: (message: T | Batch<T>) => void) {}

  send(message: T): void {
    if (this.queued.push(message) === 1) setImmediate(() => this.flush());
  }

  /** Posts what is queued now (also called at the end of the turn). */
  flush(): void {
    const messages = this.queued;
    if (messages.length === 0) return;
    this.queued = [];
    this.post(messages.length === 1 ? messages[0] : { t: 'tsieved:batch', messages });
  }
}

/** The messages a received message carries: those of a batch, or the message itself. */
export function unbatched(message: unknown): readonly unknown[] {
  if (isMessage<{ t: string }>(message) && message.t === 'tsieved:batch') {
    const messages = (message as { messages?: unknown }).messages;
    return Array.isArray(messages) ? messages : [];
  }
  return [message];
}

/**
 * Calls `handle` for every message from the primary (batches taken apart); returns
 * the function that stops it.
 */
export function onPrimaryMessage(handle: (message: unknown) => void): () => void {
  const listener = (message: unknown): void => {
    for (const m of unbatched(message)) handle(m);
  };
  process.on('message', listener);
  return () => process.off('message', listener);
}
