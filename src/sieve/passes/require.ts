/**
 * `require` (RFC 5228 section 3.2): only before the first other command, and
 * only names the profile offers, compared byte for byte as Exim does
 * (exim-sieve.md section 2.1: "FileInto" is an unknown capability there).
 * Exim 4.96's parse_start reads requires in a loop that skips no white space
 * between one require's ";" and the next "require": `require "a";require "b";`
 * works, while a line break, space or comment in between makes the second one
 * a "syntax error" (both verified with exim4 -bf).
 *
 * Must not know: what the extensions do.
 */
import type { Script } from '../ast.js';
import { EXIM_EXTENSIONS } from '../profile.js';
import type { PassContext } from './context.js';

const EXIM_OFFERS = new Set<string>(EXIM_EXTENSIONS);

export function checkRequires(script: Script, ctx: PassContext): void {
  const accepted = new Set([...ctx.profile.extensions, ...ctx.profile.implicitCapabilities]);
  let seenOther = false;
  let seenRequire = false;
  for (const cmd of script.commands) {
    if (cmd.name.toLowerCase() !== 'require') {
      seenOther = true;
      continue;
    }
    if (seenOther) {
      ctx.sink.error(cmd.nameLoc, 'require is only allowed before the first other command', 'semantic');
    } else if (seenRequire && ctx.source[cmd.nameLoc.start - 1] !== ';') {
      ctx.sink.error(
        cmd.nameLoc,
        'Exim reads a further require only right after the ";" of the one before (no space, line break or comment); list all capabilities in one: require ["a", "b"];',
        'dialect',
      );
    }
    seenRequire = true;
    const arg = cmd.args[0];
    if (arg === undefined || arg.type !== 'stringlist') continue; // the signature check reports it
    for (const s of arg.items) {
      const name = s.value;
      if (accepted.has(name)) {
        if (!seenOther) ctx.required.add(name);
        continue;
      }
      const folded = [...accepted].find((a) => a.toLowerCase() === name.toLowerCase());
      if (folded !== undefined) {
        ctx.sink.error(s.loc, `unknown capability "${name}"; Exim compares names case-sensitively, write "${folded}"`, 'dialect');
      } else if (EXIM_OFFERS.has(name)) {
        // vacation and enotify need router options at the site (exim-sieve.md section 2.3).
        ctx.sink.error(s.loc, `extension "${name}" is not enabled on this server (supported: ${ctx.profile.extensions.join(' ')})`, 'dialect');
      } else {
        ctx.sink.error(s.loc, `unknown capability "${name}" (supported: ${ctx.profile.extensions.join(' ')})`, 'dialect');
      }
    }
  }
}
