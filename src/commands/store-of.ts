/** The logged-in user's store; dispatch guarantees the authenticated state. */
import type { ScriptStore } from '../storage/types.js';
import type { CommandContext } from './command.js';

export function storeOf(ctx: CommandContext): ScriptStore {
  const store = ctx.session.store;
  if (!store) throw new Error('authenticated session without a store');
  return store;
}
