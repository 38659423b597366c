/**
 * Dovecot passwd-file backend: `user:{SCHEME}hash:uid:gid:gecos:home:shell:extra`
 * (trailing fields optional; extra fields are space-separated `key=value`, and a
 * value without scheme prefix is crypt(3), Dovecot's default for this format).
 * SCRAM keys come from `{SCRAM-SHA-1}`/`{SCRAM-SHA-256}` values or are derived
 * from `{PLAIN}`/`{CLEAR}`/`{CLEARTEXT}` ones; see file-backend.ts for when SCRAM
 * is offered. Dovecot's passdb fields that forbid a login (`nologin`, `allow_nets`,
 * ...) are honoured (login-restrictions.ts).
 *
 * Must not know: hashing details (password-hash.ts), the wire protocol.
 */
import type { Logger } from '../log/logger.js';
import type { LineParse } from './account-table.js';
import { FileAccountBackend } from './file-backend.js';
import { checkUserName } from './identity-rules.js';
import { parseLoginRestrictions } from './login-restrictions.js';
import { numeric } from './userdb.js';

const CONTROL = /[\u0000-\u001f\u007f]/;

export function parsePasswdFileLine(text: string): LineParse {
  const parts = text.split(':');
  if (parts.length < 2) return { kind: 'malformed', reason: 'no ":" after the user name' };
  const [name, password, uidS, gidS, gecos, home, shell] = parts as [string, string, ...(string | undefined)[]];
  // Everything after the seventh colon is the extra-field list (it may hold colons).
  const extra = parts.length > 7 ? parts.slice(7).join(':') : '';
  const nameOk = checkUserName(name);
  if (!nameOk.ok) return { kind: 'malformed', reason: nameOk.reason };
  if (CONTROL.test(text)) return { kind: 'malformed', reason: 'control character in line' };
  const uid = numeric(uidS);
  const gid = numeric(gidS);
  // Dovecot resolves user/group names here; we cannot, so only numbers are accepted.
  if (uid === null) return { kind: 'malformed', reason: 'uid is not a number' };
  if (gid === null) return { kind: 'malformed', reason: 'gid is not a number' };
  const fields: Record<string, string> = {};
  if (gecos) fields['gecos'] = gecos;
  if (shell) fields['shell'] = shell;
  for (const item of extra.split(' ')) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    // A bare key is a boolean extra field in Dovecot (e.g. "nodelay").
    if (eq < 0) fields[item] = '';
    else if (eq === 0) return { kind: 'malformed', reason: 'extra field without a name' };
    else fields[item.slice(0, eq)] = item.slice(eq + 1);
  }
  const mail = fields['userdb_mail'] ?? fields['mail'];
  const restrictions = parseLoginRestrictions(fields);
  if (!restrictions.ok) return { kind: 'malformed', reason: restrictions.reason };
  return {
    kind: 'account',
    name,
    account: {
      stored: password === '' ? undefined : password,
      ...(restrictions.restrictions ? { restrictions: restrictions.restrictions } : {}),
      identity: {
        user: name,
        ...(uid === undefined ? {} : { uid }),
        ...(gid === undefined ? {} : { gid }),
        ...(home ? { home } : {}),
        ...(mail === undefined ? {} : { mail }),
        fields: Object.freeze(fields),
      },
    },
  };
}

export class PasswdFileBackend extends FileAccountBackend {
  readonly name = 'passwd-file';
  constructor(path: string, log: Logger) {
    super(path, parsePasswdFileLine, log);
  }
}
