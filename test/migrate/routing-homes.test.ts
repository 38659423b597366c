/**
 * Issue 11 on a realistic set of homes, as root, each home a real Unix account: the
 * migration proves (through the real exim4 -bf, run as the user) that every
 * member's mail goes where it went, carries the file Exim reads today to the new
 * filter path, and leaves alone a user whose routing would change. Independently
 * of tsieved's own comparison, this test runs `exim4 -bf` itself on the file Exim
 * reads before and on the one it reads after, and checks that the outcome is what
 * the report says.
 */
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMigrate } from '../../src/cli/migrate.js';
import { createUnixUser, eximBinary, type UnixUser } from '../helpers/exim.js';
import { privateEximBf, type EximBf } from '../helpers/exim-bf.js';
import { ROOT, needs } from '../helpers/tools.js';
import { writeMigrateConfig } from './config.js';

const runnable = needs('exim4', 'useradd', 'userdel', ROOT);
const CAPS = [
  'fileinto',
  'envelope',
  'copy',
  'subaddress',
  'encoded-character',
  'comparator-i;ascii-numeric',
  'vacation',
];
const SIEVE =
  '# Sieve filter\nrequire "fileinto";\nif header :contains "subject" "SPAM" { fileinto "Junk"; stop; }\nredirect "member@elsewhere.test";\n';
const CRLF = SIEVE.replace(/\n/g, '\r\n');
const REJECTED = '# Sieve filter\nrequire "reject";\nif header :contains "subject" "SPAM" { reject "no"; }\n';
const EXIM_FILTER =
  '# Exim filter\nif $h_subject: contains "SPAM" then\n  deliver spam-copy@elsewhere.test\nendif\ndeliver kept@elsewhere.test\n';
const ADDRESSES = 'first@elsewhere.test, second@elsewhere.test\n';
const DOVECOT_REDIRECT = 'require ["fileinto"];\nredirect "dovecot-b@elsewhere.test";\n';
/** A pysieved script that files list mail sent to user+lists@ into FOLDER; tests :detail too (noted as not comparable). */
const LISTS = (folder: string): string =>
  `# Sieve filter\nrequire ["fileinto", "envelope", "subaddress"];\nif envelope :localpart :contains "to" "+lists" { fileinto "${folder}"; stop; }\nif envelope :detail "to" "private" { fileinto "Private"; }\n`;
const LIST_MESSAGE =
  'Subject: [members] news\nFrom: owner@lists.remote.test\nList-Id: <members.lists.remote.test>\n\nnews\n';
/** contrib/exim's router: user+detail@domain runs the user's filter, read by `exim -bP router` for the suffix probe. */
const SUFFIX_ROUTER = `tsieved_afs:
  driver = redirect
  check_local_user
  local_part_suffix = +*
  local_part_suffix_optional
  sieve_subaddress = \${sg{$local_part_suffix}{\\N^\\+\\N}{}}
  sieve_useraddress = $local_part
  file = $home/.public/.forward
  allow_filter
`;
const MESSAGES = ['Subject: SPAM offers\nFrom: x@remote.test\n\nbuy\n', 'Subject: hello\nFrom: y@remote.test\n\nhi\n'];

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _e: BufferEncoding, done: () => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
}

describe('migration proves routing on realistic homes (real exim4 -bf)', runnable, () => {
  let dir: string;
  let homes: string;
  let exim: EximBf;
  const users = new Map<string, UnixUser>();

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsieved-homes-'));
    chmodSync(dir, 0o755);
    homes = join(dir, 'home');
    mkdirSync(homes, { mode: 0o755 });
    exim = privateEximBf();
    // migrate runs exim -bf as each user with this configuration.
    chmodSync(join(exim.configFile, '..'), 0o755);
    chmodSync(exim.configFile, 0o644);
  });
  afterAll(() => {
    for (const u of users.values()) u.remove();
    exim?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  function user(key: string): UnixUser {
    const u = createUnixUser(homes, `tsm${key}`);
    users.set(key, u);
    return u;
  }
  const own = (u: UnixUser, path: string): void => chownSync(path, u.uid, u.gid);
  function file(u: UnixUser, rel: string, text: string, owner: 'user' | 'root' = 'user'): string {
    const path = join(u.home, rel);
    writeFileSync(path, text, { mode: 0o644 });
    if (owner === 'user') own(u, path);
    return path;
  }
  function dirOf(u: UnixUser, rel: string, owner: 'user' | 'root' = 'user'): void {
    mkdirSync(join(u.home, rel), { mode: 0o755 });
    if (owner === 'user') own(u, join(u.home, rel));
  }
  function userdb(list: UnixUser[]): void {
    writeFileSync(
      join(dir, 'userdb'),
      list.map((u) => `${u.name}\tuid=${u.uid}|gid=${u.gid}|home=${u.home}|systempw={SHA256}x`).join('\n') + '\n',
    );
  }
  function config(storage: { scripts_dir: string; filter_path: string }, eximBf = exim, router?: string): string {
    const path = writeMigrateConfig(dir, homes, storage, CAPS);
    writeFileSync(
      path,
      readFileSync(path, 'utf8') +
        `exim = "${eximBinary()}"\nexim_config = "${eximBf.configFile}"\n` +
        (router ? `exim_router = "${router}"\n` : ''),
    );
    return path;
  }
  async function migrate(configFile: string, ...argv: string[]): Promise<{ code: number; out: string }> {
    const out = new Capture();
    const code = await runMigrate([...argv, '--domain', 'example.org', '--config', configFile], {
      stdout: out,
      stderr: out,
    });
    return { code, out: out.text };
  }
  /** What Exim does with each message under a filter file (absent: normal delivery), line numbers and paths aside. */
  function eximSays(path: string, u: UnixUser): string[] {
    if (!existsSync(path)) return MESSAGES.map(() => 'no filter');
    return MESSAGES.map((m) =>
      exim
        .run(path, m, { localPart: u.name, domain: 'example.org' })
        .split('\n')
        .filter(
          (l) =>
            !/^(Testing |read_message_body|Return-path|Sender |Recipient |Prefix |String comparison| {2}(Search|Inside|Result)|if (true|false)| Condition)/.test(
              l,
            ),
        )
        .map((l) => l.replace(/in line \d+/, 'in line #'))
        .join('\n'),
    );
  }
  /** The user's lines of the report: their first line and the indented ones after it. */
  const block = (out: string, u: UnixUser): string => {
    const lines = out.split('\n');
    const i = lines.findIndex((l) => l.startsWith(`${u.name}: `));
    if (i < 0) return '';
    let j = i + 1;
    while (j < lines.length && lines[j].startsWith(' ')) j++;
    return lines.slice(i, j).join('\n');
  };

  it('pysieved to the HCoop layout (~/.public/.forward): each user routed as before, or left alone and named', async () => {
    const conf = config({ scripts_dir: '{home}/.tsieved', filter_path: '{home}/.public/.forward' });
    const linked = user('a');
    const crlf = user('b');
    const eximFilter = user('c');
    const plain = user('d');
    const rejected = user('e');
    const rootOwned = user('f');
    const noPublic = user('g');
    const pysieved = (u: UnixUser, text: string, owner: 'user' | 'root' = 'user'): void => {
      dirOf(u, '.pysieved', owner);
      file(u, '.pysieved/main', text, owner);
      symlinkSync('.pysieved/main', join(u.home, '.forward'));
      chownSync(join(u.home, '.forward'), u.uid, u.gid);
    };
    for (const u of [linked, crlf, eximFilter, plain, rejected, rootOwned]) dirOf(u, '.public');
    pysieved(linked, SIEVE);
    pysieved(crlf, CRLF);
    file(eximFilter, '.forward', EXIM_FILTER);
    file(plain, '.forward', ADDRESSES);
    pysieved(rejected, REJECTED);
    pysieved(rootOwned, SIEVE, 'root');
    pysieved(noPublic, SIEVE);
    userdb([linked, crlf, eximFilter, plain, rejected, rootOwned, noPublic]);
    const before = new Map([...users.values()].map((u) => [u.name, eximSays(join(u.home, '.forward'), u)]));
    // Exim really fails on the CRLF script today, and runs the others.
    expect(before.get(crlf.name)!.join()).toMatch(/Sieve error/);
    expect(before.get(linked.name)!.join()).toMatch(/fileinto `Junk'/);

    const dry = await migrate(conf, '--from', 'pysieved', '--dry-run');
    const real = await migrate(conf, '--from', 'pysieved');
    expect(real.code).toBe(1);
    for (const u of [linked, eximFilter, plain, rejected, rootOwned]) {
      expect(block(real.out, u), u.name).toMatch(/routing: unchanged/);
      expect(block(real.out, u), u.name).toMatch(/from the switch on, Exim must read \S+\/\.public\/\.forward/);
      expect(eximSays(join(u.home, '.public', '.forward'), u), u.name).toEqual(before.get(u.name));
    }
    // The non-Sieve files are carried byte for byte.
    expect(readFileSync(join(eximFilter.home, '.public', '.forward'), 'utf8')).toBe(EXIM_FILTER);
    expect(readFileSync(join(plain.home, '.public', '.forward'), 'utf8')).toBe(ADDRESSES);
    expect(block(real.out, rejected)).toMatch(/Exim would reject it/);
    // The CRLF script would start to run: named, and left alone.
    expect(block(real.out, crlf)).toMatch(/routing: CHANGES:/);
    expect(block(real.out, crlf)).toMatch(
      /- a message marked as spam: the filter fails \(Sieve error[^)]*\), delivered to the inbox; afterwards filed into Junk/,
    );
    expect(block(real.out, crlf)).toMatch(/NOT MIGRATED/);
    expect(existsSync(join(crlf.home, '.tsieved'))).toBe(false);
    expect(existsSync(join(crlf.home, '.public', '.forward'))).toBe(false);
    // Without ~/.public no filter can be written: forwarding would stop at the switch.
    expect(block(real.out, noPublic)).toMatch(/\.public does not exist/);
    expect(block(real.out, noPublic)).toMatch(/afterwards delivered to the inbox/);
    expect(real.out).toMatch(
      new RegExp(`routing would change or is not proven for: .*${crlf.name}.*; left alone unless --accept-changes`),
    );
    // The real run printed everything the dry run did, for every user (the tense aside,
    // and the line saying a user was left alone).
    const tense = (s: string): string =>
      s.replace(/would import|imported|would be activated|activated/g, 'X').replace(/\n\s+NOT MIGRATED: [^\n]*/g, '');
    for (const u of users.values()) expect(tense(block(real.out, u)), u.name).toBe(tense(block(dry.out, u)));

    // Accepted: the CRLF script is migrated, and runs.
    const accepted = await migrate(conf, '--from', 'pysieved', '--accept-changes', crlf.name);
    expect(accepted.code).toBe(0);
    expect(eximSays(join(crlf.home, '.public', '.forward'), crlf).join()).toMatch(/fileinto `Junk'/);
    // Every later run reports the same.
    const again = await migrate(conf, '--from', 'pysieved');
    const third = await migrate(conf, '--from', 'pysieved');
    expect(third.out).toBe(again.out);
  });

  it('Dovecot: a plain .forward beside a regular .dovecot.sieve keeps forwarding to A; a linked .dovecot.sieve alone is activated', async () => {
    const conf = config({ scripts_dir: '{home}/.tsieved', filter_path: '{home}/.forward' });
    const both = user('h');
    const linked = user('i');
    dirOf(both, 'sieve');
    file(both, 'sieve/other.sieve', DOVECOT_REDIRECT);
    file(both, '.dovecot.sieve', DOVECOT_REDIRECT);
    file(both, '.forward', 'dovecot-a@elsewhere.test\n');
    dirOf(linked, 'sieve');
    file(linked, 'sieve/main.sieve', SIEVE.replace('# Sieve filter\n', ''));
    symlinkSync('sieve/main.sieve', join(linked.home, '.dovecot.sieve'));
    userdb([both, linked]);
    const beforeBoth = eximSays(join(both.home, '.forward'), both);
    const r = await migrate(conf, '--from', 'dovecot');
    expect(r.code).toBe(0);
    expect(block(r.out, both)).toMatch(/routing: unchanged/);
    expect(block(r.out, both)).toMatch(/is imported but not activated: Exim reads \S+\.forward today/);
    expect(readFileSync(join(both.home, '.forward'), 'utf8')).toBe('dovecot-a@elsewhere.test\n');
    expect(eximSays(join(both.home, '.forward'), both)).toEqual(beforeBoth);
    expect(block(r.out, linked)).toMatch(/routing: unchanged \(compared by exim -bf\)/);
    expect(block(r.out, linked)).toMatch(/Dovecot ran \S+main\.sieve/);
    expect(eximSays(join(linked.home, '.forward'), linked).join()).toMatch(/fileinto `Junk'/);
    // Dovecot's directory is only read.
    expect(existsSync(join(linked.home, 'sieve', '.active'))).toBe(false);
  });

  it('a change only mail to user+lists@domain shows (the router takes a +suffix) is reported, and the user left alone', async () => {
    const suffixExim = privateEximBf(SUFFIX_ROUTER);
    chmodSync(join(suffixExim.configFile, '..'), 0o755);
    chmodSync(suffixExim.configFile, 0o644);
    try {
      const conf = config(
        { scripts_dir: '{home}/.tsieved', filter_path: '{home}/.public/.forward' },
        suffixExim,
        'tsieved_afs',
      );
      const early = user('j');
      dirOf(early, '.public');
      dirOf(early, '.pysieved');
      file(early, '.pysieved/main', LISTS('lists'));
      symlinkSync('.pysieved/main', join(early.home, '.forward'));
      userdb([early]);
      // Migrated early, before the router switch: nothing changes.
      const first = await migrate(conf, '--from', 'pysieved', early.name);
      expect(first.code).toBe(0);
      expect(first.out).toMatch(
        /^note: routing is also probed with mail to USER\+lists@DOMAIN \(local_part_suffix of router "tsieved_afs"\)$/m,
      );
      expect(block(first.out, early)).toMatch(/routing: unchanged/);
      // Until the switch the member goes on with pysieved: a new script for list mail, made active there.
      file(early, '.pysieved/lists', LISTS('Lists/all'));
      rmSync(join(early.home, '.forward'));
      symlinkSync('.pysieved/lists', join(early.home, '.forward'));
      const list = (path: string, suffix?: string): string =>
        exim
          .run(path, LIST_MESSAGE, { localPart: early.name, domain: 'example.org', ...(suffix ? { suffix } : {}) })
          .split('\n')
          .filter((l) => l.startsWith('fileinto'))
          .join();
      const today = join(early.home, '.forward');
      const afterwards = join(early.home, '.public', '.forward');
      // Exim itself: only mail to the +lists address goes elsewhere after the switch.
      expect(list(today)).toBe(list(afterwards));
      expect(list(today, '+lists')).toBe("fileinto `Lists/all'");
      expect(list(afterwards, '+lists')).toBe("fileinto `lists'");

      const dry = await migrate(conf, '--from', 'pysieved', '--dry-run', early.name);
      const real = await migrate(conf, '--from', 'pysieved', early.name);
      expect(real.code).toBe(1);
      const report = block(real.out, early);
      expect(report).toMatch(
        new RegExp(
          `routing: CHANGES:\n {4}- a mailing-list message to ${early.name}\\+lists@example\\.org: filed into Lists/all; afterwards filed into lists\n(?! {4}-)`,
        ),
      );
      expect(report).toMatch(/NOT MIGRATED/);
      expect(report).toMatch(/note: the filter tests envelope :user or :detail/);
      expect(list(afterwards, '+lists')).toBe("fileinto `lists'");
      const tense = (t: string): string =>
        t.replace(/would import|imported/g, 'X').replace(/\n\s+NOT MIGRATED: [^\n]*/g, '');
      expect(tense(report)).toBe(tense(block(dry.out, early)));
      // Without the suffix probe (--suffix "" turns it off) the change goes unseen.
      const blind = await migrate(conf, '--from', 'pysieved', '--dry-run', '--suffix', '', early.name);
      expect(blind.out).not.toMatch(/probed with mail to/);
      expect(block(blind.out, early)).toMatch(/routing: unchanged/);
    } finally {
      suffixExim.cleanup();
    }
  });
});
