import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserdbBackend, parseUserdbLine } from '../../src/auth/userdb.js';
import type { AuthContext } from '../../src/auth/types.js';
import { PASSWORDS, captureLogger, madeBy } from './util.js';

const ctx: AuthContext = { remoteAddress: '127.0.0.1', secure: true };

describe('parseUserdbLine', () => {
  it('reads a DomTool-style line, fields in any order, without *pw fields in Identity.fields', () => {
    const r = parseUserdbLine(
      'alice@example.org\tmail=/afs/x/Maildir|uid=1234|home=/afs/x|gid=100|systempw=$1$abc$def|shell=/bin/false',
    );
    expect(r.kind).toBe('account');
    if (r.kind !== 'account') return;
    expect(r.name).toBe('alice@example.org');
    expect(r.account.stored).toBe('$1$abc$def');
    expect(r.account.identity).toEqual({
      user: 'alice@example.org',
      uid: 1234,
      gid: 100,
      home: '/afs/x',
      mail: '/afs/x/Maildir',
      fields: { mail: '/afs/x/Maildir', uid: '1234', home: '/afs/x', gid: '100', shell: '/bin/false' },
    });
  });

  it('prefers sievepw over systempw', () => {
    const r = parseUserdbLine('bob\tuid=1|gid=1|home=/h|systempw=$1$a$b|sievepw={SHA}xyz');
    expect(r.kind === 'account' && r.account.stored).toBe('{SHA}xyz');
  });

  it('skips reverse-mapping records and flags malformed lines', () => {
    expect(parseUserdbLine('1234=\talice@example.org').kind).toBe('skip');
    for (const bad of [
      'no tab here',
      '\tuid=1',
      'x\tuid=abc',
      'x\tuid=1|gid=-1',
      'x\tuid=1|novalue',
      'x\tuid=1|uid=2',
      'a\u0001b\tuid=1',
    ]) {
      expect(parseUserdbLine(bad).kind, bad).toBe('malformed');
    }
  });
});

describe('UserdbBackend', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tsieved-userdb-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const line = (name: string, pwField: string) =>
    `${name}\tuid=5000|gid=5000|home=/srv/vmail/${name}|mail=/srv/vmail/${name}/Maildir|${pwField}\n`;

  it('logs in DomTool users with userdbpw hashes; wrong password and unknown user give the same answer', async () => {
    const md5 = madeBy('userdbpw', ['-md5'], PASSWORDS.nonAscii + '\n');
    const des = madeBy('userdbpw', [], 'secret12\n');
    const yes = madeBy('mkpasswd', ['-s', '-m', 'yescrypt'], PASSWORDS.long);
    const file = join(dir, 'userdb');
    await writeFile(
      file,
      '# written by DomTool\n\n' +
        line('alice@example.org', `systempw=${md5}`) +
        line('bob@example.org', `systempw=${des}`) +
        line('carol@example.net', `systempw=${yes}`),
    );
    const cap = captureLogger();
    const b = new UserdbBackend(file, cap.log);
    expect(b.name).toBe('userdb');

    const ok = await b.verifyPassword('alice@example.org', PASSWORDS.nonAscii, ctx);
    expect(ok.kind).toBe('ok');
    if (ok.kind === 'ok') {
      expect(ok.identity).toMatchObject({
        user: 'alice@example.org',
        uid: 5000,
        gid: 5000,
        home: '/srv/vmail/alice@example.org',
      });
      expect(ok.identity.fields['systempw']).toBeUndefined();
    }
    expect((await b.verifyPassword('bob@example.org', 'secret12', ctx)).kind).toBe('ok');
    expect((await b.verifyPassword('carol@example.net', PASSWORDS.long, ctx)).kind).toBe('ok');

    const wrong = await b.verifyPassword('alice@example.org', PASSWORDS.nonAscii + 'x', ctx);
    const unknown = await b.verifyPassword('mallory@example.org', PASSWORDS.nonAscii, ctx);
    expect(wrong.kind).toBe('rejected');
    expect(unknown.kind).toBe('rejected');
    // Names are exact: no case folding, no local-part fallback.
    expect((await b.verifyPassword('Alice@example.org', PASSWORDS.nonAscii, ctx)).kind).toBe('rejected');
    expect((await b.verifyPassword('alice', PASSWORDS.nonAscii, ctx)).kind).toBe('rejected');
    // The log never carries the password.
    expect(cap.text()).not.toContain(PASSWORDS.nonAscii);
  });

  it('uses sievepw when present, systempw otherwise', async () => {
    const file = join(dir, 'userdb');
    const sys = madeBy('userdbpw', ['-md5'], 'system-pw\n');
    const sieve = madeBy('openssl', ['passwd', '-6', '-stdin'], 'sieve-pw');
    await writeFile(file, line('dave@example.org', `systempw=${sys}|sievepw=${sieve}`));
    const b = new UserdbBackend(file, captureLogger().log);
    expect((await b.verifyPassword('dave@example.org', 'sieve-pw', ctx)).kind).toBe('ok');
    expect((await b.verifyPassword('dave@example.org', 'system-pw', ctx)).kind).toBe('rejected');
  });

  it('skips a malformed line, logging its file and line number, and keeps the rest', async () => {
    const file = join(dir, 'userdb');
    const h = madeBy('userdbpw', ['-md5'], 'pw\n');
    await writeFile(
      file,
      line('a@x.org', `systempw=${h}`) +
        'garbage without a tab\n' +
        'b@x.org\tuid=zz|systempw=' +
        h +
        '\n' +
        line('c@x.org', `systempw=${h}`),
    );
    const cap = captureLogger();
    const b = new UserdbBackend(file, cap.log);
    expect((await b.verifyPassword('a@x.org', 'pw', ctx)).kind).toBe('ok');
    expect((await b.verifyPassword('c@x.org', 'pw', ctx)).kind).toBe('ok');
    expect((await b.verifyPassword('b@x.org', 'pw', ctx)).kind).toBe('rejected');
    const warnings = cap.lines().filter((l) => l.msg.startsWith('malformed line'));
    expect(warnings.map((w) => w['line'])).toEqual([2, 3]);
    expect(warnings[0].msg).toContain(`line 2 in ${file}`);
    expect(cap.text()).not.toContain(h);
  });

  it('parses the file once for concurrent logins', async () => {
    const file = join(dir, 'userdb');
    const h = madeBy('userdbpw', ['-md5'], 'pw\n');
    await writeFile(file, 'broken line\n' + line('a@x.org', `systempw=${h}`));
    const cap = captureLogger();
    const b = new UserdbBackend(file, cap.log);
    const results = await Promise.all(Array.from({ length: 8 }, () => b.verifyPassword('a@x.org', 'pw', ctx)));
    expect(results.every((r) => r.kind === 'ok')).toBe(true);
    expect(cap.lines().filter((l) => l.msg.startsWith('malformed line')).length).toBe(1);
    expect(cap.lines().filter((l) => l.msg === 'account file loaded').length).toBe(1);
  });

  it('refuses a login whose hash scheme is unsupported, with a clear log message', async () => {
    const file = join(dir, 'userdb');
    await writeFile(
      file,
      line('eve@x.org', 'systempw={ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2g'),
    );
    const cap = captureLogger();
    const b = new UserdbBackend(file, cap.log);
    const r = await b.verifyPassword('eve@x.org', 'pw', ctx);
    expect(r).toEqual({ kind: 'rejected', reason: 'unsupported password scheme {ARGON2ID}', class: 'policy' });
    expect(cap.lines().some((l) => l.msg === 'unsupported password scheme {ARGON2ID}: login refused')).toBe(true);
    // Already said when the file was loaded, with the line, so the admin need not wait for a login.
    expect(
      cap
        .lines()
        .some(
          (l) =>
            l.msg ===
            `entry for "eve@x.org" at ${file}:1 uses unsupported password scheme {ARGON2ID}: that user cannot log in`,
        ),
    ).toBe(true);
  });

  it('picks up changes without a restart: in-place edits, same-size rewrites, atomic renames', async () => {
    const file = join(dir, 'userdb');
    const h1 = madeBy('userdbpw', ['-md5'], 'first\n');
    const h2 = madeBy('userdbpw', ['-md5'], 'secnd\n'); // same length as "first": same file size
    await writeFile(file, line('f@x.org', `systempw=${h1}`));
    const b = new UserdbBackend(file, captureLogger().log);
    expect((await b.verifyPassword('f@x.org', 'first', ctx)).kind).toBe('ok');
    await writeFile(file, line('f@x.org', `systempw=${h2}`));
    expect((await b.verifyPassword('f@x.org', 'secnd', ctx)).kind).toBe('ok');
    expect((await b.verifyPassword('f@x.org', 'first', ctx)).kind).toBe('rejected');
    // DomTool-style replacement: write a temp file, rename over.
    await writeFile(join(dir, 'tmp'), line('f@x.org', `systempw=${h1}`) + line('g@x.org', `systempw=${h2}`));
    await rename(join(dir, 'tmp'), file);
    expect((await b.verifyPassword('f@x.org', 'first', ctx)).kind).toBe('ok');
    expect((await b.verifyPassword('g@x.org', 'secnd', ctx)).kind).toBe('ok');
    // Removing a user takes effect at once.
    await writeFile(file, line('g@x.org', `systempw=${h2}`));
    expect((await b.verifyPassword('f@x.org', 'first', ctx)).kind).toBe('rejected');
  });

  it('reads a directory of files (one per domain), and notices files added and removed', async () => {
    const udb = join(dir, 'userdb.d');
    await mkdir(udb);
    const h = madeBy('openssl', ['passwd', '-1', '-stdin'], 'dirpw');
    await writeFile(join(udb, 'example.org'), line('a@example.org', `systempw=${h}`));
    await writeFile(join(udb, '.hidden'), line('hidden@example.org', `systempw=${h}`));
    const b = new UserdbBackend(udb, captureLogger().log);
    expect((await b.verifyPassword('a@example.org', 'dirpw', ctx)).kind).toBe('ok');
    expect((await b.verifyPassword('hidden@example.org', 'dirpw', ctx)).kind).toBe('rejected');
    expect((await b.verifyPassword('b@example.net', 'dirpw', ctx)).kind).toBe('rejected');
    await writeFile(join(udb, 'example.net'), line('b@example.net', `systempw=${h}`));
    expect((await b.verifyPassword('b@example.net', 'dirpw', ctx)).kind).toBe('ok');
    await rm(join(udb, 'example.org'));
    expect((await b.verifyPassword('a@example.org', 'dirpw', ctx)).kind).toBe('rejected');
  });

  it('answers "unavailable" while the file is missing, and recovers', async () => {
    const file = join(dir, 'userdb');
    const cap = captureLogger();
    const b = new UserdbBackend(file, cap.log);
    const r = await b.verifyPassword('a@x.org', 'pw', ctx);
    expect(r.kind).toBe('unavailable');
    expect(cap.lines().some((l) => l.msg.includes('unreadable'))).toBe(true);
    await writeFile(file, line('a@x.org', `systempw=${madeBy('userdbpw', ['-md5'], 'pw\n')}`));
    expect((await b.verifyPassword('a@x.org', 'pw', ctx)).kind).toBe('ok');
  });

  it('refuses user names with control characters or excessive length before looking', async () => {
    const file = join(dir, 'userdb');
    await writeFile(file, line('a@x.org', `systempw=${madeBy('userdbpw', ['-md5'], 'pw\n')}`));
    const b = new UserdbBackend(file, captureLogger().log);
    expect(await b.verifyPassword('a@x.org\u0000', 'pw', ctx)).toEqual({
      kind: 'rejected',
      reason: 'control character in user name',
      class: 'malformed',
    });
    expect(await b.verifyPassword('a\n@x.org', 'pw', ctx)).toMatchObject({ kind: 'rejected' });
    expect(await b.verifyPassword('a'.repeat(300), 'pw', ctx)).toEqual({
      kind: 'rejected',
      reason: 'user name too long',
      class: 'malformed',
    });
    expect(await b.verifyPassword('a@x.org', '', ctx)).toEqual({
      kind: 'rejected',
      reason: 'empty password',
      class: 'malformed',
    });
  });

  it('logs duplicates and keeps the first entry', async () => {
    const file = join(dir, 'userdb');
    const h1 = madeBy('userdbpw', ['-md5'], 'one\n');
    const h2 = madeBy('userdbpw', ['-md5'], 'two\n');
    await writeFile(file, line('d@x.org', `systempw=${h1}`) + line('d@x.org', `systempw=${h2}`));
    const cap = captureLogger();
    const b = new UserdbBackend(file, cap.log);
    expect((await b.verifyPassword('d@x.org', 'one', ctx)).kind).toBe('ok');
    expect((await b.verifyPassword('d@x.org', 'two', ctx)).kind).toBe('rejected');
    expect(cap.lines().some((l) => l.msg.startsWith('duplicate entry'))).toBe(true);
  });
});
