/** CAPABILITY (RFC 5804 section 2.4): valid in every state. */
import { ok } from '../protocol/response.js';
import { ANY_STATE, type Command } from './command.js';

export const capability: Command = {
  name: 'CAPABILITY',
  states: ANY_STATE,
  args: [],
  async run(ctx) {
    return { data: ctx.session.capabilities(), response: ok() };
  },
};
