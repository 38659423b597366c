/**
 * At most one `vacation` per execution path. Exim 4.96 runs a script while it
 * parses it and fails a message with "trying to execute vacation more than
 * once" only when a second vacation actually runs (sieve.c sets vacation_ran
 * when one executes, whether or not a reply is then sent; verified with
 * exim4 -bf). So one vacation in each branch of an if/elsif/else, or one in an
 * `if false { ... }` block (how Roundcube keeps a switched-off out-of-office
 * reply) next to another, is fine; two that can both run for one message are
 * refused, since Exim would then file the message to the inbox and drop the
 * rest of the script.
 *
 * Tests are taken as "may be true and may be false" unless they are made of
 * `true`, `false`, `not`, `allof` and `anyof` alone: only those are decided
 * here, as Exim decides them without looking at the message. A `stop` ends
 * the path (RFC 5228 section 3.3).
 *
 * Must not know: argument rules, or what a vacation reply contains.
 */
import type { Command, Test } from '../ast.js';
import type { PassContext } from './context.js';

type Truth = 'true' | 'false' | 'unknown';

/**
 * The paths reaching a point of the script: whether one of them has run no
 * vacation yet, and the first vacation run on some path that ran one (for the
 * message). Neither: the point cannot be reached.
 */
interface Paths {
  clean: boolean;
  vacation: Command | undefined;
}

const NONE: Paths = { clean: false, vacation: undefined };

function union(a: Paths, b: Paths): Paths {
  const clean = a.clean || b.clean;
  const vacation = a.vacation ?? b.vacation;
  // Most unions change nothing: no new object for them (one per if of a large script).
  if (clean === a.clean && vacation === a.vacation) return a;
  if (clean === b.clean && vacation === b.vacation) return b;
  return { clean, vacation };
}

function truthOf(t: Test | undefined): Truth {
  if (t === undefined) return 'unknown';
  switch (t.name.toLowerCase()) {
    case 'true':
      return 'true';
    case 'false':
      return 'false';
    case 'not': {
      const v = truthOf(t.tests[0]);
      return v === 'unknown' ? v : v === 'true' ? 'false' : 'true';
    }
    case 'allof':
    case 'anyof': {
      // RFC 5228 section 5.1/5.3: allof is true when all are, anyof when one is.
      const all = t.name.toLowerCase() === 'allof';
      const vs = t.tests.map(truthOf);
      if (vs.includes(all ? 'false' : 'true')) return all ? 'false' : 'true';
      if (vs.every((v) => v === (all ? 'true' : 'false'))) return all ? 'true' : 'false';
      return 'unknown';
    }
    default:
      return 'unknown';
  }
}

function walk(cmds: Command[], start: Paths, ctx: PassContext): Paths {
  let at = start;
  for (let i = 0; i < cmds.length; i++) {
    const cmd = cmds[i];
    const name = cmd.name.toLowerCase();
    if (name === 'vacation') {
      const first = at.vacation;
      if (first !== undefined) {
        const line = ctx.sink.positionOf(first.start).line;
        ctx.sink.error(
          cmd,
          `a second vacation can run for the same message (after the one on line ${line}); Exim then stops with "trying to execute vacation more than once" and only keeps the message. Put them in different branches of one if/elsif/else`,
          'dialect',
        );
      }
      at = { clean: false, vacation: first ?? (at.clean ? cmd : undefined) };
    } else if (name === 'stop') {
      at = NONE;
    } else if (name === 'if') {
      // The chain: if, then any elsif, then an optional else (RFC 5228 section 3.1).
      let rest = at; // paths on which no branch so far was taken
      let out = NONE;
      let j = i;
      for (; j < cmds.length; j++) {
        const c = cmds[j];
        const n = c.name.toLowerCase();
        if (j > i && n !== 'elsif' && n !== 'else') break;
        const truth = n === 'else' ? 'true' : truthOf(c.tests[0]);
        if (truth !== 'false') out = union(out, walk(c.block ?? [], rest, ctx));
        if (truth === 'true') rest = NONE;
        if (n === 'else') {
          j++;
          break;
        }
      }
      at = union(out, rest);
      i = j - 1;
    } else if (cmd.block !== null) {
      // elsif/else out of place (flow.ts reports them): still walk their blocks.
      at = union(at, walk(cmd.block, at, ctx));
    }
  }
  return at;
}

export function checkVacationPaths(commands: Command[], ctx: PassContext): void {
  walk(commands, { clean: true, vacation: undefined }, ctx);
}
