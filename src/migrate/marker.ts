/**
 * The marker `tsieved migrate` leaves in a user's tsieved scripts directory once it
 * has settled which script is active: `.migrated` (metadata starts with '.', script
 * files never do: storage/file-store.ts). While it exists, no later run activates
 * anything, so a user who deactivated or switched scripts in tsieved keeps that
 * choice even though the old layout still names its active script (at HCoop the
 * filter is ~/.public/.forward and pysieved's ~/.forward link stays).
 *
 * The marker is written where and as the store's files are: temp file in the same
 * directory + fsync + close + rename (storage/atomic-write.ts), under the store's
 * lock, with the user's identity. As root that goes through the same file broker
 * as the store's files (storage/broker/: uid/gid, storage.token_command for the
 * AFS token): root cannot write there on AFS, and must not on local disks (the
 * user's links).
 *
 * Must not know: the old layouts, the report.
 */
import { join } from 'node:path';
import { atomicWrite } from '../storage/atomic-write.js';
import { errnoCode, toStorageError } from '../storage/errors.js';
import { nodeFileOps, type FileOps } from '../storage/file-ops.js';
import { LOCK_DIR } from '../storage/layout.js';
import { DEFAULT_LOCK_OPTIONS, withLock } from '../storage/lock.js';

export const MARKER_FILE = '.migrated';

/** What the marker records: how activation was settled, which script, when. */
export interface Settled {
  readonly outcome: 'activated' | 'found active' | 'kept';
  readonly name: string;
  readonly at: Date;
}

export interface Marker {
  /** The marker's bytes, or undefined when there is none. */
  read(): Promise<Buffer | undefined>;
  write(content: Buffer): Promise<void>;
  close(): Promise<void>;
}

const HEADER = '# tsieved migrate settled which script is active. While this file exists, no later run activates one.';

export function formatMarker(s: Settled): Buffer {
  return Buffer.from(`${HEADER}\noutcome: ${s.outcome}\nscript: ${JSON.stringify(s.name)}\nat: ${s.at.toISOString()}\n`, 'utf8');
}

/** For the report: e.g. `activated "main" at 2026-...Z`; the file is the user's, so nothing is trusted. */
export function describeMarker(content: Buffer): string {
  const field = (key: string): string | undefined => {
    const m = new RegExp(`^${key}: (.{1,1100})$`, 'm').exec(content.toString('utf8'));
    return m?.[1];
  };
  const outcome = field('outcome');
  const script = field('script');
  const at = field('at');
  if (outcome === undefined || script === undefined || !/^(?:activated|found active|kept)$/.test(outcome)) return `${MARKER_FILE} exists`;
  let name: unknown;
  try {
    name = JSON.parse(script);
  } catch {
    return `${MARKER_FILE} exists`;
  }
  if (typeof name !== 'string') return `${MARKER_FILE} exists`;
  const when = at !== undefined && /^[0-9T:.Z-]{1,40}$/.test(at) ? ` at ${at}` : '';
  return `${outcome} ${JSON.stringify(name)}${when}`;
}

/** The marker in `scriptsDir`, read and written by this process through `ops`. */
export function localMarker(scriptsDir: string, ops: FileOps = nodeFileOps): Marker {
  const path = join(scriptsDir, MARKER_FILE);
  return {
    async read() {
      try {
        return await ops.readFile(path);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') return undefined;
        throw toStorageError(err, `cannot read the marker ${MARKER_FILE}`);
      }
    },
    async write(content) {
      await withLock(ops, join(scriptsDir, LOCK_DIR), DEFAULT_LOCK_OPTIONS, async (lock) => {
        await lock.assertHeld();
        await atomicWrite(ops, path, content, { mode: 0o600 });
      });
    },
    close: async () => undefined,
  };
}
