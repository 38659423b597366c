/**
 * The Prometheus metrics (prom-client): a ServerEvents implementation that turns
 * each report into counters and histograms, plus gauges read from the live
 * sessions at scrape time. Every name starts with `tsieved_`; labels take only
 * values the server chose (command names it knows, fixed reason words), never
 * client input, so a client cannot create series.
 *
 * Must not know: sockets, the wire protocol, how the registry is served (http.ts).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ConnectionSummary, ServerEvents } from '../session/events.js';

/** What the gauges read at scrape time. */
export interface LiveSessions {
  sessions(): readonly { readonly state: string; readonly pid?: number }[];
}

/** Command and validation latencies: most answers take milliseconds, a big script's check seconds. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Failed-login delays cluster around auth_failure_delay_ms (2 s by default). */
const DELAY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 2.5, 3, 5, 10];
const SESSION_BUCKETS = [1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400];

export class PrometheusEvents implements ServerEvents {
  readonly registry = new Registry();
  private live: LiveSessions = { sessions: () => [] };

  private readonly accepted: Counter;
  private readonly refused: Counter<'reason'>;
  private readonly closed: Counter<'reason'>;
  private readonly sessionSeconds: Histogram;
  private readonly bytes: Counter<'direction'>;
  private readonly logins: Counter<'backend' | 'mechanism' | 'outcome'>;
  private readonly delays: Histogram;
  private readonly commands: Histogram<'command' | 'status'>;
  private readonly validations: Histogram<'command' | 'verdict'>;
  private readonly storageErrors: Counter<'kind'>;
  private readonly proxyRefusals: Counter<'reason'>;
  private readonly reloads: Counter<'outcome'>;
  private readonly lastReloadOk: Gauge;

  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    // Read at scrape time from the live sessions (inside collect(), `this` is the gauge).
    const live = (): LiveSessions => this.live;
    new Gauge({
      name: 'tsieved_connections_open',
      help: 'Client connections open now',
      registers,
      collect() {
        this.set(live().sessions().length);
      },
    });
    new Gauge({
      name: 'tsieved_sessions_authenticated',
      help: 'Sessions logged in now',
      registers,
      collect() {
        this.set(
          live()
            .sessions()
            .filter((s) => s.state === 'authenticated').length,
        );
      },
    });
    new Gauge({
      name: 'tsieved_isolated_sessions',
      help: 'Sessions whose storage runs in their own process (storage worker or PAM helper child) now',
      registers,
      collect() {
        this.set(
          live()
            .sessions()
            .filter((s) => s.pid !== undefined).length,
        );
      },
    });
    this.accepted = new Counter({
      name: 'tsieved_connections_accepted_total',
      help: 'Connections accepted',
      registers,
    });
    this.refused = new Counter({
      name: 'tsieved_connections_refused_total',
      help: 'Connections turned away before a session started, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.closed = new Counter({
      name: 'tsieved_connections_closed_total',
      help: 'Sessions ended, by why they ended',
      labelNames: ['reason'],
      registers,
    });
    this.sessionSeconds = new Histogram({
      name: 'tsieved_session_duration_seconds',
      help: 'How long connections lasted',
      buckets: SESSION_BUCKETS,
      registers,
    });
    this.bytes = new Counter({
      name: 'tsieved_connection_bytes_total',
      help: 'Bytes of ended connections (TLS included), by direction',
      labelNames: ['direction'],
      registers,
    });
    this.logins = new Counter({
      name: 'tsieved_logins_total',
      help: 'Login attempts by auth backend, SASL mechanism and outcome (success or the failure class)',
      labelNames: ['backend', 'mechanism', 'outcome'],
      registers,
    });
    this.delays = new Histogram({
      name: 'tsieved_failed_login_delay_seconds',
      help: 'Time a failed login was held before its answer',
      buckets: DELAY_BUCKETS,
      registers,
    });
    this.commands = new Histogram({
      name: 'tsieved_command_duration_seconds',
      help: 'Commands by name and response status, with their latency (_count is the number of commands)',
      labelNames: ['command', 'status'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.validations = new Histogram({
      name: 'tsieved_script_validation_seconds',
      help: 'PUTSCRIPT/CHECKSCRIPT/SETACTIVE validation time by verdict',
      labelNames: ['command', 'verdict'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.storageErrors = new Counter({
      name: 'tsieved_storage_errors_total',
      help: 'Commands refused by a storage error, by kind',
      labelNames: ['kind'],
      registers,
    });
    this.proxyRefusals = new Counter({
      name: 'tsieved_proxy_refusals_total',
      help: 'Connections refused on a PROXY-protocol listener (untrusted peer, bad header)',
      labelNames: ['reason'],
      registers,
    });
    this.reloads = new Counter({
      name: 'tsieved_reloads_total',
      help: 'Configuration reloads (SIGHUP or tsieved reload) by outcome',
      labelNames: ['outcome'],
      registers,
      // Every worker reloads once per reload: across workers the count is the highest, not the sum.
      aggregator: 'max',
    });
    this.lastReloadOk = new Gauge({
      name: 'tsieved_config_last_reload_successful',
      help: '1 if the last reload succeeded (or none was tried), 0 if it failed',
      registers,
      // Across workers the lowest value is the truth: any worker on a failed reload counts.
      aggregator: 'min',
    });
    this.lastReloadOk.set(1);
    for (const reason of ['per-ip-limit', 'max-connections', 'untrusted-proxy', 'proxy-header', 'tls-handshake'])
      this.refused.inc({ reason }, 0);
    for (const outcome of ['success', 'failure']) this.reloads.inc({ outcome }, 0);
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'tsieved_' });
  }

  /** The gauges read these sessions (the connection manager, once it exists). */
  observe(live: LiveSessions): void {
    this.live = live;
  }

  connectionAccepted(): void {
    this.accepted.inc();
  }

  connectionRefused(reason: string): void {
    this.refused.inc({ reason });
    if (reason === 'untrusted-proxy' || reason === 'proxy-header') this.proxyRefusals.inc({ reason });
  }

  connectionClosed(summary: ConnectionSummary): void {
    this.closed.inc({ reason: summary.reason });
    this.sessionSeconds.observe(summary.seconds);
    this.bytes.inc({ direction: 'in' }, summary.bytesIn);
    this.bytes.inc({ direction: 'out' }, summary.bytesOut);
  }

  loginSucceeded(backend: string, mechanism: string): void {
    this.logins.inc({ backend, mechanism, outcome: 'success' });
  }

  loginFailed(backend: string, mechanism: string, failure: string): void {
    this.logins.inc({ backend, mechanism, outcome: failure });
  }

  failedLoginDelay(seconds: number): void {
    this.delays.observe(seconds);
  }

  commandCompleted(command: string, status: string, seconds: number): void {
    this.commands.observe({ command, status }, seconds);
  }

  scriptValidated(command: string, verdict: string, seconds: number): void {
    this.validations.observe({ command, verdict }, seconds);
  }

  storageError(kind: string): void {
    this.storageErrors.inc({ kind });
  }

  reloaded(outcome: 'success' | 'failure'): void {
    this.reloads.inc({ outcome });
    this.lastReloadOk.set(outcome === 'success' ? 1 : 0);
  }
}
