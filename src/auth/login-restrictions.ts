/**
 * Dovecot passdb extra fields that say "do not let this entry log in here":
 * `nologin` (the account is disabled), `fail`, `proxy`/`proxy_maybe`/`host`
 * (the user belongs on another server: tsieved does not proxy), and
 * `allow_nets`/`allow_real_nets` (only from these networks). A passwd-file shared
 * with Dovecot carries them; ignoring them would let a disabled or
 * network-restricted user in through tsieved.
 *
 * Checked after the password, so a restricted entry costs what any other does and
 * the client gets the same answer as for a wrong password.
 *
 * Must not know: the line format, hashing, the wire protocol.
 */
import { BlockList, isIP } from 'node:net';

export interface LoginRestrictions {
  /** Why the entry may never log in here (for the log), if it may not. */
  readonly never?: string;
  /** Network lists a login must come from (each of them), if the entry limits them. */
  readonly allowNets?: readonly { readonly list: BlockList; readonly text: string }[];
}

export type RestrictionsParse =
  { readonly ok: true; readonly restrictions?: LoginRestrictions } | { readonly ok: false; readonly reason: string };

const NEVER_FIELDS: Readonly<Record<string, string>> = {
  nologin: 'entry has nologin (account disabled)',
  fail: 'entry has fail',
  proxy: 'entry asks for a proxy login, which tsieved does not do',
  proxy_maybe: 'entry asks for a proxy login, which tsieved does not do',
  host: 'entry names another host (proxy), which tsieved does not do',
};

export function parseLoginRestrictions(fields: Readonly<Record<string, string>>): RestrictionsParse {
  const never = Object.keys(NEVER_FIELDS).find((key) => key in fields);
  const nets = [fields['allow_nets'], fields['allow_real_nets']].filter((v): v is string => v !== undefined);
  if (never === undefined && nets.length === 0) return { ok: true };
  // Both fields given: a login must satisfy each. We see one address, the client's
  // (from the PROXY header when there is one), so both are checked against it.
  const allowNets: { list: BlockList; text: string }[] = [];
  for (const value of nets) {
    const list = new BlockList();
    const items = value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    for (const net of items) {
      const problem = addNet(list, net);
      if (problem !== undefined) return { ok: false, reason: `allow_nets: ${problem}` };
    }
    allowNets.push({ list, text: items.join(',') });
  }
  return {
    ok: true,
    restrictions: {
      ...(never !== undefined ? { never: NEVER_FIELDS[never] } : {}),
      ...(allowNets.length > 0 ? { allowNets } : {}),
    },
  };
}

/** Why this login must be refused, or undefined when it may go ahead. */
export function restrictionRefusal(
  restrictions: LoginRestrictions | undefined,
  remoteAddress: string,
): string | undefined {
  if (restrictions === undefined) return undefined;
  if (restrictions.never !== undefined) return restrictions.never;
  const address =
    remoteAddress.startsWith('::ffff:') && remoteAddress.includes('.') ? remoteAddress.slice(7) : remoteAddress;
  const family = isIP(address);
  for (const nets of restrictions.allowNets ?? []) {
    if (family === 0 || !nets.list.check(address, family === 4 ? 'ipv4' : 'ipv6')) {
      return `login from ${remoteAddress} is outside the entry's allow_nets (${nets.text})`;
    }
  }
  return undefined;
}

/** Adds "addr" or "addr/prefix"; returns a reason when it is not one. */
function addNet(list: BlockList, net: string): string | undefined {
  const slash = net.indexOf('/');
  const address = slash < 0 ? net : net.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return `${JSON.stringify(net)} is not an IP address or network`;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (slash < 0) {
    list.addAddress(address, type);
    return undefined;
  }
  const prefixText = net.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText) || prefix > (family === 4 ? 32 : 128))
    return `${JSON.stringify(net)} has a bad prefix length`;
  list.addSubnet(address, prefix, type);
  return undefined;
}
