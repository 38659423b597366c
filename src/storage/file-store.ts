/**
 * One user's scripts in a directory, and the filter file Exim reads.
 *
 * Layout of `scriptsDir` (mode 0700):
 *   <encoded name>.sieve      a script, byte-exact (names encoded by script-names.ts)
 *   #<sha256>.sieve / .name   a script whose encoded name is too long, and its name
 *   .active                   the active script's name (UTF-8), absent = none
 *   .imported                 sha256 of foreign filter files already preserved
 *   .lock/                    the cross-process mutation lock (lock.ts)
 * Script files never start with '.', metadata always does, so they cannot clash.
 *
 * Every mutation runs under the user's lock, and the filter file is always rendered
 * from script content read or written under that lock, so two sessions (or two
 * servers on one shared directory) never leave a filter that does not match the
 * active script. Writes are atomic (atomic-write.ts); when a script and the filter
 * change together both temp files are fully written before either is renamed, so a
 * quota or disk-full failure leaves both old files in place. A change cut off
 * between its renames (a crash, a killed worker) is repaired by the next open:
 * the filter is brought back in line with the script recorded active.
 *
 * A filter file tsieved did not write is never lost (pysieved deleted it, see
 * reference/pysieved-hcoop.md 1.5): on open and before any change of the filter it is
 * copied to `<filter>.tsieved-backup-<UTC time>` (a new name, created O_EXCL) and
 * imported as the script "old-forward" ("old-forward-2", ... if taken); a Sieve one
 * (Exim's test) is listed active, anything else (Exim filter, address list) not.
 *
 * Must not know: the wire protocol, auth, sessions, config parsing.
 */
import { createHash } from 'node:crypto';
import { dirname, join, basename } from 'node:path';
import type { Logger } from '../log/logger.js';
import { StorageError, type ScriptInfo, type ScriptStore } from './types.js';
import { nodeFileOps, type FileOps } from './file-ops.js';
import { atomicWrite, prepareWrite, TEMP_MARKER, type PreparedWrite } from './atomic-write.js';
import { errnoCode, toStorageError } from './errors.js';
import { DEFAULT_LOCK_OPTIONS, withLock, type HeldLock, type LockOptions } from './lock.js';
import { EXIM_MAX_FILTER_BYTES, isSieveFilter, isTsievedFilter, renderFilter } from './filter-file.js';
import {
  decodeNameBytes,
  decodeScriptFileName,
  encodeNameBytes,
  encodeScriptFileName,
  nameFromSideFile,
  validateScriptName,
} from './script-names.js';
import { ACTIVE_FILE, IMPORTED_FILE, LOCK_DIR } from './layout.js';

export { ACTIVE_FILE, IMPORTED_FILE, LOCK_DIR } from './layout.js';
/** Name under which a foreign filter file is imported as a script. */
export const IMPORT_NAME = 'old-forward';
export const BACKUP_MARKER = '.tsieved-backup-';

export interface StoreLimits {
  readonly maxScripts: number;
  readonly maxScriptBytes: number;
  /** 0 = unlimited. */
  readonly maxTotalBytes: number;
}

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
  readonly lock?: Partial<LockOptions>;
  readonly log: Logger;
}

interface ScannedScript {
  /** Undefined for a file the store cannot map to a name: counted in quotas, never listed. */
  readonly name: string | undefined;
  readonly path: string;
  readonly size: number;
}

const TEMP_MAX_AGE_MS = 60 * 60 * 1000;

export class FileStore implements ScriptStore {
  private readonly ops: FileOps;
  private readonly dir: string;
  private readonly filterPath: string;
  private readonly limits: StoreLimits;
  private readonly filterMode: number;
  private readonly lockOptions: LockOptions;
  private readonly log: Logger;
  private readonly createBelow: string | undefined;

  constructor(options: FileStoreOptions) {
    this.ops = options.fileOps ?? nodeFileOps;
    this.dir = options.scriptsDir;
    this.filterPath = options.filterPath;
    this.limits = options.limits;
    this.filterMode = typeof options.filterMode === 'number' ? options.filterMode : parseInt(options.filterMode, 8);
    this.lockOptions = { ...DEFAULT_LOCK_OPTIONS, ...options.lock };
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
    await store.ensureScriptsDir();
    await store.removeStaleTemps();
    try {
      await store.locked(async (lock) => {
        await store.preserveForeignFilter(lock);
        await store.forgetActiveWithoutFilter(lock);
        await store.reconcileFilter(lock);
      });
    } catch (err) {
      store.log.warn({ err, filterPath: store.filterPath }, 'could not check the existing filter file');
    }
    return store;
  }

  // ---- ScriptStore ----

  async list(): Promise<ScriptInfo[]> {
    const scripts = await this.scan();
    const active = await this.readActive();
    return scripts.flatMap((s) => (s.name === undefined ? [] : [{ name: s.name, active: s.name === active }]));
  }

  async get(name: string): Promise<Buffer> {
    const path = this.scriptPath(this.checkName(name));
    try {
      return await this.ops.readFile(path);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new StorageError('nonexistent', `no script named ${JSON.stringify(name)}`);
      throw toStorageError(err, `cannot read script ${JSON.stringify(name)}`);
    }
  }

  async checkSpace(name: string, size: number): Promise<void> {
    this.checkSpaceIn(await this.scan(), this.checkName(name), size);
  }

  async put(name: string, content: Buffer): Promise<void> {
    const nfc = this.checkName(name);
    if (content.length > this.limits.maxScriptBytes) this.checkSpaceIn([], nfc, content.length);
    await this.locked(async (lock) => {
      this.checkSpaceIn(await this.scan(), nfc, content.length);
      const enc = encodeScriptFileName(nfc);
      if (enc.nameFile) await this.writeNameFile(enc.nameFile, nfc);
      let active = (await this.readActive()) === nfc;
      if (active) {
        // Preserving a foreign filter can change which script is active; ask again.
        await this.preserveForeignFilter(lock);
        active = (await this.readActive()) === nfc;
      }
      const writes: PreparedWrite[] = [];
      try {
        // The filter first: if the script's rename then fails, the filter is put
        // back, and the client's NO is true (the other order would leave a new
        // script that the next repair at open makes live).
        if (active) writes.push(await this.prepareFilter(content));
        writes.push(await this.prepare(join(this.dir, enc.file), content, 0o600));
      } catch (err) {
        await Promise.all(writes.map((w) => w.abort()));
        throw err;
      }
      await this.commitWithFilter(writes, lock);
      this.log.info({ script: nfc, bytes: content.length, active }, 'script stored');
    });
  }

  async delete(name: string): Promise<void> {
    const nfc = this.checkName(name);
    await this.locked(async (lock) => {
      // RFC 5804 section 2.10: deleting the active script is refused (ACTIVE).
      if ((await this.readActive()) === nfc) throw new StorageError('active', `script ${JSON.stringify(nfc)} is active`);
      const enc = encodeScriptFileName(nfc);
      await lock.assertHeld();
      try {
        await this.ops.unlink(join(this.dir, enc.file));
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') throw new StorageError('nonexistent', `no script named ${JSON.stringify(nfc)}`);
        throw toStorageError(err, `cannot delete script ${JSON.stringify(nfc)}`);
      }
      if (enc.nameFile) await this.ops.unlink(join(this.dir, enc.nameFile)).catch(() => undefined);
      this.log.info({ script: nfc }, 'script deleted');
    });
  }

  async rename(oldName: string, newName: string): Promise<void> {
    const from = this.checkName(oldName);
    const to = this.checkName(newName);
    await this.locked(async (lock) => {
      const fromEnc = encodeScriptFileName(from);
      const toEnc = encodeScriptFileName(to);
      const fromPath = join(this.dir, fromEnc.file);
      const toPath = join(this.dir, toEnc.file);
      if (!(await this.exists(fromPath))) throw new StorageError('nonexistent', `no script named ${JSON.stringify(from)}`);
      // Section 2.11.1: the new name must not exist (ALREADYEXISTS).
      if (await this.exists(toPath)) throw new StorageError('already-exists', `a script named ${JSON.stringify(to)} exists`);
      const wasActive = (await this.readActive()) === from;
      if (toEnc.nameFile) await this.writeNameFile(toEnc.nameFile, to);
      await lock.assertHeld();
      try {
        await this.ops.rename(fromPath, toPath);
      } catch (err) {
        throw toStorageError(err, `cannot rename script ${JSON.stringify(from)}`);
      }
      if (wasActive) {
        // The filter's content is unchanged; only the recorded name follows.
        try {
          await this.writeActive(to);
        } catch (err) {
          await this.ops.rename(toPath, fromPath).catch(() => undefined);
          throw err;
        }
      }
      if (fromEnc.nameFile) await this.ops.unlink(join(this.dir, fromEnc.nameFile)).catch(() => undefined);
      await this.ops.syncDir(this.dir).catch(() => undefined);
      this.log.info({ from, to, active: wasActive }, 'script renamed');
    });
  }

  async setActive(name: string): Promise<void> {
    if (name === '') {
      await this.locked(async (lock) => {
        await this.preserveForeignFilter(lock);
        await lock.assertHeld();
        // No filter file: Exim's router declines and mail is delivered normally.
        await this.unlinkIfPresent(this.filterPath, 'cannot remove the filter file');
        await this.unlinkIfPresent(join(this.dir, ACTIVE_FILE), 'cannot clear the active script');
        this.log.info('filter deactivated');
      });
      return;
    }
    const nfc = this.checkName(name);
    await this.locked(async (lock) => {
      const content = await this.get(nfc); // read under the lock: the filter matches it
      await this.preserveForeignFilter(lock);
      const writes: PreparedWrite[] = [];
      try {
        writes.push(await this.prepareFilter(content));
        writes.push(await this.prepare(join(this.dir, ACTIVE_FILE), Buffer.from(nfc, 'utf8'), 0o600));
      } catch (err) {
        await Promise.all(writes.map((w) => w.abort()));
        throw err;
      }
      await this.commitWithFilter(writes, lock);
      this.log.info({ script: nfc, filterPath: this.filterPath }, 'script activated');
    });
  }

  async close(): Promise<void> {
    // Nothing held between calls: locks live only for the duration of a mutation.
  }

  // ---- helpers ----

  private checkName(name: string): string {
    const check = validateScriptName(name);
    if (!check.ok) throw new StorageError('bad-name', check.reason);
    return check.name;
  }

  /** The filter bytes, refused when Exim would defer delivery for their size. */
  private filterFor(content: Buffer): Buffer {
    const filter = renderFilter(content);
    if (filter.length > EXIM_MAX_FILTER_BYTES) {
      throw new StorageError('quota-maxsize', `the filter file would be ${filter.length} bytes; Exim reads at most ${EXIM_MAX_FILTER_BYTES}`);
    }
    return filter;
  }

  private scriptPath(nfc: string): string {
    return join(this.dir, encodeScriptFileName(nfc).file);
  }

  private locked<T>(fn: (lock: HeldLock) => Promise<T>): Promise<T> {
    return withLock(this.ops, join(this.dir, LOCK_DIR), this.lockOptions, fn);
  }

  private prepare(target: string, data: Uint8Array, mode: number): Promise<PreparedWrite> {
    return prepareWrite(this.ops, target, data, { mode });
  }

  /**
   * The filter file's temp copy. Its directory is never created here (on AFS,
   * `~/.public` needs ACLs only the user or an administrator can set), so a missing
   * one is reported as a set-up problem, not as something that will pass.
   */
  private async prepareFilter(content: Buffer): Promise<PreparedWrite> {
    try {
      return await this.prepare(this.filterPath, this.filterFor(content), this.filterMode);
    } catch (err) {
      if (err instanceof StorageError && errnoCode(err.cause) === 'ENOENT' && !(await this.exists(dirname(this.filterPath)))) {
        throw new StorageError('not-set-up', `the filter file's directory ${dirname(this.filterPath)} does not exist`, err.cause);
      }
      throw err;
    }
  }

  private async exists(path: string): Promise<boolean> {
    try {
      await this.ops.lstat(path);
      return true;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return false;
      throw toStorageError(err, `cannot look at ${path}`);
    }
  }

  private async unlinkIfPresent(path: string, what: string): Promise<void> {
    try {
      await this.ops.unlink(path);
      await this.ops.syncDir(dirname(path)).catch(() => undefined);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw toStorageError(err, what);
    }
  }

  private async scan(): Promise<ScannedScript[]> {
    let entries: string[];
    try {
      entries = await this.ops.readdir(this.dir);
    } catch (err) {
      throw toStorageError(err, `cannot list ${this.dir}`);
    }
    const out: ScannedScript[] = [];
    const unmapped: string[] = [];
    for (const entry of entries) {
      const decoded = decodeScriptFileName(entry);
      if (decoded.kind === 'metadata') continue;
      const path = join(this.dir, entry);
      let name: string | undefined;
      if (decoded.kind === 'script') name = decoded.name;
      else if (decoded.kind === 'hashed') name = nameFromSideFile(entry, await this.readOptional(join(this.dir, decoded.nameFile)));
      try {
        const st = await this.ops.stat(path);
        if (!st.isFile()) continue;
        out.push({ name, path, size: st.size });
        if (name === undefined) unmapped.push(entry);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw toStorageError(err, `cannot stat ${path}`);
      }
    }
    if (unmapped.length > 0) {
      this.log.warn({ dir: this.dir, count: unmapped.length, files: unmapped.slice(0, 10) }, 'files in the scripts directory that are no script are counted against the quotas');
    }
    return out.sort((a, b) => ((a.name ?? '') < (b.name ?? '') ? -1 : (a.name ?? '') > (b.name ?? '') ? 1 : 0));
  }

  private checkSpaceIn(scripts: readonly ScannedScript[], nfc: string, size: number): void {
    if (size > this.limits.maxScriptBytes) {
      throw new StorageError('quota-maxsize', `script is ${size} bytes, at most ${this.limits.maxScriptBytes} allowed`);
    }
    // Replacing an existing script does not count as a new one.
    const others = scripts.filter((s) => s.name === undefined || s.name !== nfc);
    if (others.length === scripts.length && scripts.length >= this.limits.maxScripts) {
      throw new StorageError('quota-maxscripts', `at most ${this.limits.maxScripts} scripts allowed`);
    }
    if (this.limits.maxTotalBytes > 0) {
      const total = others.reduce((sum, s) => sum + s.size, 0) + size;
      if (total > this.limits.maxTotalBytes) {
        throw new StorageError('quota', `scripts would take ${total} bytes, at most ${this.limits.maxTotalBytes} allowed`);
      }
    }
  }

  private async readOptional(path: string): Promise<Buffer | undefined> {
    try {
      return await this.ops.readFile(path);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw toStorageError(err, `cannot read ${path}`);
    }
  }

  /** The recorded active name, if that script still exists. */
  private async readActive(): Promise<string | undefined> {
    const raw = await this.readOptional(join(this.dir, ACTIVE_FILE));
    if (!raw) return undefined;
    const check = validateScriptName(decodeNameBytes(raw) ?? '');
    if (!check.ok) return undefined;
    return (await this.exists(this.scriptPath(check.name))) ? check.name : undefined;
  }

  private writeActive(name: string | undefined): Promise<void> {
    if (name === undefined) return this.unlinkIfPresent(join(this.dir, ACTIVE_FILE), 'cannot clear the active script');
    return atomicWrite(this.ops, join(this.dir, ACTIVE_FILE), encodeNameBytes(name), { mode: 0o600 });
  }

  private async writeNameFile(nameFile: string, name: string): Promise<void> {
    const path = join(this.dir, nameFile);
    if (await this.exists(path)) return;
    await atomicWrite(this.ops, path, encodeNameBytes(name), { mode: 0o600 });
  }

  private async ensureScriptsDir(): Promise<void> {
    try {
      const st = await this.ops.stat(this.dir);
      if (!st.isDirectory()) throw new StorageError('io', `${this.dir} is not a directory`);
      return;
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw toStorageError(err, `cannot use ${this.dir}`);
    }
    // Walk up to the nearest existing ancestor, creating no more than allowed.
    const missing: string[] = [];
    let cur = this.dir;
    for (;;) {
      missing.unshift(cur);
      const parent = dirname(cur);
      if (parent === cur) break;
      if (await this.exists(parent)) break;
      cur = parent;
    }
    const below = this.createBelow?.replace(/\/+$/, '');
    const allowed = missing.length === 1 || (below !== undefined && missing.every((d) => d.startsWith(below + '/')));
    if (!allowed) {
      throw new StorageError('trylater', `${dirname(missing[0]!)}/ is missing; not creating ${missing[0]}`);
    }
    for (const d of missing) {
      try {
        await this.ops.mkdir(d, 0o700);
      } catch (err) {
        if (errnoCode(err) === 'EEXIST') continue; // another session was quicker
        throw toStorageError(err, `cannot create ${d}`);
      }
      this.log.info({ dir: d }, 'created scripts directory');
    }
  }

  /** Temp files left by a crashed server (ours carry TEMP_MARKER); best effort. */
  private async removeStaleTemps(): Promise<void> {
    for (const dir of [this.dir, dirname(this.filterPath)]) {
      let entries: string[];
      try {
        entries = await this.ops.readdir(dir);
      } catch {
        continue;
      }
      for (const e of entries) {
        if (!e.startsWith('.') || !e.includes(TEMP_MARKER)) continue;
        const p = join(dir, e);
        try {
          const st = await this.ops.lstat(p);
          if (st.isFile() && Date.now() - st.mtimeMs > TEMP_MAX_AGE_MS) await this.ops.unlink(p);
        } catch {
          /* someone else's, or gone */
        }
      }
    }
  }

  /**
   * Keeps a filter file that tsieved did not write (must run under the lock). Once
   * preserved, its hash is recorded so it is neither imported again nor kept from
   * being replaced.
   */
  private async preserveForeignFilter(lock: HeldLock): Promise<void> {
    let bytes: Buffer | undefined;
    try {
      bytes = await this.readOptional(this.filterPath);
    } catch (err) {
      // Unreadable or not a file: never overwrite what we cannot preserve.
      throw toStorageError(err, `cannot read the existing filter file ${this.filterPath}`);
    }
    if (!bytes || isTsievedFilter(bytes)) return;
    const hash = createHash('sha256').update(bytes).digest('hex');
    const importedPath = join(this.dir, IMPORTED_FILE);
    const recorded = ((await this.readOptional(importedPath))?.toString('utf8') ?? '').split('\n').filter(Boolean);
    if (recorded.includes(hash)) return;

    await lock.assertHeld();
    const backup = await this.writeBackup(bytes);
    const sieve = isSieveFilter(bytes);
    const name = await this.importName(bytes);
    if (name.fresh) {
      const enc = encodeScriptFileName(name.name);
      if (enc.nameFile) await this.writeNameFile(enc.nameFile, name.name);
      await atomicWrite(this.ops, join(this.dir, enc.file), bytes, { mode: 0o600 });
    }
    // Listed active exactly when Exim runs it as Sieve; a forward list or Exim
    // filter means no Sieve script is in effect.
    await this.writeActive(sieve ? name.name : undefined);
    await atomicWrite(this.ops, importedPath, Buffer.from([...recorded, hash].join('\n') + '\n', 'utf8'), { mode: 0o600 });
    this.log.info({ filterPath: this.filterPath, backup, script: name.name, sieve }, 'preserved an existing filter file');
  }

  /**
   * A filter file removed behind our back (the user deleted .forward in a shell)
   * means Exim runs no script, so none is listed active (must run under the lock).
   */
  private async forgetActiveWithoutFilter(lock: HeldLock): Promise<void> {
    const active = await this.readActive();
    if (active === undefined || (await this.exists(this.filterPath))) return;
    await lock.assertHeld();
    await this.writeActive(undefined);
    this.log.info({ script: active, filterPath: this.filterPath }, 'filter file is gone; no script is active');
  }

  /**
   * Repairs what an interrupted change can leave behind (a crash, or a worker
   * killed between two renames; must run under the lock), so the script listed
   * active is the one Exim runs:
   * - the record names an existing script but the filter differs (PUTSCRIPT over the
   *   active script stopped between the script and the filter; SETACTIVE stopped
   *   between the filter and the record): the filter is rendered from it again,
   *   since the record is what the user was last told;
   * - no usable record, but the filter is ours (RENAMESCRIPT of the active script
   *   stopped before the record moved): the record points at the script the filter
   *   was rendered from, if one is.
   * A filter that is no script's rendering (a hand edit below our marker lines) is
   * backed up before it is replaced: nothing is lost, not even that.
   */
  private async reconcileFilter(lock: HeldLock): Promise<void> {
    const filter = await this.readOptional(this.filterPath);
    if (!filter || !isTsievedFilter(filter)) return;
    const active = await this.readActive();
    if (active !== undefined) {
      const expected = this.filterFor(await this.get(active));
      if (expected.equals(filter)) return;
      const source = await this.scriptRenderedAs(filter);
      await lock.assertHeld();
      const backup = source === undefined ? await this.writeBackup(filter) : undefined;
      await atomicWrite(this.ops, this.filterPath, expected, { mode: this.filterMode });
      this.log.warn(
        { script: active, filterPath: this.filterPath, backup },
        'filter did not match the active script (an interrupted change, or an edit by hand): rendered again',
      );
      return;
    }
    const source = await this.scriptRenderedAs(filter);
    if (source !== undefined) {
      await lock.assertHeld();
      await this.writeActive(source);
      this.log.warn({ script: source }, 'filter runs a script not recorded as active (an interrupted change): recorded');
      return;
    }
    this.log.warn({ filterPath: this.filterPath }, 'the filter was written by tsieved but matches none of the scripts');
  }

  /** The script whose filter is exactly these bytes, if any. */
  private async scriptRenderedAs(filter: Buffer): Promise<string | undefined> {
    for (const script of await this.scan()) {
      if (script.name === undefined) continue;
      const content = await this.readOptional(script.path);
      if (content !== undefined && renderFilter(content).equals(filter)) return script.name;
    }
    return undefined;
  }

  /**
   * Commits a change that includes the filter (written first). When a later file
   * cannot be renamed into place, the filter is put back as it was, so Exim keeps
   * running what the client was last told is active and the NO is true.
   */
  private async commitWithFilter(writes: readonly PreparedWrite[], lock: HeldLock): Promise<void> {
    if (writes[0]?.target !== this.filterPath) return commitAll(writes, lock);
    const previous = await this.readOptional(this.filterPath);
    await commitAll(writes, lock, async () => {
      try {
        if (previous !== undefined) await atomicWrite(this.ops, this.filterPath, previous, { mode: this.filterMode });
        else await this.unlinkIfPresent(this.filterPath, 'cannot remove the filter file');
      } catch (err) {
        // The next open repairs it from the recorded active script.
        this.log.error({ err, filterPath: this.filterPath }, 'could not put the previous filter back');
      }
    });
  }

  /** "old-forward", or the first free "old-forward-N"; an identical one is reused. */
  private async importName(bytes: Buffer): Promise<{ name: string; fresh: boolean }> {
    for (let n = 1; ; n++) {
      const name = n === 1 ? IMPORT_NAME : `${IMPORT_NAME}-${n}`;
      const existing = await this.readOptional(this.scriptPath(name));
      if (!existing) return { name, fresh: true };
      if (existing.equals(bytes)) return { name, fresh: false };
    }
  }

  /** Copies the foreign file beside itself under a name that did not exist (O_EXCL). */
  private async writeBackup(bytes: Buffer): Promise<string> {
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    const base = join(dirname(this.filterPath), basename(this.filterPath) + BACKUP_MARKER + stamp);
    for (let n = 1; n < 1000; n++) {
      const path = n === 1 ? base : `${base}-${n}`;
      let file;
      try {
        file = await this.ops.createExclusive(path, 0o600);
      } catch (err) {
        if (errnoCode(err) === 'EEXIST') continue;
        throw toStorageError(err, `cannot back up ${this.filterPath}`);
      }
      try {
        await file.writeAll(bytes);
        await file.sync();
        const f = file;
        file = undefined;
        await f.close();
      } catch (err) {
        if (file) await file.close().catch(() => undefined);
        await this.ops.unlink(path).catch(() => undefined);
        throw toStorageError(err, `cannot back up ${this.filterPath}`);
      }
      return path;
    }
    throw new StorageError('io', `cannot find a free backup name for ${this.filterPath}`);
  }
}

/**
 * Renames prepared files into place in order; on a failure the rest are removed,
 * and `undoFirst` runs when the first one was already in place. A session that
 * stalled long enough for its lock to be broken as stale changes nothing: another
 * session may be working on these files now.
 */
async function commitAll(writes: readonly PreparedWrite[], lock: HeldLock, undoFirst?: () => Promise<void>): Promise<void> {
  try {
    await lock.assertHeld();
  } catch (err) {
    await Promise.all(writes.map((w) => w.abort()));
    throw err;
  }
  for (let i = 0; i < writes.length; i++) {
    try {
      await writes[i]!.commit();
    } catch (err) {
      await Promise.all(writes.slice(i + 1).map((w) => w.abort()));
      if (i > 0) await undoFirst?.();
      throw err;
    }
  }
}
