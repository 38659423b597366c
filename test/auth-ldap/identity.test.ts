import { describe, expect, it } from 'vitest';
import { attributeValues, entryToIdentity, requestedAttributes, type LdapEntry } from '../../src/auth/ldap-identity.js';

const map = {
  user_attr: 'uid',
  uid_attr: 'uidNumber',
  gid_attr: 'gidNumber',
  home_attr: 'homeDirectory',
  mail_attr: 'mail',
};
const dn = 'uid=alice,ou=people,dc=example,dc=org';

describe('entryToIdentity', () => {
  it('maps posixAccount attributes, matching names case-insensitively', () => {
    const entry: LdapEntry = {
      dn,
      UID: 'alice',
      uidnumber: '1001',
      gidNumber: '100',
      homeDirectory: '/home/alice',
      mail: ['a@x', 'b@x'],
    };
    const r = entryToIdentity(entry, 'alice', map);
    expect(r).toEqual({
      ok: true,
      identity: {
        user: 'alice',
        uid: 1001,
        gid: 100,
        home: '/home/alice',
        mail: 'a@x',
        fields: { dn, uid: 'alice', uidNumber: '1001', gidNumber: '100', homeDirectory: '/home/alice', mail: 'a@x' },
      },
    });
  });

  it('uses the directory spelling of the name, preferring the value logged in with', () => {
    expect(entryToIdentity({ dn, uid: 'alice' }, 'ALICE', map)).toMatchObject({ identity: { user: 'alice' } });
    expect(entryToIdentity({ dn, uid: ['alice', 'al'] }, 'AL', map)).toMatchObject({ identity: { user: 'al' } });
    // Neither value matches (e.g. a mail filter) and several exist: keep the login name.
    expect(entryToIdentity({ dn, uid: ['x', 'y'] }, 'a@x', map)).toMatchObject({ identity: { user: 'a@x' } });
  });

  it('leaves out what the entry does not have', () => {
    const r = entryToIdentity({ dn }, 'alice', map);
    expect(r).toEqual({ ok: true, identity: { user: 'alice', fields: { dn } } });
  });

  it.each([
    [{ uidNumber: 'abc' }, /uidNumber/],
    [{ uidNumber: '-1' }, /uidNumber/],
    [{ uidNumber: ['1', '2'] }, /uidNumber/],
    [{ uidNumber: '99999999999' }, /uidNumber/],
    [{ gidNumber: '1.5' }, /gidNumber/],
    [{ homeDirectory: ['/a', '/b'] }, /more than one homeDirectory/],
  ])('refuses a broken entry %j', (attrs, reason) => {
    const r = entryToIdentity({ dn, uid: 'alice', ...attrs }, 'alice', map);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });

  it('decodes Buffer values as UTF-8', () => {
    expect(attributeValues({ dn, cn: Buffer.from('Jürgen') }, 'CN')).toEqual(['Jürgen']);
  });

  it('asks only for the mapped attributes, never for passwords', () => {
    expect(requestedAttributes({ ...map, user_attr: 'mail' })).toEqual([
      'mail',
      'uidNumber',
      'gidNumber',
      'homeDirectory',
    ]);
  });
});
