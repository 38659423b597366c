/**
 * `vacation` (RFC 5230) as Exim 4.96 runs it (exim-sieve.md section 6):
 * `:days` is clamped to 1-31 (a warning says so), `:from` must be an address
 * (Exim: "malformed address"), a `:mime` reason must be 7-bit ("MIME reason
 * string contains 8bit text"), and `:handle` is refused because Exim stores it
 * in the `:from` slot. One vacation per execution path is vacation-paths.ts's job.
 *
 * Must not know: the reply transport or the "personal" check.
 */
import { headerMailboxProblem, mailboxProblem } from '../address.js';
import type { Bound } from './arguments.js';
import { numberOf, stringOf, stringsOf } from './arguments.js';
import type { PassContext } from './context.js';

const UNIT: Record<string, bigint> = { '': 1n, K: 1024n, M: 1024n ** 2n, G: 1024n ** 3n };

export function checkVacation(bound: Bound, ctx: PassContext): void {
  const { sink } = ctx;
  const handle = bound.tags.get('handle');
  if (handle !== undefined) {
    sink.error(
      handle.tag,
      'vacation :handle is not supported: Exim 4.96 uses its value as the :from address',
      'policy',
    );
  }
  const days = numberOf(bound.tags.get('days')?.value);
  const unit = days === undefined ? undefined : UNIT[days.unit];
  if (days !== undefined && unit !== undefined) {
    const v = BigInt(days.digits) * unit;
    if (v < 1n || v > 31n) {
      sink.warning(
        days,
        `vacation :days ${days.digits}${days.unit} is outside 1-31; Exim will use ${v < 1n ? 1 : 31}`,
        'dialect',
      );
    }
  }
  const from = stringOf(bound.tags.get('from')?.value);
  if (from !== undefined) {
    const p = headerMailboxProblem(from.value);
    if (p !== undefined) sink.error(from, `vacation :from must be a mail address: ${p}`, 'dialect');
  }
  for (const a of stringsOf(bound.tags.get('addresses')?.value)) {
    const p = mailboxProblem(a.value);
    if (p !== undefined)
      sink.warning(a, `vacation :addresses entry "${a.value}" is not a mail address: ${p}`, 'semantic');
  }
  const reason = stringOf(bound.positional[0]);
  if (bound.tags.has('mime') && reason !== undefined && /[^\x00-\x7f]/.test(reason.value)) {
    sink.error(reason, 'a :mime vacation reason must be 7-bit ASCII (encode non-ASCII text in MIME)', 'dialect');
  }
}
