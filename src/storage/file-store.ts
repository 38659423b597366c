/**
 * One user's scripts in a directory, and the filter file Exim reads: the
 * ScriptStore operations. The directory's files are store-files.ts, the filter file
 * (preserving a foreign one, what is written for a script, repairs) filter-guard.ts,
 * a change under the lock locked-section.ts; storing and renaming a script, the
 * longest changes, are script-changes.ts.
 *
 * Every mutation runs under the user's lock, and the filter file is always written
 * from script content read or written under that lock, so two sessions (or two
 * servers on one shared directory) never leave a filter that does not match the
 * active script; within one hold a file is read once (held-reads.ts), not again by
 * each step that needs it. Writes are atomic (atomic-write.ts); when a script and
 * the filter change together both temp files are fully written before either is
 * renamed, so a quota or disk-full failure leaves both old files in place. A change
 * cut off between its renames (a crash, a killed broker) is repaired by the next
 * open.
 *
 * Must not know: the wire protocol, auth, sessions, config parsing.
 */
import { dirname, join } from 'node:path';
import type { Logger } from '../log/logger.js';
import {
  StorageError,
  type ActivationResult,
  type Approval,
  type MetaKey,
  type ScriptInfo,
  type ScriptStore,
} from './types.js';
import { nodeFileOps, reportingDirSyncFailures, type FileOps } from './file-ops.js';
import { DEFAULT_LOCK_OPTIONS, type LockOptions } from './lock.js';
import { VERBATIM_FILE } from './layout.js';
import { processActiveHints, type ActiveHints } from './active-hints.js';
import { inPlaceWithoutLock, nothingToRepair } from './open-repair.js';
import { removeStaleTemps } from './filter-backup.js';
import { FilterGuard } from './filter-guard.js';
import { LockedSections, type HeldFiles } from './locked-section.js';
import { putScript, renameScript } from './script-changes.js';
import { sha256, StoreFiles, type StoreLimits } from './store-files.js';

export { ACTIVE_FILE, IMPORTED_FILE, LOCK_DIR } from './layout.js';
export { BACKUP_MARKER } from './filter-backup.js';
export { IMPORT_NAME } from './filter-guard.js';
export type { StoreLimits } from './store-files.js';

export interface FileStoreOptions {
  readonly scriptsDir: string;
  readonly filterPath: string;
  readonly limits: StoreLimits;
  /** Mode of the filter file, e.g. 0o644 or "0644". */
  readonly filterMode: number | string;
  /**
   * Missing directories strictly below this one on the way to scriptsDir are created
   * (0700, owned by the user); without it only scriptsDir itself is created and its
   * parent must exist. The filter file's directory is never created (on AFS it needs
   * ACLs that let Exim read it, which only the admin or the user can set).
   */
  readonly createBelow?: string | undefined;
  readonly fileOps?: FileOps;
  /** The active script's name as last seen, read ahead at open (default: this process's). */
  readonly activeHints?: ActiveHints;
  readonly lock?: Partial<LockOptions>;
  readonly log: Logger;
}

export class FileStore implements ScriptStore {
  private readonly files: StoreFiles;
  private readonly guard: FilterGuard;
  private readonly sections: LockedSections;
  private readonly log: Logger;
  private readonly createBelow: string | undefined;

  constructor(options: FileStoreOptions) {
    const ops = reportingDirSyncFailures(options.fileOps ?? nodeFileOps, (path, err) =>
      options.log.warn(
        { event: 'dir-sync-failed', path, err },
        'directory fsync failed after a change: the change is made, but may not survive a crash',
      ),
    );
    const mode = typeof options.filterMode === 'number' ? options.filterMode : parseInt(options.filterMode, 8);
    this.files = new StoreFiles(ops, options.scriptsDir, options.limits, options.log);
    this.guard = new FilterGuard(this.files, options.filterPath, mode);
    this.sections = new LockedSections(
      this.files,
      this.guard,
      { ...DEFAULT_LOCK_OPTIONS, ...options.lock },
      options.log,
    );
    this.log = options.log;
    this.createBelow = options.createBelow;
  }

  /**
   * Creates the scripts directory if needed, removes stale temp files and preserves
   * a foreign filter file. A failure to preserve is logged, not fatal: every change
   * of the filter tries again and refuses to proceed while it fails.
   */
  static async open(options: FileStoreOptions): Promise<FileStore> {
    const store = new FileStore(options);
    // Started first, so that its reads go out with the ones below (one round trip
    // over a file broker); it changes nothing, so it may overlap them.
    const clean = nothingToRepair(store.files, store.guard, options.activeHints ?? processActiveHints);
    const filterDir = dirname(options.filterPath);
    const besideFilter = store.files.ops.readdir(filterDir).catch(() => undefined);
    const listing = await store.files.ensureDir(store.createBelow);
    await removeStaleTemps(store.files.ops, [
      [options.scriptsDir, listing],
      [filterDir, await besideFilter],
    ]);
    if (await clean) return store;
    // The repair runs once the lock is taken: here, or (when another session holds
    // it past the wait) before the first change this session makes.
    store.sections.repairPending = true;
    try {
      await store.sections.run(async () => undefined);
    } catch (err) {
      store.log.warn(
        { err, filterPath: options.filterPath },
        'could not take the lock to check the existing filter file; checking at the next change',
      );
    }
    return store;
  }

  // ---- ScriptStore ----

  async list(): Promise<ScriptInfo[]> {
    // The record counts only for a script that exists: only the listed ones are marked.
    const [scripts, active] = await Promise.all([this.files.scan(), this.files.recordedActive()]);
    return scripts.flatMap((s) => (s.name === undefined ? [] : [{ name: s.name, active: s.name === active }]));
  }

  async get(name: string): Promise<Buffer> {
    return this.files.get(this.files.checkName(name));
  }

  async checkSpace(name: string, size: number): Promise<void> {
    this.files.checkSpaceIn(await this.files.scan(), this.files.checkName(name), size);
  }

  async put(name: string, content: Buffer, approve?: Approval): Promise<boolean> {
    return putScript(this.sections, this.log, name, content, { approve });
  }

  async putIfAbsent(name: string, content: Buffer): Promise<boolean> {
    return putScript(this.sections, this.log, name, content, { ifAbsent: true });
  }

  async delete(name: string): Promise<void> {
    const nfc = this.files.checkName(name);
    await this.sections.run(async ({ lock, files, readAhead }) => {
      readAhead([join(files.dir, VERBATIM_FILE)]); // removeScript reads it: with the record
      const recorded = files.recordedActive();
      // The look at the lock before the unlink goes out after these reads, in their
      // round trip: unless this script is recorded active, nothing is read between.
      lock.lookAhead();
      // RFC 5804 section 2.10: deleting the active script is refused (ACTIVE). Whether
      // the recorded one exists matters only when it is this one.
      if ((await recorded) === nfc && (await files.exists(files.scriptPath(nfc))))
        throw new StorageError('active', `script ${JSON.stringify(nfc)} is active`);
      await files.removeScript(nfc, lock, { releaseLock: true });
      this.log.info({ script: nfc }, 'script deleted');
    });
  }

  async rename(oldName: string, newName: string): Promise<void> {
    await renameScript(this.sections, this.log, oldName, newName);
  }

  async setActive(name: string, approve?: Approval): Promise<boolean> {
    if (name === '') {
      await this.sections.run(async ({ lock, files, guard }) => {
        await guard.preserveForeign(lock);
        await lock.assertHeld();
        // No filter file: Exim's router declines and mail is delivered normally.
        await guard.removeFilter();
        await files.writeActive(undefined);
        this.log.info('filter deactivated');
      });
      return true;
    }
    const nfc = this.files.checkName(name);
    // Clients send SETACTIVE after every PUTSCRIPT of the active script (Roundcube
    // does on every save): when reads alone find it in place there is nothing to
    // write, so no lock to take (unless the repair at open still waits for it).
    const inPlace = this.sections.repairPending ? undefined : await inPlaceWithoutLock(this.files, this.guard, nfc);
    if (inPlace !== undefined) return inPlace.verbatim || !approve || approve(inPlace.content);
    // Read by the steps below: all in the round trip of the script's read.
    const startReads = ({ files, guard, readAhead }: HeldFiles): Promise<Buffer> => {
      readAhead([guard.filterPath, join(files.dir, VERBATIM_FILE)]);
      return files.get(nfc);
    };
    return this.sections.run(async (held) => {
      const { lock, files, guard } = held;
      const content = await startReads(held); // read under the lock: the filter matches it
      // A preserved forward is written back as it is: not Sieve to approve.
      if (approve && !(await files.isVerbatim(nfc, content)) && !(await approve(content))) return false;
      await guard.preserveForeign(lock);
      // In place after all (it changed since the look above): nothing to write.
      if (await guard.isInPlace(nfc, content)) return true;
      // Nothing follows under the lock: the record's rename carries its release.
      await guard.activate(nfc, content, lock, { releaseLock: true });
      return true;
    }, startReads);
  }

  async setActiveIfNone(name: string): Promise<ActivationResult> {
    const nfc = this.files.checkName(name);
    return this.sections.run(async ({ lock, files, guard }) => {
      const content = await files.get(nfc);
      await guard.preserveForeign(lock);
      const current = await files.readActive();
      if (current === nfc) return { active: nfc, activated: false };
      let dropped: string | undefined;
      if (current !== undefined) {
        // The store's own copy of the filter file it found, when that file was this
        // very script (pysieved's .forward linked to it): not a choice of the user's.
        if (!(await guard.isPreservedCopy(current, content))) return { active: current, activated: false };
        dropped = current;
      }
      await guard.activate(nfc, content, lock);
      if (dropped !== undefined) {
        try {
          await files.removeScript(dropped, lock);
        } catch (err) {
          this.log.warn({ err, script: dropped }, 'could not remove the preserved copy of the activated script');
          return { active: nfc, activated: true };
        }
      }
      return { active: nfc, activated: true, ...(dropped !== undefined ? { dropped } : {}) };
    });
  }

  async isVerbatim(name: string): Promise<boolean> {
    const nfc = this.files.checkName(name);
    const [content, verbatim] = await Promise.all([this.files.get(nfc), this.files.readVerbatim()]);
    return verbatim.get(nfc) === sha256(content);
  }

  async preserveForward(content: Buffer): Promise<string> {
    return this.sections.run(async ({ lock, guard }) => {
      const { name } = await guard.importContent(content, lock);
      this.log.info({ script: name, bytes: content.length }, 'kept a filter file read elsewhere as a script');
      return name;
    });
  }

  async readMeta(key: MetaKey): Promise<Buffer | undefined> {
    return this.files.readMeta(key);
  }

  async writeMeta(key: MetaKey, content: Buffer): Promise<void> {
    await this.sections.run(async ({ lock, files }) => {
      await lock.assertHeld();
      await files.writeMeta(key, content);
    });
  }

  async close(): Promise<void> {
    // Nothing held between calls: locks live only for the duration of a mutation.
  }
}
