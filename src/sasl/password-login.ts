/**
 * The last step PLAIN and LOGIN share: check the claimed identity and hand
 * user + password to the backend, turning its outcome into a SASL step.
 *
 * Must not know: mechanism syntax, the wire protocol.
 */
import type { AuthBackend, AuthContext } from '../auth/types.js';
import { checkPassword, checkUserName } from '../auth/identity-rules.js';
import { failure, type SaslStep } from './types.js';

export async function passwordLogin(
  mechanism: string,
  backend: AuthBackend,
  context: AuthContext,
  user: string,
  password: string,
): Promise<SaslStep> {
  const q = JSON.stringify(user);
  const nameCheck = checkUserName(user);
  if (!nameCheck.ok) return failure('malformed', `${mechanism}: ${nameCheck.reason}`);
  const pwCheck = checkPassword(password);
  if (!pwCheck.ok) return failure('malformed', `${mechanism}: user ${q}: ${pwCheck.reason}`, { user });
  let outcome;
  try {
    outcome = await backend.verifyPassword(user, password, context);
  } catch (e) {
    const reason = `backend ${backend.name} failed: ${e instanceof Error ? e.message : String(e)}`;
    return failure('unavailable', `${mechanism}: user ${q}: ${reason}`, {
      user,
      outcome: { kind: 'unavailable', reason },
    });
  }
  switch (outcome.kind) {
    case 'ok':
      return { kind: 'success', outcome };
    case 'rejected':
      return failure('rejected', `${mechanism}: user ${q}: ${outcome.reason}`, { user, outcome });
    case 'unavailable':
      return failure('unavailable', `${mechanism}: user ${q}: backend ${backend.name} unavailable: ${outcome.reason}`, {
        user,
        outcome,
      });
  }
}
