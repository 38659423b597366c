/**
 * The store's locked sections: a change runs under the user's lock (lock.ts), with
 * the store's files seen through reads made once per hold (held-reads.ts), after
 * the checks at open (open-repair.ts) while those have yet to run under the lock.
 *
 * Must not know: what a section changes (file-store.ts, script-changes.ts).
 */
import { join } from 'node:path';
import type { Logger } from '../log/logger.js';
import type { FilterGuard } from './filter-guard.js';
import { HeldReads } from './held-reads.js';
import { LOCK_DIR } from './layout.js';
import { withLock, type HeldLock, type LockOptions } from './lock.js';
import { checkAtOpen } from './open-repair.js';
import type { StoreFiles } from './store-files.js';

/** What a locked section works with: the lock, and the files read through this hold. */
export interface Held {
  readonly lock: HeldLock;
  readonly files: StoreFiles;
  readonly guard: FilterGuard;
  /** Starts reads now (one round trip over a file broker with the ones that follow). */
  readonly readAhead: (paths: readonly string[]) => void;
}

/** A hold's files before the lock is known to be ours: what a section's first reads use. */
export type HeldFiles = Omit<Held, 'lock'>;

export class LockedSections {
  /** The checks at open still have to run under the lock (before the next section). */
  repairPending = false;

  constructor(
    readonly files: StoreFiles,
    readonly guard: FilterGuard,
    private readonly lockOptions: LockOptions,
    private readonly log: Logger,
  ) {}

  /**
   * Runs `fn` under the user's lock, with the store's files seen through reads made
   * once per hold (held-reads.ts): a command does not read a file again that it has
   * read under this lock and not changed since.
   */
  run<T>(fn: (held: Held) => Promise<T>, first?: (held: HeldFiles) => Promise<unknown>): Promise<T> {
    const through = (reads: HeldReads): HeldFiles => {
      const files = this.files.over(reads);
      return { files, guard: this.guard.over(files), readAhead: (paths) => reads.readAhead(paths) };
    };
    // Over ordered FileOps (a file broker) the reads `fn` starts with (`first` makes the
    // same calls) go out with the look that decides whether the lock is ours, and run
    // after it: under the lock when it is ours, one round trip before `fn` could ask.
    // `fn` finds their answers in the hold's reads. A failed attempt's reads are dropped.
    let early: HeldReads | undefined;
    const along =
      first && this.files.ops.ordered
        ? () => {
            early = new HeldReads(this.files.ops);
            // Its failures are fn's to meet: fn makes the same calls and finds their answers.
            first(through(early)).catch(() => undefined);
          }
        : undefined;
    return withLock(
      this.files.ops,
      join(this.files.dir, LOCK_DIR),
      this.lockOptions,
      async (lock) => {
        const held: Held = { lock, ...through(early ?? new HeldReads(this.files.ops)) };
        if (this.repairPending) {
          await this.repair(held).catch((err: unknown) =>
            this.log.warn({ err, filterPath: this.guard.filterPath }, 'could not check the existing filter file'),
          );
        }
        return fn(held);
      },
      along,
    );
  }

  /** The checks at open (must run under the lock); pending until they have run once. */
  private async repair({ lock, guard }: Held): Promise<void> {
    await checkAtOpen(guard, lock);
    this.repairPending = false;
  }
}
