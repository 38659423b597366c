/**
 * `tsieved --help` and `--version` answer and exit 0 (packagers and admins call
 * them first); an unknown command prints the usage and exits 2.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../helpers/tsieved.js';

const CLI = join(PACKAGE_ROOT, 'dist/cli.js');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });

describe('tsieved --help / --version', () => {
  it('--version prints the package version and exits 0', () => {
    const { version } = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = run(flag);
      expect([r.status, r.stdout]).toEqual([0, `tsieved ${version}\n`]);
    }
  });

  it('--help prints every command on stdout and exits 0', () => {
    for (const flag of ['--help', '-h', 'help']) {
      const r = run(flag);
      expect(r.status).toBe(0);
      for (const command of ['serve', 'check', 'config check', 'migrate', 'build-helper'])
        expect(r.stdout).toContain(`tsieved ${command}`);
    }
  });

  it('an unknown command prints the usage on stderr and exits 2', () => {
    const r = run('frobnicate');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('tsieved serve');
  });
});
