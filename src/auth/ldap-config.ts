/**
 * Start-up checks for `[auth] backend = "ldap"` and the one place that decides,
 * from the `[auth]` table, how a login is looked up (search-then-bind or direct
 * bind) and how the connection is secured. Reported problems are plain sentences
 * naming the config key, so `tsieved check` can print them as they are.
 *
 * Must not know: ldapts, sockets, or anything about an actual login.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { FilterParser } from 'ldapts';
import {
  escapeDnValue,
  escapeFilterValue,
  expandLdapTemplate,
  mentionsUser,
  templateValues,
  unknownPlaceholders,
} from './ldap-escape.js';

/**
 * The `[auth]` settings LDAP reads, in auth's own terms so that auth does not
 * depend on the configuration loader; the parsed `[auth]` table is passed in, which the compiler checks fits.
 */
export interface AuthConfig {
  readonly backend: 'userdb' | 'passwd-file' | 'pam' | 'ldap';
  readonly url?: string | undefined;
  readonly tls_ca_file?: string | undefined;
  readonly starttls: boolean;
  readonly tls_verify: boolean;
  readonly bind_dn?: string | undefined;
  readonly bind_password_file?: string | undefined;
  readonly base?: string | undefined;
  readonly filter: string;
  readonly user_dn_template?: string | undefined;
  readonly uid_attr: string;
  readonly gid_attr: string;
  readonly home_attr: string;
  readonly mail_attr: string;
  readonly user_attr: string;
  readonly timeout_ms: number;
}

/**
 * `direct`: bind as `user_dn_template` with the user's password, then read that
 * entry. `search`: find the entry under `base` with `filter` (bound as `bind_dn`,
 * or anonymously), then bind as the DN found.
 */
export type LdapMode = 'direct' | 'search';

export function ldapMode(auth: AuthConfig): LdapMode {
  return auth.user_dn_template !== undefined ? 'direct' : 'search';
}

export interface LdapEndpoint {
  readonly url: string;
  readonly host: string;
  /** ldaps:// (TLS from the first byte). */
  readonly implicitTls: boolean;
  /** ldap:// upgraded with the StartTLS extended operation (RFC 4511 section 4.14). */
  readonly startTls: boolean;
}

/** Parses `url`; undefined when it is missing or not a usable LDAP URL. */
export function ldapEndpoint(auth: AuthConfig): LdapEndpoint | undefined {
  if (auth.url === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(auth.url);
  } catch {
    return undefined;
  }
  const scheme = parsed.protocol.replace(/:$/, '');
  if (scheme !== 'ldap' && scheme !== 'ldaps') return undefined;
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost';
  return { url: auth.url, host, implicitTls: scheme === 'ldaps', startTls: scheme === 'ldap' && auth.starttls };
}

export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

// RFC 4512 section 2.5: descr (keystring) or numericoid, options after ';'.
const ATTRIBUTE = /^([A-Za-z][A-Za-z0-9-]*|\d+(\.\d+)+)(;[A-Za-z0-9-]+)*$/;

/** Problems that must stop start-up; empty when the LDAP settings are usable. */
export function checkLdapConfig(auth: AuthConfig): string[] {
  if (auth.backend !== 'ldap') return [];
  const problems: string[] = [];

  const endpoint = ldapEndpoint(auth);
  if (auth.url === undefined) {
    problems.push('auth.url is required for the ldap backend (ldaps://host or ldap://host with starttls = true)');
  } else if (endpoint === undefined) {
    problems.push(`auth.url "${auth.url}" is not an ldap:// or ldaps:// URL`);
  } else {
    const path = new URL(auth.url).pathname;
    if ((path !== '' && path !== '/') || new URL(auth.url).search !== '') {
      problems.push(`auth.url "${auth.url}" must name only scheme, host and port (put the base DN in auth.base)`);
    }
    if (endpoint.implicitTls && auth.starttls) {
      problems.push('auth.starttls = true makes no sense with an ldaps:// URL (it is TLS already)');
    }
    if (!endpoint.implicitTls && !endpoint.startTls && !isLoopbackHost(endpoint.host)) {
      problems.push(
        `auth.url "${auth.url}" would send passwords in clear to a remote host: use ldaps:// or set auth.starttls = true`,
      );
    }
  }

  if (auth.tls_ca_file !== undefined) {
    try {
      if (!readFileSync(auth.tls_ca_file, 'utf8').includes('-----BEGIN CERTIFICATE-----')) {
        problems.push(`auth.tls_ca_file "${auth.tls_ca_file}" holds no PEM certificate`);
      }
    } catch (e) {
      problems.push(`auth.tls_ca_file "${auth.tls_ca_file}" is not readable: ${(e as Error).message}`);
    }
  }

  const sample = templateValues('sample@example.org');
  if (ldapMode(auth) === 'direct') {
    const template = auth.user_dn_template as string;
    if (!mentionsUser(template)) problems.push('auth.user_dn_template must contain {user} or {localpart}');
    for (const name of unknownPlaceholders(template)) {
      problems.push(`auth.user_dn_template has an unknown placeholder {${name}}`);
    }
    if (!/^[^=,]+=/.test(expandLdapTemplate(template, sample, escapeDnValue))) {
      problems.push(`auth.user_dn_template "${template}" does not look like a DN (attr=value,...)`);
    }
  } else {
    if (auth.base === undefined) {
      problems.push('the ldap backend needs auth.base (search-then-bind) or auth.user_dn_template (direct bind)');
    }
    if (!mentionsUser(auth.filter)) problems.push('auth.filter must contain {user} or {localpart}');
    for (const name of unknownPlaceholders(auth.filter)) {
      problems.push(`auth.filter has an unknown placeholder {${name}}`);
    }
    try {
      // ldapts' parser tolerates a missing closing parenthesis; count them ourselves
      // (values in a valid filter carry parentheses only as \28 and \29, RFC 4515).
      if (!parenthesesBalanced(auth.filter)) throw new Error('unbalanced parentheses');
      FilterParser.parseString(expandLdapTemplate(auth.filter, sample, escapeFilterValue));
    } catch (e) {
      problems.push(`auth.filter "${auth.filter}" is not a valid LDAP filter: ${(e as Error).message}`);
    }
  }

  if (auth.bind_dn !== undefined && auth.bind_password_file === undefined) {
    problems.push('auth.bind_dn is set but auth.bind_password_file is not');
  }
  if (auth.bind_password_file !== undefined) {
    if (auth.bind_dn === undefined) problems.push('auth.bind_password_file is set but auth.bind_dn is not');
    try {
      if (readBindPassword(auth.bind_password_file) === '') {
        // RFC 4513 section 5.1.2: a DN with an empty password is an unauthenticated bind.
        problems.push(`auth.bind_password_file "${auth.bind_password_file}" is empty`);
      }
    } catch (e) {
      problems.push(`auth.bind_password_file "${auth.bind_password_file}" is not readable: ${(e as Error).message}`);
    }
  }

  for (const key of ['uid_attr', 'gid_attr', 'home_attr', 'mail_attr', 'user_attr'] as const) {
    if (!ATTRIBUTE.test(auth[key])) problems.push(`auth.${key} "${auth[key]}" is not an LDAP attribute name`);
  }
  return problems;
}

function parenthesesBalanced(filter: string): boolean {
  let depth = 0;
  for (const c of filter) {
    if (c === '(') depth++;
    else if (c === ')' && --depth < 0) return false;
  }
  return depth === 0;
}

/** The service password: the file's content without one trailing line end. */
export function readBindPassword(file: string): string {
  return parseBindPassword(readFileSync(file, 'utf8'));
}

export function parseBindPassword(text: string): string {
  return text.replace(/\r?\n$/, '');
}
