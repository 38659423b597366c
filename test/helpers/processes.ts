/**
 * Processes seen through Linux /proc, for tests that look at a server's process
 * tree (cluster workers, PAM helpers).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** The pids whose parent is `parent` (field 4 of /proc/PID/stat, read after the command name). */
export function childPids(parent: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent;
      } catch {
        return false; // gone since the directory was listed
      }
    })
    .map(Number);
}

/** Is the process there and not a zombie? (A helper that reaps its children leaves none for long.) */
export function runningProcess(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Resolves once `cond` holds (checked every 20 ms); throws after `ms`. */
export async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
