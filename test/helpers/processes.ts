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
