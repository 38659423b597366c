/**
 * STARTTLS (RFC 5804 section 2.2): only before login, only once, only when TLS
 * really works. The connection does the handshake and pushes the new capabilities.
 */
import { no, ok } from '../protocol/response.js';
import { NOT_AUTHENTICATED, defineCommand } from './command.js';

export const starttls = defineCommand({
  name: 'STARTTLS',
  states: NOT_AUTHENTICATED,
  args: [],
  async run(ctx) {
    if (ctx.session.secure) return { response: no('TLS is already active') };
    if (!ctx.services.tls) return { response: no('TLS is not available on this server') };
    return { response: ok(), then: 'starttls' };
  },
});
