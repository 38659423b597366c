/**
 * contrib/exim/ as shipped: real messages delivered by the real Exim (`exim4 -C`,
 * test/helpers/exim.ts) whose routers and transports are the files in
 * contrib/exim/router/ and contrib/exim/transport/, pasted verbatim into a private
 * configuration. The only things the test sets are the recipe's documented knobs,
 * as Exim macros in the main section (paths that must point into the temp dir):
 *   TSIEVED_USERDB            the virtual users' userdb file
 *   TSIEVED_AFS_VACATION_DIR  the AFS layout's local vacation directory
 *   TSIEVED_ENOTIFY           switches enotify on (one layout with, one without)
 * Each layout: fileinto into Maildir++ folders, keep / implicit keep into the
 * Maildir, `user+detail` addresses seen by envelope :detail, a vacation reply sent
 * once per sender, enotify where enabled. tsieved's own probe of the router
 * (`exim -bP router NAME`, as [sieve] exim_router uses it) must agree with what the
 * router enables, and every script is one tsieved accepts under that profile.
 */
import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  chmodSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createUnixUser,
  eximBinary,
  maildirMessages,
  mboxMessages,
  startEximWithConfig,
  type PrivateExim,
  type UnixUser,
} from '../helpers/exim.js';
import { ROOT, needs } from '../helpers/tools.js';
import { eximRouterOptions } from '../../src/sieve/exim-probe.js';
import { loadProfile } from '../../src/sieve/load-profile.js';
import { validateScript } from '../../src/sieve/validate.js';
import { hasErrors } from '../../src/sieve/diagnostics.js';
import { parseConfig } from '../../src/config/loader.js';
import { renderFilter } from '../../src/storage/filter-file.js';

const CONTRIB = resolve(__dirname, '../../contrib/exim');
const shipped = (rel: string): string => readFileSync(join(CONTRIB, rel), 'utf8');
const runnable = needs('exim4', 'useradd', 'userdel', ROOT);

const DOMAIN = 'example.org';
const VDOMAIN = 'virtual.test';

interface Account {
  /** The envelope address mail is sent to (without +detail). */
  readonly address: string;
  /** Where tsieved's filter_path puts the filter file. */
  readonly filter: string;
  /** The account's Maildir. */
  readonly maildir: string;
  readonly uid: number;
  readonly gid: number;
}

interface Layout {
  readonly title: string;
  readonly router: string;
  readonly files: readonly string[];
  readonly macros: (base: string, user: UnixUser) => string;
  readonly domains: readonly string[];
  /** The account under test, created in the user's home (same uid: see exim.ts's header). */
  readonly account: (base: string, user: UnixUser) => Account;
  readonly enotify: boolean;
  /** Extra setup before Exim starts (userdb file, vacation parent directory). */
  readonly prepare?: (base: string, user: UnixUser) => void;
  /** Where vacation's "once" memory must appear. */
  readonly vacationDir: (base: string, user: UnixUser, account: Account) => string;
}

const LAYOUTS: Layout[] = [
  {
    title: 'system users, {home}/.forward (550_tsieved_system), enotify on',
    router: 'tsieved_system',
    files: ['router/550_tsieved_system'],
    macros: () => 'TSIEVED_ENOTIFY = yes',
    domains: [DOMAIN],
    account: (_b, u) => ({
      address: `${u.name}@${DOMAIN}`,
      filter: join(u.home, '.forward'),
      maildir: join(u.home, 'Maildir'),
      uid: u.uid,
      gid: u.gid,
    }),
    enotify: true,
    vacationDir: (_b, u) => join(u.home, '.sieve-vacation'),
  },
  {
    title: "the co-op's members on AFS, {home}/.public/.forward (550_tsieved_afs), enotify off",
    router: 'tsieved_afs',
    files: ['router/550_tsieved_afs'],
    macros: (b) => `TSIEVED_AFS_VACATION_DIR = ${join(b, 'vacation')}/$local_part_data`,
    domains: [DOMAIN],
    account: (_b, u) => ({
      address: `${u.name}@${DOMAIN}`,
      filter: join(u.home, '.public', '.forward'),
      maildir: join(u.home, 'Maildir'),
      uid: u.uid,
      gid: u.gid,
    }),
    enotify: false,
    prepare: (b, u) => {
      // As the router's comment says: a root-owned parent, mode 1733.
      mkdirSync(join(b, 'vacation'), { mode: 0o1733 });
      chmodSync(join(b, 'vacation'), 0o1733);
      mkdirSync(join(u.home, '.public'), { mode: 0o755 });
      chownSync(join(u.home, '.public'), u.uid, u.gid);
    },
    vacationDir: (b, u) => join(b, 'vacation', u.name),
  },
  {
    title:
      'DomTool virtual users user@domain from a userdb (540_tsieved_virtual before 550_tsieved_system), enotify on',
    router: 'tsieved_virtual',
    files: ['router/540_tsieved_virtual', 'router/550_tsieved_system'],
    macros: (b) => [`TSIEVED_USERDB = ${join(b, 'userdb')}`, 'TSIEVED_ENOTIFY = yes'].join('\n'),
    domains: [DOMAIN, VDOMAIN],
    account: (_b, u) => ({
      address: `anna@${VDOMAIN}`,
      filter: join(u.home, VDOMAIN, 'anna', '.forward'),
      // A mail= field elsewhere than {home}/Maildir, to see it is the one used.
      maildir: join(u.home, 'vmail', VDOMAIN, 'anna'),
      uid: u.uid,
      gid: u.gid,
    }),
    enotify: true,
    prepare: (b, u) => {
      const home = join(u.home, VDOMAIN, 'anna');
      for (const d of [join(u.home, VDOMAIN), home]) {
        mkdirSync(d, { mode: 0o755 });
        chownSync(d, u.uid, u.gid);
      }
      writeFileSync(
        join(b, 'userdb'),
        [
          `bert@${VDOMAIN}\tuid=${u.uid}|gid=${u.gid}|home=${join(u.home, VDOMAIN, 'bert')}|systempw=$1$x$y`,
          `anna@${VDOMAIN}\tuid=${u.uid}|gid=${u.gid}|home=${home}|mail=${join(u.home, 'vmail', VDOMAIN, 'anna')}|systempw=$1$x$y`,
          '',
        ].join('\n'),
        { mode: 0o644 },
      );
    },
    vacationDir: (_b, _u, a) => join(a.filter, '..', '.sieve-vacation'),
  },
];

let counter = 0;
function message(to: string, subject: string, from = 'Sender <sender@remote.test>'): string {
  counter += 1;
  return [
    `From: ${from}`,
    `To: ${to}`,
    `Subject: ${subject}`,
    `Message-ID: <r${counter}.${Date.now()}@remote.test>`,
    '',
    `Body of "${subject}".`,
    '',
  ].join('\n');
}
const bySubject = (messages: string[], subject: string): string[] =>
  messages.filter((m) => m.includes(`\nSubject: ${subject}\n`));

for (const layout of LAYOUTS) {
  describe(`contrib/exim: ${layout.title}`, runnable, () => {
    let base: string;
    let user: UnixUser;
    let exim: PrivateExim;
    let account: Account;
    const folder = (name: string): string[] =>
      maildirMessages(name === '' ? account.maildir : join(account.maildir, name));

    beforeAll(() => {
      base = mkdtempSync(join(tmpdir(), 'tsieved-exim-recipe-'));
      chmodSync(base, 0o755);
      const homes = join(base, 'homes');
      mkdirSync(homes, { mode: 0o755 });
      user = createUnixUser(homes);
      layout.prepare?.(base, user);
      account = layout.account(base, user);
      const routers = layout.files.map(shipped).join('\n');
      exim = startEximWithConfig({
        user,
        domains: layout.domains,
        main: layout.macros(base, user),
        routers,
        transports: shipped('transport/30_tsieved'),
      });
    });
    afterAll(() => {
      exim?.cleanup();
      user?.remove();
      if (base) rmSync(base, { recursive: true, force: true });
    });

    /** Validates with tsieved against the profile this Exim + router give, then writes the filter as tsieved does. */
    async function activate(script: string): Promise<void> {
      const config = parseConfig(
        `[sieve]\nexim = "${eximBinary()}"\nexim_config = "${exim.configFile}"\nexim_router = "${layout.router}"\n`,
      );
      const profile = await loadProfile(config.sieve, config.storage.max_script_bytes);
      const diagnostics = validateScript(Buffer.from(script), profile);
      expect(hasErrors(diagnostics), JSON.stringify(diagnostics)).toBe(false);
      writeFileSync(account.filter, renderFilter(Buffer.from(script)), { mode: 0o644 });
      chownSync(account.filter, account.uid, account.gid);
    }

    function deliver(to: string, subject: string, sender?: string): void {
      const r = exim.deliver(to, message(to, subject), sender);
      expect(r.status, `${r.stderr}\n${exim.log()}`).toBe(0);
      // A deferral (bad owner, transport trouble, taint) would leave it queued.
      expect(exim.queuedIds(), `${exim.queue()}\n${exim.log()}`).toEqual([]);
      expect(exim.panicLog()).toBe('');
    }

    it("tsieved's probe of the router offers vacation, and enotify exactly when the router enables it", async () => {
      const opts = await eximRouterOptions(eximBinary(), layout.router, exim.configFile);
      expect(opts).toEqual({ vacation: true, enotify: layout.enotify });
    });

    it('fileinto lands in Maildir++ folders, keep and the implicit keep in the Maildir', async () => {
      await activate(
        [
          'require ["fileinto"];',
          'if header :contains "subject" "[list]" { fileinto "Lists"; stop; }',
          'if header :contains "subject" "[exim]" { fileinto "Lists/Exim"; stop; }',
          'if header :contains "subject" "[both]" { fileinto "Archive"; fileinto "INBOX"; stop; }',
          '',
        ].join('\n'),
      );
      deliver(account.address, '[list] digest');
      deliver(account.address, '[exim] release');
      deliver(account.address, '[both] keep a copy');
      deliver(account.address, 'personal');
      expect(bySubject(folder('.Lists'), '[list] digest')).toHaveLength(1);
      expect(bySubject(folder('.Lists.Exim'), '[exim] release')).toHaveLength(1);
      expect(bySubject(folder('.Archive'), '[both] keep a copy')).toHaveLength(1);
      expect(bySubject(folder(''), '[both] keep a copy')).toHaveLength(1);
      expect(bySubject(folder(''), 'personal')).toHaveLength(1);
      expect(bySubject(folder(''), '[list] digest')).toHaveLength(0);
      // Courier and Dovecot recognise subfolders by this file.
      expect(existsSync(join(account.maildir, '.Lists', 'maildirfolder'))).toBe(true);
      expect(existsSync(join(account.maildir, 'maildirfolder'))).toBe(false);
    });

    it('user+detail@domain reaches the user, and envelope :detail sees the detail', async () => {
      await activate(
        [
          'require ["fileinto", "envelope", "subaddress"];',
          'if envelope :detail "to" "shop" { fileinto "Shopping"; stop; }',
          'if envelope :user "to" "nobody-else" { discard; stop; }',
          '',
        ].join('\n'),
      );
      const [local, domain] = account.address.split('@') as [string, string];
      deliver(`${local}+shop@${domain}`, 'order confirmed');
      deliver(`${local}+other@${domain}`, 'other detail');
      expect(bySubject(folder('.Shopping'), 'order confirmed')).toHaveLength(1);
      expect(bySubject(folder(''), 'order confirmed')).toHaveLength(0);
      expect(bySubject(folder(''), 'other detail')).toHaveLength(1);
    });

    it('vacation answers each sender once, from the null sender', async () => {
      await activate(['require "vacation";', 'vacation :days 3 :subject "Away" "Back on Monday.";', ''].join('\n'));
      const replies = (to: string): string[] =>
        mboxMessages(exim.outboxText()).filter(
          (m) => /^Auto-Submitted: auto-replied$/m.test(m) && m.includes(`\nX-Outbox-Rcpt: ${to}\n`),
        );
      deliver(account.address, 'are you there?', 'friend@remote.test');
      deliver(account.address, 'still there?', 'friend@remote.test');
      deliver(account.address, 'me too', 'colleague@remote.test');
      expect(replies('friend@remote.test'), exim.log()).toHaveLength(1);
      expect(replies('colleague@remote.test')).toHaveLength(1);
      const reply = replies('friend@remote.test')[0];
      expect(reply).toMatch(/^Return-path: <>$/m);
      expect(reply).toMatch(/^Subject: Away$/m);
      expect(reply).toContain('Back on Monday.');
      // The "once" memory is where the router says (and nowhere in the Maildir).
      const dir = layout.vacationDir(base, user, account);
      expect(readdirSync(dir).filter((f) => /^[0-9A-F]{32}$/i.test(f))).toHaveLength(1);
      expect(bySubject(folder(''), 'still there?')).toHaveLength(1);
    });

    it(
      layout.enotify ? 'enotify sends a notification mail' : 'without TSIEVED_ENOTIFY, tsieved refuses enotify scripts',
      async () => {
        const script = ['require ["enotify"];', 'notify :message "new mail" "mailto:pager@remote.test";', ''].join(
          '\n',
        );
        if (!layout.enotify) {
          const config = parseConfig(
            `[sieve]\nexim = "${eximBinary()}"\nexim_config = "${exim.configFile}"\nexim_router = "${layout.router}"\n`,
          );
          const profile = await loadProfile(config.sieve, config.storage.max_script_bytes);
          expect(hasErrors(validateScript(Buffer.from(script), profile))).toBe(true);
          return;
        }
        await activate(script);
        deliver(account.address, 'page me');
        const notes = mboxMessages(exim.outboxText()).filter((m) => m.includes('\nX-Outbox-Rcpt: pager@remote.test\n'));
        expect(notes, exim.log()).toHaveLength(1);
        expect(notes[0]).toMatch(/^Auto-Submitted: auto-notified; /m);
        expect(notes[0]).toMatch(/^Subject: new mail$/m);
        expect(bySubject(folder(''), 'page me')).toHaveLength(1);
      },
    );
  });
}
