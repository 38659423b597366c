/**
 * Rules about where commands sit rather than what they say: `elsif`/`else` only
 * after `if`/`elsif` (RFC 5228 section 3.1), nothing after `stop` in the same
 * block (Exim never parses text after a `stop` that runs, so mistakes there
 * would go unnoticed: exim-sieve.md section 4), at most `maxRedirects`
 * redirects, and the nesting limit for blocks and tests. The one-vacation rule
 * follows execution paths (vacation-paths.ts).
 *
 * Must not know: argument rules (structure.ts and friends).
 */
import type { Command, Test } from '../ast.js';
import type { PassContext } from './context.js';
import { checkVacationPaths } from './vacation-paths.js';

interface FlowState {
  redirects: number;
  nestingReported: boolean;
}

function tooDeep(at: Test | Command, ctx: PassContext, st: FlowState): void {
  if (!st.nestingReported)
    ctx.sink.error(at, `blocks and tests nest deeper than the limit of ${ctx.profile.maxNesting}`, 'limit');
  st.nestingReported = true;
}

function walkTest(test: Test, depth: number, ctx: PassContext, st: FlowState): void {
  if (depth > ctx.profile.maxNesting) {
    tooDeep(test, ctx, st);
    return;
  }
  for (let i = 0; i < test.tests.length; i++) walkTest(test.tests[i], depth + 1, ctx, st);
}

function walkBlock(cmds: Command[], depth: number, ctx: PassContext, st: FlowState): void {
  if (depth > ctx.profile.maxNesting) {
    if (cmds[0] !== undefined) tooDeep(cmds[0], ctx, st);
    return;
  }
  let prev: Command | undefined;
  for (let i = 0; i < cmds.length; i++) {
    const cmd = cmds[i];
    const name = cmd.name.toLowerCase();
    const p = prev?.name.toLowerCase();
    if (p === 'stop') {
      ctx.sink.error(cmd, 'commands after "stop" are never run (and Exim does not even check them)', 'policy');
      return;
    }
    if ((name === 'elsif' || name === 'else') && p !== 'if' && p !== 'elsif') {
      ctx.sink.error(cmd, `${cmd.name} without a preceding if`, 'semantic');
    }
    if (name === 'redirect' && ++st.redirects === ctx.profile.maxRedirects + 1) {
      ctx.sink.error(cmd, `more than ${ctx.profile.maxRedirects} redirects`, 'limit');
    }
    for (let k = 0; k < cmd.tests.length; k++) walkTest(cmd.tests[k], depth + 1, ctx, st);
    if (cmd.block !== null) walkBlock(cmd.block, depth + 1, ctx, st);
    prev = cmd;
  }
}

export function checkFlow(commands: Command[], ctx: PassContext): void {
  const st: FlowState = { redirects: 0, nestingReported: false };
  walkBlock(commands, 0, ctx, st);
  // Deeper scripts were refused above; the path walk recurses per block.
  if (!st.nestingReported) checkVacationPaths(commands, ctx);
}
