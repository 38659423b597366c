/**
 * How many file-system operations the commands of a login make, counted on the
 * FileOps a FileStore is given (test/helpers/counting-ops.ts). Each one is a
 * message to a file thread in process (a libuv thread-pool round trip with
 * node:fs) and a pipe round trip over the file broker, so a read repeated within
 * one command is time every login pays. The commands
 * run as a session runs them (dispatch, with the real validator), over real files
 * in a temp directory, and their results are checked, so a count cannot drop by
 * doing less than the command must.
 *
 * The bounds are what the store makes today. Before (the lock refreshed around
 * two looks before each commit, SETACTIVE of the script in place under the lock,
 * the same files read two or three times in a command) they were: open 9,
 * PUTSCRIPT of the active script 40, of a new one 28, SETACTIVE of the active
 * script 18, of another 39, DELETESCRIPT 16, LISTSCRIPTS 5. A change that adds an
 * operation fails here and has to say why it needs it. Over ordered FileOps
 * PUTSCRIPT reads the filter file with the listing, in that round trip, in case the
 * script is the active one (for a new script, a read it turns out not to need);
 * it stats only the script it stores while the other entries cannot reach the
 * quotas (store-files.ts lookForPut), one stat less than the scan's. SETACTIVE
 * looks for the script already in place without the lock, and over ordered FileOps
 * sends all of that look's reads with the record's: one round trip instead of
 * three for the SETACTIVE clients send after every save of the active script, and
 * for another script five operations more (16 before), three of them reads the
 * lock's hold makes again.
 *
 * Over ordered FileOps (a file broker) the round trips a command waits for one
 * after another count as much as the operations: under load each costs the
 * broker's and then the server's turn on the CPU. They are bounded too (the
 * groups of calls made before the caller waits, counting-ops.ts). Before the lock's
 * release went out with the last change (and its unlink and rmdir together), the
 * filter was read with the listing, the scripts' stats were left out when they
 * cannot change the answer and the lock's look before a commit went with the new
 * files (DELETESCRIPT: with its reads), they were: PUTSCRIPT of the active script 11, of a new one 9, SETACTIVE of
 * another script 10, DELETESCRIPT 7 (open 2, SETACTIVE of the active script 3,
 * LISTSCRIPTS 2); before new files were made in one call (createFile), 14, 11, 13
 * and 8. PUTSCRIPT and SETACTIVE of another script send their first reads with
 * the look at the lock directory that makes the lock theirs (lock.ts acquireLock's
 * `along`): one round trip less (7, 5 and 8 before). Calls that must not run
 * after a failure of the call before them are sent with it, made only if it
 * succeeded (FileOps.ifPreviousSucceeded): the lock's owner file with its mkdir,
 * each rename of a change with the one before, and the lock's release with the
 * last change (its rmdir with its unlink). Before that: PUTSCRIPT of the active
 * script 6, of a new one 4, SETACTIVE of another script 7, DELETESCRIPT 4.
 */
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CommandContext } from '../../src/commands/command.js';
import { dispatch } from '../../src/commands/dispatch.js';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log/logger.js';
import { encodeResponse } from '../../src/protocol/response.js';
import type { Token } from '../../src/protocol/tokens.js';
import { NO_EVENTS } from '../../src/session/events.js';
import { createValidator, formatDiagnosticsForClient } from '../../src/sieve/index.js';
import { renderFilter } from '../../src/storage/filter-file.js';
import type { FileStore } from '../../src/storage/file-store.js';
import { nodeFileOps, type FileOps } from '../../src/storage/file-ops.js';
import { FsThreadPool } from '../../src/storage/thread-ops.js';
import { openBrokerFiles, type BrokerFiles } from '../helpers/broker-files.js';
import { BROKER, needs } from '../helpers/tools.js';
import { ActiveHints } from '../../src/storage/active-hints.js';
import { countingOps, type CountingOps, type OpCall } from '../helpers/counting-ops.js';
import { fullProfile } from '../sieve/helpers.js';
import { openStore, tempHome, type TempHome } from './helpers/store.js';

/** A valid script of about 4 KiB, as the logins bench stores. */
function script(variant: string): Buffer {
  let s = `require ["fileinto"];\n# ${variant}\n`;
  for (let i = 0; s.length < 4000; i++)
    s += `if header :contains "list-id" "<l${i}.example.org>" { fileinto "l${i}"; }\n`;
  return Buffer.from(s);
}
const BENCH = script('first');
const BENCH_2 = script('second');
const OTHER = Buffer.from('keep;\n');

const validator = createValidator(fullProfile());
const config = configSchema.parse({});

const pool = new FsThreadPool({ threads: 1, log: silentLogger() });
afterAll(() => pool.close());

let h: TempHome;
let counting: CountingOps;
let base: FileOps;
/** What the FileOps under test need of a home set up by this process (the broker's: its owner). */
let prepareHome: (home: string) => void = () => undefined;
beforeEach(async () => {
  h = await tempHome();
  hints = new ActiveHints();
  counting = countingOps(h.home, base);
  // A store as the bench leaves it: "bench" active, and one other script.
  const setup = await openStore(h, { limits: { maxScripts: 10, maxScriptBytes: 65536, maxTotalBytes: 0 } });
  await setup.put('other', OTHER);
  await setup.put('bench', BENCH);
  await setup.setActive('bench');
  prepareHome(h.home);
});
afterEach(async () => {
  await h.cleanup();
});

/** The active script's name as this process last saw it (fresh for each test). */
let hints: ActiveHints;
const open = (): Promise<FileStore> =>
  openStore(h, {
    fileOps: counting.ops,
    limits: { maxScripts: 10, maxScriptBytes: 65536, maxTotalBytes: 0 },
    activeHints: hints,
  });

function context(store: FileStore): CommandContext {
  return {
    session: { state: 'authenticated', store } as unknown as CommandContext['session'],
    services: {
      events: NO_EVENTS,
      config,
      checker: {
        extensions: [],
        check: (s: Buffer) => validator.validate(s),
        format: formatDiagnosticsForClient,
      },
    } as unknown as CommandContext['services'],
    log: silentLogger(),
    write: async () => undefined,
    readContinuation: async () => ({ kind: 'closed' }),
  };
}

const atom = (value: string): Token => ({ type: 'atom', value });
const str = (value: string | Buffer): Token => ({ type: 'string', value: Buffer.from(value), literal: true });

/** Runs one command; its response line and data. */
async function run(ctx: CommandContext, ...tokens: Token[]): Promise<string> {
  const d = await dispatch(ctx, tokens);
  return (d.result.data?.toString('utf8') ?? '') + encodeResponse(d.result.response).toString('utf8');
}

interface Measured {
  readonly total: number;
  readonly byOp: Record<string, number>;
  readonly byPath: Record<string, number>;
  readonly groups: number;
}

/** The operations `step` makes (the counts of every step are printed, to compare by eye). */
async function measure(
  label: string,
  step: () => Promise<void>,
  /** Reads made first without the lock and then again under it (each exactly twice). */
  readAgainUnderLock: readonly string[] = [],
): Promise<Measured> {
  label = `${label} (${kindNow})`;
  counting.reset();
  await step();
  const m = {
    total: counting.calls.length,
    byOp: counting.byOp(),
    byPath: counting.byOpAndPath(),
    groups: counting.groups.length,
  };
  const shown = counting.groups.map((g, i) => `  ${i + 1}: ${g.join(', ')}`).join('\n');
  console.log(`${label}: ${m.total} operations in ${m.groups} groups\n${shown}`);
  // Within one command no file is read twice, and no directory listed twice, but
  // for reads made before the lock that the lock's hold has to make again.
  const repeated = Object.entries(m.byPath).filter(([k, n]) => /^(readFile|readdir|lstat|stat) /.test(k) && n > 1);
  expect(repeated).toEqual(readAgainUnderLock.map((k) => [k, 2]));
  if (base.ordered) checkOrder(counting.groups, counting.calls);
  return m;
}

/**
 * Bounds per command, for unordered FileOps (node:fs, each call awaited in turn) and
 * for ordered ones (the in-process file threads of thread-ops.ts, and the file
 * broker itself, below), over which PUTSCRIPT reads the active record and the filter with the
 * listing, in its round trip: for a new script, reads it turns out not to need.
 * Those make a new file (a temp file, the lock's owner file) in one call
 * (createFile) instead of create, write, fchmod, fsync and close: before that,
 * ordered bounds were those of node:fs but for PUTSCRIPT of a new script (20).
 */
const BOUNDS = {
  unordered: { open: 6, openAgain: 6, putActive: 27, putNew: 18, setSame: 6, setOther: 26, delete: 11, list: 4 },
  ordered: { open: 6, openAgain: 6, putActive: 17, putNew: 14, setSame: 6, setOther: 21, delete: 9, list: 4 },
};

/**
 * Round trips per command over ordered FileOps. A command that takes the lock
 * waits for the mkdir (with the owner file and its first reads), for its new
 * files (with the look at the lock) and for its renames (with the release). Each
 * waits for the one before only because what it sends depends on that one's
 * answers: the content of the reads, the look at the lock.
 */
const ROUND_TRIPS = { open: 2, openAgain: 1, putActive: 3, putNew: 3, setSame: 1, setOther: 4, delete: 3, list: 2 };

type Command = keyof typeof ROUND_TRIPS;

/** The operation bound, and over ordered FileOps the round-trip bound. */
function within(kind: 'unordered' | 'ordered', command: Command, m: Measured): void {
  expect(m.total).toBeLessThanOrEqual(BOUNDS[kind][command]);
  if (kind === 'ordered') expect(m.groups).toBeLessThanOrEqual(ROUND_TRIPS[command]);
}

const isLock = (call: string): boolean => / sieve\/\.lock(\/|$)/.test(call);
const isTemp = (call: string): boolean => call.endsWith('.tmp');

/**
 * What sending calls together must never change: every change to the store's files
 * (a rename into place, an unlink) waits for a look at the lock's owner file made
 * in an earlier round trip, after every other call of that round trip (the new
 * files complete, the reads done), and the lock's release comes after every such
 * change (in the order sent, which is the order an ordered FileOps makes them in).
 * What is sent right behind a change, or behind the lock's mkdir or the release's
 * unlink, runs only if that succeeded (FileOps.ifPreviousSucceeded): a change after
 * a failed one, a release after a failed change (its undo needs the lock), an owner
 * file in a lock directory that is another session's.
 */
function checkOrder(groups: readonly (readonly string[])[], calls: readonly OpCall[]): void {
  const flat = groups.flat();
  const isChange = (c: string): boolean => /^(rename|unlink) /.test(c) && !isLock(c) && !isTemp(c);
  const dependsOnPrevious = (c: string): boolean =>
    c === 'createFile sieve/.lock/owner' ||
    c === 'rmdir sieve/.lock' ||
    isChange(c) ||
    c === 'unlink sieve/.lock/owner';
  const guarded = (c: string): boolean => c === 'mkdir sieve/.lock' || isChange(c) || c === 'unlink sieve/.lock/owner';
  let at = 0;
  for (const group of groups) {
    for (let i = 1; i < group.length; i++) {
      if (guarded(group[i - 1]) && dependsOnPrevious(group[i])) {
        expect([group[i], calls[at + i].ifPrevious]).toEqual([group[i], true]);
      }
    }
    at += group.length;
  }
  const lastChange = flat.findLastIndex((c) => /^(rename|unlink) /.test(c) && !isLock(c) && !isTemp(c));
  if (lastChange === -1) return;
  const firstRelease = flat.findIndex((c) => c === 'unlink sieve/.lock/owner');
  expect(firstRelease).toBeGreaterThan(lastChange);
  const firstChangeGroup = groups.findIndex((g) =>
    g.some((c) => /^(rename|unlink) /.test(c) && !isLock(c) && !isTemp(c)),
  );
  const look = groups.findIndex((g) => g.includes('lstat sieve/.lock/owner'));
  expect(look).toBeGreaterThanOrEqual(0);
  expect(look).toBeLessThan(firstChangeGroup);
  expect(groups[look].at(-1)).toBe('lstat sieve/.lock/owner');
}

/** Which FileOps the running test measures: node:fs, the file threads, the file broker. */
let kindNow = '';

describe.each([['unordered', () => nodeFileOps] as const, ['ordered', () => pool.fileOps()] as const])(
  'file-system operations per command, %s FileOps',
  (kind, ops) => {
    beforeAll(() => {
      base = ops();
      kindNow = kind;
    });
    commandTests(kind);
  },
);

/**
 * The same over the file broker itself (ordered, with one call per new file as the
 * file threads have), so the bounds hold for the FileOps isolated sessions use. As
 * root the broker runs as another user, who is given the home.
 */
describe('file-system operations per command, over the file broker', needs(BROKER), () => {
  const uid = process.getuid?.() === 0 ? 41231 : undefined;
  let files: BrokerFiles | undefined;
  beforeAll(() => {
    files = openBrokerFiles('bench', uid);
    base = files.ops;
    kindNow = 'broker';
    if (uid !== undefined) prepareHome = (home) => execFileSync('chown', ['-R', `${uid}:${uid}`, home]);
  });
  afterAll(async () => {
    prepareHome = () => undefined;
    await files?.close();
  });
  commandTests('ordered');
});

function commandTests(kind: 'unordered' | 'ordered'): void {
  it('opening a store with an active script', async () => {
    let store: FileStore | undefined;
    const m = await measure('open', async () => {
      store = await open();
    });
    expect(store).toBeDefined();
    within(kind, 'open', m);
  });

  it('opening it again (a login after an earlier one in this process): the active script read with its record', async () => {
    await open();
    const m = await measure('open again', async () => {
      await open();
    });
    within(kind, 'openAgain', m);
  });

  it('PUTSCRIPT of the active script', async () => {
    const ctx = context(await open());
    const m = await measure('PUTSCRIPT active', async () => {
      expect(await run(ctx, atom('PUTSCRIPT'), str('bench'), str(BENCH_2))).toBe('OK\r\n');
    });
    expect(await readFile(h.filterPath)).toEqual(renderFilter(BENCH_2));
    within(kind, 'putActive', m);
  });

  it('PUTSCRIPT of a new script', async () => {
    const ctx = context(await open());
    const m = await measure('PUTSCRIPT new', async () => {
      expect(await run(ctx, atom('PUTSCRIPT'), str('new'), str(OTHER))).toBe('OK\r\n');
    });
    expect(await readFile(h.filterPath)).toEqual(renderFilter(BENCH));
    within(kind, 'putNew', m);
  });

  it('SETACTIVE of the script already active', async () => {
    const ctx = context(await open());
    const m = await measure('SETACTIVE same', async () => {
      expect(await run(ctx, atom('SETACTIVE'), str('bench'))).toBe('OK\r\n');
    });
    expect(await readFile(h.filterPath)).toEqual(renderFilter(BENCH));
    within(kind, 'setSame', m);
  });

  it('SETACTIVE of another script', async () => {
    const ctx = context(await open());
    // Over ordered FileOps the look for the script in place reads, with the record,
    // what it would need if this were the active script: the lock's hold reads them again.
    const again =
      kind === 'ordered' ? ['readFile .forward', 'readFile sieve/.verbatim', 'readFile sieve/other.sieve'] : [];
    const m = await measure(
      'SETACTIVE other',
      async () => {
        expect(await run(ctx, atom('SETACTIVE'), str('other'))).toBe('OK\r\n');
      },
      again,
    );
    expect(await readFile(h.filterPath)).toEqual(renderFilter(OTHER));
    within(kind, 'setOther', m);
  });

  it('DELETESCRIPT', async () => {
    const ctx = context(await open());
    const m = await measure('DELETESCRIPT', async () => {
      expect(await run(ctx, atom('DELETESCRIPT'), str('other'))).toBe('OK\r\n');
    });
    expect(await run(ctx, atom('LISTSCRIPTS'))).toBe('"bench" ACTIVE\r\nOK\r\n');
    within(kind, 'delete', m);
  });

  it('LISTSCRIPTS', async () => {
    const ctx = context(await open());
    const m = await measure('LISTSCRIPTS', async () => {
      expect(await run(ctx, atom('LISTSCRIPTS'))).toBe('"bench" ACTIVE\r\n"other"\r\nOK\r\n');
    });
    within(kind, 'list', m);
  });
}
