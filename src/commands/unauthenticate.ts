/**
 * UNAUTHENTICATE (RFC 5804 section 2.14): back to the non-authenticated state,
 * keeping TLS; the user's store (and worker) is released.
 */
import { ok } from '../protocol/response.js';
import { AUTHENTICATED, defineCommand } from './command.js';

export const unauthenticate = defineCommand({
  name: 'UNAUTHENTICATE',
  states: AUTHENTICATED,
  args: [],
  async run(ctx) {
    await ctx.session.logout();
    return { response: ok() };
  },
});
