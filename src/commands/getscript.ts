/**
 * GETSCRIPT name (RFC 5804 section 2.9): the stored octets, always as a `{n}`
 * literal (sieve-connect fails on a quoted body; Net_Sieve reads n+2 octets).
 */
import { encodeLiteral, ok } from '../protocol/response.js';
import { decodeName } from './args.js';
import { AUTHENTICATED, defineCommand } from './command.js';
import { storeOf } from './store-of.js';

export const getscript = defineCommand({
  name: 'GETSCRIPT',
  states: AUTHENTICATED,
  args: [{ name: 'name', kind: 'string' }],
  async run(ctx, [name]) {
    const content = await storeOf(ctx).get(decodeName(name));
    return { data: Buffer.concat([encodeLiteral(content), Buffer.from('\r\n')]), response: ok() };
  },
});
