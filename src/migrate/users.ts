/**
 * Finding the accounts to migrate without a password: the userdb and passwd-file
 * tables are read through the same parser and table the auth backends use
 * (AccountTable), and for PAM sites the system's passwd database through
 * `getent passwd` (NSS: files, LDAP via nslcd/sssd, whatever the host uses).
 * The LDAP backend's own directory settings are not used here: list the users
 * and the host's NSS must know them.
 *
 * Must not know: storage, scripts, the CLI's output.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Identity } from '../auth/types.js';
import type { Config } from '../config/schema.js';
import { AccountTable } from '../auth/account-table.js';
import { parseUserdbLine } from '../auth/userdb.js';
import { parsePasswdFileLine } from '../auth/passwd-file.js';
import { silentLogger } from '../log/logger.js';

const run = promisify(execFile);

export type UserLookup =
  | { readonly kind: 'ok'; readonly identities: readonly Identity[]; readonly missing: readonly string[] }
  | { readonly kind: 'error'; readonly message: string };

export async function lookupUsers(auth: Config['auth'], wanted: readonly string[]): Promise<UserLookup> {
  switch (auth.backend) {
    case 'userdb':
    case 'passwd-file': {
      const path = auth.backend === 'userdb' ? auth.userdb : auth.passwd_file;
      if (!path) return { kind: 'error', message: `[auth] backend = "${auth.backend}" needs its file path` };
      const table = new AccountTable(
        path,
        auth.backend === 'userdb' ? parseUserdbLine : parsePasswdFileLine,
        silentLogger(),
      );
      const read = await table.current(true);
      if (read.kind !== 'ok') return { kind: 'error', message: `cannot read ${path}: ${read.reason}` };
      const accounts = read.table.accounts;
      if (wanted.length === 0) {
        const all = [...accounts.values()]
          .map((a) => a.identity)
          .sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
        return { kind: 'ok', identities: all, missing: [] };
      }
      const identities: Identity[] = [];
      const missing: string[] = [];
      for (const user of wanted) {
        const found = accounts.get(user) ?? accounts.get(user.toLowerCase());
        if (found) identities.push(found.identity);
        else missing.push(user);
      }
      return { kind: 'ok', identities, missing };
    }
    case 'pam':
    case 'ldap': {
      if (wanted.length === 0) {
        return { kind: 'error', message: `with [auth] backend = "${auth.backend}" name the users to migrate` };
      }
      const identities: Identity[] = [];
      const missing: string[] = [];
      for (const user of wanted) {
        const identity = await getentPasswd(user);
        if (identity) identities.push(identity);
        else missing.push(user);
      }
      return { kind: 'ok', identities, missing };
    }
  }
}

/** One passwd entry via NSS; undefined when the user is unknown. */
export async function getentPasswd(user: string): Promise<Identity | undefined> {
  // A name starting with '-' would be taken for an option.
  if (user === '' || user.startsWith('-') || /[:\s\0]/.test(user)) return undefined;
  try {
    const { stdout } = await run('getent', ['passwd', '--', user], { encoding: 'utf8' });
    const fields = stdout.split('\n')[0]?.split(':') ?? [];
    if (fields.length < 7 || fields[0] !== user) return undefined;
    const uid = Number(fields[2]);
    const gid = Number(fields[3]);
    const home = fields[5];
    const identity: Identity = {
      user,
      ...(Number.isInteger(uid) ? { uid } : {}),
      ...(Number.isInteger(gid) ? { gid } : {}),
      ...(home ? { home } : {}),
      fields: { shell: fields[6] ?? '' },
    };
    return identity;
  } catch {
    return undefined;
  }
}
