/**
 * SETACTIVE name (RFC 5804 section 2.8): writes the filter file Exim reads from the
 * named script; "" deactivates (OK even when nothing was active).
 *
 * The script is validated again, for the dialect as it is now: a script stored
 * before a profile change, or brought in by `tsieved migrate`, may be one Exim
 * would reject, and activating it would make Exim fail on every message. Such a
 * script is refused with the diagnostics PUTSCRIPT would give. The validation is
 * the store's approval, made on the bytes the store read under its lock, so what
 * was validated is what is activated (and the script is read once). A preserved
 * non-Sieve forward (an Exim filter or address list kept when tsieved took over) is
 * written back byte for byte and is not Sieve to validate: the store does not ask.
 */
import { ok } from '../protocol/response.js';
import { decodeName } from './args.js';
import { AUTHENTICATED, defineCommand, type CommandResult } from './command.js';
import { checkScript } from './validate-script.js';
import { storeOf } from './store-of.js';
import { diagnosticsLogFields, diagnosticsToResponse } from './to-response.js';

export const setactive = defineCommand({
  name: 'SETACTIVE',
  states: AUTHENTICATED,
  args: [{ name: 'name', kind: 'string' }],
  async run(ctx, [nameArg]) {
    const name = decodeName(nameArg);
    const { checker, config } = ctx.services;
    let refused: CommandResult | undefined;
    await storeOf(ctx).setActive(name, async (content) => {
      const diagnostics = await checkScript(ctx, content, 'SETACTIVE');
      const verdict = diagnosticsToResponse(diagnostics, checker, config.sieve.max_reported_errors, name);
      if (verdict?.status !== 'NO') return true;
      const log = diagnosticsLogFields(diagnostics, checker);
      refused = { response: verdict, ...(log === undefined ? {} : { log }) };
      return false;
    });
    return refused ?? { response: ok() };
  },
});
