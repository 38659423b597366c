/**
 * `tsieved migrate` end to end on real temp directories: pysieved's and Dovecot's
 * layouts are built file by file as those servers leave them, the migration runs
 * through runMigrate (the CLI entry), and the results are read back through the
 * real FileStore. Checks: scripts byte-exact under their decoded names, the old
 * active script active and rendered into the filter file, the old files untouched
 * (a full snapshot of the old tree before and after), a second run changes nothing,
 * --dry-run changes nothing, Exim's dialect errors reported, conflicts and unsafe
 * files (symlinks to other files) refused with a non-zero exit.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { runMigrate } from '../../src/cli/migrate.js';
import { findExim } from '../../src/sieve/exim-probe.js';
import { FileStore } from '../../src/storage/file-store.js';
import { isTsievedFilter } from '../../src/storage/filter-file.js';
import { silentLogger } from '../../src/log/logger.js';
import { ROOT, needs } from '../helpers/tools.js';
import { writeMigrateConfig } from './config.js';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _e: BufferEncoding, done: () => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
}

const CAPS = [
  'fileinto',
  'envelope',
  'copy',
  'subaddress',
  'encoded-character',
  'comparator-i;ascii-numeric',
  'vacation',
];
const VALID = '# Sieve filter\nrequire "fileinto";\nif header :contains "subject" "lists" { fileinto "lists"; }\n';
const VALID2 = '# Sieve filter\nif address :is "from" "boss@example.org" { keep; stop; }\n';
const REJECTED = '# Sieve filter\nrequire "reject";\nreject "go away";\n';
const DOVECOT_SCRIPT = 'require ["fileinto"];\nif header :contains "list-id" "tsieved" { fileinto "tsieved"; }\n';

let dir: string;
let homes: string;
let configFile: string;

function writeConfig(storage: { scripts_dir: string; filter_path: string }): void {
  configFile = writeMigrateConfig(dir, homes, storage, CAPS);
}

function addUsers(...users: string[]): void {
  addUsersAs(process.getuid?.() ?? 1000, process.getgid?.() ?? 1000, ...users);
}

function addUsersAs(uid: number, gid: number, ...users: string[]): void {
  const lines = users.map((u) => `${u}\tuid=${uid}|gid=${gid}|home=${join(homes, u)}|systempw={SHA256}x`);
  writeFileSync(join(dir, 'userdb'), lines.join('\n') + '\n');
  for (const u of users) mkdirSync(join(homes, u), { recursive: true });
  if (uid !== process.getuid?.()) {
    // Run as root, the store is written by a worker running as the user: the user
    // owns the home, and can reach it.
    chmodSync(dir, 0o755);
    chmodSync(homes, 0o755);
    for (const u of users) chownSync(join(homes, u), uid, gid);
  }
}

/**
 * Without an Exim on this machine routing cannot be proven and a real run leaves
 * users alone: the import mechanics tested here then run with --accept-changes
 * (the proof itself is tested in routing-homes.test.ts, and below with --exim).
 */
const NO_EXIM = findExim() === undefined;

async function migrate(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const accept = NO_EXIM && !argv.includes('--exim') ? ['--accept-changes'] : [];
  const code = await runMigrate([...argv, ...accept, '--config', configFile], { stdout, stderr });
  return { code, out: stdout.text, err: stderr.text };
}

/** Every file, link and directory under `root` with its content hash or target and mtime. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (p: string): void => {
    const st = lstatSync(p);
    const rel = p.slice(root.length) || '/';
    if (st.isSymbolicLink()) out[rel] = `link ${readlinkSync(p)} ${st.mtimeMs}`;
    else if (st.isDirectory()) {
      out[rel] = `dir ${st.mode.toString(8)}`;
      for (const e of readdirSync(p)) walk(join(p, e));
    } else {
      out[rel] =
        `file ${st.mode.toString(8)} ${st.mtimeMs} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`;
    }
  };
  walk(root);
  return out;
}

/** The report's lines about users, the tense and the line saying a user was left alone aside. */
function userLines(out: string): string[] {
  return out
    .split('\n')
    .filter((l) => !/NOT MIGRATED|^dry run|^\d+ user\(s\)|^routing would change|^note: no Exim/.test(l))
    .map((l) => l.replace(/would import|imported/g, 'import').replace(/would be activated|activated/g, 'activate'));
}

/** Only the old layout's files (the migration may add tsieved's next to them). */
function oldFiles(snap: Record<string, string>, prefixes: string[]): Record<string, string> {
  return Object.fromEntries(
    Object.entries(snap).filter(([k]) => prefixes.some((p) => k === p || k.startsWith(p + '/'))),
  );
}

function storeOptionsFor(user: string, scriptsDir: string, filterPath: string) {
  return {
    scriptsDir: join(homes, user, scriptsDir),
    filterPath: join(homes, user, filterPath),
    limits: { maxScripts: 100, maxScriptBytes: 1 << 20, maxTotalBytes: 0 },
    filterMode: 0o644,
    createBelow: join(homes, user),
    log: silentLogger(),
  };
}

function storeFor(user: string, scriptsDir: string, filterPath: string): FileStore {
  return new FileStore(storeOptionsFor(user, scriptsDir, filterPath));
}

/** pysieved's Exim layout: quoted names in .pysieved/, .forward -> .pysieved/<active>. */
function pysievedUser(user: string, scripts: Record<string, string>, active?: string): void {
  const store = join(homes, user, '.pysieved');
  mkdirSync(store, { recursive: true });
  for (const [file, content] of Object.entries(scripts)) writeFileSync(join(store, file), content);
  if (active) symlinkSync(`.pysieved/${active}`, join(homes, user, '.forward'));
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsieved-migrate-'));
  homes = join(dir, 'home');
  mkdirSync(homes);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('migrate --from pysieved', () => {
  beforeEach(() => writeConfig({ scripts_dir: '{home}/sieve', filter_path: '{home}/.forward' }));

  it('imports every script under its decoded name, byte-exact, and activates the old active one', async () => {
    addUsers('alice');
    pysievedUser(
      'alice',
      { 'my%20rules': VALID, 'r%C3%A8gles': VALID2, exim: REJECTED, '.hidden': VALID, 'backup~': VALID },
      'my%20rules',
    );
    const before = oldFiles(snapshot(join(homes, 'alice')), ['/.pysieved']);
    const forwardTarget = readlinkSync(join(homes, 'alice', '.forward'));

    const r = await migrate('--from', 'pysieved');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /^alice: imported 3, unchanged 0, conflicts 0, failed 0; active "my rules" \(activated\); 1 script\(s\) Exim would reject$/m,
    );
    expect(r.out).toMatch(/"exim": imported; Exim would reject it:\n\s+\S+exim:\d+:\d+: error: /);

    const store = storeFor('alice', 'sieve', '.forward');
    const list = await store.list();
    expect(list.map((s) => s.name).sort()).toEqual(['exim', 'my rules', 'règles']);
    expect(list.find((s) => s.active)?.name).toBe('my rules');
    expect((await store.get('my rules')).toString()).toBe(VALID);
    expect((await store.get('règles')).toString()).toBe(VALID2);
    expect((await store.get('exim')).toString()).toBe(REJECTED);

    // The filter Exim reads is now tsieved's rendering of the same script...
    const filter = readFileSync(join(homes, 'alice', '.forward'));
    expect(isTsievedFilter(filter)).toBe(true);
    expect(filter.toString()).toContain('fileinto "lists";');
    // ...the symlink it replaced is kept as a backup with the old content, and the
    // old scripts are untouched.
    const backups = readdirSync(join(homes, 'alice')).filter((f) => f.startsWith('.forward.tsieved-backup-'));
    expect(backups).toHaveLength(1);
    expect(readFileSync(join(homes, 'alice', backups[0]), 'utf8')).toBe(VALID);
    expect(oldFiles(snapshot(join(homes, 'alice')), ['/.pysieved'])).toEqual(before);
    expect(forwardTarget).toBe('.pysieved/my%20rules');
  });

  it('is idempotent: a second run changes nothing and says so', async () => {
    addUsers('alice', 'bob');
    pysievedUser('alice', { a: VALID, b: VALID2 }, 'b');
    pysievedUser('bob', { only: VALID });
    const first = await migrate('--from', 'pysieved');
    expect(first.code).toBe(0);
    const after1 = snapshot(homes);
    const second = await migrate('--from', 'pysieved');
    expect(second.code).toBe(0);
    expect(second.out).toMatch(
      /^alice: imported 0, unchanged 2, conflicts 0, failed 0; active "b" \(already active\)$/m,
    );
    expect(second.out).toMatch(/^bob: imported 0, unchanged 1, conflicts 0, failed 0; no active script$/m);
    expect(snapshot(homes)).toEqual(after1);
  });

  it('a pysieved script named "old-forward" is imported, not reported as kept and then deleted; a second run changes nothing', async () => {
    // .forward is both pysieved's active link and tsieved's filter path: opening the
    // store preserves it as "old-forward", a copy of "main" that activation drops.
    addUsers('bob');
    pysievedUser('bob', { main: VALID, 'old-forward': VALID2 }, 'main');
    const dry = await migrate('--from', 'pysieved', '--dry-run');
    expect(dry.out).toMatch(
      /^bob: would import 2, unchanged 0, conflicts 0, failed 0; active "main" \(would be activated\)$/m,
    );

    const first = await migrate('--from', 'pysieved');
    expect(first.out).toMatch(/^bob: imported 2, unchanged 0, conflicts 0, failed 0; active "main" \(activated\)$/m);
    expect(first.out).not.toMatch(/conflict \(/);
    expect(first.code).toBe(0);
    const store = storeFor('bob', 'sieve', '.forward');
    expect((await store.list()).map((s) => `${s.name}${s.active ? '*' : ''}`)).toEqual(['main*', 'old-forward']);
    expect((await store.get('old-forward')).toString()).toBe(VALID2);
    expect(readFileSync(join(homes, 'bob', '.forward'), 'utf8')).toContain('fileinto "lists";');

    const after1 = snapshot(homes);
    const second = await migrate('--from', 'pysieved');
    expect(second.code).toBe(0);
    expect(second.out).toMatch(
      /^bob: imported 0, unchanged 2, conflicts 0, failed 0; active "main" \(already active\)$/m,
    );
    expect(snapshot(homes)).toEqual(after1);
  });

  it('activates the very file the old link names when two files decode to one name', async () => {
    // "a b" (as a user might have copied it in) and "a%20b" (as pysieved named it)
    // are both the script "a b"; .forward links to the second.
    addUsers('alice');
    pysievedUser('alice', { 'a b': VALID2, 'a%20b': VALID }, 'a%20b');
    const r = await migrate('--from', 'pysieved');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^alice: imported 1, unchanged 0, conflicts 1, failed 0; active "a b" \(activated\)$/m);
    const store = storeFor('alice', 'sieve', '.forward');
    expect((await store.get('a b')).toString()).toBe(VALID);
    expect(readFileSync(join(homes, 'alice', '.forward'), 'utf8')).toContain('fileinto "lists";');
  });

  it('without an Exim to compare with, a user whose filter file would change is left alone, and the run says why', async () => {
    addUsers('alice');
    pysievedUser('alice', { a: VALID }, 'a');
    const before = snapshot(homes);
    const r = await migrate('--from', 'pysieved', '--exim', join(dir, 'no-such-exim'));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/routing: NOT PROVEN: .*no-such-exim -bf did not run/);
    expect(r.out).toMatch(/NOT MIGRATED/);
    expect(r.out).toMatch(
      /routing would change or is not proven for: alice; left alone unless --accept-changes is given/,
    );
    expect(snapshot(homes)).toEqual(before);
    const accepted = await migrate('--from', 'pysieved', '--exim', join(dir, 'no-such-exim'), '--accept-changes');
    expect(accepted.code).toBe(0);
    expect(accepted.out).toMatch(/^alice: imported 1, unchanged 0, conflicts 0, failed 0; active "a" \(activated\)$/m);
  });

  it('a hand edit below the marker, which the open repairs, is named by the dry run and compared as repaired', async () => {
    addUsers('alice');
    pysievedUser('alice', { a: VALID });
    const store = await FileStore.open(storeOptionsFor('alice', 'sieve', '.forward'));
    await store.put('mine', Buffer.from('keep;\n'));
    await store.setActive('mine');
    const filter = join(homes, 'alice', '.forward');
    writeFileSync(filter, readFileSync(filter, 'utf8') + 'redirect "edited@elsewhere.test";\n');
    const before = snapshot(homes);
    const dry = await migrate('--from', 'pysieved', '--dry-run');
    // The repair was made in memory only.
    expect(snapshot(homes)).toEqual(before);
    const r = await migrate('--from', 'pysieved');
    expect(r.out).toMatch(
      /note: opening the store writes \S+\/alice\/\.forward again from the active script "mine", which it did not match \(an interrupted change, or an edit by hand\); the file as it is now is backed up beside it\n/,
    );
    // What the real run wrote is what was compared: the store's repair is no surprise any more.
    expect(r.out).not.toMatch(/is not the filter file compared/);
    expect(userLines(r.out)).toEqual(userLines(dry.out));
    if (!NO_EXIM) {
      expect(r.out).toMatch(
        /routing: CHANGES:\n\s+- a personal message: forwarded to edited@elsewhere\.test, delivered to the inbox; afterwards delivered to the inbox/,
      );
      expect(r.code).toBe(1);
    }
  });

  it('an interrupted activation and a crashed write: the dry run prints what the real run prints, and changes nothing', async () => {
    addUsers('alice');
    pysievedUser('alice', { a: VALID });
    const opts = storeOptionsFor('alice', 'sieve', '.forward');
    const store = await FileStore.open(opts);
    await store.put('mine', Buffer.from('keep;\n'));
    await store.put('other', Buffer.from('redirect "other@elsewhere.test";\n'));
    await store.setActive('mine');
    const filter = join(homes, 'alice', '.forward');
    const minesFilter = readFileSync(filter);
    const record = join(opts.scriptsDir, '.active');
    const minesRecord = readFileSync(record);
    // SETACTIVE "other" cut off between the filter and the record: Exim runs
    // "other", the record still names "mine" (what the user was last told).
    await store.setActive('other');
    writeFileSync(record, minesRecord);
    // And the temp file of a write that crashed an hour and more ago.
    const temp = join(opts.scriptsDir, '.mine.sieve.tsieved-tmp.crashed');
    writeFileSync(temp, 'kee');
    const old = new Date(Date.now() - 2 * 3600_000);
    utimesSync(temp, old, old);

    const before = snapshot(homes);
    const dry = await migrate('--from', 'pysieved', '--dry-run');
    expect(snapshot(homes)).toEqual(before);
    expect(dry.out).toMatch(
      /note: opening the store writes \S+\/alice\/\.forward again from the active script "mine", which it did not match \(an interrupted change, or an edit by hand\)\n/,
    );
    expect(dry.out).toMatch(/note: opening the store removes 1 temporary file\(s\) an interrupted write left\n/);
    if (!NO_EXIM) {
      // Exim runs "other" today; after the repair it runs "mine": said, and left alone.
      expect(dry.out).toMatch(
        /routing: CHANGES:\n\s+- a personal message: forwarded to other@elsewhere\.test; afterwards delivered to the inbox/,
      );
      const refused = await migrate('--from', 'pysieved');
      expect(refused.code).toBe(1);
      expect(userLines(refused.out)).toEqual(userLines(dry.out));
      expect(snapshot(homes)).toEqual(before);
    }
    const real = await migrate('--from', 'pysieved', '--accept-changes');
    expect(real.code).toBe(0);
    expect(userLines(real.out)).toEqual(userLines(dry.out));
    expect(real.out).not.toMatch(/is not the filter file compared/);
    // The real open made the repairs the dry run named.
    expect(readFileSync(filter)).toEqual(minesFilter);
    expect(existsSync(temp)).toBe(false);
  });

  it.skipIf(NO_EXIM)(
    'at a cut-over, a later change the user made in tsieved is named, without claiming the run left them alone',
    async () => {
      writeConfig({ scripts_dir: '{home}/sieve', filter_path: '{home}/.public/.forward' });
      addUsers('alice');
      mkdirSync(join(homes, 'alice', '.public'));
      pysievedUser('alice', { a: VALID }, 'a');
      expect((await migrate('--from', 'pysieved')).code).toBe(0);
      const store = await FileStore.open(storeOptionsFor('alice', 'sieve', '.public/.forward'));
      await store.put('a', Buffer.from('redirect "new@elsewhere.test";\n'));
      const r = await migrate('--from', 'pysieved');
      expect(r.code).toBe(1);
      expect(r.out).toMatch(
        /routing: CHANGES:\n\s+- a personal message: delivered to the inbox; afterwards forwarded to new@elsewhere\.test/,
      );
      expect(r.out).not.toMatch(/NOT MIGRATED/);
    },
  );

  it('--dry-run reports what it would do and changes nothing', async () => {
    addUsers('alice');
    pysievedUser('alice', { a: VALID, bad: REJECTED }, 'a');
    const before = snapshot(homes);
    const r = await migrate('--from', 'pysieved', '--dry-run');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /^alice: would import 2, unchanged 0, conflicts 0, failed 0; active "a" \(would be activated\); 1 script\(s\) Exim would reject$/m,
    );
    expect(r.out).toMatch(/not written by tsieved: opening the store backs it up/);
    expect(r.out).toMatch(/^dry run, nothing changed: /m);
    expect(snapshot(homes)).toEqual(before);
    // And the real run then does what the dry run said.
    const real = await migrate('--from', 'pysieved');
    expect(real.out).toMatch(/^alice: imported 2, unchanged 0, conflicts 0, failed 0; active "a" \(activated\)/m);
  });

  it('keeps a different tsieved script of the same name and exits non-zero', async () => {
    addUsers('alice');
    pysievedUser('alice', { rules: VALID });
    const store = await FileStore.open({
      scriptsDir: join(homes, 'alice', 'sieve'),
      filterPath: join(homes, 'alice', '.forward'),
      limits: { maxScripts: 100, maxScriptBytes: 1 << 20, maxTotalBytes: 0 },
      filterMode: 0o644,
      log: silentLogger(),
    });
    await store.put('rules', Buffer.from(VALID2));
    const r = await migrate('--from', 'pysieved');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/"rules": conflict \(tsieved already has a different script of this name; kept tsieved's\)/);
    expect((await store.get('rules')).toString()).toBe(VALID2);
  });

  it('keeps an active script the user chose in tsieved', async () => {
    addUsers('alice');
    pysievedUser('alice', { old: VALID }, 'old');
    writeConfig({ scripts_dir: '{home}/sieve', filter_path: '{home}/.public/.forward' });
    mkdirSync(join(homes, 'alice', '.public'));
    const store = await FileStore.open({
      scriptsDir: join(homes, 'alice', 'sieve'),
      filterPath: join(homes, 'alice', '.public', '.forward'),
      limits: { maxScripts: 100, maxScriptBytes: 1 << 20, maxTotalBytes: 0 },
      filterMode: 0o644,
      log: silentLogger(),
    });
    await store.put('new', Buffer.from(VALID2));
    await store.setActive('new');
    const r = await migrate('--from', 'pysieved');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/tsieved's active script "new" kept \(old active: "old"\)/);
    expect((await store.list()).find((s) => s.active)?.name).toBe('new');
    // The user switches the filter off: a later run does not turn the old one on.
    await store.setActive('');
    const again = await migrate('--from', 'pysieved');
    expect(again.out).toMatch(
      /"old" not activated again: an earlier run settled activation \(kept "new" at [^)]*\); no active script now/,
    );
    expect((await store.list()).some((s) => s.active)).toBe(false);
  });

  it('a later run never activates again what the user deactivated in tsieved since', async () => {
    // HCoop: the filter is ~/.public/.forward, so pysieved's ~/.forward link stays and
    // every run finds "main" as the old active script.
    writeConfig({ scripts_dir: '{home}/sieve', filter_path: '{home}/.public/.forward' });
    addUsers('hank');
    mkdirSync(join(homes, 'hank', '.public'));
    pysievedUser('hank', { main: VALID }, 'main');
    const first = await migrate('--from', 'pysieved');
    expect(first.out).toMatch(/^hank: imported 1, unchanged 0, conflicts 0, failed 0; active "main" \(activated\)$/m);
    const marker = join(homes, 'hank', 'sieve', '.migrated');
    expect(readFileSync(marker, 'utf8')).toMatch(/^outcome: activated\nscript: "main"\nat: \d{4}-/m);
    const store = storeFor('hank', 'sieve', '.public/.forward');
    expect((await store.list()).map((s) => `${s.name}${s.active ? '*' : ''}`)).toEqual(['main*']);

    await store.setActive(''); // the user's SETACTIVE ""
    const filter = join(homes, 'hank', '.public', '.forward');
    expect(existsSync(filter)).toBe(false);
    const before = snapshot(homes);
    const dry = await migrate('--from', 'pysieved', '--dry-run');
    expect(dry.out).toMatch(
      /^hank: would import 0, unchanged 1, conflicts 0, failed 0; "main" not activated again: an earlier run settled activation \(activated "main" at \d{4}-[^)]*\); no active script now$/m,
    );
    const second = await migrate('--from', 'pysieved');
    expect(second.code).toBe(0);
    expect(second.out).toMatch(
      /^hank: imported 0, unchanged 1, conflicts 0, failed 0; "main" not activated again: an earlier run settled activation \(activated "main" at [^)]*\); no active script now$/m,
    );
    expect((await store.list()).some((s) => s.active)).toBe(false);
    expect(existsSync(filter)).toBe(false);
    expect(snapshot(homes)).toEqual(before);
  });

  it('records activation settled by an earlier version (no marker yet) when it finds it active', async () => {
    writeConfig({ scripts_dir: '{home}/sieve', filter_path: '{home}/.public/.forward' });
    addUsers('ivy');
    mkdirSync(join(homes, 'ivy', '.public'));
    pysievedUser('ivy', { main: VALID }, 'main');
    await migrate('--from', 'pysieved');
    const marker = join(homes, 'ivy', 'sieve', '.migrated');
    rmSync(marker);
    const second = await migrate('--from', 'pysieved');
    expect(second.out).toMatch(/active "main" \(already active\)$/m);
    expect(readFileSync(marker, 'utf8')).toMatch(/^outcome: found active\nscript: "main"$/m);
    await storeFor('ivy', 'sieve', '.public/.forward').setActive('');
    const third = await migrate('--from', 'pysieved');
    expect(third.out).toMatch(
      /"main" not activated again: an earlier run settled activation \(found active "main" at /,
    );
    expect((await storeFor('ivy', 'sieve', '.public/.forward').list()).some((s) => s.active)).toBe(false);
  });

  it('refuses symlinks planted in the old store and a store that is a symlink', async () => {
    addUsers('alice', 'mallory');
    const secret = join(dir, 'secret');
    writeFileSync(secret, 'root:$6$secret\n');
    pysievedUser('alice', { fine: VALID });
    symlinkSync(secret, join(homes, 'alice', '.pysieved', 'evil'));
    mkdirSync(join(dir, 'elsewhere'));
    writeFileSync(join(dir, 'elsewhere', 'stolen'), 'secret data');
    symlinkSync(join(dir, 'elsewhere'), join(homes, 'mallory', '.pysieved'));
    const r = await migrate('--from', 'pysieved');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/! \S+\/alice\/\.pysieved\/evil: is a symbolic link; not followed/);
    expect(r.out).toMatch(/! \S+\/mallory\/\.pysieved: is a symbolic link; not followed/);
    const names = (await storeFor('alice', 'sieve', '.forward').list()).map((s) => s.name);
    expect(names).toEqual(['fine']);
    expect(() => readdirSync(join(homes, 'mallory', 'sieve'))).toThrow();
  });

  it('an active link pointing outside the store activates nothing', async () => {
    addUsers('alice');
    pysievedUser('alice', { a: VALID });
    writeFileSync(join(dir, 'outside'), VALID2);
    writeConfig({ scripts_dir: '{home}/sieve', filter_path: '{home}/.public/.forward' });
    mkdirSync(join(homes, 'alice', '.public'));
    symlinkSync(join(dir, 'outside'), join(homes, 'alice', '.forward'));
    const r = await migrate('--from', 'pysieved');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/\.forward: points to \S+outside, outside \S+; no script made active/);
    // Not root: Exim follows the user's link, and so does the migration, carrying
    // what it reads to the new filter file, so the switch changes nothing.
    const store = storeFor('alice', 'sieve', '.public/.forward');
    expect((await store.list()).filter((s) => s.active).map((s) => s.name)).toEqual(['old-forward']);
    expect((await store.get('old-forward')).toString()).toBe(VALID2);
    if (!NO_EXIM) expect(r.out).toMatch(/routing: unchanged/);
  });

  it('migrates only the users named, and fails for unknown ones', async () => {
    addUsers('alice', 'bob');
    pysievedUser('alice', { a: VALID });
    pysievedUser('bob', { b: VALID });
    const r = await migrate('--from', 'pysieved', 'bob', 'nobody-here');
    expect(r.code).toBe(1);
    expect(r.out).not.toMatch(/^alice/m);
    expect(r.out).toMatch(/^bob: imported 1/m);
    expect(r.out).toMatch(/^nobody-here: FAILED: no such user$/m);
    expect(() => readdirSync(join(homes, 'alice', 'sieve'))).toThrow();
  });

  it('takes the layout from --scripts-dir and --active-link (pysieved given ~/.public as home)', async () => {
    writeConfig({ scripts_dir: '{home}/sieve', filter_path: '{home}/.public/.forward' });
    addUsers('gina');
    const pub = join(homes, 'gina', '.public');
    mkdirSync(join(pub, '.pysieved'), { recursive: true });
    writeFileSync(join(pub, '.pysieved', 'main'), VALID);
    symlinkSync('.pysieved/main', join(pub, '.forward'));
    const r = await migrate(
      '--from',
      'pysieved',
      '--scripts-dir',
      '.public/.pysieved',
      '--active-link',
      '.public/.forward',
    );
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^gina: imported 1, unchanged 0, conflicts 0, failed 0; active "main" \(activated\)$/m);
    const again = await migrate(
      '--from',
      'pysieved',
      '--scripts-dir',
      '.public/.pysieved',
      '--active-link',
      '.public/.forward',
    );
    expect(again.out).toMatch(
      /^gina: imported 0, unchanged 1, conflicts 0, failed 0; active "main" \(already active\)$/m,
    );
  });

  it('run as root, leaves the imported files owned by the user', needs(ROOT), async () => {
    addUsersAs(65534, 65534, 'nobody-user');
    pysievedUser('nobody-user', { a: VALID }, 'a');
    const r = await migrate('--from', 'pysieved');
    expect(r.code).toBe(0);
    const store = join(homes, 'nobody-user', 'sieve');
    for (const f of readdirSync(store)) {
      if (f === '.lock') continue;
      expect(lstatSync(join(store, f)).uid, f).toBe(65534);
    }
    expect(lstatSync(store).uid).toBe(65534);
    expect(lstatSync(join(homes, 'nobody-user', '.forward')).uid).toBe(65534);
  });

  it('a user without old scripts is reported and left alone', async () => {
    addUsers('carol');
    const before = snapshot(homes);
    const r = await migrate('--from', 'pysieved');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^carol: nothing to migrate/m);
    expect(snapshot(homes)).toEqual(before);
  });
});

describe('migrate --from dovecot', () => {
  it('imports ~/sieve/*.sieve and the script ~/.dovecot.sieve links to', async () => {
    writeConfig({ scripts_dir: '{home}/.tsieved', filter_path: '{home}/.forward' });
    addUsers('dave');
    const sieveDir = join(homes, 'dave', 'sieve');
    mkdirSync(join(sieveDir, 'tmp'), { recursive: true });
    writeFileSync(join(sieveDir, 'roundcube.sieve'), DOVECOT_SCRIPT);
    writeFileSync(join(sieveDir, 'my rules.sieve'), VALID2);
    writeFileSync(join(sieveDir, 'roundcube.svbin'), Buffer.from([0, 1, 2, 3]));
    writeFileSync(join(sieveDir, '.hidden.sieve'), VALID);
    symlinkSync('sieve/roundcube.sieve', join(homes, 'dave', '.dovecot.sieve'));
    const before = oldFiles(snapshot(join(homes, 'dave')), ['/sieve', '/.dovecot.sieve']);

    const r = await migrate('--from', 'dovecot');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^dave: imported 2, unchanged 0, conflicts 0, failed 0; active "roundcube" \(activated\)$/m);
    const store = storeFor('dave', '.tsieved', '.forward');
    expect((await store.list()).map((s) => `${s.name}${s.active ? '*' : ''}`).sort()).toEqual([
      'my rules',
      'roundcube*',
    ]);
    expect((await store.get('roundcube')).toString()).toBe(DOVECOT_SCRIPT);
    // A Dovecot script has no "# Sieve filter" line; the filter file gets one.
    expect(readFileSync(join(homes, 'dave', '.forward'), 'utf8')).toMatch(/^# Sieve filter\n/);
    expect(oldFiles(snapshot(join(homes, 'dave')), ['/sieve', '/.dovecot.sieve'])).toEqual(before);

    const again = await migrate('--from', 'dovecot');
    expect(again.out).toMatch(
      /^dave: imported 0, unchanged 2, conflicts 0, failed 0; active "roundcube" \(already active\)$/m,
    );
  });

  it('works when tsieved shares the ~/sieve directory with Dovecot', async () => {
    writeConfig({ scripts_dir: '{home}/sieve', filter_path: '{home}/.forward' });
    addUsers('erin');
    const sieveDir = join(homes, 'erin', 'sieve');
    mkdirSync(sieveDir, { recursive: true });
    writeFileSync(join(sieveDir, 'roundcube.sieve'), DOVECOT_SCRIPT);
    writeFileSync(join(sieveDir, 'with space.sieve'), VALID2);
    symlinkSync('sieve/with space.sieve', join(homes, 'erin', '.dovecot.sieve'));
    // Without --in-place it stops: tsieved would write into Dovecot's own directory.
    const refused = await migrate('--from', 'dovecot');
    expect(refused.code).toBe(1);
    expect(refused.out).toMatch(/^erin: FAILED: .*the directory migrated from; .*--in-place/m);
    expect(readdirSync(sieveDir).sort()).toEqual(['roundcube.sieve', 'with space.sieve']);
    const r = await migrate('--from', 'dovecot', '--in-place');
    expect(r.code).toBe(0);
    // "roundcube.sieve" already is tsieved's file for "roundcube"; "with space" gets an encoded file beside the old one.
    expect(r.out).toMatch(/^erin: imported 1, unchanged 1, conflicts 0, failed 0; active "with space" \(activated\)$/m);
    expect(readFileSync(join(sieveDir, 'with space.sieve'), 'utf8')).toBe(VALID2);
    expect(readFileSync(join(sieveDir, 'roundcube.sieve'), 'utf8')).toBe(DOVECOT_SCRIPT);
    // Every later run reports the same counts (tsieved's own files are not taken for Dovecot's).
    const second = await migrate('--from', 'dovecot', '--in-place');
    const third = await migrate('--from', 'dovecot', '--in-place');
    expect(second.out).toMatch(
      /^erin: imported 0, unchanged 2, conflicts 0, failed 0; active "with space" \(already active\)$/m,
    );
    expect(third.out).toBe(second.out);
  });

  it('a regular ~/.dovecot.sieve is imported as a script of its own and made active', async () => {
    writeConfig({ scripts_dir: '{home}/.tsieved', filter_path: '{home}/.forward' });
    addUsers('fred');
    mkdirSync(join(homes, 'fred', 'sieve'));
    writeFileSync(join(homes, 'fred', 'sieve', 'other.sieve'), VALID2);
    writeFileSync(join(homes, 'fred', '.dovecot.sieve'), DOVECOT_SCRIPT);
    const r = await migrate('--from', 'dovecot');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/active "dovecot-active" \(activated\)/);
    expect(readFileSync(join(homes, 'fred', '.dovecot.sieve'), 'utf8')).toBe(DOVECOT_SCRIPT);
  });

  it('a regular ~/.dovecot.sieve gets a name no script has, and it, not the namesake, is activated', async () => {
    writeConfig({ scripts_dir: '{home}/.tsieved', filter_path: '{home}/.forward' });
    addUsers('dora');
    mkdirSync(join(homes, 'dora', 'sieve'));
    writeFileSync(join(homes, 'dora', 'sieve', 'dovecot-active.sieve'), 'discard;\n');
    writeFileSync(join(homes, 'dora', '.dovecot.sieve'), 'keep;\n');
    const r = await migrate('--from', 'dovecot');
    expect(r.out).toMatch(
      /^dora: imported 2, unchanged 0, conflicts 0, failed 0; active "dovecot-active-2" \(activated\)$/m,
    );
    expect(r.code).toBe(0);
    const store = storeFor('dora', '.tsieved', '.forward');
    expect((await store.list()).map((s) => `${s.name}${s.active ? '*' : ''}`)).toEqual([
      'dovecot-active',
      'dovecot-active-2*',
    ]);
    expect((await store.get('dovecot-active')).toString()).toBe('discard;\n');
    // Exim runs what Dovecot ran.
    const filter = readFileSync(join(homes, 'dora', '.forward'), 'utf8');
    expect(filter).toContain('keep;');
    expect(filter).not.toContain('discard;');

    const again = await migrate('--from', 'dovecot');
    expect(again.code).toBe(0);
    expect(again.out).toMatch(
      /^dora: imported 0, unchanged 2, conflicts 0, failed 0; active "dovecot-active-2" \(already active\)$/m,
    );
  });
});

describe('migrate usage', () => {
  it('rejects a missing or unknown --from and unsafe layout paths', async () => {
    writeConfig({ scripts_dir: '{home}/sieve', filter_path: '{home}/.forward' });
    addUsers('alice');
    expect((await migrate()).code).toBe(2);
    expect((await migrate('--from', 'cyrus')).code).toBe(2);
    expect((await migrate('--from', 'pysieved', '--scripts-dir', '../other')).code).toBe(2);
    expect((await migrate('--from', 'pysieved', '--active-link', '/etc/passwd')).code).toBe(2);
  });

  it('reports a broken configuration file', async () => {
    configFile = join(dir, 'broken.toml');
    writeFileSync(configFile, '[storage]\nno_such_key = 1\n');
    const stderr = new Capture();
    const code = await runMigrate(['--from', 'pysieved', '--config', configFile], { stdout: new Capture(), stderr });
    expect(code).toBe(2);
    expect(stderr.text).toMatch(/no_such_key/);
  });
});
