/**
 * Entry point of the marker worker (dist/migrate/marker-worker.js): reads and writes
 * migrate's marker (marker.ts) in one user's tsieved scripts directory, running as
 * that user. ProcessLauncher starts it exactly as it starts the store's workers
 * (uid/gid, storage.token_command, nice) and speaks the store RPC to it
 * (storage/worker/protocol.ts): `init` names the user and the storage settings, so
 * the directory is the store's own (fileStoreOptionsFor); then `get` and `put` of
 * the name MARKER_FILE read and write the marker. Everything else is refused: this
 * worker stores no scripts. It exits when its stdin ends.
 *
 * Must not know: the old layouts, the report, sockets.
 */
import { createRootLogger, type Logger } from '../log/logger.js';
import { fileStoreOptionsFor } from '../storage/launcher.js';
import { StorageError } from '../storage/types.js';
import { encodeFrame, FrameDecoder, FrameError, parseRequest, type Request } from '../storage/worker/protocol.js';
import { localMarker, MARKER_FILE, type Marker } from './marker.js';

let marker: Marker | undefined;
let log: Logger = createRootLogger('info');
let queue: Promise<void> = Promise.resolve();
let ending = false;

function send(header: object, payload?: Buffer): void {
  process.stdout.write(encodeFrame(header, payload));
}

function only(name: string): void {
  if (name !== MARKER_FILE) throw new StorageError('io', `the migration marker worker handles ${MARKER_FILE} only`);
}

async function handle(req: Request, payload: Buffer): Promise<void> {
  try {
    if (req.op === 'init') {
      if (marker) throw new StorageError('io', 'worker already initialised');
      const { storage, identity, logLevel } = req.init;
      log = createRootLogger(logLevel).child({ component: 'migrate-marker-worker', user: identity.user, pid: process.pid });
      marker = localMarker(fileStoreOptionsFor(storage, identity, log).scriptsDir);
      send({ id: req.id, ok: true, result: null });
      return;
    }
    if (!marker) throw new StorageError('io', 'worker not initialised');
    if (req.op === 'get') {
      only(req.name);
      const content = await marker.read();
      if (content === undefined) throw new StorageError('nonexistent', `no ${MARKER_FILE}`);
      send({ id: req.id, ok: true, result: null }, content);
      return;
    }
    if (req.op === 'put') {
      only(req.name);
      await marker.write(payload);
      log.info({ event: 'migrate-marker' }, 'migration marker written');
      send({ id: req.id, ok: true, result: null });
      return;
    }
    throw new StorageError('io', `the migration marker worker does not do ${req.op}`);
  } catch (err) {
    if (err instanceof StorageError) {
      send({ id: req.id, ok: false, error: { kind: err.kind, message: err.message } });
    } else {
      log.error({ err }, 'unexpected error in the migration marker worker');
      send({ id: req.id, ok: false, error: { kind: 'io', message: 'internal error in the migration marker worker' } });
    }
  }
}

async function end(code: number): Promise<void> {
  if (ending) return;
  ending = true;
  await queue.catch(() => undefined);
  log.flush?.();
  process.exitCode = code;
  process.stdout.end(() => process.exit(code));
}

function main(): void {
  const decoder = new FrameDecoder();
  process.stdin.on('data', (chunk: Buffer) => {
    let frames;
    try {
      frames = decoder.push(chunk);
    } catch (err) {
      log.error({ err: err instanceof FrameError ? err.message : err }, 'malformed request stream; exiting');
      void end(3);
      return;
    }
    for (const frame of frames) {
      const req = parseRequest(frame.header);
      if (!req) {
        log.error('malformed request; exiting');
        void end(3);
        return;
      }
      queue = queue.then(() => handle(req, frame.payload));
    }
  });
  process.stdin.on('end', () => void end(0));
  process.stdin.on('error', () => void end(0));
  process.stdout.on('error', () => void end(0));
  process.on('SIGTERM', () => void end(0));
  process.on('SIGHUP', () => void end(0));
}

main();
