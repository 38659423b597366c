/**
 * Every check of a configuration that start-up, SIGHUP (reload) and `tsieved config
 * check` make, in one place, so that `config check` finds what start-up or the
 * first login would. Two steps: `configProblems` needs only the configuration
 * (and the files and programs it names); `accountProblems` looks at the accounts a
 * file backend has read, for mistakes that would otherwise surface at a login
 * (an empty {domain} in a path, accounts this server cannot act for). Each problem
 * is one sentence naming the key to change.
 *
 * Must not know: how the services are built (main.ts), argv, the wire protocol.
 */
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import type { Identity } from './auth/types.js';
import type { Config } from './config/schema.js';
import { checkLdapConfig } from './auth/ldap-config.js';
import { pamProblem } from './auth/pam.js';
import { compileTrustedProxies } from './server/proxy-protocol.js';
import { listenerSpecs } from './server/listener.js';
import { checkStorageTemplates, expandTemplate, resolveUserPaths } from './storage/paths.js';
import { inProcessRefusal } from './storage/launcher.js';
import { brokerProblem } from './storage/broker/launcher.js';
import { processIsolationProblem } from './storage/broker/privileges.js';
import { tokenCommandProblems } from './storage/broker/token-command.js';

/** Where Linux-PAM looks for a service's file (the vendor directory when /etc has none). */
const PAM_DIRS = ['/etc/pam.d', '/usr/lib/pam.d'];

/** Problems found from the configuration alone; empty when it can start. */
export function configProblems(config: Config): string[] {
  return [
    ...checkStorageTemplates(config.storage),
    ...tokenCommandProblems(config.storage),
    ...serverProblems(config),
    ...authProblems(config),
    ...isolationProblems(config),
    ...eximProblems(config),
  ];
}

function serverProblems(config: Config): string[] {
  const problems = compileTrustedProxies(config.server.trusted_proxies).invalid.map(
    (entry) =>
      `[server] trusted_proxies: "${entry}" is not an IP address or a network in CIDR form (e.g. "10.0.0.0/24")`,
  );
  const login = listenerLoginProblem(config);
  if (login) problems.push(login);
  return problems;
}

/**
 * Every listener must offer some way to log in. Without TLS a listener that does
 * not allow plaintext would advertise an empty SASL list and no STARTTLS, which
 * RFC 5804 section 1.7 does not provide for and sieve-connect dies on.
 */
function listenerLoginProblem(config: Config): string | undefined {
  const tlsConfigured = config.tls.cert_file !== undefined && config.tls.key_file !== undefined;
  const specs = [
    ...listenerSpecs(config.server.listen, false, config.auth.allow_plaintext),
    ...listenerSpecs(config.server.implicit_tls_listen, true, config.auth.allow_plaintext),
  ];
  if (specs.some((s) => s.implicitTls) && !tlsConfigured)
    return '[server] implicit_tls_listen needs [tls] cert_file and key_file';
  if (tlsConfigured) return undefined;
  const closed = specs
    .filter((s) => !s.allowPlaintext)
    .map((s) => `${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`);
  if (closed.length === 0) return undefined;
  return `no way to log in on ${closed.join(', ')}: configure [tls] cert_file and key_file, or allow_plaintext on that (trusted) listener`;
}

function authProblems(config: Config): string[] {
  const { auth } = config;
  switch (auth.backend) {
    case 'userdb':
      if (!auth.userdb) return ['[auth] backend = "userdb" needs userdb = PATH'];
      return existsSync(auth.userdb) ? [] : [`[auth] userdb = "${auth.userdb}" does not exist: every login would fail`];
    case 'passwd-file':
      if (!auth.passwd_file) return ['[auth] backend = "passwd-file" needs passwd_file = PATH'];
      return existsSync(auth.passwd_file)
        ? []
        : [`[auth] passwd_file = "${auth.passwd_file}" does not exist: every login would fail`];
    case 'pam': {
      const problems: string[] = [];
      const helper = pamProblem(auth.pam_helper);
      if (helper) problems.push(helper);
      const service = auth.pam_service;
      if (service === '' || service.includes('/')) {
        problems.push(`[auth] pam_service = "${service}" is not a PAM service name`);
      } else if (existsSync(PAM_DIRS[0]) && !PAM_DIRS.some((d) => existsSync(`${d}/${service}`))) {
        problems.push(
          `[auth] pam_service = "${service}": there is no /etc/pam.d/${service}, so PAM would use its "other" service, which refuses every login on Debian; ` +
            'install contrib/pam/sieve there (or name an existing service)',
        );
      }
      // PAM account names carry no domain: a {domain} would be empty at every login.
      for (const [key, value] of [
        ['scripts_dir', config.storage.scripts_dir],
        ['filter_path', config.storage.filter_path],
        ...config.storage.token_command.map((part) => ['token_command', part]),
      ] as const) {
        if (value.includes('{domain}'))
          problems.push(
            `[storage] ${key} "${value}": {domain} is empty for PAM accounts (their names have no @domain)`,
          );
      }
      return problems;
    }
    case 'ldap':
      return checkLdapConfig(auth);
    default:
      return [`[auth] backend = "${String(auth.backend)}" is not available in this build`];
  }
}

function isolationProblems(config: Config): string[] {
  const processIsolation = config.storage.isolation === 'process' || config.auth.backend === 'pam';
  if (!processIsolation) return [];
  const broker = brokerProblem();
  const problems = broker ? [`[storage] isolation = "process" (and the pam backend) needs ${broker}`] : [];
  const privileges = processIsolationProblem();
  if (privileges) problems.push(privileges);
  return problems;
}

function eximProblems(config: Config): string[] {
  const { sieve } = config;
  const problems: string[] = [];
  if (sieve.capabilities === undefined && sieve.exim !== undefined && sieve.exim !== 'auto') {
    const why = cannotRun(sieve.exim);
    if (why)
      problems.push(
        `sieve.exim = "${sieve.exim}" cannot run (${why}): set it to Exim's binary (Debian: /usr/sbin/exim4), or list [sieve] capabilities`,
      );
  }
  if (sieve.exim_config !== undefined) {
    try {
      accessSync(sieve.exim_config, constants.R_OK);
    } catch (e) {
      problems.push(
        `sieve.exim_config = "${sieve.exim_config}" is not readable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
    }
  }
  return problems;
}

function cannotRun(path: string): string | undefined {
  if (!path.startsWith('/')) return 'not an absolute path';
  try {
    if (!statSync(path).isFile()) return 'not a file';
    accessSync(path, constants.X_OK);
    return undefined;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'not executable' : (code ?? (e as Error).message);
  }
}

/**
 * Problems with the accounts a file backend read: the paths and token command
 * must expand for every one of them (an empty {domain}, a missing home), and a
 * root server without process isolation can act only for uid 0. Each problem
 * names how many accounts it hits and one of them.
 */
export function accountProblems(config: Config, accounts: readonly Identity[]): string[] {
  const byProblem = new Map<string, string[]>();
  const note = (problem: string, user: string): void => {
    const users = byProblem.get(problem) ?? [];
    users.push(user);
    byProblem.set(problem, users);
  };
  const processIsolation = config.storage.isolation === 'process' || config.auth.backend === 'pam';
  for (const account of accounts) {
    try {
      resolveUserPaths(config.storage, account);
    } catch (e) {
      note(`[storage] scripts_dir/filter_path cannot be expanded: ${(e as Error).message}`, account.user);
    }
    for (const part of config.storage.token_command) {
      try {
        expandTemplate(part, account);
      } catch (e) {
        note(`[storage] token_command "${part}" cannot be expanded: ${(e as Error).message}`, account.user);
      }
    }
    if (!processIsolation && inProcessRefusal(account) !== undefined) {
      note(
        '[storage] isolation = "none" while running as root serves only uid 0, so these accounts could not log in: ' +
          'set isolation = "process" (each session runs as its user), or run tsieved as the mail user',
        account.user,
      );
    }
  }
  return [...byProblem].map(
    ([problem, users]) => `${problem} (${users.length} account${users.length === 1 ? '' : 's'}, e.g. ${users[0]})`,
  );
}
