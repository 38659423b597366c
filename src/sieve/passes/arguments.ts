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
  /** By lower-case tag name. */
  tags: TagLookup;
  positional: Argument[];
  /** Chosen tag per group, e.g. group "match" -> "contains". */
  groups: TagLookup;
}

/** The part of a Map the checks use. */
export interface TagLookup {
  get(key: string): BoundTag | undefined;
  has(key: string): boolean;
}

/**
 * The tags of one command or test in the order written, found by name or by
 * group; the first of a name or group wins. A command has a handful of tags at
 * most, so a list searched in order is enough: two Maps per command were a
 * fifth of what validating a 1 MiB script allocated.
 */
class Tags implements TagLookup {
  constructor(
    private readonly entries: readonly BoundTag[],
    private readonly by: 'name' | 'group',
  ) {}
  get(key: string): BoundTag | undefined {
    const e = this.entries;
    for (let i = 0; i < e.length; i++) if (e[i].spec[this.by] === key) return e[i];
    return undefined;
  }
  has(key: string): boolean {
    return this.get(key) !== undefined;
  }
}

const KIND_WORD: Record<ValueKind, string> = { string: 'a string', stringlist: 'a string list', number: 'a number' };

/** Shared by every Bound without tags (most commands); nothing adds to it. */
const NO_TAGS = new Tags([], 'name');

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

function label(kind: 'command' | 'test', name: string): string {
  return kind === 'test' ? `test "${name}"` : name;
}

function findTag(tags: readonly TagSpec[], name: string): TagSpec | undefined {
  for (let i = 0; i < tags.length; i++) if (tags[i].name === name) return tags[i];
  return undefined;
}

/**
 * `name` is the command's or test's name as written; messages call a command
 * by its name ("fileinto") and a test `test "header"`, words put together only
 * when a message needs them.
 */
export function bindArguments(
  kind: 'command' | 'test',
  name: string,
  at: Span,
  args: Argument[],
  sig: Signature,
  ctx: PassContext,
): Bound | undefined {
  const { sink } = ctx;
  let entries: BoundTag[] | undefined;
  let tags: Tags = NO_TAGS;
  let groups: Tags = NO_TAGS;
  let ok = true;
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i];
    if (arg.type !== 'tag') break;
    const tagName = arg.name.toLowerCase();
    const spec = findTag(sig.tags, tagName);
    if (spec === undefined) {
      sink.error(arg, `unknown tag ":${arg.name}" for ${label(kind, name)}`);
      ok = false;
      continue;
    }
    if (spec.requires !== undefined && !ctx.required.has(spec.requires)) {
      sink.error(arg, `":${arg.name}" needs require "${spec.requires}"`);
      ok = false;
    }
    if (tags.has(tagName)) {
      sink.error(arg, `tag ":${arg.name}" given twice`);
      ok = false;
    } else if (spec.group !== undefined && groups.has(spec.group)) {
      sink.error(
        arg,
        `":${arg.name}" conflicts with ":${groups.get(spec.group)!.tag.name}" (${groupWord(spec.group)} already specified)`,
      );
      ok = false;
    }
    const entry: BoundTag = { spec, tag: arg };
    if (spec.value !== undefined) {
      const next = args[i + 1];
      if (next === undefined || !fits(next, spec.value)) {
        sink.error(next ?? arg, `":${arg.name}" must be followed by ${KIND_WORD[spec.value]}`);
        return undefined;
      }
      entry.value = next;
      i++;
      if (next.type === 'number' && checkNumber(next, sink) === undefined) ok = false;
    }
    if (entries === undefined) {
      entries = [entry];
      tags = new Tags(entries, 'name');
      groups = new Tags(entries, 'group');
    } else entries.push(entry);
  }
  const first = i;
  for (let k = first; k < args.length; k++) {
    const stray = args[k];
    if (stray.type === 'tag') {
      sink.error(stray, `tag ":${stray.name}" must come before the other arguments of ${label(kind, name)}`);
      return undefined;
    }
  }
  const count = args.length - first;
  const wanted = sig.positional.length;
  if (count !== wanted) {
    const labels = sig.positional.map((p) => p.label).join(', ');
    const where = args[first + wanted] ?? (count > 0 ? args[args.length - 1] : at);
    sink.error(
      where,
      wanted === 0
        ? `${label(kind, name)} takes no arguments besides tags`
        : `${label(kind, name)} expects ${wanted} argument${wanted > 1 ? 's' : ''} (${labels}), got ${count}`,
    );
    return undefined;
  }
  for (let k = 0; k < count; k++) {
    const arg = args[first + k];
    const spec = sig.positional[k];
    if (!fits(arg, spec.kind)) {
      sink.error(arg, `${label(kind, name)}: ${spec.label} must be ${KIND_WORD[spec.kind]}, not ${describe(arg)}`);
      ok = false;
    } else if (arg.type === 'number' && checkNumber(arg, sink) === undefined) ok = false;
  }
  if (!ok) return undefined;
  return {
    at,
    tags,
    positional: first === 0 ? args : args.slice(first),
    groups,
  };
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
