/**
 * Migrating one user: the old scripts (sources.ts) go into tsieved's FileStore by
 * name, byte-exact, and the old active script becomes the active one. Every step
 * is decided by comparing with what the store already holds, which is what makes
 * a second run change nothing:
 *   absent in the store        -> put (imported)
 *   present, same bytes        -> unchanged
 *   present, different bytes   -> conflict: tsieved's copy is kept (the user may
 *                                 have edited it since), reported, not imported
 * "Absent" is decided by the store itself, under its lock: the script is put under
 * a temporary name and renamed to its own, which the store refuses when a script of
 * that name exists by then (a save in the user's own session a moment earlier).
 * Activation only happens when tsieved has no active script of the user's own
 * choosing, and only until a run has settled it: that run leaves a marker in the
 * scripts directory (marker.ts), and no later run activates anything, so a script
 * the user deactivated or replaced in tsieved stays so although the old layout
 * still names its active one (a SETACTIVE in the user's session during the run
 * itself can still be undone: see activate()).
 * Opening the store preserves whatever sits at the filter path (backup
 * + "old-forward" script, file-store.ts); when that preserved copy is just the old
 * active script (pysieved's .forward symlink is the filter path), the real name is
 * activated and the byte-identical "old-forward" duplicate is dropped, before any
 * other script is compared with the store (see migrateUser).
 * The old files are only ever read.
 *
 * Running as root, the store of any user but uid 0 is opened through a file broker
 * running as that user (ctx.launcher, storage/broker/), never in this process:
 * opening it reads the filter path, and root would follow a link the user planted
 * there to any file. The old files are read here, as safe-fs.ts allows.
 *
 * With `dryRun` the store is not opened (opening creates directories and backups):
 * its current state is read here, through file operations that cannot write, and
 * the same decisions are reported as "would". As root those reads follow no link.
 *
 * Must not know: argv, output formatting, how users are found.
 */
import { randomBytes } from 'node:crypto';
import { access, lstat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Identity } from '../auth/types.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import { hasErrors, validateScript, type Diagnostic, type SieveProfile } from '../sieve/index.js';
import { FileStore, IMPORT_NAME } from '../storage/file-store.js';
import { fileStoreOptionsFor, runningAsRoot } from '../storage/launcher.js';
import type { BrokerLauncher } from '../storage/broker/launcher.js';
import { isTsievedFilter } from '../storage/filter-file.js';
import { validateScriptName } from '../storage/script-names.js';
import { StorageError, withClose, type ScriptInfo, type ScriptStore } from '../storage/types.js';
import { describeMarker, formatMarker, localMarker, MARKER_FILE, type Marker, type Settled } from './marker.js';
import {
  dryRunFileOps,
  errorText,
  openDirBelow,
  readOwnedRegularFile,
  rootOwnedPolicy,
  TOO_LARGE,
  type ReadPolicy,
  type RootOwnedPolicy,
  type SafeDir,
} from './safe-fs.js';
import { readOldScripts, type OldScript, type SourceLayout, type SourceProblem } from './sources.js';

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
  /**
   * Starts a file broker running as the user, through which the user's store and
   * marker are read and written; needed when running as root (except for uid 0)
   * and not in a dry run.
   */
  readonly launcher?: Pick<BrokerLauncher, 'openFiles'>;
  /** Whether root-owned old files are read; by default from fs.protected_hardlinks (safe-fs.ts). */
  readonly rootOwned?: RootOwnedPolicy;
}

/** Temporary script names of StoreView.putIfAbsent. */
const MIGRATE_TEMP_PREFIX = 'tsieved-migrate-tmp-';

/** The store's own names for a preserved foreign filter file (file-store.ts importName). */
const PRESERVED_NAME = new RegExp(`^${IMPORT_NAME}(?:-[0-9]+)?$`);

function describe(err: unknown): string {
  if (err instanceof StorageError) return `${err.kind}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/**
 * The store as the migration sees it. In a dry run changes are only recorded here, so
 * later decisions (a second old script of the same name, the dropped duplicate) are
 * the ones the real run would make.
 */
class StoreView {
  /** Dry run: name -> the bytes it would have, or null once it would be deleted. */
  private readonly changed = new Map<string, Buffer | null>();

  constructor(
    private readonly store: ScriptStore | undefined,
    private readonly dryRun: boolean,
  ) {}

  async list(): Promise<ScriptInfo[]> {
    const listed = this.store ? await this.store.list() : [];
    if (!this.dryRun) return listed;
    const out = listed.filter((s) => this.changed.get(s.name) !== null);
    for (const [name, bytes] of this.changed) if (bytes && !out.some((s) => s.name === name)) out.push({ name, active: false });
    return out;
  }

  async get(name: string): Promise<Buffer | undefined> {
    if (this.dryRun && this.changed.has(name)) return this.changed.get(name) ?? undefined;
    if (!this.store) return undefined;
    try {
      return await this.store.get(name);
    } catch (err) {
      if (err instanceof StorageError && err.kind === 'nonexistent') return undefined;
      throw err;
    }
  }

  /**
   * Stores `content` as `name` unless a script of that name exists by the time the
   * store decides, under its lock: false then. The script is put under a temporary
   * name and renamed, and RENAMESCRIPT's rule (the new name must not exist) is
   * checked under the lock, so a PUTSCRIPT of the same name in the user's own
   * session, however close to this, is never overwritten. Until the rename a
   * LISTSCRIPTS may show the temporary name; a run killed in between leaves it.
   */
  async putIfAbsent(name: string, content: Buffer): Promise<boolean> {
    if (this.dryRun) {
      this.changed.set(name, content);
      return true;
    }
    const store = this.store!;
    const temp = `${MIGRATE_TEMP_PREFIX}${randomBytes(8).toString('hex')}`;
    await store.put(temp, content);
    try {
      await store.rename(temp, name);
      return true;
    } catch (err) {
      let failure = err;
      try {
        await store.delete(temp);
      } catch (cleanup) {
        failure = new Error(`${describe(err)}; the temporary script ${JSON.stringify(temp)} could not be removed: ${describe(cleanup)}`);
      }
      if (failure === err && err instanceof StorageError && err.kind === 'already-exists') return false;
      throw failure;
    }
  }

  async setActive(name: string): Promise<void> {
    if (!this.dryRun) await this.store!.setActive(name);
  }

  async delete(name: string): Promise<void> {
    if (this.dryRun) this.changed.set(name, null);
    else await this.store!.delete(name);
  }
}

/** The store and the marker a real run writes through, and what ends them. */
async function openStore(
  identity: Identity,
  isolate: boolean,
  ctx: ImportContext,
  options: Parameters<typeof FileStore.open>[0],
): Promise<{ store: ScriptStore; marker: Marker }> {
  if (!isolate) return { store: await FileStore.open(options), marker: localMarker(options.scriptsDir) };
  // Root never touches the user's files itself: the broker runs as the user, so the
  // user's symlinks lead only where the user could go anyway (a ~/.forward linked to
  // another user's file is unreadable to it, and not imported as "old-forward").
  if (!ctx.launcher) throw new StorageError('permission', 'running as root without a file broker launcher');
  const files = ctx.launcher.openFiles(identity);
  let store: FileStore;
  try {
    store = await FileStore.open({ ...options, fileOps: files.ops });
    if (!files.ops.alive) throw new StorageError('trylater', 'storage unavailable: the file broker ended');
  } catch (err) {
    await files.close();
    throw err;
  }
  // The marker goes through the same broker; closing the store ends it.
  return { store: withClose(store, async () => { await store.close(); await files.close(); }), marker: localMarker(options.scriptsDir, files.ops) };
}

/**
 * A dry run reads the store in this process, through FileOps that cannot write. As
 * root for another user it must not follow that user's symlinks either (root could
 * read any file): the store's directory is opened without following a link below
 * the home and read through that open directory, and files are read as safe-fs.ts
 * allows. What a link would lead to is then not known, so a dry run says so
 * instead of guessing (the real run's broker follows it with the user's rights).
 */
async function openDryRunStore(
  home: string,
  isolate: boolean,
  options: Parameters<typeof FileStore.open>[0],
  policy: ReadPolicy,
): Promise<{ store: ScriptStore; marker: Marker } | undefined> {
  if (!isolate) {
    try {
      await access(options.scriptsDir);
    } catch {
      return undefined;
    }
    // Constructing does not touch the disk; list/get only read.
    const ops = dryRunFileOps(policy);
    return { store: new FileStore({ ...options, fileOps: ops }), marker: localMarker(options.scriptsDir, ops) };
  }
  let dir: SafeDir;
  try {
    dir = await openDirBelow(home, options.scriptsDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    const path = (err as { path?: string }).path ?? options.scriptsDir;
    throw new Error(`${path} ${errorText(err)} (a dry run as root reads the store itself and does not follow links)`);
  }
  const ops = dryRunFileOps(policy, dir);
  const store = new FileStore({ ...options, scriptsDir: dir.via, fileOps: ops });
  return { store: withClose(store, () => dir.close()), marker: localMarker(dir.via, ops) };
}

/** Larger than any filter tsieved writes (Exim reads at most 1 MiB). */
const FILTER_READ_LIMIT = 4 * 1024 * 1024;

/** What opening the store would do with the file at the filter path. */
async function dryRunFilterNote(home: string, filterPath: string, isolate: boolean, policy: ReadPolicy): Promise<string | undefined> {
  if (!isolate) return filterNote(filterPath, filterPath, policy);
  let dir: SafeDir;
  try {
    dir = await openDirBelow(home, dirname(filterPath));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    const path = (err as { path?: string }).path ?? dirname(filterPath);
    return `${path} ${errorText(err)}: what the filter file is, is not known in a dry run as root`;
  }
  try {
    const at = dir.at(basename(filterPath));
    try {
      if ((await lstat(at)).isSymbolicLink()) {
        return `${filterPath} is a symbolic link (not followed in a dry run as root): unless it leads to a filter tsieved wrote, what it leads to would be backed up and kept as a script`;
      }
    } catch {
      return undefined;
    }
    return await filterNote(at, filterPath, policy);
  } finally {
    await dir.close();
  }
}

async function filterNote(at: string, filterPath: string, policy: ReadPolicy): Promise<string | undefined> {
  let bytes;
  try {
    bytes = await readOwnedRegularFile(at, FILTER_READ_LIMIT, policy);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return `${filterPath} ${errorText(err)}: the real run cannot preserve it and will not replace it`;
  }
  if (bytes !== TOO_LARGE && isTsievedFilter(bytes)) return undefined;
  return `${filterPath} was not written by tsieved: it would be backed up and kept as a script`;
}

export async function migrateUser(identity: Identity, ctx: ImportContext): Promise<UserResult> {
  const base = { user: identity.user, source: '', scripts: [], problems: [], notes: [], active: { kind: 'none' } as const };
  if (!identity.home) return { ...base, nothingToMigrate: false, fatal: 'the account has no home directory' };
  // As root, everything of a user's (but uid 0's) is read as that user's: old files
  // only when owned by them (or by root, where users cannot hard-link root's files),
  // the store and the marker only through a broker running as them.
  const isolate = runningAsRoot() && identity.uid !== 0;
  if (isolate && (identity.uid === undefined || identity.gid === undefined)) {
    return { ...base, nothingToMigrate: false, fatal: 'the account has no uid/gid; as root, a user\'s files are only handled as that user' };
  }
  const policy: ReadPolicy = isolate ? { ownerUid: identity.uid, rootOwned: ctx.rootOwned ?? (await rootOwnedPolicy()) } : {};
  const max = ctx.config.storage.max_script_bytes;
  const old = await readOldScripts(identity.home, ctx.layout, max, policy);
  const common = { user: identity.user, source: old.scriptsDir, problems: [...old.problems], notes: [...old.notes] };
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
  let store: ScriptStore | undefined;
  let marker: Marker | undefined;
  try {
    if (ctx.dryRun) {
      const storePolicy: ReadPolicy = isolate ? policy : { follow: true };
      const opened = await openDryRunStore(identity.home, isolate, options, storePolicy);
      store = opened?.store;
      marker = opened?.marker;
      const note = await dryRunFilterNote(identity.home, options.filterPath, isolate, storePolicy);
      if (note) common.notes.push(note);
    } else {
      ({ store, marker } = await openStore(identity, isolate, ctx, options));
    }
  } catch (err) {
    return { ...common, target, nothingToMigrate: false, scripts: [], active: { kind: 'none' }, fatal: describe(err) };
  }
  try {
    const view = new StoreView(store, ctx.dryRun);
    const settled = new SettledMarker(marker);
    // The old active script goes first and is activated before any other is looked
    // at: opening the store may have preserved the filter file as "old-forward"
    // (pysieved's .forward is tsieved's filter path), and that copy of the active
    // script is dropped on activation. Deciding the other scripts only afterwards
    // means an old script that is itself named "old-forward" is compared with what
    // stays in the store, so it is never reported as kept and then deleted, and a
    // second run finds the same state.
    const order = old.scripts.map((_, i) => i);
    const first = old.active ? old.scripts.indexOf(old.active) : -1;
    if (first > 0) order.unshift(...order.splice(first, 1));
    const results = new Map<number, ScriptResult>();
    let active: ActiveOutcome = { kind: 'none' };
    for (const i of order) {
      const script = old.scripts[i]!;
      const result = await importOne(script, view, ctx.profile);
      results.set(i, result);
      // The result of this very file (two files may decode to one name).
      if (script === old.active) active = await activate(script, result, view, settled, common.notes);
    }
    if (old.activeIsTsievedFilter) active = await alreadyActive(view);
    if (!ctx.dryRun) {
      const problem = await settled.record(active);
      if (problem) common.problems.push({ file: `${target}/${MARKER_FILE}`, message: problem });
    }
    const scripts = old.scripts.map((_, i) => results.get(i)!);
    return { ...common, target, nothingToMigrate: false, scripts, active };
  } finally {
    const closing = async (what: string, close: (() => Promise<void>) | undefined): Promise<void> => {
      await close?.().catch((err: unknown) => ctx.log.warn({ err, user: identity.user }, `closing the ${what} failed`));
    };
    // The marker first: as root it goes through the store's broker.
    await closing('marker', marker && (() => marker!.close()));
    await closing('store', store && (() => store!.close()));
  }
}

/**
 * Whether an earlier run settled activation (marker.ts), read once, and recording
 * that this run did. Without a marker (a dry run of a user without a store) there
 * is none.
 */
class SettledMarker {
  private content: Promise<Buffer | undefined> | undefined;

  constructor(private readonly marker: Marker | undefined) {}

  /** The earlier run's marker, or undefined; throws when that cannot be known. */
  read(): Promise<Buffer | undefined> {
    this.content ??= this.marker ? this.marker.read() : Promise.resolve(undefined);
    return this.content;
  }

  /** After this run: a problem to report when activation was settled and could not be recorded. */
  async record(active: ActiveOutcome): Promise<string | undefined> {
    let settled: Settled;
    const at = new Date();
    switch (active.kind) {
      case 'activated':
        settled = { outcome: 'activated', name: active.name, at };
        break;
      case 'unchanged':
        settled = { outcome: 'found active', name: active.name, at };
        break;
      case 'kept':
        settled = { outcome: 'kept', name: active.name, at };
        break;
      default:
        return undefined; // nothing settled, or already recorded ('settled')
    }
    if (!this.marker) return undefined;
    try {
      if ((await this.read()) !== undefined) return undefined;
      await this.marker.write(formatMarker(settled));
      return undefined;
    } catch (err) {
      return `could not record that activation is settled (${describe(err)}); if the user deactivates ${JSON.stringify(active.name)}, a later run would activate a script again`;
    }
  }
}

async function importOne(s: OldScript, view: StoreView, profile: SieveProfile): Promise<ScriptResult> {
  const diagnostics = validateScript(s.content, profile);
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
  if (!check.ok) return result('failed', `name not accepted: ${check.reason}`);
  try {
    const existing = await view.get(check.name);
    if (existing?.equals(s.content)) return result('unchanged');
    if (existing) return result('conflict', "tsieved already has a different script of this name; kept tsieved's");
    if (await view.putIfAbsent(check.name, s.content)) return result('imported');
    // Saved in the user's own session since the look above: theirs stays.
    const now = await view.get(check.name);
    if (now?.equals(s.content)) return result('unchanged');
    return result('conflict', "tsieved got a different script of this name while migrating; kept tsieved's");
  } catch (err) {
    return result('failed', describe(err));
  }
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

async function activate(wanted: OldScript, result: ScriptResult, view: StoreView, settled: SettledMarker, notes: string[]): Promise<ActiveOutcome> {
  const check = validateScriptName(wanted.name);
  const name = check.ok ? check.name : wanted.name;
  if (result.outcome !== 'imported' && result.outcome !== 'unchanged') {
    return { kind: 'failed', name, detail: 'the active script was not imported' };
  }
  // Read before the store is looked at (as root it starts a broker): the look and
  // the activation below stay as close together as they can.
  let earlier: Buffer | undefined;
  try {
    earlier = await settled.read();
  } catch (err) {
    return { kind: 'failed', name, detail: `cannot tell whether an earlier run settled activation: ${describe(err)}` };
  }
  let duplicate: string | undefined;
  try {
    const current = (await view.list()).find((s) => s.active);
    if (current?.name === name) return { kind: 'unchanged', name };
    // An earlier run settled it: what tsieved has active now (or nothing) is the user's choice.
    if (earlier !== undefined) {
      return current ? { kind: 'kept', name: current.name, wanted: name } : { kind: 'settled', name, earlier: describeMarker(earlier) };
    }
    // The store's own preservation of the old filter file, when that file was the
    // old active script: not a choice the user made in tsieved.
    if (current && PRESERVED_NAME.test(current.name)) {
      const bytes = await view.get(current.name);
      if (bytes?.equals(wanted.content)) duplicate = current.name;
    }
    if (current && !duplicate) return { kind: 'kept', name: current.name, wanted: name };
    // Left open: a SETACTIVE in the user's own session between the list() above and
    // this (one store round trip, plus the get() of a preserved copy) is undone.
    // Closing it needs the store to decide under its lock (a "set active if none is"
    // operation in ScriptStore, FileStore and the broker); RENAMESCRIPT's check,
    // which putIfAbsent borrows for scripts, has no counterpart for activation.
    await view.setActive(name);
  } catch (err) {
    return { kind: 'failed', name, detail: describe(err) };
  }
  if (duplicate) {
    try {
      await view.delete(duplicate);
    } catch (err) {
      notes.push(`${JSON.stringify(duplicate)} (the store's copy of the old filter file) could not be removed: ${describe(err)}`);
    }
  }
  return { kind: 'activated', name };
}
