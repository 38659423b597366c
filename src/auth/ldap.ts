/**
 * The LDAP auth backend (`[auth] backend = "ldap"`, issue 7): checks a user's
 * password by binding to the directory as that user, and maps the user's entry
 * to the same Identity the userdb and PAM backends produce.
 *
 * Two ways to find the entry (see ldap-config.ts): search-then-bind (service
 * bind, search under `base` with `filter`, bind as the DN found) or direct bind
 * (`user_dn_template`). Each login uses its own short-lived connection, bounded
 * by `timeout_ms` as a whole: logins are rare next to the session that follows,
 * and a fresh connection needs no rebind logic and recovers from a directory
 * restart by construction.
 *
 * The outcome keeps two things apart that must never be confused:
 * - `rejected`: the directory answered and the login is not valid (unknown user,
 *   wrong password, ambiguous or broken entry); the client cannot tell which.
 * - `unavailable`: the directory could not be asked (down, timed out, TLS failed,
 *   service account refused, misconfigured); logged, the client is told TRYLATER.
 *
 * Must not know: sockets other than ldapts', the wire protocol, storage.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { Client } from 'ldapts';
import type { Logger } from '../log/logger.js';
import type { AuthBackend, AuthContext, AuthOutcome, RejectionClass } from './types.js';
import { ldapEndpoint, ldapMode, parseBindPassword, type AuthConfig, type LdapEndpoint } from './ldap-config.js';
import { escapeDnValue, escapeFilterValue, expandLdapTemplate, templateValues } from './ldap-escape.js';
import {
  LDAP_RESULT,
  LdapDeadlineError,
  classifyLdapError,
  describeLdapFailure,
  type LdapFailure,
} from './ldap-errors.js';
import { entryToIdentity, requestedAttributes, type LdapEntry } from './ldap-identity.js';

export { checkLdapConfig } from './ldap-config.js';

/** Longest login name passed to the directory, in UTF-8 bytes. */
const MAX_USER_BYTES = 255;
// C0/C1 controls (NUL included) and DEL: never part of a name, and they end up in logs.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Why a login name is refused before the directory is asked, or undefined. */
export function ldapLoginNameProblem(user: string): string | undefined {
  if (user.length === 0) return 'empty user name';
  if (Buffer.byteLength(user, 'utf8') > MAX_USER_BYTES) return 'user name too long';
  if (CONTROL.test(user)) return 'control character in user name';
  if (/[\ud800-\udfff]/u.test(user)) return 'user name is not valid Unicode';
  return undefined;
}

type Step<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly failure: LdapFailure };

/** One login's connection and deadline. */
class Attempt {
  aborted = false;
  constructor(
    readonly client: Client,
    readonly timeoutMs: number,
  ) {}

  /** Runs one directory operation, refusing to start it after the deadline. */
  async step<T>(op: () => Promise<T>): Promise<Step<T>> {
    if (this.aborted) return { ok: false, failure: classifyLdapError(new LdapDeadlineError(this.timeoutMs)) };
    try {
      return { ok: true, value: await op() };
    } catch (e) {
      return { ok: false, failure: classifyLdapError(e) };
    }
  }
}

const rejected = (reason: string, cls: RejectionClass): AuthOutcome => ({ kind: 'rejected', reason, class: cls });
const unavailable = (reason: string): AuthOutcome => ({ kind: 'unavailable', reason });

/** A bind as the user failed: was that the user's fault or the directory's? */
function userBindOutcome(failure: LdapFailure): AuthOutcome {
  if (failure.kind === 'result') {
    if (failure.code === LDAP_RESULT.invalidCredentials) return rejected('wrong password', 'bad-password');
    // Direct bind to a DN that does not exist or cannot be formed: unknown user.
    if (failure.code === LDAP_RESULT.noSuchObject || failure.code === LDAP_RESULT.invalidDNSyntax) {
      return rejected('unknown user', 'unknown-user');
    }
  }
  return unavailable(`bind as user failed: ${describeLdapFailure(failure)}`);
}

export class LdapBackend implements AuthBackend {
  readonly name = 'ldap';
  readonly #auth: AuthConfig;
  readonly #log: Logger;
  readonly #active = new Set<Client>();
  #bindPassword: string | undefined;
  #ca: Buffer | undefined;
  #closed = false;

  constructor(auth: AuthConfig, log: Logger) {
    this.#auth = auth;
    this.#log = log.child({ backend: 'ldap' });
  }

  async verifyPassword(user: string, password: string, context: AuthContext): Promise<AuthOutcome> {
    const outcome = await this.#verify(user, password);
    const fields = { user, remote: context.remoteAddress, outcome: outcome.kind };
    if (outcome.kind === 'unavailable')
      this.#log.warn({ ...fields, reason: outcome.reason }, 'ldap: directory unavailable');
    else if (outcome.kind === 'rejected')
      this.#log.debug({ ...fields, reason: outcome.reason }, 'ldap: login rejected');
    return outcome;
  }

  async #verify(user: string, password: string): Promise<AuthOutcome> {
    const nameProblem = ldapLoginNameProblem(user);
    if (nameProblem !== undefined) return rejected(nameProblem, 'malformed');
    // RFC 4513 section 5.1.2: a simple bind with a DN and an empty password is an
    // "unauthenticated bind" that many servers answer with success. Never send one.
    if (password.length === 0) return rejected('empty password', 'malformed');
    if (this.#closed) return unavailable('backend closed');
    const endpoint = ldapEndpoint(this.#auth);
    if (endpoint === undefined) return unavailable('auth.url is missing or invalid');

    let tls: ConnectionOptions | undefined;
    if (endpoint.implicitTls || endpoint.startTls) {
      try {
        tls = await this.#tlsOptions(endpoint);
      } catch (e) {
        return unavailable(`cannot read auth.tls_ca_file: ${(e as Error).message}`);
      }
    }

    const ms = this.#auth.timeout_ms;
    const client = new Client({
      url: endpoint.url,
      timeout: ms,
      connectTimeout: ms,
      // Only for ldaps://: ldapts opens a TLS socket from the start whenever
      // tlsOptions are given, which would break StartTLS on ldap://.
      ...(endpoint.implicitTls ? { tlsOptions: tls } : {}),
    });
    const attempt = new Attempt(client, ms);
    this.#active.add(client);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<AuthOutcome>((resolve) => {
      timer = setTimeout(() => {
        attempt.aborted = true;
        resolve(unavailable(describeLdapFailure(classifyLdapError(new LdapDeadlineError(ms)))));
      }, ms);
    });
    try {
      return await Promise.race([this.#login(attempt, endpoint, tls, user, password), deadline]);
    } catch (e) {
      return unavailable(describeLdapFailure(classifyLdapError(e)));
    } finally {
      clearTimeout(timer);
      this.#active.delete(client);
      // unbind() also destroys the socket, which fails any operation still in flight.
      await client.unbind().catch(() => undefined);
    }
  }

  async #login(
    attempt: Attempt,
    endpoint: LdapEndpoint,
    tls: ConnectionOptions | undefined,
    user: string,
    password: string,
  ): Promise<AuthOutcome> {
    const { client } = attempt;
    if (endpoint.startTls) {
      // RFC 4513 section 3: TLS before any credentials; a failure never falls back to clear text.
      const started = await attempt.step(() => client.startTLS({ ...tls }));
      if (!started.ok) return unavailable(`StartTLS failed: ${describeLdapFailure(started.failure)}`);
    }
    const values = templateValues(user);
    const attributes = requestedAttributes(this.#auth);
    let entry: LdapEntry;

    if (ldapMode(this.#auth) === 'search') {
      if (this.#auth.bind_dn !== undefined) {
        let servicePassword: string;
        try {
          servicePassword = await this.#servicePassword();
        } catch (e) {
          return unavailable(`cannot read auth.bind_password_file: ${(e as Error).message}`);
        }
        if (servicePassword === '') return unavailable('auth.bind_password_file is empty');
        const bound = await attempt.step(() => client.bind(this.#auth.bind_dn as string, servicePassword));
        // Even "invalid credentials" here is our configuration's fault, not the user's.
        if (!bound.ok) return unavailable(`service bind as auth.bind_dn failed: ${describeLdapFailure(bound.failure)}`);
      }
      const filter = expandLdapTemplate(this.#auth.filter, values, escapeFilterValue);
      const found = await attempt.step(() =>
        client.search(this.#auth.base as string, {
          scope: 'sub',
          filter,
          attributes,
          // Two are enough to know the name is ambiguous.
          sizeLimit: 2,
          timeLimit: Math.max(1, Math.ceil(this.#auth.timeout_ms / 1000)),
        }),
      );
      if (!found.ok) return unavailable(`search failed: ${describeLdapFailure(found.failure)}`);
      const entries = found.value.searchEntries as LdapEntry[];
      if (entries.length === 0) {
        // The same round trips as a wrong password, so the answer's timing does not
        // tell whether the name exists: a bind as a DN that is not there (it fails
        // with invalidCredentials, and locks no real account).
        await attempt.step(() => client.bind(`cn=tsieved-no-such-user,${this.#auth.base as string}`, password));
        return rejected('unknown user', 'unknown-user');
      }
      if (entries.length > 1) {
        this.#log.warn({ user, filter }, 'ldap: more than one entry matches; login refused');
        return rejected('more than one directory entry matches', 'policy');
      }
      entry = entries[0];
      const bound = await attempt.step(() => client.bind(entry.dn, password));
      if (!bound.ok) return userBindOutcome(bound.failure);
    } else {
      const dn = expandLdapTemplate(this.#auth.user_dn_template as string, values, escapeDnValue);
      const bound = await attempt.step(() => client.bind(dn, password));
      if (!bound.ok) return userBindOutcome(bound.failure);
      const read = await attempt.step(() =>
        client.search(dn, { scope: 'base', filter: '(objectClass=*)', attributes }),
      );
      if (read.ok && read.value.searchEntries.length === 1) {
        entry = read.value.searchEntries[0];
      } else if (read.ok || read.failure.kind === 'result') {
        // The password is right but the entry is not readable by its owner (ACL):
        // the identity is the login name alone, as with a passwd-file without fields.
        this.#log.info({ user, dn }, 'ldap: own entry not readable after bind; no attributes mapped');
        entry = { dn };
      } else {
        return unavailable(`reading own entry failed: ${describeLdapFailure(read.failure)}`);
      }
    }

    const mapped = entryToIdentity(entry, user, this.#auth);
    if (!mapped.ok) {
      this.#log.warn({ user, dn: entry.dn, reason: mapped.reason }, 'ldap: entry cannot be mapped; login refused');
      return rejected(mapped.reason, 'policy');
    }
    return { kind: 'ok', identity: mapped.identity };
  }

  async #servicePassword(): Promise<string> {
    if (this.#bindPassword === undefined) {
      // Read on first use and after reload(), never logged.
      const file = this.#auth.bind_password_file as string;
      this.#bindPassword = parseBindPassword(await readFile(file, 'utf8'));
    }
    return this.#bindPassword;
  }

  async #tlsOptions(endpoint: LdapEndpoint): Promise<ConnectionOptions> {
    if (this.#auth.tls_ca_file !== undefined && this.#ca === undefined) {
      this.#ca = await readFile(this.#auth.tls_ca_file);
    }
    return {
      // Certificate checking is on unless tls_verify = false; the name checked is the URL's host.
      rejectUnauthorized: this.#auth.tls_verify,
      host: endpoint.host,
      ...(isIP(endpoint.host) === 0 ? { servername: endpoint.host } : {}),
      ...(this.#ca !== undefined ? { ca: [this.#ca] } : {}),
      minVersion: 'TLSv1.2',
    };
  }

  /** SIGHUP: the service password and CA file are read again on the next login. */
  async reload(): Promise<void> {
    this.#bindPassword = undefined;
    this.#ca = undefined;
  }

  /** Ends logins in flight (they come out `unavailable`) and refuses new ones. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#active].map((c) => c.unbind().catch(() => undefined)));
    this.#active.clear();
  }
}
