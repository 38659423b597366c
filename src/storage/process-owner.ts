/**
 * Who owns a lock or a temp file: the process that runs the store (the server, or
 * its storage process), named so that another process can tell, without waiting
 * for an age to pass, whether that owner is certainly gone.
 *
 * A record holds the host name, the kernel's boot id, the pid namespace, the pid
 * and the process's start time (clock ticks since boot, /proc/PID/stat field 22).
 * The owner is certainly gone only when it ran on this very kernel and namespace
 * (same host, boot id and pid namespace) and its pid is no longer a live process,
 * or is now a zombie, or belongs to a process that started at another time (the pid
 * was reused). Anything else (another host, a rebooted one, a record that cannot be
 * read, /proc hidden) counts as possibly alive, and the caller keeps its age rule.
 *
 * Must not know: what is owned, file layouts.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

export interface OwnerRecord {
  readonly host: string;
  readonly boot: string;
  readonly pidns: string;
  readonly pid: number;
  /** Start time in clock ticks since boot; '' when /proc could not say. */
  readonly start: string;
}

function readOr(read: () => string, fallback: string): string {
  try {
    return read().trim();
  } catch {
    return fallback;
  }
}

interface ProcStat {
  readonly state: string;
  readonly start: string;
}

/** State and start time of a pid from /proc; undefined when not visible. */
function procStat(pid: number): ProcStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and ')': fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); start time is field 22.
    return { state: fields[0] ?? '', start: fields[19] ?? '' };
  } catch {
    return undefined;
  }
}

let self: OwnerRecord | undefined;

/** This process's record (computed once). */
export function currentOwner(): OwnerRecord {
  self ??= {
    host: hostname(),
    boot: readOr(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8'), ''),
    pidns: readOr(() => readlinkSync('/proc/self/ns/pid'), ''),
    pid: process.pid,
    start: procStat(process.pid)?.start ?? '',
  };
  return self;
}

/** One line, `key=value` pairs; the host name is the last field (it is the free-form one). */
export function formatOwner(owner: OwnerRecord, since = new Date()): string {
  return `pid=${owner.pid} start=${owner.start} boot=${owner.boot} pidns=${owner.pidns} since=${since.toISOString()} host=${owner.host}\n`;
}

export function parseOwner(text: string): OwnerRecord | undefined {
  const m = /^pid=(\d+) start=(\d*) boot=(\S*) pidns=(\S*) since=\S+ host=([^\n]*)\n?$/.exec(text);
  if (!m) return undefined;
  return { pid: Number(m[1]), start: m[2], boot: m[3], pidns: m[4], host: m[5] };
}

/** 8 hex digits naming this host, boot and pid namespace (for temp file names). */
export function machineTag(owner: Pick<OwnerRecord, 'host' | 'boot' | 'pidns'> = currentOwner()): string {
  return createHash('sha256').update(`${owner.host}\0${owner.boot}\0${owner.pidns}`).digest('hex').slice(0, 8);
}

/** True only when the owner ran on this machine (tag) and its process is certainly gone. */
export function processGone(tag: string, pid: number, start: string): boolean {
  const me = currentOwner();
  if (me.boot === '' || me.pidns === '' || tag !== machineTag(me)) return false;
  if (pid === me.pid) return start !== me.start;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: alive, owned by someone else. ESRCH: gone.
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
  const stat = procStat(pid);
  if (!stat) return false; // alive, /proc hidden: cannot tell more
  if (stat.state === 'Z' || stat.state === 'X') return true;
  return start !== '' && stat.start !== start;
}

/** True only when the record's owner is certainly gone (see the header). */
export function ownerGone(owner: OwnerRecord): boolean {
  return processGone(machineTag(owner), owner.pid, owner.start);
}
