/**
 * One server process of a cluster: runs the same server as a single process does,
 * on the listeners node:cluster shares, but asks the primary before admitting a
 * connection or checking a login (worker-limits.ts: the limits hold across
 * workers), answers the primary's who/kick/reload requests, and hands its
 * metrics to prom-client's aggregation. SIGTERM drains it exactly like a single process.
 *
 * Must not know: how many other workers there are.
 */
import cluster from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { ReloadOutcome, RunningServer } from '../main.js';
import { onPrimaryMessage } from './batch.js';
import { isMessage, type ToPrimary, type ToWorker } from './messages.js';
import { followPenalties } from './worker-limits.js';

function send(message: ToPrimary): void {
  process.send?.(message);
}

/**
 * The configuration text the primary applies, asked for when a worker starts: a
 * replacement worker then runs the configuration in force, not an edit of the file
 * that was never reloaded. Over the IPC channel, not the environment, which holds
 * at most 128 KiB per variable and is readable in /proc.
 */
export function configFromPrimary(): Promise<string | undefined> {
  return new Promise((resolve) => {
    const stop = onPrimaryMessage((message) => {
      if (!isMessage<ToWorker>(message) || message.t !== 'tsieved:config') return;
      stop();
      followPenalties(message.penalized);
      resolve(message.text);
    });
    send({ t: 'tsieved:config?' });
  });
}

export interface WorkerHooks {
  /** Applies the configuration text the primary read (the same reload SIGHUP does alone). */
  reload(text: string): Promise<ReloadOutcome>;
}

/** After startServer: serve the primary's requests and say we are up. */
export function serveAsWorker(server: RunningServer, config: Config, hooks: WorkerHooks, log: Logger): void {
  if (server.metricsRegistry) {
    // Constructing one registers prom-client's reply to the primary's metrics request.
    new AggregatorRegistry();
    AggregatorRegistry.setRegistries([server.metricsRegistry]);
  }
  onPrimaryMessage((message) => {
    if (!isMessage<ToWorker>(message)) return;
    // configFromPrimary's, and the penalty list's (worker-limits.ts).
    if (message.t === 'tsieved:config' || message.t === 'tsieved:penalized' || message.t === 'tsieved:cleared') return;
    const reply = (value: unknown): void => send({ t: 'tsieved:reply', id: message.id, value });
    switch (message.t) {
      case 'tsieved:who':
        reply(server.sessions().map((s) => ({ ...s, worker: cluster.worker?.id, workerPid: process.pid })));
        break;
      case 'tsieved:kick':
        void server.kick(message.target).then(reply, () => reply(0));
        break;
      case 'tsieved:reload':
        void hooks
          .reload(message.text)
          .then(reply, (error: unknown) => reply({ ok: false, error: (error as Error).message }));
        break;
      case 'tsieved:answer':
        break; // answers to this worker's own questions, taken in worker-limits.ts
    }
  });
  log.info({ event: 'worker-ready', worker: cluster.worker?.id, workers: config.server.workers }, 'worker ready');
  send({ t: 'tsieved:ready' });
}
