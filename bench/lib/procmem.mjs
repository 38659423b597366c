// Memory of a server: RSS and PSS of a process and all its descendants, from
// /proc (Linux). PSS splits shared pages between the processes sharing them, so a
// multi-process server (Dovecot) and a single process (tsieved) compare fairly.
// Must not know: which server it is measuring.
import { readFileSync, readdirSync } from 'node:fs';

function parentOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and parentheses: parse after the last ')'.
    const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(after[1]);
  } catch {
    return -1;
  }
}

/** The pid and every descendant of it. */
export function processTree(root) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const ppid = parentOf(pid);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(pid);
  }
  const out = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop();
    out.push(pid);
    for (const c of children.get(pid) ?? []) stack.push(c);
  }
  return out;
}

function rollup(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
    return { rss: kb('Rss') * 1024, pss: kb('Pss') * 1024 };
  } catch {
    return { rss: 0, pss: 0 };
  }
}

/** { rss, pss, processes } summed over the process tree rooted at `pid`, in bytes. */
export function treeMemory(pid) {
  let rss = 0;
  let pss = 0;
  const pids = processTree(pid);
  for (const p of pids) {
    const m = rollup(p);
    rss += m.rss;
    pss += m.pss;
  }
  return { rss, pss, processes: pids.length };
}

/**
 * CPU time (ms) a server has used, all its processes together: each live process's
 * own time plus that of the children it has reaped (utime, stime, cutime, cstime),
 * so sessions that have ended still count as long as a process of the server reaped them.
 */
export function treeCpuMs(root) {
  const tick = 1000 / 100; // USER_HZ
  let ticks = 0;
  for (const pid of processTree(root)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Fields 14-17 of proc(5), counted here from field 3 (the state).
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      /* gone */
    }
  }
  return ticks * tick;
}
