/**
 * The filter file Exim reads, guarded: what it must contain for a script, keeping a
 * filter file tsieved did not write, and repairing what an interrupted change left.
 *
 * A filter file tsieved did not write is never lost (pysieved deleted it, see
 * docs/pysieved.md): before any change of the filter it is copied to
 * `<filter>.tsieved-backup-<UTC time>` (filter-backup.ts) and imported as the script
 * "old-forward" ("old-forward-2", ... if taken) and listed active, since it is what
 * Exim runs. A Sieve one (Exim's test) is a script like any other. Anything else (an
 * Exim filter, an address list) is recorded as a preserved forward (store-files.ts
 * `.verbatim`): activating it writes it back byte for byte, so it keeps working as
 * it did; the `# Sieve filter` header would make Exim fail on it.
 *
 * Every function here runs under the user's lock (the caller holds it).
 *
 * Must not know: the wire protocol, auth, how scripts are named on disk.
 */
import { dirname, join } from 'node:path';
import { atomicWrite, prepareWrite, type PreparedWrite } from './atomic-write.js';
import { commitAll, prepareThenLook } from './commit-writes.js';
import { errnoCode, toStorageError } from './errors.js';
import { writeBackup } from './filter-backup.js';
import { EXIM_MAX_FILTER_BYTES, isSieveFilter, isTsievedFilter, renderFilter } from './filter-file.js';
import type { HeldLock } from './lock.js';
import { ACTIVE_FILE } from './layout.js';
import { encodeNameBytes } from './script-names.js';
import { sha256, type StoreFiles } from './store-files.js';
import { StorageError } from './types.js';

/** Name under which a foreign filter file is imported as a script. */
export const IMPORT_NAME = 'old-forward';
/** The store's own names for a preserved filter file. */
const PRESERVED_NAME = new RegExp(`^${IMPORT_NAME}(?:-[0-9]+)?$`);

export class FilterGuard {
  constructor(
    private readonly files: StoreFiles,
    readonly filterPath: string,
    private readonly filterMode: number,
  ) {}

  /** The same guard over other files (open-check.ts: a read-only view of these). */
  over(files: StoreFiles): FilterGuard {
    return new FilterGuard(files, this.filterPath, this.filterMode);
  }

  /**
   * The filter bytes for script `name` holding `content`: a preserved forward as it
   * was, anything else rendered as Sieve (filter-file.ts); refused when Exim would
   * defer delivery for the size.
   */
  async filterFor(name: string, content: Buffer): Promise<Buffer> {
    const filter = (await this.files.isVerbatim(name, content)) ? content : renderFilter(content);
    if (filter.length > EXIM_MAX_FILTER_BYTES) {
      throw new StorageError(
        'quota-maxsize',
        `the filter file would be ${filter.length} bytes; Exim reads at most ${EXIM_MAX_FILTER_BYTES}`,
      );
    }
    return filter;
  }

  /**
   * The filter file's temp copy, of bytes from filterFor() (known beforehand, so the
   * file's calls go out at once: prepareThenLook). Its directory is never created
   * here (on AFS, `~/.public` needs ACLs only the user or an administrator can set),
   * so a missing one is reported as a set-up problem, not as something that will pass.
   */
  async prepareFilter(filter: Buffer): Promise<PreparedWrite> {
    try {
      return await prepareWrite(this.files.ops, this.filterPath, filter, { mode: this.filterMode });
    } catch (err) {
      if (
        err instanceof StorageError &&
        errnoCode(err.cause) === 'ENOENT' &&
        !(await this.files.exists(dirname(this.filterPath)))
      ) {
        throw new StorageError(
          'not-set-up',
          `the filter file's directory ${dirname(this.filterPath)} does not exist`,
          err.cause,
        );
      }
      throw err;
    }
  }

  /**
   * Whether `nfc` is recorded active and the filter file is already exactly what
   * activating it writes: the same bytes, a regular file (not a link) with the
   * configured mode, owned by whoever owns the record (the user, as we wrote it).
   * `content` is the script as the caller has just read it under the lock (so the
   * script exists). The bytes first: when they differ nothing else needs a look.
   */
  async isInPlace(nfc: string, content: Buffer): Promise<boolean> {
    const [filter, expected] = await Promise.all([
      this.files.readOptional(this.filterPath),
      this.filterFor(nfc, content),
    ]);
    if (filter === undefined || !filter.equals(expected)) return false;
    const [active, filterStat, recordStat] = await Promise.all([
      this.files.recordedActive(),
      this.files.ops.lstat(this.filterPath).catch(() => undefined),
      this.files.ops.lstat(join(this.files.dir, ACTIVE_FILE)).catch(() => undefined),
    ]);
    return (
      active === nfc &&
      filterStat !== undefined &&
      recordStat !== undefined &&
      filterStat.isFile() &&
      (filterStat.mode & 0o7777) === this.filterMode &&
      filterStat.uid === recordStat.uid
    );
  }

  /**
   * Writes the filter for the script and records it active, the filter first.
   * `releaseLock`: the caller needs the lock no longer once it has succeeded (commitAll).
   */
  async activate(
    nfc: string,
    content: Buffer,
    lock: HeldLock,
    { releaseLock = false }: { readonly releaseLock?: boolean } = {},
  ): Promise<void> {
    const filter = await this.filterFor(nfc, content);
    const writes = await prepareThenLook(this.files.ops, lock, [
      () => this.prepareFilter(filter),
      () => prepareWrite(this.files.ops, join(this.files.dir, ACTIVE_FILE), encodeNameBytes(nfc), { mode: 0o600 }),
    ]);
    await this.commitWithFilter(writes, lock, { releaseLock });
    this.files.log.info({ script: nfc, filterPath: this.filterPath }, 'script activated');
  }

  /** Is `name` the store's own preserved copy of a filter file, with exactly these bytes? */
  async isPreservedCopy(name: string, content: Buffer): Promise<boolean> {
    if (!PRESERVED_NAME.test(name)) return false;
    const copy = await this.files.get(name);
    return copy.equals(content) && (await this.files.importedHashes()).includes(sha256(copy));
  }

  removeFilter(): Promise<void> {
    return this.files.unlinkIfPresent(this.filterPath, 'cannot remove the filter file');
  }

  /**
   * Keeps a filter file that tsieved did not write. Once preserved, its hash is
   * recorded so it is neither imported again nor kept from being replaced.
   */
  async preserveForeign(lock: HeldLock): Promise<void> {
    let bytes: Buffer | undefined;
    try {
      bytes = await this.files.readOptional(this.filterPath);
    } catch (err) {
      // Unreadable or not a file: never overwrite what we cannot preserve.
      throw toStorageError(err, `cannot read the existing filter file ${this.filterPath}`);
    }
    if (!bytes || isTsievedFilter(bytes)) return;
    if ((await this.files.importedHashes()).includes(sha256(bytes))) return;
    await lock.assertHeld();
    const backup = await writeBackup(this.files.ops, this.filterPath, bytes);
    const { name, sieve } = await this.importContent(bytes, lock);
    // Listed active: it is what Exim runs, and activating it writes the same bytes.
    await this.files.writeActive(name);
    this.files.log.info(
      { filterPath: this.filterPath, backup, script: name, sieve },
      'preserved an existing filter file',
    );
  }

  /**
   * Imports filter-file bytes as a script ("old-forward", or the first free
   * "old-forward-N"; an identical one is reused), records them as preserved and,
   * unless Exim reads them as Sieve, as a verbatim forward. Changes nothing else.
   */
  async importContent(bytes: Buffer, lock: HeldLock): Promise<{ name: string; sieve: boolean }> {
    const sieve = isSieveFilter(bytes);
    await lock.assertHeld();
    let name = IMPORT_NAME;
    for (let n = 2; ; n++) {
      const existing = await this.files.readOptional(this.files.scriptPath(name));
      if (!existing) {
        await this.files.writeScript(name, bytes);
        break;
      }
      if (existing.equals(bytes)) break;
      name = `${IMPORT_NAME}-${n}`;
    }
    const hash = sha256(bytes);
    if (!sieve) await this.files.setVerbatim(name, hash);
    await this.files.recordImported(hash);
    return { name, sieve };
  }

  /**
   * A filter file removed behind our back (the user deleted .forward in a shell)
   * means Exim runs no script, so none is listed active.
   */
  async forgetActiveWithoutFilter(lock: HeldLock): Promise<void> {
    // A filter that reads is there (preserveForeign has just read it); otherwise a
    // look decides (a link to nowhere is still something there).
    if ((await this.files.readOptional(this.filterPath).catch(() => undefined)) !== undefined) return;
    const active = await this.files.readActive();
    if (active === undefined || (await this.files.exists(this.filterPath))) return;
    await lock.assertHeld();
    await this.files.writeActive(undefined);
    this.files.log.info({ script: active, filterPath: this.filterPath }, 'filter file is gone; no script is active');
  }

  /**
   * Repairs what an interrupted change can leave behind (a crash, or a worker
   * killed between two renames), so the script listed active is the one Exim runs:
   * - the record names an existing script but the filter differs (PUTSCRIPT over the
   *   active script stopped between the script and the filter; SETACTIVE stopped
   *   between the filter and the record): the filter is written from it again,
   *   since the record is what the user was last told;
   * - no usable record, but the filter is ours (RENAMESCRIPT of the active script
   *   stopped before the record moved): the record points at the script the filter
   *   was written from, if one is.
   * "Ours" is a filter with tsieved's marker line, or a preserved forward written
   * back verbatim. A filter that is no script's (a hand edit below our marker
   * lines) is backed up before it is replaced: nothing is lost, not even that.
   */
  async reconcile(lock: HeldLock): Promise<void> {
    const filter = await this.files.readOptional(this.filterPath);
    if (!filter) return;
    if (!isTsievedFilter(filter) && ![...(await this.files.readVerbatim()).values()].includes(sha256(filter))) return;
    // The recorded script, if it is there: reading it says so.
    const active = await this.files.recordedActive();
    const content = active === undefined ? undefined : await this.files.readOptional(this.files.scriptPath(active));
    if (active !== undefined && content !== undefined) {
      const expected = await this.filterFor(active, content);
      if (expected.equals(filter)) return;
      const source = await this.scriptWrittenAs(filter);
      await lock.assertHeld();
      const backup = source === undefined ? await writeBackup(this.files.ops, this.filterPath, filter) : undefined;
      await atomicWrite(this.files.ops, this.filterPath, expected, { mode: this.filterMode });
      this.files.log.warn(
        { script: active, filterPath: this.filterPath, backup },
        'filter did not match the active script (an interrupted change, or an edit by hand): written again',
      );
      return;
    }
    const source = await this.scriptWrittenAs(filter);
    if (source !== undefined) {
      await lock.assertHeld();
      await this.files.writeActive(source);
      this.files.log.warn(
        { script: source },
        'filter runs a script not recorded as active (an interrupted change): recorded',
      );
      return;
    }
    this.files.log.warn(
      { filterPath: this.filterPath },
      'the filter was written by tsieved but matches none of the scripts',
    );
  }

  /** The script whose filter is exactly these bytes, if any. */
  private async scriptWrittenAs(filter: Buffer): Promise<string | undefined> {
    for (const script of await this.files.scan()) {
      if (script.name === undefined) continue;
      const content = await this.files.readOptional(script.path);
      if (content === undefined) continue;
      const expected = (await this.files.isVerbatim(script.name, content)) ? content : renderFilter(content);
      if (expected.equals(filter)) return script.name;
    }
    return undefined;
  }

  /**
   * Commits a change that includes the filter (written first). When a later file
   * cannot be renamed into place, the filter is put back as it was, so Exim keeps
   * running what the client was last told is active and the NO is true.
   * `releaseLock`: the caller needs the lock no longer once it has succeeded (commitAll).
   */
  async commitWithFilter(
    writes: readonly PreparedWrite[],
    lock: HeldLock,
    { releaseLock = false }: { readonly releaseLock?: boolean } = {},
  ): Promise<void> {
    if (writes[0]?.target !== this.filterPath) return commitAll(this.files.ops, writes, lock, { releaseLock });
    const previous = await this.files.readOptional(this.filterPath);
    await commitAll(this.files.ops, writes, lock, {
      releaseLock,
      undoFirst: async () => {
        try {
          if (previous !== undefined)
            await atomicWrite(this.files.ops, this.filterPath, previous, { mode: this.filterMode });
          else await this.removeFilter();
        } catch (err) {
          // The next open repairs it from the recorded active script.
          this.files.log.error({ err, filterPath: this.filterPath }, 'could not put the previous filter back');
        }
      },
    });
  }
}
