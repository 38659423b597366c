/**
 * End to end: the real tsieved process (`dist/cli.js`) with `[auth] backend =
 * "ldap"` against a private slapd. An LDAP user logs in over STARTTLS, manages
 * scripts like any other user (the filter file lands in the home directory the
 * directory entry names), and the directory going away is TRYLATER, not a
 * failed password, and heals without restarting tsieved.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { testCerts } from '../helpers/certs.js';
import { SieveTestClient } from '../helpers/client.js';
import { SLAPD_SUFFIX, SLAPD_TOOLS, slappasswd, startSlapd, type Slapd } from '../helpers/slapd.js';
import { needs } from '../helpers/tools.js';
import { startTsieved, type RunningTsieved } from '../helpers/tsieved.js';

const PEOPLE = `ou=people,${SLAPD_SUFFIX}`;
const SERVICE_DN = `cn=sieve,${SLAPD_SUFFIX}`;
const SERVICE_PW = 'service-secret';
const USER = 'lisa';
const PASSWORD = 'lisa-pässword';

const SCRIPT = 'require ["fileinto"];\r\nif header :contains "subject" "[list]" {\r\n  fileinto "lists";\r\n}\r\n';

describe('ManageSieve session for an LDAP user', needs(...SLAPD_TOOLS), () => {
  let dir: string;
  let homes: string;
  let slapd: Slapd;
  let server: RunningTsieved;
  let ca: Buffer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsieved-ldap-e2e-'));
    homes = join(dir, 'homes');
    mkdirSync(join(homes, USER), { recursive: true });
    const uid = process.getuid?.() ?? 1000;
    const gid = process.getgid?.() ?? 1000;
    slapd = await startSlapd({
      ldif: `dn: ${PEOPLE}
objectClass: organizationalUnit
ou: people

dn: ${SERVICE_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: sieve
userPassword: ${slappasswd(SERVICE_PW)}

dn: uid=${USER},${PEOPLE}
objectClass: inetOrgPerson
objectClass: posixAccount
cn: Lisa
sn: L
uid: ${USER}
uidNumber: ${uid}
gidNumber: ${gid}
homeDirectory: ${join(homes, USER)}
mail: ${USER}@example.org
userPassword: ${slappasswd(PASSWORD)}
`,
    });
    const passwordFile = join(dir, 'bind.pw');
    writeFileSync(passwordFile, SERVICE_PW + '\n');
    const certs = testCerts();
    ca = certs.ca;
    server = await startTsieved(`
[server]
listen = ["127.0.0.1:0"]
auth_failure_delay_ms = 50
[tls]
cert_file = "${certs.certFile}"
key_file = "${certs.keyFile}"
[auth]
backend = "ldap"
url = "${slapd.url}"
base = "${SLAPD_SUFFIX}"
bind_dn = "${SERVICE_DN}"
bind_password_file = "${passwordFile}"
timeout_ms = 2000
[storage]
scripts_dir = "{home}/sieve"
filter_path = "{home}/.forward"
roots = ["${homes}"]
[sieve]
capabilities = ["comparator-i;ascii-numeric", "copy", "encoded-character", "envelope", "fileinto", "subaddress", "vacation"]
[log]
level = "info"
`);
  });

  afterAll(async () => {
    await server?.stop();
    await slapd?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function login(user: string, password: string) {
    const client = await SieveTestClient.connect(server.port);
    await client.startTls(ca);
    return { client, response: await client.authenticatePlain(user, password) };
  }

  it('logs in, stores, activates and reads back a script in the home the directory names', async () => {
    const { client, response } = await login(USER, PASSWORD);
    expect(response.status).toBe('OK');
    expect((await client.putScript('lists', SCRIPT)).status).toBe('OK');
    expect((await client.command('SETACTIVE "lists"')).status).toBe('OK');
    const list = await client.command('LISTSCRIPTS');
    expect(list.status).toBe('OK');
    expect(list.lines).toContain('"lists" ACTIVE');
    const got = await client.getScript('lists');
    expect(got.content?.toString('utf8')).toBe(SCRIPT);
    expect((await client.command('LOGOUT')).status).toBe('OK');
    client.close();

    const filter = readFileSync(join(homes, USER, '.forward'), 'utf8');
    expect(filter.startsWith('# Sieve filter')).toBe(true);
    expect(filter).toContain('fileinto "lists";');
    expect(filter).not.toContain('\r');
  });

  it('answers a wrong password and an unknown user with a plain NO', async () => {
    for (const [user, password] of [
      [USER, 'wrong'],
      ['nobody', PASSWORD],
      ['li*', PASSWORD],
    ] as const) {
      const { client, response } = await login(user, password);
      expect(response.status).toBe('NO');
      expect(response.code ?? '').not.toMatch(/TRYLATER/);
      client.close();
    }
  });

  it('says TRYLATER while the directory is down, and works again once it is back', async () => {
    await slapd.stop();
    try {
      const { client, response } = await login(USER, PASSWORD);
      expect(response.status).toBe('NO');
      expect(response.code).toBe('TRYLATER');
      client.close();
      // The log is written asynchronously; give it a moment to arrive.
      await vi.waitFor(() => expect(server.logs()).toMatch(/auth-unavailable/), { timeout: 5000 });
    } finally {
      await slapd.start();
    }
    const { client, response } = await login(USER, PASSWORD);
    expect(response.status).toBe('OK');
    const got = await client.getScript('lists');
    expect(got.content?.toString('utf8')).toBe(SCRIPT);
    client.close();
    expect(existsSync(join(homes, USER, 'sieve'))).toBe(true);
  });
});
