/**
 * FileOps for in-process storage (isolation = "none"), served by a few file-I/O
 * threads of our own (./fs-thread.cjs) that make the system calls synchronously.
 * A read is one message to a thread instead of five round trips through libuv's
 * pool, which made the file calls most of the server's CPU per login.
 *
 * A store's calls in flight are all on one thread, so they run in the order made:
 * the store may send dependent calls together and wait once (`ordered`, as over a
 * file broker), also a call to be made only if the one before it succeeded
 * (`ifPreviousSucceeded`: the thread skips it otherwise). Between its calls a store
 * goes to whichever thread waits least.
 *
 * A second thread starts when the first has had a call waiting for 20 ms (a slow or
 * hung file system); until then one thread serves all stores, which costs least.
 * A call not answered within the call timeout (a hung NFS or AFS server) marks its
 * thread stalled: every call waiting on it fails with StorageError('trylater')
 * (NO (TRYLATER), RFC 5804 1.3), the thread is terminated (it ends when its system
 * call returns) and another is started when needed. Until then only the stores
 * whose calls it holds wait; the others go to other threads.
 *
 * Must not know: what the files mean, scripts, locking, the wire protocol.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log/logger.js';
import {
  DependentMark,
  DIRECTORY_FSYNC_REFUSED,
  errnoError,
  failureAfterCreate,
  fileStatOf,
  MAX_READ_BYTES,
  SkippedCall,
  type FileOps,
  type FileStat,
  type NewFileOptions,
  type StatFields,
  type WritableFile,
} from './file-ops.js';
import { StorageError } from './types.js';

interface Call {
  readonly id: number;
  readonly op: string;
  readonly a?: unknown;
  readonly b?: unknown;
  /** Run only if the call the thread ran just before succeeded (FileOps.ifPreviousSucceeded). */
  readonly c?: true;
}

interface Result {
  readonly id: number;
  readonly v?: unknown;
  /** Not run: it was to run only if the call before succeeded, which did not. */
  readonly s?: true;
  /** `created`: a createFile that failed after making the file. */
  readonly e?: { readonly code: string; readonly message: string; readonly created?: true };
}

interface Pending {
  /** When the call was made (performance.now()). */
  readonly since: number;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

const THREAD_FILE = new URL('./fs-thread.cjs', import.meta.url);

/** One thread and the calls it has not answered yet, in the order sent. */
class FsThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private outbox: Call[] = [];
  private nextId = 1;
  private timer: NodeJS.Timeout | undefined;
  private stalled: string | undefined;

  constructor(
    file: URL,
    private readonly callTimeoutMs: number,
    private readonly log: Logger,
    private readonly onStalled: () => void,
  ) {
    this.worker = new Worker(file, { stdout: false, stderr: false });
    // The threads never keep the process alive: a server that is done exits.
    this.worker.unref();
    this.worker.on('message', (results: Result[]) => this.answer(results));
    this.worker.on('error', (err) => this.giveUp(`the file thread failed: ${err.message}`));
    this.worker.on('exit', () => this.giveUp('the file thread exited'));
  }

  get usable(): boolean {
    return this.stalled === undefined;
  }

  /** Calls sent and not answered yet. */
  get waiting(): number {
    return this.pending.size;
  }

  /** How long the oldest of them has waited (ms); 0 when none waits. */
  get oldestWaitMs(): number {
    for (const p of this.pending.values()) return performance.now() - p.since;
    return 0;
  }

  /**
   * Sends a call; `after`: the id of the call it depends on (run only if that one
   * succeeded), which must be the last one sent, still waiting in the outbox: then
   * the thread runs the two one right after the other.
   */
  call(op: string, a?: unknown, b?: unknown, after?: number): Promise<unknown> {
    if (this.stalled !== undefined) {
      return Promise.reject(new StorageError('trylater', `storage unavailable: ${this.stalled}`));
    }
    if (after !== undefined && this.outbox.at(-1)?.id !== after) {
      // Another call came between them: the thread would judge by that one's outcome.
      throw new Error('a dependent file call must follow the call it depends on at once');
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { since: performance.now(), resolve, reject });
      // Calls made in one go (without waiting for each other) travel in one message.
      if (this.outbox.length === 0) queueMicrotask(() => this.flush());
      this.outbox.push(after === undefined ? { id, op, a, b } : { id, op, a, b, c: true });
      this.armTimer();
    });
  }

  /** The id of the call sent last, while it waits in the outbox (made in this turn). */
  get lastQueued(): number | undefined {
    return this.outbox.at(-1)?.id;
  }

  terminate(): void {
    this.giveUp('the file threads were closed');
  }

  private flush(): void {
    const calls = this.outbox;
    this.outbox = [];
    if (calls.length > 0 && this.stalled === undefined) this.worker.postMessage(calls);
  }

  private answer(results: Result[]): void {
    for (const r of results) {
      const waiter = this.pending.get(r.id);
      if (waiter === undefined) continue;
      this.pending.delete(r.id);
      if (r.s) waiter.reject(new SkippedCall());
      else if (r.e === undefined) waiter.resolve(r.v);
      else {
        const err = errnoError(r.e.code, r.e.message);
        waiter.reject(r.e.created ? failureAfterCreate(err) : err);
      }
    }
    // Progress: the oldest call still waiting gets a full timeout of its own.
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armTimer();
  }

  private armTimer(): void {
    if (this.timer !== undefined || this.pending.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.log.error(
        { event: 'file-thread-stalled', timeoutMs: this.callTimeoutMs, waiting: this.pending.size },
        'a file operation did not finish in time (hung file system?); its calls fail and a new thread takes over',
      );
      this.giveUp(`no answer from the file system within ${this.callTimeoutMs} ms`);
    }, this.callTimeoutMs);
    this.timer.unref();
  }

  /** Nothing more from this thread: what waits fails (TRYLATER), its lane gets a new thread. */
  private giveUp(reason: string): void {
    if (this.stalled !== undefined) return;
    this.stalled = reason;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.outbox = [];
    for (const waiter of this.pending.values()) {
      waiter.reject(new StorageError('trylater', `storage unavailable: ${reason}`));
    }
    this.pending.clear();
    // A thread blocked in a system call ends when the call returns.
    void this.worker.terminate().catch(() => undefined);
    this.onStalled();
  }
}

export interface FsThreadPoolOptions {
  /** How many threads the stores share (at least 1). */
  readonly threads: number;
  readonly log: Logger;
  /** A call not answered within this marks its thread stalled (default 30 s). */
  readonly callTimeoutMs?: number;
  /** The thread's program (tests stand in a misbehaving one). */
  readonly threadFile?: URL;
  /**
   * Another thread is started only once the busy ones' oldest call has waited this
   * long (ms, default 20): a thread that keeps up serves alone (on the bench machine
   * one thread per worker did 10% more logins per second than two), one held up by
   * a slow or hung file system is gone around.
   */
  readonly startAfterMs?: number;
}

/**
 * The file-I/O threads of this process: at most `threads`, another started only when
 * every running one has a call waiting for `startAfterMs` (most servers run one).
 */
export class FsThreadPool {
  private readonly lanes: (FsThread | undefined)[];
  private closed = false;

  constructor(private readonly options: FsThreadPoolOptions) {
    this.lanes = new Array<FsThread | undefined>(Math.max(1, options.threads)).fill(undefined);
  }

  /**
   * FileOps for one store. Its calls in flight, and every call while it has a file
   * open, are on one thread, so they run in the order made; otherwise its next call
   * goes to whichever thread waits least. A thread stuck on a hung file system thus
   * holds only the stores whose calls it holds; the others go around it.
   */
  fileOps(): FileOps {
    return new ThreadFileOps(() => this.pick());
  }

  /** Threads started and still serving (tests). */
  get running(): number {
    return this.lanes.filter((t) => t?.usable).length;
  }

  close(): void {
    this.closed = true;
    for (const t of this.lanes) t?.terminate();
  }

  /** The thread that waits least; a new one when all are held up and there is room. */
  private pick(): FsThread {
    if (this.closed) throw new StorageError('trylater', 'storage unavailable: the server is shutting down');
    let best: FsThread | undefined;
    for (const t of this.lanes) if (t?.usable && (best === undefined || t.waiting < best.waiting)) best = t;
    if (best !== undefined && (best.waiting === 0 || best.oldestWaitMs < (this.options.startAfterMs ?? 20)))
      return best;
    const free = this.lanes.findIndex((t) => !t?.usable);
    return free === -1 && best !== undefined ? best : this.start(free);
  }

  private start(lane: number): FsThread {
    const started = new FsThread(
      this.options.threadFile ?? THREAD_FILE,
      this.options.callTimeoutMs ?? 30_000,
      this.options.log,
      () => {
        if (this.lanes[lane] === started) this.lanes[lane] = undefined;
      },
    );
    this.lanes[lane] = started;
    return started;
  }
}

class ThreadFileOps implements FileOps {
  /** Calls sent together are on one thread, which makes them in the order made. */
  readonly ordered = true;
  private thread: FsThread | undefined;
  private inFlight = 0;
  private openFiles = 0;
  /**
   * The call this store made last in this turn of the event loop (cleared by a
   * microtask), where it went; `id` undefined when it was not sent (a stalled thread).
   */
  private previous: { readonly thread: FsThread; readonly id: number | undefined } | undefined;
  /** The next call runs only if the one before it succeeded (ifPreviousSucceeded). */
  private readonly dependent = new DependentMark();

  constructor(private readonly pick: () => FsThread) {}

  /**
   * FileOps.ifPreviousSucceeded: the first call `call` makes goes to the thread
   * right behind this store's call before it (the same thread: calls in flight stay
   * on one), marked to run only if that one succeeded.
   */
  ifPreviousSucceeded<T>(call: () => Promise<T>): Promise<T> {
    if (this.previous === undefined) throw new Error('ifPreviousSucceeded: no call made before it in this turn');
    return this.dependent.around(call);
  }

  async createExclusive(path: string, mode: number): Promise<WritableFile> {
    // A descriptor belongs to the thread that opened it: every call on it goes there.
    const thread = this.route();
    const fd = (await this.call('create', path, mode, path, thread)) as number;
    this.openFiles++;
    let open = true;
    const on = (op: string, b?: unknown) => this.call(op, fd, b, path, thread).then(() => undefined);
    return {
      // Only the bytes of the view travel (a Buffer may be a slice of a much larger one).
      writeAll: (data) => on('write', new Uint8Array(data)),
      sync: () => on('fsync'),
      chmod: (m) => on('fchmod', m),
      close: () => {
        if (open) this.openFiles--;
        open = false;
        return on('close');
      },
    };
  }

  /** A new file made whole by the thread in one message (file-ops.ts createFile). */
  async createFile(path: string, data: Uint8Array, options: NewFileOptions): Promise<void> {
    // Only the bytes of the view travel (a Buffer may be a slice of a much larger one).
    const o = { data: new Uint8Array(data), mode: options.mode, sync: options.sync === true };
    await this.call('createFile', path, o, path);
  }

  async readFile(path: string): Promise<Buffer> {
    const bytes = (await this.call('read', path, MAX_READ_BYTES, path)) as Uint8Array;
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  async readdir(path: string): Promise<string[]> {
    return (await this.call('readdir', path, undefined, path)) as string[];
  }

  async stat(path: string): Promise<FileStat> {
    return fileStatOf((await this.call('stat', path, undefined, path)) as StatFields);
  }

  async lstat(path: string): Promise<FileStat> {
    return fileStatOf((await this.call('lstat', path, undefined, path)) as StatFields);
  }

  async rename(from: string, to: string): Promise<void> {
    await this.call('rename', from, to, from);
  }

  async unlink(path: string): Promise<void> {
    await this.call('unlink', path, undefined, path);
  }

  async mkdir(path: string, mode: number): Promise<void> {
    await this.call('mkdir', path, mode, path);
  }

  async rmdir(path: string): Promise<void> {
    await this.call('rmdir', path, undefined, path);
  }

  async syncDir(path: string): Promise<void> {
    try {
      await this.call('syncDir', path, undefined, path);
    } catch (err) {
      // As nodeFileOps: some file systems (AFS among them) do not fsync a directory.
      if (!DIRECTORY_FSYNC_REFUSED.has((err as { code?: string }).code ?? '')) throw err;
    }
  }

  /** The thread for the next call: the same one while calls are in flight or a file is open. */
  private route(): FsThread {
    if (this.thread === undefined || (this.inFlight === 0 && this.openFiles === 0)) this.thread = this.pick();
    return this.thread;
  }

  /** One call; a failure keeps its errno code and names the path, as node:fs does. */
  private async call(op: string, a: unknown, b: unknown, path: string, thread = this.route()): Promise<unknown> {
    const after = this.dependent.take() ? this.previous : undefined;
    if (this.previous === undefined) {
      queueMicrotask(() => {
        this.previous = undefined;
      });
    }
    this.inFlight++;
    try {
      let sent: Promise<unknown>;
      const queued = thread.lastQueued;
      try {
        if (after !== undefined && after.thread !== thread)
          throw new Error('a dependent file call went to another thread');
        // The call it depends on was not sent: it failed here (its thread stalled).
        sent =
          after !== undefined && after.id === undefined
            ? Promise.reject(new SkippedCall())
            : thread.call(op, a, b, after?.id);
      } finally {
        const id = thread.lastQueued;
        this.previous = { thread, id: id === queued ? undefined : id };
      }
      return await sent;
    } catch (err) {
      if (err instanceof SkippedCall) throw err;
      if (err instanceof StorageError) throw err;
      throw Object.assign(err as Error, { path });
    } finally {
      this.inFlight--;
    }
  }
}
