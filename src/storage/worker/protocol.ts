/**
 * The storage RPC between the server and a per-session worker, over the worker's
 * stdin (requests) and stdout (responses).
 *
 * A frame is: u32 BE header length, u32 BE payload length, the header as UTF-8 JSON,
 * then the payload bytes. Script content travels as the raw payload (byte-exact, no
 * base64), everything else in the header. The first request is always `init`, which
 * carries the storage configuration and identity: nothing the worker needs comes
 * through argv or the environment, where other local users could read it.
 *
 * Must not know: how the streams were obtained (spawned, or adopted from the PAM
 * helper), FileStore internals, the wire protocol.
 */
import type { Identity } from '../../auth/types.js';
import type { Diagnostic, SieveProfile } from '../../sieve/index.js';
import type { StorageConfig } from '../paths.js';
import { META_KEYS } from '../layout.js';
import type { ActivationResult, MetaKey, ScriptInfo, StorageErrorKind } from '../types.js';

/** Headers are small JSON objects; anything larger is a broken or hostile peer. */
export const MAX_HEADER_BYTES = 256 * 1024;
/** Scripts are at most 1 MiB (Exim's limit); leave room, refuse anything absurd. */
export const MAX_PAYLOAD_BYTES = 4 * 1024 * 1024;
const PREFIX_BYTES = 8;

export interface WorkerInit {
  readonly storage: StorageConfig;
  readonly identity: Identity;
  readonly logLevel: string;
  /** When given, the worker can validate scripts (`validate`) for this session. */
  readonly sieve?: SieveProfile;
}

export type Request =
  | { readonly id: number; readonly op: 'init'; readonly init: WorkerInit }
  | { readonly id: number; readonly op: 'list' }
  | { readonly id: number; readonly op: 'get'; readonly name: string }
  | { readonly id: number; readonly op: 'checkSpace'; readonly name: string; readonly size: number }
  /** Payload: the script. */
  | { readonly id: number; readonly op: 'put'; readonly name: string }
  | { readonly id: number; readonly op: 'delete'; readonly name: string }
  | { readonly id: number; readonly op: 'rename'; readonly from: string; readonly to: string }
  | { readonly id: number; readonly op: 'setActive'; readonly name: string }
  | { readonly id: number; readonly op: 'isVerbatim'; readonly name: string }
  /** Payload: the script. */
  | { readonly id: number; readonly op: 'putIfAbsent'; readonly name: string }
  | { readonly id: number; readonly op: 'setActiveIfNone'; readonly name: string }
  /** Payload: the filter-file bytes to keep. */
  | { readonly id: number; readonly op: 'preserveForward' }
  | { readonly id: number; readonly op: 'readMeta'; readonly key: MetaKey }
  /** Payload: the metadata. */
  | { readonly id: number; readonly op: 'writeMeta'; readonly key: MetaKey }
  /** Payload: a script to check against the session's Sieve profile. */
  | { readonly id: number; readonly op: 'validate' }
  /** Who the worker runs as, for logs and tests. */
  | { readonly id: number; readonly op: 'whoami' };

export type RequestOp = Request['op'];

export interface WorkerInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
  /** The worker's nice value (raised so workers cannot starve the server). */
  readonly nice: number;
  /** Names of the environment variables PAM exported (values stay in the worker). */
  readonly credentialEnv: readonly string[];
}

export interface ResultByOp {
  init: null;
  list: ScriptInfo[];
  get: null; // payload carries the script
  checkSpace: null;
  put: null;
  delete: null;
  rename: null;
  setActive: null;
  isVerbatim: boolean;
  putIfAbsent: boolean;
  setActiveIfNone: ActivationResult;
  preserveForward: string;
  /** The payload carries the metadata; the result says whether there is any. */
  readMeta: boolean;
  writeMeta: null;
  whoami: WorkerInfo;
  validate: Diagnostic[];
}

export type Response =
  | { readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly id: number; readonly ok: false; readonly error: { readonly kind: StorageErrorKind; readonly message: string } };

export interface Frame<H> {
  readonly header: H;
  readonly payload: Buffer;
}

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

export function encodeFrame(header: object, payload: Buffer = Buffer.alloc(0)): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  if (json.length > MAX_HEADER_BYTES) throw new FrameError(`header of ${json.length} bytes is too large`);
  if (payload.length > MAX_PAYLOAD_BYTES) throw new FrameError(`payload of ${payload.length} bytes is too large`);
  const prefix = Buffer.alloc(PREFIX_BYTES);
  prefix.writeUInt32BE(json.length, 0);
  prefix.writeUInt32BE(payload.length, 4);
  return Buffer.concat([prefix, json, payload]);
}

/**
 * Incremental decoder: feed it chunks as they arrive, get whole frames. Throws
 * FrameError on oversized or malformed frames; the caller then drops the peer,
 * since the byte stream cannot be resynchronised.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): Frame<unknown>[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame<unknown>[] = [];
    for (;;) {
      if (this.buffered < PREFIX_BYTES) break;
      const head = this.peek(PREFIX_BYTES);
      const headerLen = head.readUInt32BE(0);
      const payloadLen = head.readUInt32BE(4);
      if (headerLen > MAX_HEADER_BYTES) throw new FrameError(`header length ${headerLen} exceeds ${MAX_HEADER_BYTES}`);
      if (payloadLen > MAX_PAYLOAD_BYTES) throw new FrameError(`payload length ${payloadLen} exceeds ${MAX_PAYLOAD_BYTES}`);
      const total = PREFIX_BYTES + headerLen + payloadLen;
      if (this.buffered < total) break;
      const all = this.take(total);
      let header: unknown;
      try {
        header = JSON.parse(all.subarray(PREFIX_BYTES, PREFIX_BYTES + headerLen).toString('utf8'));
      } catch {
        throw new FrameError('header is not JSON');
      }
      if (typeof header !== 'object' || header === null) throw new FrameError('header is not an object');
      frames.push({ header, payload: Buffer.from(all.subarray(PREFIX_BYTES + headerLen)) });
    }
    return frames;
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined.subarray(0, n);
  }

  private take(n: number): Buffer {
    const joined = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = joined.subarray(0, n);
    const rest = joined.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered -= n;
    return out;
  }
}

const OPS: ReadonlySet<string> = new Set<RequestOp>([
  'init', 'list', 'get', 'checkSpace', 'put', 'delete', 'rename', 'setActive', 'whoami', 'validate',
  'isVerbatim', 'putIfAbsent', 'setActiveIfNone', 'preserveForward', 'readMeta', 'writeMeta',
]);

/** Checks a decoded header's shape; the worker must not trust its peer's types blindly. */
export function parseRequest(header: unknown): Request | undefined {
  if (typeof header !== 'object' || header === null) return undefined;
  const h = header as Record<string, unknown>;
  if (typeof h.id !== 'number' || !Number.isSafeInteger(h.id) || typeof h.op !== 'string' || !OPS.has(h.op)) return undefined;
  const str = (k: string): boolean => typeof h[k] === 'string';
  switch (h.op as RequestOp) {
    case 'init':
      return typeof h.init === 'object' && h.init !== null ? (h as unknown as Request) : undefined;
    case 'get':
    case 'put':
    case 'delete':
    case 'setActive':
    case 'isVerbatim':
    case 'putIfAbsent':
    case 'setActiveIfNone':
      return str('name') ? (h as unknown as Request) : undefined;
    case 'checkSpace':
      return str('name') && typeof h.size === 'number' && Number.isSafeInteger(h.size) && h.size >= 0 ? (h as unknown as Request) : undefined;
    case 'rename':
      return str('from') && str('to') ? (h as unknown as Request) : undefined;
    case 'readMeta':
    case 'writeMeta':
      return (META_KEYS as readonly unknown[]).includes(h.key) ? (h as unknown as Request) : undefined;
    case 'list':
    case 'whoami':
    case 'validate':
    case 'preserveForward':
      return h as unknown as Request;
  }
}

/** Every kind, as a record so that a new kind cannot be forgotten here. */
const KIND_NAMES: Record<StorageErrorKind, true> = {
  nonexistent: true, 'already-exists': true, active: true, 'quota-maxscripts': true, 'quota-maxsize': true,
  quota: true, 'bad-name': true, 'not-set-up': true, permission: true, trylater: true, io: true,
};
const KINDS: ReadonlySet<string> = new Set(Object.keys(KIND_NAMES));

export function parseResponse(header: unknown): Response | undefined {
  if (typeof header !== 'object' || header === null) return undefined;
  const h = header as Record<string, unknown>;
  if (typeof h.id !== 'number') return undefined;
  if (h.ok === true) return { id: h.id, ok: true, result: h.result ?? null };
  if (h.ok === false && typeof h.error === 'object' && h.error !== null) {
    const e = h.error as Record<string, unknown>;
    const kind = typeof e.kind === 'string' && KINDS.has(e.kind) ? (e.kind as StorageErrorKind) : 'io';
    return { id: h.id, ok: false, error: { kind, message: typeof e.message === 'string' ? e.message : 'worker error' } };
  }
  return undefined;
}
