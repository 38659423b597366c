/**
 * The per-user decisions of a migration, over a StoreView (store-view.ts), so a dry
 * run and a real run decide alike:
 * - each old script, by name, byte-exact: absent in the store -> imported; same
 *   bytes -> unchanged; different bytes -> conflict (tsieved's copy is kept, the
 *   user may have edited it since), decided by the store under its lock;
 * - what becomes active is whatever carries the routing Exim does today, so the
 *   switch changes nothing: the old script the file Exim reads links to
 *   (pysieved's `.forward`); else that file itself, kept as a preserved forward
 *   (verbatim unless Sieve) when tsieved's filter is another file; with no such
 *   file, Dovecot's active script (Dovecot ran it). Nothing is activated once an
 *   earlier run settled activation (the `migrated` metadata), nor over a script the
 *   user made active in tsieved (setActiveIfNone).
 *
 * Must not know: argv, output formatting, how stores are opened, Exim.
 */
import { hasErrors, validateScript, type Diagnostic, type SieveProfile } from '../sieve/index.js';
import { isSieveFilter } from '../storage/filter-file.js';
import { validateScriptName } from '../storage/script-names.js';
import { StorageError } from '../storage/types.js';
import type { FilterNow } from './filter-now.js';
import { describeMarker, formatMarker, type Settled } from './marker.js';
import type { OldScript, OldScripts, SourceKind } from './sources.js';
import type { StoreView } from './store-view.js';

export type ScriptOutcome = 'imported' | 'unchanged' | 'conflict' | 'failed';

export interface ScriptResult {
  readonly name: string;
  readonly file: string;
  readonly outcome: ScriptOutcome;
  /** Why a script failed or conflicted. */
  readonly detail?: string;
  /** Errors (and warnings) of Exim's dialect; an error means Exim would reject or mis-run it. */
  readonly diagnostics: readonly Diagnostic[];
  readonly rejected: boolean;
}

export type ActiveOutcome =
  | { readonly kind: 'none' }
  | { readonly kind: 'activated'; readonly name: string }
  | { readonly kind: 'unchanged'; readonly name: string }
  | { readonly kind: 'kept'; readonly name: string; readonly wanted: string }
  /** Not activated: an earlier run settled activation (`earlier` says how), and tsieved has none active now. */
  | { readonly kind: 'settled'; readonly name: string; readonly earlier: string }
  | { readonly kind: 'failed'; readonly name: string; readonly detail: string };

export interface Decided {
  readonly scripts: readonly ScriptResult[];
  readonly active: ActiveOutcome;
  readonly notes: readonly string[];
  /** Activation was settled and could not be recorded. */
  readonly problem?: string;
}

export interface DecideInput {
  readonly kind: SourceKind;
  readonly old: OldScripts;
  /** The file Exim's router reads today. */
  readonly today: FilterNow;
  /** tsieved's filter_path is that same file. */
  readonly samePath: boolean;
  readonly profile: SieveProfile;
}

export function describe(err: unknown): string {
  if (err instanceof StorageError) return `${err.kind}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

type Carry =
  | { readonly kind: 'script'; readonly script: OldScript }
  | { readonly kind: 'forward'; readonly bytes: Buffer }
  | undefined;

/** What carries today's routing (see the header), and a note when the old active script is not it. */
function carryOf(input: DecideInput, notes: string[]): Carry {
  const { old, today, kind } = input;
  const active = old.active;
  let carry: Carry;
  if (today.kind === 'file') {
    const linked =
      active !== undefined &&
      (today.linkTo === active.file || (kind === 'pysieved' && active.content.equals(today.bytes)));
    if (linked) carry = { kind: 'script', script: active };
    else if (!input.samePath) carry = { kind: 'forward', bytes: today.bytes };
  } else if (today.kind === 'absent' && kind === 'dovecot' && active !== undefined) {
    carry = { kind: 'script', script: active };
  }
  if (active !== undefined && carry?.kind !== 'script' && today.kind !== 'unreadable') {
    notes.push(
      today.kind === 'file'
        ? `${JSON.stringify(active.name)} is imported but not activated: Exim reads ${today.path} today, which is not that script, so it did not decide where mail went`
        : `${JSON.stringify(active.name)} is imported but not activated: Exim does not read it today`,
    );
  }
  return carry;
}

export async function decide(input: DecideInput, view: StoreView): Promise<Decided> {
  const notes: string[] = [];
  const carry = carryOf(input, notes);
  // The carried script goes first: opening the store may have preserved the filter
  // file as "old-forward", a copy dropped on activation, and an old script that is
  // itself named "old-forward" must be compared with what stays in the store.
  const { old } = input;
  const order = old.scripts.map((_, i) => i);
  const first = carry?.kind === 'script' ? old.scripts.indexOf(carry.script) : -1;
  if (first > 0) order.unshift(...order.splice(first, 1));
  const results = new Map<number, ScriptResult>();
  let active: ActiveOutcome = { kind: 'none' };
  let activated = false;
  for (const i of order) {
    const script = old.scripts[i];
    const result = await importOne(script, view, input.profile);
    results.set(i, result);
    if (carry?.kind === 'script' && script === carry.script) {
      active =
        result.outcome === 'imported' || result.outcome === 'unchanged'
          ? await activate(result.name, view, notes)
          : { kind: 'failed', name: result.name, detail: 'the active script was not imported' };
      activated = true;
    }
  }
  if (carry?.kind === 'forward') {
    try {
      const name = await view.preserveForward(carry.bytes, isSieveFilter(carry.bytes));
      notes.push(
        `${input.today.path} is kept as the script ${JSON.stringify(name)}${isSieveFilter(carry.bytes) ? '' : ' (not Sieve: written to the new filter file byte for byte)'}`,
      );
      active = await activate(name, view, notes);
    } catch (err) {
      active = { kind: 'failed', name: 'old-forward', detail: describe(err) };
    }
    activated = true;
  }
  if (!activated) {
    try {
      const current = await view.activeName();
      if (current !== undefined) active = { kind: 'unchanged', name: current };
    } catch (err) {
      active = { kind: 'failed', name: '', detail: describe(err) };
    }
  }
  const problem = await record(active, view);
  const scripts = old.scripts.map((_, i) => results.get(i)!);
  return { scripts, active, notes, ...(problem !== undefined ? { problem } : {}) };
}

async function importOne(s: OldScript, view: StoreView, profile: SieveProfile): Promise<ScriptResult> {
  const diagnostics = validateScript(s.content, profile);
  const rejected = hasErrors(diagnostics);
  const check = validateScriptName(s.name);
  const name = check.ok ? check.name : s.name;
  const result = (outcome: ScriptOutcome, detail?: string): ScriptResult => ({
    name,
    file: s.file,
    outcome,
    diagnostics,
    rejected,
    ...(detail !== undefined ? { detail } : {}),
  });
  if (!check.ok) return result('failed', `name not accepted: ${check.reason}`);
  try {
    const existing = await view.get(name);
    if (existing?.equals(s.content)) return result('unchanged');
    if (existing) return result('conflict', "tsieved already has a different script of this name; kept tsieved's");
    if (await view.putIfAbsent(name, s.content)) return result('imported');
    // Saved in the user's own session since the look above: theirs stays.
    const now = await view.get(name);
    if (now?.equals(s.content)) return result('unchanged');
    return result('conflict', "tsieved got a different script of this name while migrating; kept tsieved's");
  } catch (err) {
    return result('failed', describe(err));
  }
}

/** Activates `name` unless an earlier run settled activation or the user has another active. */
async function activate(name: string, view: StoreView, notes: string[]): Promise<ActiveOutcome> {
  try {
    const earlier = await view.readMeta('migrated');
    if (earlier !== undefined) {
      const current = await view.activeName();
      if (current === name) return { kind: 'unchanged', name };
      return current
        ? { kind: 'kept', name: current, wanted: name }
        : { kind: 'settled', name, earlier: describeMarker(earlier) };
    }
    const r = await view.setActiveIfNone(name);
    if (r.dropped !== undefined)
      notes.push(
        `${JSON.stringify(r.dropped)} (the store's copy of the old filter file, identical to ${JSON.stringify(name)}) is removed`,
      );
    if (r.activated) return { kind: 'activated', name };
    if (r.active === name) return { kind: 'unchanged', name };
    return { kind: 'kept', name: r.active ?? '', wanted: name };
  } catch (err) {
    return { kind: 'failed', name, detail: describe(err) };
  }
}

/** After this run: records that activation is settled, so no later run activates again. */
async function record(active: ActiveOutcome, view: StoreView): Promise<string | undefined> {
  const outcome = ({ activated: 'activated', unchanged: 'found active', kept: 'kept' } as const)[
    active.kind as 'activated' | 'unchanged' | 'kept'
  ];
  if (outcome === undefined || !('name' in active)) return undefined;
  const settled: Settled = { outcome, name: active.name, at: new Date() };
  try {
    if ((await view.readMeta('migrated')) !== undefined) return undefined;
    await view.writeMeta('migrated', formatMarker(settled));
    return undefined;
  } catch (err) {
    return `could not record that activation is settled (${describe(err)}); if the user deactivates ${JSON.stringify(active.name)}, a later run would activate a script again`;
  }
}
