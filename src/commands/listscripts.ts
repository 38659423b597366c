/**
 * LISTSCRIPTS (RFC 5804 section 2.7): one quoted name per line, ` ACTIVE` after at
 * most one. Names are always quoted, never literals: Net_Sieve and sieve-connect
 * silently drop literal names.
 */
import { encodeQuoted, ok } from '../protocol/response.js';
import { AUTHENTICATED, defineCommand } from './command.js';
import { storeOf } from './store-of.js';

export const listscripts = defineCommand({
  name: 'LISTSCRIPTS',
  states: AUTHENTICATED,
  args: [],
  async run(ctx) {
    const scripts = await storeOf(ctx).list();
    const lines = scripts.map((s) =>
      Buffer.concat([encodeQuoted(s.name), Buffer.from(s.active ? ' ACTIVE\r\n' : '\r\n', 'latin1')]),
    );
    return { data: Buffer.concat(lines), response: ok() };
  },
});
