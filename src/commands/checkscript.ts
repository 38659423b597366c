/**
 * CHECKSCRIPT content (RFC 5804 section 2.12): validates like PUTSCRIPT but stores
 * nothing and MUST NOT check quota. Thunderbird calls it while the user types.
 */
import { ok } from '../protocol/response.js';
import { AUTHENTICATED, defineCommand } from './command.js';
import { checkScript } from './validate-script.js';
import { diagnosticsLogFields, diagnosticsToResponse } from './to-response.js';

export const checkscript = defineCommand({
  name: 'CHECKSCRIPT',
  states: AUTHENTICATED,
  args: [{ name: 'script', kind: 'string' }],
  async run(ctx, [script]) {
    const { checker, config } = ctx.services;
    const diagnostics = await checkScript(ctx, script, 'CHECKSCRIPT');
    const response = diagnosticsToResponse(diagnostics, checker, config.sieve.max_reported_errors) ?? ok();
    const log = diagnosticsLogFields(diagnostics, checker);
    return log === undefined ? { response } : { response, log };
  },
});
