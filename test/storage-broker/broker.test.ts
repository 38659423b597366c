/**
 * The per-session file broker (helper/tsieved-broker.c): its framed protocol and
 * hard limits driven byte by byte, and the FileStore over BrokerFileOps through
 * BrokerLauncher on real processes and temp directories: byte-exact storage,
 * errno codes across the pipe, FIFOs refused without blocking, and a broker that
 * dies, hangs or talks nonsense failing its own session with TRYLATER.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Identity } from '../../src/auth/types.js';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log/logger.js';
import { FileStore } from '../../src/storage/file-store.js';
import { createdBeforeFailure, createFile, type FileOps } from '../../src/storage/file-ops.js';
import { fileStoreOptionsFor } from '../../src/storage/launcher.js';
import { BrokerFileOps } from '../../src/storage/broker/broker-ops.js';
import { BrokerLauncher, brokerCommand, defaultBrokerPath } from '../../src/storage/broker/launcher.js';
import { processIsolationProblem } from '../../src/storage/broker/privileges.js';
import {
  encodeRequest,
  IF_PREVIOUS_OK,
  MAX_REQUEST_BYTES,
  OP,
  ResponseDecoder,
  type Field,
  type Response,
} from '../../src/storage/broker/protocol.js';
import { StorageError } from '../../src/storage/types.js';
import { BROKER as BROKER_BUILT, ROOT, needs, tool } from '../helpers/tools.js';
import { until, runningProcess } from '../helpers/processes.js';
import { errnoCodeOf } from '../helpers/errno.js';

const BROKER = defaultBrokerPath();

function storageConfig(over: Record<string, unknown> = {}) {
  return configSchema.parse({ storage: { scripts_dir: '{home}/sieve', filter_path: '{home}/.forward', ...over } })
    .storage;
}

async function rejection(p: Promise<unknown>): Promise<StorageError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(StorageError);
    return err as StorageError;
  }
  throw new Error('expected a StorageError');
}

let base: string;
beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'tsieved-broker-'));
  chmodSync(base, 0o755);
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

function homeFor(name: string): string {
  const home = join(base, name);
  mkdirSync(home, { recursive: true });
  return home;
}

// As root a broker must run as some user (never root); otherwise it runs as us.
const UID = 41230;
function self(name: string): Identity {
  const home = homeFor(name);
  if (process.getuid?.() !== 0) return { user: name, home, fields: {} };
  chownSync(home, UID, UID);
  return { user: name, uid: UID, gid: UID, home, fields: {} };
}

/** The broker on raw pipes, with what it answered and how it ended. */
function raw(): { child: ChildProcess; out: () => Buffer; exit: Promise<number | null> } {
  const child = spawn(BROKER, [], { stdio: ['pipe', 'pipe', 'inherit'] });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => chunks.push(c));
  child.stdin.on('error', () => undefined);
  const exit = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  return { child, out: () => Buffer.concat(chunks), exit };
}

/** A create-file request frame: mode (0xffffffff keeps 0600), flags (1: fsync), path, data. */
function createFileRequest(id: number, mode: number, flags: number, path: string, data: Buffer): Buffer {
  return encodeRequest(id, 'createFile', [{ u32: mode }, { u32: flags }, { path }, { data }]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

describe('the broker protocol, byte by byte', needs(BROKER_BUILT), () => {
  it('answers in order, with the id of each request, and ends with exit 0 at EOF', async () => {
    const dir = homeFor('raw-order');
    writeFileSync(join(dir, 'f'), 'hello');
    const b = raw();
    b.child.stdin!.write(
      Buffer.concat([
        encodeRequest(7, 'read', [{ path: join(dir, 'f') }]),
        encodeRequest(8, 'read', [{ path: join(dir, 'absent') }]),
      ]),
    );
    b.child.stdin!.end();
    expect(await b.exit).toBe(0);
    const out = b.out();
    // [len][id 7][status 0]"hello" then [len][id 8][status 1][ENOENT]
    expect(out.readUInt32BE(0)).toBe(5 + 5);
    expect(out.readUInt32BE(4)).toBe(7);
    expect(out[8]).toBe(0);
    expect(out.subarray(9, 14).toString()).toBe('hello');
    expect(out.readUInt32BE(18)).toBe(8);
    expect(out[22]).toBe(1);
    expect(out.readUInt32BE(23)).toBe(2); // ENOENT
  });

  it('answers requests that came together in one write; requests split across writes or above its buffer are served whole', async () => {
    const dir = homeFor('raw-batch');
    const b = raw();
    const chunks: Buffer[] = [];
    b.child.stdout!.on('data', (c: Buffer) => chunks.push(c));
    const answered = (n: number) => until(() => new ResponseDecoder().push(Buffer.concat(chunks)).length >= n);
    // Three at once: one write(2) for the three answers (the kernel counts them), so
    // the server is woken once.
    const writes = () => Number(/^syscw: (\d+)$/m.exec(readFileSync(`/proc/${b.child.pid}/io`, 'utf8'))![1]);
    const before = writes();
    b.child.stdin!.write(Buffer.concat([1, 2, 3].map((id) => encodeRequest(id, 'stat', [{ path: dir }]))));
    await answered(3);
    expect(writes() - before).toBe(1);
    // A file of 200 KiB (above the broker's 64 KiB input buffer) in a request cut in two.
    const data = Buffer.alloc(200 * 1024, 0x61);
    const create = encodeRequest(4, 'create', [{ u32: 0o600 }, { path: join(dir, 'big') }]);
    b.child.stdin!.write(create);
    await answered(4);
    const rest = Buffer.concat([
      encodeRequest(5, 'write', [{ u32: 0 }, { data }]),
      encodeRequest(6, 'close', [{ u32: 0 }]),
    ]);
    b.child.stdin!.write(rest.subarray(0, 1000));
    await new Promise((r) => setTimeout(r, 50));
    b.child.stdin!.end(rest.subarray(1000));
    expect(await b.exit).toBe(0);
    const answers = new ResponseDecoder().push(Buffer.concat(chunks));
    expect(answers.map((a) => [a.id, a.status])).toEqual([1, 2, 3, 4, 5, 6].map((id) => [id, 0]));
    expect(readFileSync(join(dir, 'big')).equals(data)).toBe(true);
  });

  it('refuses a relative or NUL-containing path with EINVAL and goes on serving', async () => {
    const b = raw();
    const bad = Buffer.concat([
      u32(5 + 2 + 3),
      u32(1),
      Buffer.from([OP.stat]),
      Buffer.from([0, 3]),
      Buffer.from('a/b'),
    ]);
    const nul = Buffer.concat([
      u32(5 + 2 + 4),
      u32(2),
      Buffer.from([OP.stat]),
      Buffer.from([0, 4]),
      Buffer.from('/a\0b'),
    ]);
    b.child.stdin!.end(Buffer.concat([bad, nul, encodeRequest(3, 'stat', [{ path: '/' }])]));
    expect(await b.exit).toBe(0);
    const out = b.out();
    expect([out.readUInt32BE(4), out[8], out.readUInt32BE(9)]).toEqual([1, 1, 22]);
    expect([out.readUInt32BE(17), out[21], out.readUInt32BE(22)]).toEqual([2, 1, 22]);
    expect([out.readUInt32BE(30), out[34]]).toEqual([3, 0]);
  });

  it('create-file makes a new file whole in one request: data, mode, fsync, close; refuses to replace anything', async () => {
    const dir = homeFor('raw-create-file');
    writeFileSync(join(dir, 'old'), 'old content');
    symlinkSync(join(dir, 'old'), join(dir, 'link'));
    const b = raw();
    b.child.stdin!.end(
      Buffer.concat([
        createFileRequest(1, 0o644, 1, join(dir, 'new'), Buffer.from('keep;\n')),
        // Kept at 0600 (mode 0xffffffff), no fsync, no data: an empty file.
        createFileRequest(2, 0xffffffff, 0, join(dir, 'empty'), Buffer.alloc(0)),
        // Never replaces a file, never follows a link: EEXIST, and nothing changes.
        createFileRequest(3, 0o644, 1, join(dir, 'old'), Buffer.from('x')),
        createFileRequest(4, 0o644, 1, join(dir, 'link'), Buffer.from('x')),
        // setuid and other bits beyond 0777 are never set.
        createFileRequest(5, 0o4755, 0, join(dir, 'plain'), Buffer.from('y')),
        createFileRequest(6, 0o644, 0, join(dir, 'absent', 'f'), Buffer.from('z')),
        // Files sent together are finished together (one journal commit for their
        // fsyncs), and each is whole before the next request of another kind runs.
        encodeRequest(7, 'rename', [{ path: join(dir, 'new') }, { path: join(dir, 'renamed') }]),
        encodeRequest(8, 'read', [{ path: join(dir, 'renamed') }]),
      ]),
    );
    expect(await b.exit).toBe(0);
    const responses = new ResponseDecoder().push(b.out());
    expect(responses.map((r) => [r.id, r.status, r.status === 1 ? r.body.readUInt32BE(0) : r.body.length])).toEqual([
      [1, 0, 0],
      [2, 0, 0],
      [3, 1, 17], // EEXIST
      [4, 1, 17],
      [5, 0, 0],
      [6, 1, 2], // ENOENT: nothing was created
      [7, 0, 0],
      [8, 0, 6],
    ]);
    expect(responses[7].body.toString()).toBe('keep;\n');
    expect(readFileSync(join(dir, 'renamed'), 'utf8')).toBe('keep;\n');
    expect(statSync(join(dir, 'renamed')).mode & 0o7777).toBe(0o644);
    expect([statSync(join(dir, 'empty')).size, statSync(join(dir, 'empty')).mode & 0o7777]).toEqual([0, 0o600]);
    expect(readFileSync(join(dir, 'old'), 'utf8')).toBe('old content');
    expect(statSync(join(dir, 'plain')).mode & 0o7777).toBe(0o755);
  });

  it('if-previous-ok: a request runs only if the one before it in the stream succeeded, whatever write each came in; otherwise it is answered skipped (5) and counts as failed', async () => {
    const dir = homeFor('raw-if-previous-ok');
    writeFileSync(join(dir, 'exists'), 'e');
    const at = (name: string): Field => ({ path: join(dir, name) });
    const mkdirIf = (id: number, name: string): Buffer => encodeRequest(id, 'mkdir', [{ u32: 0o700 }, at(name)], true);
    const b = raw();
    const chunks: Buffer[] = [];
    b.child.stdout!.on('data', (c: Buffer) => chunks.push(c));
    const answers = (): Response[] => new ResponseDecoder().push(Buffer.concat(chunks));
    const answered = (n: number) => until(() => answers().length >= n);
    b.child.stdin!.write(
      Buffer.concat([
        // The first request of the stream has none before it: skipped.
        mkdirIf(1, 'first'),
        encodeRequest(2, 'stat', [{ path: dir }]),
        mkdirIf(3, 'after-ok'), // made
        encodeRequest(4, 'stat', [at('absent')]), // ENOENT
        mkdirIf(5, 'after-failure'), // skipped
        mkdirIf(6, 'after-skipped'), // skipped: a skipped request counts as failed
        encodeRequest(7, 'mkdir', [{ u32: 0o700 }, at('independent')]), // made whatever came before
        // Create-file requests that come together: one that depends on the one before
        // it waits for that one's outcome.
        createFileRequest(8, 0o600, 0, join(dir, 'after-ok', 'a'), Buffer.from('a')),
        encodeRequest(
          9,
          'createFile',
          [{ u32: 0o600 }, { u32: 0 }, at('after-ok/b'), { data: Buffer.from('b') }],
          true,
        ),
        createFileRequest(10, 0o600, 0, join(dir, 'exists'), Buffer.from('x')), // EEXIST
        encodeRequest(
          11,
          'createFile',
          [{ u32: 0o600 }, { u32: 0 }, at('after-ok/c'), { data: Buffer.from('c') }],
          true,
        ),
        // Every kind of request can depend on the one before: a rename, an unlink.
        encodeRequest(12, 'rename', [at('exists'), at('renamed')], true), // skipped (11 was)
        encodeRequest(13, 'unlink', [at('exists')], true), // skipped
      ]),
    );
    await answered(13);
    // Across writes (and batches): relative to the request before, answered earlier.
    b.child.stdin!.write(encodeRequest(14, 'stat', [at('absent')]));
    await answered(14);
    b.child.stdin!.write(mkdirIf(15, 'next-write-after-failure'));
    await answered(15);
    b.child.stdin!.write(encodeRequest(16, 'stat', [{ path: dir }]));
    await answered(16);
    b.child.stdin!.end(mkdirIf(17, 'next-write-after-ok'));
    expect(await b.exit).toBe(0);
    expect(answers().map((a) => [a.id, a.status, a.status === 1 ? a.body.readUInt32BE(0) : a.body.length])).toEqual([
      [1, 5, 0],
      [2, 0, 32],
      [3, 0, 0],
      [4, 1, 2],
      [5, 5, 0],
      [6, 5, 0],
      [7, 0, 0],
      [8, 0, 0],
      [9, 0, 0],
      [10, 1, 17],
      [11, 5, 0],
      [12, 5, 0],
      [13, 5, 0],
      [14, 1, 2],
      [15, 5, 0],
      [16, 0, 32],
      [17, 0, 0],
    ]);
    expect(readdirSync(dir).sort()).toEqual(['after-ok', 'exists', 'independent', 'next-write-after-ok']);
    expect(readdirSync(join(dir, 'after-ok')).sort()).toEqual(['a', 'b']);
  });

  it('ends the session (exit 3) on a malformed or oversized frame, without reading or answering it', async () => {
    const cases: Record<string, Buffer> = {
      'oversized length': u32(MAX_REQUEST_BYTES + 1),
      'huge length': Buffer.from([0xff, 0xff, 0xff, 0xff]),
      'too short for id and op': Buffer.concat([u32(3), Buffer.from([1, 2, 3])]),
      'unknown op': Buffer.concat([u32(5), u32(1), Buffer.from([99])]),
      'path longer than the frame': Buffer.concat([
        u32(5 + 2 + 1),
        u32(1),
        Buffer.from([OP.stat]),
        Buffer.from([0, 200]),
        Buffer.from('/'),
      ]),
      'trailing bytes': Buffer.concat([
        u32(5 + 2 + 1 + 1),
        u32(1),
        Buffer.from([OP.stat]),
        Buffer.from([0, 1]),
        Buffer.from('/x'),
      ]),
      'truncated frame then EOF': Buffer.concat([u32(100), Buffer.alloc(10)]),
      'create-file with a flag it does not know': createFileRequest(1, 0o600, 2, '/nonexistent/x', Buffer.from('x')),
      'an op byte with a bit it does not know (0x40)': Buffer.concat([u32(5), u32(1), Buffer.from([0x40 | OP.stat])]),
      'if-previous-ok on a truncated request (checked though it would be skipped)': Buffer.concat([
        u32(5 + 2),
        u32(1),
        Buffer.from([IF_PREVIOUS_OK | OP.stat]),
        Buffer.from([0, 9]),
      ]),
      'create-file too short for its flags': Buffer.concat([
        u32(5 + 4 + 2),
        u32(1),
        Buffer.from([OP.createFile]),
        u32(0o600),
        Buffer.from([0, 1]),
      ]),
    };
    for (const [what, bytes] of Object.entries(cases)) {
      const b = raw();
      b.child.stdin!.write(bytes);
      // The oversized ones must be refused from the length alone: keep the pipe open.
      if (what === 'truncated frame then EOF') b.child.stdin!.end();
      expect([what, await b.exit]).toEqual([what, 3]);
      expect([what, b.out().length]).toEqual([what, 0]);
    }
  });

  it('dies with its parent even while its stdin stays open (PR_SET_PDEATHSIG)', async () => {
    // sh is the broker's parent; this process keeps the broker's stdin open after sh dies.
    const sh = spawn('/bin/sh', ['-c', `exec 3<&0; ${BROKER} <&3 & echo $!; wait`], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const pid = Number(await new Promise<string>((r) => sh.stdout.once('data', (d: Buffer) => r(d.toString().trim()))));
    await until(
      () => existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('tsieved-broker'),
    );
    expect(runningProcess(pid)).toBe(true);
    sh.kill('SIGKILL');
    await until(() => !runningProcess(pid));
    sh.stdin.end();
  });
});

describe('FileOps through the broker', needs(BROKER_BUILT), () => {
  let launcher: BrokerLauncher;
  beforeAll(() => {
    launcher = new BrokerLauncher({ storage: storageConfig(), log: silentLogger() });
  });
  afterAll(() => launcher.close());

  it('does every FileOps call with node:fs semantics and errno codes', async () => {
    const id = self('ops');
    const files = launcher.openFiles(id);
    const ops: FileOps = files.ops;
    const d = join(id.home!, 'd');
    try {
      await ops.mkdir(d, 0o700);
      expect(await errnoCodeOf(ops.mkdir(d, 0o700))).toBe('EEXIST');
      const f = await ops.createExclusive(join(d, 'a'), 0o600);
      const data = Buffer.alloc(2.5 * 1024 * 1024);
      for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
      await f.writeAll(data); // more than one request's worth
      await f.chmod(0o4755); // setuid bits are never set by the broker
      await f.sync();
      await f.close();
      expect(await errnoCodeOf(ops.createExclusive(join(d, 'a'), 0o600))).toBe('EEXIST');
      expect((await ops.readFile(join(d, 'a'))).equals(data)).toBe(true);
      const st = await ops.stat(join(d, 'a'));
      expect([st.size, st.mode & 0o7777, st.isFile(), st.isDirectory(), st.uid]).toEqual([
        data.length,
        0o755,
        true,
        false,
        id.uid ?? process.getuid!(),
      ]);
      expect(Math.abs(st.mtimeMs - statSync(join(d, 'a')).mtimeMs)).toBeLessThan(1);
      symlinkSync('a', join(d, 'link'));
      expect((await ops.lstat(join(d, 'link'))).isSymbolicLink()).toBe(true);
      expect((await ops.stat(join(d, 'link'))).isFile()).toBe(true);
      expect(await errnoCodeOf(ops.createExclusive(join(d, 'link'), 0o600))).toBe('EEXIST');
      expect((await ops.readdir(d)).sort()).toEqual(['a', 'link']);
      await ops.rename(join(d, 'a'), join(d, 'b'));
      await ops.syncDir(d);
      expect(await errnoCodeOf(ops.readFile(join(d, 'a')))).toBe('ENOENT');
      expect(await errnoCodeOf(ops.rmdir(d))).toBe('ENOTEMPTY');
      await ops.unlink(join(d, 'b'));
      await ops.unlink(join(d, 'link'));
      await ops.rmdir(d);
      expect(await errnoCodeOf(ops.stat(d))).toBe('ENOENT');
      expect(await errnoCodeOf(ops.readdir(join(id.home!, 'nothing')))).toBe('ENOENT');
    } finally {
      await files.close();
    }
  });

  it('createFile: one request for a new file, the long way for data above one request; a failure says whether the file was made', async () => {
    const id = self('create-file');
    const files = launcher.openFiles(id);
    const ops = files.ops;
    try {
      const small = join(id.home!, 'small');
      await createFile(ops, small, Buffer.from('keep;\n'), { mode: 0o644, sync: true });
      expect([readFileSync(small, 'utf8'), statSync(small).mode & 0o7777]).toEqual(['keep;\n', 0o644]);
      const big = Buffer.alloc(2.5 * 1024 * 1024);
      for (let i = 0; i < big.length; i++) big[i] = (i * 13) & 0xff;
      await createFile(ops, join(id.home!, 'big'), big, { sync: true });
      expect(readFileSync(join(id.home!, 'big')).equals(big)).toBe(true);
      expect(statSync(join(id.home!, 'big')).mode & 0o7777).toBe(0o600);
      for (const data of [Buffer.from('x'), big]) {
        let err: unknown;
        await createFile(ops, small, data).catch((e: unknown) => (err = e));
        expect((err as { code?: string }).code).toBe('EEXIST');
        expect(createdBeforeFailure(err)).toBe(false);
      }
      expect(readFileSync(small, 'utf8')).toBe('keep;\n');
      expect(ops.alive).toBe(true);
    } finally {
      await files.close();
    }
  });

  it('refuses FIFOs and devices at once instead of blocking', async () => {
    const id = self('fifo');
    execFileSync(tool('mkfifo'), [join(id.home!, 'pipe')]);
    if (id.uid !== undefined) chownSync(join(id.home!, 'pipe'), id.uid, id.gid!);
    const files = launcher.openFiles(id);
    try {
      const t = Date.now();
      expect(await errnoCodeOf(files.ops.readFile(join(id.home!, 'pipe')))).toBe('ENOTREGULAR');
      expect(await errnoCodeOf(files.ops.readFile('/dev/zero'))).toBe('ENOTREGULAR');
      expect(Date.now() - t).toBeLessThan(2000);
      // ... and the session goes on.
      expect(await files.ops.readdir(id.home!)).toEqual(['pipe']);
    } finally {
      await files.close();
    }
  });

  it('a broker that never answers is ended after the call timeout, with TRYLATER', async () => {
    const hung = new BrokerLauncher({
      storage: storageConfig(),
      log: silentLogger(),
      command: ['/bin/sh', '-c', 'exec sleep 600'],
      callTimeoutMs: 300,
    });
    const files = hung.openFiles(self('hung'));
    const t = Date.now();
    expect((await rejection(files.ops.stat('/'))).kind).toBe('trylater');
    expect(Date.now() - t).toBeLessThan(5_000);
    await until(() => !runningProcess(files.ops.pid));
    expect((await rejection(files.ops.stat('/'))).kind).toBe('trylater');
  });

  it('a broker adopted before it started: requests wait for it, its output is read only once it has', async () => {
    const dir = homeFor('adopted');
    const b = raw();
    b.child.stdout!.removeAllListeners('data');
    b.child.stdout!.pause();
    let start!: () => void;
    const started = new Promise<void>((r) => (start = r));
    const ops = new BrokerFileOps(
      {
        pid: b.child.pid!,
        input: b.child.stdin!,
        output: b.child.stdout!,
        started,
        exited: b.exit.then(() => undefined),
        terminate: () => b.child.kill(),
      },
      { log: silentLogger() },
    );
    let answered = false;
    const stat = ops.stat(dir).then((st) => ((answered = true), st));
    // Answered in the pipe already, but not read while it is the starter's.
    await until(() => b.child.stdout!.readableLength > 0);
    await new Promise((r) => setTimeout(r, 100));
    expect(answered).toBe(false);
    start();
    expect((await stat).isDirectory()).toBe(true);
    await ops.close();

    // One that never starts: its calls fail with TRYLATER and it is ended.
    const never = raw();
    const failed = new BrokerFileOps(
      {
        pid: never.child.pid!,
        input: never.child.stdin!,
        output: never.child.stdout!,
        started: Promise.reject(new Error('the PAM helper did not start the broker')),
        exited: never.exit.then(() => undefined),
        terminate: () => never.child.kill(),
      },
      { log: silentLogger() },
    );
    expect((await rejection(failed.stat(dir))).kind).toBe('trylater');
    await never.exit;
  });

  it('a broker that sends garbage or an oversized frame is dropped with TRYLATER', async () => {
    for (const out of [
      'printf "\\377\\377\\377\\377"',
      'printf "\\000\\000\\000\\001x"',
      'printf "\\000\\000\\000\\005\\000\\000\\000\\011\\000"',
    ]) {
      const liar = new BrokerLauncher({
        storage: storageConfig(),
        log: silentLogger(),
        command: ['/bin/sh', '-c', `${out}; exec cat >/dev/null`],
      });
      const files = liar.openFiles(self('liar'));
      expect([out, (await rejection(files.ops.stat('/'))).kind]).toEqual([out, 'trylater']);
      await until(() => !runningProcess(files.ops.pid));
    }
  });
});

describe('the store over a broker', needs(BROKER_BUILT), () => {
  it('stores byte-exact, activates, and reports typed errors across the pipe', async () => {
    const launcher = new BrokerLauncher({ storage: storageConfig(), log: silentLogger() });
    const id = self('alice');
    const store = await launcher.open(id);
    try {
      const script = Buffer.from('require "fileinto";\r\nfileinto "x";\r\n\u0000\u00ff', 'latin1');
      await store.put('my script', script);
      expect((await store.get('my script')).equals(script)).toBe(true);
      await store.setActive('my script');
      expect(await store.list()).toEqual([{ name: 'my script', active: true }]);
      expect(readFileSync(join(id.home!, '.forward'), 'utf8')).toMatch(/^# Sieve filter\n/);
      expect((await rejection(store.get('absent'))).kind).toBe('nonexistent');
      expect((await rejection(store.delete('my script'))).kind).toBe('active');
      await store.rename('my script', 'renamed');
      expect(await store.list()).toEqual([{ name: 'renamed', active: true }]);
      const big = Buffer.alloc(1024 * 1024 - 256);
      for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
      await store.put('big', big);
      expect((await store.get('big')).equals(big)).toBe(true);
    } finally {
      await store.close();
    }
    expect(launcher.openCount).toBe(0);
  });

  it('the broker exits when the store is closed, and only its own session fails when it is killed', async () => {
    const launcher = new BrokerLauncher({ storage: storageConfig(), log: silentLogger() });
    const victimFiles = launcher.openFiles(self('victim'));
    const victim = await FileStore.open({
      ...fileStoreOptionsFor(storageConfig(), self('victim'), silentLogger()),
      fileOps: victimFiles.ops,
    });
    const bystander = await launcher.open(self('bystander'));
    try {
      await victim.put('a', Buffer.from('keep;'));
      const pending = victim.put('b', Buffer.alloc(900 * 1024, 0x61));
      process.kill(victimFiles.ops.pid, 'SIGKILL');
      expect((await rejection(pending)).kind).toBe('trylater');
      expect((await rejection(victim.list())).kind).toBe('trylater');
      await bystander.put('fine', Buffer.from('keep;'));
      expect(await bystander.list()).toEqual([{ name: 'fine', active: false }]);
    } finally {
      await victimFiles.close();
      await bystander.close();
    }
    const closer = launcher.openFiles(self('closer'));
    const pid = closer.ops.pid;
    expect(runningProcess(pid)).toBe(true);
    await closer.close();
    await until(() => !runningProcess(pid));
  });

  it('a broker killed in the middle of a change leaves what the next open repairs', async () => {
    const storage = storageConfig();
    const id = self('interrupted');
    const launcher = new BrokerLauncher({ storage, log: silentLogger() });
    // A killed broker leaves its lock behind; a short stale time keeps the test short
    // (how long a crashed session's lock holds others up is the lock's business).
    const open = (ops: FileOps) =>
      FileStore.open({ ...fileStoreOptionsFor(storage, id, silentLogger()), fileOps: ops, lock: { staleMs: 1_000 } });
    let files = launcher.openFiles(id);
    const first = await open(files.ops);
    await first.put('s', Buffer.from('keep;\r\n'));
    await first.setActive('s');
    await files.close();
    const filter = join(id.home!, '.forward');
    const before = readFileSync(filter);

    // Killed mid-write: after part of the new script's temp file.
    files = launcher.openFiles(id);
    let ops: FileOps = files.ops;
    const killing: FileOps = {
      ...bind(ops),
      async createExclusive(path, mode) {
        const f = await ops.createExclusive(path, mode);
        return {
          ...bindFile(f),
          writeAll: async (data) => {
            process.kill(files.ops.pid, 'SIGKILL');
            await f.writeAll(data);
          },
        };
      },
    };
    let store = await open(killing);
    expect((await rejection(store.put('s', Buffer.from('discard;\r\n')))).kind).toBe('trylater');
    await files.close();
    expect(readFileSync(filter).equals(before)).toBe(true);
    expect(readFileSync(join(id.home!, 'sieve', 's.sieve'), 'utf8')).toBe('keep;\r\n');

    // Killed between the filter's rename and the script's: the next open repairs the filter.
    files = launcher.openFiles(id);
    ops = files.ops;
    const betweenRenames: FileOps = {
      ...bind(ops),
      async rename(from, to) {
        await ops.rename(from, to);
        if (to === filter) process.kill(files.ops.pid, 'SIGKILL');
      },
    };
    store = await open(betweenRenames);
    await expect(store.put('s', Buffer.from('discard;\r\n'))).rejects.toMatchObject({ kind: 'trylater' });
    await files.close();
    expect(readFileSync(filter, 'utf8')).toMatch(/discard;/); // the filter ran ahead of the script
    expect(readFileSync(join(id.home!, 'sieve', 's.sieve'), 'utf8')).toBe('keep;\r\n');
    await new Promise((r) => setTimeout(r, 1_200)); // the dead broker's lock is stale now
    files = launcher.openFiles(id);
    const next = await open(files.ops);
    try {
      expect(await next.list()).toEqual([{ name: 's', active: true }]);
      // The filter follows the script recorded active again.
      expect(readFileSync(filter, 'utf8')).toMatch(/^# Sieve filter\n(?:#[^\n]*\n)*keep;\n$/);
    } finally {
      await files.close();
    }
    // Temp files of the killed writes are left for the stale-temp sweep, never renamed in.
    expect(readdirSync(join(id.home!, 'sieve')).filter((f) => f.endsWith('.sieve'))).toEqual(['s.sieve']);
  });

  it('runs the broker through token_command with the identity expanded by the server', async () => {
    const storage = storageConfig({
      token_command: ['/usr/bin/env', 'TSIEVED_TOKEN_FOR={user}', 'TSIEVED_TOKEN_HOME={home}'],
    });
    const id = self('tokenuser');
    expect(brokerCommand(storage, id)).toEqual([
      '/usr/bin/env',
      'TSIEVED_TOKEN_FOR=tokenuser',
      `TSIEVED_TOKEN_HOME=${id.home}`,
      BROKER,
    ]);
    const launcher = new BrokerLauncher({ storage, log: silentLogger() });
    const files = launcher.openFiles(id);
    try {
      await files.ops.stat('/');
      // env exec'd the broker: the process we talk to is the broker, with the wrapper's variable.
      expect(readFileSync(`/proc/${files.ops.pid}/cmdline`, 'utf8').split('\0')[0]).toBe(BROKER);
      expect(readFileSync(`/proc/${files.ops.pid}/environ`, 'utf8').split('\0')).toContain(
        'TSIEVED_TOKEN_FOR=tokenuser',
      );
    } finally {
      await files.close();
    }
  });

  it('a broker command that does not exist fails with trylater', async () => {
    const launcher = new BrokerLauncher({
      storage: storageConfig(),
      log: silentLogger(),
      command: ['/nonexistent/tsieved-broker'],
    });
    expect((await rejection(launcher.open(self('nocmd')))).kind).toBe('trylater');
  });

  it('launcher.close() ends every open broker (server shutdown)', async () => {
    const launcher = new BrokerLauncher({ storage: storageConfig(), log: silentLogger() });
    const a = launcher.openFiles(self('s1'));
    const b = launcher.openFiles(self('s2'));
    await Promise.all([a.ops.stat('/'), b.ops.stat('/')]);
    expect(launcher.openCount).toBe(2);
    await launcher.close();
    await until(() => !runningProcess(a.ops.pid) && !runningProcess(b.ops.pid));
  });
});

describe('the broker as another user (root)', needs(BROKER_BUILT, ROOT, 'chown'), () => {
  const UID_A = 41234;
  const UID_B = 41235;

  it('is possible here (start-up check passes as root)', () => {
    expect(processIsolationProblem()).toBeUndefined();
  });

  it('writes files owned by the identity, runs without root and without supplementary groups', async () => {
    const home = homeFor('owned');
    chownSync(home, UID_A, UID_A);
    const launcher = new BrokerLauncher({ storage: storageConfig(), log: silentLogger() });
    const files = launcher.openFiles({ user: 'owned', uid: UID_A, gid: UID_A, home, fields: {} });
    const store = await FileStore.open({
      ...fileStoreOptionsFor(
        storageConfig(),
        { user: 'owned', uid: UID_A, gid: UID_A, home, fields: {} },
        silentLogger(),
      ),
      fileOps: files.ops,
    });
    try {
      const status = readFileSync(`/proc/${files.ops.pid}/status`, 'utf8');
      expect(status).toMatch(new RegExp(`^Uid:\\s+${UID_A}\\s+${UID_A}\\s+${UID_A}\\s+${UID_A}$`, 'm'));
      expect(status).toMatch(new RegExp(`^Gid:\\s+${UID_A}\\s+${UID_A}\\s+${UID_A}\\s+${UID_A}$`, 'm'));
      expect(status).toMatch(/^Groups:\s*$/m);
      expect(status).toMatch(/^CapEff:\s+0+$/m);
      await store.put('s', Buffer.from('keep;'));
      await store.setActive('s');
      for (const p of [join(home, 'sieve'), join(home, '.forward')]) {
        const st = statSync(p);
        expect([st.uid, st.gid]).toEqual([UID_A, UID_A]);
      }
    } finally {
      await store.close();
      await files.close();
    }
  });

  it('a full disk (ENOSPC) met by calls sent together is quota, and leaves the files and no temp file', async () => {
    const mnt = mkdtempSync(join(tmpdir(), 'tsieved-broker-tmpfs-'));
    execFileSync(tool('mount'), ['-t', 'tmpfs', '-o', 'size=64k,mode=0755', 'tmpfs', mnt]);
    const id: Identity = { user: 'full', uid: UID_A, gid: UID_A, home: mnt, fields: {} };
    chownSync(mnt, UID_A, UID_A);
    const launcher = new BrokerLauncher({ storage: storageConfig(), log: silentLogger() });
    const files = launcher.openFiles(id);
    try {
      expect(files.ops.ordered).toBe(true);
      const store = await FileStore.open({
        ...fileStoreOptionsFor(storageConfig(), id, silentLogger()),
        limits: { maxScripts: 10, maxScriptBytes: 1 << 20, maxTotalBytes: 0 },
        fileOps: files.ops,
      });
      await store.put('main', Buffer.from('keep;\n'));
      await store.setActive('main');
      const filter = readFileSync(join(mnt, '.forward'));
      // Too big for the disk at all; then 36 KiB: the script's temp file fits, the filter's does not.
      for (const size of [100 * 1024, 36 * 1024]) {
        expect((await rejection(store.put('main', Buffer.alloc(size, 0x23)))).kind).toBe('quota');
        expect(readFileSync(join(mnt, 'sieve', 'main.sieve'), 'utf8')).toBe('keep;\n');
        expect(readFileSync(join(mnt, '.forward')).equals(filter)).toBe(true);
        expect(readdirSync(join(mnt, 'sieve')).filter((f) => f.includes('tsieved-tmp'))).toEqual([]);
        expect(readdirSync(mnt).filter((f) => f.includes('tsieved-tmp'))).toEqual([]);
      }
      expect(await store.list()).toEqual([{ name: 'main', active: true }]);
      expect(files.ops.alive).toBe(true);
    } finally {
      await files.close();
      execFileSync(tool('umount'), [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  });

  it('create-file that runs out of space after creating the file answers status 4 with the errno, and the file is there, closed', async () => {
    const mnt = mkdtempSync(join(tmpdir(), 'tsieved-broker-tmpfs-'));
    execFileSync(tool('mount'), ['-t', 'tmpfs', '-o', 'size=16k,mode=0755', 'tmpfs', mnt]);
    try {
      const b = raw();
      b.child.stdin!.end(
        Buffer.concat([
          createFileRequest(1, 0o644, 1, join(mnt, 'big'), Buffer.alloc(64 * 1024)),
          createFileRequest(2, 0o644, 1, join(mnt, 'big'), Buffer.alloc(1)),
        ]),
      );
      expect(await b.exit).toBe(0);
      const responses = new ResponseDecoder().push(b.out());
      expect(responses.map((r) => [r.id, r.status, r.body.readUInt32BE(0)])).toEqual([
        [1, 4, 28], // ENOSPC, after the file was made
        [2, 1, 17], // EEXIST: it is there
      ]);
      // Left at 0600: the steps after the failed write did not run.
      expect(statSync(join(mnt, 'big')).mode & 0o7777).toBe(0o600);
    } finally {
      execFileSync(tool('umount'), [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  });

  it("cannot touch another user's scripts even when the paths point there", async () => {
    const homeA = homeFor('victim-a');
    chownSync(homeA, UID_A, UID_A);
    chmodSync(homeA, 0o700);
    const launcher = new BrokerLauncher({ storage: storageConfig(), log: silentLogger() });
    const a = await launcher.open({ user: 'victim-a', uid: UID_A, gid: UID_A, home: homeA, fields: {} });
    await a.put('secret', Buffer.from('keep;'));
    await a.setActive('secret');
    await a.close();
    const before = readFileSync(join(homeA, '.forward'));
    // A crafted account (or template) whose home is A's home, but whose uid is B's.
    const err = await rejection(
      launcher.open({ user: 'intruder', uid: UID_B, gid: UID_B, home: homeA, fields: {} }).then(async (b) => {
        try {
          await b.put('evil', Buffer.from('discard;'));
          await b.setActive('evil');
          await b.get('secret');
        } finally {
          await b.close();
        }
      }),
    );
    expect(err.kind).toBe('permission');
    expect(readFileSync(join(homeA, '.forward')).equals(before)).toBe(true);
    expect(existsSync(join(homeA, 'sieve', 'evil.sieve'))).toBe(false);
  });

  it("a user's symlinks reach only what the user could reach: the kernel decides, as the user", async () => {
    const homeB = homeFor('link-b');
    chownSync(homeB, UID_B, UID_B);
    chmodSync(homeB, 0o700);
    writeFileSync(join(homeB, 'private'), 'B only\n', { mode: 0o600 });
    chownSync(join(homeB, 'private'), UID_B, UID_B);
    const homeA = homeFor('link-a');
    chownSync(homeA, UID_A, UID_A);
    // A points the filter file and a script at B's private file.
    symlinkSync(join(homeB, 'private'), join(homeA, '.forward'));
    mkdirSync(join(homeA, 'sieve'), { mode: 0o700 });
    symlinkSync(join(homeB, 'private'), join(homeA, 'sieve', 'stolen.sieve'));
    execFileSync(tool('chown'), ['-h', '-R', `${UID_A}:${UID_A}`, join(homeA, '.forward'), join(homeA, 'sieve')]);
    const launcher = new BrokerLauncher({ storage: storageConfig(), log: silentLogger() });
    const a = await launcher.open({ user: 'link-a', uid: UID_A, gid: UID_A, home: homeA, fields: {} });
    try {
      // Root could read it; the broker, as A, cannot: nothing of B's is imported or shown.
      expect((await rejection(a.get('stolen'))).kind).toBe('permission');
      expect((await rejection(a.list())).kind).toBe('permission');
      expect(existsSync(join(homeA, 'sieve', 'old-forward.sieve'))).toBe(false);
      expect(readdirSync(homeA).filter((f) => f.includes('tsieved-backup'))).toEqual([]);
    } finally {
      await a.close();
    }
    expect(readFileSync(join(homeB, 'private'), 'utf8')).toBe('B only\n');
  });

  it('refuses to start a root broker or one without a uid', async () => {
    const launcher = new BrokerLauncher({ storage: storageConfig(), log: silentLogger() });
    expect((await rejection(launcher.open({ user: 'r', uid: 0, gid: 0, home: homeFor('r'), fields: {} }))).kind).toBe(
      'permission',
    );
    expect((await rejection(launcher.open({ user: 'nouid', home: homeFor('nouid'), fields: {} }))).kind).toBe(
      'permission',
    );
  });

  it('the start-up check refuses a server that cannot switch users', () => {
    const script = join(base, 'check.mjs');
    const mod = new URL('../../dist/storage/broker/privileges.js', import.meta.url).pathname;
    writeFileSync(
      script,
      `import { processIsolationProblem } from ${JSON.stringify(mod)};\nprocess.stdout.write(processIsolationProblem() ?? 'none');\n`,
    );
    chmodSync(script, 0o644);
    const out = execFileSync(process.execPath, [script], { uid: 65534, gid: 65534, encoding: 'utf8', cwd: '/' });
    expect(out).toMatch(/needs root/);
  });
});

/** An object's methods bound to it, so that a spread copy still works. */
function bind(ops: FileOps): FileOps {
  return {
    createExclusive: (p, m) => ops.createExclusive(p, m),
    readFile: (p) => ops.readFile(p),
    readdir: (p) => ops.readdir(p),
    stat: (p) => ops.stat(p),
    lstat: (p) => ops.lstat(p),
    rename: (a, b) => ops.rename(a, b),
    unlink: (p) => ops.unlink(p),
    mkdir: (p, m) => ops.mkdir(p, m),
    rmdir: (p) => ops.rmdir(p),
    syncDir: (p) => ops.syncDir(p),
    // Kept: the store then sends dependent calls together, as it does over the broker.
    ordered: ops.ordered,
  };
}

function bindFile(f: Awaited<ReturnType<FileOps['createExclusive']>>) {
  return {
    writeAll: (d: Uint8Array) => f.writeAll(d),
    sync: () => f.sync(),
    chmod: (m: number) => f.chmod(m),
    close: () => f.close(),
  };
}
