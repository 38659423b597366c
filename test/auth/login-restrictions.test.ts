/**
 * Dovecot passdb fields that forbid a login (nologin, fail, proxy, allow_nets) in
 * a passwd-file shared with Dovecot: honoured for PLAIN and SCRAM alike, after the
 * password, with the same client answer as a wrong password.
 */
import { describe, expect, it } from 'vitest';
import { parseLoginRestrictions, restrictionRefusal } from '../../src/auth/login-restrictions.js';
import { parsePasswdFileLine } from '../../src/auth/passwd-file.js';
import { createExchange } from '../../src/sasl/index.js';
import { scramClient } from './util.js';
import { passwdFixture } from '../sasl/fixtures.js';

const from = (remoteAddress: string) => ({ remoteAddress, secure: true });

function restrictions(fields: Record<string, string>) {
  const r = parseLoginRestrictions(fields);
  if (!r.ok) throw new Error(r.reason);
  return r.restrictions;
}

describe('parseLoginRestrictions / restrictionRefusal', () => {
  it('no restricting field: no restrictions, any address', () => {
    expect(restrictions({ userdb_mail: 'maildir:~/Mail', nodelay: '' })).toBeUndefined();
    expect(restrictionRefusal(undefined, '203.0.113.9')).toBeUndefined();
  });

  it('nologin, fail, proxy, proxy_maybe and host refuse every login', () => {
    for (const key of ['nologin', 'fail', 'proxy', 'proxy_maybe', 'host']) {
      const r = restrictions({ [key]: key === 'host' ? 'imap2.example.org' : '' });
      expect(restrictionRefusal(r, '127.0.0.1'), key).toBeDefined();
    }
  });

  it('allow_nets: addresses and networks, IPv4, IPv6 and IPv4-mapped', () => {
    const r = restrictions({ allow_nets: '10.0.0.0/8, 192.0.2.7,2001:db8::/32' });
    expect(restrictionRefusal(r, '10.1.2.3')).toBeUndefined();
    expect(restrictionRefusal(r, '::ffff:10.1.2.3')).toBeUndefined();
    expect(restrictionRefusal(r, '192.0.2.7')).toBeUndefined();
    expect(restrictionRefusal(r, '2001:db8::1')).toBeUndefined();
    expect(restrictionRefusal(r, '192.0.2.8')).toMatch(/outside the entry's allow_nets/);
    expect(restrictionRefusal(r, '2001:db9::1')).toMatch(/allow_nets/);
    expect(restrictionRefusal(r, 'unknown')).toMatch(/allow_nets/);
  });

  it('allow_nets and allow_real_nets together: a login must be inside both', () => {
    const r = restrictions({ allow_nets: '10.0.0.0/8', allow_real_nets: '10.1.0.0/16' });
    expect(restrictionRefusal(r, '10.1.0.1')).toBeUndefined();
    expect(restrictionRefusal(r, '10.2.0.1')).toMatch(/10\.1\.0\.0\/16/);
  });

  it('a net that is not one makes the passwd-file line malformed (logged, skipped)', () => {
    for (const bad of ['10.0.0.0/33', 'example.org', '10.0.0.0/x', '::1/129']) {
      expect(parseLoginRestrictions({ allow_nets: bad }).ok, bad).toBe(false);
      expect(parsePasswdFileLine(`u:{PLAIN}pw:1:1::/h::allow_nets=${bad}`).kind, bad).toBe('malformed');
    }
  });
});

describe('a passwd-file with restricted entries', () => {
  const lines = [
    'open:{PLAIN}pw-open:1:1::/h::',
    'disabled:{PLAIN}pw-disabled:2:2::/h::nologin reason=moved',
    'office:{PLAIN}pw-office:3:3::/h::allow_nets=10.0.0.0/8',
  ];

  it('PLAIN: refused after a right password, with the reason in the log only', async () => {
    const fx = await passwdFixture(lines);
    try {
      expect((await fx.backend.verifyPassword('open', 'pw-open', from('203.0.113.9'))).kind).toBe('ok');
      expect(await fx.backend.verifyPassword('disabled', 'pw-disabled', from('10.0.0.1'))).toMatchObject({
        kind: 'rejected',
        reason: expect.stringMatching(/nologin/),
      });
      expect((await fx.backend.verifyPassword('office', 'pw-office', from('10.9.9.9'))).kind).toBe('ok');
      expect(await fx.backend.verifyPassword('office', 'pw-office', from('203.0.113.9'))).toMatchObject({
        kind: 'rejected',
        reason: expect.stringMatching(/allow_nets/),
      });
      // A wrong password is still just that.
      expect(await fx.backend.verifyPassword('office', 'nope', from('10.9.9.9'))).toMatchObject({
        kind: 'rejected',
        reason: 'wrong password',
      });
    } finally {
      await fx.cleanup();
    }
  });

  it('SCRAM: the proof is checked, then the login refused like a wrong password', async () => {
    const fx = await passwdFixture(lines);
    try {
      const attempt = async (user: string, password: string, remote: string) => {
        const client = scramClient('sha256', user, password, 'n0nce-for-test');
        const ex = createExchange('SCRAM-SHA-256', fx.backend, from(remote));
        if (ex === undefined) throw new Error('SCRAM-SHA-256 not offered');
        const first = await ex.start(client.first);
        if (first.kind !== 'challenge') throw new Error(`no server-first: ${JSON.stringify(first)}`);
        return ex.respond(client.final(first.data).message);
      };
      expect((await attempt('office', 'pw-office', '10.0.0.5')).kind).toBe('success');
      expect(await attempt('office', 'pw-office', '198.51.100.1')).toMatchObject({
        kind: 'failure',
        reason: 'rejected',
        logMessage: expect.stringMatching(/allow_nets/),
      });
      expect(await attempt('disabled', 'pw-disabled', '10.0.0.5')).toMatchObject({
        kind: 'failure',
        reason: 'rejected',
        logMessage: expect.stringMatching(/nologin/),
      });
      expect(await attempt('disabled', 'wrong', '10.0.0.5')).toMatchObject({
        kind: 'failure',
        logMessage: expect.stringMatching(/wrong password/),
      });
    } finally {
      await fx.cleanup();
    }
  });
});
