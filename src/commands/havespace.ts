/**
 * HAVESPACE name size (RFC 5804 section 2.5): would a PUTSCRIPT of this size
 * succeed? Replacing an existing script does not count as a new one.
 */
import { ok } from '../protocol/response.js';
import { decodeName } from './args.js';
import { AUTHENTICATED, defineCommand } from './command.js';
import { storeOf } from './store-of.js';

export const havespace = defineCommand({
  name: 'HAVESPACE',
  states: AUTHENTICATED,
  args: [
    { name: 'name', kind: 'string' },
    { name: 'size', kind: 'number' },
  ],
  async run(ctx, [name, size]) {
    await storeOf(ctx).checkSpace(decodeName(name), size);
    return { response: ok() };
  },
});
