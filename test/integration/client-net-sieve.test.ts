/**
 * Issue 5: PEAR Net_Sieve 1.4 (Debian `php-net-sieve`, under `php-cli`), the
 * library behind Roundcube's managesieve plugin, used as Roundcube uses it
 * (test/integration/php/roundcube-workflow.php): connect with STARTTLS and the
 * test CA verified, login (Net_Sieve's own mechanism choice, then PLAIN and LOGIN
 * explicitly), getExtensions, listScripts, the "roundcube" default set, install
 * a multi-line script with non-ASCII text under a non-ASCII name, setActive,
 * getActive, getScript compared byte for byte, a broken script refused with its
 * line number, rename by copy, deactivate before delete, removeScript, logout.
 *
 * Quirks exercised (managesieve-protocol.md section 4.2): RC1 capability lines
 * `"NAME" "value"`; RC2 waits for the capabilities pushed after STARTTLS; RC4
 * mechanism choice by its own preference order; RC5/RC6 PLAIN quoted IR, LOGIN
 * one response per challenge; RC7 no line over 8 KiB, no empty lines; RC8
 * quoted LISTSCRIPTS names; RC9 GETSCRIPT literal framing; RC10 literal error
 * text; RC11 non-ASCII names sent as `{n+}` literals; RC13 comment-only script.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testCerts } from '../helpers/certs.js';
import { ALICE, BOB, startFixture, type Fixture, type TestUser } from '../helpers/fixture.js';
import { needs, requirement, tool } from '../helpers/tools.js';

const DRIVER = join(dirname(fileURLToPath(import.meta.url)), 'php', 'roundcube-workflow.php');
const NET_SIEVE = '/usr/share/php/Net/Sieve.php';

/** Net_Sieve is a PHP file, not a program (Debian php-net-sieve). */
const NET_SIEVE_FILE = requirement(`PHP Net_Sieve (${NET_SIEVE})`, existsSync(NET_SIEVE));

const SCRIPT = [
  'require ["fileinto", "envelope", "vacation"];',
  '# rule:[Rechnungen für Ärztin]',
  'if header :contains "subject" ["Rechnung", "Zahlungserinnerung"] {',
  '\tfileinto "Rechnungen";',
  '\tstop;',
  '}',
  '# rule:[Urlaub]',
  'vacation :days 7 :subject "Abwesend" "Bin im Urlaub — zurück am 3. März.";',
  '',
].join('\r\n');

const BROKEN = 'require ["fileinto"];\r\nif header :is "subject" "x" {\r\n\tfileinto "y";\r\n\tredirect;\r\n}\r\n';

interface Step {
  readonly step: string;
  readonly ok: boolean;
  readonly error?: string;
  readonly value?: unknown;
  readonly base64?: string;
}
interface Result {
  readonly steps: Step[];
  readonly transcript: string[];
}

function runDriver(env: Record<string, string>): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool('php'), ['-d', 'error_reporting=E_ALL & ~E_DEPRECATED & ~E_STRICT', DRIVER], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('{"steps"'));
      if (!line) return reject(new Error(`no JSON from the PHP driver:\n${out}\n${err}`));
      resolve(JSON.parse(line) as Result);
    });
  });
}

describe('PEAR Net_Sieve as Roundcube uses it', needs('php', NET_SIEVE_FILE), () => {
  let fx: Fixture;
  let work: string;
  beforeAll(async () => {
    fx = await startFixture();
    work = mkdtempSync(join(tmpdir(), 'tsieved-netsieve-'));
    writeFileSync(join(work, 'script.sieve'), SCRIPT);
    writeFileSync(join(work, 'broken.sieve'), BROKEN);
  });
  afterAll(async () => {
    await fx?.stop();
  });

  const drive = (user: TestUser, auth: string, name: string): Promise<Result> =>
    runDriver({
      SIEVE_HOST: 'localhost',
      SIEVE_PORT: String(fx.server.port),
      SIEVE_USER: user.name,
      SIEVE_PASS: user.password,
      SIEVE_CA: testCerts().caFile,
      SIEVE_AUTH: auth,
      SIEVE_USETLS: '1',
      SIEVE_SCRIPT_FILE: join(work, 'script.sieve'),
      SIEVE_BROKEN_FILE: join(work, 'broken.sieve'),
      SIEVE_NAME: name,
    });

  const step = (r: Result, name: string): Step => {
    const s = r.steps.find((x) => x.step === name);
    if (!s)
      throw new Error(`step ${name} missing; got ${JSON.stringify(r.steps, null, 1)}\n${r.transcript.join('\n')}`);
    return s;
  };

  for (const [auth, user, name] of [
    ['', ALICE, 'Filter für Äpfel'],
    ['PLAIN', BOB, 'Filter für Äpfel'],
    ['LOGIN', ALICE, 'plain-ascii'],
  ] as const) {
    it(`${auth || 'automatic mechanism'}: the managesieve plugin's workflow`, async () => {
      const r = await drive(user, auth, name);
      const wire = r.transcript.join('\n');
      const failed = r.steps.filter((s) => !s.ok && s.step !== 'installScript.broken');
      expect(failed, wire).toEqual([]);
      // RC2: STARTTLS then the pushed list, with mechanisms, without STARTTLS.
      expect(wire).toMatch(/C: STARTTLS/);
      expect(wire).toMatch(/STARTTLS negotiation successful/);
      // RC4/RC5/RC6: its own choice is PLAIN (first of its list that we offer), IR quoted.
      if (auth !== 'LOGIN') expect(wire).toMatch(/C: AUTHENTICATE "PLAIN" "[A-Za-z0-9+/=]+"/);
      else expect(wire).toMatch(/C: AUTHENTICATE "LOGIN"/);
      expect(step(r, 'getExtensions').value).toEqual(expect.arrayContaining(['fileinto', 'vacation', 'envelope']));
      // RC13: the "roundcube" set was created and activated on the empty account.
      expect(step(r, 'listScripts.initial').value).toEqual([]);
      expect(step(r, 'getActive.initial').value).toBe('roundcube');
      // RC11: a non-ASCII name travels as a literal.
      if (/[^\x00-\x7f]/.test(name)) expect(wire).toMatch(/C: PUTSCRIPT \{\d+\+\}/);
      // RC8: the name comes back from LISTSCRIPTS intact.
      expect(step(r, 'listScripts').value).toEqual(expect.arrayContaining(['roundcube', name]));
      expect(step(r, 'getActive').value).toBe(name);
      // RC9: the literal announces exactly the uploaded octets; Net_Sieve reads n+2
      // octets and so hands back the script plus the CRLF that ends the literal
      // (the same with Dovecot, managesieve-protocol.md section 4.2).
      expect(wire).toContain(`S: {${Buffer.byteLength(SCRIPT)}}`);
      expect(Buffer.from(step(r, 'getScript').base64 ?? '', 'base64').toString('utf8')).toBe(SCRIPT + '\r\n');
      // RC10: the broken script's error text names the line.
      const broken = step(r, 'installScript.broken');
      expect(broken.ok).toBe(false);
      // Roundcube splits this text on "broken:" and marks each "line N:" (rcube_sieve.php).
      expect(broken.error).toContain('broken: line 4: error: redirect expects 1 argument (address), got 0 (column 2)');
      expect(step(r, 'listScripts.renamed').value).toEqual(expect.arrayContaining([`${name} (2)`]));
      expect(step(r, 'listScripts.renamed').value).not.toContain(name);
      expect(step(r, 'listScripts.final').value).toEqual([]);
      // RC7: the server never sent an empty line outside a literal.
      expect(wire).not.toMatch(/^S: $/m);
    }, 60_000);
  }

  it('without STARTTLS (plain tcp:// host) Net_Sieve sees SASL "" and cannot log in (RC3)', async () => {
    const r = await runDriver({
      SIEVE_HOST: 'localhost',
      SIEVE_PORT: String(fx.server.port),
      SIEVE_USER: ALICE.name,
      SIEVE_PASS: ALICE.password,
      SIEVE_CA: testCerts().caFile,
      SIEVE_AUTH: '',
      SIEVE_USETLS: '0',
      SIEVE_SCRIPT_FILE: join(work, 'script.sieve'),
      SIEVE_BROKEN_FILE: join(work, 'broken.sieve'),
      SIEVE_NAME: 'x',
    });
    expect(step(r, 'connect').ok).toBe(true);
    const login = step(r, 'login');
    expect(login.ok).toBe(false);
    expect(login.error).toMatch(/doesn't support any authentication methods/);
    expect(r.transcript.join('\n')).not.toMatch(/C: AUTHENTICATE/);
  }, 60_000);
});
