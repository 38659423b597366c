/**
 * `npm start` on a bare machine: without an openssl program the demo cannot make a
 * certificate, so it starts on loopback without STARTTLS and takes clear-text
 * logins there; on any other address it refuses to start. PATH here holds no
 * programs at all (node is run by its absolute path).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SieveTestClient } from '../helpers/client.js';
import { PACKAGE_ROOT } from '../helpers/tsieved.js';

const CLI = join(PACKAGE_ROOT, 'dist/tsieved.cjs');

describe('the demo without openssl', () => {
  let dir: string;
  let child: ChildProcess;
  let port = 0;
  let out = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsieved-demo-bare-'));
    const env = { PATH: join(dir, 'no-programs'), HOME: dir };
    child = spawn(process.execPath, [CLI, 'serve', '--demo', '--listen', '127.0.0.1:0'], {
      cwd: dir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`demo did not start: ${out}`)), 20_000);
      const onData = (d: Buffer): void => {
        out += d.toString();
        const listening = /"event":"listening".*?"port":(\d+)/.exec(out);
        if (listening) {
          clearTimeout(timer);
          port = Number(listening[1]);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => reject(new Error(`demo exited with ${code}: ${out}`)));
    });
  });
  afterAll(() => {
    child?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('offers no STARTTLS, says why, and takes a clear-text login on loopback', async () => {
    expect(out).toContain('no STARTTLS, clear-text logins on loopback');
    const c = await SieveTestClient.connect(port);
    try {
      expect(c.greeting.lines.join('\n')).not.toContain('"STARTTLS"');
      const password = readFileSync(join(dir, 'var', 'demo-password'), 'utf8').trim();
      expect((await c.authenticatePlain('demo@example.org', password)).status).toBe('OK');
    } finally {
      c.close();
    }
  });

  it('refuses to start in clear text on an address other than loopback', () => {
    const r = spawnSync(process.execPath, [CLI, 'serve', '--demo', '--listen', '0.0.0.0:0'], {
      cwd: dir,
      env: { PATH: join(dir, 'no-programs'), HOME: dir },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('the demo needs the openssl command');
  });
});
