/**
 * Debian's Roundcube (roundcube-core, roundcube-plugins, roundcube-sqlite3) served
 * by PHP's built-in web server on loopback with a private configuration: the
 * installed tree is used as it is (docroot /var/lib/roundcube/public_html), and
 * ROUNDCUBE_CONFIG_DIR - read by Roundcube's program/include/iniset.php before
 * it falls back to /etc/roundcube - points at a temporary directory holding our
 * config.inc.php and a link to Debian's defaults.inc.php. The SQLite database,
 * temp and log directories live there too, so nothing under /etc or /var is
 * written. The managesieve plugin's own config file is Debian's, which is empty,
 * so its settings come from our main config.
 *
 * The configuration is read on every request, so `setManagesieve` switches the
 * ManageSieve server the next request talks to without a restart.
 *
 * Must not know: tsieved, Dovecot, what the tests click.
 */
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeLoopbackPort, waitForPort } from './net.js';
import { findTool } from './tools.js';

export const ROUNDCUBE_DOCROOT = '/var/lib/roundcube/public_html';
const DEBIAN_DEFAULTS = '/etc/roundcube/defaults.inc.php';

/** For skip messages: what must exist besides the programs on PATH. */
export function roundcubeInstalled(): boolean {
  return (
    existsSync(join(ROUNDCUBE_DOCROOT, 'index.php')) &&
    existsSync(DEBIAN_DEFAULTS) &&
    existsSync('/usr/share/roundcube/plugins/managesieve/managesieve.php')
  );
}

export interface ManagesieveSettings {
  /** `tls` = STARTTLS (Roundcube's `tls://` scheme), `plain` = clear text. */
  readonly scheme: 'tls' | 'plain';
  readonly port: number;
  /** PEM file of the CA Roundcube must trust for the server certificate (tls:// only). */
  readonly caFile?: string;
}

export interface RoundcubeOptions {
  readonly imapPort: number;
  readonly managesieve: ManagesieveSettings;
}

export interface Roundcube {
  /** http://127.0.0.1:PORT/ */
  readonly url: string;
  readonly dir: string;
  setManagesieve(settings: ManagesieveSettings): void;
  /** Roundcube's error log, the managesieve protocol trace and PHP's server output. */
  log(): string;
  stop(): Promise<void>;
}

function phpString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function configText(dir: string, desKey: string, imapPort: number, sieve: ManagesieveSettings): string {
  const connOptions = sieve.caFile
    ? `[
  'ssl' => [
    'verify_peer' => true,
    'verify_peer_name' => true,
    'allow_self_signed' => false,
    'cafile' => ${phpString(sieve.caFile)},
    'peer_name' => 'localhost',
  ],
]`
    : 'null';
  return `<?php
// Private Roundcube configuration for tsieved's browser test (test/helpers/roundcube.ts).
$config = [];
$config['db_dsnw'] = ${phpString(`sqlite:///${join(dir, 'roundcube.db')}?mode=0600`)};
$config['imap_host'] = '127.0.0.1:${imapPort}';
$config['smtp_host'] = '';
$config['temp_dir'] = ${phpString(join(dir, 'temp'))};
$config['log_dir'] = ${phpString(join(dir, 'logs'))};
$config['log_driver'] = 'file';
$config['des_key'] = ${phpString(desKey)};
$config['enable_installer'] = false;
$config['ip_check'] = false;
$config['language'] = 'en_US';
$config['skin'] = 'elastic';
$config['plugins'] = ['managesieve'];
$config['support_url'] = '';
$config['product_name'] = 'Roundcube Webmail';
$config['refresh_interval'] = 0;
// Roundcube 1.6 reads the port from the host URI only (managesieve_port is gone).
$config['managesieve_host'] = '${sieve.scheme === 'tls' ? 'tls://' : ''}127.0.0.1:${sieve.port}';
$config['managesieve_auth_type'] = 'PLAIN';
$config['managesieve_conn_options'] = ${connOptions};
$config['managesieve_vacation'] = 1;
$config['managesieve_forward'] = 1;
$config['managesieve_raw_editor'] = true;
$config['managesieve_debug'] = true;
`;
}

export async function startRoundcube(options: RoundcubeOptions): Promise<Roundcube> {
  const php = findTool('php');
  if (!php) throw new Error('php (php-cli) not installed');
  const dir = mkdtempSync(join(tmpdir(), 'tsieved-roundcube-'));
  for (const d of ['temp', 'logs']) mkdirSync(join(dir, d));
  symlinkSync(DEBIAN_DEFAULTS, join(dir, 'defaults.inc.php'));
  const configFile = join(dir, 'config.inc.php');
  // Fixed for the instance's life: the session keeps the IMAP password encrypted with it,
  // and the managesieve plugin decrypts it on every request to log in to tsieved.
  const desKey = randomBytes(12).toString('hex');
  writeFileSync(configFile, configText(dir, desKey, options.imapPort, options.managesieve));
  const port = await freeLoopbackPort();
  // OPcache (on for the built-in server) rechecks a file's timestamp only every
  // revalidate_freq seconds (2 in Debian): 0 makes a rewritten config count at once.
  const child = spawn(php, ['-d', 'opcache.revalidate_freq=0', '-S', `127.0.0.1:${port}`, '-t', ROUNDCUBE_DOCROOT], {
    cwd: ROUNDCUBE_DOCROOT,
    // Its own process group, stopped as a whole: with PHP_CLI_SERVER_WORKERS above 1 the
    // server forks workers that outlive a signal to the parent alone.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      ROUNDCUBE_CONFIG_DIR: dir,
      // One request at a time, as the UI's own locking assumes: Roundcube writes the whole
      // PHP session back at the end of each request, so two overlapping requests can undo
      // each other's session changes (e.g. which filter set is current).
      PHP_CLI_SERVER_WORKERS: '1',
    },
  });
  let output = '';
  // The built-in server logs every request on stderr; keep what is not access noise.
  const keep = (d: Buffer): void => {
    const lines = d
      .toString()
      .split('\n')
      .filter((l) => l !== '' && !/ (Accepted|Closing)$| \[[23]\d\d\]: (GET|POST) /.test(l));
    if (lines.length > 0) output = (output + lines.join('\n') + '\n').slice(-20_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    await waitForPort(port, 20_000, () =>
      child.exitCode !== null ? `php -S exited (${child.exitCode}):\n${output}` : undefined,
    );
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const logDir = join(dir, 'logs');
  return {
    url: `http://127.0.0.1:${port}/`,
    dir,
    setManagesieve: (settings) => writeFileSync(configFile, configText(dir, desKey, options.imapPort, settings)),
    log: () =>
      readdirSync(logDir)
        .map((f) => `==> ${f} <==\n${readFileSync(join(logDir, f), 'utf8').slice(-20_000)}`)
        .join('\n') + `\n==> php -S <==\n${output}`,
    stop: async () => {
      const group = (signal: NodeJS.Signals): void => {
        try {
          process.kill(-child.pid!, signal);
        } catch {
          /* already gone */
        }
      };
      if (child.exitCode === null && child.signalCode === null) {
        group('SIGTERM');
        const t = setTimeout(() => group('SIGKILL'), 5_000);
        await exited;
        clearTimeout(t);
      }
      group('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
