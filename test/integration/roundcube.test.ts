// The callbacks given to page.evaluate run in the browser: they need the DOM's types.
/// <reference lib="dom" />
/**
 * Issue 12, item 1: Roundcube in a real browser. Debian's Roundcube 1.6 with its
 * managesieve plugin (PHP's built-in server on loopback, private config and
 * SQLite database, test/helpers/roundcube.ts) logs in against a private Dovecot
 * IMAP (test/helpers/dovecot-imap.ts) with the same passwd-file account as
 * tsieved, and headless Debian Chromium (puppeteer-core, test/helpers/browser.ts)
 * clicks through what a member does: a filter set, a filter that files into a
 * folder, out-of-office on and off, a "reply with message" filter while
 * out-of-office is off, forwarding, a raw-editor save with two mistakes, activate,
 * delete a set, import a set from a file and download it. After every save the server side is checked (stored script over
 * ManageSieve, active script, the filter file on disk) and real Exim deliveries
 * (a private `exim4 -C` from test/helpers/exim.ts running the router and
 * transports shipped in contrib/exim/ verbatim) show that the mail goes where the
 * UI said. Screenshots of each step are written to
 * test-results/roundcube/ (not committed) for a human to look at.
 *
 * Roundcube talks to tsieved twice over: `tls://` (STARTTLS, the server
 * certificate checked against the test CA through managesieve_conn_options) for
 * the whole walk, then a trusted clear-text loopback listener (allow_plaintext)
 * for a second, shorter one. Last, with another CA in managesieve_conn_options,
 * Roundcube must refuse tsieved's certificate: the trust is real, not skipped.
 *
 * The user is a real Unix account (Exim's check_local_user and Dovecot's mail
 * processes need one), tsieved runs its store as that user (isolation =
 * "process"), so the filter file has the owner Exim's router checks.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ElementHandle, Frame, Page } from 'puppeteer-core';
import { CHROMIUM, launchChromium, type TestBrowser } from '../helpers/browser.js';
import { testCerts } from '../helpers/certs.js';
import { SieveTestClient } from '../helpers/client.js';
import { startDovecotImap, type DovecotImap } from '../helpers/dovecot-imap.js';
import {
  createUnixUser,
  maildirMessages,
  mboxMessages,
  startEximWithConfig,
  type PrivateExim,
  type UnixUser,
} from '../helpers/exim.js';
import { ROUNDCUBE_DOCROOT, roundcubeInstalled, startRoundcube, type Roundcube } from '../helpers/roundcube.js';
import { PACKAGE_ROOT, startTsieved, type RunningTsieved } from '../helpers/tsieved.js';
import { ROOT, needs, requirement, tool } from '../helpers/tools.js';

const PASSWORD = 'Roundcube-Pässwort 7';
const DOMAIN = 'example.org';
const SHOTS = join(PACKAGE_ROOT, 'test-results', 'roundcube');

/** What this suite needs: programs, Debian's Roundcube tree, root (in CI a missing one fails). */
const ROUNDCUBE = requirement(
  `Roundcube (${ROUNDCUBE_DOCROOT}: roundcube-core, roundcube-plugins, roundcube-sqlite3)`,
  roundcubeInstalled(),
);
const runnable = needs('php', CHROMIUM, 'dovecot', 'exim4', 'openssl', 'useradd', 'userdel', ROUNDCUBE, ROOT);
const SUITE = 'Roundcube 1.6 managesieve plugin in headless Chromium against tsieved, mail delivered by Exim';

interface World {
  base: string;
  user: UnixUser;
  server: RunningTsieved;
  /** tsieved's STARTTLS listener and its trusted clear-text one. */
  tlsPort: number;
  clearPort: number;
  imap: DovecotImap;
  exim: PrivateExim;
  rc: Roundcube;
  browser: TestBrowser;
  page: Page;
  address: string;
}

async function startWorld(): Promise<World> {
  const base = mkdtempSync(join(tmpdir(), 'tsieved-roundcube-e2e-'));
  chmodSync(base, 0o755);
  const homes = join(base, 'homes');
  mkdirSync(homes, { mode: 0o755 });
  const user = createUnixUser(homes, 'tsrc');
  const cleanup: (() => Promise<void> | void)[] = [
    () => user.remove(),
    () => rmSync(base, { recursive: true, force: true }),
  ];
  try {
    // One account for both servers: Dovecot's passwd-file format, which tsieved reads too.
    const hash = execFileSync(tool('openssl'), ['passwd', '-6', '-stdin'], {
      input: PASSWORD,
      encoding: 'utf8',
    }).trim();
    const passwd = join(base, 'passwd');
    writeFileSync(passwd, `${user.name}:{SHA512-CRYPT}${hash}:${user.uid}:${user.gid}::${user.home}::\n`, {
      mode: 0o600,
    });
    const certs = testCerts();
    const server = await startTsieved(`
[server]
listen = ["127.0.0.1:0", { address = "127.0.0.1:0", allow_plaintext = true }]
auth_failure_delay_ms = 50
[tls]
cert_file = "${certs.certFile}"
key_file = "${certs.keyFile}"
[auth]
backend = "passwd-file"
passwd_file = "${passwd}"
[storage]
scripts_dir = "{home}/sieve"
filter_path = "{home}/.forward"
roots = ["${homes}"]
isolation = "process"
[sieve]
capabilities = ["comparator-i;ascii-numeric", "copy", "encoded-character", "envelope", "fileinto", "subaddress", "vacation"]
`);
    cleanup.unshift(() => server.stop());
    // The listeners bind in no fixed order: the trusted one offers mechanisms before TLS.
    let tlsPort = 0;
    let clearPort = 0;
    for (const { port } of server.ports) {
      const c = await SieveTestClient.connect(port);
      if (c.greeting.lines.includes('"SASL" ""')) tlsPort = port;
      else clearPort = port;
      c.close();
    }
    if (tlsPort === 0 || clearPort === 0)
      throw new Error(`expected a STARTTLS and a clear-text listener: ${JSON.stringify(server.ports)}`);
    const imap = await startDovecotImap({ passwdFile: passwd });
    cleanup.unshift(() => imap.stop());
    // The router and transports tsieved ships for system users, verbatim.
    const shipped = (rel: string): string => readFileSync(join(PACKAGE_ROOT, 'contrib', 'exim', rel), 'utf8');
    const exim = startEximWithConfig({
      user,
      domains: [DOMAIN],
      routers: shipped('router/550_tsieved_system'),
      transports: shipped('transport/30_tsieved'),
    });
    cleanup.unshift(() => exim.cleanup());
    // The folder the filter files into exists before the user picks it, as in a real mailbox.
    await imap.createFolder(user.name, PASSWORD, 'Lists');
    const rc = await startRoundcube({
      imapPort: imap.port,
      managesieve: { scheme: 'tls', port: tlsPort, caFile: certs.caFile },
    });
    cleanup.unshift(() => rc.stop());
    const browser = await launchChromium();
    cleanup.unshift(() => browser.close());
    const page = await browser.browser.newPage();
    page.setDefaultTimeout(15_000);
    return { base, user, server, tlsPort, clearPort, imap, exim, rc, browser, page, address: `${user.name}@${DOMAIN}` };
  } catch (e) {
    for (const c of cleanup) await c();
    throw e;
  }
}

async function stopWorld(w: World | undefined): Promise<void> {
  if (!w) return;
  await w.browser.close();
  await w.rc.stop();
  await w.imap.stop();
  await w.server.stop();
  w.exim.cleanup();
  w.user.remove();
  rmSync(w.base, { recursive: true, force: true });
}

/** What every failure message carries: the logs of every party. */
function logsOf(w: World): string {
  return [
    `--- tsieved ---\n${w.server.logs().slice(-6000)}`,
    `--- roundcube ---\n${w.rc.log().slice(-6000)}`,
    `--- dovecot ---\n${w.imap.log().slice(-2000)}`,
  ].join('\n');
}

// ---------------------------------------------------------------------------
// The server side, read without Roundcube: ManageSieve over the clear-text
// listener, and the filter file on disk.

interface ServerState {
  readonly scripts: Map<string, string>;
  readonly active: string | undefined;
  /** The filter file Exim reads, or undefined when there is none. */
  readonly filterFile: string | undefined;
}

async function serverState(w: World): Promise<ServerState> {
  const c = await SieveTestClient.connect(w.clearPort);
  try {
    const auth = await c.authenticatePlain(w.user.name, PASSWORD);
    if (auth.status !== 'OK') throw new Error(`check login failed: ${auth.statusLine}`);
    const list = await c.command('LISTSCRIPTS');
    expect(list.status, list.statusLine).toBe('OK');
    const scripts = new Map<string, string>();
    let active: string | undefined;
    for (const line of list.lines) {
      const m = /^"((?:[^"\\]|\\.)*)"( ACTIVE)?$/.exec(line);
      if (!m) throw new Error(`unexpected LISTSCRIPTS line: ${line}`);
      const name = m[1].replace(/\\(.)/g, '$1');
      if (m[2]) active = name;
      const got = await c.getScript(name);
      expect(got.response.status, got.response.statusLine).toBe('OK');
      scripts.set(name, got.content!.toString('utf8'));
    }
    await c.command('LOGOUT');
    const path = join(w.user.home, '.forward');
    return { scripts, active, filterFile: existsSync(path) ? readFileSync(path, 'utf8') : undefined };
  } finally {
    c.close();
  }
}

/** The filter file must be the active script as Exim reads it: our header, then the script's commands. */
function expectFilterFileRenders(state: ServerState, ...mustContain: string[]): void {
  expect(state.active).toBeDefined();
  expect(state.filterFile, 'no filter file although a script is active').toBeDefined();
  const file = state.filterFile!;
  expect(file.startsWith('# Sieve filter\n'), file).toBe(true);
  for (const text of mustContain) {
    expect(state.scripts.get(state.active!), `stored script lacks ${text}`).toContain(text);
    expect(file, `filter file lacks ${text}`).toContain(text);
  }
}

// ---------------------------------------------------------------------------
// Exim: real deliveries through the filter file.

let counter = 0;

function deliver(w: World, subject: string, from = 'sender@remote.test'): void {
  counter += 1;
  const message = [
    `From: ${from}`,
    `To: ${w.address}`,
    `Subject: ${subject}`,
    `Message-ID: <rc${counter}.${Date.now()}@remote.test>`,
    '',
    `Body of "${subject}".`,
    '',
  ].join('\n');
  const r = w.exim.deliver(w.address, message, from);
  expect(r.status, `${r.stderr}\n${w.exim.log()}`).toBe(0);
  const stuck = w.exim.queue();
  expect(stuck.includes(w.address) ? `${stuck}\n${w.exim.log()}` : '').toBe('');
}

const bySubject = (messages: string[], subject: string): string[] =>
  messages.filter((m) => m.includes(`\nSubject: ${subject}\n`));
const inbox = (w: World, subject: string): string[] =>
  bySubject(maildirMessages(join(w.user.home, 'Maildir')), subject);
const folder = (w: World, name: string, subject: string): string[] =>
  bySubject(maildirMessages(join(w.user.home, 'Maildir', '.' + name)), subject);
/** Messages Exim sent out of the machine (redirects, vacation replies) to `rcpt`. */
const outbox = (w: World, rcpt: string): string[] =>
  mboxMessages(w.exim.outboxText()).filter((m) => m.includes(`X-Outbox-Rcpt: ${rcpt}\n`));

// ---------------------------------------------------------------------------
// The browser: each helper does what a user does (click, type, choose) and
// waits for what Roundcube shows in answer.

let shotNumber = 0;

async function shot(w: World, phase: string, name: string): Promise<void> {
  const dir = join(SHOTS, phase);
  mkdirSync(dir, { recursive: true });
  shotNumber += 1;
  await w.page.screenshot({ path: join(dir, `${String(shotNumber).padStart(2, '0')}-${name}.png`) });
}

/** Clicks an element like a user when it is visible; menu entries hidden in a closed popup get a DOM click. */
async function press(el: ElementHandle): Promise<void> {
  const visible = await el.isVisible();
  if (visible) await el.click();
  else await el.evaluate((e) => (e as HTMLElement).click());
}

/** The button or link that runs a Roundcube command, in the page or a frame. */
async function commandButton(where: Page | Frame, command: string): Promise<ElementHandle> {
  const el = await where.waitForSelector(`[onclick*="rcmail.command('${command}'"]`);
  if (!el) throw new Error(`no button for ${command}`);
  return el;
}

/** Empties the message stack, so the next message read is the answer to the next action. */
async function clearMessages(w: World): Promise<void> {
  await w.page.evaluate(() => {
    const stack = document.getElementById('messagestack');
    if (stack) stack.innerHTML = '';
  });
}

/** Waits for the confirmation or error Roundcube shows, and returns its kind and text. */
async function message(w: World): Promise<{ kind: string; text: string }> {
  const el = await w.page
    .waitForSelector('#messagestack > div.confirmation, #messagestack > div.error, #messagestack > div.warning', {
      timeout: 20_000,
    })
    .catch((e: unknown) => {
      throw new Error(`Roundcube showed no message: ${String(e)}\n${logsOf(w)}`);
    });
  return el!.evaluate((e) => ({
    kind: e.className.includes('confirmation') ? 'confirmation' : e.className.includes('warning') ? 'warning' : 'error',
    text: (e.textContent ?? '').trim(),
  }));
}

/**
 * Roundcube's content frame (filter forms, the raw editor), once its document has
 * the given selector and its Roundcube script has finished starting (typing into
 * a form that is still being replaced would be lost).
 */
async function contentFrame(w: World, selector: string): Promise<Frame> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    for (const f of w.page.frames()) {
      if (f === w.page.mainFrame()) continue;
      const ready = await f
        .evaluate((sel) => {
          const rc = (window as unknown as { rcmail?: { busy: boolean; loaded?: boolean } }).rcmail;
          return (
            document.readyState === 'complete' && document.querySelector(sel) !== null && rc !== undefined && !rc.busy
          );
        }, selector)
        .catch(() => false);
      if (ready) return f;
    }
    if (Date.now() > deadline)
      throw new Error(
        `no content frame with ${selector}; frames: ${w.page
          .frames()
          .map((f) => f.url())
          .join(', ')}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until the main page's Roundcube has no request in flight. */
async function idle(w: World): Promise<void> {
  await w.page.waitForFunction(() => {
    const rc = (window as unknown as { rcmail?: { busy: boolean } }).rcmail;
    return rc !== undefined && !rc.busy;
  });
}

async function login(w: World, phase: string): Promise<void> {
  await w.page.goto(w.rc.url);
  await w.page.waitForSelector('#rcmloginuser');
  await w.page.type('#rcmloginuser', w.user.name);
  await w.page.type('#rcmloginpwd', PASSWORD);
  await shot(w, phase, 'login');
  await Promise.all([w.page.waitForNavigation(), w.page.click('#rcmloginsubmit')]);
  await w.page.waitForSelector('#taskmenu');
}

async function openSettings(w: World, action: string): Promise<void> {
  await w.page.goto(`${w.rc.url}?_task=settings&_action=${action}`);
  await w.page.waitForFunction(() => {
    const rc = (window as unknown as { rcmail?: { busy: boolean; loaded?: boolean } }).rcmail;
    return rc !== undefined && !rc.busy;
  });
}

/** Names in the filter-set list, as the UI shows them, and which ones it shows as inactive. */
async function filterSets(w: World): Promise<{ name: string; disabled: boolean; selected: boolean }[]> {
  return w.page.$$eval('#filtersetslist tr', (rows) =>
    rows
      .filter((r) => (r as HTMLElement).style.display !== 'none')
      .map((r) => ({
        name: (r.textContent ?? '').trim(),
        disabled: r.classList.contains('disabled'),
        selected: r.classList.contains('selected'),
      })),
  );
}

async function selectSet(w: World, name: string): Promise<void> {
  await idle(w);
  if ((await w.page.$eval('#filterset-name', (e) => e.textContent)) === name) return;
  let row: ElementHandle | undefined;
  for (const r of await w.page.$$('#filtersetslist tr')) {
    if ((await r.evaluate((e) => (e.textContent ?? '').trim())) === name) row = r;
  }
  if (!row) throw new Error(`no filter set ${name} in the list: ${JSON.stringify(await filterSets(w))}`);
  // Elastic folds the set list away (height 0) behind the "›" bar above the filters;
  // a click on the bar slides it open.
  if ((await w.page.$eval('#filtersetslistbox', (e) => e.clientHeight)) === 0) {
    await w.page.click('.pagenav-list');
    await w.page.waitForFunction(() => {
      const box = document.getElementById('filtersetslistbox');
      const $ = (window as unknown as { $: (e: unknown) => { is(s: string): boolean } }).$;
      return box !== null && box.clientHeight > 0 && !$(box).is(':animated');
    });
  }
  await row.click();
  await w.page.waitForFunction((n) => document.getElementById('filterset-name')?.textContent === n, {}, name);
  await idle(w);
}

/** Runs a set action from the "Actions" menu (activate, delete, raw edit...). */
async function setAction(w: World, command: string): Promise<void> {
  const menu = await w.page.$('a.actions[data-popup="filterset-menu"]');
  if (menu && (await menu.isVisible())) await menu.click();
  await press(await commandButton(w.page, command));
}

async function saveFrame(w: World, frame: Frame): Promise<{ kind: string; text: string }> {
  await clearMessages(w);
  await press(await commandButton(frame, 'plugin.managesieve-save'));
  return message(w);
}

/** A new filter set, empty or (with `file`) imported from a script file the user uploads. */
async function createSet(w: World, phase: string, name: string, file?: string): Promise<void> {
  await setAction(w, 'plugin.managesieve-setadd');
  const frame = await contentFrame(w, 'input#_name');
  await frame.type('input#_name', name);
  if (file !== undefined) {
    await frame.click('input#from_file');
    const input = await frame.$('input#_file');
    await (input as ElementHandle<HTMLInputElement>).uploadFile(file);
  }
  await shot(w, phase, `new-set-${name}`);
  const answer = await saveFrame(w, frame);
  expect(answer, logsOf(w)).toMatchObject({ kind: 'confirmation' });
  await w.page.waitForFunction(
    (n) => Array.from(document.querySelectorAll('#filtersetslist tr')).some((r) => r.textContent?.trim() === n),
    {},
    name,
  );
}

interface FilterSpec {
  readonly name: string;
  readonly header: 'subject' | 'from' | 'to';
  readonly op: 'contains' | 'is';
  readonly value: string;
  readonly action:
    | { type: 'fileinto'; mailbox: string }
    | { type: 'vacation'; subject: string; reason: string }
    | { type: 'redirect'; target: string };
}

async function fillFilter(frame: Frame, spec: FilterSpec): Promise<void> {
  await frame.type('input#_name', spec.name);
  await frame.select('select#header0', spec.header);
  await frame.select('select#rule_op0', spec.op);
  await frame.type('input[name="_rule_target[0][]"]', spec.value);
  await frame.select('select#action_type0', spec.action.type);
  switch (spec.action.type) {
    case 'fileinto':
      await frame.select('select#action_mailbox0', spec.action.mailbox);
      break;
    case 'vacation':
      await frame.type('input#action_subject0', spec.action.subject);
      await frame.type('textarea#action_reason0', spec.action.reason);
      break;
    case 'redirect':
      await frame.type('input#action_target0', spec.action.target);
      break;
  }
}

/** Adds a filter to the selected set through the filter form; returns what Roundcube said. */
async function addFilter(w: World, phase: string, spec: FilterSpec): Promise<{ kind: string; text: string }> {
  await idle(w);
  await press(await commandButton(w.page, 'plugin.managesieve-add'));
  const frame = await contentFrame(w, 'select#action_type0');
  await fillFilter(frame, spec);
  expect(await frame.$eval('input#_name', (e) => e.value)).toBe(spec.name);
  expect(await frame.$eval('input[name="_rule_target[0][]"]', (e) => e.value)).toBe(spec.value);
  await shot(w, phase, `filter-${spec.name.replace(/\W+/g, '-')}`);
  const answer = await saveFrame(w, frame);
  await shot(w, phase, `filter-${spec.name.replace(/\W+/g, '-')}-saved`);
  return answer;
}

async function filterNames(w: World): Promise<string[]> {
  return w.page.$$eval('#filterslist tr td.name', (cells) => cells.map((c) => (c.textContent ?? '').trim()));
}

// ---------------------------------------------------------------------------

describe(SUITE, runnable, () => {
  let w: World;
  const phase = 'starttls';

  beforeAll(async () => {
    rmSync(SHOTS, { recursive: true, force: true });
    w = await startWorld();
  }, 120_000);
  afterAll(async () => {
    await stopWorld(w);
  });
  // What the browser showed when a step failed, for the person reading the CI log.
  afterEach(async (ctx) => {
    if (ctx.task.result?.state !== 'fail' || !w) return;
    const name = ctx.task.name.replace(/\W+/g, '-').slice(0, 60);
    await shot(w, 'failed', name).catch(() => undefined);
    writeFileSync(
      join(SHOTS, 'failed', `${name}.log`),
      `${w.server.logs()}\n--- roundcube ---\n${w.rc.log()}\n--- dovecot ---\n${w.imap.log()}\n--- exim ---\n${w.exim.log()}`,
    );
  });

  it('logs in over IMAP and opens the filters over tls:// (STARTTLS, certificate checked against the test CA)', async () => {
    await login(w, phase);
    await openSettings(w, 'plugin.managesieve');
    await shot(w, phase, 'filters');
    // Roundcube creates and activates its default set when the account has none.
    expect(
      (await filterSets(w)).map((s) => s.name),
      logsOf(w),
    ).toEqual(['roundcube']);
    const state = await serverState(w);
    expect([...state.scripts.keys()]).toEqual(['roundcube']);
    expect(state.active).toBe('roundcube');
    expect(state.filterFile).toMatch(/^# Sieve filter\n/);
    // It really went over STARTTLS with a verified certificate: tsieved logged the upgrade first.
    const commands = w.server.logLines().filter((l) => l['event'] === 'command' && l['remote'] === '127.0.0.1');
    expect(commands[0]?.['command']).toBe('STARTTLS');
  });

  it('creates a filter set "Work" (stored, not active)', async () => {
    await createSet(w, phase, 'Work');
    await shot(w, phase, 'set-created');
    const state = await serverState(w);
    expect([...state.scripts.keys()].sort()).toEqual(['Work', 'roundcube']);
    expect(state.active).toBe('roundcube');
  });

  it('adds a filter "Lists" to "Work" that moves matching mail to the folder Lists', async () => {
    await selectSet(w, 'Work');
    const answer = await addFilter(w, phase, {
      name: 'Lists',
      header: 'subject',
      op: 'contains',
      value: '[list]',
      action: { type: 'fileinto', mailbox: 'Lists' },
    });
    expect(answer, logsOf(w)).toMatchObject({ kind: 'confirmation' });
    expect(await filterNames(w)).toEqual(['Lists']);
    const state = await serverState(w);
    expect(state.scripts.get('Work')).toContain('fileinto "Lists";');
    expect(state.scripts.get('Work')).toMatch(/require \[?"fileinto"/);
    expect(state.active).toBe('roundcube');
  });

  it('activates "Work": the filter file becomes its rendering and Exim files list mail into Lists', async () => {
    await selectSet(w, 'Work');
    await clearMessages(w);
    await setAction(w, 'plugin.managesieve-setact');
    expect(await message(w), logsOf(w)).toMatchObject({ kind: 'confirmation' });
    await w.page.waitForFunction(() =>
      Array.from(document.querySelectorAll('#filtersetslist tr')).some(
        (r) => r.textContent?.trim() === 'Work' && !r.classList.contains('disabled'),
      ),
    );
    await shot(w, phase, 'work-active');
    const sets = await filterSets(w);
    expect(sets.find((s) => s.name === 'Work')?.disabled).toBe(false);
    expect(sets.find((s) => s.name === 'roundcube')?.disabled).toBe(true);
    const state = await serverState(w);
    expect(state.active).toBe('Work');
    expectFilterFileRenders(state, 'fileinto "Lists";');
    deliver(w, '[list] weekly digest');
    deliver(w, 'lunch on Friday?');
    expect(folder(w, 'Lists', '[list] weekly digest')).toHaveLength(1);
    expect(inbox(w, '[list] weekly digest')).toHaveLength(0);
    expect(inbox(w, 'lunch on Friday?')).toHaveLength(1);
  });

  it('switches out-of-office on: the active script gets a vacation rule and Exim answers once', async () => {
    await openSettings(w, 'plugin.managesieve-vacation');
    await w.page.type('#vacation_subject', 'Away until Monday');
    await w.page.type('#vacation_reason', 'I am away; your mail about {x} will wait.');
    await w.page.select('#vacation_status', 'on');
    await shot(w, phase, 'vacation-on');
    await clearMessages(w);
    await press(await commandButton(w.page, 'plugin.managesieve-save'));
    expect(await message(w), logsOf(w)).toMatchObject({ kind: 'confirmation' });
    await shot(w, phase, 'vacation-on-saved');
    const state = await serverState(w);
    expect(state.active).toBe('Work');
    expectFilterFileRenders(state, 'vacation', '"Away until Monday"', 'fileinto "Lists";');
    deliver(w, 'question while away', 'colleague@remote.test');
    const replies = outbox(w, 'colleague@remote.test');
    expect(replies, w.exim.log()).toHaveLength(1);
    expect(replies[0]).toContain('Subject: Away until Monday');
    expect(replies[0]).toContain('your mail about {x} will wait');
    expect(inbox(w, 'question while away')).toHaveLength(1);
  });

  it('switches out-of-office off: the rule stays as `if false`, and Exim no longer answers', async () => {
    await openSettings(w, 'plugin.managesieve-vacation');
    expect(await w.page.$eval('#vacation_subject', (e) => (e as HTMLInputElement).value)).toBe('Away until Monday');
    await w.page.select('#vacation_status', 'off');
    await clearMessages(w);
    await press(await commandButton(w.page, 'plugin.managesieve-save'));
    expect(await message(w), logsOf(w)).toMatchObject({ kind: 'confirmation' });
    await shot(w, phase, 'vacation-off-saved');
    const state = await serverState(w);
    expectFilterFileRenders(state, 'if false # true', '"Away until Monday"');
    deliver(w, 'question after return', 'other@remote.test');
    expect(outbox(w, 'other@remote.test'), w.exim.log()).toHaveLength(0);
    expect(inbox(w, 'question after return')).toHaveLength(1);
  });

  it('adds a "reply with message" filter while out-of-office is off (issue 12: one vacation per execution path)', async () => {
    await openSettings(w, 'plugin.managesieve');
    await selectSet(w, 'Work');
    const answer = await addFilter(w, phase, {
      name: 'Boss auto-reply',
      header: 'from',
      op: 'contains',
      value: 'boss@',
      action: { type: 'vacation', subject: 'Got it', reason: 'I will answer within the hour.' },
    });
    expect(answer, logsOf(w)).toMatchObject({ kind: 'confirmation' });
    const state = await serverState(w);
    expectFilterFileRenders(state, '"Got it"', 'if false # true', 'fileinto "Lists";');
    // Exim runs the script with the switched-off vacation not taken and the filter's one taken.
    deliver(w, 'status report please', 'boss@remote.test');
    const replies = outbox(w, 'boss@remote.test');
    expect(replies, w.exim.log()).toHaveLength(1);
    expect(replies[0]).toContain('Subject: Got it');
    deliver(w, 'not from the boss', 'someone@remote.test');
    expect(outbox(w, 'someone@remote.test')).toHaveLength(0);
  });

  it('sets up forwarding with a copy kept: Exim redirects to the address and keeps one', async () => {
    await openSettings(w, 'plugin.managesieve-forward');
    await w.page.select('#forward_status', 'on');
    await w.page.select('#forward_action', 'copy');
    await w.page.type('#action_target', 'friend@remote.test');
    await shot(w, phase, 'forward');
    await clearMessages(w);
    await press(await commandButton(w.page, 'plugin.managesieve-save'));
    expect(await message(w), logsOf(w)).toMatchObject({ kind: 'confirmation' });
    await shot(w, phase, 'forward-saved');
    const state = await serverState(w);
    expectFilterFileRenders(state, 'redirect :copy "friend@remote.test";');
    deliver(w, 'for you and your friend');
    expect(outbox(w, 'friend@remote.test').filter((m) => m.includes('Subject: for you and your friend'))).toHaveLength(
      1,
    );
    expect(inbox(w, 'for you and your friend')).toHaveLength(1);
  });

  it('refuses a raw-editor save with two mistakes, marks both lines, and keeps the stored script and filter file', async () => {
    const before = await serverState(w);
    await openSettings(w, 'plugin.managesieve');
    await selectSet(w, 'Work');
    await setAction(w, 'plugin.managesieve-seteditraw');
    const frame = await contentFrame(w, '.CodeMirror');
    const broken = [
      'require ["fileinto"];',
      'if header :contains "subject" "[list]" {',
      '    filinto "Lists";',
      '}',
      'if header :contains "subject" "spam" {',
      '    fileinto :copy "Junk";',
      '}',
      '',
    ].join('\n');
    // CodeMirror owns the text area; set its content as a paste would.
    await frame.evaluate((text) => {
      (window as unknown as { cmeditor: { setValue(v: string): void } }).cmeditor.setValue(text);
    }, broken);
    await shot(w, phase, 'raw-broken');
    await clearMessages(w);
    await press(await commandButton(frame, 'plugin.managesieve-save'));
    const answer = await message(w);
    expect(answer.kind).toBe('error');
    const marked = await contentFrame(w, '.CodeMirror .line-error');
    // The DOM: every line CodeMirror shows with the error background, by its line number,
    // and the message Roundcube puts in the gutter marker's tooltip.
    const lines = await marked.$$eval('.CodeMirror-code > div', (wrappers) =>
      wrappers
        .filter((d) => d.querySelector('.line-error') !== null)
        .map((d) => ({
          line: Number(d.querySelector('.CodeMirror-linenumber')?.textContent),
          tip:
            d
              .querySelector('.CodeMirror-gutter-elt[title], .errorGutter div[title], div[title]')
              ?.getAttribute('title') ?? '',
        })),
    );
    await shot(w, phase, 'raw-errors-marked');
    expect(
      lines.map((l) => l.line),
      `${JSON.stringify(lines)}\n${logsOf(w)}`,
    ).toEqual([3, 6]);
    // Each line carries its own message, with the column (Pigeonhole's one-line form).
    expect(lines[0].tip).toMatch(/error: unknown command "filinto" \(column 5\)/);
    expect(lines[0].tip).not.toMatch(/copy/);
    expect(lines[1].tip).toMatch(/error: ":copy" needs require "copy" \(column 14\)/);
    expect(answer.text).toMatch(/Unable to save filter/);
    // Roundcube only says "server error" in its message: the administrator finds why in
    // tsieved's log line for the refused PUTSCRIPT (the first diagnostic and the count).
    const refused = w.server.logLines().filter((l) => l['command'] === 'PUTSCRIPT' && l['status'] === 'NO');
    expect(refused.at(-1)).toMatchObject({ diagnostics: 2 });
    expect(String(refused.at(-1)?.['diagnostic'])).toMatch(/line 3: error: unknown command "filinto"/);
    // Nothing was lost: stored script, active script and filter file are as before.
    const after = await serverState(w);
    expect(after.scripts.get('Work')).toBe(before.scripts.get('Work'));
    expect(after.active).toBe('Work');
    expect(after.filterFile).toBe(before.filterFile);
  });

  it('deletes the inactive set "roundcube"; "Work" stays active and Exim still runs it', async () => {
    await openSettings(w, 'plugin.managesieve');
    await selectSet(w, 'roundcube');
    await clearMessages(w);
    await setAction(w, 'plugin.managesieve-setdel');
    // Roundcube asks first; the confirm dialog's "Delete" button.
    const confirm = await w.page.waitForSelector(
      '.ui-dialog .ui-dialog-buttonset button.delete, .ui-dialog .ui-dialog-buttonset button.mainaction',
    );
    await shot(w, phase, 'delete-confirm');
    await confirm!.click();
    expect(await message(w), logsOf(w)).toMatchObject({ kind: 'confirmation' });
    // Roundcube's list widget hides a removed row (display: none).
    await w.page.waitForFunction(
      () =>
        !Array.from(document.querySelectorAll('#filtersetslist tr')).some(
          (r) => r.textContent?.trim() === 'roundcube' && (r as HTMLElement).style.display !== 'none',
        ),
    );
    await shot(w, phase, 'deleted');
    const state = await serverState(w);
    expect([...state.scripts.keys()]).toEqual(['Work']);
    expect(state.active).toBe('Work');
    deliver(w, '[list] after the delete');
    expect(folder(w, 'Lists', '[list] after the delete')).toHaveLength(1);
  });

  it('imports a filter set from a file and downloads it back as stored', async () => {
    const file = join(w.base, 'vacation-rules.sieve');
    writeFileSync(
      file,
      [
        'require "fileinto";',
        'require "vacation";',
        '# rule:[Newsletter]',
        'if header :contains "subject" "newsletter" {',
        '  fileinto "Lists";',
        '}',
        '',
      ].join('\r\n'),
    );
    await createSet(w, phase, 'Imported', file);
    await selectSet(w, 'Imported');
    await w.page.waitForFunction(() => document.querySelectorAll('#filterslist tr td.name').length > 0);
    expect(await filterNames(w)).toEqual(['Newsletter']);
    await shot(w, phase, 'imported');
    const state = await serverState(w);
    expect(state.scripts.get('Imported')).toContain('fileinto "Lists";');
    expect(state.active).toBe('Work');
    // "Download": the browser saves the file Roundcube sends; it holds what GETSCRIPT returns.
    const downloads = join(w.base, 'downloads');
    mkdirSync(downloads);
    const cdp = await w.page.createCDPSession();
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads });
    await setAction(w, 'plugin.managesieve-setget');
    const saved = join(downloads, 'Imported.txt');
    for (let i = 0; i < 100 && !existsSync(saved); i++) await new Promise((r) => setTimeout(r, 100));
    // PEAR Net_Sieve reads a literal together with the CRLF that ends the GETSCRIPT
    // response (`_recvBytes(n + 2)`), so Roundcube's download carries one more CRLF,
    // against any server; everything before it is the stored script, byte for byte.
    expect(readFileSync(saved, 'utf8')).toBe(`${state.scripts.get('Imported')}\r\n`);
    await cdp.detach();
  });

  it('does the same over the trusted clear-text loopback listener: new set, filter, activate, delivery', async () => {
    const plain = 'cleartext';
    await idle(w);
    w.rc.setManagesieve({ scheme: 'plain', port: w.clearPort });
    const seen = w.server.logLines().length;
    await openSettings(w, 'plugin.managesieve');
    await shot(w, plain, 'filters');
    await createSet(w, plain, 'Plain');
    await selectSet(w, 'Plain');
    const answer = await addFilter(w, plain, {
      name: 'Invoices',
      header: 'subject',
      op: 'contains',
      value: 'invoice',
      action: { type: 'fileinto', mailbox: 'Lists' },
    });
    expect(answer, logsOf(w)).toMatchObject({ kind: 'confirmation' });
    await clearMessages(w);
    await setAction(w, 'plugin.managesieve-setact');
    expect(await message(w), logsOf(w)).toMatchObject({ kind: 'confirmation' });
    await shot(w, plain, 'plain-active');
    const state = await serverState(w);
    expect(state.active).toBe('Plain');
    expectFilterFileRenders(state, 'header :contains "subject" "invoice"', 'fileinto "Lists";');
    // The connections that stored "Plain" logged in without STARTTLS: the clear-text listener.
    const since = w.server.logLines().slice(seen);
    const storing = new Set(
      since.filter((l) => l['command'] === 'PUTSCRIPT' && l['status'] === 'OK').map((l) => l['client']),
    );
    expect(storing.size).toBeGreaterThan(0);
    expect(since.filter((l) => storing.has(l['client']) && l['command'] === 'STARTTLS')).toEqual([]);
    expect(since.filter((l) => storing.has(l['client']) && l['event'] === 'login').map((l) => l['user'])).toContain(
      w.user.name,
    );
    deliver(w, 'invoice 2026-117');
    deliver(w, '[list] not filtered any more');
    expect(folder(w, 'Lists', 'invoice 2026-117')).toHaveLength(1);
    expect(inbox(w, '[list] not filtered any more')).toHaveLength(1);
  });

  it('over tls:// trusts only the configured CA: with another one Roundcube refuses the certificate and never logs in', async () => {
    const other = join(w.base, 'other-ca');
    mkdirSync(other);
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        join(other, 'ca.key'),
        '-out',
        join(other, 'ca.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=not the test CA',
      ],
      { stdio: 'pipe' },
    );
    await idle(w);
    w.rc.setManagesieve({ scheme: 'tls', port: w.tlsPort, caFile: join(other, 'ca.pem') });
    const seen = w.server.logLines().length;
    await clearMessages(w);
    await openSettings(w, 'plugin.managesieve');
    expect(await message(w)).toMatchObject({ kind: 'error', text: 'Unable to connect to server.' });
    await shot(w, 'starttls', 'wrong-ca-refused');
    const since = w.server.logLines().slice(seen);
    expect(since.some((l) => l['command'] === 'STARTTLS')).toBe(true);
    expect(since.filter((l) => l['event'] === 'login')).toEqual([]);
    // The filter file Exim reads is untouched by the failed attempt.
    expect((await serverState(w)).active).toBe('Plain');
  });
});
