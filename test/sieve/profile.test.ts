/**
 * The dialect profile: from configuration, from the real Exim (`exim4
 * -bI:sieve`, `-bP router`), and from a stand-in Exim script that reports a
 * router with vacation and enotify set up, so both branches are exercised.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { loadProfile, notifyMethods, ProfileError, validateScript } from '../../src/sieve/index.js';
import { parseRouterOptions } from '../../src/sieve/exim-probe.js';
import { findTool, needs } from '../helpers/tools.js';

const sieveDefaults = configSchema.parse({}).sieve;
const dir = mkdtempSync(join(tmpdir(), 'tsieved-profile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fakeExim(routerOut: string, exitRouter = 0): string {
  const file = join(dir, `exim-${Math.random().toString(36).slice(2)}`);
  writeFileSync(
    file,
    `#!/bin/sh
case "$*" in
  *-bI:sieve*) printf 'comparator-i;ascii-numeric\\ncopy\\nencoded-character\\nenotify\\nenvelope\\nfileinto\\nsubaddress\\nvacation\\n' ;;
  *-bP*) printf '%s\\n' "${routerOut}"; exit ${exitRouter} ;;
esac
`,
  );
  chmodSync(file, 0o755);
  return file;
}

describe('loadProfile', () => {
  it('uses an explicit capability list as given', async () => {
    const p = await loadProfile({ ...sieveDefaults, capabilities: ['fileinto', 'copy'] }, 5000);
    expect(p.extensions).toEqual(['fileinto', 'copy']);
    expect(p.source).toBe('config');
    expect(p.maxScriptBytes).toBe(5000);
    expect(p.maxNesting).toBe(sieveDefaults.max_nesting);
  });

  it('refuses capabilities it cannot validate', async () => {
    await expect(
      loadProfile({ ...sieveDefaults, capabilities: ['fileinto', 'variables'] }, 5000),
    ).rejects.toBeInstanceOf(ProfileError);
  });

  it('keeps vacation and enotify when the router is set up for them', async () => {
    const exim = fakeExim(
      'sieve_enotify_mailto_owner = postmaster@example.org\nsieve_vacation_directory = $home/.vacation',
    );
    const p = await loadProfile({ ...sieveDefaults, exim }, 5000);
    expect(p.extensions).toEqual([
      'comparator-i;ascii-numeric',
      'copy',
      'encoded-character',
      'enotify',
      'envelope',
      'fileinto',
      'subaddress',
      'vacation',
    ]);
    expect(notifyMethods(p)).toEqual(['mailto']);
    expect(p.source).toBe('exim');
  });

  it('drops vacation and enotify when the router lacks them', async () => {
    const exim = fakeExim('sieve_enotify_mailto_owner = \nsieve_vacation_directory = ');
    const p = await loadProfile({ ...sieveDefaults, exim }, 5000);
    expect(p.extensions).not.toContain('vacation');
    expect(p.extensions).not.toContain('enotify');
    expect(notifyMethods(p)).toEqual([]);
    // What is not advertised is not accepted either.
    const d = validateScript(Buffer.from('require "vacation";\nkeep;\n'), p);
    expect(d[0]?.severity).toBe('error');
  });

  it('drops both when the router does not exist', async () => {
    const exim = fakeExim('router nosuch not found', 1);
    const p = await loadProfile({ ...sieveDefaults, exim, exim_router: 'nosuch' }, 5000);
    expect(p.extensions).toEqual([
      'comparator-i;ascii-numeric',
      'copy',
      'encoded-character',
      'envelope',
      'fileinto',
      'subaddress',
    ]);
  });

  it('fails when the configured Exim cannot be run', async () => {
    await expect(loadProfile({ ...sieveDefaults, exim: join(dir, 'no-such-exim') }, 5000)).rejects.toBeInstanceOf(
      ProfileError,
    );
  });

  it('parses -bP router output', () => {
    expect(parseRouterOptions('sieve_vacation_directory = /x\nsieve_enotify_mailto_owner =')).toEqual({
      vacation: true,
      enotify: false,
    });
  });
});

describe('loadProfile with the installed Exim', needs('exim4'), () => {
  it('asks exim4 and applies the stock router (no sieve_* options)', async () => {
    const p = await loadProfile({ ...sieveDefaults, exim: findTool('exim4')!, exim_router: 'userforward' }, 5000);
    expect(p.source).toBe('exim');
    expect(p.extensions).toContain('fileinto');
    expect(p.extensions).toContain('copy');
    // Debian's userforward router sets neither option (exim-sieve.md section 10.3).
    expect(p.extensions).not.toContain('vacation');
    expect(p.extensions).not.toContain('enotify');
  });
});
