/**
 * Activation writes what Exim runs correctly, or refuses (issue 11, item 1), over
 * real sockets against the real tsieved process, checked with the real
 * `exim4 -bf`:
 * - a ~/.forward tsieved did not write (a classic Exim filter, a plain address
 *   list) is kept as "old-forward", listed active (Exim runs it), shown byte for
 *   byte by GETSCRIPT, and SETACTIVE "old-forward" writes it back byte for byte, so
 *   Exim does exactly what it did before; a PUTSCRIPT over it is validated as Sieve;
 * - SETACTIVE of a stored script that does not validate for the current dialect (a
 *   script stored before a profile change, or imported) is refused with the
 *   diagnostics, and the filter file is left as it was.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SieveTestClient, quote } from '../helpers/client.js';
import { privateEximBf, type EximBf } from '../helpers/exim-bf.js';
import { ALICE, BOB, startFixture, type Fixture, type TestUser } from '../helpers/fixture.js';
import { needs } from '../helpers/tools.js';

const MESSAGE = 'From: someone@remote.test\nTo: user@example.org\nSubject: hello\n\nbody\n';
const EXIM_FILTER = '# Exim filter\nif $h_subject: contains "hello" then\n  deliver forwarded@elsewhere.test\nendif\n';
const ADDRESSES = 'first@elsewhere.test, second@elsewhere.test\n';
const CAROL: TestUser = { name: 'carol@example.org', password: 'carol pass' };

describe('activation and the filter Exim reads', needs('exim4'), () => {
  let fx: Fixture;
  let exim: EximBf;

  beforeAll(async () => {
    exim = privateEximBf();
    fx = await startFixture({ users: [ALICE, BOB, CAROL] });
  });
  afterAll(async () => {
    await fx?.stop();
    exim?.cleanup();
  });

  async function loggedIn(user: TestUser): Promise<SieveTestClient> {
    const c = await SieveTestClient.connect(fx.server.port);
    await c.startTls(fx.ca);
    expect((await c.authenticatePlain(user.name, user.password)).statusLine).toBe('OK');
    return c;
  }

  it.each([
    ['a classic Exim filter', ALICE, EXIM_FILTER, /Deliver message to: forwarded@elsewhere\.test/],
    [
      'a plain address list',
      BOB,
      ADDRESSES,
      /forward file generated:\s+second@elsewhere\.test\s+first@elsewhere\.test/,
    ],
  ])('%s in ~/.forward is kept, shown, and activated byte for byte', async (_what, user, text, eximSays) => {
    const forward = join(fx.home(user.name), '.forward');
    writeFileSync(forward, text);
    const before = exim.run(forward, MESSAGE);
    expect(before).toMatch(eximSays);

    const c = await loggedIn(user);
    expect((await c.command('LISTSCRIPTS')).lines).toEqual(['"old-forward" ACTIVE']);
    expect((await c.getScript('old-forward')).content?.toString('utf8')).toBe(text);
    // Another script active in between: the file is ours then.
    expect((await c.putScript('mine', 'keep;\r\n')).statusLine).toBe('OK');
    expect((await c.command('SETACTIVE "mine"')).statusLine).toBe('OK');
    expect(readFileSync(forward, 'utf8')).toMatch(/^# Sieve filter\n/);
    expect(exim.run(forward, MESSAGE)).toMatch(/fileinto `inbox'/);

    expect((await c.command('SETACTIVE "old-forward"')).statusLine).toBe('OK');
    expect(readFileSync(forward, 'utf8')).toBe(text);
    expect(exim.run(forward, MESSAGE)).toBe(before);
    expect((await c.command('LISTSCRIPTS')).lines.sort()).toEqual(['"mine"', '"old-forward" ACTIVE']);

    // PUTSCRIPT over it is Sieve like any other: the old text is refused...
    const refused = await c.putScript('old-forward', text);
    expect(refused.status).toBe('NO');
    expect(readFileSync(forward, 'utf8')).toBe(text);
    // ...and valid Sieve replaces it, written with the Sieve header.
    expect((await c.putScript('old-forward', 'redirect "sieve@elsewhere.test";\r\n')).statusLine).toBe('OK');
    expect(readFileSync(forward, 'utf8')).toMatch(/^# Sieve filter\n/);
    expect(exim.run(forward, MESSAGE)).toMatch(/redirect `sieve@elsewhere\.test'/);
    expect((await c.command('SETACTIVE ""')).statusLine).toBe('OK');
    for (const n of ['mine', 'old-forward'])
      expect((await c.command(`DELETESCRIPT ${quote(n)}`)).statusLine).toBe('OK');
    c.close();
  });

  it('refuses to activate a stored script that does not validate, with the diagnostics, changing nothing', async () => {
    const user = CAROL;
    const c = await loggedIn(user);
    expect((await c.putScript('good', 'keep;\r\n')).statusLine).toBe('OK');
    expect((await c.command('SETACTIVE "good"')).statusLine).toBe('OK');
    const forward = join(fx.home(user.name), '.forward');
    const filter = readFileSync(forward);
    // As if stored before a profile change, or imported by `tsieved migrate`.
    mkdirSync(join(fx.home(user.name), 'sieve'), { recursive: true });
    writeFileSync(join(fx.home(user.name), 'sieve', 'rejecting.sieve'), 'require ["reject"];\nreject "go away";\n');
    expect((await c.command('LISTSCRIPTS')).lines.sort()).toEqual(['"good" ACTIVE', '"rejecting"']);
    const r = await c.command('SETACTIVE "rejecting"');
    expect(r.status).toBe('NO');
    expect(r.text).toMatch(/line 1/);
    expect(r.text).toMatch(/reject/);
    expect(readFileSync(forward).equals(filter)).toBe(true);
    expect((await c.command('LISTSCRIPTS')).lines.sort()).toEqual(['"good" ACTIVE', '"rejecting"']);
    // Exim agrees the script is no filter it can run.
    writeFileSync(join(fx.dir, 'rejecting.forward'), '# Sieve filter\nrequire ["reject"];\nreject "go away";\n');
    expect(exim.run(join(fx.dir, 'rejecting.forward'), MESSAGE)).toMatch(/Sieve error/);
    c.close();
  });
});
