/**
 * Hands each action's bound arguments to the pass that knows its rules.
 *
 * Must not know: the rules themselves.
 */
import type { Bound } from './arguments.js';
import type { PassContext } from './context.js';
import { checkNotify } from './enotify.js';
import { checkFileinto } from './fileinto.js';
import { checkRedirect } from './redirect.js';
import { checkVacation } from './vacation.js';

const ACTION_CHECKS: Readonly<Record<string, (bound: Bound, ctx: PassContext) => void>> = {
  redirect: checkRedirect,
  fileinto: checkFileinto,
  vacation: checkVacation,
  notify: checkNotify,
};

export function checkActionArguments(name: string, bound: Bound, ctx: PassContext): void {
  ACTION_CHECKS[name]?.(bound, ctx);
}
