/**
 * The `/metrics` HTTP listener: its own address (never the ManageSieve port),
 * GET /metrics only, and, when a token file is configured, only for requests
 * carrying `Authorization: Bearer <token>` (Prometheus's `authorization` /
 * `bearer_token_file` scrape settings send exactly that).
 *
 * Must not know: which metrics exist or how they are gathered (it is handed a
 * function that renders them).
 */
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from '../log/logger.js';

export interface Rendered {
  readonly contentType: string;
  readonly body: string;
}

export interface MetricsEndpoint {
  readonly host: string;
  readonly port: number;
  /** SIGHUP: the token file is read again. */
  reloadToken(tokenFile: string | undefined): Promise<void>;
  close(): Promise<void>;
}

/** The first line of the token file, without surrounding white space. */
export async function readToken(tokenFile: string | undefined): Promise<Buffer | undefined> {
  if (tokenFile === undefined) return undefined;
  const text = (await readFile(tokenFile, 'utf8')).split('\n')[0].trim();
  if (text === '') throw new Error(`[metrics] token_file ${tokenFile} is empty`);
  return Buffer.from(text, 'utf8');
}

function authorized(header: string | undefined, token: Buffer | undefined): boolean {
  if (!token) return true;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  if (!m) return false;
  const given = Buffer.from(m[1], 'utf8');
  return given.length === token.length && timingSafeEqual(given, token);
}

export async function startMetricsEndpoint(
  listen: string,
  tokenFile: string | undefined,
  render: () => Promise<Rendered>,
  log: Logger,
): Promise<MetricsEndpoint> {
  let token = await readToken(tokenFile);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found; metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (!authorized(req.headers.authorization, token)) {
      res
        .writeHead(401, { 'www-authenticate': 'Bearer realm="tsieved metrics"', 'content-type': 'text/plain' })
        .end('Unauthorized\n');
      return;
    }
    render().then(
      ({ contentType, body }) =>
        res.writeHead(200, { 'content-type': contentType }).end(req.method === 'HEAD' ? undefined : body),
      (error: unknown) => {
        log.warn({ event: 'metrics-error', err: error }, 'gathering metrics failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('Gathering metrics failed\n');
      },
    );
  });
  // A scraper is not a browser; keep-alive connections must not hold shutdown up long.
  server.keepAliveTimeout = 5_000;
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(listen);
  if (!m) throw new Error(`bad [metrics] listen address ${listen}`);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(m[2]), m[1], () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => log.error({ err: error }, 'metrics listener error'));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : Number(m[2]);
  log.info({ event: 'metrics-listening', host: m[1], port }, 'metrics endpoint listening');
  return {
    host: m[1],
    port,
    async reloadToken(file) {
      token = await readToken(file);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
