/**
 * Validation for PUTSCRIPT and CHECKSCRIPT, with the server's validator (which
 * moves large scripts off the event loop itself).
 */
import type { ScriptDiagnostic } from '../session/services.js';
import type { CommandContext } from './command.js';

/** Validates and reports the time taken and the verdict (metrics). */
export async function checkScript(
  ctx: CommandContext,
  script: Buffer,
  command: 'PUTSCRIPT' | 'CHECKSCRIPT' | 'SETACTIVE',
): Promise<readonly ScriptDiagnostic[]> {
  const started = performance.now();
  const diagnostics = await ctx.services.checker.check(script);
  const verdict = diagnostics.some((d) => d.severity === 'error')
    ? 'invalid'
    : diagnostics.length > 0
      ? 'warnings'
      : 'valid';
  ctx.services.events.scriptValidated(command, verdict, (performance.now() - started) / 1000);
  return diagnostics;
}
