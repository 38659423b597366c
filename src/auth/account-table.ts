/**
 * The in-memory table of accounts read from a text source (userdb or passwd-file):
 * re-parsed whenever the source changes, malformed lines logged with file and line
 * number and skipped, duplicate names logged (the first one wins).
 *
 * Must not know: the line format (a parse function is handed in), hashing, SASL.
 */
import type { Logger } from '../log/logger.js';
import { DEFAULT_SCRAM_ITERATIONS, type Identity, type ScramAlgorithm } from './types.js';
import { FileSource, type SourceLine } from './file-source.js';
import type { LoginRestrictions } from './login-restrictions.js';
import { createHash } from 'node:crypto';
import { costClass, isLocked, scramSourceOf, storedScramIterations, unsupportedScheme } from './password-hash.js';

export interface Account {
  readonly identity: Identity;
  /** The stored password value (hash or `{SCHEME}value`); undefined when the entry has none. */
  readonly stored: string | undefined;
  /** Where and whether the entry may log in at all (Dovecot passdb fields). */
  readonly restrictions?: LoginRestrictions;
}

export type LineParse =
  | { readonly kind: 'account'; readonly name: string; readonly account: Account }
  | { readonly kind: 'skip' }
  | { readonly kind: 'malformed'; readonly reason: string };

export type LineParser = (text: string) => LineParse;

export interface Table {
  readonly accounts: ReadonlyMap<string, Account>;
  /** SCRAM algorithms for which every account that has a usable password can supply keys. */
  readonly scramAlgorithms: readonly ScramAlgorithm[];
  /**
   * A stored hash of the file's most common scheme and cost: what an unknown user's
   * password is checked against, so "no such user" costs what a wrong password for
   * a typical account costs (the costliest hash made unknown names stand out
   * against the many cheaper entries: 61 ms against 3 ms).
   */
  readonly decoy?: string;
  /**
   * Per algorithm: whether most accounts' SCRAM keys are derived from a cleartext
   * entry (at the first exchange) rather than stored; unknown names then have
   * their made-up keys derived at the same cost.
   */
  readonly scramDerived: Readonly<Record<ScramAlgorithm, boolean>>;
  /**
   * A secret that is the same in every instance reading this file and across
   * restarts (a hash of every stored password value), for salts that must not
   * change between them: keys derived from cleartext entries, and the made-up
   * SCRAM parameters of unknown users, which would otherwise give them away.
   */
  readonly stableSecret: Buffer;
  /** The iteration count most SCRAM entries use, for unknown users' made-up parameters. */
  readonly typicalScramIterations: number;
}

export type TableRead =
  { readonly kind: 'ok'; readonly table: Table } | { readonly kind: 'unavailable'; readonly reason: string };

const ALGORITHMS: readonly ScramAlgorithm[] = ['SHA-256', 'SHA-1'];
const EMPTY_TABLE: Table = {
  accounts: new Map(),
  scramAlgorithms: [],
  stableSecret: createHash('sha256').update('tsieved: no accounts').digest(),
  typicalScramIterations: DEFAULT_SCRAM_ITERATIONS,
  scramDerived: { 'SHA-256': false, 'SHA-1': false },
};

export class AccountTable {
  private readonly source: FileSource;
  private table: Table = EMPTY_TABLE;
  private lastError: string | undefined;
  private builtVersion = -1;
  /** Bumped whenever the table is replaced, so callers can drop caches derived from it. */
  generation = 0;

  constructor(
    path: string,
    private readonly parse: LineParser,
    private readonly log: Logger,
  ) {
    this.source = new FileSource(path);
  }

  /** The table as of the last successful read, without touching the disk. */
  get last(): Table {
    return this.table;
  }

  async current(force = false): Promise<TableRead> {
    const read = await this.source.current(force);
    if (read.kind === 'error') {
      // Stale data could let a removed user in: refuse until the source is readable.
      // Logged once per distinct error, not once per login attempt.
      if (this.lastError !== read.reason) {
        this.log.error({ path: this.source.path, err: read.reason }, 'account file unreadable: logins refused');
      }
      this.lastError = read.reason;
      this.builtVersion = -1;
      this.generation++;
      this.table = EMPTY_TABLE;
      return { kind: 'unavailable', reason: read.reason };
    }
    if (this.lastError !== undefined) {
      this.log.info({ path: this.source.path }, 'account file readable again');
      this.lastError = undefined;
    }
    if (read.version !== this.builtVersion) {
      this.builtVersion = read.version;
      this.table = this.build(read.lines);
      this.generation++;
    }
    return { kind: 'ok', table: this.table };
  }

  private build(lines: readonly SourceLine[]): Table {
    const accounts = new Map<string, Account>();
    const firstSeen = new Map<string, SourceLine>();
    let malformed = 0;
    for (const line of lines) {
      const t = line.text;
      if (t.trim() === '' || t.trimStart().startsWith('#')) continue;
      let r: LineParse;
      try {
        r = this.parse(t);
      } catch (e) {
        r = { kind: 'malformed', reason: e instanceof Error ? e.message : String(e) };
      }
      if (r.kind === 'skip') continue;
      if (r.kind === 'malformed') {
        malformed++;
        // Never log the line itself: it may hold a password hash.
        this.log.warn(
          { file: line.file, line: line.lineNo, reason: r.reason },
          `malformed line ${line.lineNo} in ${line.file} skipped: ${r.reason}`,
        );
        continue;
      }
      const prev = firstSeen.get(r.name);
      if (prev !== undefined) {
        this.log.warn(
          { file: line.file, line: line.lineNo, user: r.name },
          `duplicate entry for ${JSON.stringify(r.name)} at ${line.file}:${line.lineNo} ignored (first at ${prev.file}:${prev.lineNo})`,
        );
        continue;
      }
      firstSeen.set(r.name, line);
      accounts.set(r.name, r.account);
      const unsupported = r.account.stored === undefined ? undefined : unsupportedScheme(r.account.stored);
      if (unsupported !== undefined) {
        this.log.warn(
          { file: line.file, line: line.lineNo, user: r.name, scheme: unsupported },
          `entry for ${JSON.stringify(r.name)} at ${line.file}:${line.lineNo} uses unsupported password scheme {${unsupported}}: that user cannot log in`,
        );
      }
    }
    const usable = [...accounts.values()].filter((a) => a.stored !== undefined && !isLocked(a.stored));
    const scramAlgorithms = ALGORITHMS.filter(
      (alg) => usable.length > 0 && usable.every((a) => scramSourceOf(a.stored!, alg).kind !== 'none'),
    );
    // The most common cost class wins; among equals, the first in name order, so
    // every instance reading the file picks the same.
    const classes = new Map<string, { count: number; stored: string }>();
    for (const [, a] of [...accounts].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
      if (a.stored === undefined || isLocked(a.stored)) continue;
      const c = costClass(a.stored);
      const seen = classes.get(c);
      if (seen) seen.count++;
      else classes.set(c, { count: 1, stored: a.stored });
    }
    let decoy: string | undefined;
    let decoyCount = 0;
    for (const { count, stored } of classes.values()) if (count > decoyCount) [decoy, decoyCount] = [stored, count];
    const derivedMostly = (alg: ScramAlgorithm): boolean => {
      let derived = 0;
      let stored = 0;
      for (const a of usable) {
        const kind = scramSourceOf(a.stored!, alg).kind;
        if (kind === 'cleartext') derived++;
        else if (kind === 'keys') stored++;
      }
      return derived > stored;
    };
    const secretHash = createHash('sha256').update('tsieved stable secret\0');
    const iterationCounts = new Map<number, number>();
    for (const [name, a] of [...accounts].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
      secretHash.update(`${name}\0${a.stored ?? ''}\0`);
      const n = a.stored === undefined ? undefined : storedScramIterations(a.stored);
      if (n !== undefined) iterationCounts.set(n, (iterationCounts.get(n) ?? 0) + 1);
    }
    let typicalScramIterations = DEFAULT_SCRAM_ITERATIONS;
    let most = 0;
    for (const [n, count] of iterationCounts) if (count > most) [typicalScramIterations, most] = [n, count];
    this.log.info(
      { path: this.source.path, accounts: accounts.size, malformed, scram: scramAlgorithms },
      'account file loaded',
    );
    return {
      accounts,
      scramAlgorithms,
      ...(decoy === undefined ? {} : { decoy }),
      stableSecret: secretHash.digest(),
      typicalScramIterations,
      scramDerived: { 'SHA-256': derivedMostly('SHA-256'), 'SHA-1': derivedMostly('SHA-1') },
    };
  }
}
