/**
 * Start-up check for isolation = "process": the server must be able to start
 * file brokers as other users, i.e. run as root or hold CAP_SETUID and CAP_SETGID.
 * Refusing to start beats every login failing later with TRYLATER.
 *
 * Must not know: anything but the current process's credentials.
 */
import { readFileSync } from 'node:fs';

const CAP_SETGID = 6n;
const CAP_SETUID = 7n;

/** Effective capability mask from /proc/self/status (Linux), or undefined. */
function effectiveCaps(): bigint | undefined {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? BigInt(`0x${m[1]}`) : undefined;
  } catch {
    return undefined;
  }
}

/** Why process isolation cannot work here, or undefined when it can. */
export function processIsolationProblem(): string | undefined {
  if (process.getuid?.() === 0) return undefined;
  const caps = effectiveCaps();
  if (caps !== undefined && (caps >> CAP_SETUID) & 1n && (caps >> CAP_SETGID) & 1n) return undefined;
  return (
    '[storage] isolation = "process" starts each session\'s file broker as that user, which needs root ' +
    '(or CAP_SETUID and CAP_SETGID); this server runs as uid ' +
    `${process.getuid?.() ?? '?'} without them. Run it as root, or set isolation = "none".`
  );
}

export class IsolationUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IsolationUnavailableError';
  }
}

/** For main.ts at start-up; throws IsolationUnavailableError with a clear message. */
export function assertProcessIsolationUsable(): void {
  const problem = processIsolationProblem();
  if (problem) throw new IsolationUnavailableError(problem);
}
