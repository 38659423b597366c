/**
 * `redirect` (RFC 5228 section 4.2): the target must be one RFC 5321 mailbox.
 * Exim only looks for an "@" (exim-sieve.md section 5 item 9), so "a@b, c@d"
 * or "x@" would pass there and fail at delivery.
 *
 * Must not know: where the command sits (flow.ts counts redirects).
 */
import { mailboxProblem } from '../address.js';
import type { Bound } from './arguments.js';
import { stringOf } from './arguments.js';
import type { PassContext } from './context.js';

export function checkRedirect(bound: Bound, ctx: PassContext): void {
  const s = stringOf(bound.positional[0]);
  if (s === undefined) return;
  const p = mailboxProblem(s.value);
  if (p !== undefined) ctx.sink.error(s, `redirect needs one mail address ("user@example.org"): ${p}`, 'policy');
}
