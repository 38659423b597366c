/**
 * Issue 5: the real sieve-connect 0.90 (Debian `sieve-connect`, Perl) against the
 * real tsieved process, through its whole workflow in one session (an `-e` command
 * file): STARTTLS verified against the test CA, PLAIN and LOGIN, upload of a
 * multi-line script with non-ASCII text, list, activate, download compared byte
 * for byte, checkscript of a broken script (line number shown), delete, quit.
 * sieve-connect has no rename command. A second server without TLS shows the
 * clear-text path it allows (`--clearchan`), on a listener that offers PLAIN in
 * clear (SC3: it dies on an empty SASL list without STARTTLS).
 *
 * Quirks exercised (managesieve-protocol.md section 4.3): SC1 `NOOP
 * "STARTTLS-RESYNC-CAPA"` right after the handshake; SC2 initial response and
 * LOGIN responses as `{n+}` literals; SC3 capability parsing and VERSION check;
 * SC4 quoted LISTSCRIPTS names; SC5 GETSCRIPT literal; SC6 raw UTF-8 names;
 * SC7 certificate verification on by default.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testCerts } from '../helpers/certs.js';
import { ALICE, BOB, courierSha256, startFixture, type Fixture } from '../helpers/fixture.js';
import { startTsieved, type RunningTsieved } from '../helpers/tsieved.js';
import { tool, needs } from '../helpers/tools.js';

/** Multi-line, non-ASCII in comments, strings and the folder name. */
const SCRIPT = [
  'require ["fileinto", "vacation"];',
  '# Grüße aus Köln — filter for “newsletters”',
  'if header :contains "subject" "Bücher" {',
  '  fileinto "Bücher";',
  '  stop;',
  '}',
  'vacation :days 3 :subject "Abwesend" "Ich bin im Urlaub. ☀";',
  '',
].join('\r\n');

/** A misspelt command on line 4. */
const BROKEN = ['require "fileinto";', '', 'if true {', '  filinto "INBOX.x";', '}', ''].join('\n');

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function sieveConnect(args: string[], password: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    // The password goes through fd 3 (--passwordfd), never argv.
    const child = spawn(tool('sieve-connect'), ['--nosrv', '--passwordfd', '3', ...args], {
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const pw = child.stdio[3] as NodeJS.WritableStream;
    // A client that dies before reading the password closes the pipe: not our error.
    pw.on('error', () => undefined);
    pw.end(password + '\n');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('sieve-connect 0.90 over STARTTLS', needs('sieve-connect'), () => {
  let fx: Fixture;
  let work: string;
  beforeAll(async () => {
    fx = await startFixture();
    work = mkdtempSync(join(tmpdir(), 'tsieved-sc-'));
    writeFileSync(join(work, 'local.sieve'), SCRIPT);
    writeFileSync(join(work, 'broken.sieve'), BROKEN);
  });
  afterAll(async () => {
    await fx?.stop();
  });

  const base = (user: string): string[] => [
    '-s',
    'localhost',
    '-p',
    String(fx.server.port),
    '-u',
    user,
    '--tlscafile',
    testCerts().caFile,
    '--noclearchan',
  ];

  it('PLAIN: upload, list, activate, download byte-exact, checkscript with line number, delete, quit', async () => {
    const cmds = join(work, 'cmds-plain');
    const downloaded = join(work, 'downloaded.sieve');
    writeFileSync(
      cmds,
      [
        `put ${join(work, 'local.sieve')} Grüße`,
        'list',
        'activate Grüße',
        'list',
        `get Grüße ${downloaded}`,
        `checkscript ${join(work, 'broken.sieve')}`,
        'deactivate',
        'delete Grüße',
        'list',
        'quit',
        '',
      ].join('\n'),
    );
    // --debug prints the wire (both directions) on stderr: evidence of SC1 and SC2.
    const r = await sieveConnect([...base(ALICE.name), '-m', 'PLAIN', '--debug', '-e', cmds], ALICE.password);
    const out = r.stdout + r.stderr;
    expect(out).toContain('NOOP "STARTTLS-RESYNC-CAPA"'); // SC1
    expect(out).toMatch(/AUTHENTICATE "PLAIN" \{\d+\+\}/); // SC2: IR as a literal
    // SC4: the listing shows the name with its ACTIVE marker after activation.
    expect(r.stdout).toMatch(/^"Grüße"$/m);
    expect(r.stdout).toMatch(/^"Grüße" ACTIVE$/m);
    // SC5: the download is the uploaded bytes, CRLF and UTF-8 untouched.
    expect(readFileSync(downloaded).equals(readFileSync(join(work, 'local.sieve')))).toBe(true);
    // The check reports the line of the error in the server's words.
    // sieve-connect prints the quoted string as sent (with its \" escapes).
    expect(out).toMatch(/line 4: error: unknown command \\?"filinto\\?" \(column 3\)/);
    // Activation wrote the filter file Exim reads; deactivate + delete removed the script.
    expect(existsSync(join(fx.home(ALICE.name), 'sieve'))).toBe(true);
    expect(existsSync(join(fx.home(ALICE.name), '.forward'))).toBe(false);
    expect(
      r.stdout
        .trimEnd()
        .split('\n')
        .filter((l) => l.includes('Grüße')).length,
    ).toBe(2);
    // In -e mode a failing command sets exit status 1: here only the checkscript failed.
    expect(r.code).toBe(1);
  }, 60_000);

  it('activation writes {home}/.forward with the Exim header (checked before deactivating)', async () => {
    const local = join(work, 'local.sieve');
    const up = await sieveConnect(
      [...base(BOB.name), '-m', 'LOGIN', '--upload', '--localsieve', local, '--remotesieve', 'main'],
      BOB.password,
    );
    expect(up.code, up.stderr).toBe(0);
    const act = await sieveConnect(
      [...base(BOB.name), '-m', 'LOGIN', '--activate', '--remotesieve', 'main'],
      BOB.password,
    );
    expect(act.code, act.stderr).toBe(0);
    const filter = readFileSync(join(fx.home(BOB.name), '.forward'), 'utf8');
    expect(filter.startsWith('# Sieve filter\n')).toBe(true);
    expect(filter).not.toContain('\r');
    expect(filter).toContain('fileinto "Bücher";');
  }, 60_000);

  it('LOGIN (responses as {n+} literals, SC2): list shows the active script, download to stdout', async () => {
    const r = await sieveConnect([...base(BOB.name), '-m', 'LOGIN', '--debug', '--list'], BOB.password);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/AUTHENTICATE "LOGIN"/);
    expect(r.stdout).toMatch(/^"main" ACTIVE$/m);
    const cmds = join(work, 'cmds-login');
    const out = join(work, 'bob-main.sieve');
    writeFileSync(cmds, [`get main ${out}`, 'quit', ''].join('\n'));
    const g = await sieveConnect([...base(BOB.name), '-m', 'LOGIN', '-e', cmds], BOB.password);
    expect(g.code, g.stderr).toBe(0);
    expect(readFileSync(out).equals(readFileSync(join(work, 'local.sieve')))).toBe(true);
  }, 60_000);

  it('checkscript alone exits non-zero and names the line', async () => {
    const r = await sieveConnect(
      [...base(ALICE.name), '-m', 'PLAIN', '--checkscript', '--localsieve', join(work, 'broken.sieve')],
      ALICE.password,
    );
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/NO "line 4: error: unknown command \\"filinto\\" \(column 3\)"/);
  }, 60_000);

  it('SC7: refuses the server when the CA is not given (verification on by default)', async () => {
    const r = await sieveConnect(
      ['-s', 'localhost', '-p', String(fx.server.port), '-u', ALICE.name, '--tlscafile', '/dev/null', '--list'],
      ALICE.password,
    );
    expect(r.code).not.toBe(0);
  }, 60_000);

  it('a wrong password fails the login (exit status, no listing)', async () => {
    const r = await sieveConnect([...base(ALICE.name), '-m', 'PLAIN', '--list'], 'wrong');
    expect(r.code).not.toBe(0);
  }, 60_000);
});

describe(
  'sieve-connect 0.90 in clear text (server without TLS, allow_plaintext listener)',
  needs('sieve-connect'),
  () => {
    let server: RunningTsieved;
    let dir: string;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'tsieved-sc-clear-'));
      const home = join(dir, 'homes', ALICE.name);
      mkdirSync(home, { recursive: true });
      const uid = process.getuid?.() ?? 0;
      const gid = process.getgid?.() ?? 0;
      writeFileSync(
        join(dir, 'userdb'),
        `${ALICE.name}\tuid=${uid}|gid=${gid}|home=${home}|systempw=${courierSha256(ALICE.password)}\n`,
      );
      server = await startTsieved(`
[server]
listen = [{ address = "127.0.0.1:0", allow_plaintext = true }]
auth_failure_delay_ms = 50
[auth]
backend = "userdb"
userdb = "${join(dir, 'userdb')}"
[storage]
scripts_dir = "{home}/sieve"
filter_path = "{home}/.forward"
roots = ["${join(dir, 'homes')}"]
[sieve]
capabilities = ["fileinto", "vacation"]
`);
      writeFileSync(join(dir, 'local.sieve'), SCRIPT);
    });
    afterAll(async () => {
      await server?.stop();
    });

    it('without --clearchan it refuses to send the password in clear (SC7); with it, the workflow runs', async () => {
      const args = ['-s', '127.0.0.1', '-p', String(server.port), '-u', ALICE.name, '-m', 'PLAIN'];
      const refused = await sieveConnect([...args, '--list'], ALICE.password);
      expect(refused.code).not.toBe(0);
      const cmds = join(dir, 'cmds');
      const out = join(dir, 'out.sieve');
      writeFileSync(
        cmds,
        [
          `put ${join(dir, 'local.sieve')} clear`,
          'activate clear',
          'list',
          `get clear ${out}`,
          'delete clear',
          'quit',
          '',
        ].join('\n'),
      );
      const r = await sieveConnect([...args, '--clearchan', '--notlsverify', '--debug', '-e', cmds], ALICE.password);
      expect(r.stderr).not.toContain('STARTTLS');
      expect(r.stdout).toMatch(/^"clear" ACTIVE$/m);
      expect(readFileSync(out).equals(readFileSync(join(dir, 'local.sieve')))).toBe(true);
      // Deleting the active script is refused (RFC 5804 section 2.10): it stays.
      expect(r.stdout + r.stderr).toMatch(/ACTIVE|active/);
      expect(existsSync(join(dir, 'homes', ALICE.name, '.forward'))).toBe(true);
    }, 60_000);
  },
);
