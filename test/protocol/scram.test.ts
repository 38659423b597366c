/**
 * SCRAM-SHA-1 and SCRAM-SHA-256 over the wire (RFC 5804 section 2.1, RFC 5802,
 * RFC 7677) against a Dovecot passwd-file with keys made by the real doveadm, the
 * server's final message in OK (SASL ...), and AUTH-TOO-WEAK for a mechanism that
 * site policy leaves out.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testCerts } from '../helpers/certs.js';
import { SieveTestClient, type ServerResponse } from '../helpers/client.js';
import { madeBy } from '../auth/util.js';
import { startTsieved, type RunningTsieved } from '../helpers/tsieved.js';

type Hash = 'sha1' | 'sha256';

/** A minimal SCRAM client (RFC 5802 section 3), no channel binding. */
async function scramLogin(
  c: SieveTestClient,
  mechanism: string,
  user: string,
  password: string,
): Promise<ServerResponse> {
  const hash: Hash = mechanism === 'SCRAM-SHA-1' ? 'sha1' : 'sha256';
  const clientNonce = randomBytes(18).toString('base64');
  const bare = `n=${user.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${clientNonce}`;
  c.write(`AUTHENTICATE "${mechanism}" "${Buffer.from('n,,' + bare).toString('base64')}"\r\n`);
  const line = await c.readLine();
  const m = /^\{\d+\}\r\n(.*)$/s.exec(line.toString());
  if (!m) {
    c.unreadLine(line);
    return c.readResponse();
  }
  const serverFirst = Buffer.from(m[1], 'base64').toString();
  const fields = Object.fromEntries(serverFirst.split(',').map((f) => [f[0], f.slice(2)]));
  expect(fields.r.startsWith(clientNonce)).toBe(true);
  const salted = pbkdf2Sync(
    password,
    Buffer.from(fields.s, 'base64'),
    Number(fields.i),
    hash === 'sha1' ? 20 : 32,
    hash,
  );
  const clientKey = createHmac(hash, salted).update('Client Key').digest();
  const storedKey = createHash(hash).update(clientKey).digest();
  const withoutProof = `c=biws,r=${fields.r}`;
  const authMessage = `${bare},${serverFirst},${withoutProof}`;
  const signature = createHmac(hash, storedKey).update(authMessage).digest();
  const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]));
  const final = `${withoutProof},p=${proof.toString('base64')}`;
  const response = await c.command(`"${Buffer.from(final).toString('base64')}"`);
  if (response.status === 'OK') {
    const serverKey = createHmac(hash, salted).update('Server Key').digest();
    const expected = createHmac(hash, serverKey).update(authMessage).digest('base64');
    const sasl = /^SASL "([^"]+)"$/.exec(response.code ?? '');
    expect(sasl, 'server final message in OK (SASL ...)').not.toBeNull();
    expect(Buffer.from(sasl![1], 'base64').toString()).toBe(`v=${expected}`);
  }
  return response;
}

/**
 * SCRAM is offered for an algorithm only when every entry of the file can supply
 * its keys (src/auth/account-table.ts), so each server here holds one family of
 * doveadm keys beside cleartext entries (from which both can be derived).
 */
describe.each([
  { mechanism: 'SCRAM-SHA-256', scheme: 'SCRAM-SHA-256' },
  { mechanism: 'SCRAM-SHA-1', scheme: 'SCRAM-SHA-1' },
] as const)('$mechanism over ManageSieve', ({ mechanism, scheme }) => {
  let server: RunningTsieved;
  let ca: Buffer;
  const users = { keys: 'ulla', plain: 'pia' };
  const password = 'p\u00e4ss word';

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsieved-scram-'));
    const uid = process.getuid?.() ?? 1000;
    const gid = process.getgid?.() ?? 1000;
    const keys = madeBy('doveadm', ['pw', '-s', scheme, '-p', password]);
    const entry = (user: string, hash: string): string => {
      mkdirSync(join(dir, 'homes', user), { recursive: true });
      return `${user}:${hash}:${uid}:${gid}::${join(dir, 'homes', user)}::`;
    };
    writeFileSync(
      join(dir, 'passwd'),
      [entry(users.keys, keys), entry(users.plain, `{PLAIN}${password}`)].join('\n') + '\n',
    );
    const certs = testCerts();
    ca = certs.ca;
    server = await startTsieved(`
[server]
listen = ["127.0.0.1:0"]
auth_failure_delay_ms = 10
[tls]
cert_file = "${certs.certFile}"
key_file = "${certs.keyFile}"
[auth]
backend = "passwd-file"
passwd_file = "${join(dir, 'passwd')}"
mechanisms = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
[storage]
roots = ["${join(dir, 'homes')}"]
[sieve]
capabilities = ["fileinto"]
`);
  });
  afterAll(async () => server?.stop());

  async function secure(): Promise<{ c: SieveTestClient; mechanisms: string }> {
    const c = await SieveTestClient.connect(server.port);
    const { capabilities } = await c.startTls(ca);
    const line = capabilities.lines.find((l) => l.startsWith('"SASL"')) ?? '';
    return { c, mechanisms: line };
  }

  it('offers SCRAM first and refuses what site policy leaves out with AUTH-TOO-WEAK', async () => {
    const { c, mechanisms } = await secure();
    expect(mechanisms).toBe(`"SASL" "${mechanism} PLAIN"`);
    const r = await c.command('AUTHENTICATE "LOGIN"');
    expect(r.status).toBe('NO');
    expect(r.code).toBe('AUTH-TOO-WEAK');
    c.close();
  });

  it('logs in with keys made by doveadm and with keys derived from {PLAIN}, and verifies the server', async () => {
    for (const user of [users.keys, users.plain]) {
      const { c } = await secure();
      expect((await scramLogin(c, mechanism, user, password)).status, user).toBe('OK');
      expect((await c.command('LISTSCRIPTS')).statusLine).toBe('OK');
      c.close();
    }
  });

  it('refuses a wrong password and an unknown user alike', async () => {
    const { c } = await secure();
    const wrong = await scramLogin(c, mechanism, users.keys, 'wrong');
    const unknown = await scramLogin(c, mechanism, 'nobody', 'wrong');
    expect(wrong.status).toBe('NO');
    expect(unknown.statusLine).toBe(wrong.statusLine);
    c.close();
  });
});
