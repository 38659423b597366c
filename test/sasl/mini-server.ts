/**
 * Test-only: the smallest ManageSieve front end that lets a real SASL client
 * (Cyrus sivtest, using libsasl2's own SCRAM/PLAIN/LOGIN plugins) authenticate
 * against src/sasl. Challenges go out as literals (sivtest reads only literals),
 * responses are accepted quoted or as literals. Not the product's protocol code:
 * it exists so the mechanisms are checked against an independent implementation.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AuthBackend } from '../../src/auth/types.js';
import { createExchange, mechanismNames, type SaslStep } from '../../src/sasl/index.js';

export interface MiniServer {
  readonly port: number;
  readonly results: { mechanism: string; step: SaslStep }[];
  close(): Promise<void>;
}

/** Reads CRLF lines and `{n+}`/`{n}` literals from a socket. */
class Reader {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private ended = false;
  constructor(sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    sock.on('close', () => {
      this.ended = true;
      this.wake();
    });
  }
  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }
  private wait(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }
  async line(): Promise<string | undefined> {
    for (;;) {
      const i = this.buf.indexOf('\r\n');
      if (i >= 0) {
        const l = this.buf.subarray(0, i).toString('latin1');
        this.buf = this.buf.subarray(i + 2);
        return l;
      }
      if (this.ended) return undefined;
      await this.wait();
    }
  }
  async bytes(n: number): Promise<Buffer | undefined> {
    while (this.buf.length < n) {
      if (this.ended) return undefined;
      await this.wait();
    }
    const b = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return b;
  }
  /** Tokens of one command line: atoms and quoted strings; a trailing literal is read. */
  async tokens(): Promise<string[] | undefined> {
    const out: string[] = [];
    let l = await this.line();
    if (l === undefined) return undefined;
    for (;;) {
      const lit = /\{(\d+)\+?\}$/.exec(l);
      const head = lit ? l.slice(0, lit.index) : l;
      for (const m of head.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g))
        out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]);
      if (!lit) return out;
      const data = await this.bytes(Number(lit[1]));
      if (data === undefined) return undefined;
      out.push(data.toString('latin1'));
      l = (await this.line()) ?? '';
      if (l === '') return out;
    }
  }
}

export async function startMiniServer(backend: AuthBackend): Promise<MiniServer> {
  const results: { mechanism: string; step: SaslStep }[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    void session(sock, backend, results).catch(() => sock.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return {
    port: addr.port,
    results,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

const literal = (b: Buffer): string => `{${b.length}}\r\n${b.toString('latin1')}\r\n`;

async function session(
  sock: Socket,
  backend: AuthBackend,
  results: { mechanism: string; step: SaslStep }[],
): Promise<void> {
  const r = new Reader(sock);
  const caps = `"IMPLEMENTATION" "tsieved-sasl-test"\r\n"SASL" "${mechanismNames(backend).join(' ')}"\r\n"SIEVE" "fileinto"\r\n"VERSION" "1.0"\r\nOK\r\n`;
  sock.write(caps);
  for (;;) {
    const t = await r.tokens();
    if (t === undefined) return;
    const cmd = (t[0] ?? '').toUpperCase();
    if (cmd === 'LOGOUT') {
      sock.end('OK\r\n');
      return;
    }
    if (cmd === 'CAPABILITY') {
      sock.write(caps);
      continue;
    }
    if (cmd !== 'AUTHENTICATE' || t[1] === undefined) {
      sock.write('NO "unsupported in this test server"\r\n');
      continue;
    }
    const mechanism = t[1].toUpperCase();
    const ex = createExchange(mechanism, backend, { remoteAddress: '127.0.0.1', secure: false });
    if (ex === undefined) {
      sock.write('NO "unknown mechanism"\r\n');
      continue;
    }
    let step = await ex.start(t[2] === undefined ? undefined : Buffer.from(t[2], 'base64'));
    while (step.kind === 'challenge') {
      sock.write(literal(Buffer.from(step.data.toString('base64'), 'latin1')));
      const resp = await r.tokens();
      if (resp === undefined) return;
      if (resp[0] === '*') break;
      step = await ex.respond(Buffer.from(resp[0] ?? '', 'base64'));
    }
    results.push({ mechanism, step });
    if (step.kind === 'success') {
      sock.write(step.serverFinal ? `OK (SASL "${step.serverFinal.toString('base64')}")\r\n` : 'OK\r\n');
    } else {
      sock.write('NO "Authentication failed"\r\n');
    }
  }
}
