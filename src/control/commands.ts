/**
 * `tsieved who`, `tsieved kick USER|ADDRESS` and `tsieved reload`: read the
 * configuration for the control socket's path, send one request, print the answer.
 * Exit 0 on success, 1 when the server refused or is not there, 2 on usage errors.
 *
 * Must not know: how the server keeps its sessions.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/loader.js';
import { controlRequest, type ControlRequest } from './socket.js';

export const CONTROL_USAGE = `tsieved who [--config FILE] [--json]
  tsieved kick [--config FILE] USER|ADDRESS
  tsieved reload [--config FILE]`;

export const DEFAULT_CONFIG = '/etc/tsieved/tsieved.toml';

interface Io {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

/** Sessions as a table, one line each, columns as `doveadm who` users would expect. */
export function formatWho(sessions: readonly Record<string, unknown>[]): string {
  const header = ['USER', 'CLIENT', 'SINCE', 'STATE', 'TLS', 'LAST COMMAND', 'PID'];
  const rows = sessions.map((s) => [
    typeof s.user === 'string' ? s.user : '-',
    typeof s.remote === 'string' ? s.remote : '-',
    typeof s.since === 'string' ? s.since : '-',
    s.state === 'authenticated' ? 'authenticated' : 'login',
    s.secure === true ? 'yes' : 'no',
    typeof s.lastCommand === 'string' ? s.lastCommand : '-',
    typeof s.pid === 'number' ? String(s.pid) : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export async function runControl(command: 'who' | 'kick' | 'reload', argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { config: { type: 'string' }, json: { type: 'boolean' } },
    allowPositionals: true,
  });
  const wanted = command === 'kick' ? 1 : 0;
  if (positionals.length !== wanted) {
    io.stderr.write(`usage:\n  ${CONTROL_USAGE}\n`);
    return 2;
  }
  const config = await loadConfig(values.config ?? DEFAULT_CONFIG);
  const path = config.control.socket;
  if (path === '') {
    io.stderr.write('tsieved: [control] socket is off in the configuration\n');
    return 1;
  }
  const request: ControlRequest = command === 'kick' ? { cmd: 'kick', target: positionals[0] } : { cmd: command };
  let answer;
  try {
    answer = await controlRequest(path, request);
  } catch (error) {
    io.stderr.write(`tsieved: cannot reach the server on ${path}: ${(error as Error).message}\n`);
    return 1;
  }
  if (!answer.ok) {
    io.stderr.write(`tsieved: ${command} failed: ${answer.error}\n`);
    return 1;
  }
  switch (command) {
    case 'who':
      io.stdout.write(values.json ? JSON.stringify(answer.sessions ?? []) + '\n' : formatWho(answer.sessions ?? []));
      return 0;
    case 'kick': {
      const n = answer.kicked ?? 0;
      io.stdout.write(`${n} session${n === 1 ? '' : 's'} ended\n`);
      return n > 0 ? 0 : 1;
    }
    case 'reload':
      if (answer.notApplied && answer.notApplied.length > 0) {
        // The rest took effect; say what did not, and fail so scripts notice.
        io.stdout.write(
          `configuration reloaded, except (fix it, or restart):\n${answer.notApplied.map((n) => `  ${n}\n`).join('')}`,
        );
        return 1;
      }
      io.stdout.write('configuration reloaded\n');
      return 0;
  }
}
