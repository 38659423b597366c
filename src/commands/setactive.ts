/**
 * SETACTIVE name (RFC 5804 section 2.8): writes the filter file Exim reads from the
 * named script; "" deactivates (OK even when nothing was active).
 */
import { ok } from '../protocol/response.js';
import { decodeName } from './args.js';
import { AUTHENTICATED, defineCommand } from './command.js';
import { storeOf } from './store-of.js';

export const setactive = defineCommand({
  name: 'SETACTIVE',
  states: AUTHENTICATED,
  args: [{ name: 'name', kind: 'string' }],
  async run(ctx, [name]) {
    await storeOf(ctx).setActive(decodeName(name));
    return { response: ok() };
  },
});
