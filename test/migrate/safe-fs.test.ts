/**
 * safe-fs.ts, the reads `tsieved migrate` makes as root in directories users
 * control: directories opened step by step without following links, and names
 * looked up in the directory that was opened even after the user swaps it for a
 * link; FIFOs refused without blocking; owners checked on the open file; a dry
 * run's FileOps that cannot write.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import {
  chownSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  dryRunFileOps,
  openDirBelow,
  ownerProblem,
  readOwnedRegularFile,
  rootOwnedPolicy,
} from '../../src/migrate/safe-fs.js';
import { ROOT, needs, tool } from '../helpers/tools.js';

let dir: string;
let home: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsieved-safe-fs-'));
  home = join(dir, 'home');
  mkdirSync(join(home, 'a', 'b'), { recursive: true });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('openDirBelow', () => {
  it('opens a directory below the home and refuses a link or a file on the way', async () => {
    const ok = await openDirBelow(home, join(home, 'a', 'b'));
    await ok.close();
    mkdirSync(join(dir, 'elsewhere'));
    symlinkSync(join(dir, 'elsewhere'), join(home, 'linked'));
    await expect(openDirBelow(home, join(home, 'linked', 'x'))).rejects.toMatchObject({
      path: join(home, 'linked'),
      message: 'is a symbolic link; not followed',
    });
    writeFileSync(join(home, 'file'), '');
    await expect(openDirBelow(home, join(home, 'file'))).rejects.toMatchObject({ message: 'is not a directory' });
    await expect(openDirBelow(home, join(home, 'missing', 'x'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('keeps looking into the directory it opened after the user swaps it for a link', async () => {
    writeFileSync(join(home, 'a', 'b', 'script'), 'mine');
    mkdirSync(join(dir, 'victim'));
    writeFileSync(join(dir, 'victim', 'script'), 'secret');
    const opened = await openDirBelow(home, join(home, 'a', 'b'));
    try {
      renameSync(join(home, 'a'), join(home, 'a-moved'));
      mkdirSync(join(home, 'a'));
      symlinkSync(join(dir, 'victim'), join(home, 'a', 'b'));
      expect(readdirSync(opened.via)).toEqual(['script']);
      const read = await readOwnedRegularFile(opened.at('script'), 100, {});
      expect(read.toString()).toBe('mine');
    } finally {
      await opened.close();
    }
  });
});

describe('readOwnedRegularFile', () => {
  it('refuses a FIFO at once and a link in the last step', needs('mkfifo'), async () => {
    execFileSync(tool('mkfifo'), [join(home, 'fifo')]);
    await expect(readOwnedRegularFile(join(home, 'fifo'), 100, {})).rejects.toMatchObject({
      message: 'is not a regular file',
    });
    writeFileSync(join(dir, 'target'), 'x');
    symlinkSync(join(dir, 'target'), join(home, 'link'));
    await expect(readOwnedRegularFile(join(home, 'link'), 100, {})).rejects.toMatchObject({ code: 'ELOOP' });
    expect((await readOwnedRegularFile(join(home, 'link'), 100, { follow: true })).toString()).toBe('x');
  });

  it(
    "as root, reads only the user's files and root's with one link (when hard links are protected)",
    needs(ROOT),
    async () => {
      const file = (name: string, uid: number): string => {
        const p = join(home, name);
        writeFileSync(p, name);
        chownSync(p, uid, uid);
        return p;
      };
      const policy = { ownerUid: 65534, rootOwned: true as const };
      expect((await readOwnedRegularFile(file('users', 65534), 100, policy)).toString()).toBe('users');
      expect((await readOwnedRegularFile(file('roots', 0), 100, policy)).toString()).toBe('roots');
      await expect(
        readOwnedRegularFile(join(home, 'roots'), 100, { ownerUid: 65534, rootOwned: 'WHY' }),
      ).rejects.toMatchObject({
        message: 'is owned by root; not read as root: WHY',
      });
      await expect(readOwnedRegularFile(file('others', 65533), 100, policy)).rejects.toMatchObject({
        message: 'is owned by uid 65533, not by the user; not read as root',
      });
      linkSync(join(home, 'roots'), join(home, 'roots-link'));
      await expect(readOwnedRegularFile(join(home, 'roots-link'), 100, policy)).rejects.toMatchObject({
        message: 'is owned by root and has other hard links; not read as root',
      });
    },
  );
});

describe('root-owned old files', () => {
  // With fs.protected_hardlinks = 0 a user can hard-link a root 0600 file into the
  // old store; once root replaces the original by rename (passwd does so with
  // /etc/shadow) the link is root's with one link, like a file pysieved (uid = -1) left.
  it('are accepted only when /proc/sys/fs/protected_hardlinks (or the file given) says 1', async () => {
    const sysctl = join(dir, 'protected_hardlinks');
    writeFileSync(sysctl, '1\n');
    expect(await rootOwnedPolicy(sysctl)).toBe(true);
    writeFileSync(sysctl, '0\n');
    const off = await rootOwnedPolicy(sysctl);
    expect(off).toMatch(/fs\.protected_hardlinks is 0: a user could have hard-linked a file of root's/);
    const missing = await rootOwnedPolicy(join(dir, 'absent'));
    expect(missing).toMatch(/cannot be read .*root-owned files are not read/);
    const single = { uid: 0, nlink: 1 };
    expect(ownerProblem(single, { ownerUid: 65534, rootOwned: true })).toBeUndefined();
    expect(ownerProblem(single, { ownerUid: 65534, rootOwned: off })).toBe(
      `is owned by root; not read as root: ${off as string}`,
    );
    // Not told: refused.
    expect(ownerProblem(single, { ownerUid: 65534 })).toMatch(/^is owned by root; not read as root/);
    // The user's own files and an unrestricted policy are unaffected.
    expect(ownerProblem({ uid: 65534, nlink: 1 }, { ownerUid: 65534, rootOwned: off })).toBeUndefined();
    expect(ownerProblem(single, {})).toBeUndefined();
  });
});

describe('dryRunFileOps', () => {
  it('reads, but every write fails with EROFS', async () => {
    writeFileSync(join(home, 'f'), 'data');
    const ops = dryRunFileOps({});
    expect((await ops.readFile(join(home, 'f'))).toString()).toBe('data');
    await expect(ops.createExclusive(join(home, 'g'), 0o600)).rejects.toMatchObject({ code: 'EROFS' });
    await expect(ops.rename(join(home, 'f'), join(home, 'g'))).rejects.toMatchObject({ code: 'EROFS' });
    await expect(ops.unlink(join(home, 'f'))).rejects.toMatchObject({ code: 'EROFS' });
    await expect(ops.mkdir(join(home, 'd'), 0o700)).rejects.toMatchObject({ code: 'EROFS' });
    expect(await readFile(join(home, 'f'), 'utf8')).toBe('data');
    // Without `follow`, stat does not follow a link: a linked script is not listed.
    symlinkSync(join(home, 'f'), join(home, 'l'));
    expect((await ops.stat(join(home, 'l'))).isFile()).toBe(false);
  });
});
