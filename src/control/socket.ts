/**
 * The control socket `tsieved who|kick|reload` talk to: a Unix socket owned by
 * the server's user (root in production), mode 0600, so that only that user can
 * list sessions or end them. One JSON request line in, one JSON answer line out,
 * then the connection closes.
 *
 * A path that exists is taken over only when it is a socket nobody answers on (a
 * stale one from a crashed server); a live server's socket is left alone, and a
 * file that is not a socket is never removed.
 *
 * Must not know: how sessions are listed or ended (it is handed the handlers).
 */
import { createServer, connect, type Server } from 'node:net';
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../log/logger.js';

export type ControlRequest =
  { readonly cmd: 'who' } | { readonly cmd: 'kick'; readonly target: string } | { readonly cmd: 'reload' };

export type ControlAnswer =
  | {
      readonly ok: true;
      readonly sessions?: readonly Record<string, unknown>[];
      readonly kicked?: number;
      readonly notApplied?: readonly string[];
    }
  | { readonly ok: false; readonly error: string };

export interface ControlHandlers {
  who(): Promise<readonly Record<string, unknown>[]>;
  kick(target: string): Promise<number>;
  reload(): Promise<{ ok: true; notApplied?: readonly string[] } | { ok: false; error: string }>;
}

const MAX_REQUEST = 4096;

/** Parses one request line; undefined when it is not a known request. */
export function parseRequest(line: string): ControlRequest | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { cmd, target } = value as { cmd?: unknown; target?: unknown };
  if (cmd === 'who' || cmd === 'reload') return { cmd };
  if (cmd === 'kick' && typeof target === 'string' && target !== '') return { cmd, target };
  return undefined;
}

async function answer(request: ControlRequest, handlers: ControlHandlers): Promise<ControlAnswer> {
  switch (request.cmd) {
    case 'who':
      return { ok: true, sessions: await handlers.who() };
    case 'kick':
      return { ok: true, kicked: await handlers.kick(request.target) };
    case 'reload': {
      const outcome = await handlers.reload();
      return outcome.ok ? { ok: true, ...(outcome.notApplied ? { notApplied: outcome.notApplied } : {}) } : outcome;
    }
  }
}

/** Is a server answering on this socket? */
function answering(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

export interface ControlSocket {
  close(): Promise<void>;
}

export async function startControlSocket(path: string, handlers: ControlHandlers, log: Logger): Promise<ControlSocket> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  let existing;
  try {
    existing = lstatSync(path);
  } catch {
    existing = undefined;
  }
  if (existing) {
    if (!existing.isSocket()) throw new Error(`${path} exists and is not a socket`);
    if (await answering(path)) throw new Error(`another server answers on ${path}`);
    unlinkSync(path);
  }
  const server: Server = createServer((socket) => {
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl < 0) {
        if (buffered.length > MAX_REQUEST) socket.destroy();
        return;
      }
      socket.pause();
      const request = parseRequest(buffered.slice(0, nl));
      const reply = request
        ? answer(request, handlers).catch((error: unknown): ControlAnswer => ({
            ok: false,
            error: (error as Error).message,
          }))
        : Promise.resolve<ControlAnswer>({ ok: false, error: 'unknown request' });
      void reply.then((a) => {
        if (request)
          log.info(
            { event: 'control', cmd: request.cmd, ...(request.cmd === 'kick' ? { target: request.target } : {}) },
            'control request',
          );
        socket.end(JSON.stringify(a) + '\n');
      });
    });
  });
  // The socket file is created by bind() with the umask's mode: make it 0600 from
  // the start (listen binds synchronously), not only after a chmod.
  const previous = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
      process.umask(previous);
    });
  } finally {
    process.umask(previous);
  }
  chmodSync(path, 0o600);
  log.info({ event: 'control-listening', path }, 'control socket ready');
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
      }),
  };
}

/** The client side: one request, one answer. */
export function controlRequest(path: string, request: ControlRequest, timeoutMs = 30_000): Promise<ControlAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer on ${path} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(JSON.stringify(request) + '\n'));
    socket.on('data', (chunk: string) => (data += chunk));
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(data) as ControlAnswer);
      } catch {
        reject(new Error(`unreadable answer on ${path}`));
      }
    });
  });
}
