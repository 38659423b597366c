/**
 * `require` (RFC 5228 section 3.2): only before the first other command, and
 * only names the profile offers, compared byte for byte as Exim does
 * (exim-sieve.md section 2.1: "FileInto" is an unknown capability there).
 * Several requires are accepted however they are spaced: Exim 4.96 reads a
 * further one only right after the previous ";", and the filter file merges
 * them into one (merge-requires.ts). With `encoded-character` required by an
 * earlier require command, the names of the later ones are decoded first, as
 * Exim decodes every string parsed after that require (not those of the same
 * command).
 *
 * Must not know: what the extensions do.
 */
import type { Script } from '../ast.js';
import { EXIM_EXTENSIONS } from '../profile.js';
import type { PassContext } from './context.js';
import { decodeString } from './strings.js';

const EXIM_OFFERS = new Set<string>(EXIM_EXTENSIONS);

export function checkRequires(script: Script, ctx: PassContext): void {
  const accepted = new Set([...ctx.profile.extensions, ...ctx.profile.implicitCapabilities]);
  let seenOther = false;
  for (const cmd of script.commands) {
    if (cmd.name.toLowerCase() !== 'require') {
      seenOther = true;
      continue;
    }
    if (seenOther) {
      ctx.sink.error(cmd, 'require is only allowed before the first other command', 'semantic');
    }
    const arg = cmd.args[0];
    if (arg === undefined || arg.type !== 'stringlist') continue; // the signature check reports it
    const decode = !seenOther && ctx.required.has('encoded-character');
    for (const s of arg.items) {
      if (decode && s.value !== '') decodeString(s, ctx);
      const name = s.value;
      if (accepted.has(name)) {
        if (!seenOther) ctx.required.add(name);
        continue;
      }
      const folded = [...accepted].find((a) => a.toLowerCase() === name.toLowerCase());
      if (folded !== undefined) {
        ctx.sink.error(
          s,
          `unknown capability "${name}"; Exim compares names case-sensitively, write "${folded}"`,
          'dialect',
        );
      } else if (EXIM_OFFERS.has(name)) {
        // vacation and enotify need router options at the site (exim-sieve.md section 2.3).
        ctx.sink.error(
          s,
          `extension "${name}" is not enabled on this server (supported: ${ctx.profile.extensions.join(' ')})`,
          'dialect',
        );
      } else {
        ctx.sink.error(s, `unknown capability "${name}" (supported: ${ctx.profile.extensions.join(' ')})`, 'dialect');
      }
    }
  }
}
