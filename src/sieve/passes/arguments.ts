/**
 * Matches the arguments of one command or test against its signature: tags
 * first, in any order, each at most once and one per group (RFC 5228 section
 * 2.6.2, and Exim's "... already specified"), then the positional arguments
 * with the right kinds and count. Returns the bound values for the checks that
 * follow.
 *
 * Must not know: what the individual commands mean.
 */
import type { Argument, NumberArg, SieveString, Span, StringList, TagArg } from '../ast.js';
import type { Signature, TagSpec, ValueKind } from '../signatures.js';
import { checkNumber } from './numbers.js';
import type { PassContext } from './context.js';

export interface BoundTag {
  spec: TagSpec;
  tag: TagArg;
  value?: Argument;
}

export interface Bound {
  /** Where the command or test name stands, for messages about it as a whole. */
  at: Span;
  tags: Map<string, BoundTag>;
  positional: Argument[];
  /** Chosen tag per group, e.g. group "match" -> "contains". */
  groups: Map<string, BoundTag>;
}

const KIND_WORD: Record<ValueKind, string> = { string: 'a string', stringlist: 'a string list', number: 'a number' };

function describe(arg: Argument): string {
  if (arg.type === 'tag') return `tag ":${arg.name}"`;
  if (arg.type === 'number') return 'a number';
  return arg.bracketed ? 'a string list' : 'a string';
}

function fits(arg: Argument, kind: ValueKind): boolean {
  if (kind === 'number') return arg.type === 'number';
  if (arg.type !== 'stringlist') return false;
  // Exim takes a single string only where one is expected (exim-sieve.md section 3).
  return kind === 'stringlist' || !arg.bracketed;
}

export function bindArguments(
  what: string,
  at: Span,
  args: Argument[],
  sig: Signature,
  ctx: PassContext,
): Bound | undefined {
  const { sink } = ctx;
  const bound: Bound = { at, tags: new Map(), positional: [], groups: new Map() };
  let ok = true;
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i];
    if (arg.type !== 'tag') break;
    const name = arg.name.toLowerCase();
    const spec = sig.tags.find((t) => t.name === name);
    if (spec === undefined) {
      sink.error(arg.loc, `unknown tag ":${arg.name}" for ${what}`);
      ok = false;
      continue;
    }
    if (spec.requires !== undefined && !ctx.required.has(spec.requires)) {
      sink.error(arg.loc, `":${arg.name}" needs require "${spec.requires}"`);
      ok = false;
    }
    if (bound.tags.has(name)) {
      sink.error(arg.loc, `tag ":${arg.name}" given twice`);
      ok = false;
    } else if (spec.group !== undefined && bound.groups.has(spec.group)) {
      sink.error(
        arg.loc,
        `":${arg.name}" conflicts with ":${bound.groups.get(spec.group)!.tag.name}" (${groupWord(spec.group)} already specified)`,
      );
      ok = false;
    }
    const entry: BoundTag = { spec, tag: arg };
    if (spec.value !== undefined) {
      const next = args[i + 1];
      if (next === undefined || !fits(next, spec.value)) {
        sink.error(next?.loc ?? arg.loc, `":${arg.name}" must be followed by ${KIND_WORD[spec.value]}`);
        return undefined;
      }
      entry.value = next;
      i++;
      if (next.type === 'number' && checkNumber(next, sink) === undefined) ok = false;
    }
    if (!bound.tags.has(name)) bound.tags.set(name, entry);
    if (spec.group !== undefined && !bound.groups.has(spec.group)) bound.groups.set(spec.group, entry);
  }
  const rest = args.slice(i);
  const stray = rest.find((a) => a.type === 'tag');
  if (stray !== undefined) {
    sink.error(stray.loc, `tag ":${stray.name}" must come before the other arguments of ${what}`);
    return undefined;
  }
  if (rest.length !== sig.positional.length) {
    const labels = sig.positional.map((p) => p.label).join(', ');
    const where = rest[sig.positional.length]?.loc ?? rest[rest.length - 1]?.loc ?? at;
    sink.error(
      where,
      sig.positional.length === 0
        ? `${what} takes no arguments besides tags`
        : `${what} expects ${sig.positional.length} argument${sig.positional.length > 1 ? 's' : ''} (${labels}), got ${rest.length}`,
    );
    return undefined;
  }
  rest.forEach((arg, k) => {
    const spec = sig.positional[k];
    if (!fits(arg, spec.kind)) {
      sink.error(arg.loc, `${what}: ${spec.label} must be ${KIND_WORD[spec.kind]}, not ${describe(arg)}`);
      ok = false;
    } else if (arg.type === 'number' && checkNumber(arg, sink) === undefined) ok = false;
  });
  bound.positional = rest;
  return ok ? bound : undefined;
}

function groupWord(group: string): string {
  return group === 'match'
    ? 'match type'
    : group === 'addresspart'
      ? 'address part'
      : group === 'size'
        ? ':over/:under'
        : group;
}

/** The strings of a bound string or string-list argument. */
export function stringsOf(arg: Argument | undefined): SieveString[] {
  return arg !== undefined && arg.type === 'stringlist' ? arg.items : [];
}

export function stringOf(arg: Argument | undefined): SieveString | undefined {
  return arg !== undefined && arg.type === 'stringlist' ? arg.items[0] : undefined;
}

export function listOf(arg: Argument | undefined): StringList | undefined {
  return arg !== undefined && arg.type === 'stringlist' ? arg : undefined;
}

export function numberOf(arg: Argument | undefined): NumberArg | undefined {
  return arg !== undefined && arg.type === 'number' ? arg : undefined;
}
