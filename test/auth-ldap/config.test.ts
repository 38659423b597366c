import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import {
  checkLdapConfig,
  isLoopbackHost,
  ldapEndpoint,
  ldapMode,
  parseBindPassword,
} from '../../src/auth/ldap-config.js';

const auth = (table: Record<string, unknown>) => configSchema.parse({ auth: { backend: 'ldap', ...table } }).auth;

describe('checkLdapConfig', () => {
  let dir: string;
  let pw: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsieved-ldapcfg-'));
    pw = join(dir, 'pw');
    writeFileSync(pw, 'secret\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const good = () => ({
    url: 'ldaps://ldap.example.org',
    base: 'dc=example,dc=org',
    bind_dn: 'cn=s,dc=example,dc=org',
    bind_password_file: pw,
  });

  it('accepts a complete search-then-bind and a direct-bind set-up', () => {
    expect(checkLdapConfig(auth(good()))).toEqual([]);
    expect(
      checkLdapConfig(
        auth({
          url: 'ldap://ldap.example.org',
          starttls: true,
          user_dn_template: 'uid={user},ou=people,dc=example,dc=org',
        }),
      ),
    ).toEqual([]);
    expect(checkLdapConfig(auth({ url: 'ldap://127.0.0.1:3890', base: 'dc=x' }))).toEqual([]);
  });

  it('says nothing when another backend is chosen', () => {
    expect(checkLdapConfig(configSchema.parse({ auth: { backend: 'userdb' } }).auth)).toEqual([]);
  });

  it.each([
    [{ url: undefined }, /auth.url is required/],
    [{ url: 'http://x' }, /not an ldap/],
    [{ url: 'ldap://x/dc=example' }, /only scheme, host and port/],
    [{ url: 'ldaps://x', starttls: true }, /starttls = true makes no sense/],
    [{ url: 'ldap://ldap.example.org' }, /in clear/],
    [{ base: undefined }, /needs auth.base/],
    [{ filter: '(uid=alice)' }, /must contain \{user\}/],
    [{ filter: '(uid={usr})' }, /unknown placeholder \{usr\}/],
    [{ filter: '(&(uid={user})' }, /not a valid LDAP filter/],
    [{ bind_password_file: undefined }, /bind_dn is set but/],
    [{ bind_dn: undefined }, /bind_password_file is set but/],
    [{ bind_password_file: '/nonexistent/pw' }, /not readable/],
    [{ tls_ca_file: '/nonexistent/ca.pem' }, /tls_ca_file .* not readable/],
    [{ uid_attr: 'uid Number' }, /not an LDAP attribute name/],
    [{ user_dn_template: 'uid=x,dc=example' }, /must contain \{user\}/],
    [{ user_dn_template: 'just-{user}' }, /does not look like a DN/],
  ])('reports %j', (change, problem) => {
    const problems = checkLdapConfig(auth({ ...good(), ...change }));
    expect(
      problems.some((p) => problem.test(p)),
      problems.join('\n'),
    ).toBe(true);
  });

  it('reports an empty service password (it would be an unauthenticated bind)', () => {
    const empty = join(dir, 'empty');
    writeFileSync(empty, '\n');
    expect(checkLdapConfig(auth({ ...good(), bind_password_file: empty }))).toEqual([
      expect.stringMatching(/is empty/),
    ]);
  });

  it('reports a CA file without a certificate', () => {
    expect(checkLdapConfig(auth({ ...good(), tls_ca_file: pw }))).toEqual([
      expect.stringMatching(/no PEM certificate/),
    ]);
  });

  it('reports a service password path that is a directory (unreadable even for root)', () => {
    expect(checkLdapConfig(auth({ ...good(), bind_password_file: dir }))).toEqual([
      expect.stringMatching(/not readable/),
    ]);
  });
});

describe('endpoint and mode', () => {
  it('parses URLs', () => {
    expect(ldapEndpoint(auth({ url: 'ldaps://[::1]:636' }))).toMatchObject({
      host: '::1',
      implicitTls: true,
      startTls: false,
    });
    expect(ldapEndpoint(auth({ url: 'ldap://h', starttls: true }))).toMatchObject({
      host: 'h',
      implicitTls: false,
      startTls: true,
    });
    expect(ldapEndpoint(auth({ url: 'nonsense' }))).toBeUndefined();
  });

  it('knows loopback hosts', () => {
    expect(['127.0.0.1', '127.1.2.3', '::1', 'localhost'].every(isLoopbackHost)).toBe(true);
    expect(['10.0.0.1', 'ldap.example.org', '128.0.0.1'].some(isLoopbackHost)).toBe(false);
  });

  it('prefers direct bind when a DN template is given', () => {
    expect(ldapMode(auth({ user_dn_template: 'uid={user},dc=x' }))).toBe('direct');
    expect(ldapMode(auth({ base: 'dc=x' }))).toBe('search');
  });

  it('strips one line end from the service password, nothing else', () => {
    expect(parseBindPassword('pw\n')).toBe('pw');
    expect(parseBindPassword('pw\r\n')).toBe('pw');
    expect(parseBindPassword(' pw \n\n')).toBe(' pw \n');
  });
});
