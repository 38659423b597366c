/**
 * What the userdb and passwd-file backends share: verifying a password against
 * the account table, and supplying SCRAM keys.
 *
 * Unknown user, locked entry, wrong password and unsupported scheme all give the
 * same `rejected` outcome (only `reason`, for the log, differs); for an unknown
 * user a throw-away verification against a hash of the file's most common scheme
 * and cost is run, so the answer takes as long as a wrong password for a typical
 * account. SCRAM parameters of unknown names are made up at the cost a typical
 * account's are found at: derived (and cached) when most entries are cleartext.
 *
 * SCRAM is offered for an algorithm only when *every* account with a usable
 * password can supply keys for it (`{SCRAM-...}` values of that algorithm, or
 * cleartext). Why every, not any: clients pick a mechanism from the server's list
 * before they know whether their own entry has keys (Thunderbird takes the first
 * of SCRAM/PLAIN in server order) and do not fall back to PLAIN after a failure,
 * so offering SCRAM to a user without keys would lock that user out. If the file
 * changes between the capability list and the login so that the user has no keys,
 * the exchange fails like a wrong password, with a log line saying why.
 *
 * Must not know: the line format (subclasses), the wire protocol, SASL framing.
 */
import { createHmac } from 'node:crypto';
import type { Logger } from '../log/logger.js';
import type {
  AuthBackend,
  AuthContext,
  AuthOutcome,
  Identity,
  ScramAlgorithm,
  ScramCredentials,
  ScramLookup,
} from './types.js';
import { AccountTable, type LineParser, type Table } from './account-table.js';
import { checkPassword, checkUserName } from './identity-rules.js';
import { restrictionRefusal } from './login-restrictions.js';
import {
  deriveScramCredentials,
  isLocked,
  prepScramPassword,
  scramSourceOf,
  verifyPasswordHash,
} from './password-hash.js';

/**
 * A per-user salt that stays the same across exchanges, restarts and instances
 * (see Table.stableSecret), so repeated exchanges for one user look alike.
 */
export function derivedSalt(secret: Buffer, user: string, algorithm: ScramAlgorithm): Buffer {
  return createHmac('sha256', secret).update(`salt\0${algorithm}\0${user}`).digest().subarray(0, 16);
}

/**
 * Made-up SCRAM parameters for a name that has no keys: a salt as stable as a real
 * user's and the iteration count most entries use, so the server-first message
 * does not tell them apart. The keys match no password.
 */
function decoyCredentials(table: Table, user: string, algorithm: ScramAlgorithm): ScramCredentials {
  const mac = (label: string): Buffer =>
    createHmac('sha256', table.stableSecret).update(`${label}\0${algorithm}\0${user}`).digest();
  const len = algorithm === 'SHA-1' ? 20 : 32;
  return {
    iterations: table.typicalScramIterations,
    salt: derivedSalt(table.stableSecret, user, algorithm),
    storedKey: mac('decoy-stored').subarray(0, len),
    serverKey: mac('decoy-server').subarray(0, len),
  };
}

/** A password nobody knows, for decoy keys derived the way a cleartext entry's are. */
function decoyPassword(table: Table, user: string, algorithm: ScramAlgorithm): string {
  return createHmac('sha256', table.stableSecret).update(`decoy-password\0${algorithm}\0${user}`).digest('base64');
}

/** A capability list refreshes the file in the background at most this often. */
const CAPABILITY_REFRESH_MS = 1000;

export abstract class FileAccountBackend implements AuthBackend {
  abstract readonly name: string;
  protected readonly table: AccountTable;
  /** SCRAM keys derived from cleartext entries, valid for one table generation. */
  private readonly derived = new Map<string, ScramCredentials>();
  private derivedGeneration = -1;
  private lastBackgroundRefresh = -Infinity;

  constructor(
    readonly path: string,
    parse: LineParser,
    protected readonly log: Logger,
  ) {
    this.table = new AccountTable(path, parse, log);
  }

  /**
   * As of the last read of the file; a read here also refreshes it in the
   * background (a stat), at most once a second, so the capability lists that
   * follow are current. Every capability list asks (three or four per login), and
   * every login already stats the file for its own lookup; a second's delay before
   * a change of SCRAM keys shows in the list costs nothing, a stat per listing cost
   * a thread-pool round trip each. Start-up awaits `reload()` before listening, so
   * the first greeting already knows about SCRAM (reading here as well would only
   * read and log the file twice).
   */
  get scramAlgorithms(): readonly ScramAlgorithm[] {
    const now = performance.now();
    if (now - this.lastBackgroundRefresh >= CAPABILITY_REFRESH_MS) {
      this.lastBackgroundRefresh = now;
      void this.table.current().catch(() => undefined);
    }
    return this.table.last.scramAlgorithms;
  }

  async reload(): Promise<void> {
    await this.table.current(true);
  }

  /** The accounts as of the last read (none when the file cannot be read). */
  async identities(): Promise<readonly Identity[]> {
    const read = await this.table.current();
    return read.kind === 'ok' ? [...read.table.accounts.values()].map((account) => account.identity) : [];
  }

  async verifyPassword(user: string, password: string, context: AuthContext): Promise<AuthOutcome> {
    const nameCheck = checkUserName(user);
    if (!nameCheck.ok) return { kind: 'rejected', reason: nameCheck.reason, class: 'malformed' };
    const pwCheck = checkPassword(password);
    if (!pwCheck.ok) return { kind: 'rejected', reason: pwCheck.reason, class: 'malformed' };
    const read = await this.table.current();
    if (read.kind === 'unavailable') return { kind: 'unavailable', reason: read.reason };
    const account = read.table.accounts.get(user);
    if (account === undefined) {
      await this.decoyVerify(user, password, read.table);
      return { kind: 'rejected', reason: 'unknown user', class: 'unknown-user' };
    }
    if (account.stored === undefined || isLocked(account.stored)) {
      await this.decoyVerify(user, password, read.table);
      return { kind: 'rejected', reason: 'no usable password for this user (empty or locked)', class: 'policy' };
    }
    const check = await verifyPasswordHash(password, account.stored, this.log.child({ user }));
    switch (check.kind) {
      case 'match': {
        const refusal = restrictionRefusal(account.restrictions, context.remoteAddress);
        return refusal === undefined
          ? { kind: 'ok', identity: account.identity }
          : { kind: 'rejected', reason: refusal, class: 'policy' };
      }
      case 'mismatch':
        return { kind: 'rejected', reason: 'wrong password', class: 'bad-password' };
      case 'unsupported':
        return { kind: 'rejected', reason: `unsupported password scheme {${check.scheme}}`, class: 'policy' };
    }
  }

  async lookupScram(user: string, algorithm: ScramAlgorithm, context: AuthContext): Promise<ScramLookup> {
    if (!checkUserName(user).ok) return { kind: 'unknown' };
    const read = await this.table.current();
    if (read.kind === 'unavailable') return { kind: 'unavailable', reason: read.reason };
    const account = read.table.accounts.get(user);
    const table = read.table;
    // Derived like a typical account's keys (a first exchange of a cleartext entry
    // costs a PBKDF2 run: 1.75 ms against 0.56 ms for a made-up answer).
    const unknown = async (): Promise<ScramLookup> => ({
      kind: 'unknown',
      decoy: table.scramDerived[algorithm]
        ? await this.derive(
            `decoy\0${algorithm}\0${user}`,
            prepScramPassword(decoyPassword(table, user, algorithm)),
            user,
            algorithm,
            table,
          )
        : decoyCredentials(table, user, algorithm),
    });
    if (account === undefined || account.stored === undefined) return unknown();
    const source = scramSourceOf(account.stored, algorithm);
    // Judged after the proof, like a wrong password, so it costs the same.
    const refusal = restrictionRefusal(account.restrictions, context.remoteAddress);
    const found = (credentials: ScramCredentials): ScramLookup => ({
      kind: 'found',
      credentials,
      identity: account.identity,
      ...(refusal === undefined ? {} : { refusal }),
    });
    switch (source.kind) {
      case 'keys':
        return found(source.credentials);
      case 'cleartext':
        // The cleartext is part of the key: a password changed mid-derivation never hits a stale entry.
        return found(
          await this.derive(
            `${algorithm}\0${user}\0${source.password}`,
            prepScramPassword(source.password),
            user,
            algorithm,
            table,
          ),
        );
      case 'none':
        if (!isLocked(account.stored)) {
          this.log.warn(
            { user, algorithm },
            `SCRAM-${algorithm} login for ${JSON.stringify(user)}, whose entry holds no keys for it: refused`,
          );
        }
        return unknown();
    }
  }

  /**
   * Keys derived from a password, cached, so that after the first exchange a
   * cleartext entry (or an unknown name, in a file of mostly cleartext entries)
   * answers as fast as stored keys.
   */
  private async derive(
    key: string,
    password: string,
    user: string,
    algorithm: ScramAlgorithm,
    table: Table,
  ): Promise<ScramCredentials> {
    if (this.derivedGeneration !== this.table.generation || this.derived.size > 10_000) {
      this.derived.clear();
      this.derivedGeneration = this.table.generation;
    }
    let credentials = this.derived.get(key);
    if (credentials === undefined) {
      credentials = await deriveScramCredentials(
        password,
        algorithm,
        derivedSalt(table.stableSecret, user, algorithm),
        table.typicalScramIterations,
      );
      this.derived.set(key, credentials);
    }
    return credentials;
  }

  /**
   * Spend the time a wrong password for a typical account would: a check against a
   * hash of the file's most common scheme and cost. The result is ignored.
   */
  private async decoyVerify(user: string, password: string, table: Table): Promise<void> {
    // With a logger child like the real check's, so not even that differs.
    if (table.decoy !== undefined) await verifyPasswordHash(password, table.decoy, this.log.child({ user }));
  }
}
