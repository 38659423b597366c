/** DELETESCRIPT name (RFC 5804 section 2.10): the active script is refused with (ACTIVE). */
import { ok } from '../protocol/response.js';
import { decodeName } from './args.js';
import { AUTHENTICATED, defineCommand } from './command.js';
import { storeOf } from './store-of.js';

export const deletescript = defineCommand({
  name: 'DELETESCRIPT',
  states: AUTHENTICATED,
  args: [{ name: 'name', kind: 'string' }],
  async run(ctx, [name]) {
    await storeOf(ctx).delete(decodeName(name));
    return { response: ok() };
  },
});
