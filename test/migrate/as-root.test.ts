/**
 * `tsieved migrate` run as root (as it is in production, and in CI) for a user who
 * is not root (uid 65534, nobody): the user controls everything below their home
 * and may plant symbolic links, FIFOs and hard links there. Checks: the store is
 * written through a file broker running as the user, so a link to another user's file or
 * store is not followed with root's rights (nothing of it reaches the user's scripts
 * or the report); a dry run reads the store without following links or blocking on
 * a FIFO; old files must be regular files owned by the user (or by root, with one
 * link, and only where fs.protected_hardlinks stops users linking root's files);
 * the marker of settled activation is written through that broker, as the user; a
 * save in the user's own session while migrating is not overwritten.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { constants } from 'node:fs';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Identity } from '../../src/auth/types.js';
import { loadConfig } from '../../src/config/loader.js';
import { silentLogger } from '../../src/log/logger.js';
import { eximFor } from '../../src/migrate/exim-setup.js';
import { migrateUser, type MigrateContext } from '../../src/migrate/run-user.js';
import { runMigrate } from '../../src/cli/migrate.js';
import { rootOwnedPolicy } from '../../src/migrate/safe-fs.js';
import { DEFAULT_LAYOUTS } from '../../src/migrate/sources.js';
import { loadProfile } from '../../src/sieve/index.js';
import { BrokerLauncher, defaultBrokerPath } from '../../src/storage/broker/launcher.js';
import { BROKER, ROOT, needs, tool } from '../helpers/tools.js';
import { writeMigrateConfig } from './config.js';

const NOBODY = 65534;
/** A uid that is neither the user's nor root's (no account needed for a file's owner). */
const OTHER = 65533;
const SECRET = 'VICTIM-SECRET-4b1d';
const VALID = '# Sieve filter\nrequire "fileinto";\nif header :contains "subject" "lists" { fileinto "lists"; }\n';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _e: BufferEncoding, done: () => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
}

let dir: string;
let homes: string;
let home: string;
let configFile: string;
const fifos: string[] = [];

async function migrate(...argv: string[]): Promise<{ code: number; out: string }> {
  const stdout = new Capture();
  const code = await runMigrate([...argv, '--config', configFile], { stdout, stderr: stdout });
  return { code, out: stdout.text };
}

/** Every regular file below `root` whose bytes contain `needle` (read as root). */
function filesContaining(root: string, needle: string): string[] {
  const found: string[] = [];
  const walk = (p: string): void => {
    const st = lstatSync(p);
    if (st.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
    else if (st.isFile() && readFileSync(p).includes(needle)) found.push(p);
  };
  walk(root);
  return found;
}

function mkfifo(path: string): void {
  execFileSync(tool('mkfifo'), [path]);
  fifos.push(path);
}

/** A root-only file outside every home. */
function secretFile(name: string, content = `${SECRET}\n`): string {
  const path = join(dir, name);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

describe('migrate run as root for another uid', needs(ROOT, BROKER, 'mkfifo'), () => {
  beforeEach(() => {
    if (!existsSync(defaultBrokerPath()))
      throw new Error('the file broker is missing: run `npm run build` first (npm test does)');
    dir = mkdtempSync(join(tmpdir(), 'tsieved-migrate-root-'));
    chmodSync(dir, 0o755);
    homes = join(dir, 'home');
    mkdirSync(homes, { mode: 0o755 });
    home = join(homes, 'nob');
    mkdirSync(home, { mode: 0o700 });
    chownSync(home, NOBODY, NOBODY);
    writeFileSync(join(dir, 'userdb'), `nob\tuid=${NOBODY}|gid=${NOBODY}|home=${home}|systempw={SHA256}x\n`);
    configFile = writeMigrateConfig(dir, homes, { scripts_dir: '{home}/sieve', filter_path: '{home}/.forward' }, [
      'fileinto',
    ]);
  });

  afterEach(() => {
    // A reader blocked in open(2) on a FIFO (the bug these tests guard against) is
    // released by a writer showing up.
    for (const f of fifos.splice(0)) {
      try {
        closeSync(openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        /* no reader waiting */
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  /** pysieved's layout, files owned by the user as pysieved (running as the user) left them. */
  function pysieved(scripts: Record<string, string>, active?: string): void {
    const store = join(home, '.pysieved');
    mkdirSync(store);
    chownSync(store, NOBODY, NOBODY);
    for (const [file, content] of Object.entries(scripts)) {
      writeFileSync(join(store, file), content);
      chownSync(join(store, file), NOBODY, NOBODY);
    }
    if (active) symlinkSync(`.pysieved/${active}`, join(home, '.forward'));
  }

  it('a ~/.forward linked to another user\'s file is not imported as "old-forward" (the store is opened as the user)', async () => {
    pysieved({ main: VALID });
    symlinkSync(secretFile('victim-secret'), join(home, '.forward'));
    // Where that link leads is not read as root, so routing is not proven: left alone.
    const refused = await migrate('--from', 'pysieved');
    expect(refused.code).toBe(1);
    expect(refused.out).toMatch(
      /routing: NOT PROVEN: \S+\.forward is a symbolic link to \S+victim-secret, outside the home directory; not followed as root/,
    );
    expect(refused.out).toMatch(/NOT MIGRATED/);
    expect(existsSync(join(home, 'sieve'))).toBe(false);
    const r = await migrate('--from', 'pysieved', '--accept-changes');
    expect(r.out).toMatch(/^nob: imported 1, unchanged 0, conflicts 0, failed 0; no active script$/m);
    expect(r.out).toMatch(/\.forward: points to \S+victim-secret, outside \S+; no script made active/);
    expect(r.code).toBe(1);
    expect(r.out).not.toContain(SECRET);
    expect(filesContaining(home, SECRET)).toEqual([]);
    const store = join(home, 'sieve');
    expect(readdirSync(store).filter((f) => !f.startsWith('.'))).toEqual(['main.sieve']);
    for (const f of readdirSync(store)) expect(lstatSync(join(store, f)).uid, f).toBe(NOBODY);
  });

  it("a ~/sieve linked to another user's store is neither read nor written", async () => {
    pysieved({ main: VALID });
    const victim = join(homes, 'victim');
    mkdirSync(join(victim, 'sieve'), { recursive: true, mode: 0o700 });
    writeFileSync(join(victim, 'sieve', 'main.sieve'), `# ${SECRET}\nkeep;\n`, { mode: 0o600 });
    chownSync(join(victim, 'sieve', 'main.sieve'), OTHER, OTHER);
    chownSync(join(victim, 'sieve'), OTHER, OTHER);
    chownSync(victim, OTHER, OTHER);
    symlinkSync(join(victim, 'sieve'), join(home, 'sieve'));
    const r = await migrate('--from', 'pysieved');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^nob: FAILED: /m);
    expect(r.out).not.toMatch(/"main": conflict/);
    expect(readdirSync(join(victim, 'sieve'))).toEqual(['main.sieve']);
    expect(readFileSync(join(victim, 'sieve', 'main.sieve'), 'utf8')).toBe(`# ${SECRET}\nkeep;\n`);
  });

  it('a dry run does not read a store script through a link (no "unchanged" for a file the user cannot read)', async () => {
    pysieved({ rules: VALID });
    mkdirSync(join(home, 'sieve'), { mode: 0o700 });
    chownSync(join(home, 'sieve'), NOBODY, NOBODY);
    // Same bytes as the old script: "unchanged" would tell the user what a root-only file holds.
    symlinkSync(secretFile('root-only', VALID), join(home, 'sieve', 'rules.sieve'));
    const before = filesContaining(dir, VALID).length;
    const r = await migrate('--from', 'pysieved', '--dry-run');
    expect(r.out).not.toMatch(/"rules": unchanged/);
    expect(r.out).toMatch(/"rules": failed \(.*symbolic link/);
    expect(filesContaining(dir, VALID).length).toBe(before);
  });

  it('a dry run does not block on a FIFO at the filter path, nor follow a link there', async () => {
    pysieved({ main: VALID });
    mkfifo(join(home, '.forward'));
    const r = await migrate('--from', 'pysieved', '--dry-run');
    expect(r.out).toMatch(/^nob: would import 1, /m);
    expect(r.out).toMatch(/\.forward is not a regular file/);
  });

  it('a dry run names a linked filter file without reading it', async () => {
    pysieved({ main: VALID });
    symlinkSync(secretFile('victim-secret'), join(home, '.forward'));
    const r = await migrate('--from', 'pysieved', '--dry-run');
    expect(r.out).toMatch(
      /\.forward is a symbolic link to \S+victim-secret, outside the home directory; not followed as root/,
    );
    expect(r.out).not.toContain(SECRET);
  });

  it("refuses old files that are FIFOs, another user's, or hard links to root's", async () => {
    pysieved({ fine: VALID });
    const store = join(home, '.pysieved');
    mkfifo(join(store, 'fifo'));
    writeFileSync(join(store, 'foreign'), `# ${SECRET}\nkeep;\n`);
    chownSync(join(store, 'foreign'), OTHER, OTHER);
    linkSync(secretFile('root-secret', `# ${SECRET}\nkeep;\n`), join(store, 'hardlink'));
    writeFileSync(join(store, 'roots'), VALID); // pysieved run with uid = -1 wrote root-owned scripts
    // Root's own files are read only where users cannot hard-link them (see below).
    const protectedLinks = readFileSync('/proc/sys/fs/protected_hardlinks', 'utf8').trim() === '1';
    const r = await migrate('--from', 'pysieved');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(
      new RegExp(
        `^nob: imported ${protectedLinks ? 2 : 1}, unchanged 0, conflicts 0, failed 0; no active script$`,
        'm',
      ),
    );
    expect(r.out).toMatch(/! \S+\/\.pysieved\/fifo: is not a regular file/);
    expect(r.out).toMatch(
      new RegExp(`! \\S+/\\.pysieved/foreign: is owned by uid ${OTHER}, not by the user; not read as root`),
    );
    expect(r.out).toMatch(/! \S+\/\.pysieved\/hardlink: is owned by root and has other hard links; not read as root/);
    expect(filesContaining(join(home, 'sieve'), SECRET)).toEqual([]);
  });

  it('refuses a regular ~/.dovecot.sieve owned by another user', async () => {
    mkdirSync(join(home, 'sieve'), { mode: 0o700 });
    chownSync(join(home, 'sieve'), NOBODY, NOBODY);
    writeFileSync(join(home, 'sieve', 'a.sieve'), VALID);
    chownSync(join(home, 'sieve', 'a.sieve'), NOBODY, NOBODY);
    writeFileSync(join(home, '.dovecot.sieve'), `# ${SECRET}\nkeep;\n`);
    chownSync(join(home, '.dovecot.sieve'), OTHER, OTHER);
    writeFileSync(configFile, readFileSync(configFile, 'utf8').replace('{home}/sieve', '{home}/.tsieved'));
    const r = await migrate('--from', 'dovecot');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(
      new RegExp(`! \\S+/\\.dovecot\\.sieve: is owned by uid ${OTHER}, not by the user; not read as root`),
    );
    expect(filesContaining(join(home, '.tsieved'), SECRET)).toEqual([]);
  });

  /** What runMigrate gives migrateUser, for tests that must step in between. */
  async function context(over: Partial<MigrateContext> = {}): Promise<MigrateContext> {
    const config = await loadConfig(configFile);
    const log = silentLogger();
    const profile = await loadProfile(config.sieve, config.storage.max_script_bytes, log);
    const exim = eximFor(undefined, config.sieve);
    return {
      config,
      layout: DEFAULT_LAYOUTS.pysieved,
      profile,
      dryRun: false,
      log,
      eximFile: '.forward',
      domain: 'example.org',
      acceptChanges: false,
      inPlace: false,
      ...(exim ? { exim } : {}),
      ...over,
    };
  }

  const identity = (): Identity => ({ user: 'nob', uid: NOBODY, gid: NOBODY, home, fields: {} });

  it('with fs.protected_hardlinks = 0, refuses a root-owned file the user could have hard-linked, and says why', async () => {
    pysieved({ main: VALID }, 'main');
    // The user linked root's 0600 file into the old store; root then replaced the
    // original by rename, as passwd(1) does with /etc/shadow: the link is root's,
    // with one link, exactly like a script pysieved (uid = -1) left.
    const shadow = secretFile('shadow', `root:$6$${SECRET}:19000:0:99999:7:::\n`);
    linkSync(shadow, join(home, '.pysieved', 'notes'));
    writeFileSync(`${shadow}.new`, 'root:$6$NEW:19001:0:99999:7:::\n', { mode: 0o600 });
    renameSync(`${shadow}.new`, shadow);
    expect(lstatSync(join(home, '.pysieved', 'notes'))).toMatchObject({ uid: 0, nlink: 1 });
    const sysctl = join(dir, 'protected_hardlinks');
    writeFileSync(sysctl, '0\n');
    const launcher = new BrokerLauncher({ storage: (await loadConfig(configFile)).storage, log: silentLogger() });
    try {
      const r = await migrateUser(identity(), await context({ launcher, rootOwned: await rootOwnedPolicy(sysctl) }));
      expect(r.scripts.map((s) => `${s.name}: ${s.outcome}`)).toEqual(['main: imported']);
      expect(r.active).toEqual({ kind: 'activated', name: 'main' });
      expect(r.problems).toEqual([
        {
          file: join(home, '.pysieved', 'notes'),
          message: expect.stringMatching(
            /^is owned by root; not read as root: fs\.protected_hardlinks is 0: a user could have hard-linked/,
          ),
        },
      ]);
    } finally {
      await launcher.close();
    }
    expect(filesContaining(join(home, 'sieve'), SECRET)).toEqual([]);
  });

  it("a save in the user's own session between migrate's look and its write is kept (decided under the store's lock)", async () => {
    pysieved({ main: '# Sieve filter\n# old pysieved rules\nkeep;\n' });
    const NEW = '# Sieve filter\n# what the user just saved in Roundcube\ndiscard;\n';
    const pl = new BrokerLauncher({ storage: (await loadConfig(configFile)).storage, log: silentLogger() });
    try {
      const session = await pl.open(identity());
      // The user's PUTSCRIPT lands right after migrate found no "main".
      let raced = false;
      const launcher = {
        openFiles(id: Identity) {
          const files = pl.openFiles(id);
          const read = files.ops.readFile.bind(files.ops);
          files.ops.readFile = async (path: string) => {
            try {
              return await read(path);
            } finally {
              if (path.endsWith('/main.sieve') && !raced) {
                raced = true;
                await session.put('main', Buffer.from(NEW));
              }
            }
          };
          return files;
        },
      };
      const r = await migrateUser(identity(), await context({ launcher }));
      expect(raced).toBe(true);
      expect(r.scripts.map((s) => `${s.name}: ${s.outcome}`)).toEqual(['main: conflict']);
      expect((await session.get('main')).toString()).toBe(NEW);
      // Nothing of the attempt is left behind.
      expect((await session.list()).map((s) => s.name)).toEqual(['main']);
      await session.close();
    } finally {
      await pl.close();
    }
  });

  it('a later run does not activate again what the user deactivated (the marker is written as the user)', async () => {
    writeFileSync(configFile, readFileSync(configFile, 'utf8').replace('{home}/.forward', '{home}/.public/.forward'));
    mkdirSync(join(home, '.public'));
    chownSync(join(home, '.public'), NOBODY, NOBODY);
    pysieved({ main: VALID }, 'main');
    const first = await migrate('--from', 'pysieved');
    expect(first.out).toMatch(/^nob: imported 1, unchanged 0, conflicts 0, failed 0; active "main" \(activated\)$/m);
    const marker = join(home, 'sieve', '.migrated');
    expect(lstatSync(marker).uid).toBe(NOBODY);
    expect(readFileSync(marker, 'utf8')).toMatch(/^outcome: activated$/m);
    const pl = new BrokerLauncher({ storage: (await loadConfig(configFile)).storage, log: silentLogger() });
    try {
      const session = await pl.open(identity());
      await session.setActive('');
      const second = await migrate('--from', 'pysieved');
      expect(second.code).toBe(0);
      expect(second.out).toMatch(
        /^nob: imported 0, unchanged 1, conflicts 0, failed 0; "main" not activated again: an earlier run settled activation \(activated "main" at [^)]*\); no active script now$/m,
      );
      expect((await session.list()).some((s) => s.active)).toBe(false);
      expect(existsSync(join(home, '.public', '.forward'))).toBe(false);
      await session.close();
    } finally {
      await pl.close();
    }
  });

  it('a dry run names the repair of an interrupted activation, made in memory only; the real run makes it as the user', async () => {
    pysieved({ main: VALID });
    const pl = new BrokerLauncher({ storage: (await loadConfig(configFile)).storage, log: silentLogger() });
    const filter = join(home, '.forward');
    const record = join(home, 'sieve', '.active');
    let minesFilter: Buffer;
    try {
      const session = await pl.open(identity());
      await session.put('mine', Buffer.from('keep;\n'));
      await session.put('other', Buffer.from('redirect "other@elsewhere.test";\n'));
      await session.setActive('mine');
      minesFilter = readFileSync(filter);
      const minesRecord = readFileSync(record);
      // SETACTIVE "other" cut off between the filter and the record.
      await session.setActive('other');
      await session.close();
      writeFileSync(record, minesRecord);
    } finally {
      await pl.close();
    }
    const othersFilter = readFileSync(filter);
    const dry = await migrate('--from', 'pysieved', '--dry-run');
    expect(dry.out).toMatch(
      /note: opening the store writes \S+\/nob\/\.forward again from the active script "mine", which it did not match/,
    );
    expect(readFileSync(filter)).toEqual(othersFilter);
    const real = await migrate('--from', 'pysieved', '--accept-changes');
    expect(real.code).toBe(0);
    const userLines = (out: string): string[] =>
      out
        .split('\n')
        .filter((l) => l.startsWith('nob: ') || l.startsWith('  '))
        .map((l) => l.replace(/would import|imported/g, 'import'));
    expect(userLines(real.out)).toEqual(userLines(dry.out));
    expect(real.out).not.toMatch(/is not the filter file compared/);
    expect(readFileSync(filter)).toEqual(minesFilter);
    expect(lstatSync(filter).uid).toBe(NOBODY);
  });
});
