/**
 * Accepts TCP connections on the configured addresses, applies the connection
 * limits (total and per source address), performs implicit TLS where configured,
 * and hands each socket to a Connection. Keeps the set of live connections so that
 * shutdown can let them finish and then close them.
 *
 * Must not know: the protocol beyond starting a Connection.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { ListenerConfig } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { ServerServices } from '../session/services.js';
import { Connection, type SessionInfo } from './connection.js';
import { LocalAdmission, type Admission, type AdmissionVerdict } from './admission.js';
import { bye, encodeResponse } from '../protocol/response.js';
import { compileTrustedProxies, isTrustedBy, readProxyHeader, type TrustedProxies } from './proxy-protocol.js';

/** A proxy sends its header at once; a peer that does not is not a proxy. */
const PROXY_HEADER_TIMEOUT_MS = 5000;

export interface ListenerSpec {
  readonly host: string;
  readonly port: number;
  readonly implicitTls: boolean;
  readonly allowPlaintext: boolean;
  readonly proxyProtocol: boolean;
}

export function listenerSpecs(
  listen: readonly ListenerConfig[],
  implicitTls: boolean,
  defaultPlaintext: boolean,
): ListenerSpec[] {
  return listen.map((entry) => {
    const table = typeof entry === 'string' ? { address: entry, proxy_protocol: false } : entry;
    const m = /^\[?(.*?)\]?:(\d+)$/.exec(table.address);
    if (!m) throw new Error(`bad listen address ${table.address}`);
    return {
      host: m[1],
      port: Number(m[2]),
      implicitTls,
      allowPlaintext:
        'allow_plaintext' in table && table.allow_plaintext !== undefined ? table.allow_plaintext : defaultPlaintext,
      proxyProtocol: table.proxy_protocol ?? false,
    };
  });
}

/** The configured address of a listener: the same address in a new config is the same listener. */
export function listenerAddress(spec: ListenerSpec): string {
  return `${spec.host.includes(':') ? `[${spec.host}]` : spec.host}:${spec.port}`;
}

/**
 * Keys for a list of listeners: the address (with "/tls" for implicit TLS), and
 * "#2", "#3"... for repeats, which only port 0 ("any free port") allows.
 */
function listenerKeys(specs: readonly ListenerSpec[]): [string, ListenerSpec][] {
  const seen = new Map<string, number>();
  return specs.map((spec) => {
    const base = listenerAddress(spec) + (spec.implicitTls ? '/tls' : '');
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    return [n === 1 ? base : `${base}#${n}`, spec];
  });
}

const sameOptions = (a: ListenerSpec, b: ListenerSpec): boolean =>
  a.implicitTls === b.implicitTls && a.allowPlaintext === b.allowPlaintext && a.proxyProtocol === b.proxyProtocol;

/** What applying a new listener list did, by configured address. */
export interface ListenerChanges {
  readonly bound: string[];
  readonly closed: string[];
  readonly rebound: string[];
  /** Addresses that could not be bound, with the reason; a failed rebind keeps the old listener. */
  readonly failed: { address: string; reason: string }[];
}

export class ConnectionManager {
  /** Listening sockets by configured address (port 0 stays 0 here). */
  private readonly servers = new Map<string, { server: Server; spec: ListenerSpec }>();
  private readonly connections = new Set<Connection>();
  private trustedProxies: TrustedProxies;

  constructor(
    private services: ServerServices,
    private readonly mechanisms: () => readonly string[],
    private readonly log: Logger,
    private readonly admission: Admission = new LocalAdmission(),
  ) {
    this.trustedProxies = compileTrustedProxies(services.config.server.trusted_proxies);
  }

  /** SIGHUP: new connections use the new services; running sessions keep theirs. */
  replaceServices(services: ServerServices): void {
    this.services = services;
    this.trustedProxies = compileTrustedProxies(services.config.server.trusted_proxies);
    for (const { server } of this.servers.values())
      server.maxConnections = hardConnectionLimit(services.config.server.max_connections);
  }

  /**
   * SIGHUP: make the listening sockets match `specs`. New addresses are bound;
   * removed ones stop accepting (their sessions go on to their end); an address
   * whose options changed is closed and bound again with the new ones. A bind that
   * fails is reported and, for a changed listener, the old one is bound back.
   */
  async applyListeners(specs: readonly ListenerSpec[]): Promise<ListenerChanges> {
    const changes: ListenerChanges = { bound: [], closed: [], rebound: [], failed: [] };
    const wanted = new Map(listenerKeys(specs));
    for (const [address, { server, spec }] of [...this.servers]) {
      const next = wanted.get(address);
      if (next && sameOptions(spec, next)) continue;
      const bound = server.address();
      server.close();
      this.servers.delete(address);
      this.log.info(
        {
          event: 'listener-closed',
          host: spec.host,
          port: typeof bound === 'object' && bound ? bound.port : spec.port,
        },
        'stopped listening',
      );
      if (!next) {
        changes.closed.push(address);
        continue;
      }
      try {
        await this.bind(address, next);
        changes.rebound.push(address);
      } catch (error) {
        changes.failed.push({ address, reason: (error as Error).message });
        await this.bind(address, spec).catch(() => undefined);
      }
    }
    for (const [address, spec] of wanted) {
      if (this.servers.has(address)) continue;
      try {
        await this.bind(address, spec);
        changes.bound.push(address);
      } catch (error) {
        changes.failed.push({ address, reason: (error as Error).message });
      }
    }
    return changes;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** The sockets listening now, with the ports they got. */
  get listening(): { host: string; port: number; implicitTls: boolean }[] {
    return [...this.servers.values()].map(({ server, spec }) => {
      const address = server.address();
      return {
        host: spec.host,
        port: typeof address === 'object' && address ? address.port : spec.port,
        implicitTls: spec.implicitTls,
      };
    });
  }

  /** Every live session, for `tsieved who` and the gauges. */
  sessions(): SessionInfo[] {
    return [...this.connections].map((c) => c.info());
  }

  /**
   * `tsieved kick`: ends every session of a user name, or from a client address
   * (with or without the port), with a BYE. Returns how many were ended.
   */
  async kick(target: string, text: string): Promise<number> {
    const matching = [...this.connections].filter((c) => {
      const info = c.info();
      return (
        info.user === target || info.remote === target || info.remote.slice(0, info.remote.lastIndexOf(':')) === target
      );
    });
    await Promise.all(matching.map((c) => c.shutdown(text, 'kicked')));
    return matching.length;
  }

  private async bind(key: string, spec: ListenerSpec): Promise<void> {
    // allowHalfOpen: a client that pipelines commands and then shuts down its
    // sending side (`printf ... | nc -N`, health checks) still gets every reply;
    // RFC 5804 section 2 has pipelined commands run in order, and LOGOUT answered.
    // The connection ends its own side once the buffered commands are done.
    const server = createServer({ pauseOnConnect: false, allowHalfOpen: true }, (socket) => this.accept(socket, spec));
    server.maxConnections = hardConnectionLimit(this.services.config.server.max_connections);
    // Node closes connections over maxConnections itself, without a word.
    server.on('drop', () => this.services.events.connectionRefused('max-connections'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(spec.port, spec.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (error) => this.log.error({ err: error }, 'listener error'));
    this.servers.set(key, { server, spec });
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : spec.port;
    this.log.info({ event: 'listening', host: spec.host, port, implicitTls: spec.implicitTls }, 'listening');
  }

  /**
   * Stop accepting; existing connections go on. (net.Server.close's callback waits
   * for every connection to end, so it is not awaited here: the listening socket
   * itself is closed at once.)
   */
  async stopListening(): Promise<void> {
    for (const { server } of this.servers.values()) server.close();
    this.servers.clear();
  }

  /** Wait up to `graceMs` for sessions to end, then close the rest with BYE. */
  async drain(graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs;
    while (this.connections.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const name = this.services.config.server.greeting_name;
    await Promise.all([...this.connections].map((c) => c.shutdown(`${name} is shutting down`)));
  }

  private accept(socket: Socket, spec: ListenerSpec): void {
    socket.on('error', () => undefined);
    const peer = normalizeAddress(socket.remoteAddress ?? 'unknown');
    if (!spec.proxyProtocol) {
      this.admit(socket, spec, peer, socket.remotePort ?? 0);
      return;
    }
    // A PROXY header is believed only from configured proxies; anyone else could
    // claim any address and dodge the per-address limits and fail2ban.
    if (!isTrustedBy(peer, this.trustedProxies)) {
      this.log.warn({ event: 'untrusted-proxy', remote: peer }, 'refusing connection: not a trusted proxy');
      this.services.events.connectionRefused('untrusted-proxy');
      socket.destroy();
      return;
    }
    readProxyHeader(socket, { timeoutMs: PROXY_HEADER_TIMEOUT_MS }).then(
      (header) => {
        if (header.kind === 'error') {
          this.log.warn(
            { event: 'proxy-header-error', remote: peer, reason: header.message },
            'refusing connection: bad PROXY header',
          );
          this.services.events.connectionRefused('proxy-header');
          socket.destroy();
          return;
        }
        const source = header.source;
        this.admit(
          socket,
          spec,
          source ? normalizeAddress(source.address) : peer,
          source?.port ?? socket.remotePort ?? 0,
        );
      },
      () => socket.destroy(),
    );
  }

  private admit(socket: Socket, spec: ListenerSpec, remoteAddress: string, remotePort: number): void {
    const { server } = this.services.config;
    const verdict = this.admission.acquire(remoteAddress, {
      total: server.max_connections,
      perAddress: server.max_connections_per_ip,
    });
    if (typeof verdict === 'string') this.admitted(verdict, socket, spec, remoteAddress, remotePort);
    else
      verdict.then(
        (v) => this.admitted(v, socket, spec, remoteAddress, remotePort),
        () => socket.destroy(),
      );
  }

  private admitted(
    verdict: AdmissionVerdict,
    socket: Socket,
    spec: ListenerSpec,
    remoteAddress: string,
    remotePort: number,
  ): void {
    const { server } = this.services.config;
    if (verdict === 'max_connections') {
      this.refuse(
        socket,
        remoteAddress,
        'max_connections',
        `${server.greeting_name}: too many connections, try again later`,
      );
      return;
    }
    if (verdict === 'max_connections_per_ip') {
      this.refuse(
        socket,
        remoteAddress,
        'max_connections_per_ip',
        `${server.greeting_name}: too many connections from your address`,
      );
      return;
    }
    if (socket.destroyed) {
      this.admission.release(remoteAddress);
      return;
    }
    this.services.events.connectionAccepted();
    // `client` rather than `remote`: event lines carry `remote` themselves, in the
    // position the fail2ban filter expects.
    const log = this.log.child({ client: `${remoteAddress}:${remotePort}` });
    const connection = new Connection(
      socket,
      this.services,
      { remoteAddress, remotePort, plaintextAllowed: spec.allowPlaintext, implicitTls: spec.implicitTls },
      this.mechanisms,
      log,
    );
    this.connections.add(connection);
    const finished = (): void => {
      this.connections.delete(connection);
      this.admission.release(remoteAddress);
    };
    void this.start(connection, socket, spec, log).finally(finished);
  }

  /** RFC 5804 section 1.2: the client is told why (BYE) before the server hangs up. */
  private refuse(socket: Socket, remote: string, limit: string, text: string): void {
    this.log.warn({ event: 'too-many-connections', remote, limit }, 'refusing connection');
    this.services.events.connectionRefused(limit === 'max_connections_per_ip' ? 'per-ip-limit' : 'max-connections');
    socket.end(encodeResponse(bye(text)));
    // A client that never closes its side must not keep the descriptor.
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  private async start(connection: Connection, socket: Socket, spec: ListenerSpec, log: Logger): Promise<void> {
    if (!spec.implicitTls) return connection.run();
    const secureContext = this.services.tls;
    if (!secureContext) {
      socket.destroy();
      return;
    }
    const tlsSocket = new TLSSocket(socket, { isServer: true, secureContext });
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 30_000);
      tlsSocket.once('secure', () => {
        clearTimeout(timer);
        resolve(true);
      });
      tlsSocket.once('error', (error: Error) => {
        clearTimeout(timer);
        log.info({ event: 'tls-handshake-failed', err: error.message }, 'TLS handshake failed');
        resolve(false);
      });
    });
    if (!ok) {
      this.services.events.connectionRefused('tls-handshake');
      tlsSocket.destroy();
      socket.destroy();
      return;
    }
    return connection.run(tlsSocket);
  }
}

/**
 * Node's own limit, which closes without a word: admit() refuses beyond
 * max_connections with a BYE, so this only catches what exceeds it by a wide margin.
 */
function hardConnectionLimit(max: number): number {
  return max + Math.max(100, Math.ceil(max / 10));
}

/** IPv4-mapped IPv6 addresses are shown and counted as IPv4. */
export function normalizeAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
