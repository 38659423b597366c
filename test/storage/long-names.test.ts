/**
 * Every name validateScriptName accepts can be stored, whatever the host is called:
 * the temp file beside a script must fit a 255-byte name component too (RFC 5804
 * section 1.6 requires at least 128 characters to work).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { readdir } from 'node:fs/promises';
import { basename } from 'node:path';

// HOST_NAME_MAX is 64 on Linux; a temp name must not grow with it.
const LONG_HOST = 'mx1-' + 'a'.repeat(47) + '.example.org';
vi.mock('node:os', async (importOriginal) => {
  const os = await importOriginal<typeof import('node:os')>();
  const hostname = (): string => LONG_HOST;
  return { ...os, hostname, default: { ...os, hostname } };
});

const { encodeScriptFileName, MAX_SCRIPT_NAME_OCTETS, validateScriptName } =
  await import('../../src/storage/script-names.js');
const { TEMP_MARKER, tempPathFor } = await import('../../src/storage/atomic-write.js');
const { openStore, tempHome } = await import('./helpers/store.js');
type TempHome = Awaited<ReturnType<typeof tempHome>>;

const NAME_MAX = 255;
const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

/** One character of each UTF-8 width; 'x' is also left unencoded in file names. */
const CHARS: readonly [number, string][] = [
  [1, 'x'],
  [2, 'é'],
  [3, '€'],
  [4, '\u{1F600}'],
];

/** Longest name of `ch` that is stored under its own (percent-encoded) name, not hashed. */
function longestDirect(ch: string): string {
  let name = ch;
  while (encodeScriptFileName(name + ch).nameFile === undefined) name += ch;
  return name;
}

function longestAccepted(ch: string): string {
  return ch.repeat(Math.floor(MAX_SCRIPT_NAME_OCTETS / bytes(ch)));
}

describe('temp file names', () => {
  it('have a bounded length whatever the target name and host name', async () => {
    const os = await import('node:os');
    expect(os.hostname()).toBe(LONG_HOST); // the mock is in effect
    for (const target of [
      'x'.repeat(255),
      'é'.repeat(127) + 'x',
      '€'.repeat(85),
      '\u{1F600}'.repeat(63) + 'abc',
      '.forward',
    ]) {
      const temp = basename(tempPathFor(`/d/${target}`));
      expect(bytes(temp)).toBeLessThanOrEqual(128);
      expect(temp.startsWith('.')).toBe(true);
      expect(temp).toContain(TEMP_MARKER);
      expect(temp).not.toContain('\ufffd'); // cut between characters, never inside one
      expect(Buffer.from(temp, 'utf8').toString('utf8')).toBe(temp);
    }
    expect(basename(tempPathFor('/d/main.sieve')).startsWith(`.main.sieve${TEMP_MARKER}`)).toBe(true);
    expect(tempPathFor('/d/x')).not.toBe(tempPathFor('/d/x'));
  });
});

describe('the longest script names', () => {
  let h: TempHome;
  beforeEach(async () => {
    h = await tempHome();
  });
  afterEach(async () => {
    await h.cleanup();
  });

  it.each(CHARS)('are stored, listed and read back with %i-byte characters', async (_width, ch) => {
    const names = [ch.repeat(128), longestDirect(ch), longestAccepted(ch)];
    for (const name of names) expect(validateScriptName(name)).toEqual({ ok: true, name });
    expect(validateScriptName(longestAccepted(ch) + ch).ok).toBe(false);
    for (const name of names) expect(bytes(encodeScriptFileName(name).file)).toBeLessThanOrEqual(NAME_MAX);

    const store = await openStore(h, { limits: { maxScripts: 10, maxScriptBytes: 4096, maxTotalBytes: 0 } });
    for (const [i, name] of names.entries()) await store.put(name, Buffer.from(`# ${i}\nkeep;\n`));
    await store.setActive(longestDirect(ch));
    const listed = await store.list();
    expect(listed.map((s) => s.name).sort()).toEqual([...new Set(names)].sort());
    expect(listed.find((s) => s.active)?.name).toBe(longestDirect(ch));
    for (const [i, name] of names.entries()) expect((await store.get(name)).toString()).toBe(`# ${i}\nkeep;\n`);
    await store.rename(longestDirect(ch), longestAccepted(ch).slice(0, -ch.length));
    expect((await readdir(h.scriptsDir)).filter((f) => f.includes(TEMP_MARKER))).toEqual([]);
  });
});
