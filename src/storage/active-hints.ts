/**
 * The name of each store's active script as last seen by this process, so that
 * opening a store can read that script together with the record that names it:
 * over a file broker, one round trip instead of two at every login (Roundcube
 * opens a connection for every action on its filter pages, so a user's stores are
 * opened again and again). Only a hint: the open still reads the record and uses
 * the script it names; a stale hint costs one read the broker makes for nothing.
 *
 * Bounded: the least recently used entries go first.
 *
 * Must not know: what the files contain, how they are read, who the users are.
 */

export class ActiveHints {
  private readonly names = new Map<string, string>();

  constructor(private readonly capacity = 10_000) {}

  /** The active script last seen in the scripts directory `dir`, if any. */
  get(dir: string): string | undefined {
    const name = this.names.get(dir);
    if (name !== undefined) {
      // Used again: the most recent.
      this.names.delete(dir);
      this.names.set(dir, name);
    }
    return name;
  }

  /** What the record in `dir` names now (undefined: no active script). */
  set(dir: string, name: string | undefined): void {
    this.names.delete(dir);
    if (name === undefined) return;
    this.names.set(dir, name);
    if (this.names.size > this.capacity) this.names.delete(this.names.keys().next().value!);
  }

  get size(): number {
    return this.names.size;
  }
}

/** The hints of this process: every store it opens shares them. */
export const processActiveHints = new ActiveHints();
