/**
 * `fileinto` (RFC 5228 section 4.1) folder policy. Exim passes the name to its
 * router unchanged: "|cmd" runs a command through pipe_transport, ">x" goes to
 * the reply transport, "/abs" appends to any file the user can write, and a
 * trailing "/" means directory delivery (exim-sieve.md sections 5 and 12).
 * Both policies refuse those and ".." segments; "strict" also refuses hidden
 * names, "~" and empty or "." segments.
 *
 * Must not know: the transports themselves.
 */
import type { FileintoPolicy } from '../profile.js';
import type { Bound } from './arguments.js';
import { stringOf } from './arguments.js';
import type { PassContext } from './context.js';

/**
 * Names that pass under both policies at a glance: non-empty segments that
 * start with none of "." "~" "|" ">" and hold no control characters. Most
 * names are like that; the rules below say why the others are refused.
 */
const PLAIN = /^[^\x00-\x1f\x7f/.~|>][^\x00-\x1f\x7f/]*(?:\/[^\x00-\x1f\x7f/.][^\x00-\x1f\x7f/]*)*$/;

/** Why a folder name is refused under the policy, or undefined. */
export function folderProblem(name: string, policy: FileintoPolicy): string | undefined {
  return PLAIN.test(name) ? undefined : folderRuleProblem(name, policy);
}

/** The rules one by one, each with its reason (exported for the test that PLAIN agrees). */
export function folderRuleProblem(name: string, policy: FileintoPolicy): string | undefined {
  if (name.length === 0) return 'empty folder name';
  if (name.startsWith('|')) return 'a folder name starting with "|" would run a command';
  if (name.startsWith('>')) return 'a folder name starting with ">" is an autoreply, not a folder';
  if (name.startsWith('/')) return 'absolute paths are not allowed as folder names';
  if (/[\x00-\x1f\x7f]/.test(name)) return 'control characters are not allowed in folder names';
  const segments = name.split('/');
  if (segments.includes('..')) return '".." is not allowed in folder names';
  if (policy === 'strict') {
    if (name.endsWith('/')) return 'folder names must not end with "/"';
    if (segments.some((s) => s === '' || s === '.')) return 'empty or "." path segments are not allowed';
    if (segments.some((s) => s.startsWith('.'))) return 'folder names (and their segments) must not start with "."';
    if (name.startsWith('~')) return 'folder names must not start with "~"';
  }
  return undefined;
}

export function checkFileinto(bound: Bound, ctx: PassContext): void {
  const s = stringOf(bound.positional[0]);
  if (s === undefined) return;
  const p = folderProblem(s.value, ctx.profile.fileintoPolicy);
  if (p !== undefined) ctx.sink.error(s, `fileinto "${s.value}": ${p}`, 'policy');
}
