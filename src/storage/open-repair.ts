/**
 * What a store checks when it opens, in which order, and whether those checks
 * would change anything: a foreign filter file to preserve, an active record
 * without its filter, a filter and record out of step after an interrupted change
 * (filter-guard.ts does each). Asked first without the lock and read-only
 * (open-check.ts), with the files the checks usually read requested together:
 * over a file broker that is one round trip, and in the usual case nothing needs
 * the lock at all.
 *
 * Must not know: the wire protocol, how the lock works, when a store opens.
 */
import { join } from 'node:path';
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

/** True when the checks at open, run read-only and without the lock, find nothing to change. */
export async function nothingToRepair(files: StoreFiles, guard: FilterGuard): Promise<boolean> {
  const view = new ReadOnlyView(files.ops);
  const viewed = new StoreFiles(view, files.dir, files.limits, files.log);
  const filterPath = guard.filterPath;
  const activePath = join(files.dir, ACTIVE_FILE);
  view.readAhead({ file: [filterPath, activePath, join(files.dir, VERBATIM_FILE)], lstat: [filterPath] });
  // The active script's file, as soon as its name is known.
  void view
    .readFile(activePath)
    .then((raw) => {
      const name = activeNameIn(raw);
      if (name !== undefined) view.readAhead({ file: [viewed.scriptPath(name)], lstat: [viewed.scriptPath(name)] });
    })
    .catch(() => undefined);
  return finishesWithoutChange((lock) => checkAtOpen(guard.over(viewed), lock));
}
