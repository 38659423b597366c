/**
 * Signatures: every command and test must exist in the dialect (RFC 5228
 * sections 3-5 plus the enabled extensions) with its `require`, the right
 * arguments, nested tests and block. Per-command and per-test argument rules
 * live in actions.ts and match.ts; placement rules (elsif, stop, counts,
 * nesting) in flow.ts.
 *
 * Must not know: strings' encoding, or require placement (require.ts).
 */
import type { Command, Span, Test } from '../ast.js';
import { COMMANDS, KNOWN_UNSUPPORTED, TESTS } from '../signatures.js';
import { checkActionArguments } from './actions.js';
import { bindArguments } from './arguments.js';
import type { PassContext } from './context.js';
import { checkTestArguments } from './match.js';

function unknownMessage(kind: 'command' | 'test', name: string): string {
  const lower = name.toLowerCase();
  const ext = KNOWN_UNSUPPORTED.get(lower);
  if (ext !== undefined)
    return `${kind} "${name}" is not supported (it belongs to the "${ext}" extension, which Exim does not have)`;
  const other = kind === 'command' ? TESTS : COMMANDS;
  if (other.has(lower)) return `"${name}" is a ${kind === 'command' ? 'test' : 'command'}, not a ${kind}`;
  return `unknown ${kind} "${name}"`;
}

/** The complaint about a missing `require`, or undefined when none is needed. */
function requireProblem(what: string, requires: string | undefined, ctx: PassContext): string | undefined {
  if (requires === undefined || ctx.required.has(requires)) return undefined;
  if (!ctx.profile.extensions.includes(requires))
    return `${what} is not available: extension "${requires}" is not enabled on this server`;
  return `${what} needs require "${requires}"`;
}

// Recursion depth is bounded: the pre-scan refused scripts nested beyond the limit.
function checkTest(test: Test, ctx: PassContext): void {
  const name = test.name.toLowerCase();
  const sig = TESTS.get(name);
  if (sig === undefined) {
    ctx.sink.error(test, unknownMessage('test', test.name), 'semantic');
    return;
  }
  const missing = requireProblem(`test "${test.name}"`, sig.requires, ctx);
  if (missing !== undefined) ctx.sink.error(test, missing, 'semantic');
  const bound = bindArguments('test', test.name, test, test.args, sig, ctx);
  if (sig.tests === 'none' && test.tests.length > 0) {
    // Usually a missing quote, comma or brace; the stray words are not tests.
    const stray = test.tests[0];
    ctx.sink.error(
      stray,
      `unexpected "${stray.name}" after test "${test.name}" (missing quotes, "," or "{"?)`,
      'syntax',
    );
    if (bound !== undefined) checkTestArguments(name, bound, ctx);
    return;
  } else if (sig.tests === 'one' && (test.testList || test.tests.length !== 1)) {
    ctx.sink.error(test, `"${test.name}" takes exactly one test, not a test list`, 'semantic');
  } else if (sig.tests === 'list' && !test.testList) {
    ctx.sink.error(test, `"${test.name}" takes a test list in parentheses`, 'semantic');
  }
  if (bound !== undefined) checkTestArguments(name, bound, ctx);
  for (let i = 0; i < test.tests.length; i++) checkTest(test.tests[i], ctx);
}

/** Where the arguments of `cmd` end: a missing ";" belongs right there. */
function argsEnd(cmd: Command): Span {
  const end = cmd.args[cmd.args.length - 1]?.end ?? cmd.start + cmd.name.length;
  return { start: end, end };
}

function checkCommand(cmd: Command, depth: number, ctx: PassContext): void {
  const name = cmd.name.toLowerCase();
  const sig = COMMANDS.get(name);
  if (sig === undefined) {
    ctx.sink.error(cmd, unknownMessage('command', cmd.name), 'semantic');
    if (!cmd.terminated)
      ctx.sink.error({ start: cmd.headEnd, end: cmd.headEnd }, `missing ";" after ${cmd.name}`, 'syntax');
    return;
  }
  const missing = requireProblem(cmd.name, sig.requires, ctx);
  if (missing !== undefined) ctx.sink.error(cmd, missing, 'semantic');
  if (name === 'require' && depth > 0) {
    ctx.sink.error(cmd, 'require is only allowed before the first other command, not in a block', 'semantic');
  }
  const bound = bindArguments('command', cmd.name, cmd, cmd.args, sig, ctx);
  // Words after the arguments of a command that takes no test: usually the
  // next command, after a forgotten ";". They are not checked as tests.
  const stray = sig.tests === 'none' && cmd.tests.length > 0;
  if (stray) {
    if (cmd.testList || sig.block)
      ctx.sink.error(cmd.tests[0] ?? argsEnd(cmd), `${cmd.name} takes no test${cmd.testList ? ' list' : ''}`, 'syntax');
    else ctx.sink.error(argsEnd(cmd), `missing ";" after ${cmd.name}`, 'syntax');
  } else if (sig.tests === 'one' && (cmd.testList || cmd.tests.length !== 1)) {
    ctx.sink.error(cmd, `${cmd.name} needs one test (use allof/anyof to combine tests)`, 'semantic');
  }
  if (!cmd.terminated) {
    if (!stray) {
      const at = { start: cmd.headEnd, end: cmd.headEnd };
      ctx.sink.error(at, sig.block ? `${cmd.name} needs a block "{ ... }"` : `missing ";" after ${cmd.name}`, 'syntax');
    }
  } else if (sig.block && cmd.block === null) {
    ctx.sink.error(cmd, `${cmd.name} needs a block "{ ... }"`, 'syntax');
  } else if (!sig.block && cmd.block !== null && !stray) {
    ctx.sink.error(cmd, `missing ";" after ${cmd.name} (it takes no block)`, 'syntax');
  }
  if (bound !== undefined) checkActionArguments(name, bound, ctx);
  if (!stray) for (let i = 0; i < cmd.tests.length; i++) checkTest(cmd.tests[i], ctx);
  const block = cmd.block;
  if (block !== null) for (let i = 0; i < block.length; i++) checkCommand(block[i], depth + 1, ctx);
}

export function checkStructure(commands: Command[], ctx: PassContext): void {
  for (let i = 0; i < commands.length; i++) checkCommand(commands[i], 0, ctx);
}
