/**
 * The probe with a local-part suffix: sample values from a router's
 * local_part_suffix/prefix lists, the suffix read from a real Exim router with
 * `exim -bP router`, and, through the real `exim -bf`, a change that only mail to
 * `user+lists@domain` shows is reported (and is not seen without the suffix probe).
 */
import { chmodSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routerAffixes } from '../../src/migrate/exim-setup.js';
import { addressOf, probesFor, sampleAffix, usesSubaddress } from '../../src/migrate/probes.js';
import { proveRouting, subaddressCaveat } from '../../src/migrate/prove.js';
import { eximBinary } from '../helpers/exim.js';
import { privateEximBf, type EximBf } from '../helpers/exim-bf.js';
import { needs } from '../helpers/tools.js';

/** contrib/exim's recipe: user+detail@domain runs the user's filter. */
const ROUTERS = `tsieved_system:
  driver = redirect
  check_local_user
  local_part_suffix = +* : -*
  local_part_suffix_optional
  sieve_subaddress = \${sg{$local_part_suffix}{\\N^\\+\\N}{}}
  sieve_useraddress = $local_part
  file = $home/.forward
  allow_filter
plain:
  driver = redirect
  check_local_user
  file = $home/.forward
  allow_filter
`;

/** Files list mail sent to +lists into "lists" (before) or "Lists/all" (after); everything else alike. */
const filter = (folder: string): Buffer =>
  Buffer.from(
    `# Sieve filter\nrequire ["fileinto", "envelope"];\nif envelope :localpart :contains "to" "+lists" { fileinto "${folder}"; stop; }\nif header :contains "subject" "SPAM" { fileinto "Junk"; }\n`,
  );

describe('sample affixes from router options', () => {
  it('takes the first item of the list and fills in the wildcard', () => {
    expect(sampleAffix('+*', 'suffix')).toBe('+lists');
    expect(sampleAffix(' -* : +* ', 'suffix')).toBe('-lists');
    expect(sampleAffix('<; +*; -*', 'suffix')).toBe('+lists');
    expect(sampleAffix('-request', 'suffix')).toBe('-request');
    expect(sampleAffix('*=', 'prefix')).toBe('lists=');
    expect(sampleAffix('', 'suffix')).toBeUndefined();
    expect(sampleAffix('${lookup{$local_part}lsearch{/etc/x}}', 'suffix')).toBeUndefined();
  });

  it('adds one probe to the affixed address only when the router takes affixes', () => {
    expect(probesFor(addressOf('alice@example.org', 'x', undefined)).map((p) => p.name)).toEqual([
      'a personal message',
      'a message marked as spam',
      'a mailing-list message',
    ]);
    const probes = probesFor(addressOf('alice', 'example.org', { suffix: '+lists' }));
    expect(probes).toHaveLength(4);
    expect(probes[3]).toMatchObject({
      name: 'a mailing-list message to alice+lists@example.org',
      affixes: { suffix: '+lists' },
    });
    expect(probes[3].message('alice+lists@example.org')).toMatch(/^Cc: alice\+lists@example\.org$/m);
  });

  it('knows which Sieve filters test :user or :detail', () => {
    expect(usesSubaddress(Buffer.from('# Sieve filter\nif envelope :detail "to" "x" { stop; }\n'))).toBe(true);
    expect(usesSubaddress(Buffer.from('# Sieve filter\nkeep;\n'))).toBe(false);
    expect(usesSubaddress(Buffer.from('# Exim filter\n# :detail\n'))).toBe(false);
  });
});

describe('the suffix probe through the real exim -bf', needs('exim4'), () => {
  let exim: EximBf;
  beforeAll(() => {
    exim = privateEximBf(ROUTERS);
    chmodSync(dirname(exim.configFile), 0o755);
  });
  afterAll(() => rmSync(dirname(exim.configFile), { recursive: true, force: true }));
  const runner = (): { binary: string; configFile: string } => ({
    binary: eximBinary(),
    configFile: exim.configFile,
  });

  it("reads the router's local_part_suffix with exim -bP router", async () => {
    expect(await routerAffixes(runner(), 'tsieved_system')).toEqual({ affixes: { suffix: '+lists' } });
    expect(await routerAffixes(runner(), 'plain')).toEqual({ affixes: {} });
    const missing = await routerAffixes(runner(), 'nosuch');
    expect('error' in missing && missing.error).toMatch(/router nosuch not found/);
  });

  it('reports a change that only mail to user+lists@domain shows, and not without the suffix probe', async () => {
    const before = filter('lists');
    const after = filter('Lists/all');
    const plain = await proveRouting({
      before,
      after,
      exim: runner(),
      address: addressOf('alice', 'example.org', undefined),
    });
    // Without the suffix the two filters route every probe alike: the gap this probe closes.
    expect(plain).toEqual({ kind: 'unchanged', how: 'exim' });
    const suffixed = await proveRouting({
      before,
      after,
      exim: runner(),
      address: addressOf('alice', 'example.org', { suffix: '+lists' }),
    });
    expect(suffixed).toEqual({
      kind: 'changed',
      changes: ['a mailing-list message to alice+lists@example.org: filed into lists; afterwards filed into Lists/all'],
    });
    expect(subaddressCaveat(suffixed, before, after)).toBeUndefined();
  });

  it('notes that rules on envelope :detail are not compared (exim -bf leaves sieve_subaddress unset)', async () => {
    const detail = (folder: string): Buffer =>
      Buffer.from(
        `# Sieve filter\nrequire ["fileinto", "envelope", "subaddress"];\nif envelope :detail "to" "lists" { fileinto "${folder}"; }\n`,
      );
    const routing = await proveRouting({
      before: detail('lists'),
      after: detail('elsewhere'),
      exim: runner(),
      address: addressOf('alice', 'example.org', { suffix: '+lists' }),
    });
    // Exim's test mode never matches :detail, so the difference cannot show: the note says so.
    expect(routing).toEqual({ kind: 'unchanged', how: 'exim' });
    expect(subaddressCaveat(routing, detail('lists'), detail('elsewhere'))).toMatch(/:detail never matches there/);
  });
});
