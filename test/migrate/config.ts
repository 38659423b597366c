/** The tsieved.toml the migrate suites run with: a userdb in `dir`, storage under `homes`. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function writeMigrateConfig(
  dir: string,
  homes: string,
  storage: { scripts_dir: string; filter_path: string },
  capabilities: readonly string[],
): string {
  const file = join(dir, 'tsieved.toml');
  writeFileSync(
    file,
    [
      '[auth]',
      'backend = "userdb"',
      `userdb = "${join(dir, 'userdb')}"`,
      '[storage]',
      `scripts_dir = "${storage.scripts_dir}"`,
      `filter_path = "${storage.filter_path}"`,
      `roots = ["${homes}"]`,
      '[sieve]',
      `capabilities = ${JSON.stringify(capabilities)}`,
      '',
    ].join('\n'),
  );
  return file;
}
