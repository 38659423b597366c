/** CAPABILITY (RFC 5804 section 2.4): valid in every state. */
import { ok } from '../protocol/response.js';
import { ANY_STATE, defineCommand } from './command.js';

export const capability = defineCommand({
  name: 'CAPABILITY',
  states: ANY_STATE,
  args: [],
  async run(ctx) {
    return { data: ctx.session.capabilities(), response: ok() };
  },
});
