/**
 * A ScriptStore whose every operation runs in a per-session worker process, reached
 * over the worker's stdin/stdout with the frames of ./protocol.ts.
 *
 * A worker that dies, closes its pipe, sends garbage or does not answer in time
 * makes this session's pending and later operations fail with
 * StorageError('trylater') (NO (TRYLATER), RFC 5804 section 1.3): never a hang, and
 * never anything that touches another session. close() ends the worker by closing
 * its stdin, which is also how the PAM helper learns that the session is over.
 *
 * Must not know: how the worker was started (spawned or adopted from the PAM helper),
 * the wire protocol.
 */
import type { AttachedWorker } from '../../auth/types.js';
import type { Logger } from '../../log/logger.js';
import { StorageError, type ActivationResult, type MetaKey, type ScriptInfo, type ScriptStore } from '../types.js';
import type { Diagnostic } from '../../sieve/index.js';
import {
  encodeFrame,
  FrameDecoder,
  parseResponse,
  type Request,
  type ResultByOp,
  type WorkerInfo,
  type WorkerInit,
} from './protocol.js';

/** The worker's ends, as AttachedWorker (PAM) or a spawned child provides them. */
export type WorkerChannel = AttachedWorker;

export interface RemoteStoreOptions {
  readonly log: Logger;
  /** An operation not answered within this time kills the worker (TRYLATER). */
  readonly callTimeoutMs?: number;
  /** How long close() waits for the worker to exit before terminating it. */
  readonly closeGraceMs?: number;
  /** Called once when close() starts (the launcher forgets the store). */
  readonly onClose?: () => void;
}

interface Pending {
  resolve(value: { result: unknown; payload: Buffer }): void;
  reject(err: StorageError): void;
  timer: NodeJS.Timeout;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type RequestBody = DistributiveOmit<Request, 'id'>;

export class RemoteStore implements ScriptStore {
  private readonly pending = new Map<number, Pending>();
  private readonly decoder = new FrameDecoder();
  private nextId = 1;
  private deadReason: string | undefined;
  private closing: Promise<void> | undefined;
  private readonly callTimeoutMs: number;
  private readonly closeGraceMs: number;
  private readonly log: Logger;
  private readonly onClose: (() => void) | undefined;
  /** The worker's stdout ended: the worker itself has exited (or closed it). */
  private readonly outputEnded: Promise<boolean>;

  constructor(private readonly worker: WorkerChannel, options: RemoteStoreOptions) {
    this.log = options.log;
    this.callTimeoutMs = options.callTimeoutMs ?? 60_000;
    this.closeGraceMs = options.closeGraceMs ?? 5_000;
    this.onClose = options.onClose;
    worker.output.on('data', (chunk: Buffer) => this.onData(chunk));
    this.outputEnded = new Promise<boolean>((resolve) => {
      worker.output.once('end', () => resolve(true));
      worker.output.once('close', () => resolve(true));
    });
    worker.output.on('end', () => this.fail('the storage worker closed its pipe'));
    worker.output.on('error', () => this.fail('the storage worker pipe failed'));
    // A write to a dead worker's stdin must not crash the server (EPIPE).
    worker.input.on('error', () => this.fail('the storage worker pipe failed'));
    void worker.exited.then(() => this.fail('the storage worker exited'));
  }

  /** The worker process's pid (the one that touches the files). */
  get pid(): number {
    return this.worker.pid;
  }

  get alive(): boolean {
    return this.deadReason === undefined;
  }

  /** First request: storage config and identity; opens the FileStore in the worker. */
  async init(init: WorkerInit): Promise<void> {
    await this.call('init', { op: 'init', init });
  }

  async whoami(): Promise<WorkerInfo> {
    return (await this.call('whoami', { op: 'whoami' })).result;
  }

  /**
   * Checks a script in the worker (not part of ScriptStore): needs `sieve` in the
   * init message. Rejects with StorageError('trylater') if the worker is gone.
   */
  async validate(script: Buffer): Promise<Diagnostic[]> {
    return (await this.call('validate', { op: 'validate' }, script)).result;
  }

  async list(): Promise<ScriptInfo[]> {
    const { result } = await this.call('list', { op: 'list' });
    // The worker runs as the user: treat what it says as untrusted input.
    if (!Array.isArray(result) || !result.every((e) => typeof e?.name === 'string' && typeof e?.active === 'boolean')) {
      this.fail('malformed list from the storage worker');
      this.worker.terminate();
      throw new StorageError('trylater', 'storage unavailable: malformed list from the storage worker');
    }
    return result.map((e) => ({ name: e.name, active: e.active }));
  }

  async get(name: string): Promise<Buffer> {
    return (await this.call('get', { op: 'get', name })).payload;
  }

  async checkSpace(name: string, size: number): Promise<void> {
    await this.call('checkSpace', { op: 'checkSpace', name, size });
  }

  async put(name: string, content: Buffer): Promise<void> {
    await this.call('put', { op: 'put', name }, content);
  }

  async delete(name: string): Promise<void> {
    await this.call('delete', { op: 'delete', name });
  }

  async rename(oldName: string, newName: string): Promise<void> {
    await this.call('rename', { op: 'rename', from: oldName, to: newName });
  }

  async setActive(name: string): Promise<void> {
    await this.call('setActive', { op: 'setActive', name });
  }

  async isVerbatim(name: string): Promise<boolean> {
    return (await this.call('isVerbatim', { op: 'isVerbatim', name })).result === true;
  }

  async putIfAbsent(name: string, content: Buffer): Promise<boolean> {
    return (await this.call('putIfAbsent', { op: 'putIfAbsent', name }, content)).result === true;
  }

  async setActiveIfNone(name: string): Promise<ActivationResult> {
    const { result } = await this.call('setActiveIfNone', { op: 'setActiveIfNone', name });
    // The worker runs as the user: only the expected shape is believed.
    const r = result as Partial<ActivationResult> | null;
    const opt = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
    const dropped = opt(r?.dropped);
    return { active: opt(r?.active), activated: r?.activated === true, ...(dropped !== undefined ? { dropped } : {}) };
  }

  async preserveForward(content: Buffer): Promise<string> {
    const { result } = await this.call('preserveForward', { op: 'preserveForward' }, content);
    if (typeof result !== 'string') throw new StorageError('io', 'malformed answer from the storage worker');
    return result;
  }

  async readMeta(key: MetaKey): Promise<Buffer | undefined> {
    const { result, payload } = await this.call('readMeta', { op: 'readMeta', key });
    return result === true ? payload : undefined;
  }

  async writeMeta(key: MetaKey, content: Buffer): Promise<void> {
    await this.call('writeMeta', { op: 'writeMeta', key }, content);
  }

  /** Ends the worker: EOF on its stdin, then SIGTERM if it lingers. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.onClose?.();
    this.fail('the store was closed');
    try {
      this.worker.input.end();
    } catch {
      /* already gone */
    }
    // Done when the worker is: a PAM helper may go on closing the PAM session
    // (pam_krb5, AFS unlog) in the background without holding up this session.
    const exited = this.worker.exited.then(() => true);
    const finished = Promise.race([exited, this.outputEnded]);
    const timeout = (ms: number) => new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref());
    if (await Promise.race([finished, timeout(this.closeGraceMs)])) return;
    this.log.warn({ pid: this.worker.pid }, 'storage worker did not exit after its pipe closed; terminating it');
    this.worker.terminate();
    await Promise.race([finished, timeout(this.closeGraceMs)]);
  }

  private call<Op extends keyof ResultByOp>(
    _op: Op,
    body: RequestBody & { op: Op },
    payload?: Buffer,
  ): Promise<{ result: ResultByOp[Op]; payload: Buffer }> {
    if (this.deadReason !== undefined) {
      return Promise.reject(new StorageError('trylater', `storage unavailable: ${this.deadReason}`));
    }
    const id = this.nextId++;
    let frame: Buffer;
    try {
      frame = encodeFrame({ id, ...body }, payload);
    } catch (err) {
      return Promise.reject(new StorageError('quota-maxsize', (err as Error).message));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.log.error({ pid: this.worker.pid, op: body.op }, 'storage worker did not answer in time; terminating it');
        this.fail(`no answer to ${body.op} within ${this.callTimeoutMs} ms`);
        this.worker.terminate();
      }, this.callTimeoutMs);
      this.pending.set(id, {
        resolve: resolve as Pending['resolve'],
        reject,
        timer,
      });
      this.worker.input.write(frame);
    });
  }

  private onData(chunk: Buffer): void {
    let frames;
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.log.error({ pid: this.worker.pid, err: (err as Error).message }, 'malformed data from storage worker');
      this.fail('malformed data from the storage worker');
      this.worker.terminate();
      return;
    }
    for (const frame of frames) {
      const res = parseResponse(frame.header);
      const waiter = res ? this.pending.get(res.id) : undefined;
      if (!res || !waiter) {
        this.fail('unexpected response from the storage worker');
        this.worker.terminate();
        return;
      }
      this.pending.delete(res.id);
      clearTimeout(waiter.timer);
      if (res.ok) waiter.resolve({ result: res.result, payload: frame.payload });
      else waiter.reject(new StorageError(res.error.kind, res.error.message));
    }
  }

  /** Marks the worker unusable and fails everything still waiting (TRYLATER). */
  private fail(reason: string): void {
    if (this.deadReason === undefined) this.deadReason = reason;
    for (const [id, waiter] of this.pending) {
      this.pending.delete(id);
      clearTimeout(waiter.timer);
      waiter.reject(new StorageError('trylater', `storage unavailable: ${reason}`));
    }
  }
}
