/**
 * Asks an Exim binary what its Sieve implementation offers: `exim -bI:sieve`
 * (the compiled-in extensions, in Exim's order) and `exim -bP router NAME` (whether
 * the router reading the filter file sets sieve_vacation_directory and
 * sieve_enotify_mailto_owner; without them `require "vacation"` / "enotify"
 * fail at delivery: exim-sieve.md section 2.3). Any user may run both.
 *
 * Must not know: the validator or configuration schema.
 */
export class EximProbeError extends Error {
  override name = 'EximProbeError';
}

function run(bin: string, args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  // Loaded here: node:child_process costs a few milliseconds, and `tsieved
  // check --capabilities` never asks Exim. Not import(): the check bundle runs
  // outside Node's module loader (cli/check-bundle.ts), where it does not work.
  const { execFile } = process.getBuiltinModule('node:child_process');
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: 10_000, maxBuffer: 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ stdout, stderr: stderr || (err?.message ?? ''), code });
    });
  });
}

/** An exim binary on PATH or in the usual sbin directories, or undefined. */
export function findExim(): string | undefined {
  // Not an ES import of node:fs: that makes Node load its stream classes, a
  // few milliseconds of `tsieved check` start-up (see cli.ts).
  const { accessSync, constants } = process.getBuiltinModule('node:fs');
  const dirs = (process.env.PATH ?? '')
    .split(':')
    .filter(Boolean)
    .concat(['/usr/sbin', '/usr/local/sbin', '/usr/exim/bin']);
  for (const name of ['exim4', 'exim']) {
    for (const dir of dirs) {
      try {
        accessSync(`${dir}/${name}`, constants.X_OK);
        return `${dir}/${name}`;
      } catch {
        /* keep looking */
      }
    }
  }
  return undefined;
}

export async function eximSieveExtensions(bin: string, configFile?: string): Promise<string[]> {
  const r = await run(bin, [...(configFile ? ['-C', configFile] : []), '-bI:sieve']);
  if (r.code !== 0) throw new EximProbeError(`${bin} -bI:sieve failed: ${r.stderr.trim()}`);
  const list = r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  if (list.length === 0) throw new EximProbeError(`${bin} -bI:sieve printed no extensions (is Sieve built in?)`);
  return list;
}

export interface RouterSieveOptions {
  vacation: boolean;
  enotify: boolean;
}

/** Parses `name = value` lines of `exim -bP router NAME`. */
export function parseRouterOptions(out: string): RouterSieveOptions {
  const value = (key: string): string => {
    const m = new RegExp(`^\\s*${key}\\s*=(.*)$`, 'm').exec(out);
    return (m?.[1] ?? '').trim();
  };
  return { vacation: value('sieve_vacation_directory') !== '', enotify: value('sieve_enotify_mailto_owner') !== '' };
}

export async function eximRouterOptions(bin: string, router: string, configFile?: string): Promise<RouterSieveOptions> {
  const r = await run(bin, [...(configFile ? ['-C', configFile] : []), '-bP', 'router', router]);
  if (r.code !== 0) throw new EximProbeError(`${bin} -bP router ${router} failed: ${(r.stdout + r.stderr).trim()}`);
  return parseRouterOptions(r.stdout);
}
