/**
 * NOOP [tag] (RFC 5804 section 2.13): OK, echoing the tag as (TAG "tag");
 * sieve-connect's STARTTLS resync waits for exactly that.
 */
import { ok } from '../protocol/response.js';
import { ANY_STATE, defineCommand } from './command.js';

export const noop = defineCommand({
  name: 'NOOP',
  states: ANY_STATE,
  args: [{ name: 'tag', kind: 'string', optional: true }],
  async run(_ctx, [tag]) {
    return { response: Buffer.isBuffer(tag) ? ok({ tag }) : ok() };
  },
});
