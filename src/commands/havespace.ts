/**
 * HAVESPACE name size (RFC 5804 section 2.5): would a PUTSCRIPT of this size
 * succeed? Replacing an existing script does not count as a new one.
 */
import { ok } from '../protocol/response.js';
import { decodeName, num, str } from './args.js';
import { AUTHENTICATED, type Command } from './command.js';
import { storeOf } from './store-of.js';

export const havespace: Command = {
  name: 'HAVESPACE',
  states: AUTHENTICATED,
  args: [
    { name: 'name', kind: 'string' },
    { name: 'size', kind: 'number' },
  ],
  async run(ctx, [name, size]) {
    await storeOf(ctx).checkSpace(decodeName(str(name)), num(size));
    return { response: ok() };
  },
};
