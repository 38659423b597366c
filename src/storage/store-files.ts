/**
 * The files of one user's scripts directory, one small operation each: which
 * scripts there are (decoding their file names), reading them, the record of the
 * active one, the record of preserved foreign filter files, per-user metadata
 * (layout.ts), the limits, and creating the directory itself.
 *
 * Layout of `scriptsDir` (mode 0700):
 *   <encoded name>.sieve      a script, byte-exact (names encoded by script-names.ts)
 *   #<sha256>.sieve / .name   a script whose encoded name is too long, and its name
 *   .active                   the active script's name (UTF-8), absent = none
 *   .imported                 sha256 of foreign filter files already preserved
 *   .verbatim                 `<sha256> <name>` of preserved non-Sieve forwards (see below)
 *   .migrated                 metadata of `tsieved migrate` (META_FILES)
 *   .lock/                    the cross-process mutation lock (lock.ts)
 * Script files never start with '.', metadata always does, so they cannot clash.
 *
 * Nothing here takes the lock: the callers (file-store.ts, filter-guard.ts) hold it
 * around every change.
 *
 * Must not know: the filter file, the wire protocol, auth, sessions.
 */
import { createHash } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../log/logger.js';
import { atomicWrite } from './atomic-write.js';
import { errnoCode, toStorageError } from './errors.js';
import type { FileOps } from './file-ops.js';
import type { HeldLock } from './lock.js';
import { ACTIVE_FILE, IMPORTED_FILE, META_FILES, VERBATIM_FILE, type MetaKey } from './layout.js';
import {
  decodeNameBytes,
  decodeScriptFileName,
  encodeNameBytes,
  encodeScriptFileName,
  nameFromSideFile,
  validateScriptName,
} from './script-names.js';
import { StorageError } from './types.js';

export interface StoreLimits {
  readonly maxScripts: number;
  readonly maxScriptBytes: number;
  /** 0 = unlimited. */
  readonly maxTotalBytes: number;
}

export interface ScannedScript {
  /** Undefined for a file the store cannot map to a name: counted in quotas, never listed. */
  readonly name: string | undefined;
  readonly path: string;
  readonly size: number;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The name a `.active` file's bytes record, if they are a valid one. */
export function activeNameIn(raw: Uint8Array): string | undefined {
  const check = validateScriptName(decodeNameBytes(raw) ?? '');
  return check.ok ? check.name : undefined;
}

export class StoreFiles {
  constructor(
    readonly ops: FileOps,
    readonly dir: string,
    readonly limits: StoreLimits,
    readonly log: Logger,
  ) {}

  /** The same files through other FileOps (file-store.ts: the reads of one lock hold). */
  over(ops: FileOps): StoreFiles {
    return new StoreFiles(ops, this.dir, this.limits, this.log);
  }

  checkName(name: string): string {
    const check = validateScriptName(name);
    if (!check.ok) throw new StorageError('bad-name', check.reason);
    return check.name;
  }

  scriptPath(nfc: string): string {
    return join(this.dir, encodeScriptFileName(nfc).file);
  }

  async get(nfc: string): Promise<Buffer> {
    try {
      return await this.ops.readFile(this.scriptPath(nfc));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new StorageError('nonexistent', `no script named ${JSON.stringify(nfc)}`);
      throw toStorageError(err, `cannot read script ${JSON.stringify(nfc)}`);
    }
  }

  async exists(path: string): Promise<boolean> {
    try {
      await this.ops.lstat(path);
      return true;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return false;
      throw toStorageError(err, `cannot look at ${path}`);
    }
  }

  async readOptional(path: string): Promise<Buffer | undefined> {
    try {
      return await this.ops.readFile(path);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw toStorageError(err, `cannot read ${path}`);
    }
  }

  async unlinkIfPresent(path: string, what: string): Promise<void> {
    try {
      await this.ops.unlink(path);
      await this.ops.syncDir(dirname(path));
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw toStorageError(err, what);
    }
  }

  /** Every script, sorted by name. */
  async scan(): Promise<ScannedScript[]> {
    let entries: string[];
    try {
      entries = await this.ops.readdir(this.dir);
    } catch (err) {
      throw toStorageError(err, `cannot list ${this.dir}`);
    }
    // Every script's stat (and side file) asked for at once: over a file broker one
    // round trip, not one per script.
    const found = await Promise.all(
      entries.map(async (entry): Promise<ScannedScript | undefined> => {
        const decoded = decodeScriptFileName(entry);
        if (decoded.kind === 'metadata') return undefined;
        const path = join(this.dir, entry);
        const [name, st] = await Promise.all([
          decoded.kind === 'script'
            ? decoded.name
            : decoded.kind === 'hashed'
              ? this.readOptional(join(this.dir, decoded.nameFile)).then((raw) => nameFromSideFile(entry, raw))
              : undefined,
          this.ops.stat(path).catch((err: unknown) => {
            if (errnoCode(err) !== 'ENOENT') throw toStorageError(err, `cannot stat ${path}`);
            return undefined; // gone meanwhile
          }),
        ]);
        return st?.isFile() ? { name, path, size: st.size } : undefined;
      }),
    );
    const out = found.filter((s): s is ScannedScript => s !== undefined);
    const unmapped = out.filter((s) => s.name === undefined).map((s) => basename(s.path));
    if (unmapped.length > 0) {
      this.log.warn(
        { dir: this.dir, count: unmapped.length, files: unmapped.slice(0, 10) },
        'files in the scripts directory that are no script are counted against the quotas',
      );
    }
    return out.sort((a, b) => ((a.name ?? '') < (b.name ?? '') ? -1 : (a.name ?? '') > (b.name ?? '') ? 1 : 0));
  }

  /**
   * Whether script `nfc` exists, and the quota checks for storing it (checkSpaceIn),
   * for PUTSCRIPT. The listing and a stat of that one script, asked for together
   * (one round trip over ordered FileOps), decide both when no other entry's stat can
   * change the answer: no total quota, and fewer other entries than scripts allowed
   * (each is at most one script). Otherwise every script is looked at (scan).
   */
  async lookForPut(nfc: string): Promise<{ readonly exists: boolean; readonly checkSpace: (size: number) => void }> {
    const enc = encodeScriptFileName(nfc);
    if (this.limits.maxTotalBytes === 0 && !enc.nameFile) {
      const path = join(this.dir, enc.file);
      const target = this.ops.stat(path).then(
        (st) => st.isFile(),
        (err: unknown) => {
          if (errnoCode(err) === 'ENOENT') return false;
          throw toStorageError(err, `cannot stat ${path}`);
        },
      );
      target.catch(() => undefined); // asked for with the listing; awaited only when it decides
      let entries: string[];
      try {
        entries = await this.ops.readdir(this.dir);
      } catch (err) {
        throw toStorageError(err, `cannot list ${this.dir}`);
      }
      const others = entries.filter((e) => e !== enc.file && decodeScriptFileName(e).kind !== 'metadata');
      if (others.length < this.limits.maxScripts) {
        const exists = await target;
        // No count to exceed and no total: the size alone.
        return { exists, checkSpace: (size) => this.checkSpaceIn([], nfc, size) };
      }
    }
    const scripts = await this.scan();
    return {
      exists: scripts.some((s) => s.name === nfc),
      checkSpace: (size) => this.checkSpaceIn(scripts, nfc, size),
    };
  }

  checkSpaceIn(scripts: readonly ScannedScript[], nfc: string, size: number): void {
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
        throw new StorageError(
          'quota',
          `scripts would take ${total} bytes, at most ${this.limits.maxTotalBytes} allowed`,
        );
      }
    }
  }

  /** The name `.active` records, if a valid one; whether that script exists is the caller's to know. */
  async recordedActive(): Promise<string | undefined> {
    const raw = await this.readOptional(join(this.dir, ACTIVE_FILE));
    return raw && activeNameIn(raw);
  }

  /** The recorded active name, if that script still exists. */
  async readActive(): Promise<string | undefined> {
    const name = await this.recordedActive();
    if (name === undefined) return undefined;
    return (await this.exists(this.scriptPath(name))) ? name : undefined;
  }

  writeActive(name: string | undefined): Promise<void> {
    if (name === undefined) return this.unlinkIfPresent(join(this.dir, ACTIVE_FILE), 'cannot clear the active script');
    return atomicWrite(this.ops, join(this.dir, ACTIVE_FILE), encodeNameBytes(name), { mode: 0o600 });
  }

  async writeNameFile(nameFile: string, name: string): Promise<void> {
    const path = join(this.dir, nameFile);
    if (await this.exists(path)) return;
    await atomicWrite(this.ops, path, encodeNameBytes(name), { mode: 0o600 });
  }

  /**
   * Removes a script, its name file and its preserved-forward entry (under the lock).
   * `releaseLock`: the caller needs the lock no longer; when the script's unlink is
   * the last change, the lock's release goes with it (HeldLock.releaseAfter: made
   * only if the unlink succeeded).
   */
  async removeScript(nfc: string, lock: HeldLock, { releaseLock = false } = {}): Promise<void> {
    const enc = encodeScriptFileName(nfc);
    // Whether an entry must go too, known before the unlink (it decides what is last).
    const preserved = (await this.readVerbatim().catch(() => undefined))?.has(nfc) ?? true;
    await lock.assertHeld();
    const unlink = (): Promise<void> => this.ops.unlink(join(this.dir, enc.file));
    try {
      await (releaseLock && !enc.nameFile && !preserved ? lock.releaseAfter(unlink) : unlink());
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new StorageError('nonexistent', `no script named ${JSON.stringify(nfc)}`);
      throw toStorageError(err, `cannot delete script ${JSON.stringify(nfc)}`);
    }
    if (enc.nameFile) await this.ops.unlink(join(this.dir, enc.nameFile)).catch(() => undefined);
    if (preserved) await this.setVerbatim(nfc, undefined).catch(() => undefined);
  }

  /** Writes a script file (and its name file) directly: for imports under the lock. */
  async writeScript(nfc: string, content: Buffer): Promise<void> {
    const enc = encodeScriptFileName(nfc);
    if (enc.nameFile) await this.writeNameFile(enc.nameFile, nfc);
    await atomicWrite(this.ops, join(this.dir, enc.file), content, { mode: 0o600 });
  }

  /** Hashes of the foreign filter files preserved so far. */
  async importedHashes(): Promise<string[]> {
    const raw = await this.readOptional(join(this.dir, IMPORTED_FILE));
    return (raw?.toString('utf8') ?? '').split('\n').filter(Boolean);
  }

  async recordImported(hash: string): Promise<void> {
    const recorded = await this.importedHashes();
    if (recorded.includes(hash)) return;
    await atomicWrite(
      this.ops,
      join(this.dir, IMPORTED_FILE),
      Buffer.from([...recorded, hash].join('\n') + '\n', 'utf8'),
      { mode: 0o600 },
    );
  }

  /**
   * Scripts that are preserved non-Sieve filter files (an Exim filter, an address
   * list), by name, with the sha256 of the bytes preserved. Such a script is
   * activated byte for byte (filter-guard.ts); once its bytes change (a PUTSCRIPT,
   * which validates them as Sieve) the hash no longer matches and it is Sieve like
   * any other.
   */
  async readVerbatim(): Promise<Map<string, string>> {
    const raw = await this.readOptional(join(this.dir, VERBATIM_FILE));
    const out = new Map<string, string>();
    for (const line of (raw?.toString('utf8') ?? '').split('\n')) {
      const m = /^([0-9a-f]{64}) (.+)$/.exec(line);
      if (m) out.set(m[2], m[1]);
    }
    return out;
  }

  async isVerbatim(nfc: string, content: Buffer): Promise<boolean> {
    return (await this.readVerbatim()).get(nfc) === sha256(content);
  }

  /** Records (hash) or forgets (undefined) `nfc` as a preserved forward; `renamed` moves an entry. */
  async setVerbatim(nfc: string, hash: string | undefined, renamed?: string): Promise<void> {
    const map = await this.readVerbatim();
    const before = map.get(nfc);
    if (renamed !== undefined) {
      if (before === undefined) return;
      map.delete(nfc);
      map.set(renamed, before);
    } else if (hash === undefined) {
      if (!map.delete(nfc)) return;
    } else {
      if (before === hash) return;
      map.set(nfc, hash);
    }
    const text = [...map].map(([name, h]) => `${h} ${name}\n`).join('');
    await atomicWrite(this.ops, join(this.dir, VERBATIM_FILE), Buffer.from(text, 'utf8'), { mode: 0o600 });
  }

  async readMeta(key: MetaKey): Promise<Buffer | undefined> {
    return this.readOptional(join(this.dir, META_FILES[key]));
  }

  writeMeta(key: MetaKey, content: Buffer): Promise<void> {
    return atomicWrite(this.ops, join(this.dir, META_FILES[key]), content, { mode: 0o600 });
  }

  /**
   * Creates the scripts directory if missing, and the missing directories between it
   * and `createBelow` (0700); never `createBelow` itself or anything outside it.
   * Returns its entries: listing it is how it is found to be a directory, and the
   * caller looks through them for temp files a crashed server left.
   */
  async ensureDir(createBelow: string | undefined): Promise<string[]> {
    try {
      return await this.ops.readdir(this.dir);
    } catch (err) {
      if (errnoCode(err) === 'ENOTDIR') throw new StorageError('io', `${this.dir} is not a directory`);
      if (errnoCode(err) !== 'ENOENT') throw toStorageError(err, `cannot use ${this.dir}`);
    }
    // Usually only the directory itself is missing (a user's first login): made at
    // once, one round trip over a file broker instead of a look at the parent first.
    try {
      await this.ops.mkdir(this.dir, 0o700);
      this.log.info({ dir: this.dir }, 'created scripts directory');
      return [];
    } catch (err) {
      // Another session was quicker: list what it made.
      if (errnoCode(err) === 'EEXIST')
        return this.ops.readdir(this.dir).catch((e) => Promise.reject(toStorageError(e, `cannot use ${this.dir}`)));
      if (errnoCode(err) !== 'ENOENT') throw toStorageError(err, `cannot create ${this.dir}`);
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
    const below = createBelow?.replace(/\/+$/, '');
    const allowed = missing.length === 1 || (below !== undefined && missing.every((d) => d.startsWith(below + '/')));
    if (!allowed) {
      throw new StorageError('trylater', `${dirname(missing[0])}/ is missing; not creating ${missing[0]}`);
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
    return [];
  }
}
