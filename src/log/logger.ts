/**
 * The pino root logger and the per-connection child. Everything logs through
 * here so that the line shapes (one line per command, one stable line per failed
 * login for fail2ban) are decided in one place.
 *
 * Logging never queues without bound: stderr is written asynchronously, and when
 * it does not keep up (a slow journald, a stalled pipe) at most MAX_QUEUED_LOG_BYTES
 * wait; further lines are dropped and counted, and one warning line per second says
 * how many were lost. A flood of commands once queued every line in memory until
 * the heap ran out.
 *
 * Must not know: protocol or storage details beyond the fields it is handed.
 */
import type { EventEmitter } from 'node:events';
import { pino, type Logger } from 'pino';

export type { Logger };

/** Log output allowed to wait for a slow stderr before lines are dropped. */
export const MAX_QUEUED_LOG_BYTES = 4 * 1024 * 1024;
/** How often dropped lines are reported (one line for all of them). */
export const DROP_REPORT_INTERVAL_MS = 1000;

export interface RootLoggerOptions {
  /** Where lines go (default: stderr, fd 2). */
  readonly fd?: number;
  readonly maxQueuedBytes?: number;
}

export function createRootLogger(
  level: string,
  destination?: NodeJS.WritableStream,
  options: RootLoggerOptions = {},
): Logger {
  const settings = { level, base: { service: 'tsieved' }, timestamp: pino.stdTimeFunctions.isoTime };
  if (destination) return pino(settings, destination);
  const queue = pino.destination({
    fd: options.fd ?? 2,
    sync: false,
    maxLength: options.maxQueuedBytes ?? MAX_QUEUED_LOG_BYTES,
  });
  const log = pino(settings, queue);
  reportDrops(queue, log);
  return log;
}

/**
 * Counts the lines the destination drops ('drop' events) and reports them in one
 * warning per interval. While the destination is still full the report itself is
 * dropped (synchronously, inside the write): then the count is kept and the
 * report tried again an interval later, so no loss goes unreported.
 */
function reportDrops(queue: EventEmitter, log: Logger): void {
  let dropped = 0;
  let reporting = false;
  let reportLost = false;
  let timer: NodeJS.Timeout | undefined;
  const schedule = (): void => {
    if (timer) return;
    timer = setTimeout(report, DROP_REPORT_INTERVAL_MS);
    // Never keeps the process alive on its own.
    timer.unref();
  };
  const report = (): void => {
    timer = undefined;
    const count = dropped;
    reporting = true;
    reportLost = false;
    log.warn({ event: 'log-dropped', count }, `${count} log lines dropped: the log destination did not keep up`);
    reporting = false;
    if (reportLost) schedule();
    else dropped -= count;
  };
  queue.on('drop', () => {
    if (reporting) {
      reportLost = true;
      return;
    }
    dropped++;
    schedule();
  });
}

/** A logger that drops everything; for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
