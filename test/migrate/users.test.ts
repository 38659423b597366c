/**
 * Finding users without a password: the userdb and passwd-file tables through the
 * auth parsers, and NSS through the real `getent passwd` for PAM sites.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../../src/config/schema.js';
import { getentPasswd, lookupUsers } from '../../src/migrate/users.js';
import { needs } from '../helpers/tools.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsieved-migrate-users-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const auth = (raw: Record<string, unknown>) => configSchema.parse({ auth: raw }).auth;

describe('lookupUsers', () => {
  it('lists every userdb account, sorted, when no user is named', async () => {
    const path = join(dir, 'userdb');
    writeFileSync(
      path,
      'zed@example.org\tuid=1001|gid=1001|home=/srv/z|systempw=x\nann@example.org\tuid=1002|gid=1002|home=/srv/a\n',
    );
    const r = await lookupUsers(auth({ backend: 'userdb', userdb: path }), []);
    expect(r.kind).toBe('ok');
    if (r.kind !== 'ok') return;
    expect(r.identities.map((i) => [i.user, i.home, i.uid])).toEqual([
      ['ann@example.org', '/srv/a', 1002],
      ['zed@example.org', '/srv/z', 1001],
    ]);
  });

  it('reports named users that do not exist', async () => {
    const path = join(dir, 'passwd');
    writeFileSync(path, 'joe:{SHA256}x:1000:1000::/home/joe::\n');
    const r = await lookupUsers(auth({ backend: 'passwd-file', passwd_file: path }), ['joe', 'ghost']);
    expect(r).toMatchObject({ kind: 'ok', missing: ['ghost'] });
    if (r.kind === 'ok') expect(r.identities.map((i) => i.home)).toEqual(['/home/joe']);
  });

  it('is an error when the file cannot be read', async () => {
    const r = await lookupUsers(auth({ backend: 'userdb', userdb: join(dir, 'absent') }), []);
    expect(r.kind).toBe('error');
  });

  it('with PAM, needs the users named and asks NSS', needs('getent'), async () => {
    expect((await lookupUsers(auth({ backend: 'pam' }), [])).kind).toBe('error');
    const r = await lookupUsers(auth({ backend: 'pam' }), ['root', 'no-such-user-tsieved']);
    expect(r).toMatchObject({ kind: 'ok', missing: ['no-such-user-tsieved'] });
    if (r.kind === 'ok') expect(r.identities[0]).toMatchObject({ user: 'root', uid: 0, gid: 0, home: '/root' });
  });

  it('getent is never handed something that looks like an option', async () => {
    expect(await getentPasswd('-s')).toBeUndefined();
    expect(await getentPasswd('a:b')).toBeUndefined();
    expect(await getentPasswd('')).toBeUndefined();
  });
});
