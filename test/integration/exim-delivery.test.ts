/**
 * Issue 5, end to end: scripts uploaded through ManageSieve to the real tsieved
 * process, then real messages delivered by the real Exim (a private `exim4 -C`
 * instance, test/helpers/exim.ts) whose redirect router reads the filter file
 * tsieved wrote. Checks where each message went: fileinto to its Maildir folder,
 * redirect to the (file-backed) outside world, discard, keep, a vacation reply
 * sent once, and plain delivery after `SETACTIVE ""`.
 *
 * Closest to production: the test user is a real Unix account (useradd, removed
 * afterwards), its userdb entry carries that uid/gid, and tsieved runs the store
 * with `isolation = "process"`, so the filter file is written by a file broker running
 * as the user. Exim's redirect router then runs with `check_local_user` and the
 * default `check_owner`/`check_group` = true (Debian's userforward router): the
 * delivery would defer with "bad owner" if tsieved left the file owned by root.
 * The HCoop layout (`{home}/.public/.forward`, scripts in a private directory,
 * router with `check_owner = false` as HCoop's config has) is a second suite.
 */
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SieveTestClient } from '../helpers/client.js';
import { testCerts } from '../helpers/certs.js';
import {
  createUnixUser,
  maildirMessages,
  mboxMessages,
  startPrivateExim,
  type PrivateExim,
  type UnixUser,
} from '../helpers/exim.js';
import { courierSha256 } from '../helpers/fixture.js';
import { startTsieved, type RunningTsieved } from '../helpers/tsieved.js';
import { BROKER, ROOT, needs } from '../helpers/tools.js';

const DOMAIN = 'example.org';
const PASSWORD = 'Sieve-Pässwort 1';
const runnable = needs('exim4', 'useradd', 'userdel', ROOT, BROKER);

interface Site {
  readonly base: string;
  readonly user: UnixUser;
  readonly server: RunningTsieved;
  readonly exim: PrivateExim;
  readonly client: SieveTestClient;
  readonly address: string;
}

interface Layout {
  readonly scriptsDir: string;
  readonly filterPath: string;
  readonly eximFile: string;
  readonly checkOwner: boolean;
  /** Directories that exist in the user's home beforehand (owned by the user, 0755). */
  readonly homeDirs?: readonly string[];
}

async function startSite(layout: Layout): Promise<Site> {
  const base = mkdtempSync(join(tmpdir(), 'tsieved-e2e-'));
  chmodSync(base, 0o755);
  const homes = join(base, 'homes');
  mkdirSync(homes, { mode: 0o755 });
  const user = createUnixUser(homes);
  try {
    for (const d of layout.homeDirs ?? []) {
      mkdirSync(join(user.home, d), { mode: 0o755 });
      chownSync(join(user.home, d), user.uid, user.gid);
    }
    const certs = testCerts();
    writeFileSync(
      join(base, 'userdb'),
      `${user.name}\tuid=${user.uid}|gid=${user.gid}|home=${user.home}|mail=${user.home}/Maildir|systempw=${courierSha256(PASSWORD)}\n`,
    );
    const server = await startTsieved(`
[server]
listen = ["127.0.0.1:0"]
auth_failure_delay_ms = 50
[tls]
cert_file = "${certs.certFile}"
key_file = "${certs.keyFile}"
[auth]
backend = "userdb"
userdb = "${join(base, 'userdb')}"
[storage]
scripts_dir = "${layout.scriptsDir}"
filter_path = "${layout.filterPath}"
roots = ["${homes}"]
isolation = "process"
[sieve]
capabilities = ["comparator-i;ascii-numeric", "copy", "encoded-character", "envelope", "fileinto", "subaddress", "vacation"]
`);
    const exim = startPrivateExim({
      user,
      domain: DOMAIN,
      filterFile: layout.eximFile,
      checkOwner: layout.checkOwner,
      vacationDirectory: '$home/.sieve-vacation',
    });
    const client = await SieveTestClient.connect(server.port);
    await client.startTls(certs.ca);
    const auth = await client.authenticatePlain(user.name, PASSWORD);
    if (auth.status !== 'OK') throw new Error(`login failed: ${auth.statusLine}\n${server.logs()}`);
    return { base, user, server, exim, client, address: `${user.name}@${DOMAIN}` };
  } catch (e) {
    user.remove();
    throw e;
  }
}

async function stopSite(site: Site | undefined): Promise<void> {
  if (!site) return;
  site.client.close();
  await site.server.stop();
  site.exim.cleanup();
  site.user.remove();
  rmSync(site.base, { recursive: true, force: true });
}

/** PUTSCRIPT + SETACTIVE through ManageSieve; both must succeed. */
async function activate(site: Site, name: string, script: string): Promise<void> {
  const put = await site.client.putScript(name, script);
  expect(put.status, put.statusLine).toBe('OK');
  const act = await site.client.command(`SETACTIVE "${name}"`);
  expect(act.statusLine, site.server.logs()).toBe('OK');
}

let counter = 0;
function message(site: Site, subject: string, extra: { from?: string; to?: string; headers?: string } = {}): string {
  counter += 1;
  return [
    `From: ${extra.from ?? 'Sender <sender@remote.test>'}`,
    `To: ${extra.to ?? site.address}`,
    `Subject: ${subject}`,
    `Message-ID: <t${counter}.${Date.now()}@remote.test>`,
    ...(extra.headers ? [extra.headers] : []),
    '',
    `Body of "${subject}".`,
    '',
  ].join('\n');
}

function deliver(site: Site, subject: string, extra: Parameters<typeof message>[2] = {}, sender?: string): void {
  const r = site.exim.deliver(site.address, message(site, subject, extra), sender);
  expect(r.status, `${r.stderr}\n${site.exim.log()}`).toBe(0);
  // A deferral (bad owner, bad mode, transport trouble) would leave the message queued.
  const stuck = site.exim.queue();
  expect(stuck.includes(site.address) ? `${stuck}\n${site.exim.log()}` : '').toBe('');
}

const inbox = (site: Site): string[] => maildirMessages(join(site.user.home, 'Maildir'));
const folder = (site: Site, name: string): string[] => maildirMessages(join(site.user.home, 'Maildir', '.' + name));
const bySubject = (messages: string[], subject: string): string[] =>
  messages.filter((m) => m.includes(`\nSubject: ${subject}\n`));

const FILEINTO = [
  'require ["fileinto"];',
  '# Listen-Post nach „Lists“ — non-ASCII in the comment on purpose',
  'if header :contains "subject" "[list]" {',
  '  fileinto "Lists";',
  '  stop;',
  '}',
  '',
].join('\r\n');

describe('Exim delivers through the filter tsieved writes ({home}/.forward, Debian router)', runnable, () => {
  let site: Site;
  beforeAll(async () => {
    site = await startSite({
      scriptsDir: '{home}/sieve',
      filterPath: '{home}/.forward',
      eximFile: '$home/.forward',
      checkOwner: true,
    });
  }, 60_000);
  afterAll(async () => {
    await stopSite(site);
  });

  it("the filter file is the user's, not group/other-writable, starts with the Exim header", async () => {
    await activate(site, 'main', FILEINTO);
    const path = join(site.user.home, '.forward');
    const st = statSync(path);
    expect(st.uid).toBe(site.user.uid);
    expect(st.mode & 0o022).toBe(0);
    const text = readFileSync(path, 'utf8');
    expect(text.startsWith('# Sieve filter\n')).toBe(true);
    expect(text).not.toContain('\r');
  });

  it('control: the same filter owned by another user is deferred by the router ("bad owner")', async () => {
    await activate(site, 'main', FILEINTO);
    const path = join(site.user.home, '.forward');
    chownSync(path, 65534, 65534);
    try {
      site.exim.deliver(site.address, message(site, '[list] owned by nobody'));
      expect(site.exim.queue()).toContain(site.address);
      expect(site.exim.log()).toMatch(/R=userforward defer \(-1\): bad owner for .*\.forward/);
    } finally {
      chownSync(path, site.user.uid, site.user.gid);
      site.exim.clearQueue();
    }
    expect(site.exim.queuedIds()).toEqual([]);
  });

  it('fileinto puts the message in its Maildir folder; others take the implicit keep', async () => {
    await activate(site, 'main', FILEINTO);
    deliver(site, '[list] weekly digest');
    deliver(site, 'personal note');
    expect(bySubject(folder(site, 'Lists'), '[list] weekly digest')).toHaveLength(1);
    expect(bySubject(inbox(site), '[list] weekly digest')).toHaveLength(0);
    expect(bySubject(inbox(site), 'personal note')).toHaveLength(1);
    expect(bySubject(folder(site, 'Lists'), 'personal note')).toHaveLength(0);
  });

  it('redirect sends the message to the given address and cancels the implicit keep', async () => {
    await activate(
      site,
      'forward',
      ['if address :is "from" "boss@remote.test" {', '  redirect "me@elsewhere.test";', '}', ''].join('\n'),
    );
    deliver(site, 'from the boss', { from: 'The Boss <boss@remote.test>' });
    deliver(site, 'not from the boss');
    const out = mboxMessages(site.exim.outboxText());
    const redirected = bySubject(out, 'from the boss');
    expect(redirected).toHaveLength(1);
    expect(redirected[0]).toMatch(/^X-Outbox-Rcpt: me@elsewhere\.test$/m);
    expect(bySubject(out, 'not from the boss')).toHaveLength(0);
    expect(bySubject(inbox(site), 'from the boss')).toHaveLength(0);
    expect(bySubject(inbox(site), 'not from the boss')).toHaveLength(1);
  });

  it('discard drops the message: not in the inbox, no folder, nothing sent', async () => {
    await activate(site, 'drop', 'if header :contains "subject" "SPAM" { discard; stop; }\n');
    const before = site.exim.outboxText();
    deliver(site, 'cheap SPAM offer');
    deliver(site, 'wanted mail');
    expect(bySubject(inbox(site), 'cheap SPAM offer')).toHaveLength(0);
    expect(site.exim.outboxText()).toBe(before);
    expect(bySubject(inbox(site), 'wanted mail')).toHaveLength(1);
  });

  it('explicit keep files to the inbox (alongside a copy elsewhere)', async () => {
    await activate(site, 'keep', 'require ["copy", "fileinto"];\nfileinto :copy "Archive";\nkeep;\n');
    deliver(site, 'keep me');
    expect(bySubject(inbox(site), 'keep me')).toHaveLength(1);
    expect(bySubject(folder(site, 'Archive'), 'keep me')).toHaveLength(1);
  });

  it('vacation answers the sender once per period, from the null sender, marked auto-replied', async () => {
    await activate(
      site,
      'away',
      [
        'require "vacation";',
        `vacation :days 1 :subject "Abwesend / away" "Ich bin bis Montag weg. Back on Monday.";`,
        '',
      ].join('\n'),
    );
    deliver(site, 'are you there?', {}, 'friend@remote.test');
    // The autoreply transport (running as the user) hands the reply to a child Exim
    // with -odi, which delivers it at once: to the outbox, since remote.test is remote.
    const replies = (): string[] =>
      mboxMessages(site.exim.outboxText()).filter((m) => /^Auto-Submitted: auto-replied$/m.test(m));
    expect(replies(), site.exim.log()).toHaveLength(1);
    deliver(site, 'still there?', {}, 'friend@remote.test');
    expect(replies()).toHaveLength(1); // once per :days period (Exim's "once" database)
    const reply = replies()[0];
    expect(reply).toMatch(/^X-Outbox-Rcpt: friend@remote\.test$/m);
    expect(reply).toMatch(/^Return-path: <>$/m); // RFC 5230 section 5.1: null envelope sender
    expect(reply).toMatch(/^Subject: Abwesend \/ away$/m);
    expect(reply).toMatch(/^In-Reply-To: <t\d+\.\d+@remote\.test>$/m);
    expect(reply).toContain('Back on Monday.');
    expect(site.exim.queuedIds()).toHaveLength(0);
    // "Once" is per sender: someone else still gets an answer.
    deliver(site, 'hello from someone else', {}, 'other@remote.test');
    expect(replies().filter((m) => /^X-Outbox-Rcpt: other@remote\.test$/m.test(m))).toHaveLength(1);
    // Implicit keep: both messages reached the inbox.
    expect(bySubject(inbox(site), 'are you there?')).toHaveLength(1);
    expect(bySubject(inbox(site), 'still there?')).toHaveLength(1);
  });

  it("one vacation per execution path: Roundcube's switched-off out-of-office beside a reply rule, and one reply per if/else branch", async () => {
    const replies = (subject: string): string[] =>
      mboxMessages(site.exim.outboxText()).filter(
        (m) => /^Auto-Submitted: auto-replied$/m.test(m) && m.includes(`\nSubject: ${subject}\n`),
      );
    // As Roundcube 1.6 writes it with out-of-office off, plus a "reply with message" filter.
    await activate(
      site,
      'roundcube',
      [
        'require ["vacation","fileinto"];',
        '# rule:[Out of office]',
        'if false # true',
        '{',
        '\tvacation :days 1 :subject "Out of office" "I am away.";',
        '}',
        '# rule:[ping]',
        'if header :contains "subject" "ping"',
        '{',
        '\tvacation :days 1 :subject "pong" "Automatic answer.";',
        '}',
        '',
      ].join('\r\n'),
    );
    deliver(site, 'ping 1', {}, 'pinger@remote.test');
    deliver(site, 'no reply wanted', {}, 'quiet@remote.test');
    expect(replies('pong'), site.exim.log()).toHaveLength(1);
    expect(replies('pong')[0]).toMatch(/^X-Outbox-Rcpt: pinger@remote\.test$/m);
    expect(replies('Out of office')).toHaveLength(0);
    expect(bySubject(inbox(site), 'ping 1')).toHaveLength(1);
    expect(bySubject(inbox(site), 'no reply wanted')).toHaveLength(1);

    // RFC 5230 section 4.1's example: a vacation in each branch; each branch taken once.
    await activate(
      site,
      'branches',
      [
        'require "vacation";',
        'if header :contains "subject" "cyrus" {',
        '    vacation :subject "cyrus reply" "I\'m out -- send mail to cyrus-bugs";',
        '} else {',
        '    vacation :subject "other reply" "I\'m out -- call me at +1 304 555 0123";',
        '}',
        '',
      ].join('\n'),
    );
    deliver(site, 'cyrus is broken', {}, 'first@remote.test');
    deliver(site, 'lunch?', {}, 'second@remote.test');
    expect(replies('cyrus reply'), site.exim.log()).toHaveLength(1);
    expect(replies('cyrus reply')[0]).toMatch(/^X-Outbox-Rcpt: first@remote\.test$/m);
    expect(replies('cyrus reply')[0]).toContain('send mail to cyrus-bugs');
    expect(replies('other reply')).toHaveLength(1);
    expect(replies('other reply')[0]).toMatch(/^X-Outbox-Rcpt: second@remote\.test$/m);

    // Two that run for one message are refused, and the active script stays.
    const twice = await site.client.putScript(
      'twice',
      'require "vacation";\r\nif true { vacation "a"; }\r\nvacation "b";\r\n',
    );
    expect(twice.status).toBe('NO');
    expect(twice.text).toMatch(
      /line 3: error: a second vacation can run for the same message \(after the one on line 2\)/,
    );
  });

  it('after SETACTIVE "" the filter file is gone and mail is delivered plainly', async () => {
    await activate(site, 'main', FILEINTO);
    const off = await site.client.command('SETACTIVE ""');
    expect(off.statusLine).toBe('OK');
    expect(existsSync(join(site.user.home, '.forward'))).toBe(false);
    deliver(site, '[list] after deactivation');
    expect(bySubject(inbox(site), '[list] after deactivation')).toHaveLength(1);
    expect(bySubject(folder(site, 'Lists'), '[list] after deactivation')).toHaveLength(0);
  });
});

describe('HCoop layout: {home}/.public/.forward, scripts in a private directory', runnable, () => {
  let site: Site;
  beforeAll(async () => {
    site = await startSite({
      scriptsDir: '{home}/.sieve-scripts',
      filterPath: '{home}/.public/.forward',
      eximFile: '$home/.public/.forward',
      // HCoop's userforward router: "Do not verify the owner and group of the .forward file".
      checkOwner: false,
      // AFS homes at HCoop come with .public (system:anyuser may read it); tsieved
      // does not create the filter's directory, whose ACLs are the site's business.
      homeDirs: ['.public'],
    });
  }, 60_000);
  afterAll(async () => {
    await stopSite(site);
  });

  it('activation writes the public filter; the scripts stay private; Exim files the mail', async () => {
    await activate(site, 'hcoop', FILEINTO);
    const filter = join(site.user.home, '.public', '.forward');
    expect(readFileSync(filter, 'utf8').startsWith('# Sieve filter\n')).toBe(true);
    // Exim reads the filter as the user without an AFS token: world-readable.
    expect(statSync(filter).mode & 0o044).toBe(0o044);
    const scripts = statSync(join(site.user.home, '.sieve-scripts'));
    expect(scripts.mode & 0o077).toBe(0);
    deliver(site, '[list] hcoop announcement');
    deliver(site, 'hcoop personal');
    expect(bySubject(folder(site, 'Lists'), '[list] hcoop announcement')).toHaveLength(1);
    expect(bySubject(inbox(site), 'hcoop personal')).toHaveLength(1);
    const got = await site.client.getScript('hcoop');
    expect(got.content?.equals(Buffer.from(FILEINTO, 'utf8'))).toBe(true);
  });
});
