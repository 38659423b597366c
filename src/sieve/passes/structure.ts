/**
 * Walks the commands and tests: each must exist in the dialect (RFC 5228
 * sections 3-5 plus the enabled extensions) with its `require`, the right
 * arguments, nested tests and block; `elsif`/`else` must follow `if`; nothing
 * may follow `stop` in the same block (Exim never parses text after a `stop`
 * that runs, so it would hide mistakes); nesting, `vacation` and `redirect`
 * counts are limited. Per-command and per-test argument rules live in
 * actions.ts and match.ts.
 *
 * Must not know: strings' encoding, or require placement (require.ts).
 */
import type { Command, Test } from '../ast.js';
import { COMMANDS, KNOWN_UNSUPPORTED, TESTS } from '../signatures.js';
import { checkActionArguments } from './actions.js';
import { bindArguments } from './arguments.js';
import type { PassContext } from './context.js';
import { checkTestArguments } from './match.js';

interface WalkState {
  vacations: number;
  redirects: number;
  nestingReported: boolean;
}

function unknownMessage(kind: 'command' | 'test', name: string, ctx: PassContext): string {
  const lower = name.toLowerCase();
  const ext = KNOWN_UNSUPPORTED.get(lower);
  if (ext !== undefined) return `${kind} "${name}" is not supported (it belongs to the "${ext}" extension, which Exim does not have)`;
  const other = kind === 'command' ? TESTS : COMMANDS;
  if (other.has(lower)) return `"${name}" is a ${kind === 'command' ? 'test' : 'command'}, not a ${kind}`;
  void ctx;
  return `unknown ${kind} "${name}"`;
}

function needsRequire(requires: string | undefined, ctx: PassContext): boolean {
  return requires !== undefined && !ctx.required.has(requires);
}

function checkTest(test: Test, depth: number, ctx: PassContext, st: WalkState): void {
  if (depth > ctx.profile.maxNesting) {
    if (!st.nestingReported) ctx.sink.error(test.nameLoc, `tests nest deeper than the limit of ${ctx.profile.maxNesting}`, 'limit');
    st.nestingReported = true;
    return;
  }
  const name = test.name.toLowerCase();
  const sig = TESTS.get(name);
  if (sig === undefined) {
    ctx.sink.error(test.nameLoc, unknownMessage('test', test.name, ctx), 'semantic');
    return;
  }
  if (needsRequire(sig.requires, ctx)) {
    ctx.sink.error(test.nameLoc, `test "${test.name}" needs require "${sig.requires}"`, 'semantic');
  }
  const bound = bindArguments(`test "${test.name}"`, test.nameLoc, test.args, sig, ctx);
  if (sig.tests === 'none' && test.tests.length > 0) {
    ctx.sink.error(test.tests[0]!.loc, `test "${test.name}" takes no nested test`, 'semantic');
  } else if (sig.tests === 'one' && (test.testList || test.tests.length !== 1)) {
    ctx.sink.error(test.nameLoc, `"${test.name}" takes exactly one test, not a test list`, 'semantic');
  } else if (sig.tests === 'list' && !test.testList) {
    ctx.sink.error(test.nameLoc, `"${test.name}" takes a test list in parentheses`, 'semantic');
  }
  if (bound !== undefined) checkTestArguments(test, name, bound, ctx);
  for (const t of test.tests) checkTest(t, depth + 1, ctx, st);
}

function checkCommand(cmd: Command, prev: Command | undefined, depth: number, ctx: PassContext, st: WalkState): void {
  const name = cmd.name.toLowerCase();
  const sig = COMMANDS.get(name);
  if (sig === undefined) {
    ctx.sink.error(cmd.nameLoc, unknownMessage('command', cmd.name, ctx), 'semantic');
    return;
  }
  if (needsRequire(sig.requires, ctx)) {
    ctx.sink.error(cmd.nameLoc, `${cmd.name} needs require "${sig.requires}"`, 'semantic');
  }
  if (name === 'require' && depth > 0) {
    ctx.sink.error(cmd.nameLoc, 'require is only allowed before the first other command, not in a block', 'semantic');
  }
  if (name === 'elsif' || name === 'else') {
    const p = prev?.name.toLowerCase();
    if (p !== 'if' && p !== 'elsif') ctx.sink.error(cmd.nameLoc, `${cmd.name} without a preceding if`, 'semantic');
  }
  const bound = bindArguments(cmd.name, cmd.nameLoc, cmd.args, sig, ctx);
  if (sig.tests === 'none' && cmd.tests.length > 0) {
    const t = cmd.tests[0]!;
    ctx.sink.error(t.loc, cmd.testList ? `${cmd.name} takes no test list` : `missing ";" after ${cmd.name}`, 'syntax');
  } else if (sig.tests === 'one' && (cmd.testList || cmd.tests.length !== 1)) {
    ctx.sink.error(cmd.nameLoc, `${cmd.name} needs one test (use allof/anyof to combine tests)`, 'semantic');
  }
  if (sig.block && cmd.block === null) {
    ctx.sink.error(cmd.nameLoc, `${cmd.name} needs a block "{ ... }"`, 'syntax');
  } else if (!sig.block && cmd.block !== null && !(sig.tests === 'none' && cmd.tests.length > 0)) {
    ctx.sink.error(cmd.nameLoc, `missing ";" after ${cmd.name} (it takes no block)`, 'syntax');
  }
  if (bound !== undefined) checkActionArguments(cmd, name, bound, ctx);
  if (name === 'vacation' && ++st.vacations === 2) {
    ctx.sink.error(cmd.nameLoc, 'only one vacation per script: Exim refuses a second one at delivery', 'policy');
  }
  if (name === 'redirect' && ++st.redirects === ctx.profile.maxRedirects + 1) {
    ctx.sink.error(cmd.nameLoc, `more than ${ctx.profile.maxRedirects} redirects`, 'limit');
  }
  for (const t of cmd.tests) checkTest(t, depth + 1, ctx, st);
  if (cmd.block !== null) checkBlock(cmd.block, depth + 1, ctx, st);
}

function checkBlock(cmds: Command[], depth: number, ctx: PassContext, st: WalkState): void {
  if (depth > ctx.profile.maxNesting) {
    if (!st.nestingReported && cmds[0] !== undefined) {
      ctx.sink.error(cmds[0].nameLoc, `blocks nest deeper than the limit of ${ctx.profile.maxNesting}`, 'limit');
    }
    st.nestingReported = true;
    return;
  }
  let prev: Command | undefined;
  for (const cmd of cmds) {
    if (prev !== undefined && prev.name.toLowerCase() === 'stop') {
      ctx.sink.error(cmd.nameLoc, 'commands after "stop" are never run (and Exim does not even check them)', 'policy');
      return;
    }
    checkCommand(cmd, prev, depth, ctx, st);
    prev = cmd;
  }
}

export function checkStructure(commands: Command[], ctx: PassContext): void {
  checkBlock(commands, 0, ctx, { vacations: 0, redirects: 0, nestingReported: false });
}
