import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PasswdFileBackend, parsePasswdFileLine } from '../../src/auth/passwd-file.js';
import { costClass, deriveScramCredentials } from '../../src/auth/password-hash.js';
import type { AuthContext } from '../../src/auth/types.js';
import { PASSWORDS, captureLogger, madeBy } from './util.js';

const ctx: AuthContext = { remoteAddress: '127.0.0.1', secure: true };
const dove = (scheme: string, pw: string): string => madeBy('doveadm', ['pw', '-s', scheme, '-p', pw]);

describe('parsePasswdFileLine', () => {
  it('reads all seven fields and the extra fields', () => {
    const r = parsePasswdFileLine(
      'u@d.org:{PLAIN}pw:1001:1002:Some One:/home/u::userdb_mail=maildir:~/Mail nodelay x=a:b',
    );
    expect(r.kind).toBe('account');
    if (r.kind !== 'account') return;
    expect(r.account.stored).toBe('{PLAIN}pw');
    expect(r.account.identity).toEqual({
      user: 'u@d.org',
      uid: 1001,
      gid: 1002,
      home: '/home/u',
      mail: 'maildir:~/Mail',
      fields: { gecos: 'Some One', userdb_mail: 'maildir:~/Mail', nodelay: '', x: 'a:b' },
    });
  });

  it('accepts short lines; an empty password field means no password', () => {
    const r = parsePasswdFileLine('bob:');
    expect(r.kind === 'account' && r.account.stored).toBeUndefined();
    expect(parsePasswdFileLine('bob:$6$x$y').kind).toBe('account');
  });

  it('flags malformed lines', () => {
    for (const bad of ['nocolon', ':pw', 'u:pw:abc', 'u:pw:1:grp', 'u:pw:1:1::/h::=v']) {
      expect(parsePasswdFileLine(bad).kind, bad).toBe('malformed');
    }
  });
});

describe('PasswdFileBackend', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tsieved-passwd-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('verifies every Dovecot scheme the site may use, and bare crypt', async () => {
    const pw = PASSWORDS.nonAscii;
    const entries: [string, string][] = [
      ['sha512crypt', dove('SHA512-CRYPT', pw)],
      ['sha256crypt', dove('SHA256-CRYPT', pw)],
      ['md5crypt', dove('MD5-CRYPT', pw)],
      ['blf', dove('BLF-CRYPT', pw)],
      ['ssha256', dove('SSHA256', pw)],
      ['ssha512', dove('SSHA512', pw)],
      ['plain', dove('PLAIN', pw)],
      ['clear', dove('CLEAR', pw)],
      ['scram1', dove('SCRAM-SHA-1', pw)],
      ['scram256', dove('SCRAM-SHA-256', pw)],
      ['barecrypt', madeBy('mkpasswd', ['-s', '-m', 'yescrypt'], pw)],
    ];
    const file = join(dir, 'passwd');
    await writeFile(file, entries.map(([u, h], i) => `${u}:${h}:${2000 + i}:2000::/home/${u}::\n`).join(''));
    const b = new PasswdFileBackend(file, captureLogger().log);
    expect(b.name).toBe('passwd-file');
    for (const [u] of entries) {
      const ok = await b.verifyPassword(u, pw, ctx);
      expect(ok.kind, u).toBe('ok');
      expect((await b.verifyPassword(u, pw + '!', ctx)).kind, u).toBe('rejected');
    }
  });

  it('offers SCRAM only for algorithms every usable entry can supply', async () => {
    const file = join(dir, 'passwd');
    const write = (lines: string[]): Promise<void> => writeFile(file, lines.join('\n') + '\n');
    const log = captureLogger().log;
    const b = new PasswdFileBackend(file, log);

    await write([`a:${dove('SCRAM-SHA-256', 'pa')}`, `b:${dove('PLAIN', 'pb')}`, 'locked:!', 'nopw:']);
    await b.reload();
    expect(b.scramAlgorithms).toEqual(['SHA-256']);

    await write([`a:${dove('SCRAM-SHA-1', 'pa')}`, `b:${dove('CLEARTEXT', 'pb')}`]);
    await b.reload();
    expect(b.scramAlgorithms).toEqual(['SHA-1']);

    await write([`a:${dove('PLAIN', 'pa')}`, `b:{CLEAR}pb`]);
    await b.reload();
    expect(b.scramAlgorithms).toEqual(['SHA-256', 'SHA-1']);

    // One crypt entry is enough to withdraw SCRAM: that user could not log in with it.
    await write([`a:${dove('SCRAM-SHA-256', 'pa')}`, `c:${dove('SHA512-CRYPT', 'pc')}`]);
    await b.reload();
    expect(b.scramAlgorithms).toEqual([]);
  });

  it('the capability list picks up a change of the file by itself, within about a second', async () => {
    const file = join(dir, 'passwd');
    const b = new PasswdFileBackend(file, captureLogger().log);
    await writeFile(file, `a:${dove('SCRAM-SHA-256', 'pa')}\n`);
    await b.reload();
    expect(b.scramAlgorithms).toEqual(['SHA-256']);
    await writeFile(file, `a:${dove('SCRAM-SHA-1', 'pa')}\n`);
    // Each listing may start a background read (at most one a second); no reload().
    const started = performance.now();
    while (b.scramAlgorithms[0] !== 'SHA-1' && performance.now() - started < 5000)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(b.scramAlgorithms).toEqual(['SHA-1']);
  });

  it("checks an unknown user's password against a hash of the most common scheme and cost in the file", async () => {
    const file = join(dir, 'passwd');
    const yescrypt = madeBy('mkpasswd', ['-s', '-m', 'yescrypt'], 'x');
    // Three $6$ hashes of one password (fixed salts: the fixture keeps one output per command).
    const sha512 = ['saltA', 'saltB', 'saltC'].map((salt) => madeBy('openssl', ['passwd', '-6', '-salt', salt, 'x']));
    const entries = [
      `ssha:${dove('SSHA256', 'x')}`,
      `md5:${madeBy('openssl', ['passwd', '-1', 'x']).trim()}`,
      `yes:${yescrypt}`,
      `sha512c:${sha512[2]}`,
      `sha512a:${sha512[0]}`,
      `sha512b:${sha512[1]}`,
      `rounds:${madeBy('mkpasswd', ['-s', '-m', 'sha-512', '-R', '9000'], 'x')}`,
      `bcrypt5:${madeBy('mkpasswd', ['-s', '-m', 'bcrypt', '-R', '5'], 'x')}`,
      'locked:!',
      'locked2:!',
      'locked3:!',
      'locked4:!',
    ];
    await writeFile(file, entries.join('\n') + '\n');
    const b = new PasswdFileBackend(file, captureLogger().log);
    await b.reload();
    expect(costClass(sha512[0])).toBe('$6$rounds=5000');
    expect(costClass(entries[6].slice('rounds:'.length))).toBe('$6$rounds=9000');
    expect(costClass(yescrypt)).toMatch(/^\$y\$/);
    expect(costClass('{SSHA256}abc')).toBe('{SSHA256}');
    // Three default $6$ entries are the most common class (locked ones never count);
    // the first of them in name order, so every instance picks the same.
    expect((b as unknown as { table: { last: { decoy?: string } } }).table.last.decoy).toBe(sha512[0]);
    expect(await b.verifyPassword('nobody', 'x', ctx)).toMatchObject({ kind: 'rejected', reason: 'unknown user' });
  });

  it("unknown names get SCRAM parameters as stable as a real user's, across instances (nothing to tell them apart by)", async () => {
    const file = join(dir, 'passwd');
    const k = await deriveScramCredentials('pw', 'SHA-256', Buffer.from('0123456789abcdef'), 10_000);
    const stored = `{SCRAM-SHA-256}10000,${Buffer.from('0123456789abcdef').toString('base64')},${k.storedKey.toString('base64')},${k.serverKey.toString('base64')}`;
    await writeFile(file, `real:${stored}:1:1::/h::\nclear:{PLAIN}pw:2:2::/h::\n`);
    // Two backends: two server instances (or a restart) reading one file.
    const [one, two] = [
      new PasswdFileBackend(file, captureLogger().log),
      new PasswdFileBackend(file, captureLogger().log),
    ];
    const params = async (b: PasswdFileBackend, user: string) => {
      const r = await b.lookupScram(user, 'SHA-256', ctx);
      const c = r.kind === 'found' ? r.credentials : r.kind === 'unknown' ? r.decoy : undefined;
      if (c === undefined) throw new Error(`no parameters for ${user}: ${r.kind}`);
      return { salt: c.salt.toString('base64'), iterations: c.iterations };
    };
    const ghost = await params(one, 'ghost');
    expect(ghost.iterations).toBe(10_000); // what the real entries use
    expect(await params(two, 'ghost')).toEqual(ghost);
    expect(await params(two, 'ghost2')).not.toEqual(ghost);
    // A cleartext entry's derived salt is just as stable across instances.
    expect(await params(two, 'clear')).toEqual(await params(one, 'clear'));
  });

  it('supplies SCRAM keys from doveadm values and derives them from cleartext', async () => {
    const file = join(dir, 'passwd');
    const sk = dove('SCRAM-SHA-256', PASSWORDS.nonAscii);
    await writeFile(file, `k:${sk}:1:1::/h::\np:{PLAIN}${PASSWORDS.nonAscii}:2:2::/h2::\n`);
    const cap = captureLogger();
    const b = new PasswdFileBackend(file, cap.log);
    const k = await b.lookupScram('k', 'SHA-256', ctx);
    expect(k.kind).toBe('found');
    if (k.kind === 'found') {
      expect(k.identity.uid).toBe(1);
      expect(k.credentials.iterations).toBe(4096);
      const mine = await deriveScramCredentials(PASSWORDS.nonAscii, 'SHA-256', k.credentials.salt, 4096);
      expect(mine.storedKey.equals(k.credentials.storedKey)).toBe(true);
    }
    const p = await b.lookupScram('p', 'SHA-1', ctx);
    expect(p.kind).toBe('found');
    if (p.kind === 'found') {
      const mine = await deriveScramCredentials(
        PASSWORDS.nonAscii,
        'SHA-1',
        p.credentials.salt,
        p.credentials.iterations,
      );
      expect(mine.storedKey.equals(p.credentials.storedKey)).toBe(true);
      // The derived salt is stable for a user, so two exchanges look alike.
      const again = await b.lookupScram('p', 'SHA-1', ctx);
      expect(again.kind === 'found' && again.credentials.salt.equals(p.credentials.salt)).toBe(true);
    }
    expect((await b.lookupScram('nobody', 'SHA-256', ctx)).kind).toBe('unknown');
    // Keys of the other algorithm are not keys for this one: treated like an unknown user, logged.
    expect((await b.lookupScram('k', 'SHA-1', ctx)).kind).toBe('unknown');
    expect(cap.lines().some((l) => l.msg.includes('holds no keys'))).toBe(true);
  });

  it('skips malformed lines with their line number and reloads on change', async () => {
    const file = join(dir, 'passwd');
    await writeFile(file, `# comment\nx:{PLAIN}one:notanumber\ny:{PLAIN}two\n`);
    const cap = captureLogger();
    const b = new PasswdFileBackend(file, cap.log);
    expect((await b.verifyPassword('y', 'two', ctx)).kind).toBe('ok');
    expect((await b.verifyPassword('x', 'one', ctx)).kind).toBe('rejected');
    expect(cap.lines().find((l) => l.msg.startsWith('malformed line'))?.['line']).toBe(2);
    expect(cap.text()).not.toContain('{PLAIN}one');
    await writeFile(file, `x:{PLAIN}one\n`);
    expect((await b.verifyPassword('x', 'one', ctx)).kind).toBe('ok');
    expect((await b.verifyPassword('y', 'two', ctx)).kind).toBe('rejected');
  });
});
