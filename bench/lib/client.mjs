// A minimal ManageSieve (RFC 5804) client for load generation: greeting, STARTTLS
// (node:tls upgrade of the same socket), AUTHENTICATE PLAIN, PUTSCRIPT, CHECKSCRIPT,
// SETACTIVE, LOGOUT. It trusts any server certificate: benchmarking on loopback
// against a throwaway certificate only, never for real use.
// Must not know: which server it talks to, or what is being measured.
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

const STATUS_RE = /^(OK|NO|BYE)(?=$|[ (])/i;

export class SieveClient {
  /** @param {import('node:net').Socket} socket */
  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    /** @type {(() => void) | undefined} */
    this.wake = undefined;
    this.closed = false;
    this.error = undefined;
    this.attach(socket);
  }

  attach(socket) {
    this.onData = (chunk) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      this.wake?.();
    };
    this.onClose = () => {
      this.closed = true;
      this.wake?.();
    };
    this.onError = (e) => {
      this.error = e;
      this.wake?.();
    };
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
  }

  detach(socket) {
    socket.off('data', this.onData);
    socket.off('close', this.onClose);
    socket.off('error', this.onError);
  }

  /** Connect and read the greeting (a capability response). */
  static async connect(host, port, timeoutMs = 30_000) {
    const socket = netConnect({ host, port });
    socket.setNoDelay(true);
    const client = new SieveClient(socket);
    client.timeoutMs = timeoutMs;
    await new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const greeting = await client.response();
    if (greeting.status !== 'OK') throw new Error(`greeting: ${greeting.text}`);
    client.capabilities = greeting.lines;
    return client;
  }

  /**
   * Read one complete response: lines (with server literals {n}) up to a line that
   * starts with OK, NO or BYE.
   */
  async response() {
    const deadline = Date.now() + (this.timeoutMs ?? 30_000);
    for (;;) {
      const parsed = parseResponse(this.buffer);
      if (parsed) {
        this.buffer = this.buffer.subarray(parsed.consumed);
        return parsed;
      }
      if (this.error) throw this.error;
      if (this.closed) throw new Error('connection closed by server');
      await new Promise((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.wake = () => {
          clearTimeout(t);
          this.wake = undefined;
          resolve();
        };
      });
      if (Date.now() >= deadline) throw new Error('timed out waiting for a response');
    }
  }

  async command(line, literal) {
    if (literal === undefined) {
      this.socket.write(line + '\r\n');
    } else {
      this.socket.write(`${line} {${literal.length}+}\r\n`);
      this.socket.write(literal);
      this.socket.write('\r\n');
    }
    return this.response();
  }

  async expectOk(line, literal) {
    const r = await this.command(line, literal);
    if (r.status !== 'OK') throw new Error(`${line.split(' ')[0]}: ${r.status} ${r.text}`);
    return r;
  }

  /** STARTTLS, then the TLS handshake on the same socket, then the new capabilities (RFC 5804 2.2). */
  async starttls() {
    await this.expectOk('STARTTLS');
    if (this.buffer.length > 0) throw new Error('data after STARTTLS OK (injection?)');
    const raw = this.socket;
    this.detach(raw);
    const secure = tlsConnect({ socket: raw, rejectUnauthorized: false, servername: 'localhost' });
    await new Promise((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.socket = secure;
    this.attach(secure);
    const caps = await this.response();
    if (caps.status !== 'OK') throw new Error(`capabilities after STARTTLS: ${caps.text}`);
    this.capabilities = caps.lines;
  }

  async authenticatePlain(user, password) {
    const token = Buffer.from(`\0${user}\0${password}`, 'utf8').toString('base64');
    return this.expectOk(`AUTHENTICATE "PLAIN" "${token}"`);
  }

  putScript(name, content) {
    return this.expectOk(`PUTSCRIPT ${quote(name)}`, content);
  }

  checkScript(content) {
    return this.command('CHECKSCRIPT', content);
  }

  setActive(name) {
    return this.expectOk(`SETACTIVE ${quote(name)}`);
  }

  async logout() {
    try {
      await this.command('LOGOUT');
    } finally {
      this.destroy();
    }
  }

  destroy() {
    this.socket.destroy();
  }
}

function quote(s) {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * Parse a complete response at the start of `buf`, or return undefined when more
 * bytes are needed. Server literals ({n} at the end of a line) may contain CRLF.
 */
export function parseResponse(buf) {
  let pos = 0;
  const lines = [];
  let current = '';
  for (;;) {
    const eol = buf.indexOf('\r\n', pos, 'latin1');
    if (eol < 0) return undefined;
    const part = buf.subarray(pos, eol).toString('utf8');
    const lit = /\{(\d+)\+?\}$/.exec(part);
    if (lit) {
      const n = Number(lit[1]);
      const start = eol + 2;
      if (buf.length < start + n) return undefined;
      current += part + buf.subarray(start, start + n).toString('utf8');
      pos = start + n;
      continue;
    }
    current += part;
    pos = eol + 2;
    const m = STATUS_RE.exec(current);
    if (m) return { status: m[1].toUpperCase(), text: current, lines, consumed: pos };
    lines.push(current);
    current = '';
  }
}
