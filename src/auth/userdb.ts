/**
 * Courier userdb backend: `name<TAB>field=value|field=value...`, one account per
 * line, in a file or a directory of files (as DomTool writes it for `user@domain`
 * virtual users). Fields used: uid, gid, home, mail, and the password from
 * `sievepw` when present (Courier's per-service `<service>pw` convention), else
 * `systempw`. Names are matched exactly. Reverse-mapping lines (`1000=<TAB>name`)
 * are skipped. Fields ending in `pw` never reach Identity.fields.
 *
 * Must not know: hashing details (password-hash.ts), the wire protocol.
 */
import type { Logger } from '../log/logger.js';
import type { LineParse } from './account-table.js';
import { FileAccountBackend } from './file-backend.js';
import { checkUserName } from './identity-rules.js';

const CONTROL = /[\u0000-\u001f\u007f]/;

export function parseUserdbLine(text: string): LineParse {
  const tab = text.indexOf('\t');
  if (tab < 0) return { kind: 'malformed', reason: 'no TAB between name and fields' };
  const name = text.slice(0, tab);
  // Reverse lookup records ("<uid>=") written by makeuserdb's helpers.
  if (/^[0-9]+=$/.test(name)) return { kind: 'skip' };
  const nameOk = checkUserName(name);
  if (!nameOk.ok) return { kind: 'malformed', reason: nameOk.reason };
  const fields: Record<string, string> = {};
  const rest = text.slice(tab + 1);
  for (const part of rest.split('|')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) return { kind: 'malformed', reason: 'field without "name="' };
    const key = part.slice(0, eq);
    const value = part.slice(eq + 1);
    if (CONTROL.test(value) || CONTROL.test(key))
      return { kind: 'malformed', reason: `control character in field ${key}` };
    if (Object.hasOwn(fields, key)) return { kind: 'malformed', reason: `field ${key} given twice` };
    fields[key] = value;
  }
  const uid = numeric(fields['uid']);
  const gid = numeric(fields['gid']);
  if (uid === null) return { kind: 'malformed', reason: 'uid is not a number' };
  if (gid === null) return { kind: 'malformed', reason: 'gid is not a number' };
  const stored = fields['sievepw'] ?? fields['systempw'];
  const publicFields: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) if (!k.endsWith('pw')) publicFields[k] = v;
  const home = fields['home'];
  const mail = fields['mail'];
  return {
    kind: 'account',
    name,
    account: {
      stored,
      identity: {
        user: name,
        ...(uid === undefined ? {} : { uid }),
        ...(gid === undefined ? {} : { gid }),
        ...(home === undefined ? {} : { home }),
        ...(mail === undefined ? {} : { mail }),
        fields: Object.freeze(publicFields),
      },
    },
  };
}

/** undefined when absent, null when present but not a plain non-negative integer. */
export function numeric(v: string | undefined): number | undefined | null {
  if (v === undefined || v === '') return undefined;
  if (!/^[0-9]{1,10}$/.test(v)) return null;
  const n = Number(v);
  return n <= 0xffffffff ? n : null;
}

export class UserdbBackend extends FileAccountBackend {
  readonly name = 'userdb';
  constructor(path: string, log: Logger) {
    super(path, parseUserdbLine, log);
  }
}
