/**
 * A private OpenLDAP slapd for tests: its own slapd.conf, mdb database and
 * (optionally) a throwaway CA and server certificate, all in a mkdtemp
 * directory, listening on loopback ports only. The system slapd service and
 * /etc/ldap are never touched (schemas are only read).
 *
 * Usage:
 *   const d = await startSlapd({ ldif });   // entries below dc=example,dc=org
 *   ... d.url / d.ldapsUrl / d.caFile ...
 *   await d.stop(); await d.start();        // same ports, same data
 *   await d.destroy();                      // stop and remove the directory
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tool } from './tools.js';

export const SLAPD_SUFFIX = 'dc=example,dc=org';
/** rootdn/rootpw of every test directory (for ldapadd/ldapmodify in tests). */
export const SLAPD_ROOT_DN = `cn=admin,${SLAPD_SUFFIX}`;
export const SLAPD_ROOT_PW = 'root-secret';

/** The programs a test directory needs: `describe(name, needs(...SLAPD_TOOLS), fn)`. */
export const SLAPD_TOOLS = ['slapd', 'slapadd', 'slappasswd', 'openssl'] as const;

export interface SlapdOptions {
  /** Entries to load with slapadd, below SLAPD_SUFFIX (the suffix entry is added). */
  readonly ldif: string;
  /** Make a CA and a server certificate (SAN 127.0.0.1, localhost); listen on ldaps:// too. */
  readonly tls?: boolean;
  /** subjectAltName of the server certificate; default "IP:127.0.0.1,DNS:localhost". */
  readonly subjectAltName?: string;
  /** `access to` rules; default: userPassword only for auth, the rest readable when bound. */
  readonly acl?: string;
  /** Extra global slapd.conf lines (e.g. "allow bind_anon_cred"). */
  readonly globalConfig?: string;
  /** Log every operation (slapd -d stats) to output(), to see what a client asked. */
  readonly logOperations?: boolean;
}

export interface Slapd {
  /** ldap://127.0.0.1:PORT (StartTLS available when tls was asked for). */
  readonly url: string;
  /** ldaps://127.0.0.1:PORT, only with tls. */
  readonly ldapsUrl?: string;
  /** PEM of the CA that signed the server certificate, only with tls. */
  readonly caFile?: string;
  readonly dir: string;
  readonly running: boolean;
  /** Starts slapd again on the same ports with the same data. */
  start(): Promise<void>;
  /** Stops slapd (SIGTERM, then SIGKILL) and waits for it to exit. */
  stop(): Promise<void>;
  /** Stops slapd and removes every file it had. */
  destroy(): Promise<void>;
  /** slapd's stderr so far, for failure messages. */
  output(): string;
}

/** `{SSHA}` hash of a password, made by slappasswd itself. */
export function slappasswd(password: string): string {
  return execFileSync(tool('slappasswd'), ['-h', '{SSHA}', '-s', password], {
    encoding: 'utf8',
  }).trim();
}

/** A free loopback TCP port (bound and released; slapd binds it right after). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const DEFAULT_ACL = `
access to attrs=userPassword
  by anonymous auth
  by self auth
  by * none
access to *
  by users read
  by * none
`;

/** A throwaway CA and a server certificate for 127.0.0.1/localhost, in dir. */
export function makeTestCa(
  dir: string,
  name = 'ca',
  subjectAltName = 'IP:127.0.0.1,DNS:localhost',
): { caFile: string; certFile: string; keyFile: string } {
  const openssl = tool('openssl');
  const p = (f: string) => join(dir, `${name}-${f}`);
  const run = (args: string[]) => execFileSync(openssl, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  run([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.pem'),
    '-days',
    '2',
    '-subj',
    `/CN=tsieved test ${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  run([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    p('server.key'),
    '-out',
    p('server.csr'),
    '-subj',
    '/CN=localhost',
  ]);
  writeFileSync(p('ext.cnf'), `subjectAltName=${subjectAltName}\nextendedKeyUsage=serverAuth\n`);
  run([
    'x509',
    '-req',
    '-in',
    p('server.csr'),
    '-CA',
    p('ca.pem'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-out',
    p('server.pem'),
    '-days',
    '2',
    '-extfile',
    p('ext.cnf'),
  ]);
  return { caFile: p('ca.pem'), certFile: p('server.pem'), keyFile: p('server.key') };
}

export async function startSlapd(options: SlapdOptions): Promise<Slapd> {
  const slapdBin = tool('slapd');
  const slapadd = tool('slapadd');
  const dir = mkdtempSync(join(tmpdir(), 'tsieved-slapd-'));
  const dbDir = join(dir, 'db');
  mkdirSync(dbDir);

  let tlsLines = '';
  let caFile: string | undefined;
  if (options.tls) {
    const ca = makeTestCa(dir, 'ca', options.subjectAltName);
    caFile = ca.caFile;
    tlsLines = `TLSCACertificateFile ${ca.caFile}\nTLSCertificateFile ${ca.certFile}\nTLSCertificateKeyFile ${ca.keyFile}\n`;
  }
  const conf = join(dir, 'slapd.conf');
  writeFileSync(
    conf,
    `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile ${join(dir, 'slapd.pid')}
argsfile ${join(dir, 'slapd.args')}
modulepath /usr/lib/ldap
moduleload back_mdb
${tlsLines}${options.globalConfig ?? ''}

database mdb
maxsize 16777216
suffix "${SLAPD_SUFFIX}"
rootdn "${SLAPD_ROOT_DN}"
rootpw ${SLAPD_ROOT_PW}
directory ${dbDir}
${options.acl ?? DEFAULT_ACL}
`,
  );
  const ldifFile = join(dir, 'data.ldif');
  writeFileSync(
    ldifFile,
    `dn: ${SLAPD_SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n${options.ldif.trim()}\n`,
  );
  try {
    execFileSync(slapadd, ['-f', conf, '-l', ldifFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    const err = e as { stderr?: Buffer };
    throw new Error(`slapadd failed: ${err.stderr?.toString() ?? String(e)}`, { cause: e });
  }

  const port = await freePort();
  const tlsPort = options.tls ? await freePort() : undefined;
  const url = `ldap://127.0.0.1:${port}`;
  const ldapsUrl = tlsPort !== undefined ? `ldaps://127.0.0.1:${tlsPort}` : undefined;
  const listen = [url + '/', ...(ldapsUrl !== undefined ? [ldapsUrl + '/'] : [])].join(' ');

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stderr = '';

  async function start(): Promise<void> {
    if (child !== undefined) return;
    // -d: stay in the foreground (so we own the process); 0 = no debug output,
    // "stats" = one line per operation.
    const debug = options.logOperations ? 'stats' : '0';
    const proc = spawn(slapdBin, ['-d', debug, '-h', listen, '-f', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    proc.stderr?.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    // If the test process dies without afterAll, do not leave a daemon behind.
    const reap = (): void => {
      proc.kill('SIGKILL');
    };
    process.once('exit', reap);
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    void exited.then(() => {
      process.removeListener('exit', reap);
      if (child === proc) child = undefined;
    });
    const until = Date.now() + 15_000;
    for (;;) {
      if (child !== proc) throw new Error(`slapd exited during start-up:\n${stderr}`);
      if (await canConnect(port)) {
        if (tlsPort === undefined || (await canConnect(tlsPort))) return;
      }
      if (Date.now() > until) {
        await stop();
        throw new Error(`slapd did not listen on ${listen} within 15 s:\n${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function stop(): Promise<void> {
    const proc = child;
    if (proc === undefined) return;
    proc.kill('SIGTERM');
    const killer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(killer);
    child = undefined;
  }

  await start();
  return {
    url,
    ...(ldapsUrl !== undefined ? { ldapsUrl } : {}),
    ...(caFile !== undefined ? { caFile } : {}),
    dir,
    get running() {
      return child !== undefined;
    },
    start,
    stop,
    async destroy() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
    output: () => stderr,
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
