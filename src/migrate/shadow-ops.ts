/**
 * FileOps for a dry run that lets the store change files in memory only: reads go
 * to the files on disk (through the dry run's read-only FileOps) unless a change
 * made here covers them; writes, renames, removals and new directories live in
 * this overlay and are forgotten with it. The dry run opens the user's store over
 * it, so the store's own open-time checks (preserving a foreign filter, repairing
 * an interrupted change, removing a crashed writer's temp files: storage/
 * file-store.ts) run exactly as a real open would run them, and the dry run then
 * sees the store as the real run will, without anything changing on disk.
 *
 * It records which paths on disk the changes touched: `written` (a file put in
 * place) and `removed` (a file that existed and is gone).
 *
 * Must not know: what the files mean, the store, the report.
 */
import { dirname, join } from 'node:path';
import type { FileOps, FileStat, WritableFile } from '../storage/file-ops.js';

function fsError(code: string, op: string, path: string): Error {
  return Object.assign(new Error(`${code}: ${op} ${path} (dry run)`), { code, path });
}

interface MemoryFile {
  bytes: Buffer;
  mode: number;
  readonly mtimeMs: number;
}

function memoryStat(kind: 'file' | 'dir', size: number, mode: number, mtimeMs: number): FileStat {
  return {
    size,
    mtimeMs,
    uid: process.getuid?.() ?? 0,
    mode,
    isFile: () => kind === 'file',
    isDirectory: () => kind === 'dir',
    isSymbolicLink: () => false,
  };
}

export class ShadowOps implements FileOps {
  private readonly files = new Map<string, MemoryFile>();
  /** Directories made here: their contents are only what is made here. */
  private readonly dirs = new Map<string, number>();
  /** Paths on disk removed here (and what lay below them). */
  private readonly gone = new Set<string>();
  /** Paths a change put a file at. */
  readonly written = new Set<string>();
  /** Paths on disk whose file a change removed. */
  readonly removed = new Set<string>();

  constructor(private readonly base: FileOps) {}

  /** Whether the disk may answer for `path`: not removed here, not inside a directory made or removed here. */
  private onDisk(path: string): boolean {
    if (this.gone.has(path)) return false;
    for (let p = dirname(path); p !== dirname(p); p = dirname(p)) {
      if (this.dirs.has(p) || this.gone.has(p)) return false;
    }
    return true;
  }

  private async exists(path: string): Promise<boolean> {
    if (this.files.has(path) || this.dirs.has(path)) return true;
    if (!this.onDisk(path)) return false;
    return this.base.lstat(path).then(
      () => true,
      () => false,
    );
  }

  private async needParent(op: string, path: string): Promise<void> {
    if (!(await this.exists(dirname(path)))) throw fsError('ENOENT', op, path);
  }

  async createExclusive(path: string, mode: number): Promise<WritableFile> {
    if (await this.exists(path)) throw fsError('EEXIST', 'open', path);
    await this.needParent('open', path);
    const file: MemoryFile = { bytes: Buffer.alloc(0), mode, mtimeMs: Date.now() };
    this.files.set(path, file);
    this.written.add(path);
    return {
      writeAll: (data) => {
        file.bytes = Buffer.concat([file.bytes, data]);
        return Promise.resolve();
      },
      sync: () => Promise.resolve(),
      chmod: (m) => {
        file.mode = m;
        return Promise.resolve();
      },
      close: () => Promise.resolve(),
    };
  }

  readFile(path: string): Promise<Buffer> {
    const file = this.files.get(path);
    if (file) return Promise.resolve(Buffer.from(file.bytes));
    if (this.dirs.has(path)) return Promise.reject(fsError('EISDIR', 'read', path));
    if (!this.onDisk(path)) return Promise.reject(fsError('ENOENT', 'read', path));
    return this.base.readFile(path);
  }

  async readdir(path: string): Promise<string[]> {
    const mine = (m: Map<string, unknown>): string[] =>
      [...m.keys()].filter((p) => dirname(p) === path).map((p) => p.slice(path.length + 1));
    const made = [...mine(this.files), ...mine(this.dirs)];
    if (this.dirs.has(path)) return made;
    if (!this.onDisk(path)) throw fsError('ENOENT', 'scandir', path);
    const disk = (await this.base.readdir(path)).filter((e) => !this.gone.has(join(path, e)));
    return [...new Set([...disk, ...made])];
  }

  stat(path: string): Promise<FileStat> {
    return this.statWith(path, (p) => this.base.stat(p));
  }

  lstat(path: string): Promise<FileStat> {
    return this.statWith(path, (p) => this.base.lstat(p));
  }

  private statWith(path: string, disk: (p: string) => Promise<FileStat>): Promise<FileStat> {
    const file = this.files.get(path);
    if (file) return Promise.resolve(memoryStat('file', file.bytes.length, file.mode, file.mtimeMs));
    const dirMode = this.dirs.get(path);
    if (dirMode !== undefined) return Promise.resolve(memoryStat('dir', 0, dirMode, Date.now()));
    if (!this.onDisk(path)) return Promise.reject(fsError('ENOENT', 'stat', path));
    return disk(path);
  }

  async rename(from: string, to: string): Promise<void> {
    let file = this.files.get(from);
    if (file) this.files.delete(from);
    else {
      if (!this.onDisk(from)) throw fsError('ENOENT', 'rename', from);
      const st = await this.base.lstat(from);
      file = { bytes: await this.base.readFile(from), mode: st.mode & 0o7777, mtimeMs: st.mtimeMs };
      this.removed.add(from);
    }
    this.gone.add(from);
    this.written.delete(from);
    await this.needParent('rename', to);
    this.files.set(to, file);
    this.gone.delete(to);
    this.written.add(to);
  }

  async unlink(path: string): Promise<void> {
    if (this.files.delete(path)) {
      this.written.delete(path);
      this.gone.add(path);
      return;
    }
    if (!(await this.exists(path))) throw fsError('ENOENT', 'unlink', path);
    this.gone.add(path);
    this.removed.add(path);
  }

  async mkdir(path: string, mode: number): Promise<void> {
    if (await this.exists(path)) throw fsError('EEXIST', 'mkdir', path);
    await this.needParent('mkdir', path);
    this.dirs.set(path, mode);
    this.gone.delete(path);
  }

  async rmdir(path: string): Promise<void> {
    if ((await this.readdir(path)).length > 0) throw fsError('ENOTEMPTY', 'rmdir', path);
    if (!this.dirs.delete(path)) this.gone.add(path);
  }

  syncDir(): Promise<void> {
    return Promise.resolve();
  }
}
