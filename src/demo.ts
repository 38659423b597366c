/**
 * The embedded demo configuration behind `npm start`: a userdb with one account
 * (its name and password are printed), scripts under ./var, and STARTTLS with a
 * throwaway self-signed certificate made on first start (on a machine without
 * openssl: no STARTTLS, clear-text logins on loopback only). Not for production: the
 * certificate is self-signed and the password sits in ./var/demo-password.
 *
 * Must not know: anything but how to lay out ./var and which config results.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Config } from './config/schema.js';
import { validateConfig } from './config/loader.js';

export const DEMO_USER = 'demo@example.org';

/** Exim 4.96's list (Debian 12), used when no Exim binary is there to ask. */
const DEMO_CAPABILITIES = [
  'comparator-i;ascii-numeric',
  'copy',
  'encoded-character',
  'envelope',
  'fileinto',
  'subaddress',
  'vacation',
];

export interface Demo {
  readonly config: Config;
  readonly user: string;
  readonly password: string;
  readonly varDir: string;
  /** The one "host:port" the demo listens on. */
  readonly listen: string;
  /** False when openssl was missing: no STARTTLS, clear-text logins on loopback. */
  readonly tls: boolean;
}

export function prepareDemo(varDir = resolve('var'), listen = '127.0.0.1:4190'): Demo {
  const home = resolve(varDir, 'home', DEMO_USER);
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const passwordFile = resolve(varDir, 'demo-password');
  let password: string;
  if (existsSync(passwordFile)) {
    password = readFileSync(passwordFile, 'utf8').trim();
  } else {
    password = randomBytes(9).toString('base64url');
    writeFileSync(passwordFile, password + '\n', { mode: 0o600 });
  }
  // Courier's {SHA256} scheme: base64 of the SHA-256 digest.
  const hash = '{SHA256}' + createHash('sha256').update(password, 'utf8').digest('base64');
  const uid = process.getuid?.() ?? 1000;
  const gid = process.getgid?.() ?? 1000;
  const userdb = resolve(varDir, 'userdb');
  const entry = `${DEMO_USER}\tuid=${uid}|gid=${gid}|home=${home}|mail=${home}/Maildir|systempw=${hash}\n`;
  // Written only when it differs: each worker of a cluster prepares the demo too,
  // and must not truncate the file under another worker reading it.
  if (!existsSync(userdb) || readFileSync(userdb, 'utf8') !== entry) writeFileSync(userdb, entry, { mode: 0o600 });

  const cert = resolve(varDir, 'demo-cert.pem');
  const key = resolve(varDir, 'demo-key.pem');
  if (!existsSync(cert) || !existsSync(key)) {
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          key,
          '-out',
          cert,
          '-days',
          '365',
          '-subj',
          '/CN=localhost',
          '-addext',
          'subjectAltName=DNS:localhost,IP:127.0.0.1',
        ],
        { stdio: 'ignore' },
      );
    } catch (error) {
      // Without openssl (a bare machine) the demo still starts on loopback, in clear
      // text; anywhere else a password must not travel unencrypted.
      if (!isLoopback(listen)) {
        throw new Error(
          `the demo needs the openssl command to make a throwaway certificate: ${(error as Error).message}`,
          { cause: error },
        );
      }
    }
  }
  const tls = existsSync(cert) && existsSync(key);
  const config = validateConfig(
    {
      // `workers` as shipped ("auto"): the demo runs as a server would.
      server: {
        listen: [tls ? listen : { address: listen, allow_plaintext: true }],
        greeting_name: 'tsieved-demo',
      },
      tls: tls ? { cert_file: cert, key_file: key } : {},
      auth: { backend: 'userdb', userdb },
      storage: { scripts_dir: '{home}/sieve', filter_path: '{home}/.forward', roots: [resolve(varDir, 'home')] },
      sieve: { capabilities: DEMO_CAPABILITIES },
      // Beside the demo's data: /run/tsieved is root's.
      control: { socket: resolve(varDir, 'control.sock') },
    },
    'demo configuration',
  );
  return { config, user: DEMO_USER, password, varDir, listen, tls };
}

/** "127.x.x.x:port", "[::1]:port" or "localhost:port". */
function isLoopback(listen: string): boolean {
  const host = listen.slice(0, listen.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
