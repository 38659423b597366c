/**
 * `tsieved migrate --from pysieved|dovecot --config FILE [--dry-run]
 *  [--scripts-dir DIR] [--active-link FILE] [USER...]`
 *
 * Imports each user's scripts from pysieved's Exim layout or Dovecot's file layout
 * into tsieved's storage (as configured in FILE), validates every script against
 * Exim's dialect and reports the ones Exim would reject, never changes the old
 * files, and changes nothing on a second run. Exit status: 0 when everything was
 * imported (or already was), 1 when anything could not be (unknown user, unreadable
 * or unsafe old file, name conflict, storage error), 2 for usage or configuration
 * errors. Scripts Exim would reject are imported all the same (the user keeps them
 * and can fix them) and listed in the summary.
 *
 * Must not know: the server, the wire protocol.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/loader.js';
import type { Config } from '../config/schema.js';
import { createRootLogger, silentLogger } from '../log/logger.js';
import { loadProfile } from '../sieve/index.js';
import { runningAsRoot } from '../storage/launcher.js';
import { BrokerLauncher } from '../storage/broker/launcher.js';
import { migrateUser, type UserResult } from './import.js';
import { formatTotals, formatUser, totalsOf } from './report.js';
import { DEFAULT_LAYOUTS, type SourceKind, type SourceLayout } from './sources.js';
import { lookupUsers } from './users.js';

export interface MigrateIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

export const MIGRATE_USAGE =
  'usage: tsieved migrate --from pysieved|dovecot --config FILE [--dry-run] [--scripts-dir DIR] [--active-link FILE] [--verbose] [USER...]';

/** A path relative to the home directory that stays inside it. */
function relativeInsideHome(value: string): boolean {
  return value !== '' && !value.startsWith('/') && !value.split('/').some((s) => s === '..' || s === '');
}

export async function runMigrate(argv: string[], io: MigrateIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        from: { type: 'string' },
        config: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        'scripts-dir': { type: 'string' },
        'active-link': { type: 'string' },
        verbose: { type: 'boolean', default: false },
      },
    });
  } catch (err) {
    io.stderr.write(`tsieved migrate: ${(err as Error).message}\n${MIGRATE_USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const from = values.from;
  if (from !== 'pysieved' && from !== 'dovecot') {
    io.stderr.write(`tsieved migrate: --from must be "pysieved" or "dovecot"\n${MIGRATE_USAGE}\n`);
    return 2;
  }
  if (!values.config) {
    io.stderr.write(`tsieved migrate: --config FILE is required\n${MIGRATE_USAGE}\n`);
    return 2;
  }
  const layout: SourceLayout = {
    ...DEFAULT_LAYOUTS[from as SourceKind],
    ...(values['scripts-dir'] !== undefined ? { scriptsDir: values['scripts-dir'] } : {}),
    ...(values['active-link'] !== undefined ? { activeLink: values['active-link'] } : {}),
  };
  if (!relativeInsideHome(layout.scriptsDir) || !relativeInsideHome(layout.activeLink)) {
    io.stderr.write('tsieved migrate: --scripts-dir and --active-link are paths relative to the home directory, without ".."\n');
    return 2;
  }

  let config: Config;
  try {
    config = await loadConfig(values.config);
  } catch (err) {
    io.stderr.write(`tsieved migrate: ${err instanceof ConfigError ? err.message : (err as Error).message}\n`);
    return 2;
  }
  const log = values.verbose ? createRootLogger('info', io.stderr) : silentLogger();
  let profile;
  try {
    profile = await loadProfile(config.sieve, config.storage.max_script_bytes, log);
  } catch (err) {
    io.stderr.write(`tsieved migrate: cannot determine Exim's Sieve dialect: ${(err as Error).message}\n`);
    return 2;
  }
  const users = await lookupUsers(config.auth, positionals);
  if (users.kind === 'error') {
    io.stderr.write(`tsieved migrate: ${users.message}\n`);
    return 2;
  }

  const dryRun = values['dry-run'] === true;
  // As root, each user's store and the marker of settled activation (marker.ts) are
  // read and written through a file broker running as that user (as the server
  // does with isolation = "process"), with storage.token_command if set, so AFS
  // writes get the user's token too. A dry run opens no store.
  const asRoot = runningAsRoot() && !dryRun;
  const launcher = asRoot ? new BrokerLauncher({ storage: config.storage, log }) : undefined;
  const results: UserResult[] = [];
  try {
    for (const identity of users.identities) {
      const result = await migrateUser(identity, { config, layout, profile, dryRun, log, ...(launcher ? { launcher } : {}) });
      results.push(result);
      io.stdout.write(formatUser(result, dryRun));
    }
  } finally {
    await launcher?.close();
  }
  for (const user of users.missing) io.stdout.write(`${user}: FAILED: no such user\n`);
  const totals = totalsOf(results);
  io.stdout.write(formatTotals(totals, users.missing, dryRun));
  return totals.usersWithErrors > 0 || users.missing.length > 0 ? 1 : 0;
}
