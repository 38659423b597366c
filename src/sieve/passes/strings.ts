/**
 * String-level rules, applied to every string and list of the script:
 * - empty lists `[]` are refused (RFC 5228 section 8.1 needs one string; Exim
 *   accepts them, and `exists []` is then always true);
 * - `text:` must be lower case, as Exim's lexer only knows that spelling;
 * - a multi-line string whose first line starts with "." is refused: Exim 4.96
 *   never checks the first line for the terminator or dot-stuffing, so an empty
 *   `text:` runs on into the rest of the script (exim-sieve.md section 3);
 * - with `encoded-character` required, strings are decoded in place
 *   (RFC 5228 section 2.4.2.4) from the bytes Exim holds for them
 *   (exim-string.ts, encoded-character.ts), so every later check sees what
 *   Exim sees; out-of-range code points are refused where Exim refuses them,
 *   and code points above FFFF too, which Exim 4.96 turns into other
 *   characters; an empty string is refused too, because Exim 4.96 then crashes
 *   while parsing (SIGSEGV, verified with exim4 -bf: delivery would panic and
 *   defer).
 *
 * Must not know: which command a string belongs to.
 */
import type { Argument, Command, Script, SieveString, Test } from '../ast.js';
import { decodeEncodedCharacters } from '../encoded-character.js';
import { eximString } from '../exim-string.js';
import type { PassContext } from './context.js';

// ignoreBOM keeps a leading U+FEFF: it is part of the string.
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/** Decodes `s` in place as Exim does; reports what Exim refuses or garbles. */
export function decodeString(s: SieveString, ctx: PassContext): void {
  if (s.value.indexOf('$') < 0) return;
  const ex = eximString(s, ctx.source);
  const r = decodeEncodedCharacters(ex.bytes);
  for (const p of r.problems) {
    const at = ex.from[p.at] ?? s.start;
    if (p.kind === 'range') {
      ctx.sink.error(
        { start: at, end: at },
        `\${unicode:...} item "${p.item}" is outside the Unicode range 0-D7FF, E000-10FFFF (Exim: unicode character out of range)`,
        'dialect',
      );
    } else {
      ctx.sink.error(
        { start: at, end: at },
        `\${unicode:${p.item}}: Exim 4.96 encodes characters above FFFF wrongly (this is not U+${p.item.replace(/^0+/, '').toUpperCase()} for Exim); write the character itself`,
        'dialect',
      );
    }
  }
  s.value = utf8.decode(r.bytes);
}

export function checkStrings(script: Script, ctx: PassContext): void {
  const decodeAll = ctx.required.has('encoded-character');
  // The names of top-level requires are decoded by require.ts, only where Exim does.
  const visitArgs = (args: Argument[], decode = decodeAll): void => {
    for (let a = 0; a < args.length; a++) {
      const arg = args[a];
      if (arg.type !== 'stringlist') continue;
      if (arg.items.length === 0) {
        ctx.sink.error(arg, 'empty string list "[]" is not allowed; a list needs at least one string', 'policy');
      }
      for (let k = 0; k < arg.items.length; k++) {
        const s = arg.items[k];
        if (s.kind === 'multiline') {
          if (s.prefix !== 'text:') {
            ctx.sink.error(s, `"${s.prefix}" must be written "text:" in lower case for Exim`, 'dialect');
          }
          const first = s.rawLines[0];
          if (first === undefined) {
            ctx.sink.error(
              s,
              'empty multi-line string: Exim 4.96 does not see the "." on the first line and reads on',
              'dialect',
            );
          } else if (first.startsWith('.')) {
            ctx.sink.error(
              s,
              'the first line of a multi-line string must not start with "." (Exim 4.96 does not unstuff it)',
              'dialect',
            );
          }
        }
        if (decode && s.value === '') {
          ctx.sink.error(
            s,
            'empty string: Exim 4.96 crashes on empty strings when "encoded-character" is required',
            'dialect',
          );
        } else if (decode) {
          decodeString(s, ctx);
        }
      }
    }
  };
  const visitTest = (t: Test): void => {
    visitArgs(t.args);
    if (t.testList && t.tests.length === 0) ctx.sink.error(t, `empty test list "()" after ${t.name}`, 'syntax');
    for (let i = 0; i < t.tests.length; i++) visitTest(t.tests[i]);
  };
  const visitCommand = (c: Command, top = false): void => {
    visitArgs(c.args, decodeAll && !(top && c.name.toLowerCase() === 'require'));
    if (c.testList && c.tests.length === 0) ctx.sink.error(c, `empty test list "()" after ${c.name}`, 'syntax');
    for (let i = 0; i < c.tests.length; i++) visitTest(c.tests[i]);
    const block = c.block;
    if (block !== null) for (let i = 0; i < block.length; i++) visitCommand(block[i]);
  };
  // Recursion depth is bounded: prescan.ts refused deeper scripts before parsing.
  for (let i = 0; i < script.commands.length; i++) visitCommand(script.commands[i], true);
}
