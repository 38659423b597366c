/**
 * The filter file written for a script is read by the real Exim as a Sieve filter
 * and runs. `exim4 -bf` exits 0 even on errors, so its stdout is read
 * (docs/exim-dialect.md, "Testing a filter"). A private configuration (-C) keeps the test
 * away from the system's Exim set-up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findTool, needs } from '../helpers/tools.js';
import { openStore, tempHome, type TempHome } from './helpers/store.js';

const b = (s: string) => Buffer.from(s, 'utf8');

describe('filter file read by exim4 -bf', needs('exim4'), () => {
  let h: TempHome;
  let confDir: string;
  let conf: string;

  beforeAll(async () => {
    h = await tempHome();
    confDir = await mkdtemp(join(tmpdir(), 'tsieved-exim-'));
    await mkdir(join(confDir, 'spool'));
    conf = join(confDir, 'exim.conf');
    await writeFile(
      conf,
      `primary_hostname = tsieved.test\nspool_directory = ${confDir}/spool\nlog_file_path = ${confDir}/%slog\n`,
    );
  });
  afterAll(async () => {
    await h.cleanup();
    await rm(confDir, { recursive: true, force: true });
  });

  function eximTest(filterPath: string, message: string): string {
    return execFileSync(findTool('exim4')!, ['-C', conf, '-bf', filterPath], { input: message, encoding: 'utf8' });
  }

  it.each([
    [
      'a script without a header, CRLF line ends',
      'require "fileinto";\r\nif header :contains "subject" "spam" {\r\n  fileinto "Junk";\r\n}\r\n',
    ],
    [
      'a script with its own header',
      '# Sieve filter\nrequire "fileinto";\nif header :is "subject" "spam" { fileinto "Junk"; }\n',
    ],
    ['a script with a BOM and no final newline', '\ufeffif header :is "subject" "spam" { discard; }'],
  ])('%s', async (_what, script) => {
    const store = await openStore(h);
    await store.put('s', b(script));
    await store.setActive('s');
    const out = eximTest(h.filterPath, 'Subject: spam\n\nbody\n');
    expect(out).toContain(`Testing Sieve filter file "${h.filterPath}"`);
    expect(out).not.toContain('Sieve error');
    expect(out).toMatch(/No implicit keep/);
    const ham = eximTest(h.filterPath, 'Subject: ham\n\nbody\n');
    expect(ham).toMatch(/\nImplicit keep/);
  });

  it('several requires, one per line, are merged for Exim; GETSCRIPT keeps the stored bytes; line numbers stay', async () => {
    const store = await openStore(h);
    const script =
      'require "fileinto";\r\n# a comment\r\nrequire "encoded-character";\r\nrequire "${hex:63}opy";\r\nif header :is "subject" "spam" { fileinto :copy "Junk"; }\r\n';
    await store.put('requires', b(script));
    await store.setActive('requires');
    expect((await store.get('requires')).equals(b(script))).toBe(true);
    const out = eximTest(h.filterPath, 'Subject: spam\n\nbody\n');
    expect(out).not.toContain('Sieve error');
    expect(out).toMatch(/\nImplicit keep/); // fileinto :copy keeps the implicit keep
    // Control: the same requires unmerged are a syntax error for Exim 4.96.
    const raw = join(confDir, 'unmerged');
    await writeFile(raw, '# Sieve filter\n' + script.replace(/\r\n/g, '\n'));
    expect(eximTest(raw, 'Subject: spam\n\nbody\n')).toContain('Sieve error: syntax error in line 4');
    // A mistake after the merged requires: Exim names its line (script line 6, plus header and marker).
    await store.put('requires-broken', b(script + 'bogus;\r\n'));
    await store.setActive('requires-broken');
    expect(eximTest(h.filterPath, 'Subject: x\n\nbody\n')).toContain('Sieve error: syntax error in line 8');
  });

  it('reports a broken script as Exim would, so the test above can fail', async () => {
    const store = await openStore(h);
    await store.put('broken', b('bogus;\n'));
    await store.setActive('broken');
    // Line 3: the header and the marker line come first.
    expect(eximTest(h.filterPath, 'Subject: x\n\nbody\n')).toContain('Sieve error: syntax error in line 3');
  });
});
