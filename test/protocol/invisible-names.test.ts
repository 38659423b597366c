/**
 * The attack from the wire: PUTSCRIPT with names starting with U+FEFF (sent as raw
 * UTF-8 bytes) is listed, counted against max_scripts / max_total_bytes, and shown
 * active when it is the script .forward runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SieveTestClient } from '../helpers/client.js';
import { ALICE, startFixture, type Fixture } from '../helpers/fixture.js';

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

describe('script names with invisible code points over the wire', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await startFixture({ extra: { storage: 'max_scripts = 3\nmax_total_bytes = 300' } });
  });
  afterAll(async () => fx?.stop());

  it('lists, counts and shows active a script named "\\uFEFFhidden"', async () => {
    const c = await SieveTestClient.connect(fx.server.port);
    await c.startTls(fx.ca);
    expect((await c.authenticatePlain(ALICE.name, ALICE.password)).status).toBe('OK');
    const put = (name: Buffer, body: string) =>
      c.command(Buffer.concat([Buffer.from('PUTSCRIPT "'), name, Buffer.from(`" {${body.length}+}\r\n${body}\r\n`)]));
    const body = '# hidden\r\ndiscard;\r\n' + '#'.repeat(70) + '\r\n';
    for (const i of [0, 1, 2])
      expect((await put(Buffer.concat([BOM, Buffer.from(`hidden${i}`)]), body)).status).toBe('OK');
    // A fourth script exceeds max_scripts = 3; a bigger third would exceed max_total_bytes.
    const fourth = await put(Buffer.concat([BOM, Buffer.from('hidden3')]), body);
    expect(fourth.status).toBe('NO');
    expect(fourth.code).toBe('QUOTA/MAXSCRIPTS');
    const bigger = await put(Buffer.concat([BOM, Buffer.from('hidden2')]), body + '#'.repeat(120) + '\r\n');
    expect(bigger.status).toBe('NO');
    expect(bigger.code).toMatch(/^QUOTA/);
    expect(
      (await c.command(Buffer.concat([Buffer.from('SETACTIVE "'), BOM, Buffer.from('hidden0"\r\n')]))).status,
    ).toBe('OK');
    const list = await c.command('LISTSCRIPTS');
    expect(list.rawLines.map((l) => l.toString('utf8'))).toEqual([
      '"\ufeffhidden0" ACTIVE',
      '"\ufeffhidden1"',
      '"\ufeffhidden2"',
    ]);
    expect(await readFile(join(fx.home(ALICE.name), '.forward'), 'utf8')).toContain('discard;');
    c.close();
  });
});
