/**
 * The request loop every worker process runs (the storage worker, migrate's marker
 * worker): frames from stdin, handled one at a time and in order, replies on
 * stdout. The process ends when stdin ends (the server closed the store, or died),
 * on SIGTERM/SIGHUP (the PAM helper or the launcher), or with exit status 3 on a
 * malformed request stream; the request in hand is finished first, then `cleanup`.
 *
 * Must not know: what the requests do.
 */
import type { Logger } from '../../log/logger.js';
import { StorageError } from '../types.js';
import { encodeFrame, FrameDecoder, FrameError, parseRequest, type Request } from './protocol.js';

export interface RequestHandler {
  handle(req: Request, payload: Buffer): Promise<void>;
  /** Runs once before the process exits (close the store). */
  cleanup?(): Promise<void>;
  /** The logger as of now (a worker makes its own once `init` named the user). */
  log(): Logger;
}

export function send(header: object, payload?: Buffer): void {
  process.stdout.write(encodeFrame(header, payload));
}

/** The reply header for a failed request: StorageErrors as they are, anything else as an internal error (logged). */
export function errorHeader(id: number, err: unknown, log: Logger, what: string): object {
  if (err instanceof StorageError) return { id, ok: false, error: { kind: err.kind, message: err.message } };
  log.error({ err }, `unexpected error in ${what}`);
  return { id, ok: false, error: { kind: 'io', message: `internal error in ${what}` } };
}

export function serveRequests(handler: RequestHandler): void {
  let queue: Promise<void> = Promise.resolve();
  let ending = false;

  const end = async (code: number): Promise<void> => {
    if (ending) return;
    ending = true;
    await queue.catch(() => undefined);
    try {
      await handler.cleanup?.();
    } catch (err) {
      handler.log().warn({ err }, 'closing the store failed');
    }
    handler.log().flush?.();
    process.exitCode = code;
    // stdout may still hold a response; let it drain, then leave.
    process.stdout.end(() => process.exit(code));
  };

  const decoder = new FrameDecoder();
  process.stdin.on('data', (chunk: Buffer) => {
    let frames;
    try {
      frames = decoder.push(chunk);
    } catch (err) {
      handler.log().error({ err: err instanceof FrameError ? err.message : err }, 'malformed request stream; exiting');
      void end(3);
      return;
    }
    for (const frame of frames) {
      const req = parseRequest(frame.header);
      if (!req) {
        handler.log().error('malformed request; exiting');
        void end(3);
        return;
      }
      queue = queue.then(() => handler.handle(req, frame.payload));
    }
  });
  // The server closing our stdin is how a session ends (LOGOUT, disconnect, idle, shutdown).
  process.stdin.on('end', () => void end(0));
  process.stdin.on('error', () => void end(0));
  process.stdout.on('error', () => void end(0));
  // SIGTERM from the PAM helper or the launcher: finish the current request, then go.
  process.on('SIGTERM', () => void end(0));
  process.on('SIGHUP', () => void end(0));
}
