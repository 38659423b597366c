/**
 * What opening a user's store changes before the migration decides anything, in
 * words for the report: the repairs of an interrupted change (storage/
 * filter-guard.ts: the filter written again from the script recorded active, the
 * record set to the script the filter runs, or cleared when the filter is gone) and
 * the temp files a crashed writer left. Read off a dry run's open in memory
 * (open-store.ts), so a dry run names them before a real run makes them, and both
 * print the same. Preserving a foreign filter file is described where it is found.
 *
 * Must not know: how the open was made, the old layouts.
 */
import { basename, dirname } from 'node:path';
import { TEMP_MARKER } from '../storage/atomic-write.js';
import { BACKUP_MARKER } from '../storage/file-store.js';
import type { DryRunStore } from './open-store.js';

/** The filter file as the open leaves it, when the open changed it (undefined: removed). */
export async function filterAfterOpen(
  opened: DryRunStore,
  filterPath: string,
): Promise<{ changed: false } | { changed: true; bytes: Buffer | undefined }> {
  const { shadow } = opened;
  if (!shadow.written.has(filterPath) && !shadow.removed.has(filterPath)) return { changed: false };
  return { changed: true, bytes: await shadow.readFile(filterPath).catch(() => undefined) };
}

export function openChangesAnything(opened: DryRunStore | undefined): boolean {
  return opened !== undefined && (opened.shadow.written.size > 0 || opened.shadow.removed.size > 0);
}

export async function openRepairs(opened: DryRunStore, filterPath: string, foreign: boolean): Promise<string[]> {
  const notes: string[] = [];
  const { shadow } = opened;
  const temps = [...shadow.removed].filter((p) => basename(p).includes(TEMP_MARKER)).length;
  if (temps > 0) notes.push(`opening the store removes ${temps} temporary file(s) an interrupted write left`);
  // A foreign filter's preservation (which records "old-forward" active) is said where it is found.
  if (foreign) return notes;
  const active = (await opened.store.list()).find((s) => s.active)?.name;
  const backup = [...shadow.written].some(
    (p) => dirname(p) === dirname(filterPath) && basename(p).startsWith(basename(filterPath) + BACKUP_MARKER),
  );
  if ((await filterAfterOpen(opened, filterPath)).changed && active !== undefined) {
    notes.push(
      `opening the store writes ${filterPath} again from the active script ${JSON.stringify(active)}, which it did not match (an interrupted change, or an edit by hand)` +
        (backup ? '; the file as it is now is backed up beside it' : ''),
    );
  }
  if (active !== opened.activeBefore) {
    notes.push(
      active === undefined
        ? `opening the store records no script as active: ${filterPath} is gone`
        : `opening the store records ${JSON.stringify(active)} as the active script: ${filterPath} runs it (an interrupted change)`,
    );
  }
  return notes;
}
