import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { checkStorageTemplates, resolveUserPaths, type StorageConfig } from '../../src/storage/paths.js';
import { StorageError } from '../../src/storage/types.js';
import type { Identity } from '../../src/auth/types.js';

function storage(over: Partial<StorageConfig> = {}): StorageConfig {
  return configSchema.parse({ storage: over }).storage;
}
const alice: Identity = { user: 'alice', uid: 1001, gid: 1001, home: '/home/alice', fields: {} };

function errorOf(fn: () => unknown): StorageError {
  try {
    fn();
  } catch (err) {
    if (err instanceof StorageError) return err;
    throw err;
  }
  throw new Error('expected a StorageError');
}

describe('checkStorageTemplates', () => {
  it('accepts the defaults and the AFS layouts', () => {
    expect(checkStorageTemplates(storage())).toEqual([]);
    expect(checkStorageTemplates(storage({ roots: ['/', '/home/', '/srv'] }))).toEqual([]);
    expect(
      checkStorageTemplates(
        storage({
          scripts_dir: '/afs/example.org/common/email/{u1}/{u2}/{user}/sieve',
          filter_path: '{home}/.public/.forward',
          roots: ['/afs/example.org'],
        }),
      ),
    ).toEqual([]);
  });

  it.each([
    [{ scripts_dir: '{home}/{nope}' }, /unknown placeholder \{nope\}/],
    [{ scripts_dir: 'sieve/{user}' }, /must be absolute/],
    [{ filter_path: '/var/forward' }, /no per-user placeholder/],
    [{ scripts_dir: '{home}/../{user}' }, /"\." or "\.\." path segment/],
    [{ scripts_dir: '{home}/{user' }, /unbalanced/],
    [{ filter_path: '{home}/sieve', scripts_dir: '{home}/sieve' }, /are the same/],
    [{ roots: ['relative/root'] }, /not absolute/],
    [{ roots: ['/srv/../etc'] }, /not in normal form/],
    [{ filter_mode: '0664' }, /group\/other-writable/],
    [{ filter_mode: '0444' }, /owner must be able/],
  ])('reports %j', (over, problem) => {
    const problems = checkStorageTemplates(storage(over));
    expect(problems.some((p) => problem.test(p))).toBe(true);
  });
});

describe('templates that must keep users apart', () => {
  const shared = (scripts_dir: string, filter_path: string): string[] =>
    checkStorageTemplates(storage({ scripts_dir, filter_path })).filter((p) => /all users|several users/.test(p));

  it.each([
    // alice@a.org and alex@b.org both get /srv/sieve/a/al
    ['/srv/sieve/{u1}/{u2}', '/srv/sieve/{u1}/{u2}/.forward'],
    ['/srv/sieve/{u1}/{u2}/sieve', '{home}/.forward'],
    ['{home}/sieve', '/srv/fwd/{u2}'],
    // alice@a.org and alice@b.org share one directory
    ['/srv/sieve/{localpart}', '/srv/sieve/{localpart}/.forward'],
    ['/srv/sieve/{u1}/{localpart}', '{home}/.forward'],
    ['/srv/sieve/{domain}', '{home}/.forward'],
    // "ab" + "c.org" and "a" + "bc.org" are one segment
    ['/srv/sieve/{localpart}{domain}', '{home}/.forward'],
    ['/srv/sieve/{localpart}.{domain}', '{home}/.forward'],
  ])('refuses scripts_dir %j with filter_path %j', (scriptsDir, filterPath) => {
    expect(shared(scriptsDir, filterPath)).not.toEqual([]);
  });

  it.each([
    ['/srv/sieve/{u1}/{u2}/{user}', '{home}/.forward'],
    ['/srv/sieve/{domain}/{localpart}', '/srv/sieve/{domain}/{localpart}/.forward'],
    ['/srv/sieve/{localpart}/{domain}/{u1}', '{mail}/.forward'],
    ['{mail}/sieve', '{home}/.public/.forward'],
  ])('accepts scripts_dir %j with filter_path %j', (scriptsDir, filterPath) => {
    expect(checkStorageTemplates(storage({ scripts_dir: scriptsDir, filter_path: filterPath }))).toEqual([]);
  });

  it('the refused layouts really do merge users', () => {
    const s = storage({ scripts_dir: '/srv/sieve/{u1}/{u2}', filter_path: '/srv/sieve/{u1}/{u2}/.forward' });
    const dirs = ['alice@a.org', 'alex@b.org'].map((user) => resolveUserPaths(s, { user, fields: {} }).scriptsDir);
    expect(dirs[0]).toBe(dirs[1]);
  });
});

describe('resolveUserPaths', () => {
  it('expands every placeholder', () => {
    const s = storage({
      scripts_dir: '/srv/mail/{domain}/{localpart}/{u1}/{u2}/sieve',
      filter_path: '{mail}/.forward',
    });
    const id: Identity = { user: 'bob@example.org', mail: '/var/vmail/example.org/bob', fields: {} };
    expect(resolveUserPaths(s, id)).toEqual({
      scriptsDir: '/srv/mail/example.org/bob/b/bo/sieve',
      filterPath: '/var/vmail/example.org/bob/.forward',
    });
  });

  it('gives {u1}/{u2} by characters, for the AFS common email layout', () => {
    const s = storage({
      scripts_dir: '/afs/example.org/common/email/{u1}/{u2}/{user}',
      filter_path: '{home}/.public/.forward',
    });
    expect(resolveUserPaths(s, { ...alice, user: 'ölaf' }).scriptsDir).toBe('/afs/example.org/common/email/ö/öl/ölaf');
    expect(resolveUserPaths(s, { ...alice, user: 'x' }).scriptsDir).toBe('/afs/example.org/common/email/x/x/x');
    expect(resolveUserPaths(s, alice).filterPath).toBe('/home/alice/.public/.forward');
  });

  it.each(['..', '.', 'a/b', '../../etc', 'a\u0000b', 'a\nb'])('refuses the user name %j', (user) => {
    const s = storage({ scripts_dir: '/srv/sieve/{user}', filter_path: '/srv/forward/{user}' });
    expect(errorOf(() => resolveUserPaths(s, { ...alice, user })).kind).toBe('bad-name');
  });

  it('refuses a domain-less user where {domain} is used', () => {
    const s = storage({ scripts_dir: '/srv/{domain}/{localpart}', filter_path: '/srv/{domain}/{localpart}.fwd' });
    expect(errorOf(() => resolveUserPaths(s, alice)).kind).toBe('bad-name');
  });

  it.each([undefined, 'relative/home', '/home/../etc', '/home/a\u0000'])('refuses the home %j', (home) => {
    expect(errorOf(() => resolveUserPaths(storage(), { ...alice, home })).kind).toBe('permission');
  });

  it('keeps paths under roots, with a whole-segment comparison', () => {
    const s = storage({ roots: ['/home'] });
    expect(resolveUserPaths(s, alice).scriptsDir).toBe('/home/alice/sieve');
    expect(errorOf(() => resolveUserPaths(s, { ...alice, home: '/homeother/alice' })).kind).toBe('permission');
    expect(errorOf(() => resolveUserPaths(s, { ...alice, home: '/etc' })).kind).toBe('permission');
    expect(resolveUserPaths(storage({ roots: [] }), { ...alice, home: '/etc' }).filterPath).toBe('/etc/.forward');
  });

  it('refuses a home that is the root directory for a filter path', () => {
    const s = storage({ filter_path: '{home}', scripts_dir: '{home}/sieve' });
    expect(errorOf(() => resolveUserPaths(s, { ...alice, home: '/' })).kind).toBe('permission');
  });
});

describe('a filter file inside the scripts directory', () => {
  it('is allowed only as a dot file the store does not use', () => {
    expect(
      checkStorageTemplates(storage({ scripts_dir: '{home}/sieve', filter_path: '{home}/sieve/.forward' })),
    ).toEqual([]);
    for (const filter_path of ['{home}/sieve/active.sieve', '{home}/sieve/.active', '{home}/sieve/sub/.forward']) {
      const problems = checkStorageTemplates(storage({ scripts_dir: '{home}/sieve', filter_path }));
      expect(problems.some((p) => /inside scripts_dir/.test(p))).toBe(true);
    }
    const s = storage({ scripts_dir: '{home}/sieve', filter_path: '{home}/sieve/x.sieve' });
    expect(errorOf(() => resolveUserPaths(s, alice)).kind).toBe('permission');
  });
});
