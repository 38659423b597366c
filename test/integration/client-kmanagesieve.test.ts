/**
 * Issue 5: the command sequence of KDE's KManageSieve (libksieve, used by KMail),
 * reproduced by a scripted client because KMail cannot run here. Each step names
 * the quirk it reproduces (managesieve-protocol.md section 4.6, KD1-KD9).
 *
 * KManageSieve parses responses naively: capability keys compared case-sensitively
 * (KD1), status by the first two characters (KD2), key/value split at raw `"`
 * without unescaping (KD3), `ACTIVE` exact (KD4). It waits for the capabilities
 * pushed after STARTTLS and does not ask for them (KD5); SASL goes through
 * libsasl2 with quoted initial response and answers, and only literal challenges
 * carry data (KD6); it reads `{n}` literals and `NO {n}` texts (KD7); sends names
 * quoted without escaping and scripts as `{n+}` with LF turned into CRLF, and
 * "checks" a script with a malformed `RENAMESCRIPT {n+}` (KD8); no implicit TLS,
 * `x-allow-unencrypted` for clear text (KD9).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SieveTestClient, type ServerResponse } from '../helpers/client.js';
import { ALICE, BOB, startFixture, type Fixture, type TestUser, listenerPorts } from '../helpers/fixture.js';

/** The user's script as KMail's editor holds it: LF line ends, non-ASCII text. */
const EDITOR_TEXT = [
  'require ["fileinto", "envelope"];',
  '# KMail: Post vom Verein „Grün & Blau“ ablegen',
  'if envelope :domain :is "from" "verein.example" {',
  '  fileinto "Verein";',
  '  stop;',
  '}',
  '',
].join('\n');

const BROKEN_TEXT = 'require "fileinto";\nif true {\n  fileinto "a";\n  fileinto;\n}\n';

/** KD8: scripts go out with LF turned into CRLF. */
const toWire = (text: string): Buffer => Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'utf8');

/** KD3: split at raw quotes; KD1: keys kept as sent (compared case-sensitively). */
function kdeCapabilities(r: ServerResponse): Map<string, string> {
  const caps = new Map<string, string>();
  for (const line of r.lines) {
    const parts = line.split('"');
    // `"KEY" "VALUE"` -> ['', KEY, ' ', VALUE, '']; `"KEY"` -> ['', KEY, ''].
    caps.set(parts[1] ?? '', parts[3] ?? '');
    // A value with a quote or backslash would come out mangled: none may have one.
    expect(parts.length === 3 || parts.length === 5, `line KManageSieve splits wrongly: ${line}`).toBe(true);
    expect(line).not.toContain('\\');
  }
  return caps;
}

/** KD2: the status is the first two characters of the line. */
function kdeStatus(r: ServerResponse): 'OK' | 'NO' | 'BY' {
  const s = r.statusLine.slice(0, 2);
  if (s !== 'OK' && s !== 'NO' && s !== 'BY') throw new Error(`KManageSieve cannot classify ${r.statusLine}`);
  return s;
}

/** KD4: `"name"` or `"name" ACTIVE`, split at raw quotes. */
function kdeList(r: ServerResponse): { name: string; active: boolean }[] {
  return r.lines.map((line) => {
    const parts = line.split('"');
    return { name: parts[1] ?? '', active: (parts[2] ?? '').trim() === 'ACTIVE' };
  });
}

async function send(c: SieveTestClient, data: string | Buffer): Promise<ServerResponse> {
  c.write(typeof data === 'string' ? data + '\r\n' : data);
  return c.readResponse();
}

/** KD6: libsasl2 client steps; quoted IR/answers; challenges must be literals to carry data. */
async function authenticate(c: SieveTestClient, mech: 'PLAIN' | 'LOGIN', user: TestUser): Promise<ServerResponse> {
  if (mech === 'PLAIN') {
    const ir = Buffer.from(`\0${user.name}\0${user.password}`, 'utf8').toString('base64');
    return send(c, `AUTHENTICATE "PLAIN" "${ir}"`);
  }
  c.write('AUTHENTICATE "LOGIN"\r\n');
  for (const [expected, answer] of [
    ['Username:', user.name],
    ['Password:', user.password],
  ] as const) {
    const line = (await c.readLine()).toString('latin1');
    // Only a {n} literal reaches sasl_client_step with its data (a quoted one arrives empty).
    const m = /^\{(\d+)\}\r\n(.*)$/s.exec(line);
    expect(m, `challenge not a literal: ${line}`).not.toBeNull();
    expect(Buffer.from(m![2], 'base64').toString('latin1')).toBe(expected);
    c.write(`"${Buffer.from(answer, 'utf8').toString('base64')}"\r\n`);
  }
  return c.readResponse();
}

/** Connect; STARTTLS unless x-allow-unencrypted; KD5: wait for the pushed list. */
async function openSession(
  fx: Fixture,
  port: number,
  allowUnencrypted = false,
): Promise<{ c: SieveTestClient; caps: Map<string, string> }> {
  const c = await SieveTestClient.connect(port);
  let caps = kdeCapabilities(c.greeting);
  expect(caps.has('IMPLEMENTATION')).toBe(true); // KD1: upper-case keys
  expect(caps.has('SIEVE')).toBe(true);
  if (!allowUnencrypted) {
    expect(caps.has('STARTTLS')).toBe(true);
    expect(kdeStatus(await send(c, 'STARTTLS'))).toBe('OK');
    await c.upgrade(fx.ca);
    // KD5: nothing is sent; the server must push the list by itself.
    const pushed = await c.readResponse(5_000);
    expect(kdeStatus(pushed)).toBe('OK');
    caps = kdeCapabilities(pushed);
  }
  // KD5 also relies on an IMPLEMENTATION that is not an old Cyrus.
  expect(caps.get('IMPLEMENTATION')).not.toMatch(/^Cyrus timsieved v2\./);
  return { c, caps };
}

describe('KDE KManageSieve command sequence (scripted)', () => {
  let fx: Fixture;
  let clearPort: number;
  let starttlsPort: number;
  beforeAll(async () => {
    fx = await startFixture({
      listeners: 'listen = ["127.0.0.1:0", { address = "127.0.0.1:0", allow_plaintext = true }]',
    });
    ({ clear: clearPort, starttls: starttlsPort } = await listenerPorts(fx));
  });
  afterAll(async () => {
    await fx?.stop();
  });

  for (const [mech, user] of [
    ['PLAIN', ALICE],
    ['LOGIN', BOB],
  ] as const) {
    it(`${mech}: upload, check, list, activate, download, broken upload, delete, logout`, async () => {
      const { c, caps } = await openSession(fx, starttlsPort);
      expect(caps.get('SASL')?.split(' ')).toContain(mech);
      expect(kdeStatus(await authenticate(c, mech, user))).toBe('OK');

      // KD8: names quoted without escaping (raw UTF-8), scripts {n+} with CRLF.
      const name = mech === 'PLAIN' ? 'kmail-Grüße' : 'kmail-filter';
      const body = toWire(EDITOR_TEXT);
      const put = await send(
        c,
        Buffer.concat([Buffer.from(`PUTSCRIPT "${name}" {${body.length}+}\r\n`, 'utf8'), body, Buffer.from('\r\n')]),
      );
      expect(kdeStatus(put)).toBe('OK');

      // KD8: this libksieve revision "checks" with RENAMESCRIPT and one literal: a
      // malformed command that must get NO, and must not end the session.
      const check = await send(
        c,
        Buffer.concat([Buffer.from(`RENAMESCRIPT {${body.length}+}\r\n`), body, Buffer.from('\r\n')]),
      );
      expect(kdeStatus(check)).toBe('NO');
      expect(c.isClosed).toBe(false);

      expect(kdeStatus(await send(c, `SETACTIVE "${name}"`))).toBe('OK');
      const list = await send(c, 'LISTSCRIPTS');
      expect(kdeList(list)).toEqual([{ name, active: true }]); // KD4

      // KD7: GETSCRIPT's {n} literal; the bytes are those uploaded (CRLF and all).
      const got = await c.getScript(name);
      expect(got.content?.equals(body)).toBe(true);

      // KD7: a refused upload: NO with the line number (quoted for one line, a {n}
      // literal for several; KManageSieve reads both).
      const broken = toWire(BROKEN_TEXT);
      const bad = await send(
        c,
        Buffer.concat([Buffer.from(`PUTSCRIPT "kaputt" {${broken.length}+}\r\n`), broken, Buffer.from('\r\n')]),
      );
      expect(kdeStatus(bad)).toBe('NO');
      expect(bad.text).toBe('kaputt: line 4: error: fileinto expects 1 argument (folder), got 0 (column 3)');
      const twice = toWire('require "fileinto";\nif true {\n  fileinto;\n  fileinto;\n}\n');
      const bad2 = await send(
        c,
        Buffer.concat([Buffer.from(`PUTSCRIPT "kaputt" {${twice.length}+}\r\n`), twice, Buffer.from('\r\n')]),
      );
      expect(bad2.statusLine).toMatch(
        /^NO \{\d+\}\r\nkaputt: line 3: error: .* \(column 3\)\r\nkaputt: line 4: error: .* \(column 3\)$/,
      );

      expect(kdeStatus(await send(c, 'SETACTIVE ""'))).toBe('OK');
      expect(kdeStatus(await send(c, `DELETESCRIPT "${name}"`))).toBe('OK');
      expect(kdeList(await send(c, 'LISTSCRIPTS'))).toEqual([]);
      expect(kdeStatus(await send(c, 'LOGOUT'))).toBe('OK');
      await c.waitClosed();
    }, 60_000);
  }

  it('KD9: x-allow-unencrypted on the trusted clear-text listener logs in without STARTTLS', async () => {
    const { c, caps } = await openSession(fx, clearPort, true);
    expect(caps.get('SASL')?.split(' ')).toContain('PLAIN');
    expect(kdeStatus(await authenticate(c, 'PLAIN', ALICE))).toBe('OK');
    expect(kdeStatus(await send(c, 'LISTSCRIPTS'))).toBe('OK');
    expect(kdeStatus(await send(c, 'LOGOUT'))).toBe('OK');
    c.close();
  }, 60_000);

  it('KD9: on the STARTTLS listener, clear text gets no mechanism and PLAIN is refused', async () => {
    const { c, caps } = await openSession(fx, starttlsPort, true);
    expect(caps.get('SASL')).toBe('');
    const r = await authenticate(c, 'PLAIN', ALICE);
    expect(kdeStatus(r)).toBe('NO');
    expect(r.code).toBe('ENCRYPT-NEEDED');
    c.close();
  }, 60_000);
});
