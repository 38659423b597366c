/**
 * The pino root logger and the per-connection child. Everything logs through
 * here so that the line shapes (one line per command, one stable line per failed
 * login for fail2ban) are decided in one place.
 *
 * Logging never queues without bound: stderr is written asynchronously, and when
 * it does not keep up (a slow journald, a stalled pipe) at most MAX_QUEUED_LOG_BYTES
 * wait; further lines are dropped and counted, and one warning line per second says
 * how many were lost. A flood of commands once queued every line in memory until
 * the heap ran out. The lines of one event-loop turn go to stderr in one write.
 *
 * Must not know: protocol or storage details beyond the fields it is handed.
 */
import type { EventEmitter } from 'node:events';
import { writeSync } from 'node:fs';
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
  const fd = options.fd ?? 2;
  const queue = pino.destination({ fd, sync: false, maxLength: options.maxQueuedBytes ?? MAX_QUEUED_LOG_BYTES });
  const lines = new TurnLines(queue, (text) => writeSync(fd, text));
  const log = pino(settings, lines);
  reportDrops(queue, log, lines);
  return log;
}

type Destination = ReturnType<typeof pino.destination>;

/** Lines of one turn are handed on together once they reach this many characters. */
const TURN_LINES_LIMIT = 16 * 1024;

/**
 * Hands the lines logged during one event-loop turn to the destination as one
 * write. A login logs about nine lines (its commands, the login, the script
 * stored and activated, the disconnect), and every write the destination starts
 * on its own is a thread-pool round trip; under load, the lines of many sessions
 * share one. Never holds more than TURN_LINES_LIMIT: the bound on what waits is
 * the destination's (MAX_QUEUED_LOG_BYTES). At exit, what is left is written
 * synchronously, after pino's own flush of the destination.
 */
export class TurnLines {
  private pending = '';
  private scheduled = false;

  constructor(
    private readonly queue: Pick<Destination, 'write' | 'flush' | 'flushSync'>,
    /**
     * Writes at exit. Handed to the destination then, the lines would start an
     * asynchronous write that the exit may never let happen (flushSync leaves a
     * write in progress alone): a process ending right after logging lost them now
     * and then.
     */
    writeSync: (text: string) => void = (text) => queue.write(text),
  ) {
    process.on('exit', () => {
      try {
        // What the destination holds first, then what waits here, in that order.
        queue.flushSync();
        const text = this.pending;
        this.pending = '';
        if (text !== '') writeSync(text);
        queue.flushSync();
      } catch {
        // Destination not open, or gone: nothing more can be written.
      }
    });
  }

  write(line: string): boolean {
    this.pending += line;
    if (this.pending.length >= TURN_LINES_LIMIT) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      });
    }
    return true;
  }

  /** pino's logger.flush(): hand on what waits, then flush the destination. */
  flush(callback?: (error?: Error) => void): void {
    if (this.pending !== '') {
      const text = this.pending;
      this.pending = '';
      this.queue.write(text);
    }
    if (callback) this.queue.flush(callback);
  }
}

/**
 * Counts the lines the destination drops ('drop' events) and reports them in one
 * warning per interval. While the destination is still full the report itself is
 * dropped (synchronously, inside the write it is handed on with): then the count
 * is kept and the report tried again an interval later, so no loss goes unreported.
 */
function reportDrops(queue: EventEmitter, log: Logger, lines: TurnLines): void {
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
    // The turn's other lines first (their drops are counted as usual), then the
    // report alone, handed on at once so that its own drop is seen here.
    lines.flush();
    const count = dropped;
    reporting = true;
    reportLost = false;
    log.warn({ event: 'log-dropped', count }, `${count} log lines dropped: the log destination did not keep up`);
    lines.flush();
    reporting = false;
    if (reportLost) schedule();
    else dropped -= count;
  };
  queue.on('drop', (data: string | Buffer) => {
    if (reporting) {
      reportLost = true;
      return;
    }
    dropped += linesIn(data);
    schedule();
  });
}

/** Lines in a dropped piece of output (the lines of a turn are written together). */
function linesIn(data: string | Buffer): number {
  const text = typeof data === 'string' ? data : data.toString('utf8');
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return Math.max(n, 1);
}

/** A logger that drops everything; for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
