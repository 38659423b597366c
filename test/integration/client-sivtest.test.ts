/**
 * Issue 5: Cyrus sivtest (Debian `cyrus-clients`; imtest's ManageSieve mode, SASL
 * through libsasl2) against the real tsieved. sivtest negotiates STARTTLS (`-t
 * ""`), authenticates with PLAIN or LOGIN, then pipes a file of raw commands
 * (`-f`) into the session: PUTSCRIPT of a multi-line non-ASCII script as a
 * literal, LISTSCRIPTS, SETACTIVE, GETSCRIPT (compared byte for byte),
 * CHECKSCRIPT of a broken script (line number), RENAMESCRIPT, DELETESCRIPT,
 * LOGOUT; when its input ends it sends a second LOGOUT of its own.
 *
 * Quirks exercised (managesieve-protocol.md section 4.4): ST1 capability
 * detection by exact `"SASL" ` / `"STARTTLS"` substrings; ST2 LOGIN needs literal
 * challenges (it would hang on quoted ones); ST3 initial response and SASL
 * responses as `{n+}` literals; ST4 input after LOGOUT is ignored.
 * sivtest does not verify the server certificate (it prints "verify error" and
 * goes on), so the test CA is not passed to it.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, BOB, startFixture, type Fixture, type TestUser } from '../helpers/fixture.js';
import { needs } from '../helpers/tools.js';

const SIVTEST = '/usr/lib/cyrus/bin/sivtest';

const SCRIPT = Buffer.from(
  [
    'require "vacation";',
    '# Ünïcødé: “Urlaub” in Köln',
    'vacation :days 7 :subject "Abwesenheit"',
    '  "Ich bin ab Montag wieder da. ☀";',
    '',
  ].join('\r\n'),
  'utf8',
);
const BROKEN = Buffer.from('require "fileinto";\r\n\r\nfileinto "x"\r\nkeep;\r\n', 'utf8');

function literal(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`{${data.length}+}\r\n`), data]);
}

function commands(): Buffer {
  return Buffer.concat([
    Buffer.from('PUTSCRIPT "Urlaub" '),
    literal(SCRIPT),
    Buffer.from('\r\nLISTSCRIPTS\r\nSETACTIVE "Urlaub"\r\nLISTSCRIPTS\r\nGETSCRIPT "Urlaub"\r\nCHECKSCRIPT '),
    literal(BROKEN),
    Buffer.from(
      '\r\nRENAMESCRIPT "Urlaub" "Ferien"\r\nLISTSCRIPTS\r\nSETACTIVE ""\r\nDELETESCRIPT "Ferien"\r\nLISTSCRIPTS\r\nLOGOUT\r\n',
    ),
  ]);
}

interface Run {
  readonly code: number | null;
  readonly out: Buffer;
}

function sivtest(port: number, mech: string, user: TestUser, file: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      SIVTEST,
      ['-t', '', '-p', String(port), '-m', mech, '-a', user.name, '-w', user.password, '-f', file, 'localhost'],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.stderr.on('data', (d: Buffer) => chunks.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out: Buffer.concat(chunks) });
    });
    child.stdin.end();
  });
}

describe('Cyrus sivtest over STARTTLS', needs(SIVTEST), () => {
  let fx: Fixture;
  let work: string;
  beforeAll(async () => {
    fx = await startFixture();
    work = mkdtempSync(join(tmpdir(), 'tsieved-sivtest-'));
    writeFileSync(join(work, 'cmds'), commands());
  });
  afterAll(async () => {
    await fx?.stop();
  });

  for (const [mech, user] of [
    ['PLAIN', ALICE],
    ['LOGIN', BOB],
  ] as const) {
    it(`${mech}: the whole command set in one session`, async () => {
      const r = await sivtest(fx.server.port, mech, user, join(work, 'cmds'));
      const text = r.out.toString('utf8');
      expect(text).toMatch(/Authenticated\./);
      // ST1: it found STARTTLS, then the pushed list with mechanisms.
      expect(text).toMatch(/C: STARTTLS/);
      expect(text).toContain('S: "SASL" "PLAIN LOGIN"');
      if (mech === 'PLAIN')
        expect(text).toMatch(/C: AUTHENTICATE "PLAIN" \{\d+\+\}/); // ST3
      else expect(text).toMatch(/S: \{12\}\r?\nS: VXNlcm5hbWU6/); // ST2: literal challenge
      // The GETSCRIPT literal carries the uploaded bytes unchanged.
      const get = Buffer.concat([Buffer.from(`{${SCRIPT.length}}\r\n`), SCRIPT, Buffer.from('\r\nOK')]);
      expect(r.out.includes(get)).toBe(true);
      expect(text).toContain('"Urlaub" ACTIVE');
      // One error fits a quoted string; several lines come as a literal (KD7).
      expect(text).toContain('NO "line 3: error: missing \\";\\" after fileinto (column 13)"');
      expect(text).toContain('"Ferien" ACTIVE');
      expect(text).toMatch(/Connection closed\./);
      expect(r.code).toBe(0);
    }, 60_000);
  }
});
