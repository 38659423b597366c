/**
 * The shared parts of the comparing tests (RFC 5228 section 2.7): comparator
 * names and their `require`, the numeric comparator only with `:is` (RFC 4790
 * section 9.1.1 offers equality and ordering only; Exim fails at run time with
 * "comparator does not offer specified matchtype"), `:matches` patterns that
 * end in a lone backslash, header-name syntax (Exim: "invalid header field"),
 * the `address` header whitelist, and envelope parts.
 *
 * Must not know: commands, or where the tests sit in the script.
 */
import type { SieveString } from '../ast.js';
import { ADDRESS_HEADERS, COMPARATORS } from '../signatures.js';
import type { Bound } from './arguments.js';
import { stringOf, stringsOf } from './arguments.js';
import type { PassContext } from './context.js';

/** Exim's header-name rule: non-empty, no control characters, space, ":" or DEL. */
export function headerNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'empty header name';
  if (/[\x00-\x20:\x7f]/.test(name)) return `invalid header name "${name}" (no spaces, ":" or control characters)`;
  return undefined;
}

function checkHeaderNames(names: SieveString[], ctx: PassContext, addressOnly: boolean): void {
  for (let i = 0; i < names.length; i++) {
    const s = names[i];
    const p = headerNameProblem(s.value);
    if (p !== undefined) {
      ctx.sink.error(s, p, 'dialect');
    } else if (addressOnly && !ADDRESS_HEADERS.has(s.value.toLowerCase())) {
      ctx.sink.error(
        s,
        `Exim's address test only reads From, To, Cc, Bcc, Sender, Resent-From and Resent-To, not "${s.value}"; use header for other fields`,
        'policy',
      );
    }
  }
}

function checkComparison(bound: Bound, ctx: PassContext, keysIndex: number): void {
  const cmpTag = bound.tags.get('comparator');
  const matchName = bound.groups.get('match')?.spec.name ?? 'is';
  const cmp = stringOf(cmpTag?.value);
  if (cmpTag !== undefined && cmp !== undefined) {
    const name = cmp.value.toLowerCase();
    if (!COMPARATORS.has(name)) {
      ctx.sink.error(
        cmp,
        `unknown comparator "${cmp.value}" (Exim has i;octet, i;ascii-casemap, en;ascii-casemap, i;ascii-numeric)`,
        'dialect',
      );
    } else if (name === 'i;ascii-numeric') {
      if (!ctx.required.has('comparator-i;ascii-numeric')) {
        ctx.sink.error(cmp, 'comparator "i;ascii-numeric" needs require "comparator-i;ascii-numeric"', 'semantic');
      }
      if (matchName !== 'is') {
        ctx.sink.error(cmp, `comparator "i;ascii-numeric" only works with :is, not :${matchName}`, 'semantic');
      }
    }
  }
  if (matchName === 'matches') {
    for (const key of stringsOf(bound.positional[keysIndex])) {
      const trailing = /\\+$/.exec(key.value)?.[0].length ?? 0;
      if (trailing % 2 === 1) {
        ctx.sink.error(key, ':matches pattern ends in a lone "\\" (Exim: syntactically invalid pattern)', 'semantic');
      }
    }
  }
}

/** Checks specific to one test, after its arguments were bound. */
export function checkTestArguments(name: string, bound: Bound, ctx: PassContext): void {
  switch (name) {
    case 'address':
      checkHeaderNames(stringsOf(bound.positional[0]), ctx, true);
      // Exim: in the address test :user is the whole local part and :detail
      // never matches (exim-sieve.md section 5 item 8), unlike RFC 5233.
      if (bound.groups.get('addresspart')?.spec.name === 'detail') {
        ctx.sink.warning(
          bound.groups.get('addresspart')!.tag,
          'Exim never matches :detail in the address test (only envelope "to" has a detail)',
          'dialect',
        );
      }
      checkComparison(bound, ctx, 1);
      break;
    case 'header':
      checkHeaderNames(stringsOf(bound.positional[0]), ctx, false);
      checkComparison(bound, ctx, 1);
      break;
    case 'exists':
      // Exim checks these only at run time ("header string expansion failed").
      checkHeaderNames(stringsOf(bound.positional[0]), ctx, false);
      break;
    case 'envelope':
      if (
        bound.groups.get('addresspart')?.spec.name === 'detail' &&
        stringsOf(bound.positional[0]).every((p) => p.value.toLowerCase() === 'from')
      ) {
        ctx.sink.warning(
          bound.groups.get('addresspart')!.tag,
          'Exim never matches :detail for envelope "from"',
          'dialect',
        );
      }
      for (const s of stringsOf(bound.positional[0])) {
        const part = s.value.toLowerCase();
        if (part !== 'from' && part !== 'to') {
          ctx.sink.error(s, `envelope part must be "from" or "to", not "${s.value}"`, 'dialect');
        }
      }
      checkComparison(bound, ctx, 1);
      break;
    case 'size':
      if (!bound.groups.has('size')) ctx.sink.error(bound.at, 'size needs :over or :under', 'semantic');
      break;
    case 'notify_method_capability':
      checkComparison(bound, ctx, 2);
      break;
    default:
      break;
  }
}
