/**
 * The configuration schema: the one source of key names, types, defaults and
 * checks. Everything else receives a parsed `Config`; nothing else reads TOML or
 * guesses defaults. Unknown keys are errors (strict objects), so a typo stops
 * start-up with the key path instead of being silently ignored.
 *
 * Must not know: how files are read (loader.ts), or what the values are used for.
 */
import { z } from 'zod';
import { MAX_SCRIPT_BYTES_DEFAULT, SIEVE_DEFAULTS } from './defaults.js';

const hostPort = z
  .string()
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'expected "host:port" (IPv6 as "[::1]:4190")');

/** A listener written either as "host:port" or as a table with per-listener options. */
const listenerTable = z.strictObject({
  address: hostPort,
  /** Offer PLAIN/LOGIN before STARTTLS on this listener (trusted local web mail, Cyrus sieveshell). */
  allow_plaintext: z.boolean().optional(),
  /** Expect a PROXY protocol v1/v2 header first (only from trusted_proxies). */
  proxy_protocol: z.boolean().default(false),
});
const listener = z.union([hostPort, listenerTable]);

const serverSchema = z.strictObject({
  listen: z.array(listener).default(['127.0.0.1:4190']),
  implicit_tls_listen: z.array(listener).default([]),
  greeting_name: z.string().min(1).default('tsieved'),
  /** Addresses allowed to send a PROXY protocol header. */
  trusted_proxies: z.array(z.string()).default([]),
  /** RFC 5804 section 1.7 recommends no auto-logout under 30 min after login. */
  idle_timeout_seconds: z.number().int().positive().default(1800),
  /** Unauthenticated connections are cheap to open; do not let them linger. */
  login_timeout_seconds: z.number().int().positive().default(180),
  max_connections: z.number().int().positive().default(5000),
  max_connections_per_ip: z.number().int().positive().default(50),
  max_line_bytes: z.number().int().positive().default(8192),
  /** Literal size accepted before login (SASL responses only): small. */
  max_preauth_literal_bytes: z.number().int().positive().default(16384),
  max_bad_commands: z.number().int().positive().default(10),
  max_auth_failures: z.number().int().positive().default(3),
  /** Sessions one account may hold at once in this server (Dovecot: mail_max_userip_connections). */
  max_sessions_per_user: z.number().int().positive().default(10),
  /** Delay before answering a failed login; per connection, never blocks others. */
  auth_failure_delay_ms: z.number().int().nonnegative().default(2000),
  /**
   * Server processes sharing the listeners (node:cluster): "auto" is one per CPU
   * core the process may use (os.availableParallelism()), or half as many (rounded
   * up) when sessions have processes of their own (src/cluster/primary.ts says
   * why); 1 means no primary process. Changing it needs a restart.
   */
  workers: z.union([z.number().int().positive().max(256), z.literal('auto')]).default('auto'),
  /** Seconds to let sessions finish on SIGTERM before closing them. */
  shutdown_grace_seconds: z.number().int().nonnegative().default(10),
});

const tlsSchema = z.strictObject({
  cert_file: z.string().optional(),
  key_file: z.string().optional(),
  /** Node/OpenSSL minimum protocol version. */
  min_version: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
});

const authSchema = z.strictObject({
  backend: z.enum(['userdb', 'passwd-file', 'pam', 'ldap']).default('userdb'),
  /** Courier userdb: a file, or a directory of files (DomTool writes one per domain). */
  userdb: z.string().optional(),
  passwd_file: z.string().optional(),
  /** Offer PLAIN/LOGIN on connections without TLS (all listeners; see [[server.listen]]). */
  allow_plaintext: z.boolean().default(false),
  /**
   * SASL mechanisms site policy allows (empty = every one the backend supports). A
   * supported mechanism outside the list is refused with AUTH-TOO-WEAK.
   */
  mechanisms: z.array(z.enum(['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN', 'LOGIN'])).default([]),
  pam_service: z.string().default('sieve'),
  /** Path of the compiled PAM helper; default: helper/build/tsieved-pam-helper in the package. */
  pam_helper: z.string().optional(),
  // LDAP (ldapts)
  url: z.string().optional(),
  tls_ca_file: z.string().optional(),
  /** Use StartTLS on ldap:// URLs. */
  starttls: z.boolean().default(false),
  tls_verify: z.boolean().default(true),
  bind_dn: z.string().optional(),
  bind_password_file: z.string().optional(),
  base: z.string().optional(),
  filter: z.string().default('(&(objectClass=posixAccount)(uid={user}))'),
  user_dn_template: z.string().optional(),
  uid_attr: z.string().default('uidNumber'),
  gid_attr: z.string().default('gidNumber'),
  home_attr: z.string().default('homeDirectory'),
  mail_attr: z.string().default('mail'),
  user_attr: z.string().default('uid'),
  timeout_ms: z.number().int().positive().default(5000),
});

const storageSchema = z.strictObject({
  scripts_dir: z.string().default('{home}/sieve'),
  filter_path: z.string().default('{home}/.forward'),
  /** Expanded paths must lie under one of these (after resolving "..", before symlinks). */
  roots: z.array(z.string()).default([]),
  max_scripts: z.number().int().positive().default(32),
  /** Exim refuses filter files over 1 MiB; the generated header must still fit. */
  max_script_bytes: z
    .number()
    .int()
    .positive()
    .max(1024 * 1024 - 256)
    .default(MAX_SCRIPT_BYTES_DEFAULT),
  /** Total bytes of all scripts of one user; 0 = no limit. */
  max_total_bytes: z.number().int().nonnegative().default(0),
  isolation: z.enum(['none', 'process']).default('none'),
  /** Wraps the per-session file broker (placeholders expanded by the server), e.g. ["k5start", "-qtU", "-f", "/etc/keytabs/{user}", "--"]. */
  token_command: z.array(z.string()).default([]),
  /** Mode of the generated filter file. Exim refuses group/other-writable files. */
  filter_mode: z
    .string()
    .regex(/^0?[0-7]{3}$/)
    .default('0644'),
});

const sieveSchema = z.strictObject({
  /** Exim binary to ask for its Sieve capabilities (`exim -bI:sieve`); "auto" looks for exim4/exim. */
  exim: z.string().optional(),
  /** Explicit capability list; used instead of asking Exim when set. */
  capabilities: z.array(z.string()).optional(),
  /** Router reading the filter file, for sieve_vacation_directory / sieve_enotify_mailto_owner. */
  exim_router: z.string().default(SIEVE_DEFAULTS.exim_router),
  /** Exim config file to pass with -C when asking about the router. */
  exim_config: z.string().optional(),
  max_nesting: z.number().int().positive().max(500).default(SIEVE_DEFAULTS.max_nesting),
  max_redirects: z.number().int().positive().default(SIEVE_DEFAULTS.max_redirects),
  /** Refuse `fileinto` targets that are absolute, contain "..", or start with "|". */
  fileinto_policy: z.enum(['strict', 'relative']).default(SIEVE_DEFAULTS.fileinto_policy),
  /** At most this many diagnostics are sent back to a client. */
  max_reported_errors: z.number().int().positive().default(SIEVE_DEFAULTS.max_reported_errors),
});

/** Prometheus/OpenMetrics endpoint (`/metrics`); off unless `listen` is set. */
const metricsSchema = z.strictObject({
  /** Its own listener, never the ManageSieve port, e.g. "127.0.0.1:9190". */
  listen: hostPort.optional(),
  /** A file holding a bearer token scrapers must send (`Authorization: Bearer ...`). */
  token_file: z.string().optional(),
});

/** The Unix socket `tsieved who|kick|reload` talk to (root only, mode 0600). */
const controlSchema = z.strictObject({
  /** Empty string: no control socket. */
  socket: z.string().default('/run/tsieved/control.sock'),
});

const logSchema = z.strictObject({
  level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export const configSchema = z.strictObject({
  server: serverSchema.default(serverSchema.parse({})),
  tls: tlsSchema.default(tlsSchema.parse({})),
  auth: authSchema.default(authSchema.parse({})),
  storage: storageSchema.default(storageSchema.parse({})),
  sieve: sieveSchema.default(sieveSchema.parse({})),
  log: logSchema.default(logSchema.parse({})),
  metrics: metricsSchema.default(metricsSchema.parse({})),
  control: controlSchema.default(controlSchema.parse({})),
});

export type Config = z.infer<typeof configSchema>;

export type ListenerConfig = z.infer<typeof listener>;

/**
 * Whether every session has a process of its own: PAM always runs the session in
 * the PAM helper's child (which holds the user's credentials and tokens), and
 * `isolation = "process"` gives every other backend a file broker as the user.
 */
export function hasSessionProcesses(config: Pick<Config, 'auth' | 'storage'>): boolean {
  return config.storage.isolation === 'process' || config.auth.backend === 'pam';
}
