/**
 * Relays a child process's stderr (a storage worker, the PAM helper) into the
 * server's log: pino JSON lines keep their level and fields, anything else (a crash
 * trace, a wrapper's or PAM module's message) is logged as text.
 *
 * The child runs as the user, who may be able to write to its stderr: what comes
 * through is untrusted. It must never be able to forge the server's own lines
 * (above all the `auth-failure` line fail2ban acts on, which could get any address
 * banned): keys the server's lines use are renamed `worker_*`, and nested values
 * are flattened to JSON strings, so that their keys and quotes arrive escaped.
 *
 * Must not know: what the child does.
 */
import type { Logger } from './logger.js';

const LEVELS: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};
const MAX_LINE = 16 * 1024;
/** Keys of the server's own lines; a child's field of that name is renamed. */
const RESERVED = new Set([
  'event',
  'remote',
  'client',
  'user',
  'from',
  'component',
  'mechanism',
  'reason',
  'command',
  'status',
  'code',
]);

function untrustedFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    const safeKey = RESERVED.has(key) ? `worker_${key}` : key;
    out[safeKey] = value !== null && typeof value === 'object' ? JSON.stringify(value).slice(0, MAX_LINE) : value;
  }
  return out;
}

export interface RelayOptions {
  /** `from` field of plain-text lines. */
  readonly textFrom?: string;
  /** Level of plain-text lines. */
  readonly textLevel?: 'info' | 'warn';
}

export function relayChildLog(stream: NodeJS.ReadableStream, log: Logger, options: RelayOptions = {}): void {
  const textFrom = options.textFrom ?? 'worker';
  const textLevel = options.textLevel ?? 'warn';
  let partial = '';
  const emit = (line: string): void => {
    if (line.trim() === '') return;
    if (line.startsWith('{')) {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        const level = LEVELS[typeof entry.level === 'number' ? entry.level : 30] ?? 'info';
        const { msg, level: _l, time: _t, service: _s, hostname: _h, ...fields } = entry;
        log[level](
          { ...untrustedFields(fields), from: 'worker' },
          typeof msg === 'string' ? msg.slice(0, MAX_LINE) : '',
        );
        return;
      } catch {
        /* not JSON after all */
      }
    }
    log[textLevel]({ from: textFrom }, line.slice(0, MAX_LINE));
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
