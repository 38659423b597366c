/**
 * Relays a worker's stderr into the server's log: pino JSON lines keep their level
 * and fields, anything else (a crash trace, a wrapper's complaint) is logged as text.
 *
 * Must not know: what the worker does.
 */
import type { Logger } from '../../log/logger.js';

const LEVELS: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = {
  10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal',
};
const MAX_LINE = 16 * 1024;

export function relayWorkerLog(stream: NodeJS.ReadableStream, log: Logger): void {
  let partial = '';
  const emit = (line: string): void => {
    if (line.trim() === '') return;
    if (line.startsWith('{')) {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        const level = LEVELS[typeof entry.level === 'number' ? entry.level : 30] ?? 'info';
        const { msg, level: _l, time: _t, service: _s, hostname: _h, ...fields } = entry;
        log[level]({ ...fields, from: 'worker' }, typeof msg === 'string' ? msg : '');
        return;
      } catch {
        /* not JSON after all */
      }
    }
    log.warn({ from: 'worker' }, line.slice(0, MAX_LINE));
  };
  stream.setEncoding?.('utf8');
  stream.on('data', (chunk: string | Buffer) => {
    partial += chunk.toString();
    let nl;
    while ((nl = partial.indexOf('\n')) >= 0) {
      emit(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
    }
    if (partial.length > MAX_LINE) {
      emit(partial);
      partial = '';
    }
  });
  stream.on('end', () => emit(partial));
  stream.on('error', () => undefined);
}
