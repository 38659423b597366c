/**
 * Does the migration change where a user's mail goes? The filter Exim reads today
 * and the one it reads afterwards (tsieved's filter_path, possibly another file)
 * are run through the real Exim (routing.ts) and their outcomes compared.
 * Byte-identical files need no Exim to be the same. Without an Exim binary, or
 * with a file that cannot be read, routing is not proven, and a real run treats
 * that like a change (see index.ts): an administrator who must not lose a member's
 * forwarding would not want a guess.
 *
 * Must not know: the store, the old layouts, the report's layout.
 */
import { usesSubaddress } from './probes.js';
import { describeChanges, outcomesOf, type Address, type EximRunner } from './routing.js';

/** A filter as Exim would find it: undefined = no file (normal delivery); 'unknown' = could not be read. */
export type FilterState = Buffer | undefined | { readonly unknown: string };

export type Routing =
  | { readonly kind: 'unchanged'; readonly how: 'identical' | 'exim' }
  | { readonly kind: 'changed'; readonly changes: readonly string[] }
  | { readonly kind: 'unproven'; readonly why: string };

export interface ProveInput {
  readonly before: FilterState;
  readonly after: FilterState;
  /** Today's behaviour is Dovecot running this script (no file Exim reads): compared as Exim runs it. */
  readonly dovecotRan?: boolean;
  readonly exim: EximRunner | undefined;
  readonly address: Address;
}

function isUnknown(f: FilterState): f is { unknown: string } {
  return f !== undefined && !Buffer.isBuffer(f);
}

export async function proveRouting(input: ProveInput): Promise<Routing> {
  if (isUnknown(input.before)) return { kind: 'unproven', why: input.before.unknown };
  if (isUnknown(input.after)) return { kind: 'unproven', why: input.after.unknown };
  const before = input.before as Buffer | undefined;
  const after = input.after as Buffer | undefined;
  if (
    !input.dovecotRan &&
    (before === after || (before !== undefined && after !== undefined && before.equals(after)))
  ) {
    return { kind: 'unchanged', how: 'identical' };
  }
  if (!input.exim)
    return { kind: 'unproven', why: 'no Exim binary found (set sieve.exim or --exim) to compare the filter files' };
  let b, a;
  try {
    b = await outcomesOf(input.exim, before, input.address);
    a = await outcomesOf(input.exim, after, input.address);
  } catch (err) {
    return { kind: 'unproven', why: (err as Error).message };
  }
  const changes = describeChanges(b, a);
  if (input.dovecotRan && b.some(({ outcome }) => outcome.some((x) => x.startsWith('error ')))) {
    changes.unshift('Dovecot ran this script until now; Exim fails on it');
  }
  return changes.length === 0 ? { kind: 'unchanged', how: 'exim' } : { kind: 'changed', changes };
}

/** What a comparison by `exim -bf` could not judge in these filters (probes.ts), for the report's notes. */
export function subaddressCaveat(routing: Routing, before: FilterState, after: FilterState): string | undefined {
  const compared = routing.kind === 'changed' || (routing.kind === 'unchanged' && routing.how === 'exim');
  if (!compared || ![before, after].some((f) => Buffer.isBuffer(f) && usesSubaddress(f))) return undefined;
  return "the filter tests envelope :user or :detail, which exim -bf runs without the router's sieve_useraddress/sieve_subaddress (:detail never matches there): changes in those rules are not seen";
}
