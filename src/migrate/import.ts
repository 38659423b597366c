/**
 * Migrating one user: the old scripts (sources.ts) go into tsieved's FileStore by
 * name, byte-exact, and the old active script becomes the active one. Every step
 * is decided by comparing with what the store already holds, which is what makes
 * a second run change nothing:
 *   absent in the store        -> put (imported)
 *   present, same bytes        -> unchanged
 *   present, different bytes   -> conflict: tsieved's copy is kept (the user may
 *                                 have edited it since), reported, not imported
 * Activation only happens when tsieved has no active script of the user's own
 * choosing. Opening the store preserves whatever sits at the filter path (backup
 * + "old-forward" script, file-store.ts); when that preserved copy is just the old
 * active script (pysieved's .forward symlink is the filter path), the real name is
 * activated and the byte-identical "old-forward" duplicate is dropped.
 * The old files are only ever read.
 *
 * With `dryRun` the store is not opened (opening creates directories and backups):
 * its current state is read and the same decisions are reported as "would".
 *
 * Must not know: argv, output formatting, how users are found.
 */
import { access, readFile } from 'node:fs/promises';
import type { Identity } from '../auth/types.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import { hasErrors, validateScript, type Diagnostic, type SieveProfile } from '../sieve/index.js';
import { FileStore, IMPORT_NAME } from '../storage/file-store.js';
import { fileStoreOptionsFor } from '../storage/launcher.js';
import { isTsievedFilter } from '../storage/filter-file.js';
import { validateScriptName } from '../storage/script-names.js';
import { StorageError, type ScriptInfo } from '../storage/types.js';
import { readOldScripts, type SourceLayout, type SourceProblem } from './sources.js';

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
  | { readonly kind: 'failed'; readonly name: string; readonly detail: string };

export interface UserResult {
  readonly user: string;
  readonly source: string;
  readonly target?: string;
  /** The user has no old scripts directory: nothing to do. */
  readonly nothingToMigrate: boolean;
  readonly scripts: readonly ScriptResult[];
  readonly active: ActiveOutcome;
  readonly problems: readonly SourceProblem[];
  readonly notes: readonly string[];
  /** A failure that stopped this user's migration (paths, store). */
  readonly fatal?: string;
}

export interface ImportContext {
  readonly config: Config;
  readonly layout: SourceLayout;
  readonly profile: SieveProfile;
  readonly dryRun: boolean;
  readonly log: Logger;
}

function describe(err: unknown): string {
  if (err instanceof StorageError) return `${err.kind}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** What the store holds now, read without changing anything. */
interface StoreView {
  list(): Promise<ScriptInfo[]>;
  get(name: string): Promise<Buffer | undefined>;
}

function viewOf(store: FileStore | undefined): StoreView {
  if (!store) return { list: async () => [], get: async () => undefined };
  return {
    list: () => store.list(),
    get: async (name) => {
      try {
        return await store.get(name);
      } catch (err) {
        if (err instanceof StorageError && err.kind === 'nonexistent') return undefined;
        throw err;
      }
    },
  };
}

export async function migrateUser(identity: Identity, ctx: ImportContext): Promise<UserResult> {
  const base = { user: identity.user, source: '', scripts: [], problems: [], notes: [], active: { kind: 'none' } as const };
  if (!identity.home) return { ...base, nothingToMigrate: false, fatal: 'the account has no home directory' };
  const max = ctx.config.storage.max_script_bytes;
  const old = await readOldScripts(identity.home, ctx.layout, max);
  const common = { user: identity.user, source: old.scriptsDir, problems: old.problems, notes: [...old.notes] };
  if (!old.found || (old.scripts.length === 0 && old.active === undefined)) {
    // Nothing to import: do not even open (and so create) the tsieved store.
    return { ...common, nothingToMigrate: old.problems.length === 0, scripts: [], active: { kind: 'none' } };
  }

  let options;
  try {
    options = fileStoreOptionsFor(ctx.config.storage, identity, ctx.log);
  } catch (err) {
    return { ...common, nothingToMigrate: false, scripts: [], active: { kind: 'none' }, fatal: describe(err) };
  }
  const target = options.scriptsDir;
  let store: FileStore | undefined;
  try {
    if (ctx.dryRun) {
      // Constructing does not touch the disk; list/get only read.
      store = (await exists(options.scriptsDir)) ? new FileStore(options) : undefined;
      const filter = await readFile(options.filterPath).catch(() => undefined);
      if (filter && !isTsievedFilter(filter)) {
        common.notes.push(`${options.filterPath} was not written by tsieved: it would be backed up and kept as a script`);
      }
    } else {
      store = await FileStore.open(options);
    }
  } catch (err) {
    return { ...common, target, nothingToMigrate: false, scripts: [], active: { kind: 'none' }, fatal: describe(err) };
  }
  const view = viewOf(store);

  const scripts: ScriptResult[] = [];
  for (const s of old.scripts) {
    const diagnostics = validateScript(s.content, ctx.profile);
    const rejected = hasErrors(diagnostics);
    const result = (outcome: ScriptOutcome, detail?: string): ScriptResult => ({
      name: s.name,
      file: s.file,
      outcome,
      diagnostics,
      rejected,
      ...(detail !== undefined ? { detail } : {}),
    });
    const check = validateScriptName(s.name);
    if (!check.ok) {
      scripts.push(result('failed', `name not accepted: ${check.reason}`));
      continue;
    }
    try {
      const existing = await view.get(check.name);
      if (existing?.equals(s.content)) {
        scripts.push(result('unchanged'));
      } else if (existing) {
        scripts.push(result('conflict', "tsieved already has a different script of this name; kept tsieved's"));
      } else {
        if (!ctx.dryRun) await store!.put(check.name, s.content);
        scripts.push(result('imported'));
      }
    } catch (err) {
      scripts.push(result('failed', describe(err)));
    }
  }

  const active = old.activeIsTsievedFilter
    ? await alreadyActive(view)
    : await activate(old.active, old.scripts, scripts, store, view, ctx.dryRun);
  return { ...common, target, nothingToMigrate: false, scripts, active };
}

/** An earlier run replaced the old link: report what tsieved has active now. */
async function alreadyActive(view: StoreView): Promise<ActiveOutcome> {
  try {
    const current = (await view.list()).find((s) => s.active);
    return current ? { kind: 'unchanged', name: current.name } : { kind: 'none' };
  } catch (err) {
    return { kind: 'failed', name: '', detail: describe(err) };
  }
}

async function activate(
  wanted: string | undefined,
  oldScripts: readonly { name: string; content: Buffer }[],
  results: readonly ScriptResult[],
  store: FileStore | undefined,
  view: StoreView,
  dryRun: boolean,
): Promise<ActiveOutcome> {
  if (wanted === undefined) return { kind: 'none' };
  const check = validateScriptName(wanted);
  const name = check.ok ? check.name : wanted;
  const result = results.find((r) => r.name === wanted);
  if (!result || (result.outcome !== 'imported' && result.outcome !== 'unchanged')) {
    return { kind: 'failed', name, detail: 'the active script was not imported' };
  }
  const content = oldScripts.find((s) => s.name === wanted)?.content;
  try {
    const listed = await view.list();
    const current = listed.find((s) => s.active);
    if (current?.name === name) return { kind: 'unchanged', name };
    // The store's own preservation of the old filter file, when that file was the
    // old active script: not a choice the user made in tsieved.
    let duplicate: string | undefined;
    if (current && current.name.startsWith(IMPORT_NAME) && content) {
      const bytes = await view.get(current.name);
      if (bytes?.equals(content)) duplicate = current.name;
    }
    if (current && !duplicate) return { kind: 'kept', name: current.name, wanted: name };
    if (!dryRun) {
      await store!.setActive(name);
      if (duplicate) await store!.delete(duplicate);
    }
    return { kind: 'activated', name };
  } catch (err) {
    return { kind: 'failed', name, detail: describe(err) };
  }
}
