/**
 * Entry point of the per-session storage worker (dist/storage/worker/worker-main.js).
 *
 * It runs as the session's user (started with uid/gid by ProcessLauncher, or exec'd
 * by the PAM helper after pam_setcred, so it holds the user's AFS token), opens that
 * user's FileStore from the `init` request, and answers storage requests on stdin/
 * stdout one at a time, in order. It exits when stdin ends (the server closed the
 * store, or died): one session, one worker, and a stuck or crashed worker harms no
 * other session. Logs go to stderr, which the server relays.
 *
 * Must not know: sockets, the wire protocol, auth backends.
 */
import { getPriority } from 'node:os';
import { createRootLogger, type Logger } from '../../log/logger.js';
import { fileStoreOptionsFor } from '../launcher.js';
import { FileStore } from '../file-store.js';
import { StorageError, type ScriptStore } from '../types.js';
import type { SieveProfile } from '../../sieve/index.js';
import type { Request, WorkerInfo } from './protocol.js';
import { errorHeader, send, serveRequests } from './serve.js';

/** Environment names the worker always has; anything else came from PAM (KRB5CCNAME). */
const BASE_ENV = new Set(['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'PWD', 'SHLVL', '_']);

let store: ScriptStore | undefined;
let profile: SieveProfile | undefined;
let log: Logger = createRootLogger('info');

function whoami(): WorkerInfo {
  return {
    pid: process.pid,
    ppid: process.ppid,
    uid: process.getuid?.() ?? -1,
    gid: process.getgid?.() ?? -1,
    groups: process.getgroups?.() ?? [],
    nice: getPriority(),
    credentialEnv: Object.keys(process.env).filter((k) => !BASE_ENV.has(k)).sort(),
  };
}

async function handle(req: Request, payload: Buffer): Promise<void> {
  try {
    if (req.op === 'init') {
      if (store) throw new StorageError('io', 'worker already initialised');
      const { storage, identity, logLevel, sieve } = req.init;
      profile = sieve;
      log = createRootLogger(logLevel).child({ component: 'storage-worker', user: identity.user, pid: process.pid });
      store = await FileStore.open(fileStoreOptionsFor(storage, identity, log));
      send({ id: req.id, ok: true, result: null });
      return;
    }
    if (req.op === 'whoami') {
      send({ id: req.id, ok: true, result: whoami() });
      return;
    }
    if (!store) throw new StorageError('io', 'worker not initialised');
    if (req.op === 'validate') {
      // A 1 MiB script costs this session's process its CPU time, nobody else's.
      if (!profile) throw new StorageError('io', 'worker has no Sieve profile');
      // Loaded on first use: the validator is most of a worker's start-up time,
      // and most sessions never upload a script.
      const { validateScript } = await import('../../sieve/index.js');
      send({ id: req.id, ok: true, result: validateScript(payload, profile) });
      return;
    }
    switch (req.op) {
      case 'list':
        send({ id: req.id, ok: true, result: await store.list() });
        return;
      case 'get':
        send({ id: req.id, ok: true, result: null }, await store.get(req.name));
        return;
      case 'checkSpace':
        await store.checkSpace(req.name, req.size);
        break;
      case 'put':
        await store.put(req.name, payload);
        break;
      case 'delete':
        await store.delete(req.name);
        break;
      case 'rename':
        await store.rename(req.from, req.to);
        break;
      case 'setActive':
        await store.setActive(req.name);
        break;
      case 'isVerbatim':
        send({ id: req.id, ok: true, result: await store.isVerbatim(req.name) });
        return;
      case 'putIfAbsent':
        send({ id: req.id, ok: true, result: await store.putIfAbsent(req.name, payload) });
        return;
      case 'setActiveIfNone':
        send({ id: req.id, ok: true, result: await store.setActiveIfNone(req.name) });
        return;
      case 'preserveForward':
        send({ id: req.id, ok: true, result: await store.preserveForward(payload) });
        return;
      case 'readMeta': {
        const meta = await store.readMeta(req.key);
        send({ id: req.id, ok: true, result: meta !== undefined }, meta);
        return;
      }
      case 'writeMeta':
        await store.writeMeta(req.key, payload);
        break;
    }
    send({ id: req.id, ok: true, result: null });
  } catch (err) {
    send(errorHeader(req.id, err, log, 'storage worker'));
  }
}

serveRequests({ handle, cleanup: async () => store?.close(), log: () => log });
