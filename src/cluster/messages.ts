/**
 * The messages between the cluster primary and its workers (over node:cluster's
 * IPC channel): requests the primary fans out (who, kick, reload), the workers'
 * replies, and the connection-limit bookkeeping the primary does for all workers.
 *
 * Must not know: what the handlers do.
 */
import type { AdmissionVerdict } from '../server/admission.js';

export type ToWorker =
  | { readonly t: 'tsieved:who'; readonly id: number }
  | { readonly t: 'tsieved:kick'; readonly id: number; readonly target: string }
  | { readonly t: 'tsieved:reload'; readonly id: number }
  | { readonly t: 'tsieved:admitted'; readonly id: number; readonly verdict: AdmissionVerdict };

export type ToPrimary =
  | { readonly t: 'tsieved:ready' }
  | { readonly t: 'tsieved:reply'; readonly id: number; readonly value: unknown }
  | {
      readonly t: 'tsieved:admit';
      readonly id: number;
      readonly address: string;
      readonly total: number;
      readonly perAddress: number;
    }
  | { readonly t: 'tsieved:release'; readonly address: string };

export function isMessage<T extends { t: string }>(value: unknown): value is T {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { t?: unknown }).t === 'string' &&
    (value as { t: string }).t.startsWith('tsieved:')
  );
}
