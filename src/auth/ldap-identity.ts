/**
 * Maps one LDAP entry to the Identity every backend reports (user, uid, gid,
 * home, mail, fields), using the configured attribute names, so storage
 * templates and isolation work the same as with userdb or PAM.
 *
 * Must not know: ldapts connections, how the entry was found, the wire protocol.
 */
import type { Identity } from './types.js';

/** An entry as ldapts returns it: `dn` plus attribute name -> value(s). */
export interface LdapEntry {
  readonly dn: string;
  readonly [attribute: string]: Buffer | Buffer[] | string[] | string;
}

export interface AttributeMap {
  readonly user_attr: string;
  readonly uid_attr: string;
  readonly gid_attr: string;
  readonly home_attr: string;
  readonly mail_attr: string;
}

export type MappedIdentity =
  { readonly ok: true; readonly identity: Identity } | { readonly ok: false; readonly reason: string };

/** The attributes to ask for: never `*`, so userPassword and friends are not fetched. */
export function requestedAttributes(map: AttributeMap): string[] {
  return [...new Set([map.user_attr, map.uid_attr, map.gid_attr, map.home_attr, map.mail_attr])];
}

/** All values of an attribute, matched case-insensitively (RFC 4512 section 2.5). */
export function attributeValues(entry: LdapEntry, name: string): string[] {
  const wanted = name.toLowerCase();
  for (const [key, raw] of Object.entries(entry)) {
    if (key === 'dn' || key.toLowerCase() !== wanted) continue;
    const list = Array.isArray(raw) ? raw : [raw];
    return list.map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : v));
  }
  return [];
}

// uidNumber/gidNumber are INTEGER (RFC 2307); anything else is a broken entry.
function parseId(values: string[]): number | undefined | null {
  if (values.length === 0) return undefined;
  if (values.length > 1) return null;
  const v = values[0];
  if (!/^\d{1,10}$/.test(v)) return null;
  const n = Number(v);
  return n <= 0xffffffff ? n : null;
}

export function entryToIdentity(entry: LdapEntry, login: string, map: AttributeMap): MappedIdentity {
  // The directory's spelling of the name is canonical (uid matching is usually
  // case-insensitive, paths are not). uid may be multi-valued: take the value the
  // user logged in with, or the only one.
  const names = attributeValues(entry, map.user_attr);
  const user =
    names.find((n) => n === login) ??
    names.find((n) => n.toLowerCase() === login.toLowerCase()) ??
    (names.length === 1 ? names[0] : login);

  const uid = parseId(attributeValues(entry, map.uid_attr));
  if (uid === null) return { ok: false, reason: `entry ${entry.dn} has an unusable ${map.uid_attr}` };
  const gid = parseId(attributeValues(entry, map.gid_attr));
  if (gid === null) return { ok: false, reason: `entry ${entry.dn} has an unusable ${map.gid_attr}` };
  const homes = attributeValues(entry, map.home_attr);
  if (homes.length > 1) return { ok: false, reason: `entry ${entry.dn} has more than one ${map.home_attr}` };
  const home = homes[0];
  const mail = attributeValues(entry, map.mail_attr)[0];

  const fields: Record<string, string> = { dn: entry.dn };
  for (const name of requestedAttributes(map)) {
    const first = attributeValues(entry, name)[0];
    if (first !== undefined) fields[name] = first;
  }
  return {
    ok: true,
    identity: {
      user,
      ...(uid !== undefined ? { uid } : {}),
      ...(gid !== undefined ? { gid } : {}),
      ...(home !== undefined ? { home } : {}),
      ...(mail !== undefined ? { mail } : {}),
      fields,
    },
  };
}
