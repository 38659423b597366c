/**
 * The pino root logger and the per-connection child. Everything logs through
 * here so that the line shapes (one line per command, one stable line per failed
 * login for fail2ban) are decided in one place.
 *
 * Must not know: protocol or storage details beyond the fields it is handed.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createRootLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    { level, base: { service: 'tsieved' }, timestamp: pino.stdTimeFunctions.isoTime },
    destination ?? pino.destination({ fd: 2, sync: false }),
  );
}

/** A logger that drops everything; for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
