/** Every command the server knows, by upper-case name (RFC 5804 section 2). */
import { authenticate } from './authenticate.js';
import { capability } from './capability.js';
import { checkscript } from './checkscript.js';
import type { RegisteredCommand } from './command.js';
import { deletescript } from './deletescript.js';
import { getscript } from './getscript.js';
import { havespace } from './havespace.js';
import { listscripts } from './listscripts.js';
import { logout } from './logout.js';
import { noop } from './noop.js';
import { putscript } from './putscript.js';
import { renamescript } from './renamescript.js';
import { setactive } from './setactive.js';
import { starttls } from './starttls.js';
import { unauthenticate } from './unauthenticate.js';

export const COMMANDS: ReadonlyMap<string, RegisteredCommand> = new Map(
  [
    authenticate,
    capability,
    checkscript,
    deletescript,
    getscript,
    havespace,
    listscripts,
    logout,
    noop,
    putscript,
    renamescript,
    setactive,
    starttls,
    unauthenticate,
  ].map((c) => [c.name, c]),
);
