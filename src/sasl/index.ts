/**
 * The mechanisms the AUTHENTICATE command can offer and start.
 *
 * Order (the SASL capability, RFC 5804 section 1.7): SCRAM-SHA-256, SCRAM-SHA-1,
 * PLAIN, LOGIN. Thunderbird takes the first of PLAIN/SCRAM in *server* order, so
 * SCRAM first makes it use SCRAM when offered; Net_Sieve picks by its own list
 * (DIGEST-MD5, CRAM-MD5, EXTERNAL, PLAIN, LOGIN) and lands on PLAIN, which is why
 * no DIGEST/CRAM/EXTERNAL is ever listed. LOGIN is last: clients that know PLAIN
 * prefer it. SCRAM is listed only when the backend says it can supply keys.
 *
 * Whether PLAIN/LOGIN may be offered without TLS is the session's decision, not
 * this module's.
 *
 * Must not know: sockets, base64, the wire protocol.
 */
import type { AuthBackend, AuthContext, ScramAlgorithm } from '../auth/types.js';
import { LoginExchange } from './login.js';
import { PlainExchange } from './plain.js';
import { ScramExchange } from './scram.js';
import type { SaslExchange } from './types.js';

export type { SaslExchange, SaslStep, SaslFailureReason } from './types.js';

const SCRAM: readonly [string, ScramAlgorithm][] = [
  ['SCRAM-SHA-256', 'SHA-256'],
  ['SCRAM-SHA-1', 'SHA-1'],
];

function scramOffered(backend: AuthBackend, alg: ScramAlgorithm): boolean {
  return backend.lookupScram !== undefined && (backend.scramAlgorithms ?? []).includes(alg);
}

export function mechanismNames(backend: AuthBackend): string[] {
  const names = SCRAM.filter(([, alg]) => scramOffered(backend, alg)).map(([n]) => n);
  return [...names, 'PLAIN', 'LOGIN'];
}

/** undefined when the mechanism is unknown or not offered with this backend. Case-insensitive. */
export function createExchange(
  mechanism: string,
  backend: AuthBackend,
  context: AuthContext,
): SaslExchange | undefined {
  const name = mechanism.toUpperCase();
  if (name === 'PLAIN') return new PlainExchange(backend, context);
  if (name === 'LOGIN') return new LoginExchange(backend, context);
  for (const [n, alg] of SCRAM) {
    if (name === n) return scramOffered(backend, alg) ? new ScramExchange(backend, alg, context) : undefined;
  }
  return undefined;
}
