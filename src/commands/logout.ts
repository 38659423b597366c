/**
 * LOGOUT (RFC 5804 section 2.3, erratum 7825): answered with OK (never BYE: SnappyMail
 * and others fail on it), then the connection closes and later input is ignored.
 */
import { ok } from '../protocol/response.js';
import { ANY_STATE, defineCommand } from './command.js';

export const logout = defineCommand({
  name: 'LOGOUT',
  states: ANY_STATE,
  args: [],
  async run() {
    return { response: ok(), then: 'close' };
  },
});
