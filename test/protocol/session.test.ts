/**
 * The whole RFC 5804 command set over real sockets against the real tsieved
 * process: states, capabilities, every response code, STARTTLS and implicit TLS.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SieveTestClient, quote } from '../helpers/client.js';
import { ALICE, BOB, startFixture, type Fixture } from '../helpers/fixture.js';

let fx: Fixture;

beforeAll(async () => {
  fx = await startFixture({ extra: { storage: 'max_scripts = 5\nmax_script_bytes = 4096' } });
});
afterAll(async () => {
  await fx?.stop();
});

async function secureClient(): Promise<SieveTestClient> {
  const c = await SieveTestClient.connect(fx.server.port);
  await c.startTls(fx.ca);
  return c;
}

async function loggedIn(user = ALICE): Promise<SieveTestClient> {
  const c = await secureClient();
  const r = await c.authenticatePlain(user.name, user.password);
  expect(r.statusLine).toBe('OK');
  return c;
}

describe('greeting and capabilities', () => {
  it('speaks first with quoted upper-case capabilities and a bare OK', async () => {
    const c = await SieveTestClient.connect(fx.server.port);
    const g = c.greeting;
    expect(g.statusLine).toBe('OK');
    expect(g.lines[0]).toMatch(/^"IMPLEMENTATION" "tsieved [0-9.]+"$/);
    expect(g.lines).toContain('"SASL" ""');
    expect(g.lines).toContain('"STARTTLS"');
    expect(g.lines).toContain('"VERSION" "1.0"');
    expect(g.lines.find((l) => l.startsWith('"SIEVE"'))).toBe(
      '"SIEVE" "comparator-i;ascii-numeric copy encoded-character envelope fileinto subaddress vacation"',
    );
    expect(g.lines.some((l) => l.startsWith('"OWNER"'))).toBe(false);
    for (const line of g.lines) expect(line).toMatch(/^"[A-Z]+"( "[^"\\]*")?$/);
    c.close();
  });

  it('refuses to authenticate before TLS with ENCRYPT-NEEDED', async () => {
    const c = await SieveTestClient.connect(fx.server.port);
    const r = await c.authenticatePlain(ALICE.name, ALICE.password);
    expect(r.status).toBe('NO');
    expect(r.code).toBe('ENCRYPT-NEEDED');
    c.close();
  });

  it('pushes new capabilities after STARTTLS: mechanisms listed, no STARTTLS', async () => {
    const c = await SieveTestClient.connect(fx.server.port);
    const { ok, capabilities } = await c.startTls(fx.ca);
    expect(ok.statusLine).toBe('OK');
    expect(capabilities.statusLine).toBe('OK');
    expect(capabilities.lines).toContain('"SASL" "PLAIN LOGIN"');
    expect(capabilities.lines).not.toContain('"STARTTLS"');
    const again = await c.command('STARTTLS');
    expect(again.status).toBe('NO');
    c.close();
  });

  it('Thunderbird (TB4): a CAPABILITY sent right after the handshake is answered after the pushed list', async () => {
    const c = await SieveTestClient.connect(fx.server.port);
    expect((await c.command('STARTTLS')).statusLine).toBe('OK');
    await c.upgrade(fx.ca);
    c.write('CAPABILITY\r\n');
    const pushed = await c.readResponse();
    const answered = await c.readResponse();
    expect(pushed.lines).toEqual(answered.lines);
    expect(answered.statusLine).toBe('OK');
    c.close();
  });

  it('sieve-connect (SC1): NOOP "STARTTLS-RESYNC-CAPA" right after the handshake gets its tag back', async () => {
    const c = await SieveTestClient.connect(fx.server.port);
    expect((await c.command('STARTTLS')).statusLine).toBe('OK');
    await c.upgrade(fx.ca);
    c.write('NOOP "STARTTLS-RESYNC-CAPA"\r\n');
    await c.readResponse();
    const tagged = await c.readResponse();
    expect(tagged.statusLine).toBe('OK (TAG "STARTTLS-RESYNC-CAPA")');
    c.close();
  });

  it('drops clear-text commands sent behind STARTTLS (command injection)', async () => {
    const c = await SieveTestClient.connect(fx.server.port);
    c.write(
      `STARTTLS\r\nAUTHENTICATE "PLAIN" "${Buffer.from(`\0${ALICE.name}\0${ALICE.password}`).toString('base64')}"\r\nNOOP "injected"\r\n`,
    );
    expect((await c.readResponse()).statusLine).toBe('OK');
    await c.upgrade(fx.ca);
    const pushed = await c.readResponse();
    expect(pushed.lines).toContain('"SASL" "PLAIN LOGIN"');
    const r = await c.command('NOOP "after"');
    expect(r.statusLine).toBe('OK (TAG "after")');
    const caps = await c.command('CAPABILITY');
    expect(caps.lines.some((l) => l.startsWith('"OWNER"'))).toBe(false);
    c.close();
  });

  it('serves implicit TLS with the full SASL list and no STARTTLS', async () => {
    const c = await SieveTestClient.connect(fx.server.tlsPort!, { implicitTls: true, ca: fx.ca });
    expect(c.greeting.lines).toContain('"SASL" "PLAIN LOGIN"');
    expect(c.greeting.lines).not.toContain('"STARTTLS"');
    expect((await c.authenticatePlain(ALICE.name, ALICE.password)).statusLine).toBe('OK');
    c.close();
  });
});

describe('AUTHENTICATE', () => {
  it('PLAIN with a literal initial response (sieve-connect, sivtest)', async () => {
    const c = await secureClient();
    const ir = Buffer.from(`\0${ALICE.name}\0${ALICE.password}`).toString('base64');
    const r = await c.command(`AUTHENTICATE "PLAIN" {${ir.length}+}\r\n${ir}`);
    expect(r.statusLine).toBe('OK');
    const caps = await c.command('CAPABILITY');
    expect(caps.lines).toContain(`"OWNER" "${ALICE.name}"`);
    expect(caps.lines.some((l) => l.startsWith('"SASL"') || l === '"STARTTLS"')).toBe(false);
    c.close();
  });

  it('PLAIN without initial response gets an empty literal challenge', async () => {
    const c = await secureClient();
    c.write('AUTHENTICATE "PLAIN"\r\n');
    const challenge = await c.readLine();
    expect(challenge.toString()).toBe('{0}\r\n');
    c.write(`"${Buffer.from(`\0${BOB.name}\0${BOB.password}`).toString('base64')}"\r\n`);
    expect((await c.readResponse()).statusLine).toBe('OK');
    c.close();
  });

  it('LOGIN with literal challenges', async () => {
    const c = await secureClient();
    c.write('AUTHENTICATE "LOGIN"\r\n');
    expect((await c.readLine()).toString()).toBe(`{12}\r\n${Buffer.from('Username:').toString('base64')}`);
    c.write(
      `{${Buffer.from(ALICE.name).toString('base64').length}+}\r\n${Buffer.from(ALICE.name).toString('base64')}\r\n`,
    );
    expect((await c.readLine()).toString()).toBe(`{12}\r\n${Buffer.from('Password:').toString('base64')}`);
    c.write(`"${Buffer.from(ALICE.password).toString('base64')}"\r\n`);
    expect((await c.readResponse()).statusLine).toBe('OK');
    c.close();
  });

  it('answers unknown user and wrong password alike', async () => {
    const c = await secureClient();
    const wrong = await c.authenticatePlain(ALICE.name, 'wrong');
    const unknown = await c.authenticatePlain('nobody@example.org', 'wrong');
    expect(wrong.status).toBe('NO');
    expect(unknown.statusLine).toBe(wrong.statusLine);
    c.close();
  });

  it('"*" cancels with NO', async () => {
    const c = await secureClient();
    c.write('AUTHENTICATE "PLAIN"\r\n');
    await c.readLine();
    const r = await c.command('"*"');
    expect(r.status).toBe('NO');
    expect((await c.authenticatePlain(ALICE.name, ALICE.password)).statusLine).toBe('OK');
    c.close();
  });

  it('refuses an authorization identity other than the user', async () => {
    const c = await secureClient();
    expect((await c.authenticatePlain(ALICE.name, ALICE.password, BOB.name)).status).toBe('NO');
    expect((await c.authenticatePlain(ALICE.name, ALICE.password, ALICE.name)).statusLine).toBe('OK');
    c.close();
  });

  it('refuses unknown mechanisms and bad base64', async () => {
    const c = await secureClient();
    expect((await c.command('AUTHENTICATE "DIGEST-MD5"')).status).toBe('NO');
    expect((await c.command('AUTHENTICATE "PLAIN" "not base64!"')).status).toBe('NO');
    c.close();
  });

  it('refuses a second AUTHENTICATE after login', async () => {
    const c = await loggedIn();
    expect((await c.authenticatePlain(ALICE.name, ALICE.password)).status).toBe('NO');
    c.close();
  });

  it('logs a failed login in the one stable line fail2ban reads', async () => {
    const c = await secureClient();
    await c.authenticatePlain('mallory@example.org', 'guess');
    c.close();
    const line = await fx.server.waitForLog((l) => l.event === 'auth-failure' && l.user === 'mallory@example.org');
    expect(line).toMatchObject({ msg: 'authentication failed', remote: '127.0.0.1', mechanism: 'PLAIN' });
  });
});

describe('script commands', () => {
  const script =
    '# Sieve filter\r\nrequire "fileinto";\r\nif header :contains "subject" "caf\u00e9" {\r\n  fileinto "Caf\u00e9";\r\n}\r\n';

  it('PUTSCRIPT, LISTSCRIPTS, GETSCRIPT byte for byte, SETACTIVE writes the filter, DELETESCRIPT refuses the active one', async () => {
    const c = await loggedIn(BOB);
    expect((await c.putScript('h\u00e9llo', script)).statusLine).toBe('OK');
    const list = await c.command('LISTSCRIPTS');
    expect(list.lines).toEqual(['"h\u00e9llo"']);
    const got = await c.getScript('h\u00e9llo');
    expect(got.content?.equals(Buffer.from(script, 'utf8'))).toBe(true);
    expect((await c.command(`SETACTIVE ${quote('h\u00e9llo')}`)).statusLine).toBe('OK');
    expect((await c.command('LISTSCRIPTS')).lines).toEqual(['"h\u00e9llo" ACTIVE']);
    const filter = readFileSync(join(fx.home(BOB.name), '.forward'), 'utf8');
    expect(filter.startsWith('# Sieve filter\n')).toBe(true);
    expect(filter).not.toContain('\r');
    const del = await c.command(`DELETESCRIPT ${quote('h\u00e9llo')}`);
    expect(del.status).toBe('NO');
    expect(del.code).toBe('ACTIVE');
    expect((await c.command('SETACTIVE ""')).statusLine).toBe('OK');
    expect(existsSync(join(fx.home(BOB.name), '.forward'))).toBe(false);
    expect((await c.command(`DELETESCRIPT ${quote('h\u00e9llo')}`)).statusLine).toBe('OK');
    expect((await c.command('LISTSCRIPTS')).lines).toEqual([]);
    c.close();
  });

  it('NONEXISTENT, ALREADYEXISTS and renaming the active script', async () => {
    const c = await loggedIn();
    expect((await c.command('GETSCRIPT "nope"')).code).toBe('NONEXISTENT');
    expect((await c.command('SETACTIVE "nope"')).code).toBe('NONEXISTENT');
    expect((await c.command('DELETESCRIPT "nope"')).code).toBe('NONEXISTENT');
    expect((await c.command('RENAMESCRIPT "nope" "x"')).code).toBe('NONEXISTENT');
    await c.putScript('one', 'keep;\r\n');
    await c.putScript('two', 'discard;\r\n');
    expect((await c.command('RENAMESCRIPT "one" "two"')).code).toBe('ALREADYEXISTS');
    expect((await c.command('SETACTIVE "one"')).statusLine).toBe('OK');
    expect((await c.command('RENAMESCRIPT "one" "three"')).statusLine).toBe('OK');
    expect((await c.command('LISTSCRIPTS')).lines.sort()).toEqual(['"three" ACTIVE', '"two"']);
    expect((await c.command('SETACTIVE ""')).statusLine).toBe('OK');
    for (const n of ['three', 'two']) await c.command(`DELETESCRIPT "${n}"`);
    c.close();
  });

  it('refuses invalid scripts with the line of the error and stores nothing', async () => {
    const c = await loggedIn();
    const r = await c.putScript('bad', 'keep;\r\nif true {\r\n  reject "no";\r\n}\r\n');
    expect(r.status).toBe('NO');
    expect(r.text).toMatch(/line 3/);
    expect((await c.command('GETSCRIPT "bad"')).code).toBe('NONEXISTENT');
    const check = await c.command('CHECKSCRIPT {10+}\r\nfileinto ;');
    expect(check.status).toBe('NO');
    expect(check.text).toMatch(/line 1/);
    expect((await c.command('CHECKSCRIPT "keep;"')).statusLine).toBe('OK');
    c.close();
  });

  it('sends each diagnostic as one Pigeonhole-style line (named for PUTSCRIPT), and logs the first with the count', async () => {
    const c = await loggedIn();
    const two = 'require "fileinto";\r\nif true {\r\n  filinto "a";\r\n  fileinto;\r\n}\r\n';
    const put = await c.putScript('Mein Filter', two);
    expect(put.status).toBe('NO');
    // Several lines: a literal, each line "NAME: line N: error: MESSAGE (column C)".
    expect(put.statusLine).toMatch(/^NO \{\d+\}\r\n/);
    expect(put.text!.split('\r\n')).toEqual([
      'Mein Filter: line 3: error: unknown command "filinto" (column 3)',
      'Mein Filter: line 4: error: fileinto expects 1 argument (folder), got 0 (column 3)',
    ]);
    const logged = await fx.server.waitForLog(
      (l) => l.event === 'command' && l.command === 'PUTSCRIPT' && String(l.diagnostic).includes('filinto'),
    );
    expect(logged).toMatchObject({ diagnostic: 'line 3: error: unknown command "filinto" (column 3)', diagnostics: 2 });
    // One line fits a quoted string; CHECKSCRIPT names no script.
    const check = await c.command('CHECKSCRIPT "keep; frob;"');
    expect(check.statusLine).toBe('NO "line 1: error: unknown command \\"frob\\" (column 7)"');
    // Warnings alike, with OK (WARNINGS).
    const warn = await c.putScript('warned', 'require "vacation";\r\nvacation :days 60 "away";\r\n');
    expect(warn.statusLine).toBe(
      'OK (WARNINGS) "warned: line 2: warning: vacation :days 60 is outside 1-31; Exim will use 31 (column 16)"',
    );
    const loggedWarn = await fx.server.waitForLog(
      (l) =>
        l.event === 'command' &&
        l.command === 'PUTSCRIPT' &&
        l.code === 'WARNINGS' &&
        String(l.diagnostic).includes(':days 60'),
    );
    expect(loggedWarn).toMatchObject({
      diagnostic: 'line 2: warning: vacation :days 60 is outside 1-31; Exim will use 31 (column 16)',
      diagnostics: 1,
    });
    await c.command('DELETESCRIPT "warned"');
    c.close();
  });

  it('QUOTA/MAXSIZE and QUOTA/MAXSCRIPTS from HAVESPACE and PUTSCRIPT; an oversize literal keeps the session', async () => {
    const c = await loggedIn();
    expect((await c.command('HAVESPACE "x" 100')).statusLine).toBe('OK');
    expect((await c.command('HAVESPACE "x" 5000')).code).toBe('QUOTA/MAXSIZE');
    const big = 'keep;\r\n' + '#'.repeat(5000) + '\r\n';
    expect((await c.putScript('big', big)).code).toBe('QUOTA/MAXSIZE');
    expect((await c.command('NOOP "still here"')).statusLine).toBe('OK (TAG "still here")');
    // CHECKSCRIPT stores nothing, so no quota code (RFC 5804 section 2.12); still a clear NO.
    // Both a script the validator sees (over the limit) and a literal too large to
    // read at all (over the limit plus a name's worth) are refused that way.
    for (const script of [big, 'keep;\r\n' + '#'.repeat(8000) + '\r\n']) {
      const checked = await c.command(Buffer.from(`CHECKSCRIPT {${Buffer.byteLength(script)}+}\r\n${script}\r\n`));
      expect(checked.status).toBe('NO');
      expect(checked.code).toBeUndefined();
      expect(checked.text).toMatch(/too large|more than the limit/);
    }
    for (let i = 0; i < 5; i++) expect((await c.putScript(`s${i}`, 'keep;\r\n')).statusLine).toBe('OK');
    expect((await c.command('HAVESPACE "s5" 10')).code).toBe('QUOTA/MAXSCRIPTS');
    expect((await c.putScript('s5', 'keep;\r\n')).code).toBe('QUOTA/MAXSCRIPTS');
    // Replacing an existing script is not a new one.
    expect((await c.command('HAVESPACE "s1" 10')).statusLine).toBe('OK');
    expect((await c.putScript('s1', 'discard;\r\n')).statusLine).toBe('OK');
    for (let i = 0; i < 5; i++) await c.command(`DELETESCRIPT "s${i}"`);
    c.close();
  });

  it('refuses an empty script and a name with control characters', async () => {
    const c = await loggedIn();
    expect((await c.putScript('empty', '')).status).toBe('NO');
    expect((await c.putScript('a\u0007b', 'keep;')).status).toBe('NO');
    expect((await c.putScript('a\u2028b', 'keep;')).status).toBe('NO');
    expect((await c.command('LISTSCRIPTS')).lines).toEqual([]);
    c.close();
  });

  it('keeps hostile names inside the scripts directory', async () => {
    const c = await loggedIn();
    for (const name of ['../escape', 'a/b', '.forward', '..', '.']) {
      const r = await c.putScript(name, 'keep;\r\n');
      if (r.status === 'OK') expect((await c.getScript(name)).content?.toString()).toBe('keep;\r\n');
    }
    expect(existsSync(join(fx.home(ALICE.name), '..', 'escape'))).toBe(false);
    expect(existsSync(join(fx.home(ALICE.name), '.forward'))).toBe(false);
    for (const line of (await c.command('LISTSCRIPTS')).lines)
      await c.command(`DELETESCRIPT ${line.replace(/ ACTIVE$/, '')}`);
    c.close();
  });

  it('treats names differing only in Unicode normalisation as one script; long names are kept whole or refused, never cut', async () => {
    const c = await loggedIn(BOB);
    expect((await c.putScript('cafe\u0301', 'keep;\r\n')).statusLine).toBe('OK');
    expect((await c.putScript('caf\u00e9', 'discard;\r\n')).statusLine).toBe('OK');
    expect((await c.command('LISTSCRIPTS')).lines).toEqual(['"caf\u00e9"']);
    expect((await c.getScript('cafe\u0301')).content?.toString()).toBe('discard;\r\n');
    // RFC 5804 section 1.6: at least 128 characters must work (here 256 octets of UTF-8).
    const long = '\u00e9'.repeat(128);
    expect((await c.putScript(long, 'keep;\r\n')).statusLine).toBe('OK');
    expect((await c.command('LISTSCRIPTS')).lines).toContain(`"${long}"`);
    const tooLong = 'x'.repeat(2000);
    expect((await c.putScript(tooLong, 'keep;\r\n')).status).toBe('NO');
    expect((await c.command('LISTSCRIPTS')).lines).toHaveLength(2);
    for (const name of ['caf\u00e9', long])
      expect((await c.command(`DELETESCRIPT ${quote(name)}`)).statusLine).toBe('OK');
    c.close();
  });

  it('NOOP with and without tag, UNAUTHENTICATE, LOGOUT ignores what follows', async () => {
    const c = await loggedIn();
    expect((await c.command('NOOP')).statusLine).toBe('OK');
    expect((await c.command('noop "t"')).statusLine).toBe('OK (TAG "t")');
    expect((await c.command('UNAUTHENTICATE')).statusLine).toBe('OK');
    expect((await c.command('LISTSCRIPTS')).status).toBe('NO');
    const caps = await c.command('CAPABILITY');
    expect(caps.lines).toContain('"SASL" "PLAIN LOGIN"');
    expect((await c.authenticatePlain(BOB.name, BOB.password)).statusLine).toBe('OK');
    c.write('LOGOUT\r\nLISTSCRIPTS\r\n');
    expect((await c.readResponse()).statusLine).toBe('OK');
    await c.waitClosed();
  });
});

describe('pipelining and half-close', () => {
  it('answers every pipelined command of a client that shut down its sending side', async () => {
    const c = await secureClient();
    const ir = Buffer.from(`\0${ALICE.name}\0${ALICE.password}`, 'utf8').toString('base64');
    c.write(`AUTHENTICATE "PLAIN" "${ir}"\r\nLISTSCRIPTS\r\nNOOP "after"\r\nLOGOUT\r\n`);
    c.endWriting();
    expect((await c.readResponse()).statusLine).toBe('OK');
    expect((await c.readResponse()).statusLine).toBe('OK');
    expect((await c.readResponse()).statusLine).toBe('OK (TAG "after")');
    expect((await c.readResponse()).statusLine).toBe('OK');
    await c.waitClosed();
  });

  it('closes a half-closed connection once its buffered commands are done', async () => {
    const c = await SieveTestClient.connect(fx.server.port);
    c.write('NOOP "last"\r\n');
    c.endWriting();
    expect((await c.readResponse()).statusLine).toBe('OK (TAG "last")');
    await c.waitClosed();
  });
});

describe('SASL cancel', () => {
  for (const [how, cancel] of [
    ['quoted', '"*"\r\n'],
    ['as a literal', '{1+}\r\n*\r\n'],
    ['bare, as sieve-connect sends it', '*\r\n'],
  ] as const) {
    it(`"*" ${how} cancels with NO and the session goes on`, async () => {
      const c = await secureClient();
      c.write('AUTHENTICATE "LOGIN"\r\n');
      expect((await c.readLine()).toString('latin1')).toMatch(/^\{\d+\}\r\nVXNlcm5hbWU6$/);
      c.write(cancel);
      const r = await c.readResponse();
      expect(r.statusLine).toBe('NO "Authentication cancelled"');
      expect((await c.authenticatePlain(ALICE.name, ALICE.password)).statusLine).toBe('OK');
      c.close();
    });
  }
});

describe('hostile input', () => {
  it('hangs up on a large literal before login without reading it', async () => {
    const c = await SieveTestClient.connect(fx.server.port);
    c.write('PUTSCRIPT "x" {10000000+}\r\n');
    const r = await c.readResponse();
    expect(r.status).toBe('BYE');
    await c.waitClosed();
  });

  it("reads a refused command's literal completely before answering (no command smuggling)", async () => {
    const c = await SieveTestClient.connect(fx.server.port);
    const r = await c.command('PUTSCRIPT "x" {12+}\r\nLOGOUT\r\nNOOP');
    expect(r.status).toBe('NO');
    expect((await c.command('NOOP "alive"')).statusLine).toBe('OK (TAG "alive")');
    c.close();
  });

  it('answers garbage, NUL and unknown commands with NO, then BYE after too many', async () => {
    const c = await SieveTestClient.connect(fx.server.port);
    expect((await c.command('\x00\x01\xff')).status).toBe('NO');
    expect((await c.command('NOOP "a\0b"')).status).toBe('NO');
    expect((await c.command('FROBNICATE')).status).toBe('NO');
    let last;
    for (let i = 0; i < 10; i++) {
      last = await c.command('FROBNICATE');
      if (last.status === 'BYE') break;
    }
    expect(last?.status).toBe('BYE');
    await c.waitClosed();
  });

  it('counts only bad commands in a row: good ones in between start the count again', async () => {
    const c = await loggedIn();
    // KManageSieve probes with an argument-less RENAMESCRIPT; a long session sends it often.
    for (let i = 0; i < 25; i++) {
      expect((await c.command('RENAMESCRIPT')).status).toBe('NO');
      expect((await c.command('NOOP')).statusLine).toBe('OK');
    }
    c.close();
  });

  it('a SASL response that breaks a limit gets a BYE that says which', async () => {
    const c = await secureClient();
    c.write('AUTHENTICATE "LOGIN"\r\n');
    await c.readLine();
    c.write('{10000000+}\r\n');
    const r = await c.readResponse();
    expect(r.status).toBe('BYE');
    expect(r.text).toMatch(/Literal too large/);
    await c.waitClosed();
  });

  it('hangs up on an endless line', async () => {
    const c = await SieveTestClient.connect(fx.server.port);
    c.write('NOOP "' + 'a'.repeat(20000));
    expect((await c.readResponse()).status).toBe('BYE');
    await c.waitClosed();
  });
});
