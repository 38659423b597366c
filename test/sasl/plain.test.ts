import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createExchange } from '../../src/sasl/index.js';
import { PlainExchange } from '../../src/sasl/plain.js';
import { PasswdFileBackend } from '../../src/auth/passwd-file.js';
import { captureLogger, madeBy } from '../auth/util.js';
import { b, ctx, passwdFixture, type Fixture } from './fixtures.js';

describe('SASL PLAIN (RFC 4616)', () => {
  let fx: Fixture;
  const pw = 'Grüße, 世界 pass';
  beforeAll(async () => {
    fx = await passwdFixture([
      `alice@example.org:${madeBy('openssl', ['passwd', '-6', '-stdin'], pw)}:1000:1000::/home/alice::`,
    ]);
  });
  afterAll(async () => fx.cleanup());

  const plain = () => createExchange('plain', fx.backend, ctx)!;

  it('logs in with an initial response and an empty authzid', async () => {
    const step = await plain().start(b(`\0alice@example.org\0${pw}`));
    expect(step.kind).toBe('success');
    if (step.kind === 'success') {
      expect(step.outcome.identity).toMatchObject({ user: 'alice@example.org', uid: 1000, home: '/home/alice' });
      expect(step.serverFinal).toBeUndefined();
    }
  });

  it('accepts authzid equal to authcid, refuses any other authzid', async () => {
    expect((await plain().start(b(`alice@example.org\0alice@example.org\0${pw}`))).kind).toBe('success');
    const step = await plain().start(b(`admin\0alice@example.org\0${pw}`));
    expect(step).toMatchObject({ kind: 'failure', reason: 'authzid' });
  });

  it('sends an empty challenge without an initial response, then takes the message', async () => {
    const ex = plain();
    const first = await ex.start(undefined);
    expect(first).toEqual({ kind: 'challenge', data: Buffer.alloc(0) });
    expect((await ex.respond(b(`\0alice@example.org\0${pw}`))).kind).toBe('success');
    // Nothing more is expected after the outcome.
    expect(await ex.respond(b('again'))).toMatchObject({ kind: 'failure', reason: 'malformed' });
  });

  it('treats an empty initial response as an (empty, malformed) message', async () => {
    expect(await plain().start(Buffer.alloc(0))).toMatchObject({ kind: 'failure', reason: 'malformed' });
  });

  it('gives a wrong password and an unknown user the same answer, without logging the password', async () => {
    const wrong = await plain().start(b(`\0alice@example.org\0${pw}x`));
    const unknown = await plain().start(b(`\0bob@example.org\0${pw}`));
    expect(wrong).toMatchObject({ kind: 'failure', reason: 'rejected', user: 'alice@example.org' });
    expect(unknown).toMatchObject({ kind: 'failure', reason: 'rejected', user: 'bob@example.org' });
    for (const s of [wrong, unknown]) if (s.kind === 'failure') expect(s.logMessage).not.toContain(pw);
  });

  it('refuses malformed messages: NUL count, bad UTF-8, control characters, empty fields', async () => {
    const bad = [
      b('alice@example.org'),
      b(`\0alice@example.org`),
      b(`\0alice@example.org\0${pw}\0extra`),
      Buffer.concat([b('\0'), Buffer.from([0xff, 0xfe]), b(`\0${pw}`)]),
      b(`\0ali\x01ce@example.org\0${pw}`),
      b(`\0\0${pw}`),
      b(`\0alice@example.org\0`),
    ];
    for (const m of bad) {
      const step = await plain().start(m);
      expect(step.kind, JSON.stringify(m.toString('latin1'))).toBe('failure');
      if (step.kind === 'failure') expect(step.reason).toBe('malformed');
    }
  });

  it('reports an unavailable backend as unavailable, not as bad credentials', async () => {
    const gone = new PasswdFileBackend('/nonexistent/tsieved-test/passwd', captureLogger().log);
    const step = await new PlainExchange(gone, ctx).start(b(`\0alice@example.org\0${pw}`));
    expect(step).toMatchObject({ kind: 'failure', reason: 'unavailable' });
  });
});
