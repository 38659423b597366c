/**
 * The PAM helper as a program: its build script's refusal without libpam (the
 * broker is still built), its usage, and its handling of malformed input on a
 * login connection (no PAM involved: every case here is refused before pam_start).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPamHelperPath } from '../../src/auth/pam.js';
import { PAM_HELPER, needs, tool } from '../helpers/tools.js';

const HELPER = defaultPamHelperPath();
const BUILD = join(HELPER, '../../build.sh');
const dir = mkdtempSync(join(tmpdir(), 'tsieved-helper-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('PAM helper program', needs(PAM_HELPER), () => {
  const socket = join(dir, 'helper.sock');
  let helper: ChildProcess;
  beforeAll(async () => {
    helper = spawn(HELPER, ['--listen', socket], { stdio: ['pipe', 'pipe', 'inherit'] });
    await new Promise<void>((r) => helper.stdout!.once('data', () => r()));
  });
  afterAll(() => {
    helper.stdin!.end();
  });

  /** One login connection: sends `bytes`, returns the NUL-separated fields the session process wrote. */
  async function login(bytes: Buffer): Promise<string[]> {
    const s = connect(socket);
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', () => undefined);
    s.end(bytes);
    await new Promise((r) => s.once('close', r));
    return Buffer.concat(got).toString().split('\0').filter(Boolean);
  }

  it('is built by npm run build', () => {
    expect(existsSync(HELPER)).toBe(true);
    expect(statSync(HELPER).mode & 0o111).not.toBe(0);
  });

  it(
    'build.sh says what is missing and fails when libpam cannot be linked, and still builds the broker',
    needs('bash', 'gcc'),
    () => {
      // A compiler that cannot link libpam stands in for a system without libpam0g-dev.
      const cc = join(dir, 'cc-without-pam');
      writeFileSync(
        cc,
        `#!/bin/sh\nfor a in "$@"; do [ "$a" = -lpam ] && { echo "cannot find -lpam" >&2; exit 1; }; done\nexec ${tool('gcc')} "$@"\n`,
      );
      chmodSync(cc, 0o755);
      const before = readFileSync(HELPER);
      const broker = join(HELPER, '../tsieved-broker');
      const brokerBefore = statSync(broker).mtimeMs;
      const r = spawnSync(tool('bash'), [BUILD], { env: { ...process.env, CC: cc }, encoding: 'utf8' });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/libpam0g-dev/);
      expect(readFileSync(HELPER).equals(before)).toBe(true); // the working binary is untouched
      expect(statSync(broker).mtimeMs).toBeGreaterThan(brokerBefore); // the broker needs no PAM
      expect(statSync(broker).mode & 0o111).not.toBe(0);
    },
  );

  it('refuses malformed credentials before PAM, with a status, and goes on serving', async () => {
    const svc = ['tsieved-no-such-service', '127.0.0.1', ''].join('\0');
    for (const creds of [`${svc}\0pw\0`, `${svc}user\0\0`]) {
      const fields = await login(Buffer.from(creds));
      expect([JSON.stringify(creds), fields[0], fields[2]]).toEqual([JSON.stringify(creds), 'helper', 'rejected']);
    }
    // Fewer fields than four, then EOF: nothing to authenticate.
    expect((await login(Buffer.from(`${svc}user-without-password`)))[2]).toBe('tempfail');
    expect((await login(Buffer.from(`\0\0user\0pw\0`)))[2]).toBe('tempfail');
  });

  it('refuses over-long input without reading all of it', async () => {
    const fields = await login(Buffer.concat([Buffer.from('svc\0h\0u\0'), Buffer.alloc(5000, 0x61), Buffer.from([0])]));
    expect(fields.slice(2)).toEqual(['rejected', 'credentials too long']);
  });

  it('fails temporarily (111) with bad usage, and ends when its stdin ends', async () => {
    for (const args of [[], ['svc', '127.0.0.1'], ['--listen']]) {
      const usage = spawnSync(HELPER, args, { encoding: 'utf8' });
      expect(usage.status).toBe(111);
      expect(usage.stderr).toMatch(/usage/);
    }
    const other = spawn(HELPER, ['--listen', join(dir, 'other.sock')], { stdio: ['pipe', 'pipe', 'inherit'] });
    await new Promise<void>((r) => other.stdout.once('data', () => r()));
    expect(existsSync(join(dir, 'other.sock'))).toBe(true);
    expect(statSync(join(dir, 'other.sock')).mode & 0o777).toBe(0o600);
    other.stdin.end();
    expect(await new Promise((r) => other.once('exit', r))).toBe(0);
    expect(existsSync(join(dir, 'other.sock'))).toBe(false);
  });
});
