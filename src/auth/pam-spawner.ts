/**
 * The one long-lived PAM helper process (`tsieved-pam-helper --listen SOCKET
 * --service SERVICE`) that forks a session process per login. Spawning a program
 * from Node forks the whole server, which blocks its event loop for milliseconds
 * per login (more the larger the server); the helper forks from a process of a few
 * hundred KiB instead, and ahead of the login: one session process always waits
 * with the service's PAM transaction started.
 *
 * The socket lives in a directory of its own that only this process's user (root)
 * can enter. The helper ends when its stdin (our pipe) ends, so it never outlives
 * the server; one that died is started again on the next login.
 *
 * Must not know: PAM, the per-login protocol (pam.ts), storage.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../log/logger.js';
import { relayChildLog } from '../log/relay.js';

export class PamSpawner {
  private child: ChildProcess | undefined;
  private ready: Promise<string> | undefined;
  private dir: string | undefined;

  constructor(
    private readonly helperPath: string,
    private readonly log: Logger,
    /** The PAM service the waiting session process prepares its transaction for. */
    private readonly service: string,
  ) {}

  /** A connection to a fresh session process; rejects when the helper cannot run. */
  async connect(): Promise<Socket> {
    const path = await this.start();
    return new Promise<Socket>((resolve, reject) => {
      const socket = connect(path);
      socket.once('connect', () => resolve(socket));
      socket.once('error', (err) => {
        // A helper that died since: the next login starts another.
        this.ready = undefined;
        reject(err);
      });
    });
  }

  /** The helper's pid, while it runs (tests). */
  get pid(): number | undefined {
    return this.child?.exitCode === null ? this.child.pid : undefined;
  }

  async close(): Promise<void> {
    const child = this.child;
    this.ready = undefined;
    this.child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.stdin?.end();
      await Promise.race([gone, new Promise((r) => setTimeout(r, 2_000).unref())]);
      child.kill('SIGKILL');
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }

  private start(): Promise<string> {
    this.ready ??= new Promise<string>((resolve, reject) => {
      this.dir ??= mkdtempSync(join(tmpdir(), 'tsieved-pam-'));
      const path = join(this.dir, 'helper.sock');
      const child = spawn(this.helperPath, ['--listen', path, '--service', this.service], {
        stdio: ['pipe', 'pipe', 'pipe'],
        cwd: '/',
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          ...(process.env.LANG ? { LANG: process.env.LANG } : {}),
          // Every library function is bound once, in the listener, so that each
          // session process it forks does not resolve them again on first call
          // (about 9% of a login's page faults). The broker's exec gets an
          // environment of its own (tsieved-pam-helper.c, broker_env).
          LD_BIND_NOW: '1',
        },
      });
      this.child = child;
      // Its own lines, the session processes', and whatever a token wrapper or broker says.
      relayChildLog(child.stderr, this.log, { textFrom: 'pam-helper', textLevel: 'info' });
      child.stdin.on('error', () => undefined);
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready\n')) resolve(path);
      });
      child.once('error', (err) => {
        this.ready = undefined;
        reject(err);
      });
      child.once('exit', (code, signal) => {
        if (this.child === child) this.ready = undefined;
        reject(new Error(`the PAM helper exited (${code ?? signal}) before it was ready`));
      });
    });
    return this.ready;
  }
}
