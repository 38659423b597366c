/**
 * Builds the object graph from a parsed Config and starts listening: the only
 * place that chooses concrete backends (auth, storage launcher, validator) and
 * the only place that knows all of them.
 *
 * Must not know: argv, signals (cli.ts), the wire protocol.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { AuthBackend } from './auth/types.js';
import { hasSessionProcesses, type Config } from './config/schema.js';
import type { Logger } from './log/logger.js';
import { mechanismNames } from './sasl/index.js';
import { ConnectionManager, listenerSpecs, type ListenerSpec } from './server/listener.js';
import type { SessionInfo } from './server/connection.js';
import { PrometheusEvents } from './metrics/prometheus.js';
import { startMetricsEndpoint, type MetricsEndpoint } from './metrics/http.js';
import type { Registry } from 'prom-client';
import type { Admission } from './server/admission.js';
import { loadTlsContext } from './server/tls.js';
import { LoginLimits, type LoginLimiter } from './session/login-limits.js';
import type { ScriptChecker, ServerServices } from './session/services.js';
import { NO_EVENTS, type ServerEvents } from './session/events.js';
import {
  createValidator,
  formatDiagnosticsForClient,
  loadProfile,
  ProfileError,
  type SieveProfile,
  type Validator,
} from './sieve/index.js';
import { InProcessLauncher, runningAsRoot, type StoreLauncher } from './storage/launcher.js';
import { UserdbBackend } from './auth/userdb.js';
import { PasswdFileBackend } from './auth/passwd-file.js';
import { LdapBackend } from './auth/ldap.js';
import { checkLdapConfig } from './auth/ldap-config.js';
import { assertPamUsable, PamBackend } from './auth/pam.js';
import { BrokerLauncher, pamBrokerCommand } from './storage/broker/launcher.js';
import { accountProblems, configProblems } from './config-check.js';

/**
 * The package's version, for the IMPLEMENTATION capability and --version. An
 * unreadable package.json is a broken installation: say so (VERSION_PROBLEM is
 * logged at start-up) rather than pose as some real version.
 */
export const { version: VERSION, problem: VERSION_PROBLEM } = ((): { version: string; problem?: string } => {
  const path = fileURLToPath(new URL('../package.json', import.meta.url));
  try {
    return { version: (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version };
  } catch (err) {
    return { version: 'unknown', problem: `cannot read the version from ${path}: ${(err as Error).message}` };
  }
})();

export class StartupError extends Error {
  /** Each problem on its own (config-check.ts finds all of them at once). */
  readonly problems: readonly string[];
  constructor(message: string, problems?: readonly string[]) {
    super(message);
    this.name = 'StartupError';
    this.problems = problems ?? [message];
  }
}

/** The listener changes a reload made, by configured address. */
export interface ListenerChangeSummary {
  readonly bound: readonly string[];
  readonly closed: readonly string[];
  readonly rebound: readonly string[];
}

/**
 * `notApplied`: parts a reload could not apply (a listener that would not bind);
 * the rest took effect. `listeners`: what changed (a cluster primary logs it once).
 */
export type ReloadOutcome =
  | { readonly ok: true; readonly notApplied?: readonly string[]; readonly listeners?: ListenerChangeSummary }
  | { readonly ok: false; readonly error: string };

export interface RunningServer {
  readonly addresses: readonly { host: string; port: number; implicitTls: boolean }[];
  /** The /metrics listener's port, when [metrics] listen is set and this process serves it. */
  readonly metricsPort?: number;
  /** This process's metrics, when [metrics] listen is set (a cluster primary gathers them). */
  readonly metricsRegistry?: Registry;
  /**
   * SIGHUP and `tsieved reload`: re-read config (through `load`), certificates and
   * user files; sessions keep running. A failure keeps the running configuration.
   */
  reload(load: () => Promise<Config>): Promise<ReloadOutcome>;
  /** Live sessions (`tsieved who`). */
  sessions(): SessionInfo[];
  /** Ends the sessions of a user or client address with BYE (`tsieved kick`). */
  kick(target: string): Promise<number>;
  /** SIGTERM: stop accepting, let sessions finish for the grace period, then close. */
  stop(): Promise<void>;
}

interface Built {
  readonly services: ServerServices;
  readonly validator: Validator;
  readonly stores: StoreLauncher;
}

function allListenerSpecs(config: Config): ListenerSpec[] {
  return [
    ...listenerSpecs(config.server.listen, false, config.auth.allow_plaintext),
    ...listenerSpecs(config.server.implicit_tls_listen, true, config.auth.allow_plaintext),
  ];
}

/** Everything that can be checked without listening: `tsieved config check` uses it too. */
export async function buildServices(
  config: Config,
  log: Logger,
  events: ServerEvents = NO_EVENTS,
  logins: LoginLimiter = new LoginLimits(),
): Promise<Built> {
  // config-check.ts owns the checks; start-up, reload and `config check` all come here.
  const problems = configProblems(config);
  if (problems.length > 0) throw new StartupError(problems.join('; '), problems);
  let tls;
  try {
    tls = await loadTlsContext(config.tls);
  } catch (error) {
    throw new StartupError((error as Error).message);
  }
  const auth = await createAuthBackend(config, log);
  // Read the user files now: which SASL mechanisms are offered depends on them, and
  // the very first greeting must already be right.
  await auth.reload?.();
  const accountTrouble = accountProblems(config, (await auth.identities?.()) ?? []);
  if (accountTrouble.length > 0) {
    await auth.close?.();
    throw new StartupError(accountTrouble.join('; '), accountTrouble);
  }
  let profile: SieveProfile;
  try {
    profile = await loadProfile(config.sieve, config.storage.max_script_bytes, log.child({ component: 'sieve' }));
  } catch (error) {
    if (error instanceof ProfileError)
      throw new StartupError(error.message.startsWith('[sieve]') ? error.message : `sieve.exim: ${error.message}`);
    throw error;
  }
  const validator = createValidator(profile);
  const stores = createStoreLauncher(config, log.child({ component: 'storage' }));
  const checker: ScriptChecker = {
    extensions: profile.extensions,
    check: (script) => validator.validate(script),
    format: (diagnostics, max, scriptName) => formatDiagnosticsForClient(diagnostics, max, scriptName),
  };
  if (VERSION_PROBLEM) log.warn({ event: 'version-unknown' }, VERSION_PROBLEM);
  const services: ServerServices = {
    config,
    auth,
    stores,
    checker,
    ...(tls ? { tls } : {}),
    log,
    version: VERSION,
    events,
    logins,
  };
  return { services, validator, stores };
}

/**
 * PAM always runs storage through the file broker the PAM helper started (that
 * process holds the user's credentials and AFS tokens); `isolation = "process"`
 * does the same for every other backend, with a broker spawned with the entry's
 * uid/gid.
 */
function createStoreLauncher(config: Config, log: Logger): StoreLauncher {
  if (!hasSessionProcesses(config)) {
    if (runningAsRoot()) {
      log.warn(
        { event: 'isolation-none-as-root' },
        'running as root with [storage] isolation = "none": only accounts with uid 0 can log in; use isolation = "process" for the others',
      );
    }
    return new InProcessLauncher(config.storage, log);
  }
  // config-check.ts has made sure the broker and the privileges to start it exist.
  return new BrokerLauncher({ storage: config.storage, log });
}

async function createAuthBackend(config: Config, log: Logger): Promise<AuthBackend> {
  const { auth } = config;
  const authLog = log.child({ component: 'auth' });
  switch (auth.backend) {
    case 'userdb':
      if (!auth.userdb) throw new StartupError('[auth] backend = "userdb" needs userdb = PATH');
      return new UserdbBackend(auth.userdb, authLog);
    case 'passwd-file':
      if (!auth.passwd_file) throw new StartupError('[auth] backend = "passwd-file" needs passwd_file = PATH');
      return new PasswdFileBackend(auth.passwd_file, authLog);
    case 'pam': {
      try {
        assertPamUsable(auth.pam_helper);
      } catch (error) {
        throw new StartupError((error as Error).message);
      }
      return new PamBackend({
        service: auth.pam_service,
        ...(auth.pam_helper ? { helperPath: auth.pam_helper } : {}),
        // Placeholders are expanded here, once, for the account PAM settled on.
        brokerCommand: (identity) => pamBrokerCommand(config.storage, identity),
        ...(config.storage.token_command.length === 0 ? { fixedBrokerCommand: [] } : {}),
        log: authLog,
      });
    }
    case 'ldap': {
      const problems = checkLdapConfig(auth);
      if (problems.length > 0) throw new StartupError(`[auth] ${problems.join('; ')}`);
      return new LdapBackend(auth, authLog);
    }
    default:
      throw new StartupError(`[auth] backend = "${auth.backend}" is not available in this build`);
  }
}

/** The backend's mechanisms in its order, less those site policy leaves out. */
function allowedMechanisms(config: Config, auth: AuthBackend): readonly string[] {
  const allowed = config.auth.mechanisms;
  const names = mechanismNames(auth);
  return allowed.length === 0 ? names : names.filter((name) => (allowed as readonly string[]).includes(name));
}

export interface StartOptions {
  /** Who counts connections against the limits (the cluster primary, for a worker). */
  readonly admission?: Admission;
  /** Who keeps sessions per account and the failed-login penalty (the cluster primary, for a worker). */
  readonly logins?: LoginLimiter;
  /** False in a cluster worker: the primary serves /metrics for all workers. */
  readonly serveMetrics?: boolean;
  /**
   * In a cluster worker the reload lines are `worker-reloaded`/`worker-reload-failed`:
   * the primary logs the one `reloaded` (or `reload-failed`) line once every worker
   * has answered, so the line means the same as with one process.
   */
  readonly worker?: boolean;
}

export async function startServer(config: Config, log: Logger, options: StartOptions = {}): Promise<RunningServer> {
  const metrics = config.metrics.listen !== undefined ? new PrometheusEvents() : undefined;
  const events: ServerEvents = metrics ?? NO_EVENTS;
  // Kept across reloads: a SIGHUP must not reset the per-address penalty or session counts.
  const logins = options.logins ?? new LoginLimits();
  let built = await buildServices(config, log, events, logins);
  const mechanisms = (): readonly string[] => allowedMechanisms(built.services.config, built.services.auth);
  const manager = new ConnectionManager(built.services, mechanisms, log, options.admission);
  metrics?.observe(manager);
  let endpoint: MetricsEndpoint | undefined;
  if (metrics && config.metrics.listen !== undefined && options.serveMetrics !== false) {
    try {
      endpoint = await startMetricsEndpoint(
        config.metrics.listen,
        config.metrics.token_file,
        async () => ({
          contentType: metrics.registry.contentType,
          body: await metrics.registry.metrics(),
        }),
        log,
      );
    } catch (error) {
      throw new StartupError(`[metrics] cannot serve on ${config.metrics.listen}: ${(error as Error).message}`);
    }
  }
  const started = await manager.applyListeners(allListenerSpecs(config));
  if (started.failed.length > 0) {
    await manager.stopListening();
    await endpoint?.close();
    const [first] = started.failed;
    throw new StartupError(`cannot listen on ${first.address}: ${first.reason}`);
  }
  return {
    get addresses() {
      return manager.listening;
    },
    ...(endpoint ? { metricsPort: endpoint.port } : {}),
    ...(metrics ? { metricsRegistry: metrics.registry } : {}),
    async reload(load) {
      try {
        const next = await load();
        const { notApplied, listeners } = await reload(next);
        await endpoint?.reloadToken(next.metrics.token_file);
        events.reloaded('success');
        return notApplied.length > 0 ? { ok: true, notApplied, listeners } : { ok: true, listeners };
      } catch (error) {
        log.error(
          { event: options.worker ? 'worker-reload-failed' : 'reload-failed', err: error },
          'reload failed; keeping the running configuration',
        );
        events.reloaded('failure');
        return { ok: false, error: (error as Error).message };
      }
    },
    sessions: () => manager.sessions(),
    kick: (target) =>
      manager.kick(target, `${built.services.config.server.greeting_name}: session ended by the administrator`),
    async stop() {
      await manager.stopListening();
      await manager.drain(built.services.config.server.shutdown_grace_seconds * 1000);
      // Scrapes go on while sessions drain: the drain itself is worth watching.
      await endpoint?.close();
      await built.validator.close();
      await built.stores.close?.();
      await built.services.auth.close?.();
    },
  };

  /**
   * The one reload (SIGHUP, and any other trigger): check and build everything
   * first, so a broken configuration changes nothing; then new connections get the
   * new services and the listeners are made to match. Sessions already open keep
   * the settings they started with until they end.
   */
  async function reload(next: Config): Promise<{ notApplied: string[]; listeners: ListenerChangeSummary }> {
    const old = built;
    built = await buildServices(next, log, events, logins);
    manager.replaceServices(built.services);
    log.level = next.log.level;
    const listeners = await manager.applyListeners(allListenerSpecs(next));
    const notApplied = listeners.failed.map((f) => `listener ${f.address}: ${f.reason}`);
    const line = {
      event: options.worker ? 'worker-reloaded' : 'reloaded',
      listenersBound: listeners.bound,
      listenersClosed: listeners.closed,
      listenersRebound: listeners.rebound,
      ...(notApplied.length > 0 ? { notApplied } : {}),
    };
    if (notApplied.length > 0) {
      log.warn(
        line,
        `configuration reloaded, except (needs the problem fixed, or a restart): ${notApplied.join('; ')}`,
      );
    } else {
      log.info(line, 'configuration reloaded; open sessions keep their settings until they end');
    }
    // Sessions started before the reload keep the old services until they end; a
    // closed validator still validates, inline, so its worker thread can go now.
    await old.validator.close();
    return {
      notApplied,
      listeners: { bound: listeners.bound, closed: listeners.closed, rebound: listeners.rebound },
    };
  }
}
