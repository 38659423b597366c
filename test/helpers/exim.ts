/**
 * A private Exim for end-to-end delivery tests: a configuration file, spool and
 * logs in a temporary directory, run as `exim4 -C FILE` by root (reference
 * exim-sieve.md section 10). No daemon is started and nothing leaves the machine:
 * every non-local address is "delivered" by appending to one mbox file in the
 * temporary directory, which is where redirects and vacation replies are read.
 * Also creates and removes the real Unix user the router runs as.
 *
 * Must not know: tsieved (the caller says where the filter file is, in Exim's
 * expansion syntax), or what the tests expect to find.
 *
 * Why the instance's exim_user is the test user: the autoreply transport (Sieve
 * vacation) runs as the local user and starts a child Exim with the same `-C`
 * file and `-odi`. Exim trusts `-C` only from root or its compiled-in user, so
 * that child drops privilege and receives and delivers the reply as the test
 * user; it can only do so if the private spool, logs and outbox belong to that
 * user. (The same holds for the delivery process of every message: Exim re-execs
 * itself as exim_user with `-C` and logs "exim user lost privilege for using -C
 * option"; with exim_user = the test user, it still runs as the right uid.)
 * `queue_only` is a safety net: anything accepted without `-odi` stays in the
 * queue, where `queue()` shows it, instead of being delivered.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findTool, tool } from './tools.js';

export interface UnixUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  /** userdel, and the home directory with it. */
  remove(): void;
}

/**
 * A throwaway system account (useradd), home created under `parent` and owned by
 * it; login shell nologin. Names are random so parallel runs do not collide.
 */
export function createUnixUser(parent: string, prefix = 'tse2e'): UnixUser {
  const name = `${prefix}${Math.random().toString(36).slice(2, 9)}`;
  const home = join(parent, name);
  execFileSync(
    tool('useradd'),
    ['--system', '--user-group', '--no-create-home', '--home-dir', home, '--shell', '/usr/sbin/nologin', name],
    {
      stdio: 'pipe',
    },
  );
  const uid = Number(execFileSync(tool('id'), ['-u', name], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync(tool('id'), ['-g', name], { encoding: 'utf8' }).trim());
  mkdirSync(home, { recursive: true, mode: 0o755 });
  chownSync(home, uid, gid);
  chmodSync(home, 0o755);
  return {
    name,
    uid,
    gid,
    home,
    remove: () => {
      // userdel refuses (status 8) while a process still runs as the user, e.g. a
      // tsieved storage worker that is just exiting: wait for it, then force.
      const pause = new Int32Array(new SharedArrayBuffer(4));
      let status: number | null = null;
      for (let i = 0; i < 50; i++) {
        status = spawnSync(tool('userdel'), [name], { stdio: 'ignore' }).status;
        if (status !== 8) break;
        Atomics.wait(pause, 0, 0, 100);
      }
      if (status === 8) spawnSync(tool('userdel'), ['--force', name], { stdio: 'ignore' });
      rmSync(home, { recursive: true, force: true });
    },
  };
}

export interface EximOptions {
  /** The test user: owns the spool (see header) and receives mail. */
  readonly user: UnixUser;
  readonly domain: string;
  /** Redirect router's `file` option, an Exim expansion, e.g. `$home/.public/.forward`. */
  readonly filterFile: string;
  /** HCoop sets check_owner/check_group = false; the Debian default checks them. */
  readonly checkOwner?: boolean;
  /** Set sieve_vacation_directory (vacation is disabled without it). */
  readonly vacationDirectory?: string;
}

export interface Delivery {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface PrivateExim {
  readonly dir: string;
  readonly configFile: string;
  /** mbox file where every non-local address ends up. */
  readonly outbox: string;
  /**
   * `exim -odi -f sender recipient < message`, as root, delivered before it
   * returns. With EXIM_DEBUG set in the environment, adds `-d+filter` (on stderr).
   */
  deliver(recipient: string, message: string, sender?: string): Delivery;
  /** `exim -bp`: the queue listing. */
  queue(): string;
  /** Message ids in the queue. */
  queuedIds(): string[];
  /** Remove every queued message (`-Mrm`). */
  clearQueue(): void;
  outboxText(): string;
  /**
   * What Exim logged: the main log (receptions) plus the stderr of every run. A
   * delivery process that dropped privilege for -C is "not really Exim": it does
   * not write the main log, and its deferrals and errors appear on stderr only.
   */
  log(): string;
  panicLog(): string;
  cleanup(): void;
}

export function eximBinary(): string {
  const found = findTool('exim4') ?? findTool('exim');
  if (!found) throw new Error('exim4 not installed');
  return found;
}

export function startPrivateExim(options: EximOptions): PrivateExim {
  const checkOwner = options.checkOwner ?? true;
  return startEximWithConfig({
    user: options.user,
    domains: [options.domain],
    routers: `# As Debian's userforward router (conf.d/router/600), reading the filter file
# tsieved writes.
userforward:
  driver = redirect
  domains = +local_domains
  check_local_user
  file = ${options.filterFile}
  allow_filter
  no_verify
  no_expn
  check_ancestor
  check_owner = ${checkOwner}
  check_group = ${checkOwner}
  file_transport = sieve_file
  directory_transport = sieve_file
  reply_transport = sieve_reply
${options.vacationDirectory ? `  sieve_vacation_directory = ${options.vacationDirectory}\n` : ''}`,
    transports: `# keep / implicit keep ("inbox") and fileinto: Maildir++ folders under ~/Maildir.
sieve_file:
  driver = appendfile
  directory = \${if eqi{$address_file}{inbox}{$home/Maildir}{$home/Maildir/.\${sg{$address_file}{/}{.}}}}
  maildir_format
  create_directory
  delivery_date_add
  envelope_to_add
  return_path_add

sieve_reply:
  driver = autoreply
`,
  });
}

export interface EximConfigParts {
  /** The test user: owns the spool (see header) and receives mail. */
  readonly user: UnixUser;
  /** Local domains; the first is the qualify domain. */
  readonly domains: readonly string[];
  /** Lines for the main section before the helper's own (e.g. macro definitions). */
  readonly main?: string;
  /** Routers placed after the outbox router and before the local_user fallback. */
  readonly routers: string;
  /** Transports placed before the helper's maildir_inbox and outbox transports. */
  readonly transports: string;
}

/**
 * A private Exim whose routers and transports come from the caller (e.g. files of
 * contrib/exim/), wrapped in the helper's main section, an outbox router first for
 * every non-local address, and a plain `local_user` Maildir delivery last.
 */
export function startEximWithConfig(parts: EximConfigParts): PrivateExim {
  const { user } = parts;
  const domain = parts.domains[0] ?? 'example.org';
  const dir = mkdtempSync(join(tmpdir(), 'tsieved-exim-'));
  // The child Exim started by autoreply runs as the user: it must reach the config.
  chmodSync(dir, 0o755);
  const spool = join(dir, 'spool');
  const logs = join(dir, 'log');
  const outDir = join(dir, 'outbox');
  for (const d of [spool, logs, outDir]) {
    mkdirSync(d, { mode: 0o750 });
    chownSync(d, user.uid, user.gid);
  }
  const outbox = join(outDir, 'mbox');
  const config = `# Private Exim for tsieved's integration tests (see test/helpers/exim.ts).
${parts.main ?? ''}
primary_hostname = tsieved.test
qualify_domain = ${domain}
domainlist local_domains = ${parts.domains.join(' : ')}
spool_directory = ${spool}
log_file_path = ${logs}/%slog
exim_user = ${user.name}
exim_group = ${user.name}
never_users = root
queue_only = true
keep_environment =
# Loopback only: no daemon runs, and no router below ever uses the network.
host_lookup =
rfc1413_hosts =

begin routers

# Every address outside the test domains (redirect targets, vacation replies)
# goes to the outbox file instead of the network.
outbox:
  driver = accept
  domains = ! +local_domains
  transport = outbox

${parts.routers}

local_user:
  driver = accept
  domains = +local_domains
  check_local_user
  transport = maildir_inbox

begin transports

${parts.transports}

maildir_inbox:
  driver = appendfile
  directory = $home/Maildir
  maildir_format
  create_directory
  delivery_date_add
  envelope_to_add
  return_path_add

outbox:
  driver = appendfile
  file = ${outbox}
  user = ${user.name}
  # Envelope-to names the original recipient; this names the address delivered to.
  headers_add = X-Outbox-Rcpt: $local_part@$domain
  envelope_to_add
  return_path_add
  delivery_date_add

begin retry
*   *   F,1h,10m
`;
  const configFile = join(dir, 'exim.conf');
  writeFileSync(configFile, config, { mode: 0o644 });
  const exim = eximBinary();
  const stderrLog: string[] = [];
  const run = (args: string[], input?: string): Delivery => {
    const r = spawnSync(exim, ['-C', configFile, ...args], { input, encoding: 'utf8', timeout: 30_000 });
    stderrLog.push(r.stderr ?? '');
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };
  const read = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8') : '');
  const queuedIds = (): string[] => {
    const input = join(spool, 'input');
    if (!existsSync(input)) return [];
    // Spool files may sit in split subdirectories; the default is flat.
    return readdirSync(input, { recursive: true })
      .map(String)
      .filter((f) => f.endsWith('-H'))
      .map((f) => f.slice(f.lastIndexOf('/') + 1, -2));
  };
  return {
    dir,
    configFile,
    outbox,
    deliver: (recipient, message, sender = 'sender@remote.test') =>
      run(['-odi', ...(process.env.EXIM_DEBUG ? ['-d+filter'] : []), '-f', sender, recipient], message),
    queue: () => run(['-bp']).stdout,
    queuedIds,
    clearQueue: () => {
      const ids = queuedIds();
      if (ids.length > 0) run(['-Mrm', ...ids]);
    },
    outboxText: () => read(outbox),
    log: () => read(join(logs, 'mainlog')) + stderrLog.join(''),
    panicLog: () => read(join(logs, 'paniclog')),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Messages in a Maildir folder (new/ and cur/), as text. */
export function maildirMessages(folder: string): string[] {
  const out: string[] = [];
  for (const sub of ['new', 'cur']) {
    const d = join(folder, sub);
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d).sort()) out.push(readFileSync(join(d, f), 'utf8'));
  }
  return out;
}

/** Splits an mbox file into messages at "From " separator lines. */
export function mboxMessages(text: string): string[] {
  if (text === '') return [];
  return text.split(/^(?=From \S+ )/m).filter((m) => m.trim() !== '');
}
