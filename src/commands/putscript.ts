/**
 * PUTSCRIPT name content (RFC 5804 section 2.6): the script is validated for the
 * dialect that will run it and stored only if valid (MUST); a failed PUTSCRIPT
 * never changes the stored script. Zero-length scripts are refused (SHOULD).
 *
 * Validation runs as the store's approval, under its lock and after its quota
 * checks: a script that cannot be stored need not be compiled, and the scripts
 * directory is listed once for the quotas, not once before and once under the lock.
 */
import { no, ok } from '../protocol/response.js';
import { decodeName } from './args.js';
import { AUTHENTICATED, defineCommand, type CommandResult } from './command.js';
import { storeOf } from './store-of.js';
import { checkScript } from './validate-script.js';
import { diagnosticsLogFields, diagnosticsToResponse } from './to-response.js';

export const putscript = defineCommand({
  name: 'PUTSCRIPT',
  states: AUTHENTICATED,
  args: [
    { name: 'name', kind: 'string' },
    { name: 'script', kind: 'string' },
  ],
  async run(ctx, [nameArg, scriptArg]) {
    const name = decodeName(nameArg);
    const script = scriptArg;
    const store = storeOf(ctx);
    if (script.length === 0) return { response: no('Empty scripts are not stored (RFC 5804 section 2.6)') };
    const { checker, config } = ctx.services;
    let result: CommandResult = { response: ok() };
    await store.put(name, script, async (content) => {
      const diagnostics = await checkScript(ctx, content, 'PUTSCRIPT');
      // Pigeonhole names the script in each diagnostic; Roundcube relies on it.
      const verdict = diagnosticsToResponse(diagnostics, checker, config.sieve.max_reported_errors, name);
      const log = diagnosticsLogFields(diagnostics, checker);
      result = { response: verdict ?? ok(), ...(log === undefined ? {} : { log }) };
      return verdict?.status !== 'NO';
    });
    return result;
  },
});
