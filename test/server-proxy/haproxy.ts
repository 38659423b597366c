/**
 * Starting a real haproxy for tests: writes a config into a temp directory, runs it
 * in the foreground (-db) on loopback ports, waits until the frontends accept, and
 * stops it again. Knows nothing of tsieved.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findTool } from '../helpers/tools.js';

/** A free TCP port on 127.0.0.1 (bound and released; haproxy needs fixed ports). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ port, host });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${host}:${port} did not open`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface RunningHaproxy {
  readonly process: ChildProcess;
  readonly dir: string;
  output(): string;
  stop(): Promise<void>;
}

/** Start haproxy with `body` (frontends/backends) after a loopback-friendly global/defaults section. */
export async function startHaproxy(body: string, frontendPorts: number[]): Promise<RunningHaproxy> {
  const config = [
    'global',
    '  maxconn 4096',
    '',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    '',
    body,
    '',
  ].join('\n');
  return startHaproxyConfig(config, frontendPorts);
}

/**
 * Start haproxy with a whole configuration file's text. `wrapper` is put before
 * the haproxy command (e.g. `prlimit --nofile=...`).
 */
export async function startHaproxyConfig(
  config: string,
  frontendPorts: number[],
  wrapper: readonly string[] = [],
): Promise<RunningHaproxy> {
  const bin = findTool('haproxy');
  if (!bin) throw new Error('haproxy not installed');
  const dir = mkdtempSync(join(tmpdir(), 'tsieved-haproxy-'));
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, config);
  let out = '';
  const argv = [...wrapper, bin, '-db', '-f', cfg];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([
      Promise.all(frontendPorts.map((p) => waitForPort(p))),
      exited.then(() => {
        throw new Error(`haproxy exited: ${out}`);
      }),
    ]);
  } catch (e) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    process: child,
    dir,
    output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
