/**
 * Validation for PUTSCRIPT and CHECKSCRIPT: in the user's worker process when the
 * session's store runs in one, otherwise with the server's validator (which moves
 * large scripts off the event loop itself).
 */
import type { ScriptDiagnostic, ValidatingStore } from '../session/services.js';
import type { CommandContext } from './command.js';

function canValidate(store: unknown): store is ValidatingStore {
  return typeof (store as Partial<ValidatingStore> | undefined)?.validate === 'function';
}

export function checkScript(ctx: CommandContext, script: Buffer): Promise<readonly ScriptDiagnostic[]> {
  const store = ctx.session.store;
  return canValidate(store) ? store.validate(script) : ctx.services.checker.check(script);
}
