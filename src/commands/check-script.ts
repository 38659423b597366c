/**
 * Validation for PUTSCRIPT and CHECKSCRIPT, with the server's validator (which
 * moves large scripts off the event loop itself).
 */
import type { ScriptDiagnostic } from '../session/services.js';
import type { CommandContext } from './command.js';

export function checkScript(ctx: CommandContext, script: Buffer): Promise<readonly ScriptDiagnostic[]> {
  return ctx.services.checker.check(script);
}
