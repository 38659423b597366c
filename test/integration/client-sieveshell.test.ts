/**
 * Issue 5: Cyrus sieveshell (Debian `cyrus-admin`, Perl over the isieve library)
 * against the real tsieved. sieveshell never sends STARTTLS (SS5), so it runs on
 * a trusted clear-text loopback listener (`allow_plaintext = true` in the listener
 * table) where PLAIN/LOGIN are offered before TLS; the STARTTLS listener of the
 * same server is shown to refuse it. Workflow in one session (`--execfile`):
 * put a multi-line script with non-ASCII text, list, activate, get and compare
 * byte for byte, put a broken script and see the line number, deactivate, delete,
 * quit. sieveshell has no rename and no check command.
 *
 * Quirks exercised (managesieve-protocol.md section 4.5): SS1 the capability list
 * ends with a bare OK; SS2 every success is a bare OK (no text, no WARNINGS);
 * SS3 quoted strings from the server must be 7-bit (names stay ASCII here: a
 * UTF-8 name in LISTSCRIPTS would break its lexer, a known client limitation);
 * SS4 only registered response codes; SS6 names sent unescaped, `quit` writes
 * LOGOUT without CRLF and closes.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, startFixture, type Fixture, listenerPorts } from '../helpers/fixture.js';
import { tool, needs } from '../helpers/tools.js';

const SCRIPT = [
  'require ["fileinto", "envelope"];',
  '# Grüße — sortiert nach Absender',
  'if envelope :is "from" "liste@example.net" {',
  '  fileinto "Mailinglisten";',
  '}',
  '',
].join('\n');

const BROKEN = [
  'require "fileinto";',
  'if header :is "subject" "x" {',
  '  fileinto "a" ;',
  '  bogus_command;',
  '}',
  '',
].join('\n');

interface Run {
  readonly code: number | null;
  readonly out: string;
}

function sieveshell(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool('sieveshell'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

describe('Cyrus sieveshell on a trusted clear-text listener', needs('sieveshell'), () => {
  let fx: Fixture;
  let work: string;
  let plainPort: number;
  let starttlsPort: number;
  beforeAll(async () => {
    fx = await startFixture({
      listeners: 'listen = ["127.0.0.1:0", { address = "127.0.0.1:0", allow_plaintext = true }]',
    });
    ({ clear: plainPort, starttls: starttlsPort } = await listenerPorts(fx));
    work = mkdtempSync(join(tmpdir(), 'tsieved-ss-'));
    writeFileSync(join(work, 'main.sieve'), SCRIPT);
    writeFileSync(join(work, 'broken.sieve'), BROKEN);
  });
  afterAll(async () => {
    await fx?.stop();
  });

  const auth = (port: number): string[] => [
    '-a',
    ALICE.name,
    '-u',
    ALICE.name,
    '-p',
    ALICE.password,
    `127.0.0.1:${port}`,
  ];

  it('put, list, activate, get byte-exact, deactivate, delete, quit: every success a bare OK', async () => {
    const got = join(work, 'got.sieve');
    const cmds = join(work, 'cmds');
    writeFileSync(
      cmds,
      [
        `put ${join(work, 'main.sieve')} main`,
        'list',
        'activate main',
        'list',
        `get main ${got}`,
        'deactivate',
        'delete main',
        'list',
        'quit',
        '',
      ].join('\n'),
    );
    const r = await sieveshell(['-f', cmds, ...auth(plainPort)]);
    expect(r.code, r.out).toBe(0);
    // SS1/SS2: sieveshell would print "Bad protocol" on an OK with text or a WARNINGS code.
    expect(r.out).not.toMatch(/Bad protocol|expected|unexpected response/i);
    expect(r.out).toMatch(/^main\s+<- active script\s*$/m);
    expect(readFileSync(got).equals(readFileSync(join(work, 'main.sieve')))).toBe(true);
    // After delete the last listing is empty; the filter file went with deactivate.
    expect(existsSync(join(fx.home(ALICE.name), '.forward'))).toBe(false);
    expect(existsSync(join(fx.home(ALICE.name), 'sieve'))).toBe(true);
    const after = await sieveshell(['-e', 'list', ...auth(plainPort)]);
    expect(after.code, after.out).toBe(0);
    expect(after.out).not.toMatch(/^main/m);
  }, 60_000);

  it("a broken script is refused with the line number in the server's message, and not stored", async () => {
    const r = await sieveshell(['-e', `put ${join(work, 'broken.sieve')} broken\nlist`, ...auth(plainPort)]);
    expect(r.out).toContain(
      'upload failed: put script: broken: line 4: error: unknown command "bogus_command" (column 3)',
    );
    expect(r.out).not.toMatch(/^broken/m);
  }, 60_000);

  it('on the STARTTLS-only listener it cannot log in (SASL "" before TLS, SS5)', async () => {
    const r = await sieveshell(['-e', 'list', ...auth(starttlsPort)]);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/unable to connect to server/);
  }, 60_000);
});
