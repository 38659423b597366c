/**
 * The probe messages migration runs through `exim -bf` to compare a user's routing
 * before and after, and the address each is sent to: ordinary mail, mail marked as
 * spam and mailing-list mail to the plain address, plus, when Exim's router accepts
 * a local-part suffix or prefix (contrib/exim's `local_part_suffix = +*`),
 * mailing-list mail to the address with one (`user+lists@domain`), run with that
 * suffix (`-bfs`) or prefix (`-bfp`) so rules on `$local_part_suffix` or on the
 * envelope recipient's local part are compared too.
 *
 * What `exim -bf` cannot show: it leaves the router's `sieve_useraddress` and
 * `sieve_subaddress` unset (docs/exim-dialect.md), so `envelope :detail` never
 * matches and `:user` is the whole local part, suffix included; `usesSubaddress`
 * finds filters whose rules on those parts the comparison cannot judge.
 *
 * Must not know: how Exim is run, the store, the report's layout.
 */

/** A local-part prefix and suffix as the router strips them (the values `-bfp`/`-bfs` give the filter). */
export interface Affixes {
  readonly prefix?: string;
  readonly suffix?: string;
}

/** The user's address as the router gives it to the filter, with the affixes a probe may add. */
export interface Address {
  readonly localPart: string;
  readonly domain: string;
  /** Sample affixes matching the router's local_part_prefix/suffix; absent: the router takes none. */
  readonly affixes?: Affixes;
}

export interface Probe {
  readonly name: string;
  /** The prefix and suffix this message arrives with (empty: the plain address). */
  readonly affixes: Affixes;
  message(to: string): string;
}

const personal = (to: string): string =>
  `From: Probe Sender <probe@example.net>\nTo: ${to}\nSubject: tsieved migration check\nMessage-ID: <probe-1@example.net>\n\nHello.\n`;
const spam = (to: string): string =>
  `From: offers@example.net\nTo: ${to}\nSubject: ***SPAM*** cheap offers\nX-Spam-Flag: YES\nX-Spam-Status: Yes, score=12.0\nX-Spam-Level: ************\nMessage-ID: <probe-2@example.net>\n\nBuy.\n`;
const list =
  (id: number) =>
  (to: string): string =>
    `From: list-owner@lists.example.net\nTo: members@lists.example.net\nCc: ${to}\nSubject: [members] news\nList-Id: Members <members.lists.example.net>\nPrecedence: list\nMessage-ID: <probe-${id}@example.net>\n\nNews.\n`;

/** The word put where the router's pattern has `*` (`+*` becomes `+lists`): what members subscribe lists with. */
export const SAMPLE_AFFIX_WORD = 'lists';

/** A user name (`local@domain`, or a bare local part in `domain`) as the router sees it. */
export function addressOf(user: string, domain: string, affixes: Affixes | undefined): Address {
  const at = user.lastIndexOf('@');
  const parts = at > 0 ? { localPart: user.slice(0, at), domain: user.slice(at + 1) } : { localPart: user, domain };
  return { ...parts, ...(affixes ? { affixes } : {}) };
}

/** The address a probe's message is sent to. */
export function probeAddress(address: Address, probe: Probe): string {
  return `${probe.affixes.prefix ?? ''}${address.localPart}${probe.affixes.suffix ?? ''}@${address.domain}`;
}

/** Small on purpose: three messages to the plain address, and one to the address with the router's affixes. */
export function probesFor(address: Address): Probe[] {
  const probes: Probe[] = [
    { name: 'a personal message', affixes: {}, message: personal },
    { name: 'a message marked as spam', affixes: {}, message: spam },
    { name: 'a mailing-list message', affixes: {}, message: list(3) },
  ];
  const { prefix = '', suffix = '' } = address.affixes ?? {};
  if (prefix !== '' || suffix !== '') {
    const affixes = { ...(prefix ? { prefix } : {}), ...(suffix ? { suffix } : {}) };
    const to = `${prefix}${address.localPart}${suffix}@${address.domain}`;
    probes.push({ name: `a mailing-list message to ${to}`, affixes, message: list(4) });
  }
  return probes;
}

/**
 * One sample value of a router's `local_part_suffix` / `local_part_prefix` list
 * (Exim list syntax: `:`-separated, `<X` at the start changes the separator): the
 * first item, its wildcard (`*` ends a suffix, starts a prefix) replaced by a word.
 * Undefined for an empty option or one that is expanded at routing time (`$`).
 */
export function sampleAffix(option: string, kind: 'prefix' | 'suffix'): string | undefined {
  let text = option.trim();
  let separator = ':';
  const custom = /^<\s*(\S)/.exec(text);
  if (custom) {
    separator = custom[1];
    text = text.slice(custom[0].length);
  }
  const first = text
    .split(separator)
    .map((s) => s.trim())
    .find((s) => s !== '');
  if (first === undefined || first.includes('$')) return undefined;
  if (kind === 'suffix' && first.endsWith('*')) return first.slice(0, -1) + SAMPLE_AFFIX_WORD;
  if (kind === 'prefix' && first.startsWith('*')) return SAMPLE_AFFIX_WORD + first.slice(1);
  return first.includes('*') ? undefined : first;
}

/** Does this Sieve filter test `:user` or `:detail`, which `exim -bf` evaluates without the router's settings? */
export function usesSubaddress(filter: Buffer | undefined): boolean {
  if (filter === undefined) return false;
  const text = filter.toString('utf8');
  return /^#\s*sieve filter/i.test(text) && /:(?:user|detail)\b/i.test(text);
}
