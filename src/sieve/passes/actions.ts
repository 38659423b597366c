/**
 * Checks on the actions' own arguments once they are bound:
 * - `redirect` needs an RFC 5321 mailbox (Exim only wants an "@");
 * - `fileinto` folder policy: never a pipe "|", autoreply ">", absolute path or
 *   ".." segment, which Exim hands to its pipe, reply and file transports
 *   (exim-sieve.md section 12); "strict" also refuses hidden names, "~" and
 *   directory names ending in "/";
 * - `vacation` (RFC 5230): `:days` clamped by Exim to 1-31 (warning), `:from`
 *   an address, `:mime` reasons 7-bit, `:handle` refused because Exim 4.96
 *   writes it over `:from`;
 * - `notify` (RFC 5435): mailto URIs Exim parses, `:importance` "1".."3",
 *   `:options` refused (Exim cannot parse it), `:from` an address.
 *
 * Must not know: where in the script the command sits (the flow pass does).
 */
import { headerMailboxProblem, mailboxProblem } from '../address.js';
import { parseMailto } from '../mailto.js';
import type { FileintoPolicy } from '../profile.js';
import type { Bound } from './arguments.js';
import { numberOf, stringOf, stringsOf } from './arguments.js';
import type { PassContext } from './context.js';

/** Why a folder name is refused under the policy, or undefined. */
export function folderProblem(name: string, policy: FileintoPolicy): string | undefined {
  if (name.length === 0) return 'empty folder name';
  if (name.startsWith('|')) return 'a folder name starting with "|" would run a command';
  if (name.startsWith('>')) return 'a folder name starting with ">" is an autoreply, not a folder';
  if (name.startsWith('/')) return 'absolute paths are not allowed as folder names';
  if (/[\x00-\x1f\x7f]/.test(name)) return 'control characters are not allowed in folder names';
  const segments = name.split('/');
  if (segments.includes('..')) return '".." is not allowed in folder names';
  if (policy === 'strict') {
    if (name.endsWith('/')) return 'folder names must not end with "/"';
    if (segments.some((s) => s === '' || s === '.')) return 'empty or "." path segments are not allowed';
    if (segments.some((s) => s.startsWith('.'))) return 'folder names (and their segments) must not start with "."';
    if (name.startsWith('~')) return 'folder names must not start with "~"';
  }
  return undefined;
}

export function checkActionArguments(name: string, bound: Bound, ctx: PassContext): void {
  const { sink } = ctx;
  switch (name) {
    case 'redirect': {
      const s = stringOf(bound.positional[0]);
      if (s === undefined) break;
      const p = mailboxProblem(s.value);
      if (p !== undefined) sink.error(s.loc, `redirect needs one mail address ("user@example.org"): ${p}`, 'policy');
      break;
    }
    case 'fileinto': {
      const s = stringOf(bound.positional[0]);
      if (s === undefined) break;
      const p = folderProblem(s.value, ctx.profile.fileintoPolicy);
      if (p !== undefined) sink.error(s.loc, `fileinto "${s.value}": ${p}`, 'policy');
      break;
    }
    case 'vacation': {
      const handle = bound.tags.get('handle');
      if (handle !== undefined) {
        sink.error(handle.tag.loc, 'vacation :handle is not supported: Exim 4.96 uses its value as the :from address', 'policy');
      }
      const days = numberOf(bound.tags.get('days')?.value);
      if (days !== undefined && /^[KMG]?$/.test(days.unit)) {
        const v = BigInt(days.digits) * ({ '': 1n, K: 1024n, M: 1048576n, G: 1073741824n } as Record<string, bigint>)[days.unit]!;
        if (v < 1n || v > 31n) {
          sink.warning(days.loc, `vacation :days ${days.digits}${days.unit} is outside 1-31; Exim will use ${v < 1n ? 1 : 31}`, 'dialect');
        }
      }
      const from = stringOf(bound.tags.get('from')?.value);
      if (from !== undefined) {
        const p = headerMailboxProblem(from.value);
        if (p !== undefined) sink.error(from.loc, `vacation :from must be a mail address: ${p}`, 'dialect');
      }
      for (const a of stringsOf(bound.tags.get('addresses')?.value)) {
        const p = mailboxProblem(a.value);
        if (p !== undefined) sink.warning(a.loc, `vacation :addresses entry "${a.value}" is not a mail address: ${p}`, 'semantic');
      }
      const reason = stringOf(bound.positional[0]);
      if (bound.tags.has('mime') && reason !== undefined && /[^\x00-\x7f]/.test(reason.value)) {
        sink.error(reason.loc, 'a :mime vacation reason must be 7-bit ASCII (encode non-ASCII text in MIME)', 'dialect');
      }
      break;
    }
    case 'notify': {
      const options = bound.tags.get('options');
      if (options !== undefined) {
        sink.error(options.tag.loc, 'notify :options is not supported: Exim 4.96 cannot parse it', 'dialect');
      }
      const imp = stringOf(bound.tags.get('importance')?.value);
      if (imp !== undefined && !['1', '2', '3'].includes(imp.value)) {
        sink.error(imp.loc, `notify :importance must be "1", "2" or "3", not "${imp.value}"`, 'dialect');
      }
      const from = stringOf(bound.tags.get('from')?.value);
      if (from !== undefined) {
        const p = headerMailboxProblem(from.value);
        if (p !== undefined) sink.error(from.loc, `notify :from must be a mail address: ${p}`, 'policy');
      }
      const method = stringOf(bound.positional[0]);
      if (method !== undefined) {
        const r = parseMailto(method.value);
        if (r.problem !== undefined) sink.error(method.loc, `notify method "${method.value}": ${r.problem}`, 'dialect');
      }
      break;
    }
    default:
      break;
  }
}
