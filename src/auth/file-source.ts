/**
 * A text source that is a file or a directory of files (Courier's userdb may be
 * either; the files of a directory are read in name order and concatenated), with
 * cheap change detection: every `current()` stats the path (and, for a directory,
 * each file) and re-reads only when a device/inode, size or nanosecond mtime
 * differs. Editors and DomTool that replace files by rename change the inode, so
 * rewrites within one mtime tick are caught too. No fs.watch: it is unreliable on
 * NFS/AFS, where these files may live.
 *
 * Must not know: what the lines mean.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface SourceLine {
  readonly file: string;
  /** 1-based. */
  readonly lineNo: number;
  readonly text: string;
}

export type SourceRead =
  /**
   * `version` goes up with every re-read; callers sharing one read (concurrent
   * logins) compare it with what they last used instead of a per-call "changed".
   */
  | { readonly kind: 'ok'; readonly lines: readonly SourceLine[]; readonly version: number }
  | { readonly kind: 'error'; readonly reason: string };

export class FileSource {
  private signature: string | undefined;
  private lines: readonly SourceLine[] = [];
  private version = 0;
  private inFlight: Promise<SourceRead> | undefined;

  constructor(readonly path: string) {}

  /** The lines as they are now. */
  async current(force = false): Promise<SourceRead> {
    // A forced read (SIGHUP) must not be satisfied by a refresh that began before it.
    if (force && this.inFlight !== undefined) await this.inFlight.catch(() => undefined);
    // One refresh at a time; concurrent logins share it.
    this.inFlight ??= this.refresh(force).finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async refresh(force: boolean): Promise<SourceRead> {
    try {
      const { files, sig } = await this.listFiles();
      if (!force && sig === this.signature) return { kind: 'ok', lines: this.lines, version: this.version };
      const lines: SourceLine[] = [];
      for (const f of files) {
        const text = await readFile(f, 'utf8');
        const parts = text.split('\n');
        if (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
        parts.forEach((t, i) => lines.push({ file: f, lineNo: i + 1, text: t.endsWith('\r') ? t.slice(0, -1) : t }));
      }
      // Stat again: if a file changed while we read it, keep the old signature so
      // the next call reads once more.
      const after = (await this.listFiles()).sig;
      this.signature = after === sig ? sig : undefined;
      this.lines = lines;
      this.version++;
      return { kind: 'ok', lines, version: this.version };
    } catch (e) {
      this.signature = undefined;
      const err = e as NodeJS.ErrnoException;
      return { kind: 'error', reason: `${this.path}: ${err.code ?? ''} ${err.message}`.trim() };
    }
  }

  private async listFiles(): Promise<{ files: string[]; sig: string }> {
    const st = await stat(this.path, { bigint: true });
    const sigOf = (p: string, s: typeof st): string => `${p}\0${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`;
    if (!st.isDirectory()) return { files: [this.path], sig: sigOf(this.path, st) };
    const sigs = [sigOf(this.path, st)];
    const files: string[] = [];
    const names = (await readdir(this.path)).filter((n) => !n.startsWith('.') && !n.endsWith('~')).sort();
    for (const n of names) {
      const p = join(this.path, n);
      try {
        const s = await stat(p, { bigint: true });
        if (!s.isFile()) continue;
        files.push(p);
        sigs.push(sigOf(p, s));
      } catch (e) {
        // Removed between readdir and stat: the directory mtime will differ next time.
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
    return { files, sig: sigs.join('\n') };
  }
}
