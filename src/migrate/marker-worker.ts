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
import type { Request } from '../storage/worker/protocol.js';
import { errorHeader, send, serveRequests } from '../storage/worker/serve.js';
import { localMarker, MARKER_FILE, type Marker } from './marker.js';

let marker: Marker | undefined;
let log: Logger = createRootLogger('info');

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
    send(errorHeader(req.id, err, log, 'the migration marker worker'));
  }
}

serveRequests({ handle, log: () => log });
