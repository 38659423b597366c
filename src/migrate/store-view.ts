/**
 * The store as the migration sees it, in one of two modes:
 * - real: every call goes to the user's ScriptStore (as root, over a file broker running as
 *   the user), whose operations decide under its lock (putIfAbsent,
 *   setActiveIfNone), so a save in the user's own session is never overwritten;
 * - dry: the store is only read (through FileOps that cannot write), and what the
 *   real run would change is recorded here, so later decisions, the report and the
 *   predicted filter file are the ones the real run makes. Opening a real store
 *   preserves a foreign file at the filter path as "old-forward", listed active
 *   (storage/filter-guard.ts); the dry view starts from that state too.
 *
 * Must not know: the old layouts, the report, Exim.
 */
import { renderFilter } from '../storage/filter-file.js';
import {
  StorageError,
  type ActivationResult,
  type MetaKey,
  type ScriptInfo,
  type ScriptStore,
} from '../storage/types.js';

/** The store's own names for preserved filter files (storage/filter-guard.ts). */
const PRESERVED = /^old-forward(?:-[0-9]+)?$/;

export class StoreView {
  /** Dry run: name -> the bytes it would have, or null once deleted. */
  private readonly changed = new Map<string, Buffer | null>();
  private readonly verbatim = new Set<string>();
  private active: string | undefined | null = null;
  private meta: Buffer | undefined;

  /**
   * @param store the real store, or (dry) a read-only one; undefined when it does not exist yet
   * @param foreign (dry) a foreign file at the filter path, which opening the store would preserve
   */
  private constructor(
    private readonly store: ScriptStore | undefined,
    readonly dryRun: boolean,
  ) {}

  static real(store: ScriptStore): StoreView {
    return new StoreView(store, false);
  }

  static async dry(
    store: ScriptStore | undefined,
    foreign: { bytes: Buffer; sieve: boolean } | undefined,
  ): Promise<StoreView> {
    const view = new StoreView(store, true);
    if (foreign) {
      const name = await view.freeName(foreign.bytes);
      view.changed.set(name, foreign.bytes);
      if (!foreign.sieve) view.verbatim.add(name);
      view.active = name;
    }
    return view;
  }

  async list(): Promise<ScriptInfo[]> {
    const listed = this.store ? await this.store.list() : [];
    if (!this.dryRun) return listed;
    const active = this.active ?? listed.find((s) => s.active)?.name;
    const names = listed.map((s) => s.name).filter((n) => this.changed.get(n) !== null);
    for (const [name, bytes] of this.changed) if (bytes && !names.includes(name)) names.push(name);
    return names.sort().map((name) => ({ name, active: name === active }));
  }

  async activeName(): Promise<string | undefined> {
    return (await this.list()).find((s) => s.active)?.name;
  }

  async get(name: string): Promise<Buffer | undefined> {
    if (this.dryRun && this.changed.has(name)) return this.changed.get(name) ?? undefined;
    if (!this.store) return undefined;
    try {
      return await this.store.get(name);
    } catch (err) {
      if (err instanceof StorageError && err.kind === 'nonexistent') return undefined;
      throw err;
    }
  }

  async putIfAbsent(name: string, content: Buffer): Promise<boolean> {
    if (!this.dryRun) return this.store!.putIfAbsent(name, content);
    if ((await this.get(name)) !== undefined) return false;
    this.changed.set(name, content);
    return true;
  }

  /** Keeps filter-file bytes read elsewhere as a script (storage preserveForward). */
  async preserveForward(bytes: Buffer, sieve: boolean): Promise<string> {
    if (!this.dryRun) return this.store!.preserveForward(bytes);
    const name = await this.freeName(bytes);
    this.changed.set(name, bytes);
    if (!sieve) this.verbatim.add(name);
    return name;
  }

  async setActiveIfNone(name: string): Promise<ActivationResult> {
    if (!this.dryRun) return this.store!.setActiveIfNone(name);
    const content = await this.get(name);
    if (content === undefined) throw new StorageError('nonexistent', `no script named ${JSON.stringify(name)}`);
    const current = await this.activeName();
    if (current === name) return { active: name, activated: false };
    let dropped: string | undefined;
    if (current !== undefined) {
      const copy = PRESERVED.test(current) ? await this.get(current) : undefined;
      if (!copy?.equals(content)) return { active: current, activated: false };
      dropped = current;
      this.changed.set(current, null);
    }
    this.active = name;
    return { active: name, activated: true, ...(dropped !== undefined ? { dropped } : {}) };
  }

  /** The filter file an activation of `name` writes (storage/filter-guard.ts filterFor). */
  async filterFor(name: string): Promise<Buffer | undefined> {
    const content = await this.get(name);
    if (content === undefined) return undefined;
    const verbatim =
      this.verbatim.has(name) ||
      (this.store !== undefined && !this.changed.has(name) && (await this.store.isVerbatim(name)));
    return verbatim ? content : renderFilter(content);
  }

  async readMeta(key: MetaKey): Promise<Buffer | undefined> {
    if (this.dryRun && this.meta !== undefined) return this.meta;
    return this.store ? this.store.readMeta(key) : undefined;
  }

  async writeMeta(key: MetaKey, content: Buffer): Promise<void> {
    if (this.dryRun) this.meta = content;
    else await this.store!.writeMeta(key, content);
  }

  /** Dry run: would the real run change anything in the store? */
  changesAnything(): boolean {
    return this.changed.size > 0 || this.active !== null || this.meta !== undefined;
  }

  /** "old-forward", or the first "old-forward-N" that is free or holds these bytes. */
  private async freeName(bytes: Buffer): Promise<string> {
    for (let n = 1; ; n++) {
      const name = n === 1 ? 'old-forward' : `old-forward-${n}`;
      const existing = await this.get(name);
      if (existing === undefined || existing.equals(bytes)) return name;
    }
  }
}
