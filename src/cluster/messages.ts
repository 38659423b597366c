/**
 * The messages between the cluster primary and its workers (over node:cluster's
 * IPC channel): requests the primary fans out (who, kick, reload) and the workers'
 * replies; and the limits the primary keeps for all workers (connections, session
 * slots per account, the failed-login penalty), asked by a worker and answered
 * with `tsieved:answer`, and which addresses have a penalty (told to every worker).
 *
 * Must not know: what the handlers do.
 */
import type { AdmissionVerdict } from '../server/admission.js';
import type { Turn } from '../session/login-limits.js';

export type ToWorker =
  | { readonly t: 'tsieved:who'; readonly id: number }
  | { readonly t: 'tsieved:kick'; readonly id: number; readonly target: string }
  /** `text`: the configuration file as the primary read it, so that every worker applies the same. */
  | { readonly t: 'tsieved:reload'; readonly id: number; readonly text: string }
  /** The answer to a worker's own request below (its id), whatever it asked. */
  | { readonly t: 'tsieved:answer'; readonly id: number; readonly value: Answer }
  /**
   * The configuration text in force (undefined: none was read, e.g. the demo), asked
   * by a starting worker, with the addresses (keys) that have a failed-login penalty now.
   */
  | { readonly t: 'tsieved:config'; readonly text: string | undefined; readonly penalized: readonly string[] }
  /** An address key got a failed-login penalty (or one more failure), or lost it with a success. */
  | { readonly t: 'tsieved:penalized'; readonly key: string }
  | { readonly t: 'tsieved:cleared'; readonly key: string };

/** admit: a verdict; attempt: a turn; claim: a slot number, or null when all are taken. */
export type Answer = AdmissionVerdict | Turn | number | null;

export type ToPrimary =
  | { readonly t: 'tsieved:config?' }
  | { readonly t: 'tsieved:ready' }
  | { readonly t: 'tsieved:reply'; readonly id: number; readonly value: unknown }
  | {
      readonly t: 'tsieved:admit';
      readonly id: number;
      readonly address: string;
      readonly total: number;
      readonly perAddress: number;
    }
  | { readonly t: 'tsieved:release'; readonly address: string }
  | { readonly t: 'tsieved:claim'; readonly id: number; readonly user: string; readonly max: number }
  | { readonly t: 'tsieved:unclaim'; readonly slot: number }
  | { readonly t: 'tsieved:attempt'; readonly id: number; readonly address: string; readonly baseMs: number }
  | { readonly t: 'tsieved:failed'; readonly address: string }
  | { readonly t: 'tsieved:succeeded'; readonly address: string };

export function isMessage<T extends { t: string }>(value: unknown): value is T {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { t?: unknown }).t === 'string' &&
    (value as { t: string }).t.startsWith('tsieved:')
  );
}
