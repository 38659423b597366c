/**
 * `exim4 -bf` (filter testing) with a minimal private configuration (-C): what the
 * real Exim would do with a filter file and a message, without delivering
 * anything (docs/exim-dialect.md, "Testing a filter"). Exim exits 0 even when a Sieve
 * filter fails, so callers read the text. `-v` adds the Sieve actions
 * (`fileinto 'X'`, `redirect 'a@b'`) on stderr, which is included.
 *
 * Must not know: tsieved.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eximBinary } from './exim.js';

export interface EximBf {
  readonly configFile: string;
  /** stdout + stderr of `exim -v -bf FILE -bfd DOMAIN -bfl LOCALPART [-bfs SUFFIX] < message`. */
  run(filterFile: string, message: string, address?: { localPart: string; domain: string; suffix?: string }): string;
  cleanup(): void;
}

/** `routers`: a `begin routers` section to add, for tests that read a router with `exim -bP router NAME`. */
export function privateEximBf(routers = ''): EximBf {
  const dir = mkdtempSync(join(tmpdir(), 'tsieved-eximbf-'));
  mkdirSync(join(dir, 'spool'));
  const configFile = join(dir, 'exim.conf');
  writeFileSync(
    configFile,
    `primary_hostname = tsieved.test\nspool_directory = ${dir}/spool\nlog_file_path = ${dir}/%slog\n` +
      (routers ? `begin routers\n${routers}\n` : ''),
  );
  return {
    configFile,
    run(filterFile, message, address = { localPart: 'user', domain: 'example.org' }) {
      const r = spawnSync(
        eximBinary(),
        [
          '-C',
          configFile,
          '-v',
          '-bf',
          filterFile,
          '-bfd',
          address.domain,
          '-bfl',
          address.localPart,
          ...(address.suffix ? ['-bfs', address.suffix] : []),
          '-f',
          'sender@remote.test',
        ],
        { input: message, encoding: 'utf8', timeout: 30_000 },
      );
      return `${r.stdout ?? ''}${r.stderr ?? ''}`;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
