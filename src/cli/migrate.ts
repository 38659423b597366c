/**
 * `tsieved migrate --from pysieved|dovecot --config FILE [--dry-run] [--accept-changes]
 *  [--in-place] [--exim-file FILE] [--exim PATH] [--domain DOMAIN]
 *  [--scripts-dir DIR] [--active-link FILE] [--suffix SUFFIX] [--prefix PREFIX] [USER...]`
 *
 * Imports each user's scripts from pysieved's Exim layout or Dovecot's file layout
 * into tsieved's storage (as configured in FILE), carries over what Exim does with
 * their mail today, and proves it: the filter Exim reads today and the one it reads
 * afterwards go through `exim -bf` (run-user.ts, prove.ts). A user whose mail would
 * go elsewhere (or for whom that cannot be proven, e.g. without an Exim binary) is
 * left alone by a real run unless --accept-changes is given. The old files are never
 * changed, and a second run changes nothing.
 * Exit status: 0 when everything was migrated (or already was) with routing
 * unchanged; 1 when anything could not be (unknown user, unreadable or unsafe old
 * file, name conflict, storage error) or a user's routing would change without
 * --accept-changes; 2 for usage or configuration errors.
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
import { migrateUser, type MigrateContext, type UserResult } from '../migrate/run-user.js';
import { eximFor, qualifyDomain, routerAffixes } from '../migrate/exim-setup.js';
import type { Affixes } from '../migrate/probes.js';
import { formatTotals, formatUser, totalsOf } from '../migrate/report.js';
import { DEFAULT_LAYOUTS, type SourceLayout } from '../migrate/sources.js';
import { lookupUsers } from '../migrate/users.js';

export interface MigrateIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

export const MIGRATE_USAGE =
  'usage: tsieved migrate --from pysieved|dovecot --config FILE [--dry-run] [--accept-changes] [--in-place] [--exim-file FILE] [--exim PATH] [--domain DOMAIN] [--scripts-dir DIR] [--active-link FILE] [--suffix SUFFIX] [--prefix PREFIX] [--verbose] [USER...]';

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
        'accept-changes': { type: 'boolean', default: false },
        'in-place': { type: 'boolean', default: false },
        'exim-file': { type: 'string' },
        exim: { type: 'string' },
        domain: { type: 'string' },
        suffix: { type: 'string' },
        prefix: { type: 'string' },
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
    ...DEFAULT_LAYOUTS[from],
    ...(values['scripts-dir'] !== undefined ? { scriptsDir: values['scripts-dir'] } : {}),
    ...(values['active-link'] !== undefined ? { activeLink: values['active-link'] } : {}),
  };
  // pysieved's active link is the file Exim reads; Dovecot's is not (Exim reads ~/.forward).
  const eximFile = values['exim-file'] ?? (layout.kind === 'pysieved' ? layout.activeLink : '.forward');
  if (
    !relativeInsideHome(layout.scriptsDir) ||
    !relativeInsideHome(layout.activeLink) ||
    !relativeInsideHome(eximFile)
  ) {
    io.stderr.write(
      'tsieved migrate: --scripts-dir, --active-link and --exim-file are paths relative to the home directory, without ".."\n',
    );
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
  const acceptChanges = values['accept-changes'] === true;
  const exim = eximFor(values.exim, config.sieve);
  if (!exim) {
    io.stdout.write(
      'note: no Exim binary found (sieve.exim or --exim): routing is proven unchanged only where the filter file stays byte for byte the same; ' +
        `${dryRun ? 'a real run leaves' : 'this run leaves'} every other user alone unless --accept-changes is given\n`,
    );
  }
  const domain = values.domain ?? (exim ? await qualifyDomain(exim) : undefined) ?? 'localhost';
  const affixes = await probeAffixes(values, exim, config.sieve.exim_router, io);
  // As root, each user's store is read and written through a file broker running as
  // that user (as the server does with isolation = "process"), with
  // storage.token_command if set, so AFS writes get the user's token too. A dry run
  // opens no store.
  const launcher = runningAsRoot() && !dryRun ? new BrokerLauncher({ storage: config.storage, log }) : undefined;
  const ctx: MigrateContext = {
    config,
    layout,
    profile,
    dryRun,
    log,
    acceptChanges,
    domain,
    affixes,
    inPlace: values['in-place'] === true,
    eximFile,
    ...(exim ? { exim } : {}),
    ...(launcher ? { launcher } : {}),
  };
  const results: UserResult[] = [];
  try {
    for (const identity of users.identities) {
      const result = await migrateUser(identity, ctx);
      results.push(result);
      io.stdout.write(formatUser(result, dryRun));
    }
  } finally {
    await launcher?.close();
  }
  for (const user of users.missing) io.stdout.write(`${user}: FAILED: no such user\n`);
  const totals = totalsOf(results);
  io.stdout.write(formatTotals(totals, users.missing, dryRun, acceptChanges));
  const refused = totals.changed.length > 0 && !acceptChanges;
  return totals.usersWithErrors > 0 || users.missing.length > 0 || refused ? 1 : 0;
}

/**
 * The local-part suffix and prefix a probe message is sent with: --suffix/--prefix
 * as given ("" for none), else sample values of the router's own options
 * (`sieve.exim_router`). Said at the top of the report, as is a router Exim cannot show.
 */
async function probeAffixes(
  values: { suffix?: string | undefined; prefix?: string | undefined },
  exim: Parameters<typeof routerAffixes>[0] | undefined,
  router: string,
  io: MigrateIo,
): Promise<Affixes> {
  let affixes: Affixes;
  let from = 'given';
  if (values.suffix === undefined && values.prefix === undefined) {
    if (!exim) return {};
    const read = await routerAffixes(exim, router);
    if ('error' in read) {
      io.stdout.write(
        `note: cannot read Exim's router ${JSON.stringify(router)} ([sieve] exim_router): ${read.error}; no probe with a local-part suffix or prefix (give --suffix/--prefix)\n`,
      );
      return {};
    }
    affixes = read.affixes;
    const options = [affixes.prefix && 'local_part_prefix', affixes.suffix && 'local_part_suffix'].filter(Boolean);
    from = `${options.join(' and ')} of router ${JSON.stringify(router)}`;
  } else {
    affixes = {
      ...(values.prefix ? { prefix: values.prefix } : {}),
      ...(values.suffix ? { suffix: values.suffix } : {}),
    };
  }
  if (affixes.prefix || affixes.suffix)
    io.stdout.write(
      `note: routing is also probed with mail to ${affixes.prefix ?? ''}USER${affixes.suffix ?? ''}@DOMAIN (${from})\n`,
    );
  return affixes;
}
