/**
 * FileOps over a session's file broker: each call is one request frame
 * (./protocol.ts) to the broker's stdin, answered in order on its stdout; a call
 * made through ifPreviousSucceeded carries IF_PREVIOUS_OK, and the broker makes it
 * only if the request before it succeeded (SkippedCall otherwise). The
 * FileStore, its locking, repairs and validation stay in the server; only the
 * system calls happen in the broker, as the user.
 *
 * Failures keep their errno code (`err.code`), as node:fs reports them, so the
 * store treats them exactly as in-process failures. A broker that dies, closes its
 * pipe, sends a malformed or oversized frame, or does not answer within the call
 * timeout (a hung AFS server) is dropped: it is terminated (the PAM helper then
 * closes the PAM session and deletes the credentials), and this call and every
 * later one fail with StorageError('trylater') (NO (TRYLATER), RFC 5804 1.3). Only
 * this session is affected.
 *
 * Must not know: what the files mean, how the broker was started (PAM helper or
 * spawned), the wire protocol.
 */
import { constants as osConstants } from 'node:os';
import type { Logger } from '../../log/logger.js';
import {
  DIRECTORY_FSYNC_REFUSED,
  errnoError,
  createFileInSteps,
  DependentMark,
  failureAfterCreate,
  fileStatOf,
  SkippedCall,
  type FileOps,
  type FileStat,
  type NewFileOptions,
  type WritableFile,
} from '../file-ops.js';
import { StorageError } from '../types.js';
import {
  BodyReader,
  BrokerProtocolError,
  CREATE_FILE_KEEP_MODE,
  CREATE_FILE_SYNC,
  encodeRequest,
  ResponseDecoder,
  STATUS,
  WRITE_CHUNK_BYTES,
  type Field,
  type OpName,
  type Response,
} from './protocol.js';

/** A running broker's pipes and lifetime, whoever started it. */
export interface BrokerChannel {
  readonly pid: number;
  readonly input: NodeJS.WritableStream;
  readonly output: NodeJS.ReadableStream;
  /**
   * When given, `output` carries frames only once this resolves (and is then
   * resumed; before, it was its starter's); requests may be written before, and
   * wait in the pipe. A rejection says the broker did not start.
   */
  readonly started?: Promise<void>;
  /** Ends the broker (and, through the PAM helper, the PAM session). */
  terminate(): void;
  readonly exited: Promise<void>;
}

export interface BrokerOpsOptions {
  readonly log: Logger;
  /** A call not answered within this time drops the broker (default 30 s). */
  readonly callTimeoutMs?: number;
  /** How long close() waits for the broker to exit before terminating it. */
  readonly closeGraceMs?: number;
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

/** A stream that can hold writes back and send them in one go (net.Socket, a child's stdin). */
function corkable(s: NodeJS.WritableStream): s is NodeJS.WritableStream & { cork(): void; uncork(): void } {
  const w = s as Partial<{ cork: unknown; uncork: unknown }>;
  return typeof w.cork === 'function' && typeof w.uncork === 'function';
}

interface Pending {
  readonly id: number;
  resolve(r: Response): void;
  reject(err: Error): void;
}

function readStat(body: Buffer): FileStat & { readonly nlink: number } {
  const r = new BodyReader(body);
  const size = r.u64();
  const sec = r.i64();
  const nsec = r.u32();
  const uid = r.u32();
  const mode = r.u32();
  const nlink = r.u32();
  r.end();
  return fileStatOf({ size, mtimeMs: sec * 1000 + nsec / 1e6, uid, mode, nlink });
}

export class BrokerFileOps implements FileOps {
  private readonly decoder = new ResponseDecoder();
  /** In request order: the broker answers in order. */
  private readonly pending: Pending[] = [];
  private nextId = 1;
  private corked = false;
  private deadReason: string | undefined;
  private closing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly callTimeoutMs: number;
  private readonly closeGraceMs: number;
  private readonly log: Logger;
  private readonly outputEnded: Promise<void>;

  constructor(
    private readonly broker: BrokerChannel,
    options: BrokerOpsOptions,
  ) {
    this.log = options.log;
    this.callTimeoutMs = options.callTimeoutMs ?? 30_000;
    this.closeGraceMs = options.closeGraceMs ?? 5_000;
    const listen = (): void => void broker.output.on('data', (chunk: Buffer) => this.onData(chunk));
    if (broker.started === undefined) listen();
    else
      broker.started.then(
        () => {
          listen();
          broker.output.resume();
        },
        (err: Error) => this.drop(err.message),
      );
    this.outputEnded = new Promise((resolve) => {
      broker.output.once('end', () => resolve());
      broker.output.once('close', () => resolve());
    });
    // A broker that closed its end but lingers is ended too: it holds the session.
    broker.output.on('end', () => this.drop('the file broker closed its pipe'));
    broker.output.on('error', () => this.drop('the file broker pipe failed'));
    // A write to a dead broker's stdin must not crash the server (EPIPE).
    broker.input.on('error', () => this.drop('the file broker pipe failed'));
    void broker.exited.then(() => this.fail('the file broker exited'));
  }

  /** The broker serves its pipe in order: calls sent together run in the order sent. */
  readonly ordered = true;

  /** The next request goes with IF_PREVIOUS_OK (ifPreviousSucceeded). */
  private readonly dependent = new DependentMark();
  /** A call has been made in this turn of the event loop (cleared by a microtask). */
  private madeThisTurn = false;
  /**
   * The last call failed here without being sent (a path the broker would refuse):
   * one depending on it must not depend on whatever the broker served last instead.
   */
  private previousNotSent = false;

  /**
   * FileOps.ifPreviousSucceeded: the first request `call` makes carries IF_PREVIOUS_OK,
   * so the broker runs it only if the request before it succeeded, in its round trip.
   */
  ifPreviousSucceeded<T>(call: () => Promise<T>): Promise<T> {
    if (!this.madeThisTurn) throw new Error('ifPreviousSucceeded: no call made before it in this turn');
    return this.dependent.around(call);
  }

  get pid(): number {
    return this.broker.pid;
  }

  get alive(): boolean {
    return this.deadReason === undefined;
  }

  // ---- FileOps ----

  async createExclusive(path: string, mode: number): Promise<WritableFile> {
    const r = new BodyReader(await this.ok('create', [{ u32: mode }, { path }], path));
    const handle = r.u32();
    r.end();
    return this.file(handle, path);
  }

  /**
   * The whole new file in one request (create-file): one round trip instead of a
   * create and then its write, fchmod, fsync and close. Data too large for one
   * request goes the long way.
   */
  async createFile(path: string, data: Uint8Array, options: NewFileOptions): Promise<void> {
    if (data.length > WRITE_CHUNK_BYTES) return createFileInSteps(this, path, data, options);
    const mode = options.mode === undefined ? CREATE_FILE_KEEP_MODE : options.mode & 0o777;
    const flags = options.sync ? CREATE_FILE_SYNC : 0;
    await this.ok('createFile', [{ u32: mode }, { u32: flags }, { path }, { data }], path);
  }

  async readFile(path: string): Promise<Buffer> {
    return Buffer.from(await this.ok('read', [{ path }], path));
  }

  async readdir(path: string): Promise<string[]> {
    const r = new BodyReader(await this.ok('readdir', [{ path }], path));
    const names: string[] = [];
    while (!r.done) names.push(r.bytes(r.u16()).toString('utf8'));
    return names;
  }

  async stat(path: string): Promise<FileStat> {
    return readStat(await this.ok('stat', [{ path }], path));
  }

  async lstat(path: string): Promise<FileStat> {
    return readStat(await this.ok('lstat', [{ path }], path));
  }

  async rename(from: string, to: string): Promise<void> {
    await this.ok('rename', [{ path: from }, { path: to }], from);
  }

  async unlink(path: string): Promise<void> {
    await this.ok('unlink', [{ path }], path);
  }

  async mkdir(path: string, mode: number): Promise<void> {
    await this.ok('mkdir', [{ u32: mode }, { path }], path);
  }

  async rmdir(path: string): Promise<void> {
    await this.ok('rmdir', [{ path }], path);
  }

  async syncDir(path: string): Promise<void> {
    try {
      await this.ok('syncDir', [{ path }], path);
    } catch (err) {
      // As nodeFileOps: file systems that refuse fsync on a directory (AFS).
      if (!DIRECTORY_FSYNC_REFUSED.has((err as { code?: string }).code ?? '')) throw err;
    }
  }

  /** Ends the broker: EOF on its stdin, then terminate() if it lingers. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- internals ----

  private file(handle: number, path: string): WritableFile {
    return {
      writeAll: async (data) => {
        // In pieces below the broker's request cap; the broker writes each whole. All
        // are sent at once (before any later call on the file: the calls are ordered).
        const pieces: Promise<Buffer>[] = [];
        for (let off = 0; off < data.length || off === 0; off += WRITE_CHUNK_BYTES) {
          pieces.push(this.ok('write', [{ u32: handle }, { data: data.subarray(off, off + WRITE_CHUNK_BYTES) }], path));
          if (data.length === 0) break;
        }
        const results = await Promise.allSettled(pieces);
        const failed = results.find((r) => r.status === 'rejected');
        if (failed) throw failed.reason;
      },
      sync: async () => {
        await this.ok('fsync', [{ u32: handle }], path);
      },
      chmod: async (mode) => {
        await this.ok('fchmod', [{ u32: handle }, { u32: mode }], path);
      },
      close: async () => {
        await this.ok('close', [{ u32: handle }], path);
      },
    };
  }

  /** One call; resolves with the result body, rejects with an errno-coded Error or a StorageError. */
  private async ok(op: OpName, fields: readonly Field[], path: string): Promise<Buffer> {
    const res = await this.call(op, fields);
    switch (res.status) {
      case STATUS.ok:
        return res.body;
      case STATUS.errno:
      case STATUS.createdThenErrno: {
        if (res.status === STATUS.createdThenErrno && op !== 'createFile') {
          this.drop(`status ${res.status} to ${op} from the file broker`);
          throw new StorageError('trylater', `storage unavailable: ${this.deadReason}`);
        }
        let code = 'EIO';
        try {
          const r = new BodyReader(res.body);
          code = ERRNO_NAMES.get(r.u32()) ?? 'EIO';
          r.end();
        } catch {
          this.drop('malformed error from the file broker');
        }
        const err = errnoError(code, `${code}: ${op} ${path}`, path);
        // create-file made the file before it failed: the file is the caller's to remove.
        throw res.status === STATUS.createdThenErrno ? failureAfterCreate(err) : err;
      }
      case STATUS.notRegular:
        throw Object.assign(new Error(`${path} is not a regular file`), { code: 'ENOTREGULAR', path });
      case STATUS.tooLarge:
        throw Object.assign(new Error(`${path} is too large for the file broker`), { code: 'ETOOLARGE', path });
      case STATUS.skipped:
        throw new SkippedCall(`not made (${op} ${path}): the call it depended on failed`);
      default:
        this.drop(`unknown status ${res.status} from the file broker`);
        throw new StorageError('trylater', `storage unavailable: ${this.deadReason}`);
    }
  }

  private call(op: OpName, fields: readonly Field[]): Promise<Response> {
    const ifPreviousOk = this.dependent.take();
    if (!this.madeThisTurn) {
      this.madeThisTurn = true;
      queueMicrotask(() => {
        this.madeThisTurn = false;
      });
    }
    if (this.deadReason !== undefined) {
      return Promise.reject(new StorageError('trylater', `storage unavailable: ${this.deadReason}`));
    }
    if (ifPreviousOk && this.previousNotSent) return Promise.reject(new SkippedCall());
    const id = this.nextId++;
    let frame: Buffer;
    try {
      frame = encodeRequest(id, op, fields, ifPreviousOk);
    } catch (err) {
      this.previousNotSent = true;
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    this.previousNotSent = false;
    return new Promise<Response>((resolve, reject) => {
      this.pending.push({ id, resolve, reject });
      this.armTimer();
      this.holdUntilTick();
      this.broker.input.write(frame);
    });
  }

  /**
   * Requests made in one turn of the event loop (calls sent together) go out in one
   * write: the broker is woken once for them, not once per request.
   */
  private holdUntilTick(): void {
    const input = this.broker.input;
    if (this.corked || !corkable(input)) return;
    this.corked = true;
    input.cork();
    process.nextTick(() => {
      this.corked = false;
      input.uncork();
    });
  }

  /** One timer for the oldest unanswered call; an answer re-arms it for the next. */
  private armTimer(): void {
    if (this.timer !== undefined || this.pending.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.log.error(
        { pid: this.broker.pid, timeoutMs: this.callTimeoutMs },
        'file broker did not answer in time; terminating it',
      );
      this.drop(`no answer within ${this.callTimeoutMs} ms`);
    }, this.callTimeoutMs);
  }

  private onData(chunk: Buffer): void {
    let responses: Response[];
    try {
      responses = this.decoder.push(chunk);
    } catch (err) {
      this.log.error({ pid: this.broker.pid, err: (err as Error).message }, 'malformed frame from the file broker');
      this.drop('malformed frame from the file broker');
      return;
    }
    for (const res of responses) {
      const waiter = this.pending.shift();
      if (waiter === undefined || waiter.id !== res.id) {
        this.log.error({ pid: this.broker.pid, id: res.id }, 'unexpected answer from the file broker');
        if (waiter) this.pending.unshift(waiter);
        this.drop('unexpected answer from the file broker');
        return;
      }
      clearTimeout(this.timer);
      this.timer = undefined;
      this.armTimer();
      waiter.resolve(res);
    }
  }

  /** A broker that misbehaved: nothing more from it, and it is ended. */
  private drop(reason: string): void {
    this.fail(reason);
    // After close() the broker ending is what we asked for.
    if (this.closing === undefined) this.broker.terminate();
  }

  /** Marks the broker unusable and fails everything still waiting (TRYLATER). */
  private fail(reason: string): void {
    if (this.deadReason === undefined) this.deadReason = reason;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const waiter of this.pending.splice(0)) {
      waiter.reject(new StorageError('trylater', `storage unavailable: ${reason}`));
    }
  }

  private async shutdown(): Promise<void> {
    this.fail('the store was closed');
    try {
      this.broker.input.end();
    } catch {
      /* already gone */
    }
    // Done when the broker is: a PAM helper may go on closing the PAM session
    // (pam_krb5, AFS unlog) in the background without holding up this session.
    const finished = Promise.race([this.broker.exited, this.outputEnded]).then(() => true);
    const timeout = (ms: number) => new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref());
    if (await Promise.race([finished, timeout(this.closeGraceMs)])) return;
    this.log.warn({ pid: this.broker.pid }, 'file broker did not exit after its pipe closed; terminating it');
    this.broker.terminate();
    await Promise.race([finished, timeout(this.closeGraceMs)]);
  }
}

export { BrokerProtocolError };
