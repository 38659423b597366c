import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createExchange } from '../../src/sasl/index.js';
import { madeBy } from '../auth/util.js';
import { b, ctx, passwdFixture, type Fixture } from './fixtures.js';

describe('SASL LOGIN (draft-murchison-sasl-login)', () => {
  let fx: Fixture;
  const pw = 'naïve café';
  beforeAll(async () => {
    fx = await passwdFixture([`carol:${madeBy('mkpasswd', ['-s', '-m', 'yescrypt'], pw)}:1001:1001::/home/carol::`]);
  });
  afterAll(async () => fx.cleanup());

  const login = () => createExchange('LOGIN', fx.backend, ctx)!;

  it('asks "Username:" then "Password:" and logs in', async () => {
    const ex = login();
    expect(await ex.start(undefined)).toEqual({ kind: 'challenge', data: b('Username:') });
    expect(await ex.respond(b('carol'))).toEqual({ kind: 'challenge', data: b('Password:') });
    const done = await ex.respond(b(pw));
    expect(done.kind).toBe('success');
    if (done.kind === 'success') expect(done.outcome.identity.user).toBe('carol');
  });

  it('takes a user name as initial response', async () => {
    const ex = login();
    expect(await ex.start(b('carol'))).toEqual({ kind: 'challenge', data: b('Password:') });
    expect((await ex.respond(b(pw))).kind).toBe('success');
  });

  it('refuses an empty user name (also as empty initial response)', async () => {
    expect(await login().start(Buffer.alloc(0))).toMatchObject({ kind: 'failure', reason: 'malformed' });
    const ex = login();
    await ex.start(undefined);
    expect(await ex.respond(Buffer.alloc(0))).toMatchObject({ kind: 'failure', reason: 'malformed' });
  });

  it('rejects a wrong password and an unknown user alike', async () => {
    for (const [user, pass] of [
      ['carol', pw.toUpperCase()],
      ['dave', pw],
    ] as const) {
      const ex = login();
      await ex.start(b(user));
      expect(await ex.respond(b(pass))).toMatchObject({ kind: 'failure', reason: 'rejected', user });
    }
  });

  it('refuses a user name with control characters, and responses after the end', async () => {
    const ex = login();
    await ex.start(b('car\rol'));
    expect(await ex.respond(b(pw))).toMatchObject({ kind: 'failure', reason: 'malformed' });
    expect(await ex.respond(b(pw))).toMatchObject({ kind: 'failure', reason: 'malformed' });
  });
});
