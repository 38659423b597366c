import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createExchange } from '../../src/sasl/index.js';
import { ScramExchange, decodeSaslName } from '../../src/sasl/scram.js';
import { deriveScramCredentials } from '../../src/auth/password-hash.js';
import type { ScramAlgorithm } from '../../src/auth/types.js';
import { PASSWORDS, madeBy, scramClient } from '../auth/util.js';
import { b, ctx, passwdFixture, type Fixture } from './fixtures.js';

async function scramLine(user: string, alg: ScramAlgorithm, password: string, saltB64: string): Promise<string> {
  const k = await deriveScramCredentials(password, alg, Buffer.from(saltB64, 'base64'), 4096);
  return `${user}:{SCRAM-${alg}}4096,${saltB64},${k.storedKey.toString('base64')},${k.serverKey.toString('base64')}`;
}

describe('SCRAM test vectors', () => {
  it('RFC 5802 section 5 (SCRAM-SHA-1)', async () => {
    const fx = await passwdFixture([await scramLine('user', 'SHA-1', 'pencil', 'QSXCR+Q6sek8bf92')]);
    try {
      const ex = new ScramExchange(fx.backend, 'SHA-1', ctx, () => '3rfcNHYJY1ZVvWVs7j');
      const first = await ex.start(b('n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL'));
      expect(first).toEqual({
        kind: 'challenge',
        data: b('r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096'),
      });
      const fin = await ex.respond(
        b('c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts='),
      );
      expect(fin.kind).toBe('success');
      if (fin.kind === 'success') expect(fin.serverFinal?.toString()).toBe('v=rmF9pqV8S7suAoZWja4dJRkFsKQ=');
    } finally {
      await fx.cleanup();
    }
  });

  it('RFC 7677 section 3 (SCRAM-SHA-256)', async () => {
    const fx = await passwdFixture([await scramLine('user', 'SHA-256', 'pencil', 'W22ZaJ0SNY7soEsUEjb6gQ==')]);
    try {
      const ex = new ScramExchange(fx.backend, 'SHA-256', ctx, () => '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0');
      const first = await ex.start(b('n,,n=user,r=rOprNGfwEbeRWgbNEkqO'));
      expect(first).toEqual({
        kind: 'challenge',
        data: b('r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096'),
      });
      const fin = await ex.respond(
        b('c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ='),
      );
      expect(fin.kind).toBe('success');
      if (fin.kind === 'success')
        expect(fin.serverFinal?.toString()).toBe('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
      // The same proof with one bit flipped fails.
      const ex2 = new ScramExchange(fx.backend, 'SHA-256', ctx, () => '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0');
      await ex2.start(b('n,,n=user,r=rOprNGfwEbeRWgbNEkqO'));
      const bad = await ex2.respond(
        b('c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVU='),
      );
      expect(bad).toMatchObject({ kind: 'failure', reason: 'rejected' });
    } finally {
      await fx.cleanup();
    }
  });

  it('decodes saslnames', () => {
    expect(decodeSaslName('a=2Cb=3Dc')).toBe('a,b=c');
    expect(decodeSaslName('a=2')).toBeUndefined();
    expect(decodeSaslName('a=41')).toBeUndefined();
  });
});

describe('SCRAM exchanges against doveadm-made and cleartext entries', () => {
  // Two files: SCRAM is offered for an algorithm only when every entry has keys
  // for it, so SHA-256 keys and SHA-1 keys cannot share one file.
  let fx: Fixture;
  let fx1: Fixture;
  const nfc = PASSWORDS.nonAscii;
  beforeAll(async () => {
    fx = await passwdFixture([
      `dove256:${madeBy('doveadm', ['pw', '-s', 'SCRAM-SHA-256', '-p', nfc])}:1:1::/h::`,
      `clear:{PLAIN}${nfc}:3:3::/h::`,
      'u,ser=x:{CLEAR}odd-name-pw:4:4::/h::',
    ]);
    fx1 = await passwdFixture([
      `dove1:${madeBy('doveadm', ['pw', '-s', 'SCRAM-SHA-1', '-p', PASSWORDS.ascii])}:2:2::/h::`,
      `clear:{PLAIN}${nfc}:3:3::/h::`,
    ]);
  });
  afterAll(async () => {
    await fx.cleanup();
    await fx1.cleanup();
  });

  it('offers exactly the algorithms each file can serve', async () => {
    expect(createExchange('SCRAM-SHA-1', fx.backend, ctx)).toBeUndefined();
    expect(createExchange('SCRAM-SHA-256', fx1.backend, ctx)).toBeUndefined();
  });

  async function exchange(mech: string, user: string, password: string, gs2 = 'n,,') {
    const hash = mech === 'SCRAM-SHA-1' ? 'sha1' : 'sha256';
    const client = scramClient(hash, user, password, 'cl1entN0nce+/=', gs2);
    const ex = createExchange(mech, (mech === 'SCRAM-SHA-1' ? fx1 : fx).backend, ctx);
    if (ex === undefined) throw new Error(`${mech} not offered`);
    const first = await ex.start(client.first);
    if (first.kind !== 'challenge') return { first, final: undefined, expected: undefined };
    const { message, expectedServerFinal } = client.final(first.data);
    return { first, final: await ex.respond(message), expected: expectedServerFinal };
  }

  it('logs in with SCRAM-SHA-256 keys made by doveadm, non-ASCII password, and proves the server', async () => {
    const r = await exchange('SCRAM-SHA-256', 'dove256', nfc);
    expect(r.final?.kind).toBe('success');
    if (r.final?.kind === 'success') {
      expect(r.final.serverFinal?.equals(r.expected!)).toBe(true);
      expect(r.final.outcome.identity.uid).toBe(1);
    }
  });

  it('a client that applies SASLprep (NFKC) to an NFD-typed password still matches NFC keys', async () => {
    const r = await exchange('SCRAM-SHA-256', 'dove256', nfc.normalize('NFD').normalize('NFKC'));
    expect(r.final?.kind).toBe('success');
  });

  it('logs in with SCRAM-SHA-1 keys and with keys derived from {PLAIN}', async () => {
    expect((await exchange('SCRAM-SHA-1', 'dove1', PASSWORDS.ascii)).final?.kind).toBe('success');
    expect((await exchange('SCRAM-SHA-1', 'clear', nfc)).final?.kind).toBe('success');
    expect((await exchange('SCRAM-SHA-256', 'clear', nfc)).final?.kind).toBe('success');
    expect((await exchange('SCRAM-SHA-1', 'clear', nfc + 'x')).final?.kind).toBe('failure');
  });

  it('handles "," and "=" in user names (saslname escaping)', async () => {
    expect((await exchange('SCRAM-SHA-256', 'u,ser=x', 'odd-name-pw')).final?.kind).toBe('success');
  });

  it('accepts the "y" gs2 flag (client could bind, thinks we cannot)', async () => {
    expect((await exchange('SCRAM-SHA-256', 'dove256', nfc, 'y,,')).final?.kind).toBe('success');
  });

  it('rejects a wrong password at the end of the exchange', async () => {
    const r = await exchange('SCRAM-SHA-256', 'dove256', nfc + '!');
    expect(r.first.kind).toBe('challenge');
    expect(r.final).toMatchObject({ kind: 'failure', reason: 'rejected' });
  });

  it('runs an unknown user through to the end with a stable fake salt, then rejects like a wrong password', async () => {
    const a = await exchange('SCRAM-SHA-256', 'ghost', 'whatever');
    const again = await exchange('SCRAM-SHA-256', 'ghost', 'whatever');
    expect(a.first.kind).toBe('challenge');
    const salt = (s: typeof a.first) =>
      s.kind === 'challenge' ? /,s=([^,]*),i=(\d+)$/.exec(s.data.toString())?.slice(1) : undefined;
    expect(salt(a.first)).toEqual(salt(again.first));
    expect(salt(a.first)?.[1]).toBe('4096');
    expect(salt(a.first)).not.toEqual(salt((await exchange('SCRAM-SHA-256', 'ghost2', 'x')).first));
    expect(a.final).toMatchObject({ kind: 'failure', reason: 'rejected' });
  });

  it('refuses channel binding, mandatory extensions, foreign authzids, bad nonces and bad c=', async () => {
    const ex = () => createExchange('SCRAM-SHA-256', fx.backend, ctx)!;
    expect(await ex().start(b('p=tls-unique,,n=dove256,r=abc'))).toMatchObject({
      kind: 'failure',
      reason: 'malformed',
    });
    expect(await ex().start(b('n,,m=ext,n=dove256,r=abc'))).toMatchObject({ kind: 'failure', reason: 'malformed' });
    expect(await ex().start(b('n,a=admin,n=dove256,r=abc'))).toMatchObject({ kind: 'failure', reason: 'authzid' });
    expect((await ex().start(b('n,a=dove256,n=dove256,r=abc'))).kind).toBe('challenge');
    expect(await ex().start(b('n,,n=dove256,r='))).toMatchObject({ kind: 'failure', reason: 'malformed' });
    expect(await ex().start(b('n,,n=dove\u0001256,r=abc'))).toMatchObject({ kind: 'failure', reason: 'malformed' });
    expect(await ex().start(b('x,,n=dove256,r=abc'))).toMatchObject({ kind: 'failure', reason: 'malformed' });
    expect(await ex().start(Buffer.alloc(0))).toMatchObject({ kind: 'failure', reason: 'malformed' });

    // Nonce that is not ours; c= that does not match the gs2 header.
    const client = scramClient('sha256', 'dove256', nfc, 'abc');
    for (const tamper of [
      (m: string) => m.replace(/,r=abc/, ',r=abd'),
      (m: string) => m.replace(/^c=biws/, 'c=eSws'),
    ]) {
      const e = ex();
      const first = await e.start(client.first);
      if (first.kind !== 'challenge') throw new Error('expected a challenge');
      const msg = client.final(first.data).message.toString();
      expect(await e.respond(b(tamper(msg)))).toMatchObject({ kind: 'failure', reason: 'malformed' });
    }
  });

  it('refuses text after the nonce that is no attribute (RFC 5802 section 7: extensions are ALPHA "=" value)', async () => {
    const ex = () => createExchange('SCRAM-SHA-256', fx.backend, ctx)!;
    for (const bad of [
      'n,,n=test,r=abc,def',
      'n,,n=dove256,r=abc,',
      'n,,n=dove256,r=abc,=x',
      'n,,n=dove256,r=abc,xy=1',
    ]) {
      expect(await ex().start(b(bad))).toMatchObject({ kind: 'failure', reason: 'malformed' });
    }
    // An extension attribute is allowed (and ignored).
    expect((await ex().start(b('n,,n=dove256,r=abc,x=1'))).kind).toBe('challenge');
    // The same in the final message, before the proof.
    const client = scramClient('sha256', 'dove256', nfc, 'abc');
    const e = ex();
    const first = await e.start(client.first);
    if (first.kind !== 'challenge') throw new Error('expected a challenge');
    const msg = client.final(first.data).message.toString();
    expect(await e.respond(b(msg.replace(',p=', ',junk,p=')))).toMatchObject({ kind: 'failure', reason: 'malformed' });
  });

  it('sends an empty challenge first when there is no initial response', async () => {
    const e = createExchange('scram-sha-1', fx1.backend, ctx)!;
    expect(await e.start(undefined)).toEqual({ kind: 'challenge', data: Buffer.alloc(0) });
    const client = scramClient('sha1', 'dove1', PASSWORDS.ascii, 'xyz');
    const first = await e.respond(client.first);
    if (first.kind !== 'challenge') throw new Error('expected a challenge');
    const fin = await e.respond(client.final(first.data).message);
    expect(fin.kind).toBe('success');
    expect(await e.respond(b(''))).toMatchObject({ kind: 'failure', reason: 'malformed' });
  });
});
