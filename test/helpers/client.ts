/**
 * A small ManageSieve client for tests: raw control over what is sent, and a
 * reader that understands server responses (lines with `{n}` literals, ended by
 * OK/NO/BYE). It deliberately does no clever recovery, so that tests see exactly
 * what the server did.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

export interface ServerResponse {
  readonly status: 'OK' | 'NO' | 'BYE';
  /** Response code without parentheses, e.g. `QUOTA/MAXSIZE` or `TAG "x"`. */
  readonly code?: string;
  /** The human-readable text (quoted or literal), decoded. */
  readonly text?: string;
  /** Untagged lines before the status line, literals expanded. */
  readonly lines: string[];
  /** The same lines as raw bytes (literal bodies exact). */
  readonly rawLines: Buffer[];
  /** The status line itself as received (literal expanded). */
  readonly statusLine: string;
}

export interface ConnectOptions {
  readonly host?: string;
  readonly implicitTls?: boolean;
  readonly ca?: string | Buffer;
}

export class SieveTestClient {
  private buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private closed = false;
  greeting!: ServerResponse;

  private constructor(private socket: Socket | TLSSocket) {
    this.attach(socket);
  }

  static async connect(port: number, options: ConnectOptions = {}): Promise<SieveTestClient> {
    const host = options.host ?? '127.0.0.1';
    const socket = options.implicitTls
      ? tlsConnect({
          port,
          host,
          ca: options.ca,
          servername: 'localhost',
          rejectUnauthorized: options.ca !== undefined,
        })
      : netConnect({ port, host });
    await new Promise<void>((resolve, reject) => {
      socket.once(options.implicitTls ? 'secureConnect' : 'connect', () => resolve());
      socket.once('error', reject);
    });
    const client = new SieveTestClient(socket);
    client.greeting = await client.readResponse();
    return client;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** "127.0.0.1:port" as the server logs this connection (its `client` field). */
  get clientField(): string {
    return `${this.socket.localAddress ?? ''}:${this.socket.localPort ?? 0}`;
  }

  private attach(socket: Socket | TLSSocket): void {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.wake();
    });
    const done = (): void => {
      this.closed = true;
      this.wake();
    };
    socket.on('end', done);
    socket.on('close', done);
    socket.on('error', done);
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private async waitFor(predicate: () => boolean, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (this.closed) throw new Error(`connection closed; unread: ${JSON.stringify(this.buffer.toString('latin1'))}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out waiting for the server; unread: ${JSON.stringify(this.buffer.toString('latin1'))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  }

  /** One logical line: text up to CRLF, with any `{n}` literals inlined. */
  async readLine(timeoutMs?: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (;;) {
      await this.waitFor(() => this.buffer.indexOf('\r\n') !== -1, timeoutMs);
      const end = this.buffer.indexOf('\r\n');
      const line = this.buffer.subarray(0, end);
      this.buffer = this.buffer.subarray(end + 2);
      parts.push(line);
      const m = /\{(\d+)\+?\}$/.exec(line.toString('latin1'));
      if (!m) return Buffer.concat(parts);
      const size = Number(m[1]);
      await this.waitFor(() => this.buffer.length >= size, timeoutMs);
      parts.push(Buffer.from('\r\n'), this.buffer.subarray(0, size));
      this.buffer = this.buffer.subarray(size);
    }
  }

  /** Puts a line read with readLine back, so that readResponse sees it again. */
  unreadLine(line: Buffer): void {
    this.buffer = Buffer.concat([line, Buffer.from('\r\n'), this.buffer]);
  }

  async readResponse(timeoutMs?: number): Promise<ServerResponse> {
    const rawLines: Buffer[] = [];
    for (;;) {
      const raw = await this.readLine(timeoutMs);
      const text = raw.toString('utf8');
      const m = /^(OK|NO|BYE)(?: \(([^)]*(?:"[^"]*")?[^)]*)\))?(?: (.*))?$/s.exec(text);
      if (m) {
        return {
          status: m[1] as 'OK' | 'NO' | 'BYE',
          ...(m[2] !== undefined ? { code: m[2] } : {}),
          ...(m[3] !== undefined ? { text: decodeString(m[3]) } : {}),
          lines: rawLines.map((l) => l.toString('utf8')),
          rawLines,
          statusLine: text,
        };
      }
      rawLines.push(raw);
    }
  }

  async command(line: string | Buffer): Promise<ServerResponse> {
    this.write(typeof line === 'string' ? line + '\r\n' : line);
    return this.readResponse();
  }

  /** STARTTLS, handshake, and the capabilities the server pushes afterwards. */
  async startTls(ca: string | Buffer): Promise<{ ok: ServerResponse; capabilities: ServerResponse }> {
    const ok = await this.command('STARTTLS');
    if (ok.status !== 'OK') throw new Error(`STARTTLS refused: ${ok.statusLine}`);
    await this.upgrade(ca);
    return { ok, capabilities: await this.readResponse() };
  }

  /** Wraps the socket in TLS (after an OK to STARTTLS). */
  async upgrade(ca: string | Buffer): Promise<void> {
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('end');
    this.socket.removeAllListeners('close');
    const secure = tlsConnect({ socket: this.socket, ca, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.buffer = Buffer.alloc(0);
    this.socket = secure;
    this.attach(secure);
  }

  async authenticatePlain(user: string, password: string, authzid = ''): Promise<ServerResponse> {
    const ir = Buffer.from(`${authzid}\0${user}\0${password}`, 'utf8').toString('base64');
    return this.command(`AUTHENTICATE "PLAIN" "${ir}"`);
  }

  async putScript(name: string, content: string | Buffer): Promise<ServerResponse> {
    const body = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
    return this.command(
      Buffer.concat([Buffer.from(`PUTSCRIPT ${quote(name)} {${body.length}+}\r\n`, 'utf8'), body, Buffer.from('\r\n')]),
    );
  }

  async getScript(name: string): Promise<{ response: ServerResponse; content?: Buffer }> {
    const response = await this.command(`GETSCRIPT ${quote(name)}`);
    const first = response.rawLines[0];
    if (response.status !== 'OK' || !first) return { response };
    const m = /^\{(\d+)\}\r\n/.exec(first.toString('latin1'));
    if (!m) throw new Error(`GETSCRIPT answered without a literal: ${first.toString('latin1')}`);
    return { response, content: first.subarray(m[0].length) };
  }

  /** Waits until the server closes the connection. */
  async waitClosed(timeoutMs = 10_000): Promise<void> {
    await this.waitFor(() => this.closed, timeoutMs).catch((e) => {
      if (!this.closed) throw e;
    });
  }

  close(): void {
    this.socket.destroy();
  }

  /**
   * Stops reading from the socket (a client that never reads its replies): the
   * kernel's receive buffer fills and TCP flow control holds the server's writes.
   */
  stopReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  /** Octets queued on this side that the server has not taken yet (its receive window is shut). */
  get unsentBytes(): number {
    return this.socket.writableLength;
  }

  /** Shuts down the sending side only (FIN, or close_notify and FIN over TLS); replies can still arrive. */
  endWriting(): void {
    this.socket.end();
  }
}

/** A quoted string as clients send names: `\` and `"` escaped, UTF-8 raw. */
export function quote(value: string): string {
  return '"' + value.replace(/[\\"]/g, (c) => '\\' + c) + '"';
}

function decodeString(s: string): string {
  const lit = /^\{\d+\}\r\n([\s\S]*)$/.exec(s);
  if (lit) return lit[1];
  if (s.startsWith('"') && s.endsWith('"')) return s.slice(1, -1).replace(/\\(["\\])/g, '$1');
  return s;
}
