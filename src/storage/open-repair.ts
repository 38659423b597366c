/**
 * What a store checks when it opens, in which order, and whether those checks
 * would change anything: a foreign filter file to preserve, an active record
 * without its filter, a filter and record out of step after an interrupted change
 * (filter-guard.ts does each). Asked first without the lock and read-only
 * (open-check.ts), with the files the checks usually read requested together:
 * over a file broker that is one round trip, and in the usual case nothing needs
 * the lock at all. The same read-only trial tells whether SETACTIVE of a script
 * finds it already in place (nothing to write, so no lock to take).
 *
 * Must not know: the wire protocol, how the lock works, when a store opens.
 */
import { join } from 'node:path';
import type { ActiveHints } from './active-hints.js';
import type { FilterGuard } from './filter-guard.js';
import type { HeldLock } from './lock.js';
import { ACTIVE_FILE, VERBATIM_FILE } from './layout.js';
import { finishesWithoutChange, ReadOnlyView } from './open-check.js';
import { activeNameIn, StoreFiles } from './store-files.js';

/** The checks at open, in this order; every change in them is made under `lock`. */
export async function checkAtOpen(guard: FilterGuard, lock: HeldLock): Promise<void> {
  await guard.preserveForeign(lock);
  await guard.forgetActiveWithoutFilter(lock);
  await guard.reconcile(lock);
}

/**
 * True when the checks at open, run read-only and without the lock, find nothing to
 * change. The active script is read with the record when `hints` name it (the name
 * last seen here), otherwise as soon as the record is in; `hints` learn the name.
 */
export async function nothingToRepair(files: StoreFiles, guard: FilterGuard, hints?: ActiveHints): Promise<boolean> {
  const view = new ReadOnlyView(files.ops);
  const viewed = new StoreFiles(view, files.dir, files.limits, files.log);
  const filterPath = guard.filterPath;
  const activePath = join(files.dir, ACTIVE_FILE);
  const hinted = hints?.get(files.dir);
  view.readAhead({
    file: [
      filterPath,
      activePath,
      join(files.dir, VERBATIM_FILE),
      ...(hinted === undefined ? [] : [viewed.scriptPath(hinted)]),
    ],
  });
  // The active script's file, as soon as its name is known (read already when hinted).
  void view
    .readFile(activePath)
    .then(
      (raw) => {
        const name = activeNameIn(raw);
        hints?.set(files.dir, name);
        if (name !== undefined) view.readAhead({ file: [viewed.scriptPath(name)] });
      },
      () => hints?.set(files.dir, undefined),
    )
    .catch(() => undefined);
  return finishesWithoutChange((lock) => checkAtOpen(guard.over(viewed), lock));
}

/**
 * SETACTIVE of `nfc` with nothing to do: its bytes (and whether it is a preserved
 * forward) when it is recorded active and the filter file is exactly what
 * activating it writes, with no foreign filter to preserve; found read-only and
 * without the lock. Undefined otherwise, or on any failure: the caller takes the
 * lock and decides again from reads made under it. Nothing is ever changed on this
 * answer; it can only confirm a state that was there while it read (a change in
 * progress under another session's lock writes the filter before the record, so
 * half of one looks out of place and sends the caller to the lock).
 */
export async function inPlaceWithoutLock(
  files: StoreFiles,
  guard: FilterGuard,
  nfc: string,
): Promise<{ readonly content: Buffer; readonly verbatim: boolean } | undefined> {
  const view = new ReadOnlyView(files.ops);
  const viewed = new StoreFiles(view, files.dir, files.limits, files.log);
  // What the check reads when the script is in place (isInPlace: the script, the
  // filter and the preserved-forward record, and a look at the filter and the record).
  const inPlaceReads = {
    file: [viewed.scriptPath(nfc), guard.filterPath, join(files.dir, VERBATIM_FILE)],
    lstat: [guard.filterPath, join(files.dir, ACTIVE_FILE)],
  };
  // Over ordered FileOps (a file broker) all of it goes out with the record: one round
  // trip instead of three, for the SETACTIVE clients send after every save of the
  // active script. For another script the reads beyond the record are wasted, which
  // costs the broker far less than a round trip costs the session. Otherwise the
  // record first, alone: SETACTIVE of another script then costs one read more than
  // with the lock alone, not six (the others would be made again under it).
  if (files.ops.ordered) view.readAhead(inPlaceReads);
  if ((await viewed.recordedActive().catch(() => undefined)) !== nfc) return undefined;
  const viewedGuard = guard.over(viewed);
  if (!files.ops.ordered) view.readAhead(inPlaceReads);
  let found: { content: Buffer; verbatim: boolean } | undefined;
  const unchanged = await finishesWithoutChange(async (lock) => {
    const content = await viewed.get(nfc);
    await viewedGuard.preserveForeign(lock);
    if (await viewedGuard.isInPlace(nfc, content)) found = { content, verbatim: await viewed.isVerbatim(nfc, content) };
  });
  return unchanged ? found : undefined;
}
