/**
 * Per-user paths from the `[storage]` templates: `scripts_dir` and `filter_path`
 * with `{user}`, `{localpart}`, `{domain}`, `{home}`, `{mail}`, `{u1}`, `{u2}` (the
 * first one and two characters of the user, for layouts such as
 * `/afs/example.org/common/email/{u1}/{u2}/{user}`).
 *
 * Templates are checked once at start-up (`checkStorageTemplates`); expansion
 * (`resolveUserPaths`) refuses any value that could move the path somewhere else
 * (`/`, `..`, NUL, control characters in name fields; relative or `..`-bearing
 * home/mail) and any result outside the configured `roots`.
 *
 * Must not know: the file system (nothing here touches it), auth backends.
 */
import { posix } from 'node:path';
import type { Identity } from '../identity.js';
import { StorageError } from './types.js';
import { RESERVED_IN_SCRIPTS_DIR } from './layout.js';

/**
 * The storage settings this module and the launchers read. Declared here, in
 * storage's own terms, so that storage does not depend on the configuration
 * loader; main.ts passes the parsed `[storage]` table, which the compiler checks fits.
 */
export interface StorageConfig {
  readonly scripts_dir: string;
  readonly filter_path: string;
  readonly roots: readonly string[];
  readonly max_scripts: number;
  readonly max_script_bytes: number;
  readonly max_total_bytes: number;
  readonly isolation: 'none' | 'process';
  readonly token_command: readonly string[];
  readonly filter_mode: string;
}

export const PLACEHOLDERS = ['user', 'localpart', 'domain', 'home', 'mail', 'u1', 'u2'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];

/**
 * Placeholders that on their own tell users apart: the whole user name, or the
 * account's own directories (each account is assumed to have its own home/mail).
 * {u1}/{u2} only spread users over directories, and {localpart} alone merges
 * alice@a.org with alice@b.org; {localpart} counts only together with {domain}
 * in another path segment (see separatesUsers).
 */
const PER_USER: readonly Placeholder[] = ['user', 'home', 'mail'];

type Token = { literal: string } | { placeholder: Placeholder };

function tokenize(template: string): { tokens: Token[]; problems: string[] } {
  const tokens: Token[] = [];
  const problems: string[] = [];
  const re = /\{([^{}]*)\}|([^{}]+)|([{}])/g;
  for (const m of template.matchAll(re)) {
    if (m[1] !== undefined) {
      if ((PLACEHOLDERS as readonly string[]).includes(m[1])) tokens.push({ placeholder: m[1] as Placeholder });
      else problems.push(`unknown placeholder {${m[1]}} (known: ${PLACEHOLDERS.map((p) => `{${p}}`).join(' ')})`);
    } else if (m[2] !== undefined) {
      tokens.push({ literal: m[2] });
    } else {
      problems.push(`unbalanced "${m[3]}"`);
    }
  }
  return { tokens, problems };
}

/**
 * Undefined when the template gives every user a path of their own; otherwise why
 * users would share one. Needs {user}, {home} or {mail}, or {localpart} and
 * {domain} with a "/" between them: no value contains "/", so each then fills a
 * segment of its own, while "{localpart}.{domain}" gives "ab.c.org" to both
 * ab@c.org and ab.c@org.
 */
function separatesUsers(tokens: readonly Token[]): string | undefined {
  const present = new Set(tokens.flatMap((t) => ('placeholder' in t ? [t.placeholder] : [])));
  if (PER_USER.some((p) => present.has(p))) return undefined;
  if (present.has('localpart') && present.has('domain')) {
    const at = (p: Placeholder): number => tokens.findIndex((t) => 'placeholder' in t && t.placeholder === p);
    const [from, to] = [at('localpart'), at('domain')].sort((a, b) => a - b) as [number, number];
    const between = tokens.slice(from + 1, to);
    if (between.some((t) => 'literal' in t && t.literal.includes('/'))) return undefined;
    return 'puts {localpart} and {domain} in one path segment, so several users would share it (put a "/" between them, or use {user})';
  }
  if (present.size === 0) return 'has no per-user placeholder, so all users would share it';
  return (
    `has no placeholder that tells users apart: {${[...present].join('} and {')}} alone would give several users one path ` +
    '(use {user}, {home}, {mail}, or {localpart} and {domain} in different segments)'
  );
}

function checkTemplate(key: string, template: string): string[] {
  const { tokens, problems } = tokenize(template);
  const out = problems.map((p) => `storage.${key} "${template}": ${p}`);
  const first = tokens[0];
  const absolute =
    first !== undefined &&
    (('literal' in first && first.literal.startsWith('/')) ||
      ('placeholder' in first && (first.placeholder === 'home' || first.placeholder === 'mail')));
  if (!absolute) out.push(`storage.${key} "${template}": must be absolute (start with "/", {home} or {mail})`);
  const separation = separatesUsers(tokens);
  if (separation !== undefined) out.push(`storage.${key} "${template}": ${separation}`);
  for (const t of tokens) {
    if ('literal' in t && t.literal.split('/').some((seg) => seg === '..' || seg === '.')) {
      out.push(`storage.${key} "${template}": contains a "." or ".." path segment`);
      break;
    }
    if ('literal' in t && /[\u0000-\u001f\u007f]/.test(t.literal)) {
      out.push(`storage.${key} "${template}": contains a control character`);
      break;
    }
  }
  if (template.endsWith('/')) out.push(`storage.${key} "${template}": must not end with "/"`);
  return out;
}

/** Problems with the storage templates, roots and mode; empty when all is fine. */
export function checkStorageTemplates(storage: StorageConfig): string[] {
  const problems = [
    ...checkTemplate('scripts_dir', storage.scripts_dir),
    ...checkTemplate('filter_path', storage.filter_path),
  ];
  if (storage.scripts_dir === storage.filter_path)
    problems.push('storage.scripts_dir and storage.filter_path are the same');
  const inside = filterInsideScripts(storage.scripts_dir, storage.filter_path);
  if (inside) problems.push(`storage.filter_path: ${inside}`);
  for (const root of storage.roots) {
    if (!root.startsWith('/')) problems.push(`storage.roots: "${root}" is not absolute`);
    else if (posix.normalize(root).replace(/\/+$/, '') !== root.replace(/\/+$/, '')) {
      problems.push(`storage.roots: "${root}" is not in normal form`);
    }
  }
  const mode = parseFilterMode(storage.filter_mode);
  // Exim's default modemask 022 defers delivery for a group- or world-writable filter.
  if ((mode & 0o022) !== 0)
    problems.push(`storage.filter_mode ${storage.filter_mode}: Exim refuses group/other-writable filter files`);
  if ((mode & 0o600) !== 0o600)
    problems.push(`storage.filter_mode ${storage.filter_mode}: the owner must be able to read and write it`);
  return problems;
}

export function parseFilterMode(mode: string): number {
  return parseInt(mode, 8);
}

/** Values of the name-like placeholders must be one path segment, nothing more. */
function segmentValue(what: string, value: string): string {
  if (value === '' || value === '.' || value === '..' || value.includes('/') || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new StorageError('bad-name', `${what} ${JSON.stringify(value)} cannot be used in a path`);
  }
  return value;
}

/** home/mail come from the user database: absolute, normal, no NUL. */
function directoryValue(what: string, value: string | undefined): string {
  if (value === undefined || value === '') throw new StorageError('permission', `the account has no ${what}`);
  if (!value.startsWith('/') || value.includes('\0') || value.split('/').some((s) => s === '..' || s === '.')) {
    throw new StorageError('permission', `${what} ${JSON.stringify(value)} is not a safe absolute path`);
  }
  return value.replace(/\/+$/, '') || '/';
}

function placeholderValue(p: Placeholder, identity: Identity): string {
  const user = identity.user;
  const at = user.lastIndexOf('@');
  const chars = Array.from(user);
  switch (p) {
    case 'user':
      return segmentValue('user name', user);
    case 'localpart':
      return segmentValue('local part', at < 0 ? user : user.slice(0, at));
    case 'domain':
      return segmentValue('domain', at < 0 ? '' : user.slice(at + 1));
    case 'u1':
      segmentValue('user name', user);
      return segmentValue('user name prefix', chars.slice(0, 1).join(''));
    case 'u2':
      segmentValue('user name', user);
      return segmentValue('user name prefix', chars.slice(0, 2).join(''));
    case 'home':
      return directoryValue('home directory', identity.home);
    case 'mail':
      return directoryValue('mail directory', identity.mail);
  }
}

export function expandTemplate(template: string, identity: Identity): string {
  const { tokens, problems } = tokenize(template);
  if (problems.length > 0) throw new StorageError('io', `bad storage template "${template}": ${problems.join('; ')}`);
  return tokens.map((t) => ('literal' in t ? t.literal : placeholderValue(t.placeholder, identity))).join('');
}

/**
 * The filter file may sit in the scripts directory only under a name that cannot
 * be taken for a script or for the store's own files (a dot file other than ours).
 */
function filterInsideScripts(scriptsDir: string, filterPath: string): string | undefined {
  if (!filterPath.startsWith(scriptsDir + '/')) return undefined;
  const rest = filterPath.slice(scriptsDir.length + 1);
  if (rest.includes('/') || !rest.startsWith('.') || RESERVED_IN_SCRIPTS_DIR.includes(rest)) {
    return `filter_path inside scripts_dir must be a dot file directly in it, not one of ${RESERVED_IN_SCRIPTS_DIR.join(' ')}`;
  }
  return undefined;
}

/** Is `path` (normalised, absolute) equal to or below one of the roots? Empty roots: yes. */
export function underRoots(path: string, roots: readonly string[]): boolean {
  if (roots.length === 0) return true;
  return roots.some((root) => {
    const r = posix.normalize(root).replace(/\/+$/, '');
    return r === '' || path === r || path.startsWith(r + '/');
  });
}

function finish(key: string, expanded: string, roots: readonly string[]): string {
  if (!expanded.startsWith('/')) throw new StorageError('permission', `${key} "${expanded}" is not absolute`);
  if (expanded.split('/').some((s) => s === '..' || s === '.')) {
    throw new StorageError('permission', `${key} "${expanded}" contains "." or ".."`);
  }
  const path = posix.normalize(expanded).replace(/\/+$/, '');
  if (path === '' || path === '/') throw new StorageError('permission', `${key} expands to the root directory`);
  if (!underRoots(path, roots)) throw new StorageError('permission', `${key} "${path}" is outside storage.roots`);
  return path;
}

/** The user's scripts directory and filter file. Throws StorageError bad-name/permission. */
export function resolveUserPaths(
  storage: StorageConfig,
  identity: Identity,
): { scriptsDir: string; filterPath: string } {
  const scriptsDir = finish('scripts_dir', expandTemplate(storage.scripts_dir, identity), storage.roots);
  const filterPath = finish('filter_path', expandTemplate(storage.filter_path, identity), storage.roots);
  if (filterPath === scriptsDir) throw new StorageError('permission', 'filter_path and scripts_dir are the same');
  const inside = filterInsideScripts(scriptsDir, filterPath);
  if (inside) throw new StorageError('permission', inside);
  return { scriptsDir, filterPath };
}
