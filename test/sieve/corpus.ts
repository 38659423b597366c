/**
 * The validator's corpus: scripts written for this project, each with the
 * verdict tsieved must give and its first diagnostic (line and a piece of the
 * message). The Exim and Pigeonhole agreement tests run the same entries:
 * `stricter` names why tsieved refuses a script Exim accepts, `eximSkip` why
 * `exim -bf` cannot judge an entry at all.
 */

import type { SieveProfile } from '../../src/sieve/index.js';

export type Verdict = 'valid' | 'warning' | 'invalid';

export interface CorpusEntry {
  name: string;
  script: string;
  verdict: Verdict;
  /** First diagnostic: line, a substring of its message, and the column where it matters. */
  first?: { line: number; includes: string; column?: number };
  /** Why tsieved refuses although Exim 4.96 accepts. */
  stricter?: string;
  /** Why `exim -bf` cannot be asked about this entry. */
  eximSkip?: string;
  /** `latin1` when `script` spells raw bytes one character each (invalid UTF-8). */
  encoding?: 'latin1';
  /** Profile settings that differ from the full Exim 4.96 profile. */
  profile?: Partial<SieveProfile>;
}

/** The bytes a client would send for an entry. */
export function bytesOf(e: CorpusEntry): Buffer {
  return Buffer.from(e.script, e.encoding ?? 'utf8');
}

const entries: CorpusEntry[] = [];

function ok(name: string, script: string, extra: Partial<CorpusEntry> = {}): void {
  entries.push({ name, script, verdict: 'valid', ...extra });
}
function warn(name: string, script: string, line: number, includes: string): void {
  entries.push({ name, script, verdict: 'warning', first: { line, includes } });
}
function bad(
  name: string,
  script: string,
  line: number,
  includes: string,
  extra: Partial<CorpusEntry> & { column?: number } = {},
): void {
  const { column, ...rest } = extra;
  entries.push({
    name,
    script,
    verdict: 'invalid',
    first: { line, includes, ...(column === undefined ? {} : { column }) },
    ...rest,
  });
}

const ENOTIFY_SKIP = 'exim -bf always runs with enotify disabled';
const STOP = 'Exim never parses what follows a stop that runs';
const EMPTY_LIST = 'Exim accepts an empty string list';
const ADDRESS_HDR = 'Exim checks address header names only when reached at run time';
const NUMERIC = 'Exim checks the numeric comparator only when a comparison runs';
const REDIRECT = 'Exim only looks for an "@" in redirect addresses';
const VACATION_PATH =
  'Exim fails only for a message that takes the path with two vacations, and the test message does not';
const FOLDER = 'Exim hands such folder names to its pipe, reply or file transports';

// ---- core commands -------------------------------------------------------
ok('keep', 'keep;\n');
ok('discard', 'discard;\n');
ok('stop only', 'stop;\n');
ok('empty script', '');
ok('only comments', '# Sieve filter\n# nothing to do\n');
ok('bracket comment', '/* a comment\n   over lines */ keep;\n');
ok('comment between tokens', 'if /* c */ true /* d */ { keep; }\n');
ok('hash comment after command', 'keep; # done\n');
ok('uppercase commands', 'IF TRUE { KEEP; } ELSE { DISCARD; }\n');
ok('mixed case tags', 'if header :CONTAINS "subject" "x" { keep; }\n');
ok('if elsif else', 'if false { discard; } elsif true { keep; } else { stop; }\n');
ok('many elsif', 'if false { keep; }\nelsif false { keep; }\nelsif false { keep; }\nelse { keep; }\n');
ok('empty blocks', 'if true {} else {}\n');
ok('nested ifs', 'if true {\n  if false {\n    discard;\n  } else {\n    keep;\n  }\n}\n');
ok('stop in block then code', 'if header :is "x-spam" "yes" { discard; stop; }\nkeep;\n');
ok('crlf line ends', 'if true {\r\n  keep;\r\n}\r\n');
ok('header line first', '# Sieve filter\nkeep;\n');
ok('no final newline after command', 'keep;');
ok('tabs as whitespace', 'if\ttrue\t{\tkeep;\t}\n');
ok('utf-8 in strings', 'if header :contains "subject" "Grüße" { keep; }\n');
ok('utf-8 in comments', '# Übersicht – filters\nkeep;\n');
ok('escaped quote in string', 'if header :is "subject" "say \\"hi\\"" { keep; }\n');
ok('backslash any char', 'if header :is "subject" "\\a\\b" { keep; }\n');
ok('newline in quoted string', 'if header :is "subject" "two\nlines" { keep; }\n');
bad('unknown command', 'frobnicate;\n', 1, 'unknown command "frobnicate"');
bad('reject command', 'reject "no";\n', 1, 'reject');
bad('ereject command', 'ereject "no";\n', 1, 'ereject');
bad('set command (variables)', 'set "a" "b";\n', 1, 'variables');
bad('addheader command', 'addheader "X-A" "b";\n', 1, 'editheader');
bad('include command', 'include "other";\n', 1, 'include');
bad('setflag command', 'setflag "\\\\Seen";\n', 1, 'imap4flags');
bad('keep with argument', 'keep "x";\n', 1, 'takes no arguments');
bad('keep with tag', 'keep :flags "x";\n', 1, 'unknown tag ":flags"');
bad('discard with block', 'discard { keep; }\n', 1, 'missing ";" after discard');
bad('missing semicolon', 'keep\ndiscard;\n', 1, 'missing ";" after keep');
bad('missing semicolon at end', 'keep\n', 1, 'missing ";" after keep');
bad('if without block', 'if true;\n', 1, 'if needs a block');
bad('if without test', 'if { keep; }\n', 1, 'if needs one test');
bad('if with test list', 'if (true, false) { keep; }\n', 1, 'if needs one test');
bad('elsif without if', 'elsif true { keep; }\n', 1, 'elsif without a preceding if');
bad('else without if', 'keep;\nelse { keep; }\n', 2, 'else without a preceding if');
bad('else with test', 'if true { keep; } else true { keep; }\n', 1, 'else takes no test', { column: 24 });
bad('unclosed block', 'if true {\n keep;\n', 3, 'missing "}"');
bad(
  'unclosed inner block names where it opened',
  'if true {\n  if false {\n    keep;\n  }\n  if true {\n    discard;\n',
  7,
  'the block opened on line 5 is not closed',
);
bad('extra closing brace', 'keep;\n}\n', 2, 'syntax error');
bad('stray semicolon', 'keep;;\n', 1, 'syntax error');
bad('code after stop', 'stop;\nkeep;\n', 2, 'after "stop"', { stricter: STOP });
bad('garbage after stop', 'stop;\nthis is not sieve\n', 2, 'unknown command "this"', { stricter: STOP });
bad('code after stop in block', 'if true { stop; discard; }\n', 1, 'after "stop"', { stricter: STOP });
bad('identifier starting with digit', '1keep;\n', 1, 'syntax error');
bad('test used as command', 'header "a" "b";\n', 1, 'is a test, not a command');
bad('command used as test', 'if keep { discard; }\n', 1, 'is a command, not a test');

// ---- lexical -----------------------------------------------------------------
bad('unterminated string', 'if header :is "subject" "abc { keep; }\n', 1, 'unterminated string');
bad('unterminated comment', 'keep; /* no end\n', 1, 'unterminated comment');
ok('hash comment at eof', 'keep; # the filter file always ends with a line break');
ok('header only without newline', '# Sieve filter');
bad('multi-line terminator at eof', 'require "vacation";\nvacation text:\nAway.\n.', 4, 'missing ";" after vacation');
bad('lone CR', 'keep;\rdiscard;\n', 1, 'carriage return', {
  stricter: 'RFC 5228 allows CR only before LF; the filter writer would turn it into a line break',
});
bad('NUL byte', 'keep;\n\0', 2, 'NUL', { stricter: 'Exim stops reading the filter at a NUL' });
bad('NUL byte in string', 'if header :is "subject" "a\0b" { keep; }\n', 1, 'NUL');
bad('non-ascii identifier', 'kéep;\n', 1, 'syntax error');
bad('tag with space', 'if header : is "a" "b" { keep; }\n', 1, 'syntax error');
bad(
  'bracket comment after text:',
  'require "vacation";\nvacation text: /* x */\nhi\n.\n;\n',
  2,
  '"text:" must be followed',
);
ok('multi-line string', 'require "vacation";\nvacation text:\nI am away.\nBack soon.\n.\n;\n');
ok('multi-line with comment after text:', 'require "vacation";\nvacation text: # the reason\nI am away.\n.\n;\n');
ok('multi-line dot stuffing', 'require "vacation";\nvacation text:\nAway.\n..and dots\n.\n;\n');
bad('multi-line upper-case TEXT:', 'require "vacation";\nvacation TEXT:\nAway.\n.\n;\n', 2, 'lower case');
bad('multi-line empty', 'require "vacation";\nvacation text:\n.\n;\n', 2, 'empty multi-line string');
bad('multi-line first line dot', 'require "vacation";\nvacation text:\n..dots first\nmore\n.\n;\n', 2, 'first line', {
  stricter: 'Exim 4.96 does not unstuff the first line of text:',
});
bad('multi-line unterminated', 'require "vacation";\nvacation text:\nAway\n', 2, 'unterminated multi-line');
ok('numbers K M G', 'if anyof (size :over 1K, size :over 2M, size :under 3G) { keep; }\n');
ok('plain number', 'if size :over 100 { discard; }\n');
ok('largest number', 'if size :over 18446744073709551615 { discard; }\n');
bad('number too large', 'if size :over 18446744073709551616 { discard; }\n', 1, 'too large');
bad('number with unit too large', 'if size :over 17179869184G { discard; }\n', 1, 'too large');
bad('lower-case k', 'if size :over 100k { discard; }\n', 1, 'upper case');
bad('lower-case m', 'if size :over 1m { discard; }\n', 1, 'upper case');

// ---- require -----------------------------------------------------------------
for (const cap of [
  'comparator-i;ascii-numeric',
  'copy',
  'encoded-character',
  'envelope',
  'fileinto',
  'subaddress',
  'vacation',
]) {
  ok(`require ${cap}`, `require "${cap}";\nkeep;\n`);
}
entries.push({
  name: 'require enotify',
  script: 'require "enotify";\nkeep;\n',
  verdict: 'valid',
  eximSkip: ENOTIFY_SKIP,
});
for (const cap of ['comparator-i;octet', 'comparator-i;ascii-casemap', 'comparator-en;ascii-casemap']) {
  ok(`require implicit ${cap}`, `require "${cap}";\nkeep;\n`);
}
ok('require list', 'require ["fileinto", "copy", "envelope"];\nkeep;\n');
// RFC 5228 section 3.2: any number of requires before the first other command.
// Exim 4.96 reads a further one only right after the previous ";"; the filter
// file merges them (merge-requires.ts), which the exim -bf agreement test runs.
ok('several requires', 'require "fileinto";\nrequire "copy";\nfileinto :copy "a";\n');
ok('two requires then keep', 'require "copy";\nrequire "fileinto";\nkeep;\n');
ok('second require right after the semicolon', 'require "fileinto";require "copy";\nfileinto :copy "a";\n');
ok(
  'second require in upper case right after the semicolon',
  'require "fileinto" ;REQUIRE"copy";\nfileinto :copy "a";\n',
);
ok('second require after a space', 'require "fileinto"; require "copy";\nkeep;\n');
ok('second require after a comment', 'require "fileinto";/* c */require "copy";\nkeep;\n');
ok(
  'requires with comments, lists and repeats',
  '# Sieve filter\nrequire "fileinto";\n# the reply\nrequire ["vacation", "copy"]; /* and again */ require "fileinto";\nfileinto :copy "a";\nvacation "away";\n',
);
ok(
  'requires over several lines each',
  'require [\n  "fileinto",\n  "copy"\n];\nrequire\n  "envelope";\nif envelope :is "from" "a@example.org" { fileinto :copy "a"; }\n',
);
bad(
  'error after several requires keeps its line',
  'require "fileinto";\nrequire "copy";\n\nfileinto :copy "a";\nbogus;\n',
  5,
  'unknown command "bogus"',
);
// Exim decodes the names of requires after the one that requires encoded-character.
ok(
  'encoded require name in a later require',
  'require "encoded-character";\nrequire "${hex:66}ileinto";\nfileinto "a";\n',
);
ok(
  'encoded require name right after the semicolon',
  'require "encoded-character";require ["${hex:66 69}leinto", "${unicode:63}opy"];\nfileinto :copy "a";\n',
);
bad(
  'encoded require name in the require of encoded-character',
  'require ["encoded-character", "${hex:66}ileinto"];\nfileinto "a";\n',
  1,
  'unknown capability "${hex:66}ileinto"',
);
bad(
  'encoded require name before encoded-character',
  'require "${hex:66}ileinto";\nrequire "encoded-character";\nfileinto "a";\n',
  1,
  'unknown capability "${hex:66}ileinto"',
);
bad(
  'encoded require name decoding to an unknown one',
  'require "encoded-character";\nrequire "${hex:46}ileinto";\nkeep;\n',
  2,
  'unknown capability "Fileinto"',
);
for (const ext of [
  'reject',
  'ereject',
  'variables',
  'body',
  'regex',
  'relational',
  'imap4flags',
  'include',
  'date',
  'mailbox',
  'editheader',
  'envelope-auth',
  'ihave',
  'spamtest',
  'duplicate',
  'comparator-i;unicode-casemap',
  'foo',
]) {
  bad(`require unsupported ${ext}`, `require "${ext}";\nkeep;\n`, 1, `"${ext}"`);
}
for (const cap of ['FileInto', 'Fileinto', 'COPY', 'Envelope', 'VACATION', 'Comparator-i;ascii-numeric']) {
  bad(`require miscased ${cap}`, `require "${cap}";\nkeep;\n`, 1, 'case-sensitively');
}
bad('require after command', 'keep;\nrequire "fileinto";\n', 2, 'require is only allowed before');
bad('require in block', 'if true { require "fileinto"; }\n', 1, 'require is only allowed before');
bad('require number', 'require 1;\n', 1, 'must be a string list');
bad('require empty list', 'require [];\nkeep;\n', 1, 'empty string list', { stricter: EMPTY_LIST });
bad('require missing semicolon before if', 'require "fileinto"\nif true { keep; }\n', 1, 'missing ";" after require');
bad('fileinto without require', 'fileinto "a";\n', 1, 'needs require "fileinto"');
bad('envelope without require', 'if envelope :is "from" "a@b.c" { keep; }\n', 1, 'needs require "envelope"');
bad(':copy without require', 'redirect :copy "a@example.org";\n', 1, 'needs require "copy"');
bad(':user without subaddress', 'if address :user "to" "a" { keep; }\n', 1, 'needs require "subaddress"');
bad('vacation without require', 'vacation "away";\n', 1, 'needs require "vacation"');
bad('notify without require', 'notify "mailto:a@example.org";\n', 1, 'needs require "enotify"');
bad(
  'valid_notify_method without require',
  'if valid_notify_method "mailto:a@example.org" { keep; }\n',
  1,
  'needs require "enotify"',
);

// ---- tests ---------------------------------------------------------------------
ok('true false not', 'if not false { keep; }\nif not not true { keep; }\n');
ok('allof anyof', 'if allof (true, not false) { keep; }\nif anyof (false, true) { keep; }\n');
ok('nested allof anyof', 'if allof (anyof (true, false), not anyof (false, false)) { keep; }\n');
bad('empty test list', 'if anyof () { keep; }\n', 1, 'empty test list');
bad('allof without parens', 'if allof true { keep; }\n', 1, 'takes a test list');
bad('not with test list', 'if not (true) { keep; }\n', 1, 'exactly one test');
bad('true with argument', 'if true "x" { keep; }\n', 1, 'takes no arguments');
bad('unknown test', 'if frob "a" { keep; }\n', 1, 'unknown test "frob"');
bad('body test', 'if body :contains "x" { keep; }\n', 1, 'body');
bad('date test', 'if date :is "date" "year" "2024" { keep; }\n', 1, 'date');
bad('currentdate test', 'if currentdate :is "year" "2024" { keep; }\n', 1, 'date');
bad('spamtest test', 'if spamtest :value "ge" "5" { keep; }\n', 1, 'spamtest');
bad('ihave test', 'if ihave "fileinto" { keep; }\n', 1, 'ihave');
bad('missing comma in test list', 'if anyof (true false) { keep; }\n', 1, 'unexpected');
bad('trailing comma in test list', 'if anyof (true, ) { keep; }\n', 1, 'syntax error');

// header
ok('header is', 'if header :is "subject" "hello" { keep; }\n');
ok('header contains list', 'if header :contains ["subject", "x-subject"] ["a", "b"] { keep; }\n');
ok('header matches', 'if header :matches "subject" "*money*" { discard; }\n');
ok('header default match', 'if header "subject" "hello" { keep; }\n');
ok('header comparator octet', 'if header :comparator "i;octet" :is "subject" "Hello" { keep; }\n');
ok('header comparator casemap', 'if header :comparator "i;ascii-casemap" :contains "subject" "x" { keep; }\n');
ok('header comparator en casemap', 'if header :comparator "en;ascii-casemap" :is "subject" "x" { keep; }\n');
ok('header comparator name any case', 'if header :comparator "I;OCTET" :is "subject" "x" { keep; }\n');
ok('header tags any order', 'if header :contains :comparator "i;octet" "subject" "x" { keep; }\n');
ok('header 8-bit name', 'if header :is "x-grüße" "a" { keep; }\n');
ok('header matches escaped star', 'if header :matches "subject" "a\\\\*" { keep; }\n');
bad('header matches trailing backslash', 'if header :matches "subject" "abc\\\\" { keep; }\n', 1, 'lone "\\"', {
  stricter: 'Exim reports a bad pattern only when the match runs',
});
bad('header regex', 'if header :regex "subject" "a.*" { keep; }\n', 1, 'unknown tag ":regex"');
bad('header value', 'if header :value "gt" "x-spam" "5" { keep; }\n', 1, 'unknown tag ":value"');
bad('header count', 'if header :count "gt" "received" "5" { keep; }\n', 1, 'unknown tag ":count"');
bad('header two match types', 'if header :is :contains "subject" "x" { keep; }\n', 1, 'match type already specified');
bad(
  'header comparator twice',
  'if header :comparator "i;octet" :comparator "i;octet" "subject" "x" { keep; }\n',
  1,
  'given twice',
);
bad(
  'header unknown comparator',
  'if header :comparator "i;unicode-casemap" "subject" "x" { keep; }\n',
  1,
  'unknown comparator',
);
bad(
  'header comparator without name',
  'if header :comparator :is "subject" "x" { keep; }\n',
  1,
  'must be followed by a string',
);
bad('header one argument', 'if header "subject" { keep; }\n', 1, 'expects 2 arguments');
bad('header three arguments', 'if header "subject" "a" "b" { keep; }\n', 1, 'expects 2 arguments');
bad('header tag after positional', 'if header "subject" :contains "x" { keep; }\n', 1, 'must come before');
bad('header empty name', 'if header :is "" "x" { keep; }\n', 1, 'empty header name');
bad('header name with colon', 'if header :is "subject:" "x" { keep; }\n', 1, 'invalid header name');
bad('header name with space', 'if header :is "x y" "x" { keep; }\n', 1, 'invalid header name');
bad('header empty key list', 'if header :is "subject" [] { keep; }\n', 1, 'empty string list', {
  stricter: EMPTY_LIST,
});
bad('header number argument', 'if header :is "subject" 5 { keep; }\n', 1, 'must be a string list');
bad('header missing comma in list', 'if header :is ["a" "b"] "x" { keep; }\n', 1, 'missing "," between the strings');

// address
for (const h of ['from', 'to', 'cc', 'bcc', 'sender', 'resent-from', 'resent-to', 'From', 'RESENT-TO']) {
  ok(`address header ${h}`, `if address :is "${h}" "a@example.org" { keep; }\n`);
}
for (const part of ['all', 'localpart', 'domain']) {
  ok(`address :${part}`, `if address :${part} :is "from" "x" { keep; }\n`);
}
ok('address :user with subaddress', 'require "subaddress";\nif address :user "to" "a" { keep; }\n');
warn(
  'address :detail never matches in Exim',
  'require "subaddress";\nif address :user "to" "a" { keep; }\nif address :detail "to" "b" { keep; }\n',
  3,
  'never matches :detail',
);
warn(
  'envelope from :detail never matches in Exim',
  'require ["envelope", "subaddress"];\nif envelope :detail "from" "x" { keep; }\n',
  2,
  'never matches :detail',
);
bad('address list-id', 'if address :is "list-id" "x" { keep; }\n', 1, 'only reads From');
bad(
  'address list-id after matching from',
  'if address :is ["from", "list-id"] "alice@example.org" { keep; }\n',
  1,
  'only reads From',
  { stricter: ADDRESS_HDR },
);
bad('address subject', 'if address :contains ["from", "subject"] "x" { keep; }\n', 1, 'only reads From', {
  stricter: ADDRESS_HDR,
});
bad('address two parts', 'if address :localpart :domain "from" "x" { keep; }\n', 1, 'address part already specified');
bad('address unknown part', 'if address :host "from" "x" { keep; }\n', 1, 'unknown tag ":host"');

// envelope
ok('envelope from', 'require "envelope";\nif envelope :is "from" "a@example.org" { keep; }\n');
ok('envelope to domain', 'require "envelope";\nif envelope :domain :is "to" "example.org" { keep; }\n');
ok('envelope part case', 'require "envelope";\nif envelope "FROM" "a@example.org" { keep; }\n');
ok('envelope detail', 'require ["envelope", "subaddress"];\nif envelope :detail "to" "lists" { keep; }\n');
bad('envelope auth part', 'require "envelope";\nif envelope :is "auth" "x" { keep; }\n', 2, 'envelope part must be');
bad(
  'envelope unknown part',
  'require "envelope";\nif envelope :is "x-orig" "x" { keep; }\n',
  2,
  'envelope part must be',
);

// exists
ok('exists', 'if exists "x-spam-flag" { discard; }\n');
ok('exists list', 'if exists ["from", "date"] { keep; }\n');
bad('exists empty list', 'if exists [] { discard; }\n', 1, 'empty string list', { stricter: EMPTY_LIST });
bad('exists bad name', 'if exists "x: y" { discard; }\n', 1, 'invalid header name');
bad('exists no argument', 'if exists { discard; }\n', 1, 'expects 1 argument');

// size
ok('size under', 'if size :under 10K { keep; }\n');
bad('size without tag', 'if size 100 { keep; }\n', 1, 'needs :over or :under');
bad('size both tags', 'if size :over :under 100 { keep; }\n', 1, 'conflicts');
bad('size string', 'if size :over "100" { keep; }\n', 1, 'must be a number');
bad('size no number', 'if size :over { keep; }\n', 1, 'expects 1 argument');

// comparators and match types
ok(
  'numeric comparator is',
  'require "comparator-i;ascii-numeric";\nif header :comparator "i;ascii-numeric" :is "x-n" "5" { keep; }\n',
);
bad(
  'numeric comparator without require',
  'if header :comparator "i;ascii-numeric" :is "x-n" "5" { keep; }\n',
  1,
  'needs require "comparator-i;ascii-numeric"',
  { stricter: NUMERIC },
);
bad(
  'numeric comparator contains',
  'require "comparator-i;ascii-numeric";\nif header :comparator "i;ascii-numeric" :contains "x-n" "5" { keep; }\n',
  2,
  'only works with :is',
  { stricter: NUMERIC },
);
bad(
  'numeric comparator matches',
  'require "comparator-i;ascii-numeric";\nif header :comparator "i;ascii-numeric" :matches "x-n" "5*" { keep; }\n',
  2,
  'only works with :is',
  { stricter: NUMERIC },
);
ok(
  'numeric comparator default match',
  'require "comparator-i;ascii-numeric";\nif header :comparator "i;ascii-numeric" "x-n" "5" { keep; }\n',
);

// ---- redirect --------------------------------------------------------------------
ok('redirect', 'redirect "someone@example.org";\n');
ok('redirect copy', 'require "copy";\nredirect :copy "someone@example.org";\n');
ok('redirect plus address', 'redirect "some.one+tag@mail.example.org";\n');
ok('redirect quoted local part', 'redirect "\\"john smith\\"@example.org";\n');
ok('redirect address literal', 'redirect "postmaster@[192.0.2.1]";\n');
ok('redirect two commands', 'redirect "a@example.org";\nredirect "b@example.org";\n');
bad('redirect no at', 'redirect "someone";\n', 1, 'redirect needs one mail address');
bad('redirect only at', 'redirect "x@";\n', 1, 'redirect needs one mail address', { stricter: REDIRECT });
bad('redirect two addresses', 'redirect "a@example.org, b@example.org";\n', 1, 'redirect needs one mail address', {
  stricter: REDIRECT,
});
bad('redirect display name', 'redirect "Bob <bob@example.org>";\n', 1, 'redirect needs one mail address', {
  stricter: REDIRECT,
});
bad('redirect space in local part', 'redirect "not valid@example.org";\n', 1, 'redirect needs one mail address', {
  stricter: REDIRECT,
});
bad('redirect bad domain', 'redirect "a@exa_mple..org";\n', 1, 'redirect needs one mail address', {
  stricter: REDIRECT,
});
bad('redirect list', 'redirect ["a@example.org"];\n', 1, 'must be a string, not a string list');
bad('redirect no argument', 'redirect;\n', 1, 'expects 1 argument');
ok('redirect pipe-looking address is an address', 'redirect "|cmd@example.org";\n');
bad('redirect unknown tag', 'redirect :create "a@example.org";\n', 1, 'unknown tag ":create"');
{
  const many = Array.from({ length: 11 }, (_, i) => `redirect "u${i}@example.org";`).join('\n') + '\n';
  bad('too many redirects', many, 11, 'more than 10 redirects', {
    stricter: 'tsieved limits redirects (max_redirects)',
  });
}

// ---- fileinto ---------------------------------------------------------------------
ok('fileinto', 'require "fileinto";\nfileinto "Junk";\n');
ok('fileinto nested folder', 'require "fileinto";\nfileinto "lists/exim";\n');
ok('fileinto copy', 'require ["fileinto", "copy"];\nfileinto :copy "Archive";\n');
ok('fileinto utf-8 folder', 'require "fileinto";\nfileinto "Überweisungen";\n');
ok('fileinto INBOX', 'require "fileinto";\nfileinto "INBOX";\n');
bad('fileinto pipe', 'require "fileinto";\nfileinto "|/usr/bin/touch /tmp/x";\n', 2, 'run a command', {
  stricter: FOLDER,
});
bad('fileinto absolute', 'require "fileinto";\nfileinto "/etc/passwd";\n', 2, 'absolute paths', { stricter: FOLDER });
bad('fileinto reply', 'require "fileinto";\nfileinto ">x";\n', 2, 'autoreply', { stricter: FOLDER });
bad('fileinto dotdot segment', 'require "fileinto";\nfileinto "a/../../b";\n', 2, '".." is not allowed');
bad('fileinto dotdot', 'require "fileinto";\nfileinto "..";\n', 2, '".." is not allowed');
bad('fileinto empty', 'require "fileinto";\nfileinto "";\n', 2, 'empty folder name');
bad('fileinto trailing slash', 'require "fileinto";\nfileinto "maildir/";\n', 2, 'must not end with "/"', {
  stricter: FOLDER,
});
bad('fileinto hidden', 'require "fileinto";\nfileinto ".forward";\n', 2, 'must not start with "."', {
  stricter: 'strict folder policy refuses hidden files',
});
bad('fileinto tilde', 'require "fileinto";\nfileinto "~root/x";\n', 2, 'must not start with "~"', {
  stricter: 'strict folder policy refuses "~"',
});
bad('fileinto control char', 'require "fileinto";\nfileinto "a\tb";\n', 2, 'control characters', {
  stricter: 'control characters in file names',
});
bad('fileinto list', 'require "fileinto";\nfileinto ["a", "b"];\n', 2, 'must be a string');
bad('fileinto create', 'require "fileinto";\nfileinto :create "a";\n', 2, 'unknown tag ":create"');
bad('fileinto flags', 'require "fileinto";\nfileinto :flags "\\\\Seen" "a";\n', 2, 'unknown tag ":flags"');
bad(
  'fileinto encoded pipe',
  'require ["fileinto", "encoded-character"];\nfileinto "${hex:7c}cmd";\n',
  2,
  'run a command',
  { stricter: FOLDER },
);

// ---- encoded-character ----------------------------------------------------------------
ok('encoded hex', 'require "encoded-character";\nif header :is "subject" "${hex:48 49}" { keep; }\n');
ok('encoded unicode', 'require "encoded-character";\nif header :is "subject" "${unicode:263a}" { keep; }\n');
ok('encoded malformed left alone', 'require "encoded-character";\nif header :is "subject" "${hex:zz}" { keep; }\n');
ok('encoded without require is literal', 'if header :is "subject" "${unicode:110000}" { keep; }\n');
bad(
  'encoded-character with empty string crashes Exim',
  'require "encoded-character";\nif header :is "subject" "" { keep; }\n',
  2,
  'Exim 4.96 crashes',
);
bad(
  'encoded-character with empty string in dead branch',
  'require ["encoded-character", "fileinto"];\nif false { fileinto ""; }\n',
  2,
  'Exim 4.96 crashes',
);
ok('empty string without encoded-character', 'if header :is "subject" "" { keep; }\n');
bad(
  'encoded unicode out of range',
  'require "encoded-character";\nif header :is "subject" "${unicode:110000}" { keep; }\n',
  2,
  'outside the Unicode range',
);
bad(
  'encoded surrogate',
  'require "encoded-character";\nif header :is "subject" "${UNICODE:D800}" { keep; }\n',
  2,
  'outside the Unicode range',
);
// Exim checks each ${unicode:} item's range as soon as it reads it, before it
// finds that the sequence is malformed (sieve.c unicode_decode).
bad(
  'encoded out of range then junk',
  'require "encoded-character";\nif header :is "subject" "${unicode:110000x}" { keep; }\n',
  2,
  'outside the Unicode range',
  { column: 36 },
);
bad(
  'encoded surrogate then junk',
  'require "encoded-character";\nif header :is "subject" "${unicode:d800 zz}" { keep; }\n',
  2,
  'outside the Unicode range',
);
bad(
  'encoded seven digits then junk',
  'require "encoded-character";\nif header :is "subject" "${unicode:FFFFFFFZ}" { keep; }\n',
  2,
  'outside the Unicode range',
);
bad(
  'encoded seven significant digits',
  'require "encoded-character";\nif header :is "subject" "${unicode:1000041}" { keep; }\n',
  2,
  'outside the Unicode range',
);
ok(
  'encoded seven digits with leading zeros',
  'require "encoded-character";\nif header :is "subject" "${unicode:0000041}" { keep; }\n',
);
bad(
  'encoded out of range in text: in a dead branch',
  'require "encoded-character";\nif false { if header :is "subject" text:\n${unicode:41 110000,}\n.\n { keep; } }\n',
  3,
  'outside the Unicode range',
  { column: 14 },
);
bad(
  'encoded out of range in a list',
  'require "encoded-character";\nif header :is "subject" ["a", "${unicode:110000 x}"] { keep; }\n',
  2,
  'outside the Unicode range',
  { column: 42 },
);
ok(
  'encoded out of range after a malformed item',
  'require "encoded-character";\nif header :is "subject" "${unicode:41x 110000}" { keep; }\n',
);
bad(
  'encoded above FFFF',
  'require "encoded-character";\nif header :is "subject" "${unicode:1F600}" { keep; }\n',
  2,
  'above FFFF wrongly',
  {
    stricter:
      'Exim 4.96 accepts ${unicode:} above FFFF but encodes it wrongly (verified: it does not match the character)',
  },
);
// A raw line break inside a quoted string or text: is CR LF for Exim; its
// decoders take only SP, TAB and LF as blanks, so the sequence stays literal.
bad(
  'encoded hex with raw line break in redirect',
  'require "encoded-character";\nredirect "bob${hex:40\n}example.org";\n',
  2,
  'redirect needs one mail address',
);
bad(
  'encoded hex with raw line break in text: redirect',
  'require "encoded-character";\nredirect text:\nbob${hex:40\n}example.org\n.\n;\n',
  2,
  'redirect needs one mail address',
);
bad(
  'encoded hex with raw line break in header name',
  'require "encoded-character";\nif header :is "x${hex:41\n}" "y" { keep; }\n',
  2,
  'invalid header name',
);
bad(
  'encoded hex with raw line break in envelope part',
  'require ["encoded-character", "envelope"];\nif envelope "${hex:66 72 6f 6d\n}" "y" { keep; }\n',
  2,
  'envelope part must be',
);
bad(
  'encoded hex with raw line break in comparator',
  'require "encoded-character";\nif header :comparator "${hex:69\n};octet" "subject" "y" { keep; }\n',
  2,
  'unknown comparator',
);
bad(
  'encoded hex with raw line break in exists',
  'require "encoded-character";\nif exists "x${hex:41\n}" { keep; }\n',
  2,
  'invalid header name',
);
bad(
  'encoded hex with raw line break in vacation from',
  'require ["encoded-character", "vacation"];\nvacation :from "bob${hex:40\n}example.org" "away";\n',
  2,
  ':from must be a mail address',
);
bad(
  'encoded hex with raw line break in folder',
  'require ["encoded-character", "fileinto"];\nfileinto "${hex:41\n}";\n',
  2,
  'control characters',
  { stricter: 'Exim files into a folder whose name holds CR LF' },
);
ok(
  'encoded unicode with raw line break stays literal',
  'require "encoded-character";\nif header :is "subject" "${unicode:41\n110000}" { keep; }\n',
);
ok(
  'encoded hex with raw line break in mime reason stays literal',
  'require ["encoded-character", "vacation"];\nvacation :mime "${hex:e9\n}";\n',
);
ok(
  'encoded hex with raw line break before matches backslash',
  'require "encoded-character";\nif header :matches "subject" "q${hex:5c\n}" { keep; }\n',
);
ok(
  'encoded hex with escaped line break decodes',
  'require "encoded-character";\nredirect "bob${hex:40\\\n}example.org";\n',
);

// ---- vacation -------------------------------------------------------------------------
ok('vacation minimal', 'require "vacation";\nvacation "I am away";\n');
ok(
  'vacation all tags',
  'require "vacation";\nvacation :days 7 :subject "Away" :from "me@example.org" :addresses ["me@example.org", "alias@example.org"] "I am away";\n',
);
ok('vacation from display name', 'require "vacation";\nvacation :from "Me Myself <me@example.org>" "away";\n');
ok(
  'vacation mime',
  'require "vacation";\nvacation :mime text:\nContent-Type: text/plain; charset=us-ascii\n\nAway.\n.\n;\n',
);
ok('vacation days 1 and 31', 'require "vacation";\nif true { vacation :days 1 "a"; }\n');
ok('vacation utf-8 reason', 'require "vacation";\nvacation "Je suis absent – à bientôt";\n');
ok('vacation in branch', 'require "vacation";\nif header :contains "subject" "x" { vacation "away"; }\n');
warn('vacation days over 31', 'require "vacation";\nvacation :days 60 "away";\n', 2, 'outside 1-31');
warn('vacation days zero', 'require "vacation";\nvacation :days 0 "away";\n', 2, 'Exim will use 1');
warn(
  'vacation addresses not address',
  'require "vacation";\nvacation :addresses "nobody" "away";\n',
  2,
  'not a mail address',
);
bad('vacation handle', 'require "vacation";\nvacation :handle "h1" "away";\n', 2, ':handle is not supported', {
  stricter: 'Exim 4.96 writes :handle over :from',
});
bad(
  'vacation from invalid',
  'require "vacation";\nvacation :from "not an address" "away";\n',
  2,
  ':from must be a mail address',
);
bad('vacation from empty', 'require "vacation";\nvacation :from "" "away";\n', 2, ':from must be a mail address');
bad(
  'vacation from with trailing no-break space',
  'require "vacation";\nvacation :from "bob@example.org\u00a0" "away";\n',
  2,
  'invalid domain',
);
bad(
  'vacation from with trailing ideographic space in angles',
  'require "vacation";\nvacation :from "Bob <bob@example.org\u3000>" "away";\n',
  2,
  'invalid domain',
);
bad(
  'vacation from with leading no-break space',
  'require "vacation";\nvacation :from "\u00a0bob@example.org" "away";\n',
  2,
  'invalid local part',
  {
    stricter:
      'Exim keeps the U+00A0 as part of the local part, so the reply would come from another address than the one written',
  },
);
bad(
  'vacation from with a line break',
  'require "vacation";\nvacation :from "Bob\n<bob@example.org>" "away";\n',
  2,
  'line breaks are not allowed',
  {
    stricter: "Exim writes :from into the reply's From: header as it is; the line break would end the headers there",
  },
);
bad(
  'vacation from ending in a line break',
  'require "vacation";\nvacation :from "bob@example.org\n" "away";\n',
  2,
  'line breaks are not allowed',
  {
    stricter: "Exim writes :from into the reply's From: header as it is; the line break would end the headers there",
  },
);
ok(
  'encoded characters: many unclosed ${hex: stay literal',
  `require "encoded-character";\nif header :is "subject" "${'${hex:'.repeat(20_000)}" { keep; }\n`,
);
bad('vacation mime 8-bit', 'require "vacation";\nvacation :mime "Grüße";\n', 2, '7-bit');
bad('vacation no reason', 'require "vacation";\nvacation :days 3;\n', 2, 'expects 1 argument');
bad('vacation seconds', 'require "vacation";\nvacation :seconds 60 "away";\n', 2, 'unknown tag ":seconds"');
bad('vacation days string', 'require "vacation";\nvacation :days "7" "away";\n', 2, 'must be followed by a number');
// One vacation per execution path: Exim fails only when a second one runs.
bad(
  'vacation twice',
  'require "vacation";\nvacation "a";\nvacation "b";\n',
  3,
  'a second vacation can run for the same message (after the one on line 2)',
  { column: 1 },
);
ok('vacation in both branches of if/else', 'require "vacation";\nif true { vacation "a"; } else { vacation "b"; }\n');
ok(
  'vacation one per branch of an elsif chain',
  'require "vacation";\nif header :contains "subject" "a" { vacation "a"; }\nelsif header :contains "subject" "b" { vacation "b"; }\nelse { vacation "c"; }\n',
);
ok(
  'vacation switched off with if false (Roundcube) next to another',
  'require ["vacation", "fileinto"];\n# rule:[Out of office]\nif false # true\n{\n\tvacation :days 1 :subject "Away" "I am away";\n}\n# rule:[auto reply]\nif header :contains "subject" "ping"\n{\n\tvacation :days 1 "pong";\n}\n',
);
ok(
  'vacation after a branch that stops',
  'require "vacation";\nif header :contains "subject" "x" { vacation "a"; stop; }\nvacation "b";\n',
);
ok('vacation after if not true', 'require "vacation";\nif not true { vacation "a"; }\nvacation "b";\n');
ok(
  'vacation after anyof of false tests',
  'require "vacation";\nif anyof (false, not true) { vacation "a"; }\nvacation "b";\n',
);
ok('vacation after else of if true', 'require "vacation";\nif true { keep; } else { vacation "a"; }\nvacation "b";\n');
bad(
  'vacation after a branch that may run one',
  'require "vacation";\nif header :contains "subject" "x" { vacation "a"; }\nvacation "b";\n',
  3,
  'after the one on line 2',
  { stricter: VACATION_PATH },
);
bad(
  'vacation after if true',
  'require "vacation";\nif true { vacation "a"; }\nvacation "b";\n',
  3,
  'a second vacation can run',
);
bad(
  'vacation in a nested branch after one in the outer block',
  'require "vacation";\nvacation "a";\nif size :over 1K { if true { vacation "b"; } }\n',
  3,
  'after the one on line 2',
  { stricter: VACATION_PATH },
);
bad(
  'vacation after an elsif chain whose last branch runs one',
  'require "vacation";\nif false { keep; } elsif exists "x" { keep; } else { vacation "a"; }\nvacation "b";\n',
  3,
  'a second vacation',
);
bad(
  'vacation twice in one branch',
  'require "vacation";\nif exists "x" { vacation "a"; vacation "b"; }\n',
  2,
  'a second vacation',
  { column: 31, stricter: VACATION_PATH },
);
ok('vacation twice in a branch that never runs', 'require "vacation";\nif false { vacation "a"; vacation "b"; }\n');
// RFC 5230 section 4's examples (those without other extensions).
ok(
  'RFC 5230 example: vacation in if and else',
  'require "vacation";\nif header :contains "subject" "cyrus" {\n    vacation "I\'m out -- send mail to cyrus-bugs";\n} else {\n    vacation "I\'m out -- call me at +1 304 555 0123";\n}\n',
);
ok(
  'RFC 5230 example: redirect or vacation',
  'require "vacation";\nif header :contains "from" "boss@example.edu" {\n    redirect "pleeb@xanadu.example.edu";\n} else {\n    vacation "Sorry, I\'m away, I\'ll read your message later.";\n}\n',
);
ok(
  'RFC 5230 example: days and addresses',
  'require "vacation";\nvacation :days 23 :addresses ["tjs@example.edu",\n                              "ts4z@landru.example.edu"]\n   "I\'m away until October 19.\n   If it\'s an emergency, call 911, I guess." ;\n',
);
bad('vacation days lowercase k', 'require "vacation";\nvacation :days 1k "away";\n', 2, 'upper case');

// ---- enotify -------------------------------------------------------------------------
const en = (name: string, script: string): void => {
  entries.push({ name, script, verdict: 'valid', eximSkip: ENOTIFY_SKIP });
};
const enBad = (name: string, script: string, line: number, includes: string): void => {
  entries.push({ name, script, verdict: 'invalid', first: { line, includes }, eximSkip: ENOTIFY_SKIP });
};
en('notify mailto', 'require "enotify";\nnotify "mailto:alert@example.org";\n');
en(
  'notify all tags',
  'require "enotify";\nnotify :from "me@example.org" :importance "1" :message "New mail" "mailto:alert@example.org";\n',
);
en('notify two recipients', 'require "enotify";\nnotify "mailto:a@example.org%2Cb@example.org";\n');
en('valid_notify_method', 'require "enotify";\nif valid_notify_method "mailto:a@example.org" { keep; }\n');
en(
  'notify_method_capability',
  'require "enotify";\nif notify_method_capability "mailto:a@example.org" "online" "yes" { keep; }\n',
);
enBad(
  'notify options',
  'require "enotify";\nnotify :options ["x"] "mailto:a@example.org";\n',
  2,
  ':options is not supported',
);
enBad(
  'notify importance 4',
  'require "enotify";\nnotify :importance "4" "mailto:a@example.org";\n',
  2,
  ':importance must be',
);
enBad(
  'notify importance high',
  'require "enotify";\nnotify :importance "high" "mailto:a@example.org";\n',
  2,
  ':importance must be',
);
enBad('notify MAILTO', 'require "enotify";\nnotify "MAILTO:a@example.org";\n', 2, 'lower case');
enBad('notify xmpp', 'require "enotify";\nnotify "xmpp:a@example.org";\n', 2, 'unknown notification method');
enBad('notify subject parameter', 'require "enotify";\nnotify "mailto:a@example.org?subject=Hi";\n', 2, 'mis-parses');
enBad('notify bad encoding', 'require "enotify";\nnotify "mailto:a%zz@example.org";\n', 2, 'invalid %-encoding');
enBad('notify empty mailto', 'require "enotify";\nnotify "mailto:";\n', 2, 'no recipient');
enBad('notify bad recipient', 'require "enotify";\nnotify "mailto:nobody";\n', 2, 'invalid recipient');
enBad(
  'notify method old syntax',
  'require "enotify";\nnotify :method "mailto:a@example.org";\n',
  2,
  'unknown tag ":method"',
);
enBad(
  'notify from invalid',
  'require "enotify";\nnotify :from "x" "mailto:a@example.org";\n',
  2,
  ':from must be a mail address',
);

// ---- input --------------------------------------------------------------------------
ok('byte order mark is dropped', '\ufeffkeep;\n');
bad('byte order mark then error', '\ufefffrob;\n', 1, 'unknown command "frob"');

bad('invalid UTF-8 byte', 'keep;\nif header :is "subject" "caf\xe9" { keep; }\n', 2, 'invalid UTF-8', {
  encoding: 'latin1',
  stricter: 'RFC 5228 section 8.1: scripts are UTF-8; Exim does not check',
});
bad('overlong UTF-8', '# \xc0\xaf\nkeep;\n', 1, 'invalid UTF-8', {
  encoding: 'latin1',
  stricter: 'RFC 5228 section 8.1: scripts are UTF-8; Exim does not check',
});
bad('truncated UTF-8 at end', 'keep; # \xe2\x82', 1, 'invalid UTF-8', {
  encoding: 'latin1',
  stricter: 'RFC 5228 section 8.1: scripts are UTF-8; Exim does not check',
});
ok('valid 4-byte UTF-8', 'if header :contains "subject" "\u{1F600}" { keep; }\n');

// ---- limits ---------------------------------------------------------------------------
{
  const deep = 'if true {\n'.repeat(70) + 'keep;\n' + '}\n'.repeat(70);
  bad('nesting over 64', deep, 65, 'nest deeper than the limit', { stricter: 'tsieved limits nesting (max_nesting)' });
  const ok60 = 'if true {\n'.repeat(30) + 'keep;\n' + '}\n'.repeat(30);
  ok('nesting 30', ok60);
  const nots = 'if ' + 'not '.repeat(100) + 'true { keep; }\n';
  bad('deep not chain', nots, 1, 'deeper than the limit', { stricter: 'tsieved limits nesting (max_nesting)' });
}

// ---- more edges, checked against exim4 -bf ----------------------------------------
ok('space before semicolon', 'keep ;\n');
ok('no space before block', 'if header :is "subject" "x"{keep;}\n');
ok('tag right after identifier', 'if header:is "subject" "b" {}\n');
ok('test list without space', 'if anyof(true){}\n');
ok('upper-case tag copy', 'require "copy";\nredirect :COPY "a@example.org";\n');
ok('comment inside list', 'if header :is ["a" /* x */, "b"] "c" {}\n');
ok('size zero', 'if size :over 0 {}\n');
ok('folder with dots', 'require "fileinto";\nfileinto "INBOX.Sent";\n');
ok('redirect localhost', 'redirect "user@localhost";\n');
ok('redirect ipv6 literal', 'redirect "a@[IPv6:::1]";\n');
ok('redirect quoted with escaped quote', 'redirect "\\"a\\\\\\"b\\"@example.org";\n');
ok('else after comment', 'if true {}\n# c\nelsif true {}\n');
ok('code right after block', 'if true {keep;}keep;\n');
ok('multi-line key', 'if header :contains "subject" text:\nabc\n.\n{}\n');
ok('multi-line in list', 'if header :is "Subject" ["a", "b", text:\nc\n.\n] {}\n');
ok('multi-line trailing blanks after text:', 'if header :is "a" text:   \nx\n.\n {}\n');
ok('multi-line dot with spaces is content', 'if header :is "a" text:\nx\n.  \n.\n {}\n');
bad('multi-line dot with space does not end', 'if header :is "a" text:\nx\n. \n {}\n', 1, 'unterminated multi-line');
ok('encoded empty hex left alone', 'require "encoded-character";\nif header :is "a" "${hex:}" {}\n');
ok('encoded unicode leading zeros', 'require "encoded-character";\nif header :is "a" "${unicode:0000000041}" {}\n');
ok('encoded unicode D7FF', 'require "encoded-character";\nif header :is "a" "${unicode:D7FF}" {}\n');
bad(
  'encoded unicode huge',
  'require "encoded-character";\nif header :is "a" "${unicode:FFFFFFFFFFFFFFFFFF}" {}\n',
  2,
  'outside the Unicode range',
);
ok('vacation from quoted display name', 'require "vacation";\nvacation :from "\\"Me\\" <me@example.org>" "x";\n');
ok('vacation from angle only', 'require "vacation";\nvacation :from "<me@example.org>" "x";\n');
ok('vacation from utf-8 display name', 'require "vacation";\nvacation :from "Müller <me@example.org>" "x";\n');
ok('vacation utf-8 subject', 'require "vacation";\nvacation :subject "Grüße" "x";\n');
ok('vacation mime ascii', 'require "vacation";\nvacation :mime "Subject: x\\n\\nbody";\n');
bad(
  'vacation from special in display name',
  'require "vacation";\nvacation :from "Mül]ler <me@example.org>" "x";\n',
  2,
  'invalid display name',
);
ok('vacation from empty quoted display name', 'require "vacation";\nvacation :from "\\"\\" <me@example.org>" "x";\n');
bad(
  'vacation from address literal in angle brackets',
  'require "vacation";\nvacation :from "<bob@[192.0.2.1]>" "away";\n',
  2,
  'domain literals not allowed',
);
bad(
  'vacation from IPv6 literal in angle brackets',
  'require "vacation";\nvacation :from "Bob <bob@[IPv6:2001:db8::1]>" "away";\n',
  2,
  'domain literals not allowed',
);
ok('vacation from bare address literal', 'require "vacation";\nvacation :from "bob@[192.0.2.1]" "away";\n');
ok(
  'vacation from bare IPv6 literal lower-case tag',
  'require "vacation";\nvacation :from "bob@[ipv6:2001:db8::1]" "away";\n',
);
ok(
  'vacation from quoted local part with angle bracket',
  'require "vacation";\nvacation :from "X <\\"a>b\\"@example.org>" "away";\n',
);
bad('vacation from comment', 'require "vacation";\nvacation :from "bob@example.org (Bob)" "away";\n', 2, 'comments', {
  stricter: 'tsieved does not parse RFC 5322 comments',
});
bad(
  'vacation from source route',
  'require "vacation";\nvacation :from "Bob <@relay.example:bob@example.org>" "away";\n',
  2,
  'source routes',
  { stricter: 'obsolete RFC 822 source routes' },
);
bad(
  'vacation from comma in display name',
  'require "vacation";\nvacation :from "Smith, Bob <me@example.org>" "x";\n',
  2,
  'invalid display name',
);
ok('vacation from dotted display name', 'require "vacation";\nvacation :from "J. Smith <me@example.org>" "x";\n');
bad(
  'vacation from trailing dot local part',
  'require "vacation";\nvacation :from "a.@example.org" "x";\n',
  2,
  ':from must be a mail address',
  { stricter: 'Exim accepts obsolete RFC 822 local parts' },
);
bad('vacation subject twice', 'require "vacation";\nvacation :subject "a" :subject "b" "x";\n', 2, 'given twice', {
  stricter: 'Exim takes the last of repeated vacation tags',
});
bad('vacation addresses empty', 'require "vacation";\nvacation :addresses [] "x";\n', 2, 'empty string list', {
  stricter: EMPTY_LIST,
});
bad('size T suffix', 'if size :under 16777215T {}\n', 1, 'unexpected');
bad('exists empty name', 'if exists "" {}\n', 1, 'empty header name', {
  stricter: 'Exim checks exists names only at run time',
});
bad('matches trailing backslash not run', 'if header :matches "x-none" "x\\\\" {}\n', 1, 'lone "\\"', {
  stricter: 'Exim reports a bad pattern only when the match runs',
});
ok('matches escaped backslash at end', 'if header :matches "subject" "x\\\\\\\\" {}\n');
ok('require duplicate names', 'require ["fileinto", "fileinto"];\nfileinto "a";\n');
ok('upper-case STOP', 'STOP;\n');
ok(
  'numeric comparator leading zero',
  'require "comparator-i;ascii-numeric";\nif header :comparator "i;ascii-numeric" "a" "07" {}\n',
);

// ---- where errors are reported -----------------------------------------------------
// At the mistake itself, in characters (code points), never past the user's text.
bad(
  'list missing string after comma',
  'require ["fileinto",\n         "copy",\n         fileinto];\nkeep;\n',
  3,
  'expected string',
  { column: 10 },
);
bad('list missing comma', 'if header :is ["a" "b"] "x" {\n  keep;\n}\n', 1, 'missing ","', { column: 20 });
bad('list trailing comma', 'if header :is ["a",\n   ] "x" {\n  keep;\n}\n', 2, 'expected string', { column: 4 });
bad('list unterminated string', 'if header :is ["a", "b\n', 1, 'unterminated string', { column: 21 });
bad('list bad item', 'if header :is ["a", 1] "x" { keep; }\n', 1, 'expected string', { column: 21 });
bad(
  'missing semicolon before next command',
  'require "fileinto";\nkeep\nfileinto "a";\n',
  2,
  'missing ";" after keep',
  { column: 5 },
);
bad('missing semicolon after redirect', 'redirect "a@example.org"\nkeep;\n', 1, 'missing ";" after redirect', {
  column: 25,
});
bad('missing semicolon before comment', 'keep # done\ndiscard;\n', 1, 'missing ";" after keep', { column: 5 });
bad('missing semicolon before closing brace', 'if true {\n  keep\n}\n', 2, 'missing ";" after keep', { column: 7 });
bad('missing block at end', 'if true', 1, 'needs a block', { column: 8 });
bad('missing semicolon at end without newline', 'keep;\ndiscard', 2, 'missing ";" after discard', { column: 8 });
bad('unclosed block at end without newline', 'keep;\nif true {', 2, 'missing "}"', { column: 10 });
bad(
  'column after astral character',
  'if header :is "\u{1F600}" "x" { fileinto "a"; }\n',
  1,
  'needs require "fileinto"',
  { column: 25 },
);
bad('column of syntax error after astral character', 'if header :is "\u{1F600}" "x" { keep; ; }\n', 1, 'syntax error', {
  column: 31,
});

// ---- configured limits and policies -------------------------------------------------
bad(
  'script over size limit',
  'keep;\n# padding padding padding padding padding padding\n',
  1,
  'more than the limit of 40',
  {
    profile: { maxScriptBytes: 40 },
    stricter: 'storage.max_script_bytes (Exim defers files over 1 MiB; -bf has no limit)',
  },
);
ok('script at size limit', 'keep;\n', { profile: { maxScriptBytes: 6 } });
bad(
  'nesting over a configured limit of 2',
  'if true {\n if true {\n  if true { keep; }\n }\n}\n',
  3,
  'deeper than the limit of 2',
  { profile: { maxNesting: 2 }, stricter: 'sieve.max_nesting' },
);
bad(
  'redirects over a configured limit of 1',
  'redirect "a@example.org";\nredirect "b@example.org";\n',
  2,
  'more than 1 redirects',
  { profile: { maxRedirects: 1 }, stricter: 'sieve.max_redirects' },
);
ok('relative policy allows hidden folder', 'require "fileinto";\nfileinto ".Archive/2026";\n', {
  profile: { fileintoPolicy: 'relative' },
});
bad('relative policy still refuses pipes', 'require "fileinto";\nfileinto "|cmd";\n', 2, 'run a command', {
  profile: { fileintoPolicy: 'relative' },
  stricter: FOLDER,
});
bad('relative policy still refuses absolute paths', 'require "fileinto";\nfileinto "/tmp/x";\n', 2, 'absolute paths', {
  profile: { fileintoPolicy: 'relative' },
  stricter: FOLDER,
});
bad('vacation not enabled at this site', 'require "vacation";\nvacation "away";\n', 1, 'not enabled on this server', {
  profile: { extensions: ['copy', 'envelope', 'fileinto'] },
  stricter: 'Exim refuses vacation at delivery unless the router sets sieve_vacation_directory (-bf does not check)',
});

// ---- realistic scripts ---------------------------------------------------------------
ok(
  'realistic spam and lists',
  `# Sieve filter
require ["fileinto", "envelope", "copy"];
# spam first
if header :contains "X-Spam-Flag" "YES" {
  fileinto "Junk";
  stop;
}
if anyof (header :contains "list-id" "<exim-users.exim.org>",
          address :domain :is "from" "lists.example.org") {
  fileinto "lists/exim";
} elsif envelope :localpart :is "to" "billing" {
  redirect :copy "accounts@example.org";
  keep;
} else {
  keep;
}
`,
);
ok(
  'realistic vacation script',
  `require ["vacation", "fileinto"];
if address :is "from" "boss@example.org" {
  fileinto "Important";
}
vacation :days 14 :subject "Out of office" :addresses ["me@example.org"] text:
I am out of the office until Monday.
For urgent matters contact ops@example.org.
.
;
`,
);
ok(
  'roundcube style',
  `require ["fileinto"];
# rule:[move lists]
if anyof (header :contains "subject" "[list]", header :contains "from" "list@example.org")
{
\tfileinto "Lists";
\tstop;
}
`,
);
ok(
  'thunderbird style',
  'require ["fileinto"];\r\n\r\n# rule:[Spam]\r\nif allof (header :contains "subject" "SPAM")\r\n{\r\n\tfileinto "Junk";\r\n}\r\n',
);

export const corpus: readonly CorpusEntry[] = entries;

/** Extensions the corpus is validated against: everything Exim 4.96 offers. */
export const CORPUS_EXTENSIONS = [
  'comparator-i;ascii-numeric',
  'copy',
  'encoded-character',
  'enotify',
  'envelope',
  'fileinto',
  'subaddress',
  'vacation',
];
