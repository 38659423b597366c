/**
 * The primary of `[server] workers = N` (N > 1): starts N server processes with
 * node:cluster, which share the listening sockets (the primary accepts and hands
 * connections out round-robin), and is the one place that sees all of them:
 *   - it keeps the limits for every worker (shared-limits.ts): connections against
 *     max_connections and max_connections_per_ip, session slots against
 *     max_sessions_per_user, and the failed-login penalty per address; a worker
 *     asks before admitting or checking a login, so the limits hold for the
 *     server, not per worker, and a dead worker's slots are given back;
 *   - it serves /metrics, summing the workers' metrics (prom-client's
 *     AggregatorRegistry), and the control socket, asking every worker for
 *     `who`/`kick`/`reload` and merging the answers;
 *   - SIGHUP and `tsieved reload` reload every worker, SIGTERM drains every worker
 *     (each exactly as a single process does) and exits when all have. Listener
 *     changes need nothing more: a worker's listen() asks node:cluster's primary
 *     for the socket of that address (bound on first request, shared after), and
 *     its close() leaves it; the primary closes the socket once no worker is left
 *     on it. So a removed address stops accepting once every worker has reloaded,
 *     a new one is bound once and served by all, a changed one is left and joined
 *     again with its new options; sessions already accepted are the workers' own
 *     and go on (test/ops/workers-listeners.test.ts);
 *   - a worker that dies is replaced; the other workers' sessions go on.
 * It accepts no session itself and runs no auth or storage code.
 *
 * Must not know: the protocol, auth, storage.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { AggregatorRegistry } from 'prom-client';
import { parseConfig, readConfigText } from '../config/loader.js';
import { hasSessionProcesses, type Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { ListenerChangeSummary, ReloadOutcome } from '../main.js';
import { startMetricsEndpoint, type MetricsEndpoint } from '../metrics/http.js';
import { startControlSocket, type ControlSocket } from '../control/socket.js';
import { TurnBatcher, unbatched } from './batch.js';
import { isMessage, type Answer, type ToPrimary, type ToWorker } from './messages.js';
import { SharedLimits } from './shared-limits.js';

/** A worker that does not answer a who/kick/reload within this is left out (and named). */
const REQUEST_TIMEOUT_MS = 20_000;
/** A worker that dies is replaced after this pause, so a crash loop does not spin. */
const RESTART_DELAY_MS = 1000;

type Outcome = ReloadOutcome;

/**
 * `[server] workers`: a number as given; "auto" is one per core the process may
 * use, or half as many (rounded up) when every session has a process of its own
 * (PAM, or isolation = "process"). Those processes (the PAM transaction with its
 * password hash, the file broker's system calls) take about as much CPU as the
 * workers do, so workers on every core would only compete with them. Measured on
 * 2 cores (BENCHMARKS.md, "How many workers"): a second worker added 15% CPU per
 * full session (the primary hands out every connection and answers each worker's
 * limit questions) and widened the spread of session times (p99 185-204 against
 * 151-172 ms, at the same median), because each worker's sessions queue behind
 * that worker alone.
 */
export function resolveWorkers(config: Pick<Config, 'server' | 'auth' | 'storage'>): number {
  const setting = config.server.workers;
  if (setting !== 'auto') return setting;
  const cores = Math.max(1, availableParallelism());
  return hasSessionProcesses(config) ? Math.ceil(cores / 2) : cores;
}

/** Where the configuration came from: the file, and its text as last applied. */
export interface ConfigSource {
  readonly file: string;
  readonly text: string;
}

/** The environment variable that hands a new worker the configuration text in force. */

export async function runPrimary(
  config: Config,
  source: ConfigSource | undefined,
  workers: number,
  log: Logger,
): Promise<number> {
  const file = source?.file;
  // A worker started later (a replacement) gets the configuration in force, not
  // whatever the file says by then: an edit takes effect with the next reload.
  let applied = source?.text;
  // The limits' answers and notices go to each worker once per turn (batch.ts).
  const batchers = new Map<number, TurnBatcher<ToWorker>>();
  const batched = (worker: Worker): TurnBatcher<ToWorker> => {
    let batcher = batchers.get(worker.id);
    if (!batcher) {
      batcher = new TurnBatcher((message) => {
        if (worker.isConnected()) worker.send(message);
      });
      batchers.set(worker.id, batcher);
    }
    return batcher;
  };
  const limits = new SharedLimits((message) => {
    for (const w of Object.values(cluster.workers ?? {})) if (w?.isConnected()) batched(w).send(message);
  });
  const ready = new Set<number>();
  let stopping = false;
  let startingUp = true;
  let startupFailure: string | undefined;
  let nextRequest = 1;
  const pending = new Map<number, { worker: number; resolve: (value: unknown) => void }>();

  const onMessage = (worker: Worker, message: unknown): void => {
    if (!isMessage<ToPrimary>(message)) return;
    const answer = (id: number, value: Answer): void => batched(worker).send({ t: 'tsieved:answer', id, value });
    if (limits.handle(worker.id, message, answer)) return;
    switch (message.t) {
      case 'tsieved:config?': {
        const reply: ToWorker = { t: 'tsieved:config', text: applied, penalized: limits.penalizedKeys() };
        worker.send(reply);
        break;
      }
      case 'tsieved:ready':
        ready.add(worker.id);
        break;
      case 'tsieved:reply': {
        const waiting = pending.get(message.id);
        pending.delete(message.id);
        waiting?.resolve(message.value);
        break;
      }
      default:
        break; // the limits' messages, handled above
    }
  };
  cluster.on('message', (worker: Worker, message: unknown) => {
    for (const m of unbatched(message)) onMessage(worker, m);
  });

  /** Asks every running worker; a worker that does not answer in time is reported as such. */
  const ask = async (make: (id: number) => ToWorker): Promise<{ worker: number; value: unknown }[]> => {
    const live = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && ready.has(w.id));
    return Promise.all(
      live.map(
        (w) =>
          new Promise<{ worker: number; value: unknown }>((resolve) => {
            const id = nextRequest++;
            const timer = setTimeout(() => {
              pending.delete(id);
              resolve({ worker: w.id, value: { timeout: true } });
            }, REQUEST_TIMEOUT_MS);
            pending.set(id, {
              worker: w.id,
              resolve: (value) => {
                clearTimeout(timer);
                resolve({ worker: w.id, value });
              },
            });
            w.send(make(id), (err: Error | null) => {
              // Gone before it could be asked: no answer, at once rather than at the timeout.
              if (!err) return;
              const waiting = pending.get(id);
              pending.delete(id);
              waiting?.resolve({ timeout: true });
            });
          }),
      ),
    );
  };

  const fork = (): Worker => {
    const worker = cluster.fork();
    // A message to a worker that has just died (a handed-over connection, an answer
    // to its admission or login question) fails with EPIPE, raised as this event;
    // unheard, it would end the primary and every other worker's sessions with it.
    // The worker's 'exit' follows and is handled below.
    worker.on('error', (err) =>
      log.warn(
        { event: 'worker-channel-error', worker: worker.id, err },
        'a message to a worker that has gone was lost',
      ),
    );
    return worker;
  };
  cluster.on('exit', (worker, code, signal) => {
    batchers.delete(worker.id);
    limits.workerGone(worker.id);
    const wasReady = ready.delete(worker.id);
    if (stopping) return;
    log.error(
      { event: 'worker-exit', worker: worker.id, pid: worker.process.pid, code, signal },
      'worker ended; starting another',
    );
    if (!wasReady && startingUp) {
      // A worker that cannot even start (bad listener, broken config) would only
      // fail again: stop rather than loop.
      startupFailure ??= `worker ${worker.id} ended (${signal ?? `exit ${code}`}) before it was ready`;
      return;
    }
    setTimeout(() => {
      if (!stopping) fork();
    }, RESTART_DELAY_MS).unref();
  });

  let endpoint: MetricsEndpoint | undefined;
  if (config.metrics.listen !== undefined) {
    const aggregator = new AggregatorRegistry();
    endpoint = await startMetricsEndpoint(
      config.metrics.listen,
      config.metrics.token_file,
      async () => ({
        contentType: aggregator.contentType,
        body: await aggregator.clusterMetrics(),
      }),
      log,
    );
  }

  const reload = async (): Promise<Outcome> => {
    if (!file) return { ok: false, error: 'the demo has no configuration file to re-read' };
    let next: Config;
    let text: string;
    try {
      text = await readConfigText(file);
      next = parseConfig(text, file);
    } catch (error) {
      log.error({ event: 'reload-failed', err: error }, 'reload failed; keeping the running configuration');
      return { ok: false, error: (error as Error).message };
    }
    const answers = await ask((id) => ({ t: 'tsieved:reload', id, text }));
    const failures = answers.flatMap(({ worker, value }) => {
      const v = value as Outcome & { timeout?: boolean };
      if (v.timeout) return [`worker ${worker}: no answer`];
      return v.ok ? [] : [`worker ${worker}: ${v.error}`];
    });
    if (failures.length > 0) {
      log.error(
        { event: 'reload-failed', failures },
        'reload failed in some workers; they keep their running configuration',
      );
      return { ok: false, error: failures.join('; ') };
    }
    applied = text;
    const outcomes = answers.map(({ value }) => value as Outcome & { ok: true });
    const notApplied = [...new Set(outcomes.flatMap((v) => v.notApplied ?? []))];
    // Every worker applied the same list; each reports what it changed (a union,
    // in case one differed: a worker that had already failed to bind, say).
    const listeners: ListenerChangeSummary = {
      bound: [...new Set(outcomes.flatMap((v) => v.listeners?.bound ?? []))],
      closed: [...new Set(outcomes.flatMap((v) => v.listeners?.closed ?? []))],
      rebound: [...new Set(outcomes.flatMap((v) => v.listeners?.rebound ?? []))],
    };
    await endpoint
      ?.reloadToken(next.metrics.token_file)
      .catch((error: unknown) => log.error({ err: error }, 'metrics token not re-read'));
    if (resolveWorkers(next) !== workers) {
      log.warn(
        { event: 'workers-unchanged', running: workers, configured: next.server.workers },
        '[server] workers changes need a restart',
      );
      notApplied.push(`[server] workers = ${String(next.server.workers)}: needs a restart (running ${workers})`);
    }
    // The same line a single process logs (main.ts), once for the whole server.
    const line = {
      event: 'reloaded',
      workers: answers.length,
      listenersBound: listeners.bound,
      listenersClosed: listeners.closed,
      listenersRebound: listeners.rebound,
      ...(notApplied.length > 0 ? { notApplied } : {}),
    };
    if (notApplied.length > 0)
      log.warn(
        line,
        `configuration reloaded, except (needs the problem fixed, or a restart): ${notApplied.join('; ')}`,
      );
    else log.info(line, 'configuration reloaded in every worker; open sessions keep their settings until they end');
    return notApplied.length > 0 ? { ok: true, notApplied, listeners } : { ok: true, listeners };
  };

  let control: ControlSocket | undefined;
  if (config.control.socket !== '') {
    control = await startControlSocket(
      config.control.socket,
      {
        who: async () =>
          (await ask((id) => ({ t: 'tsieved:who', id }))).flatMap(({ value }) =>
            Array.isArray(value) ? (value as Record<string, unknown>[]) : [],
          ),
        kick: async (target) =>
          (await ask((id) => ({ t: 'tsieved:kick', id, target }))).reduce(
            (n, { value }) => n + (typeof value === 'number' ? value : 0),
            0,
          ),
        reload,
      },
      log,
    ).catch((error: unknown) => {
      log.warn(
        { event: 'control-unavailable', path: config.control.socket, err: (error as Error).message },
        'no control socket: tsieved who/kick/reload will not work',
      );
      return undefined;
    });
  }

  process.on('SIGHUP', () => void reload());
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    log.info({ event: 'stopping' }, 'SIGTERM: every worker stops accepting and lets its sessions finish');
    const workersLeft = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    for (const w of workersLeft) w.process.kill('SIGTERM');
    void Promise.all(workersLeft.map((w) => (w.isDead() ? Promise.resolve() : new Promise((r) => w.once('exit', r)))))
      .then(() => Promise.all([endpoint?.close(), control?.close()]))
      .then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Signals, /metrics and the control socket are ready before the first worker
  // listens: a SIGTERM right after start-up must find its handler.
  for (let i = 0; i < workers; i++) fork();
  while (ready.size < workers && startupFailure === undefined) await new Promise((r) => setTimeout(r, 50));
  startingUp = false;
  if (startupFailure !== undefined) {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    log.error({ event: 'startup-failed' }, startupFailure);
    await Promise.all([endpoint?.close(), control?.close()]);
    return 1;
  }
  log.info({ event: 'cluster-ready', workers, pid: process.pid }, `${workers} workers serving`);
  return new Promise<number>(() => undefined);
}
