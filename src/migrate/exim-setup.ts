/**
 * Which Exim the migration compares routing with: `--exim PATH`, else `sieve.exim`
 * from the configuration (unless "auto"), else exim4/exim on PATH or in the usual
 * sbin directories; with `sieve.exim_config` as its -C file. The domain of users
 * whose name has none: Exim's own `qualify_domain`. And the local-part suffix and
 * prefix the router reading the filter accepts (`sieve.exim_router`, read with
 * `exim -bP router NAME` as the server reads its Sieve options), for the probe
 * sent to `user+lists@domain`.
 *
 * Must not know: users, the store, the report.
 */
import { execFile } from 'node:child_process';
import type { Config } from '../config/schema.js';
import { findExim } from '../sieve/exim-probe.js';
import { sampleAffix, type Affixes } from './probes.js';
import type { EximRunner } from './routing.js';

export function eximFor(
  option: string | undefined,
  sieve: Config['sieve'],
): Omit<EximRunner, 'uid' | 'gid'> | undefined {
  const binary = option ?? (sieve.exim && sieve.exim !== 'auto' ? sieve.exim : findExim());
  if (!binary) return undefined;
  return { binary, ...(sieve.exim_config ? { configFile: sieve.exim_config } : {}) };
}

/** `exim -bP qualify_domain`, or undefined when Exim does not say. */
export function qualifyDomain(exim: Omit<EximRunner, 'uid' | 'gid'>): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(
      exim.binary,
      [...(exim.configFile ? ['-C', exim.configFile] : []), '-bP', 'qualify_domain'],
      { timeout: 10_000 },
      (err, stdout) => {
        const m = /^\s*qualify_domain\s*=\s*(\S+)\s*$/m.exec(String(stdout));
        resolve(err === null && m ? m[1] : undefined);
      },
    );
  });
}

/**
 * Sample affixes for the router's `local_part_prefix` / `local_part_suffix`
 * (`+*` gives `+lists`); `{}` when it sets neither; an error text when Exim cannot
 * show the router (no such router in its configuration).
 */
export function routerAffixes(
  exim: Omit<EximRunner, 'uid' | 'gid'>,
  router: string,
): Promise<{ affixes: Affixes } | { error: string }> {
  return new Promise((resolve) => {
    execFile(
      exim.binary,
      [...(exim.configFile ? ['-C', exim.configFile] : []), '-bP', 'router', router],
      { timeout: 10_000 },
      (err, stdout, stderr) => {
        if (err !== null) {
          resolve({ error: `${exim.binary} -bP router ${router}: ${(String(stdout) + String(stderr)).trim()}` });
          return;
        }
        const option = (key: string): string =>
          new RegExp(`^\\s*${key}\\s*=(.*)$`, 'm').exec(String(stdout))?.[1] ?? '';
        const prefix = sampleAffix(option('local_part_prefix'), 'prefix');
        const suffix = sampleAffix(option('local_part_suffix'), 'suffix');
        resolve({ affixes: { ...(prefix ? { prefix } : {}), ...(suffix ? { suffix } : {}) } });
      },
    );
  });
}
