/**
 * The PAM helper as a program: its build script's refusal without libpam (the
 * broker is still built), and its handling of malformed input on the credentials
 * pipe (no PAM involved: every case here is refused before pam_start).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultPamHelperPath } from '../../src/auth/pam.js';
import { haveTools } from '../helpers/tools.js';

const HELPER = defaultPamHelperPath();
const BUILD = join(HELPER, '../../build.sh');
const dir = mkdtempSync(join(tmpdir(), 'tsieved-helper-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the helper with the given bytes on fd 3; returns exit code, status fields and stderr. */
async function runHelper(creds: Buffer, args: string[] = ['tsieved-no-such-service', '127.0.0.1']) {
  const child = spawn(HELPER, args, { stdio: ['pipe', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const status: Buffer[] = [];
  (child.stdio[4] as Readable).on('data', (d: Buffer) => status.push(d));
  // The helper stops reading at its limit and closes the pipe: a reset is expected then.
  (child.stdio[3] as Writable).on('error', () => undefined);
  (child.stdio[3] as Writable).end(creds);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  return { code, status: Buffer.concat(status).toString().split('\0').filter(Boolean), stderr };
}

describe.skipIf(!haveTools('gcc'))('PAM helper program', () => {
  it('is built by npm run build', () => {
    expect(existsSync(HELPER)).toBe(true);
    expect(statSync(HELPER).mode & 0o111).not.toBe(0);
  });

  it('build.sh says what is missing and fails when libpam cannot be linked, and still builds the broker', () => {
    // A compiler that cannot link libpam stands in for a system without libpam0g-dev.
    const cc = join(dir, 'cc-without-pam');
    writeFileSync(cc, '#!/bin/sh\nfor a in "$@"; do [ "$a" = -lpam ] && { echo "cannot find -lpam" >&2; exit 1; }; done\nexec gcc "$@"\n');
    chmodSync(cc, 0o755);
    const before = readFileSync(HELPER);
    const broker = join(HELPER, '../tsieved-broker');
    const brokerBefore = statSync(broker).mtimeMs;
    const r = spawnSync('bash', [BUILD], { env: { ...process.env, CC: cc }, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/libpam0g-dev/);
    expect(readFileSync(HELPER).equals(before)).toBe(true); // the working binary is untouched
    expect(statSync(broker).mtimeMs).toBeGreaterThan(brokerBefore); // the broker needs no PAM
    expect(statSync(broker).mode & 0o111).not.toBe(0);
  });

  it('refuses malformed credentials before PAM, with exit 1 and a status', async () => {
    for (const creds of [Buffer.from('user-without-nul'), Buffer.from('\0pw\0'), Buffer.from('user\0\0'), Buffer.from('user\0pw\0extra\0')]) {
      const r = await runHelper(creds);
      expect([JSON.stringify(creds.toString()), r.code]).toEqual([JSON.stringify(creds.toString()), 1]);
      expect(r.status[0]).toBe('rejected');
    }
  });

  it('refuses over-long input', async () => {
    const r = await runHelper(Buffer.concat([Buffer.from('u\0'), Buffer.alloc(5000, 0x61), Buffer.from([0])]));
    expect(r.code).toBe(1);
    expect(r.status).toEqual(['rejected', 'credentials too long']);
  });

  it('fails temporarily (111) without a status or command pipe, or with bad usage', () => {
    const noStatus = spawnSync(HELPER, ['svc', '127.0.0.1'], { input: '', stdio: ['pipe', 'pipe', 'pipe'], encoding: 'utf8' });
    expect(noStatus.status).toBe(111);
    expect(noStatus.stderr).toMatch(/status fd 4/);
    const noCommand = spawnSync(HELPER, ['svc', '127.0.0.1'], { input: '', stdio: ['pipe', 'pipe', 'pipe', 'pipe', 'pipe'], encoding: 'utf8' });
    expect(noCommand.status).toBe(111);
    expect(noCommand.stderr).toMatch(/command fd 5/);
    const usage = spawnSync(HELPER, ['only-one'], { encoding: 'utf8' });
    expect(usage.status).toBe(111);
    expect(usage.stderr).toMatch(/usage/);
    // The broker command comes from the server after PAM, never from argv.
    const extra = spawnSync(HELPER, ['svc', 'h', '/bin/true'], { encoding: 'utf8' });
    expect(extra.status).toBe(111);
  });
});
