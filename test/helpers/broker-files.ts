/**
 * A real file broker's FileOps, for storage tests that run their cases over the
 * broker as well as over node:fs and the file threads. As root the broker must run
 * as some user (never root): `uid`, whom the test then gives its directories.
 */
import { tmpdir } from 'node:os';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log/logger.js';
import { BrokerLauncher } from '../../src/storage/broker/launcher.js';
import type { FileOps } from '../../src/storage/file-ops.js';

export interface BrokerFiles {
  readonly ops: FileOps;
  /** Ends the broker and its launcher. */
  close(): Promise<void>;
}

export function openBrokerFiles(user: string, uid: number | undefined): BrokerFiles {
  const launcher = new BrokerLauncher({
    storage: configSchema.parse({ storage: { scripts_dir: '{home}/sieve', filter_path: '{home}/.forward' } }).storage,
    log: silentLogger(),
  });
  const files = launcher.openFiles({
    user,
    home: tmpdir(),
    fields: {},
    ...(uid === undefined ? {} : { uid, gid: uid }),
  });
  return {
    ops: files.ops,
    close: async () => {
      await files.close();
      await launcher.close();
    },
  };
}
