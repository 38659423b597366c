/**
 * LdapBackend against a real OpenLDAP slapd (test/helpers/slapd.ts) on loopback:
 * search-then-bind and direct bind, plain, StartTLS and ldaps://, injection
 * attempts, the unauthenticated-bind trap, and the directory going away and
 * coming back while the backend keeps running.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema, type Config } from '../../src/config/schema.js';
import { createRootLogger } from '../../src/log/logger.js';
import { LdapBackend, checkLdapConfig } from '../../src/auth/ldap.js';
import { UserdbBackend } from '../../src/auth/userdb.js';
import type { AuthBackend, AuthContext, AuthOutcome } from '../../src/auth/types.js';
import { SLAPD_SUFFIX, SLAPD_TOOLS, makeTestCa, slappasswd, startSlapd, type Slapd } from '../helpers/slapd.js';
import { needs } from '../helpers/tools.js';

const ctx: AuthContext = { remoteAddress: '127.0.0.1', secure: true };
const PEOPLE = `ou=people,${SLAPD_SUFFIX}`;
const SERVICE_DN = `cn=sieve,${SLAPD_SUFFIX}`;
const SERVICE_PW = 'service-secret';
const ALICE_PW = 'alice-secret';
const BOB_PW = 'Grüße-Ωμέγα-🔑';
const JUERGEN_PW = 'jürgen-pw';
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

function posixUser(opts: { dn: string; uid: string[]; n: number; password?: string; mail?: string }): string {
  const dnLine = /^[\x20-\x7e]*$/.test(opts.dn) ? `dn: ${opts.dn}` : `dn:: ${b64(opts.dn)}`;
  const uidLines = opts.uid.map((u) => (/^[\x20-\x7e]*$/.test(u) ? `uid: ${u}` : `uid:: ${b64(u)}`));
  return [
    dnLine,
    'objectClass: inetOrgPerson',
    'objectClass: posixAccount',
    `cn: user ${opts.n}`,
    `sn: ${opts.n}`,
    ...uidLines,
    `uidNumber: ${opts.n}`,
    `gidNumber: ${opts.n + 1000}`,
    `homeDirectory: /srv/home/${opts.n}`,
    ...(opts.mail !== undefined ? [`mail: ${opts.mail}`] : []),
    ...(opts.password !== undefined ? [`userPassword: ${opts.password}`] : []),
    '',
  ].join('\n');
}

function directoryLdif(): string {
  return [
    `dn: ${PEOPLE}\nobjectClass: organizationalUnit\nou: people\n`,
    `dn: ou=others,${SLAPD_SUFFIX}\nobjectClass: organizationalUnit\nou: others\n`,
    `dn: ${SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: sieve\nuserPassword: ${slappasswd(SERVICE_PW)}\n`,
    posixUser({
      dn: `uid=alice,${PEOPLE}`,
      uid: ['alice'],
      n: 10001,
      password: slappasswd(ALICE_PW),
      mail: 'alice@example.org',
    }),
    posixUser({ dn: `uid=bob,${PEOPLE}`, uid: ['bob'], n: 10002, password: slappasswd(BOB_PW) }),
    // Stored in clear: slapd compares it as it is.
    posixUser({ dn: `uid=carol,${PEOPLE}`, uid: ['carol', 'carol.c'], n: 10003, password: 'carol-clear' }),
    posixUser({ dn: `uid=jürgen,${PEOPLE}`, uid: ['jürgen'], n: 10004, password: slappasswd(JUERGEN_PW) }),
    posixUser({ dn: `uid=a\\+b\\,c,${PEOPLE}`, uid: ['a+b,c'], n: 10005, password: slappasswd('odd-pw') }),
    posixUser({ dn: `uid=dup,${PEOPLE}`, uid: ['dup'], n: 10006, password: slappasswd('dup-pw') }),
    posixUser({ dn: `uid=dup,ou=others,${SLAPD_SUFFIX}`, uid: ['dup'], n: 10007, password: slappasswd('dup-pw') }),
    posixUser({ dn: `uid=nopass,${PEOPLE}`, uid: ['nopass'], n: 10008 }),
  ].join('\n');
}

/** A pino logger whose lines the test can read. */
function capturingLogger(): { log: ReturnType<typeof createRootLogger>; lines: () => string } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return { log: createRootLogger('debug', sink), lines: () => chunks.join('') };
}

function authConfig(auth: Record<string, unknown>): Config['auth'] {
  return configSchema.parse({ auth: { backend: 'ldap', ...auth } }).auth;
}

function expectOk(outcome: AuthOutcome) {
  if (outcome.kind !== 'ok') throw new Error(`expected ok, got ${JSON.stringify(outcome)}`);
  return outcome.identity;
}

describe('LdapBackend against a real slapd', needs(...SLAPD_TOOLS), () => {
  let tmp: string;
  let passwordFile: string;
  let slapd: Slapd;
  const backends: LdapBackend[] = [];

  function backend(auth: Record<string, unknown>, log = capturingLogger().log): LdapBackend {
    const cfg = authConfig(auth);
    expect(checkLdapConfig(cfg)).toEqual([]);
    const b = new LdapBackend(cfg, log);
    backends.push(b);
    return b;
  }

  const searchConfig = () => ({
    url: slapd.url,
    base: SLAPD_SUFFIX,
    bind_dn: SERVICE_DN,
    bind_password_file: passwordFile,
  });

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'tsieved-ldap-test-'));
    passwordFile = join(tmp, 'bind.pw');
    writeFileSync(passwordFile, `${SERVICE_PW}\n`);
    // bind_anon_dn makes slapd accept a bind with a DN and an empty password
    // (RFC 4513 section 5.1.2), so the empty-password test below can fail.
    slapd = await startSlapd({
      ldif: directoryLdif(),
      tls: true,
      globalConfig: 'allow bind_anon_dn',
      logOperations: true,
    });
  });

  afterAll(async () => {
    await Promise.all(backends.map((b) => b.close()));
    await slapd?.destroy();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  describe('search-then-bind', () => {
    it('maps a posixAccount entry to an identity on the right password', async () => {
      const id = expectOk(await backend(searchConfig()).verifyPassword('alice', ALICE_PW, ctx));
      expect(id).toMatchObject({
        user: 'alice',
        uid: 10001,
        gid: 11001,
        home: '/srv/home/10001',
        mail: 'alice@example.org',
      });
      expect(id.fields).toMatchObject({
        dn: `uid=alice,${PEOPLE}`,
        uidNumber: '10001',
        homeDirectory: '/srv/home/10001',
      });
      expect(Object.keys(id.fields).map((k) => k.toLowerCase())).not.toContain('userpassword');
    });

    it('answers wrong password and unknown user alike: rejected', async () => {
      const b = backend(searchConfig());
      const wrong = await b.verifyPassword('alice', 'not-' + ALICE_PW, ctx);
      const unknown = await b.verifyPassword('mallory', ALICE_PW, ctx);
      expect(wrong.kind).toBe('rejected');
      expect(unknown.kind).toBe('rejected');
      // An unknown name still costs a (failing) bind, so timing does not tell the two apart.
      expect(slapd!.output()).toMatch(/BIND dn="cn=tsieved-no-such-user,/);
    });

    it('accepts a non-ASCII password stored as {SSHA}, byte for byte', async () => {
      const b = backend(searchConfig());
      expect(expectOk(await b.verifyPassword('bob', BOB_PW, ctx)).uid).toBe(10002);
      // The same text in another Unicode normal form is other bytes: not the password.
      expect((await b.verifyPassword('bob', BOB_PW.normalize('NFD'), ctx)).kind).toBe('rejected');
    });

    it('accepts a password stored in clear, and a non-ASCII user name', async () => {
      const b = backend(searchConfig());
      expectOk(await b.verifyPassword('carol', 'carol-clear', ctx));
      expect(expectOk(await b.verifyPassword('jürgen', JUERGEN_PW, ctx)).user).toBe('jürgen');
    });

    it("takes the directory's spelling of the name as canonical", async () => {
      const b = backend(searchConfig());
      expect(expectOk(await b.verifyPassword('ALICE', ALICE_PW, ctx)).user).toBe('alice');
      // Multi-valued uid: the value the user logged in with.
      expect(expectOk(await b.verifyPassword('Carol.C', 'carol-clear', ctx)).user).toBe('carol.c');
    });

    it.each([
      'al*',
      'a*e',
      '*',
      'alice)(uid=*',
      '*)(objectClass=*',
      'alice)(|(uid=*',
      'x)(objectClass=*))(|(uid=*',
      'alice\\',
      '\\2a',
    ])('escapes filter injection attempt %j (rejected, not unavailable)', async (evil) => {
      const outcome = await backend(searchConfig()).verifyPassword(evil, ALICE_PW, ctx);
      expect(outcome).toMatchObject({ kind: 'rejected', reason: 'unknown user' });
    });

    it('refuses NUL and control characters in the name before asking the directory', async () => {
      const b = backend(searchConfig());
      expect(await b.verifyPassword('alice\u0000', ALICE_PW, ctx)).toMatchObject({
        kind: 'rejected',
        reason: expect.stringMatching(/control/),
      });
      expect(await b.verifyPassword('alice\n', ALICE_PW, ctx)).toMatchObject({ kind: 'rejected' });
      expect(await b.verifyPassword('', ALICE_PW, ctx)).toMatchObject({ kind: 'rejected' });
    });

    it('never turns an empty password into an unauthenticated bind', async () => {
      // The server itself would say yes to that bind (bind_anon_dn) ...
      const raw = new Client({ url: slapd.url, timeout: 5000 });
      await raw.bind(`uid=alice,${PEOPLE}`, '');
      await raw.unbind();
      // ... the backend must not.
      const b = backend(searchConfig());
      expect(await b.verifyPassword('alice', '', ctx)).toMatchObject({ kind: 'rejected', reason: 'empty password' });
      expect(await b.verifyPassword('nopass', '', ctx)).toMatchObject({ kind: 'rejected' });
    });

    it('rejects an entry without a password', async () => {
      expect((await backend(searchConfig()).verifyPassword('nopass', 'anything', ctx)).kind).toBe('rejected');
    });

    it('refuses a name that matches more than one entry, and logs it', async () => {
      const { log, lines } = capturingLogger();
      const outcome = await backend(searchConfig(), log).verifyPassword('dup', 'dup-pw', ctx);
      expect(outcome).toMatchObject({ kind: 'rejected', reason: expect.stringMatching(/more than one/) });
      expect(lines()).toMatch(/more than one entry/);
      // Narrowing the base makes the same name unique again.
      expectOk(await backend({ ...searchConfig(), base: PEOPLE }).verifyPassword('dup', 'dup-pw', ctx));
    });

    it('searches as bind_dn: anonymously the ACL hides the base, which is a set-up fault (unavailable)', async () => {
      const anonymous = backend({ url: slapd.url, base: SLAPD_SUFFIX });
      expect(await anonymous.verifyPassword('alice', ALICE_PW, ctx)).toMatchObject({
        kind: 'unavailable',
        reason: expect.stringMatching(/search failed: LDAP result 32/),
      });
    });

    it('reports a refused service bind as unavailable, not as a wrong user password', async () => {
      const badFile = join(tmp, 'bad.pw');
      writeFileSync(badFile, 'wrong-service-password');
      const { log, lines } = capturingLogger();
      const b = backend({ ...searchConfig(), bind_password_file: badFile }, log);
      expect(await b.verifyPassword('alice', ALICE_PW, ctx)).toMatchObject({
        kind: 'unavailable',
        reason: expect.stringMatching(/service bind/),
      });
      expect(lines()).toMatch(/directory unavailable/);
      expect(lines()).not.toContain('wrong-service-password');
      expect(lines()).not.toContain(ALICE_PW);
    });

    it('re-reads the service password on reload()', async () => {
      const file = join(tmp, 'rotating.pw');
      writeFileSync(file, 'old-wrong');
      const b = backend({ ...searchConfig(), bind_password_file: file });
      expect((await b.verifyPassword('alice', ALICE_PW, ctx)).kind).toBe('unavailable');
      writeFileSync(file, SERVICE_PW);
      expect((await b.verifyPassword('alice', ALICE_PW, ctx)).kind).toBe('unavailable');
      await b.reload();
      expectOk(await b.verifyPassword('alice', ALICE_PW, ctx));
    });

    it('reports a base that does not exist as unavailable', async () => {
      const b = backend({ ...searchConfig(), base: `ou=nowhere,${SLAPD_SUFFIX}` });
      expect((await b.verifyPassword('alice', ALICE_PW, ctx)).kind).toBe('unavailable');
    });

    it('honours a custom filter and attribute mapping', async () => {
      const b = backend({
        ...searchConfig(),
        filter: '(&(objectClass=inetOrgPerson)(mail={user}))',
        user_attr: 'mail',
        home_attr: 'cn',
      });
      const id = expectOk(await b.verifyPassword('alice@example.org', ALICE_PW, ctx));
      expect(id).toMatchObject({ user: 'alice@example.org', home: 'user 10001', uid: 10001 });
    });
  });

  describe('direct bind (user_dn_template)', () => {
    const direct = () => ({ url: slapd.url, user_dn_template: `uid={user},${PEOPLE}` });

    it('binds as the templated DN and reads the entry as the user', async () => {
      const b = backend(direct());
      expect(expectOk(await b.verifyPassword('alice', ALICE_PW, ctx))).toMatchObject({
        user: 'alice',
        uid: 10001,
        home: '/srv/home/10001',
      });
      expect((await b.verifyPassword('alice', 'wrong', ctx)).kind).toBe('rejected');
      expect((await b.verifyPassword('nobody', 'wrong', ctx)).kind).toBe('rejected');
    });

    it('escapes DN specials in the name (RFC 4514)', async () => {
      const b = backend(direct());
      expect(expectOk(await b.verifyPassword('a+b,c', 'odd-pw', ctx)).uid).toBe(10005);
      // A name that tries to step out of its RDN finds nothing.
      expect((await b.verifyPassword(`alice,${PEOPLE}`, ALICE_PW, ctx)).kind).toBe('rejected');
      expect((await b.verifyPassword('alice+cn=user 10001', ALICE_PW, ctx)).kind).toBe('rejected');
    });

    it('never sends an empty password', async () => {
      expect(await backend(direct()).verifyPassword('alice', '', ctx)).toMatchObject({
        kind: 'rejected',
        reason: 'empty password',
      });
    });
  });

  describe('TLS', () => {
    it('logs in over StartTLS with the configured CA', async () => {
      const b = backend({ ...searchConfig(), starttls: true, tls_ca_file: slapd.caFile });
      expectOk(await b.verifyPassword('alice', ALICE_PW, ctx));
      expect((await b.verifyPassword('alice', 'wrong', ctx)).kind).toBe('rejected');
    });

    it('checks the host name against the certificate (localhost in the SAN)', async () => {
      const url = slapd.url.replace('127.0.0.1', 'localhost');
      expectOk(
        await backend({ ...searchConfig(), url, starttls: true, tls_ca_file: slapd.caFile }).verifyPassword(
          'alice',
          ALICE_PW,
          ctx,
        ),
      );
    });

    it('logs in over ldaps://', async () => {
      const b = backend({ ...searchConfig(), url: slapd.ldapsUrl, tls_ca_file: slapd.caFile });
      expectOk(await b.verifyPassword('bob', BOB_PW, ctx));
    });

    it('checks certificates by default: an unknown CA makes the directory unavailable', async () => {
      const other = makeTestCa(tmp, 'other');
      for (const extra of [{}, { tls_ca_file: other.caFile }]) {
        const viaStartTls = backend({ ...searchConfig(), starttls: true, ...extra });
        expect((await viaStartTls.verifyPassword('alice', ALICE_PW, ctx)).kind).toBe('unavailable');
        const viaLdaps = backend({ ...searchConfig(), url: slapd.ldapsUrl, ...extra });
        expect((await viaLdaps.verifyPassword('alice', ALICE_PW, ctx)).kind).toBe('unavailable');
      }
    });

    it('checks the certificate against the host in the URL, not a default name', async () => {
      // Signed by a trusted CA, but for "localhost" only: connecting to 127.0.0.1 must fail.
      const named = await startSlapd({ ldif: directoryLdif(), tls: true, subjectAltName: 'DNS:localhost' });
      try {
        const base = { ...searchConfig(), tls_ca_file: named.caFile };
        const byIp = backend({ ...base, url: named.url, starttls: true });
        expect(await byIp.verifyPassword('alice', ALICE_PW, ctx)).toMatchObject({
          kind: 'unavailable',
          reason: expect.stringMatching(/StartTLS/),
        });
        const byIpLdaps = backend({ ...base, url: named.ldapsUrl });
        expect((await byIpLdaps.verifyPassword('alice', ALICE_PW, ctx)).kind).toBe('unavailable');
        const byName = backend({ ...base, url: (named.ldapsUrl as string).replace('127.0.0.1', 'localhost') });
        expectOk(await byName.verifyPassword('alice', ALICE_PW, ctx));
      } finally {
        await named.destroy();
      }
    });

    it('connects without checking only when tls_verify = false', async () => {
      const b = backend({ ...searchConfig(), starttls: true, tls_verify: false });
      expectOk(await b.verifyPassword('alice', ALICE_PW, ctx));
    });
  });

  describe('directory down and back', () => {
    let plain: Slapd;
    beforeAll(async () => {
      plain = await startSlapd({ ldif: directoryLdif() });
    });
    afterAll(async () => {
      await plain?.destroy();
    });

    it('StartTLS against a server without TLS is unavailable, never a clear-text fallback', async () => {
      const b = backend({ ...searchConfig(), url: plain.url, starttls: true });
      expect(await b.verifyPassword('alice', ALICE_PW, ctx)).toMatchObject({
        kind: 'unavailable',
        reason: expect.stringMatching(/StartTLS/),
      });
    });

    it('gives unavailable while slapd is stopped and recovers without a new backend', async () => {
      const { log, lines } = capturingLogger();
      const b = backend({ ...searchConfig(), url: plain.url }, log);
      const other = backend({ ...searchConfig(), starttls: true, tls_ca_file: slapd.caFile });
      expectOk(await b.verifyPassword('alice', ALICE_PW, ctx));

      await plain.stop();
      expect(await b.verifyPassword('alice', ALICE_PW, ctx)).toMatchObject({ kind: 'unavailable' });
      expect(await b.verifyPassword('mallory', 'x', ctx)).toMatchObject({ kind: 'unavailable' });
      expect(lines()).toMatch(/directory unavailable/);
      // A backend on another directory is not affected, nor is another kind of backend.
      expectOk(await other.verifyPassword('alice', ALICE_PW, ctx));
      const userdbFile = join(tmp, 'userdb');
      const sha = createHash('sha256').update('file-pw', 'utf8').digest('base64');
      writeFileSync(userdbFile, `filey\tuid=2000|gid=2000|home=/srv/filey|systempw={SHA256}${sha}\n`);
      const userdb = new UserdbBackend(userdbFile, capturingLogger().log);
      expect(expectOk(await userdb.verifyPassword('filey', 'file-pw', ctx)).uid).toBe(2000);
      const userdbBackend: AuthBackend = userdb;
      await userdbBackend.close?.();

      await plain.start();
      expectOk(await b.verifyPassword('alice', ALICE_PW, ctx));
      expect((await b.verifyPassword('alice', 'wrong', ctx)).kind).toBe('rejected');
    });
  });

  describe('a directory that accepts connections but never answers', () => {
    let server: Server;
    let port = 0;
    const sockets = new Set<Socket>();
    beforeAll(async () => {
      server = createServer((s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      const addr = server.address();
      port = typeof addr === 'object' && addr !== null ? addr.port : 0;
    });
    afterAll(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    });

    it('gives unavailable after timeout_ms instead of hanging the login', async () => {
      for (const extra of [{}, { starttls: true, tls_ca_file: slapd.caFile }]) {
        const b = backend({ ...searchConfig(), url: `ldap://127.0.0.1:${port}`, timeout_ms: 300, ...extra });
        const started = Date.now();
        const outcome = await b.verifyPassword('alice', ALICE_PW, ctx);
        expect(outcome).toMatchObject({ kind: 'unavailable', reason: expect.stringMatching(/timeout/) });
        // Loose bound: the point is "does not hang", not speed.
        expect(Date.now() - started).toBeLessThan(10_000);
      }
    });

    it('close() ends logins in flight as unavailable and refuses new ones', async () => {
      const b = backend({ ...searchConfig(), url: `ldap://127.0.0.1:${port}`, timeout_ms: 20_000 });
      const pending = b.verifyPassword('alice', ALICE_PW, ctx);
      await new Promise((r) => setTimeout(r, 100));
      await b.close();
      expect((await pending).kind).toBe('unavailable');
      expect(await b.verifyPassword('alice', ALICE_PW, ctx)).toMatchObject({
        kind: 'unavailable',
        reason: 'backend closed',
      });
    });
  });
});
