import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createExchange, mechanismNames } from '../../src/sasl/index.js';
import type { AuthBackend, AuthOutcome } from '../../src/auth/types.js';
import { b, ctx, passwdFixture, type Fixture } from './fixtures.js';

/** A backend that checks passwords but has no SCRAM keys at all (like PAM). */
const passwordOnly: AuthBackend = {
  name: 'password-only',
  async verifyPassword(user: string, password: string): Promise<AuthOutcome> {
    return user === 'u' && password === 'p'
      ? { kind: 'ok', identity: { user, fields: {} } }
      : { kind: 'rejected', reason: 'no' };
  },
};

describe('mechanism list and factory', () => {
  let clear: Fixture;
  let mixed: Fixture;
  beforeAll(async () => {
    clear = await passwdFixture(['a:{PLAIN}pa', 'b:{CLEAR}pb']);
    mixed = await passwdFixture(['a:{PLAIN}pa', 'c:$6$saltsalt$hashhashhash']);
  });
  afterAll(async () => {
    await clear.cleanup();
    await mixed.cleanup();
  });

  it('lists SCRAM first when the backend can serve it, then PLAIN, then LOGIN', () => {
    expect(mechanismNames(clear.backend)).toEqual(['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN', 'LOGIN']);
    expect(mechanismNames(mixed.backend)).toEqual(['PLAIN', 'LOGIN']);
    expect(mechanismNames(passwordOnly)).toEqual(['PLAIN', 'LOGIN']);
  });

  it('never lists mechanisms Net_Sieve would prefer but we cannot serve', () => {
    for (const n of mechanismNames(clear.backend)) expect(['DIGEST-MD5', 'CRAM-MD5', 'EXTERNAL']).not.toContain(n);
  });

  it('creates exchanges case-insensitively, and none for unknown or unoffered mechanisms', async () => {
    const ex = createExchange('Plain', passwordOnly, ctx);
    expect(ex).toBeDefined();
    expect((await ex!.start(b('\0u\0p'))).kind).toBe('success');
    expect(createExchange('login', passwordOnly, ctx)).toBeDefined();
    expect(createExchange('SCRAM-SHA-256', passwordOnly, ctx)).toBeUndefined();
    expect(createExchange('SCRAM-SHA-256', mixed.backend, ctx)).toBeUndefined();
    expect(createExchange('scram-sha-256', clear.backend, ctx)).toBeDefined();
    for (const n of ['DIGEST-MD5', 'CRAM-MD5', 'EXTERNAL', 'GSSAPI', 'SCRAM-SHA-512', '']) {
      expect(createExchange(n, clear.backend, ctx)).toBeUndefined();
    }
  });

  it('turns a throwing backend into "unavailable"', async () => {
    const broken: AuthBackend = {
      name: 'broken',
      verifyPassword: () => Promise.reject(new Error('boom')),
    };
    expect(await createExchange('PLAIN', broken, ctx)!.start(b('\0u\0p'))).toMatchObject({
      kind: 'failure',
      reason: 'unavailable',
    });
  });
});
