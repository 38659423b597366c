/**
 * Finding the real programs integration tests drive, and guarding tests by exactly
 * what they use. With CI=true a missing program is a failure, never a silent skip:
 * CI installs every one of them (scripts/install-test-deps.sh). Without CI the test
 * is skipped and says why: `needs(...)` records the missing requirement in the test's
 * meta, and test/helpers/skip-summary.ts prints one summary at the end of the run.
 *
 * Must not know: which package provides which program (install-test-deps.sh does).
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestOptions } from 'vitest';

export const inCI = process.env.CI === 'true' || process.env.CI === '1';

declare module 'vitest' {
  interface TaskMeta {
    /** What a skipped test lacked: program names, or "root", "the PAM helper". */
    missing?: string[];
  }
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Directories searched for a program: PATH, and beside each ".../bin" its ".../sbin"
 * (exim4, slapd, useradd live in /usr/sbin, which root's PATH lacks under some su/sudo
 * set-ups). A PATH without the system directories finds no system program at all,
 * which is how scripts/test-fresh.sh imitates a bare machine.
 */
function searchDirs(): string[] {
  const dirs: string[] = [];
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir === '') continue;
    dirs.push(dir);
    if (dir.endsWith('/bin')) dirs.push(join(dirname(dir), 'sbin'));
  }
  return [...new Set(dirs)];
}

/** Absolute path of an executable found as above (or the given absolute path), or undefined. */
export function findTool(name: string): string | undefined {
  if (name.startsWith('/')) return executable(name) ? name : undefined;
  for (const dir of searchDirs()) {
    if (executable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/**
 * The absolute path of a program a guarded test runs (tests run programs by the path
 * found, never by name through PATH). Throws when it is missing: the guard should
 * have skipped the test.
 */
export function tool(name: string): string {
  const found = findTool(name);
  if (found === undefined) throw new Error(`program ${name} not found (guard the test with needs('${name}'))`);
  return found;
}

/** Something a test needs besides programs, e.g. root or a built helper. */
export interface Requirement {
  /** How the skip summary names it: "root", "the PAM helper (npm run build with libpam0g-dev)". */
  readonly label: string;
  readonly present: boolean;
}

export const ROOT: Requirement = {
  label: 'root',
  get present() {
    return isRoot();
  },
};

/** The PAM helper npm run build compiles when gcc and libpam0g-dev are there. */
export const PAM_HELPER_PATH = fileURLToPath(new URL('../../helper/build/tsieved-pam-helper', import.meta.url));
export const PAM_HELPER: Requirement = {
  label: 'the built PAM helper (npm run build with gcc and libpam0g-dev)',
  get present() {
    return existsSync(PAM_HELPER_PATH);
  },
};

/** The file broker npm run build compiles with any C compiler (isolation = "process"). */
export const BROKER_PATH = fileURLToPath(new URL('../../helper/build/tsieved-broker', import.meta.url));
export const BROKER: Requirement = {
  label: 'the built file broker (npm run build with a C compiler)',
  get present() {
    return existsSync(BROKER_PATH);
  },
};

/** Any other condition, e.g. `requirement('PHP Net_Sieve', existsSync(...))`. */
export function requirement(label: string, present: boolean): Requirement {
  return { label, present };
}

/**
 * Options for `describe(name, needs('openssl', ROOT), fn)` or `it(...)`: skip when a
 * program or requirement is missing (throw in CI), and record what was missing for
 * the summary. Programs are given by name; run them with `tool(name)`.
 */
export function needs(...wanted: Array<string | Requirement>): TestOptions {
  const missing = wanted
    .filter((w) => (typeof w === 'string' ? findTool(w) === undefined : !w.present))
    .map((w) => (typeof w === 'string' ? w : w.label));
  if (missing.length === 0) return {};
  if (inCI)
    throw new Error(
      `required in CI but missing: ${missing.join(', ')} (scripts/install-test-deps.sh installs the programs; CI runs as root)`,
    );
  return { skip: true, meta: { missing } };
}

/**
 * For `describe.skipIf(!haveTools(...))`: true when every tool is present. In CI a
 * missing tool throws at collection time, so the suite fails instead of skipping.
 * Prefer needs(), which also tells the skip summary what was missing.
 */
export function haveTools(...names: string[]): boolean {
  const missing = names.filter((n) => findTool(n) === undefined);
  if (missing.length === 0) return true;
  if (inCI)
    throw new Error(
      `required tool(s) missing in CI: ${missing.join(', ')} (scripts/install-test-deps.sh installs them)`,
    );
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
