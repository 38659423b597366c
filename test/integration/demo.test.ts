/**
 * The README's promise: `npm start` (tsieved serve --demo) gives a server that
 * sieve-connect logs in to over STARTTLS and uses for upload, list, activate,
 * download and delete.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tool, needs } from '../helpers/tools.js';
import { CLI } from '../helpers/tsieved.js';

describe('the demo server with sieve-connect', needs('sieve-connect', 'openssl'), () => {
  let dir: string;
  let child: ChildProcess;
  let port = 0;
  let password = '';
  let user = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsieved-demo-'));
    child = spawn(process.execPath, [CLI, 'serve', '--demo', '--listen', '127.0.0.1:0'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`demo did not start: ${out}`)), 20_000);
      const onData = (d: Buffer): void => {
        out += d.toString();
        const listening = /"event":"listening".*?"port":(\d+)/.exec(out);
        const account = /"event":"demo","user":"([^"]+)","password":"([^"]+)"/.exec(out);
        if (listening && account) {
          clearTimeout(timer);
          port = Number(listening[1]);
          user = account[1]!;
          password = account[2]!;
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
    });
  });
  afterAll(() => {
    child?.kill('SIGTERM');
  });

  /** Runs sieve-connect with the password on fd 3 (from a 0600 file), never in argv. */
  const sieveConnect = (...args: string[]): string => {
    const passwordFile = join(dir, 'password');
    writeFileSync(passwordFile, password + '\n', { mode: 0o600 });
    const fd = openSync(passwordFile, 'r');
    try {
      return execFileSync(
        tool('sieve-connect'),
        ['--notlsverify', '-s', '127.0.0.1', '-p', String(port), '-u', user, '--passwordfd', '3', ...args],
        {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe', fd],
          timeout: 20_000,
        },
      );
    } finally {
      closeSync(fd);
    }
  };

  it('prints the demo account and keeps its data under ./var', () => {
    expect(user).toBe('demo@example.org');
    expect(readFileSync(join(dir, 'var', 'demo-password'), 'utf8').trim()).toBe(password);
  });

  it('works for upload, list, activate, download and delete over STARTTLS', () => {
    const script = join(dir, 'vacation.sieve');
    writeFileSync(script, 'require "fileinto";\nif header :contains "subject" "[demo]" {\n  fileinto "Demo";\n}\n');
    sieveConnect('--upload', '--localsieve', script, '--remotesieve', 'first');
    expect(sieveConnect('--list')).toContain('first');
    sieveConnect('--activate', '--remotesieve', 'first');
    expect(sieveConnect('--list')).toMatch(/first.*ACTIVE|first\s+<-- active/i);
    const downloaded = join(dir, 'downloaded.sieve');
    sieveConnect('--download', '--remotesieve', 'first', '--localsieve', downloaded);
    expect(readFileSync(downloaded, 'utf8')).toBe(readFileSync(script, 'utf8'));
    const filter = readFileSync(join(dir, 'var', 'home', user, '.forward'), 'utf8');
    expect(filter.startsWith('# Sieve filter\n')).toBe(true);
    sieveConnect('--deactivate');
    sieveConnect('--delete', '--remotesieve', 'first');
    expect(sieveConnect('--list')).not.toContain('first');
  });
});
