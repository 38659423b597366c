/**
 * A private Dovecot IMAP server on loopback for web-mail tests (Roundcube logs in
 * over IMAP before it talks ManageSieve): its own dovecot.conf, base_dir,
 * state_dir and log in a temporary directory, `dovecot -F -c FILE`, plain IMAP
 * on 127.0.0.1 only. passdb and userdb are the passwd-file the caller gives, the
 * same file tsieved authenticates against, so both see one account; mail is the
 * user's ~/Maildir, where the test Exim delivers. /etc/dovecot and the system's
 * Dovecot service are never read or touched.
 *
 * Must not know: Roundcube, tsieved, what the tests check.
 */
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freeLoopbackPort, waitForPort } from './net.js';
import { findTool } from './tools.js';

export interface DovecotImapOptions {
  /** Dovecot passwd-file (`user:{SCHEME}hash:uid:gid::home::`), readable by root. */
  readonly passwdFile: string;
}

export interface DovecotImap {
  readonly port: number;
  readonly dir: string;
  /** Logs in over IMAP and creates and subscribes a folder, as a mail client would. */
  createFolder(user: string, password: string, folder: string): Promise<void>;
  log(): string;
  stop(): Promise<void>;
}

export async function startDovecotImap(options: DovecotImapOptions): Promise<DovecotImap> {
  const binary = findTool('dovecot');
  if (!binary) throw new Error('dovecot not installed');
  const dir = mkdtempSync(join(tmpdir(), 'tsieved-imap-'));
  // Dovecot's auth and login processes run as its own users and must reach into it.
  chmodSync(dir, 0o755);
  for (const d of ['run', 'state']) mkdirSync(join(dir, d));
  // The auth worker runs as Dovecot's internal user: it must read its own copy of the passwd-file.
  const passwd = join(dir, 'passwd');
  writeFileSync(passwd, readFileSync(options.passwdFile), { mode: 0o640 });
  chownSync(passwd, 0, Number(readGroupId('dovecot')));
  const port = await freeLoopbackPort();
  const logFile = join(dir, 'dovecot.log');
  const configFile = join(dir, 'dovecot.conf');
  writeFileSync(
    configFile,
    `# Private IMAP for tsieved's web-mail tests (test/helpers/dovecot-imap.ts).
base_dir = ${join(dir, 'run')}
state_dir = ${join(dir, 'state')}
log_path = ${logFile}
info_log_path = ${logFile}
instance_name = tsieved-imap-${port}
protocols = imap
listen = 127.0.0.1
ssl = no
# Loopback only; Roundcube sends the password in clear over it.
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
last_valid_uid = 0
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = ${passwd}
}
userdb {
  driver = passwd-file
  args = ${passwd}
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0600
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
`,
  );
  const child = spawn(binary, ['-F', '-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const log = (): string => output + (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  try {
    await waitForPort(port, 20_000, () =>
      child.exitCode !== null ? `dovecot exited (${child.exitCode}) before listening:\n${log()}` : undefined,
    );
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    port,
    dir,
    createFolder: async (user, password, folder) => {
      const q = (v: string): string => `"${v.replace(/[\\"]/g, (c) => '\\' + c)}"`;
      const transcript = await imapSession(port, [
        `a LOGIN ${q(user)} ${q(password)}`,
        `b CREATE ${q(folder)}`,
        `c SUBSCRIBE ${q(folder)}`,
        'd LOGOUT',
      ]);
      for (const tag of ['a', 'b', 'c']) {
        if (!new RegExp(`^${tag} OK`, 'm').test(transcript))
          throw new Error(`IMAP ${tag} failed:\n${transcript}\n${log()}`);
      }
    },
    log,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function readGroupId(group: string): number {
  const line = readFileSync('/etc/group', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${group}:`));
  if (!line) throw new Error(`no group ${group} (is dovecot-core installed?)`);
  return Number(line.split(':')[2]);
}

/** Sends IMAP commands one at a time (each after the previous tagged answer) and returns the transcript. */
async function imapSession(port: number, commands: readonly string[]): Promise<string> {
  const socket = connect({ port, host: '127.0.0.1' });
  let received = '';
  let waiting: { tag: string; resolve: () => void } | undefined;
  socket.on('data', (d: Buffer) => {
    received += d.toString('utf8');
    if (waiting && new RegExp(`^${waiting.tag} (OK|NO|BAD)`, 'm').test(received)) {
      const w = waiting;
      waiting = undefined;
      w.resolve();
    }
  });
  const answered = (tag: string): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      waiting = { tag, resolve };
      socket.once('error', reject);
      setTimeout(() => reject(new Error(`IMAP: no answer to ${tag}:\n${received}`)), 10_000).unref();
    });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.on('data', function greeting() {
      if (received.includes('\r\n')) {
        socket.off('data', greeting);
        resolve();
      }
    });
  });
  for (const command of commands) {
    const tag = command.slice(0, command.indexOf(' '));
    const done = answered(tag);
    socket.write(command + '\r\n');
    await done;
  }
  socket.destroy();
  return received;
}
