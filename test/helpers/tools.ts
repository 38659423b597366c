/**
 * Finding the real programs integration tests drive. With CI=true a missing tool is
 * a failure, never a silent skip: CI installs every one of them in .ci/run.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

export const inCI = process.env.CI === 'true' || process.env.CI === '1';

/** Absolute path of an executable on PATH (or the given absolute path), or undefined. */
export function findTool(name: string): string | undefined {
  if (name.startsWith('/')) {
    try {
      accessSync(name, constants.X_OK);
      return name;
    } catch {
      return undefined;
    }
  }
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin']);
  for (const dir of dirs) {
    try {
      accessSync(`${dir}/${name}`, constants.X_OK);
      return `${dir}/${name}`;
    } catch {
      /* keep looking */
    }
  }
  return undefined;
}

/**
 * For `describe.skipIf(!haveTools(...))`: true when every tool is present. In CI a
 * missing tool throws at collection time, so the suite fails instead of skipping.
 */
export function haveTools(...names: string[]): boolean {
  const missing = names.filter((n) => findTool(n) === undefined);
  if (missing.length === 0) return true;
  if (inCI) throw new Error(`required tool(s) missing in CI: ${missing.join(', ')} (install them in .ci/run)`);
  return false;
}

/** True when running as root (real PAM, tmpfs mounts, chown tests need it). */
export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** For suites that need root: in CI (which runs as root) not being root is a failure. */
export function requireRoot(): boolean {
  if (isRoot()) return true;
  if (inCI) throw new Error('this suite needs root, and CI runs as root');
  return false;
}

export function toolVersion(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (e) {
    return String(e);
  }
}
