/**
 * Migrating one user, in two passes that decide alike (decide.ts):
 * 1. a dry pass over the store as opening it leaves it (its repairs made in memory
 *    only: open-store.ts, open-repairs.ts), which yields the report and
 *    the filter file Exim will read afterwards; that file and the one Exim reads
 *    today are compared through the real Exim (prove.ts);
 * 2. in a real run, and only when routing is unchanged (or the operator gave
 *    --accept-changes), the same decisions against the real store.
 * A real run therefore reports everything the dry run does, and changes nothing
 * for a user whose mail would go elsewhere.
 *
 * The old files are only ever read. As root, everything of a user's (but uid 0's)
 * is read as safe-fs.ts allows and written through a file broker running as the user.
 *
 * Must not know: argv, output formatting, how users are found.
 */
import { basename, dirname, join } from 'node:path';
import type { Identity } from '../auth/types.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { SieveProfile } from '../sieve/index.js';
import type { FileStoreOptions } from '../storage/file-store.js';
import { isSieveFilter, isTsievedFilter, renderFilter } from '../storage/filter-file.js';
import type { BrokerLauncher } from '../storage/broker/launcher.js';
import { fileStoreOptionsFor, runningAsRoot } from '../storage/launcher.js';
import { decodeScriptFileName } from '../storage/script-names.js';
import type { ScriptStore } from '../storage/types.js';
import { decide, describe, type ActiveOutcome, type Decided, type ScriptResult } from './decide.js';
import { filterDirExists, readFilterNow, type FilterNow } from './filter-now.js';
import { openDryRunStore, openRealStore } from './open-store.js';
import { filterAfterOpen, openChangesAnything, openRepairs } from './open-repairs.js';
import { proveRouting, subaddressCaveat, type FilterState, type Routing } from './prove.js';
import { addressOf, type Affixes } from './probes.js';
import type { EximRunner } from './routing.js';
import { rootOwnedPolicy, type ReadPolicy, type RootOwnedPolicy } from './safe-fs.js';
import { readOldScripts, type SourceLayout, type SourceProblem } from './sources.js';
import { StoreView } from './store-view.js';

export type { ActiveOutcome, ScriptOutcome, ScriptResult } from './decide.js';

export interface UserResult {
  readonly user: string;
  readonly source: string;
  readonly target?: string;
  /** The user has no old scripts and no filter file to carry over: nothing to do. */
  readonly nothingToMigrate: boolean;
  readonly scripts: readonly ScriptResult[];
  readonly active: ActiveOutcome;
  readonly problems: readonly SourceProblem[];
  readonly notes: readonly string[];
  /** Where mail goes before and after, compared by Exim. */
  readonly routing?: Routing;
  /** The file Exim must read from the switch on, when it is not the one it reads today. */
  readonly switchTo?: string;
  /** A real run changed nothing because routing would change (or could not be proven). */
  readonly refused?: boolean;
  /** A failure that stopped this user's migration (paths, store). */
  readonly fatal?: string;
}

export interface MigrateContext {
  readonly config: Config;
  readonly layout: SourceLayout;
  readonly profile: SieveProfile;
  readonly dryRun: boolean;
  readonly log: Logger;
  /** The file Exim's router reads today, relative to the home directory (pysieved: its active link; Dovecot: `.forward`). */
  readonly eximFile: string;
  /** The Exim to compare routing with; undefined: none found (routing unproven). */
  readonly exim?: Omit<EximRunner, 'uid' | 'gid'>;
  /** Domain of users whose name has none (Exim's qualify_domain). */
  readonly domain: string;
  /** Local-part prefix/suffix a further probe is sent with (the router's, e.g. `+lists`); empty: none. */
  readonly affixes?: Affixes;
  readonly acceptChanges: boolean;
  /** Allow scripts_dir to be the directory migrated from (Dovecot then sees tsieved's files). */
  readonly inPlace: boolean;
  /** Starts a file broker running as the user, through which a real run writes; needed as root (but for uid 0). */
  readonly launcher?: Pick<BrokerLauncher, 'openFiles'>;
  /** Whether root-owned old files are read; by default from fs.protected_hardlinks (safe-fs.ts). */
  readonly rootOwned?: RootOwnedPolicy;
}

/** Is one of the paths the other or below it? */
function overlaps(a: string, b: string): boolean {
  return a === b || a.startsWith(b + '/') || b.startsWith(a + '/');
}

const asState = (f: FilterNow): FilterState =>
  f.kind === 'file' ? f.bytes : f.kind === 'absent' ? undefined : { unknown: `${f.path} ${f.why}` };

export async function migrateUser(identity: Identity, ctx: MigrateContext): Promise<UserResult> {
  const base = {
    user: identity.user,
    source: '',
    scripts: [],
    problems: [],
    notes: [],
    active: { kind: 'none' } as const,
  };
  if (!identity.home) return { ...base, nothingToMigrate: false, fatal: 'the account has no home directory' };
  const home = identity.home;
  const isolate = runningAsRoot() && identity.uid !== 0;
  if (isolate && (identity.uid === undefined || identity.gid === undefined)) {
    return {
      ...base,
      nothingToMigrate: false,
      fatal: "the account has no uid/gid; as root, a user's files are only handled as that user",
    };
  }
  const policy: ReadPolicy = isolate
    ? { ownerUid: identity.uid, rootOwned: ctx.rootOwned ?? (await rootOwnedPolicy()) }
    : {};
  const read = await readOldScripts(home, ctx.layout, ctx.config.storage.max_script_bytes, policy);
  // In place, tsieved's own files for names the old layout spells otherwise (encoded
  // "a%20b.sieve" for "a b") are not old scripts: later runs count the same.
  const ours = (file: string, name: string): boolean => {
    const decoded = decodeScriptFileName(basename(file));
    return decoded.kind === 'script' && decoded.name !== name;
  };
  const old = ctx.inPlace
    ? { ...read, scripts: read.scripts.filter((s) => s === read.active || !ours(s.file, s.name)) }
    : read;
  const common = { user: identity.user, source: old.scriptsDir, problems: [...old.problems], notes: [...old.notes] };
  const none = { scripts: [], active: { kind: 'none' } as const };

  let options: FileStoreOptions;
  try {
    options = fileStoreOptionsFor(ctx.config.storage, identity, ctx.log);
  } catch (err) {
    return { ...common, ...none, nothingToMigrate: false, fatal: describe(err) };
  }
  const target = options.scriptsDir;
  // Never write into the directories migrated from (Dovecot would list tsieved's files).
  if (!ctx.inPlace && (overlaps(target, old.scriptsDir) || overlaps(options.filterPath, old.scriptsDir))) {
    return {
      ...common,
      ...none,
      target,
      nothingToMigrate: false,
      fatal: `tsieved's scripts_dir/filter_path (${target}, ${options.filterPath}) lies in ${old.scriptsDir}, the directory migrated from; choose another scripts_dir, or pass --in-place to accept that ${ctx.layout.kind} then sees tsieved's files`,
    };
  }
  const eximPath = join(home, ctx.eximFile);
  const samePath = eximPath === options.filterPath;
  const today = await readFilterNow(home, eximPath, isolate ? policy : { follow: true }, isolate);
  const filterNow = samePath
    ? today
    : await readFilterNow(home, options.filterPath, isolate ? policy : { follow: true }, isolate);
  const nothingOld = !old.found || (old.scripts.length === 0 && old.active === undefined);
  if (nothingOld && (samePath || today.kind === 'absent')) {
    // Nothing to import or carry over: do not even open (and so create) the store.
    return { ...common, ...none, nothingToMigrate: old.problems.length === 0 && today.kind !== 'unreadable' };
  }
  const switchTo = samePath ? undefined : options.filterPath;
  const input = { kind: ctx.layout.kind, old, today, samePath, profile: ctx.profile };

  // Pass 1: decide against the store as it is, and predict the filter file.
  let planned: Decided;
  let after: FilterState;
  let wouldChange: boolean;
  try {
    const opened = await openDryRunStore(home, isolate, options, isolate ? policy : { follow: true });
    const store = opened?.store;
    try {
      const foreign =
        filterNow.kind === 'file' && !isTsievedFilter(filterNow.bytes)
          ? { bytes: filterNow.bytes, sieve: isSieveFilter(filterNow.bytes) }
          : undefined;
      if (foreign)
        common.notes.push(
          `${options.filterPath} was not written by tsieved: opening the store backs it up beside itself and keeps it as a script`,
        );
      if (opened) common.notes.push(...(await openRepairs(opened, options.filterPath, foreign !== undefined)));
      // An opened store has preserved the foreign filter itself; without one the view models it.
      const view = await StoreView.dry(store, store ? undefined : foreign);
      planned = await decide(input, view);
      wouldChange = view.changesAnything() || openChangesAnything(opened);
      const opening = opened ? await filterAfterOpen(opened, options.filterPath) : { changed: false as const };
      after =
        planned.active.kind === 'activated'
          ? await view.filterFor(planned.active.name)
          : opening.changed
            ? opening.bytes
            : asState(filterNow);
      if (planned.active.kind === 'activated' && !(await filterDirExists(home, options.filterPath))) {
        // Activation will fail (not-set-up), and Exim will find no filter there.
        after = undefined;
        common.notes.push(
          `${dirname(options.filterPath)} does not exist: no filter file can be written there until the user or an administrator creates it`,
        );
      }
    } finally {
      await store?.close();
    }
  } catch (err) {
    return { ...common, ...none, target, nothingToMigrate: false, fatal: describe(err) };
  }
  const dovecotRan = ctx.layout.kind === 'dovecot' && today.kind === 'absent' && old.active !== undefined;
  // Dovecot ran the script itself: compared as Exim runs it once tsieved writes it.
  const before: FilterState = dovecotRan ? renderFilter(old.active.content) : asState(today);
  const exim = ctx.exim ? { ...ctx.exim, ...(isolate ? { uid: identity.uid!, gid: identity.gid! } : {}) } : undefined;
  const address = addressOf(identity.user, ctx.domain, ctx.affixes);
  const routing = await proveRouting({ before, after, dovecotRan, exim, address });
  const caveat = subaddressCaveat(routing, before, after);
  if (caveat) common.notes.push(caveat);
  if (dovecotRan)
    common.notes.push(`Exim reads no ${eximPath} today; Dovecot ran ${old.active.file}, compared as Exim runs it`);
  const result = (d: Decided, extra: Partial<UserResult> = {}): UserResult => ({
    ...common,
    notes: [...common.notes, ...d.notes],
    problems: [...common.problems, ...(d.problem ? [{ file: `${target}/.migrated`, message: d.problem }] : [])],
    target,
    nothingToMigrate: false,
    scripts: d.scripts,
    active: d.active,
    routing,
    ...(switchTo ? { switchTo } : {}),
    ...extra,
  });
  if (ctx.dryRun) return result(planned);
  // A run that would change nothing (an earlier one did it all) is not "refused":
  // the report still names the routing change, e.g. a choice the user made since.
  if (routing.kind !== 'unchanged' && !ctx.acceptChanges) return result(planned, wouldChange ? { refused: true } : {});

  // Pass 2: the same decisions against the real store.
  let store: ScriptStore | undefined;
  let done: Decided;
  try {
    store = await openRealStore(identity, isolate, ctx.launcher, options);
    done = await decide(input, StoreView.real(store));
  } catch (err) {
    return result(planned, { fatal: describe(err) });
  } finally {
    await store
      ?.close()
      .catch((err: unknown) => ctx.log.warn({ err, user: identity.user }, 'closing the store failed'));
  }
  // What was written is what was compared (unless the user changed something meanwhile).
  const written = asState(await readFilterNow(home, options.filterPath, isolate ? policy : { follow: true }, isolate));
  if (!sameFilter(written, after)) {
    common.problems.push({
      file: options.filterPath,
      message:
        'is not the filter file compared with Exim above (changed in the meantime?); run again with --dry-run to check',
    });
  }
  return result(done);
}

function sameFilter(a: FilterState, b: FilterState): boolean {
  if (a === undefined || b === undefined) return a === b;
  return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b);
}
