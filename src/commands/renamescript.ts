/**
 * RENAMESCRIPT old new (RFC 5804 section 2.11): NONEXISTENT / ALREADYEXISTS; the
 * active script stays active under its new name.
 */
import { ok } from '../protocol/response.js';
import { decodeName } from './args.js';
import { AUTHENTICATED, defineCommand } from './command.js';
import { storeOf } from './store-of.js';

export const renamescript = defineCommand({
  name: 'RENAMESCRIPT',
  states: AUTHENTICATED,
  args: [
    { name: 'old name', kind: 'string' },
    { name: 'new name', kind: 'string' },
  ],
  async run(ctx, [oldName, newName]) {
    await storeOf(ctx).rename(decodeName(oldName), decodeName(newName));
    return { response: ok() };
  },
});
