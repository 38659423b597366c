/**
 * The parser against what a real haproxy sends (send-proxy = v1, send-proxy-v2 = v2,
 * with and without TLVs), read off real loopback sockets with readProxyHeader: the
 * reported source must be the client's own address and port, and the bytes the
 * client sent after connecting must reach the next reader intact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { needs } from '../helpers/tools.js';
import { readProxyHeader, type ProxyReadResult } from '../../src/server/proxy-protocol.js';
import { freePort, startHaproxy, type RunningHaproxy } from './haproxy.js';

interface Seen {
  header: ProxyReadResult;
  after: string;
}

/** A backend that reads the PROXY header, then collects what follows until the client ends. */
function startBackend(): Promise<{ server: Server; port: number; next: (clientPort: () => number) => Promise<Seen> }> {
  // haproxy's start-up probes (waitForPort) also reach the backend: match on the client port.
  const seenList: Seen[] = [];
  const waiting: (() => void)[] = [];
  const server = createServer((sock: Socket) => {
    void readProxyHeader(sock, { timeoutMs: 5000 }).then((header) => {
      let after = '';
      sock.on('data', (d: Buffer) => (after += d.toString('latin1')));
      sock.on('end', () => {
        sock.end();
        seenList.push({ header, after });
        for (const w of waiting.splice(0)) w();
      });
      sock.resume();
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      const next = (clientPort: () => number): Promise<Seen> =>
        new Promise<Seen>((resolve) => {
          const check = (): void => {
            const hit = seenList.find((x) => x.header.kind === 'done' && x.header.source?.port === clientPort());
            if (hit) resolve(hit);
            else waiting.push(check);
          };
          check();
        });
      resolve({ server, port, next });
    });
  });
}

/** Connect through a frontend, send `payload`, half-close; resolve the local address used. */
function clientSend(port: number, payload: string): Promise<{ address: string; port: number }> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' }, () => {
      const local = { address: s.localAddress ?? '', port: s.localPort ?? 0 };
      s.end(payload);
      s.on('close', () => resolve(local));
    });
    s.on('data', () => undefined);
    s.on('error', reject);
  });
}

describe('PROXY headers from a real haproxy', needs('haproxy'), () => {
  let backend: Awaited<ReturnType<typeof startBackend>>;
  let haproxy: RunningHaproxy;
  const ports = { v1: 0, v2: 0, v2tlv: 0 };

  beforeAll(async () => {
    backend = await startBackend();
    ports.v1 = await freePort();
    ports.v2 = await freePort();
    ports.v2tlv = await freePort();
    haproxy = await startHaproxy(
      [
        `listen v1`,
        `  bind 127.0.0.1:${ports.v1}`,
        `  server b 127.0.0.1:${backend.port} send-proxy`,
        `listen v2`,
        `  bind 127.0.0.1:${ports.v2}`,
        `  server b 127.0.0.1:${backend.port} send-proxy-v2`,
        `listen v2tlv`,
        `  bind 127.0.0.1:${ports.v2tlv}`,
        // unique-id adds a TLV (PP2_TYPE_UNIQUE_ID) the parser must skip.
        `  unique-id-format %{+X}o\\ %ci:%cp_%fi:%fp_%Ts_%rt`,
        `  server b 127.0.0.1:${backend.port} send-proxy-v2 proxy-v2-options unique-id,authority`,
      ].join('\n'),
      [ports.v1, ports.v2, ports.v2tlv],
    );
  });

  afterAll(async () => {
    await haproxy?.stop();
    await new Promise<void>((r) => (backend ? backend.server.close(() => r()) : r()));
  });

  for (const [name, version] of [
    ['v1', 1],
    ['v2', 2],
    ['v2tlv', 2],
  ] as const) {
    it(`${name}: source is the client, the payload follows intact`, async () => {
      const payload = 'AUTHENTICATE "PLAIN" {12+}\r\n\0user\0secret\r\n';
      const local = await clientSend(ports[name], payload);
      const { header, after } = await backend.next(() => local.port);
      expect(header).toMatchObject({ kind: 'done', version });
      if (header.kind !== 'done') return;
      expect(header.source).toEqual({ address: '127.0.0.1', port: local.port });
      expect(header.destination).toEqual({ address: '127.0.0.1', port: ports[name] });
      expect(after).toBe(payload);
    });
  }
});

describe('readProxyHeader on a socket', () => {
  async function withPair(
    serverSide: (s: Socket) => Promise<unknown>,
    clientSide: (c: Socket) => void,
  ): Promise<unknown> {
    let result: Promise<unknown> = Promise.resolve();
    const server = createServer((s) => {
      result = serverSide(s);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    const c = connect({ port, host: '127.0.0.1' });
    await new Promise<void>((r) => c.once('connect', () => r()));
    clientSide(c);
    await new Promise((r) => setTimeout(r, 20));
    const value = await result;
    c.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    return value;
  }

  it('times out when a peer sends nothing', async () => {
    const r = await withPair(
      (s) => readProxyHeader(s, { timeoutMs: 100 }).finally(() => s.destroy()),
      () => undefined,
    );
    expect(r).toEqual({ kind: 'error', message: 'timed out waiting for PROXY header' });
  });

  it('reports a bad header and a closed connection as errors', async () => {
    const bad = await withPair(
      (s) => readProxyHeader(s).finally(() => s.destroy()),
      (c) => c.write('CAPABILITY\r\n'),
    );
    expect(bad).toMatchObject({ kind: 'error' });
    const closed = await withPair(
      (s) => readProxyHeader(s).finally(() => s.destroy()),
      (c) => c.end('PROXY TCP4 1.2'),
    );
    expect(closed).toEqual({ kind: 'error', message: 'connection closed before PROXY header' });
  });

  it('leaves the bytes after the header for the next reader, split across writes', async () => {
    const r = await withPair(
      async (s) => {
        const header = await readProxyHeader(s);
        let rest = '';
        s.on('data', (d: Buffer) => (rest += d.toString()));
        s.resume();
        await new Promise((res) => s.once('end', res));
        s.destroy();
        return { header, rest };
      },
      (c) => {
        c.write('PROXY TCP4 192.0.2.1 ');
        setTimeout(() => c.end('192.0.2.2 1000 4190\r\nNOOP\r\nLOGOUT\r\n'), 10);
      },
    );
    expect(r).toEqual({
      header: {
        kind: 'done',
        version: 1,
        source: { address: '192.0.2.1', port: 1000 },
        destination: { address: '192.0.2.2', port: 4190 },
      },
      rest: 'NOOP\r\nLOGOUT\r\n',
    });
  });
});
