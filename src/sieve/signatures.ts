/**
 * The commands and tests of Exim's dialect, with their tags, positional
 * arguments and the `require` each one needs (RFC 5228 sections 3-5, RFC 3894
 * copy, RFC 5230 vacation, RFC 5233 subaddress, RFC 5435 enotify, RFC 5231
 * numeric comparator; trimmed to what Exim 4.96 implements: exim-sieve.md
 * section 3). Names are matched case-insensitively, as Exim does.
 *
 * Must not know: how scripts are parsed or where the capability list comes from.
 */

export type ValueKind = 'string' | 'stringlist' | 'number';

export interface TagSpec {
  /** Lower-case name without the colon. */
  name: string;
  /** Kind of the argument that follows the tag, if it takes one. */
  value?: ValueKind;
  /** Tags of one group exclude each other (RFC 5228 section 2.7.1-2.7.3). */
  group?: 'match' | 'comparator' | 'addresspart' | 'size';
  /** Extension the tag needs (`require`). */
  requires?: string;
}

export interface PositionalSpec {
  kind: ValueKind;
  /** Word used in messages, e.g. "header names". */
  label: string;
}

export interface Signature {
  name: string;
  requires?: string;
  tags: TagSpec[];
  positional: PositionalSpec[];
  /** Nested tests: none, a single test, or a parenthesised list. */
  tests: 'none' | 'one' | 'list';
  /** Commands only: whether a block follows instead of ";". */
  block: boolean;
}

const COMPARATOR: TagSpec = { name: 'comparator', value: 'string', group: 'comparator' };
const MATCH: TagSpec[] = [
  { name: 'is', group: 'match' },
  { name: 'contains', group: 'match' },
  { name: 'matches', group: 'match' },
];
const ADDRESS_PART: TagSpec[] = [
  { name: 'all', group: 'addresspart' },
  { name: 'localpart', group: 'addresspart' },
  { name: 'domain', group: 'addresspart' },
  { name: 'user', group: 'addresspart', requires: 'subaddress' },
  { name: 'detail', group: 'addresspart', requires: 'subaddress' },
];
const COPY: TagSpec = { name: 'copy', requires: 'copy' };

function sig(s: Partial<Signature> & { name: string }): Signature {
  return { tags: [], positional: [], tests: 'none', block: false, ...s };
}

export const COMMANDS: ReadonlyMap<string, Signature> = new Map(
  [
    sig({ name: 'require', positional: [{ kind: 'stringlist', label: 'capabilities' }] }),
    sig({ name: 'if', tests: 'one', block: true }),
    sig({ name: 'elsif', tests: 'one', block: true }),
    sig({ name: 'else', block: true }),
    sig({ name: 'stop' }),
    sig({ name: 'keep' }),
    sig({ name: 'discard' }),
    sig({ name: 'redirect', tags: [COPY], positional: [{ kind: 'string', label: 'address' }] }),
    sig({ name: 'fileinto', requires: 'fileinto', tags: [COPY], positional: [{ kind: 'string', label: 'folder' }] }),
    sig({
      name: 'vacation',
      requires: 'vacation',
      tags: [
        { name: 'days', value: 'number' },
        { name: 'subject', value: 'string' },
        { name: 'from', value: 'string' },
        { name: 'addresses', value: 'stringlist' },
        { name: 'mime' },
        { name: 'handle', value: 'string' },
      ],
      positional: [{ kind: 'string', label: 'reason' }],
    }),
    sig({
      name: 'notify',
      requires: 'enotify',
      tags: [
        { name: 'from', value: 'string' },
        { name: 'importance', value: 'string' },
        { name: 'options', value: 'stringlist' },
        { name: 'message', value: 'string' },
      ],
      positional: [{ kind: 'string', label: 'method' }],
    }),
  ].map((s) => [s.name, s]),
);

const KEYS: PositionalSpec = { kind: 'stringlist', label: 'keys' };

export const TESTS: ReadonlyMap<string, Signature> = new Map(
  [
    sig({
      name: 'address',
      tags: [COMPARATOR, ...MATCH, ...ADDRESS_PART],
      positional: [{ kind: 'stringlist', label: 'header names' }, KEYS],
    }),
    sig({
      name: 'header',
      tags: [COMPARATOR, ...MATCH],
      positional: [{ kind: 'stringlist', label: 'header names' }, KEYS],
    }),
    sig({
      name: 'envelope',
      requires: 'envelope',
      tags: [COMPARATOR, ...MATCH, ...ADDRESS_PART],
      positional: [{ kind: 'stringlist', label: 'envelope parts' }, KEYS],
    }),
    sig({ name: 'exists', positional: [{ kind: 'stringlist', label: 'header names' }] }),
    sig({
      name: 'size',
      tags: [
        { name: 'over', group: 'size' },
        { name: 'under', group: 'size' },
      ],
      positional: [{ kind: 'number', label: 'limit' }],
    }),
    sig({ name: 'allof', tests: 'list' }),
    sig({ name: 'anyof', tests: 'list' }),
    sig({ name: 'not', tests: 'one' }),
    sig({ name: 'true' }),
    sig({ name: 'false' }),
    sig({ name: 'valid_notify_method', requires: 'enotify', positional: [{ kind: 'stringlist', label: 'URIs' }] }),
    sig({
      name: 'notify_method_capability',
      requires: 'enotify',
      tags: [COMPARATOR, ...MATCH],
      positional: [{ kind: 'string', label: 'notification URI' }, { kind: 'string', label: 'capability' }, KEYS],
    }),
  ].map((s) => [s.name, s]),
);

/** Well-known names Exim does not have, for a more helpful message than "unknown". */
export const KNOWN_UNSUPPORTED: ReadonlyMap<string, string> = new Map([
  ['reject', 'reject'],
  ['ereject', 'ereject'],
  ['set', 'variables'],
  ['addheader', 'editheader'],
  ['deleteheader', 'editheader'],
  ['include', 'include'],
  ['return', 'include'],
  ['global', 'include'],
  ['setflag', 'imap4flags'],
  ['addflag', 'imap4flags'],
  ['removeflag', 'imap4flags'],
  ['hasflag', 'imap4flags'],
  ['body', 'body'],
  ['date', 'date'],
  ['currentdate', 'date'],
  ['spamtest', 'spamtest'],
  ['virustest', 'virustest'],
  ['ihave', 'ihave'],
  ['mailboxexists', 'mailbox'],
  ['duplicate', 'duplicate'],
  ['error', 'ihave'],
]);

/** Exim's comparators (exim-sieve.md section 3), lower case. */
export const COMPARATORS = new Set(['i;octet', 'i;ascii-casemap', 'en;ascii-casemap', 'i;ascii-numeric']);

/** The headers Exim's `address` test accepts (exim-sieve.md section 3). */
export const ADDRESS_HEADERS = new Set(['from', 'to', 'cc', 'bcc', 'sender', 'resent-from', 'resent-to']);
