/**
 * Issue 5: the command sequence of Thunderbird's sieve add-on (thsmi/sieve,
 * libManageSieve), reproduced by a scripted client, because the add-on cannot run
 * here. Each step names the quirk it reproduces (managesieve-protocol.md section
 * 4.1, TB1-TB14), and every request is held to the add-on's 20 s request timeout
 * (TB10): a slower answer is a failure, as it would be for a user.
 *
 * Workflow: greeting (TB1), STARTTLS with the certificate checked against the test
 * CA (TB2, TB3, TB13), an immediate CAPABILITY behind the handshake (TB4),
 * capability parsing (TB5), server-order SASL choice (TB6), PLAIN with a quoted
 * initial response (TB7) and LOGIN with quoted responses, the editor's
 * CHECKSCRIPT while typing (TB14, including at the script limit), PUTSCRIPT
 * with a quoted UTF-8 name and a `{n+}` body (TB8), list, activate, download
 * byte-exact, RENAMESCRIPT, NOOP keep-alive (TB11), delete, LOGOUT.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SieveTestClient, quote, type ServerResponse } from '../helpers/client.js';
import { ALICE, BOB, startFixture, type Fixture, type TestUser } from '../helpers/fixture.js';

/** TB10: SieveAbstractClient.mjs DEFAULT_TIMEOUT = 20000. */
const TB_REQUEST_TIMEOUT_MS = 20_000;

/** TB6: mechanisms the add-on implements, LOGIN only as the last resort. */
const TB_PREFERRED = ['PLAIN', 'SCRAM-SHA-1', 'SCRAM-SHA-256', 'SCRAM-SHA-512', 'EXTERNAL'];

/** The script the user writes in the editor; the add-on normalises line ends to CRLF. */
const SCRIPT = [
  'require ["fileinto", "vacation"];',
  '',
  '# Thunderbird-Regel: Rechnungen → Ordner „Finanzen“',
  'if anyof (header :contains "from" "rechnung@", header :contains "subject" "Rechnung") {',
  '    fileinto "Finanzen";',
  '}',
  'vacation :subject "Abwesend" "Bis Montag — à lundi — 月曜日まで";',
  '',
].join('\r\n');

/** What the editor holds while the user is still typing: a misspelt command on line 3. */
const HALF_TYPED = 'require "fileinto";\r\nif header :contains "subject" "x" {\r\n    filinto "Finanzen";\r\n}\r\n';

interface Capabilities {
  readonly map: Map<string, string>;
}

/** TB5: names compared case-insensitively; IMPLEMENTATION is mandatory. */
function parseCapabilities(r: ServerResponse): Capabilities {
  const map = new Map<string, string>();
  for (const line of r.lines) {
    const m = /^"([^"]+)"(?: "([^"]*)")?$/.exec(line);
    if (!m) throw new Error(`capability line the add-on cannot parse: ${line}`);
    map.set(m[1].toUpperCase(), m[2] ?? '');
  }
  if (!map.has('IMPLEMENTATION')) throw new Error('Invalid capability response, no key named IMPLEMENTATION');
  return { map };
}

/** TB6: the first mechanism of the server's list the add-on knows; LOGIN last. */
function chooseMechanism(caps: Capabilities): string {
  const offered = (caps.map.get('SASL') ?? '')
    .split(' ')
    .filter(Boolean)
    .map((m) => m.toUpperCase());
  const known = offered.find((m) => TB_PREFERRED.includes(m));
  if (known) return known;
  if (offered.includes('LOGIN')) return 'LOGIN';
  throw new Error('no usable SASL mechanism');
}

/** Every request and its answer within the add-on's timeout (TB10). */
async function request(c: SieveTestClient, data: string | Buffer): Promise<ServerResponse> {
  c.write(typeof data === 'string' ? data + '\r\n' : data);
  return c.readResponse(TB_REQUEST_TIMEOUT_MS);
}

/** TB8: bodies as `{bytes+}` literals. */
function literal(body: string): Buffer {
  const b = Buffer.from(body, 'utf8');
  return Buffer.concat([Buffer.from(`{${b.length}+}\r\n`), b]);
}

/** TB1-TB5: connect, read the greeting, STARTTLS, pipelined CAPABILITY. */
async function openSession(fx: Fixture): Promise<{ c: SieveTestClient; caps: Capabilities }> {
  // TB1: the server speaks first; connect() reads the greeting.
  const c = await SieveTestClient.connect(fx.server.port);
  const greeting = parseCapabilities(c.greeting);
  // TB3: with TLS on, STARTTLS must be advertised, or the add-on gives up.
  expect(greeting.map.has('STARTTLS')).toBe(true);
  // TB2: explicit TLS only; TB13: the certificate must verify (CA + host name).
  const st = await request(c, 'STARTTLS');
  expect(st.statusLine).toBe('OK');
  await c.upgrade(fx.ca);
  // TB4: CAPABILITY goes out at once, before the pushed list has been read;
  // "a bug free server will return with two capability responses".
  c.write('CAPABILITY\r\n');
  const pushed = await c.readResponse(TB_REQUEST_TIMEOUT_MS);
  const answered = await c.readResponse(TB_REQUEST_TIMEOUT_MS);
  expect(pushed.statusLine).toBe('OK');
  expect(answered.statusLine).toBe('OK');
  const caps = parseCapabilities(answered);
  expect(parseCapabilities(pushed).map).toEqual(caps.map);
  expect(caps.map.has('STARTTLS')).toBe(false);
  // TB5: VERSION >= 1 enables RENAMESCRIPT, CHECKSCRIPT and NOOP in the add-on.
  expect(Number.parseFloat(caps.map.get('VERSION') ?? '0')).toBeGreaterThanOrEqual(1);
  return { c, caps };
}

async function login(c: SieveTestClient, mech: string, user: TestUser, authzid = ''): Promise<ServerResponse> {
  if (mech === 'PLAIN') {
    // TB7: quoted initial response, optional authorization id.
    const ir = Buffer.from(`${authzid}\0${user.name}\0${user.password}`, 'utf8').toString('base64');
    return request(c, `AUTHENTICATE "PLAIN" "${ir}"`);
  }
  if (mech === 'LOGIN') {
    // SieveSaslLoginRequest: literal challenges in, quoted base64 answers out.
    c.write('AUTHENTICATE "LOGIN"\r\n');
    for (const answer of [user.name, user.password]) {
      const challenge = (await c.readLine(TB_REQUEST_TIMEOUT_MS)).toString('latin1');
      expect(challenge).toMatch(/^\{\d+\}\r\n[A-Za-z0-9+/=]+$/);
      c.write(`"${Buffer.from(answer, 'utf8').toString('base64')}"\r\n`);
    }
    return c.readResponse(TB_REQUEST_TIMEOUT_MS);
  }
  throw new Error(`the scripted add-on does not implement ${mech}`);
}

describe('Thunderbird sieve add-on command sequence (scripted)', () => {
  let fx: Fixture;
  beforeAll(async () => {
    // max_scripts = 2: TB14's checks must work even when the account is full.
    fx = await startFixture({ extra: { storage: 'max_scripts = 2' } });
  });
  afterAll(async () => {
    await fx?.stop();
  });

  it('the whole session: PLAIN chosen in server order, edit-check, save, activate, rename, keep-alive, delete', async () => {
    const { c, caps } = await openSession(fx);
    const mech = chooseMechanism(caps);
    expect(mech).toBe('PLAIN'); // TB6: our list starts with PLAIN
    expect((await login(c, mech, ALICE)).statusLine).toBe('OK');
    // After login the add-on refreshes its capabilities (OWNER, no SASL).
    const after = parseCapabilities(await request(c, 'CAPABILITY'));
    expect(after.map.get('OWNER')).toBe(ALICE.name);
    expect(after.map.has('SASL')).toBe(false);

    expect((await request(c, 'LISTSCRIPTS')).lines).toEqual([]);
    // TB14: while the user types, the editor checks with CHECKSCRIPT {n+}.
    const check = await request(
      c,
      Buffer.concat([Buffer.from('CHECKSCRIPT '), literal(HALF_TYPED), Buffer.from('\r\n')]),
    );
    expect(check.status).toBe('NO');
    expect(check.text).toBe('line 3: error: unknown command "filinto" (column 5)');
    const good = await request(c, Buffer.concat([Buffer.from('CHECKSCRIPT '), literal(SCRIPT), Buffer.from('\r\n')]));
    expect(good.statusLine).toBe('OK');

    // TB8: name quoted, raw UTF-8, `\` and `"` escaped; body `{n+}`.
    const name = 'Büro "Regeln" \\ 2026';
    const put = await request(
      c,
      Buffer.concat([Buffer.from(`PUTSCRIPT ${quote(name)} `, 'utf8'), literal(SCRIPT), Buffer.from('\r\n')]),
    );
    expect(put.statusLine).toBe('OK');
    expect((await request(c, `SETACTIVE ${quote(name)}`)).statusLine).toBe('OK');
    const list = await request(c, 'LISTSCRIPTS');
    expect(list.lines).toEqual([`${quote(name)} ACTIVE`]);
    const got = await c.getScript(name);
    expect(got.content?.equals(Buffer.from(SCRIPT, 'utf8'))).toBe(true);

    // TB5: with VERSION the add-on renames with RENAMESCRIPT; the active script stays active.
    const renamed = 'Büro 2026';
    expect((await request(c, `RENAMESCRIPT ${quote(name)} ${quote(renamed)}`)).statusLine).toBe('OK');
    expect((await request(c, 'LISTSCRIPTS')).lines).toEqual([`${quote(renamed)} ACTIVE`]);

    // TB11: keep-alive NOOP (untagged), answered at once: a loose bound, not a benchmark.
    const t0 = Date.now();
    expect((await request(c, 'NOOP')).statusLine).toBe('OK');
    expect(Date.now() - t0).toBeLessThan(2_000);

    // TB14 at the limit: with the account full (2 of 2), checking still works (no quota).
    const second = await request(
      c,
      Buffer.concat([Buffer.from('PUTSCRIPT "zweites" '), literal(SCRIPT), Buffer.from('\r\n')]),
    );
    expect(second.statusLine).toBe('OK');
    const full = await request(
      c,
      Buffer.concat([Buffer.from('PUTSCRIPT "drittes" '), literal(SCRIPT), Buffer.from('\r\n')]),
    );
    expect(full.status).toBe('NO');
    expect(full.code).toBe('QUOTA/MAXSCRIPTS');
    expect(
      (await request(c, Buffer.concat([Buffer.from('CHECKSCRIPT '), literal(SCRIPT), Buffer.from('\r\n')]))).statusLine,
    ).toBe('OK');

    // Deleting the active script is refused; the add-on deactivates first.
    const refused = await request(c, `DELETESCRIPT ${quote(renamed)}`);
    expect(refused.status).toBe('NO');
    expect(refused.code).toBe('ACTIVE');
    expect((await request(c, 'SETACTIVE ""')).statusLine).toBe('OK');
    expect((await request(c, `DELETESCRIPT ${quote(renamed)}`)).statusLine).toBe('OK');
    expect((await request(c, 'DELETESCRIPT "zweites"')).statusLine).toBe('OK');
    expect((await request(c, 'LISTSCRIPTS')).lines).toEqual([]);

    // SieveLogoutRequest accepts OK (or BYE); we send OK (erratum 7825) and close.
    const bye = await request(c, 'LOGOUT');
    expect(bye.statusLine).toBe('OK');
    await c.waitClosed();
  }, 60_000);

  it('LOGIN as the last resort: literal challenges, quoted answers', async () => {
    const { c } = await openSession(fx);
    expect((await login(c, 'LOGIN', BOB)).statusLine).toBe('OK');
    expect((await request(c, 'LISTSCRIPTS')).statusLine).toBe('OK');
    expect((await request(c, 'LOGOUT')).statusLine).toBe('OK');
    c.close();
  }, 60_000);

  it('TB7: a proxy authorization id for another user is refused cleanly; the session goes on', async () => {
    const { c } = await openSession(fx);
    const proxy = await login(c, 'PLAIN', ALICE, BOB.name);
    expect(proxy.status).toBe('NO');
    expect(c.isClosed).toBe(false);
    expect((await login(c, 'PLAIN', ALICE, ALICE.name)).statusLine).toBe('OK');
    expect((await request(c, 'LOGOUT')).statusLine).toBe('OK');
    c.close();
  }, 60_000);

  it('TB12: no referrals anywhere in a session', async () => {
    const { c } = await openSession(fx);
    await login(c, 'PLAIN', ALICE);
    const r = await request(c, 'LISTSCRIPTS');
    expect(r.statusLine).not.toMatch(/REFERRAL/);
    c.close();
  }, 60_000);
});

describe('Thunderbird TB10: a failed login is answered within the 20 s request timeout at the default delay', () => {
  let fx: Fixture;
  beforeAll(async () => {
    // The production default (schema: 2000 ms), not the fast test value.
    fx = await startFixture({ extra: { server: 'auth_failure_delay_ms = 2000' } });
  });
  afterAll(async () => {
    await fx?.stop();
  });

  it('NO well before 20 s, then a retry with the right password succeeds', async () => {
    const { c } = await openSession(fx);
    const wrong = await login(c, 'PLAIN', { name: ALICE.name, password: 'typo' });
    expect(wrong.status).toBe('NO');
    expect((await login(c, 'PLAIN', ALICE)).statusLine).toBe('OK');
    c.close();
  }, 60_000);
});
