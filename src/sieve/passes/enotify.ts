/**
 * `notify` (RFC 5435) as Exim 4.96 parses it (exim-sieve.md section 7): the
 * method must be a mailto URI Exim understands (mailto.ts), `:importance` is
 * exactly "1", "2" or "3", `:options` is refused because Exim reads its list as
 * the method, and `:from` must be an address (Exim would put anything in From).
 *
 * Must not know: how notifications are sent.
 */
import { headerMailboxProblem } from '../address.js';
import { parseMailto } from '../mailto.js';
import type { Bound } from './arguments.js';
import { stringOf } from './arguments.js';
import type { PassContext } from './context.js';

export function checkNotify(bound: Bound, ctx: PassContext): void {
  const { sink } = ctx;
  const options = bound.tags.get('options');
  if (options !== undefined) {
    sink.error(options.tag, 'notify :options is not supported: Exim 4.96 cannot parse it', 'dialect');
  }
  const imp = stringOf(bound.tags.get('importance')?.value);
  if (imp !== undefined && !['1', '2', '3'].includes(imp.value)) {
    sink.error(imp, `notify :importance must be "1", "2" or "3", not "${imp.value}"`, 'dialect');
  }
  const from = stringOf(bound.tags.get('from')?.value);
  if (from !== undefined) {
    const p = headerMailboxProblem(from.value);
    if (p !== undefined) sink.error(from, `notify :from must be a mail address: ${p}`, 'policy');
  }
  const method = stringOf(bound.positional[0]);
  if (method !== undefined) {
    const r = parseMailto(method.value);
    if (r.problem !== undefined) sink.error(method, `notify method "${method.value}": ${r.problem}`, 'dialect');
  }
}
