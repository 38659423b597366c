/**
 * The frames between the server and a session's file broker (helper/tsieved-broker.c,
 * whose header comment is the specification): a u32 BE length, then a body.
 * Requests carry a u32 id, a u8 op and the op's fields (paths as u16 length +
 * bytes); responses carry the id, a u8 status and the result. The broker answers in
 * order, one request at a time; a request may be made to depend on the one before
 * it (IF_PREVIOUS_OK: run only if that one succeeded, otherwise answered skipped).
 *
 * Limits are enforced on both sides: the broker ends its process on a request above
 * its cap, and this side drops the broker on a response above MAX_RESPONSE_BYTES
 * (it runs as the user and is not trusted).
 *
 * Must not know: what the files mean, how the broker was started.
 */

export const OP = {
  create: 1,
  write: 2,
  fsync: 3,
  fchmod: 4,
  close: 5,
  read: 6,
  readdir: 7,
  stat: 8,
  lstat: 9,
  rename: 10,
  unlink: 11,
  mkdir: 12,
  rmdir: 13,
  syncDir: 14,
  createFile: 15,
} as const;
export type OpName = keyof typeof OP;

/**
 * createdThenErrno: create-file made the file, then a later step failed (u32 errno
 * follows). skipped: a request sent with IF_PREVIOUS_OK whose previous request did
 * not succeed; nothing was done.
 */
export const STATUS = { ok: 0, errno: 1, notRegular: 2, tooLarge: 3, createdThenErrno: 4, skipped: 5 } as const;

/**
 * In the op byte: run only if the request just before this one in the stream
 * succeeded (status ok), otherwise answer skipped (helper/tsieved-broker.c).
 */
export const IF_PREVIOUS_OK = 0x80;

/** create-file's mode field when the file keeps the mode it was created with (0600). */
export const CREATE_FILE_KEEP_MODE = 0xffffffff;
/** create-file's flags: fsync before close. The broker refuses any other bit. */
export const CREATE_FILE_SYNC = 1;

/** The broker's caps (helper/tsieved-broker.c MAX_REQUEST, MAX_READ). */
export const MAX_REQUEST_BYTES = 1024 * 1024 + 16 * 1024;
export const MAX_READ_BYTES = 8 * 1024 * 1024;
export const MAX_RESPONSE_BYTES = MAX_READ_BYTES + 64;
/** Data of one write request; writeAll sends larger data in pieces. */
export const WRITE_CHUNK_BYTES = 1024 * 1024;
/** PATH_MAX less its NUL: the broker refuses longer paths (EINVAL). */
export const MAX_PATH_BYTES = 4095;

export class BrokerProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BrokerProtocolError';
  }
}

/** A request field: a number (u32), a path (u16-prefixed), or raw trailing data. */
export type Field = { u32: number } | { path: string } | { data: Uint8Array };

/** A request frame; `ifPreviousOk`: with the IF_PREVIOUS_OK bit. */
export function encodeRequest(id: number, op: OpName, fields: readonly Field[], ifPreviousOk = false): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(9);
  head.writeUInt32BE(id >>> 0, 4);
  head.writeUInt8(OP[op] | (ifPreviousOk ? IF_PREVIOUS_OK : 0), 8);
  parts.push(head);
  for (const f of fields) {
    if ('u32' in f) {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(f.u32 >>> 0);
      parts.push(b);
    } else if ('path' in f) {
      const p = Buffer.from(f.path, 'utf8');
      // Refused here too, so a path the broker would refuse never reaches it.
      if (p.length === 0 || p.length > MAX_PATH_BYTES || p.includes(0) || p[0] !== 0x2f) {
        throw Object.assign(new Error(`path not usable by the broker: ${JSON.stringify(f.path.slice(0, 80))}`), {
          code: 'EINVAL',
        });
      }
      const len = Buffer.alloc(2);
      len.writeUInt16BE(p.length);
      parts.push(len, p);
    } else {
      parts.push(Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength));
    }
  }
  const frame = Buffer.concat(parts);
  if (frame.length - 4 > MAX_REQUEST_BYTES)
    throw new BrokerProtocolError(`request of ${frame.length - 4} bytes is too large`);
  frame.writeUInt32BE(frame.length - 4, 0);
  return frame;
}

export interface Response {
  readonly id: number;
  readonly status: number;
  /** What follows the status byte. */
  readonly body: Buffer;
}

/**
 * Incremental decoder of responses. Throws BrokerProtocolError on a frame above
 * the limit or too short to be one; the caller then drops the broker, since the
 * stream cannot be resynchronised.
 */
export class ResponseDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): Response[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Response[] = [];
    while (this.buffered >= 4) {
      const len = this.peek4();
      if (len < 5 || len > MAX_RESPONSE_BYTES) throw new BrokerProtocolError(`response length ${len} is out of bounds`);
      if (this.buffered < 4 + len) break;
      const frame = this.take(4 + len);
      out.push({ id: frame.readUInt32BE(4), status: frame.readUInt8(8), body: frame.subarray(9) });
    }
    return out;
  }

  private peek4(): number {
    if (this.chunks[0].length < 4) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0].readUInt32BE(0);
  }

  private take(n: number): Buffer {
    const joined = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    const rest = joined.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered -= n;
    // A copy: the frame outlives the (possibly large) joined buffer.
    return Buffer.from(joined.subarray(0, n));
  }
}

/** Reads the fields of a response body, refusing one that is short or too long. */
export class BodyReader {
  private off = 0;
  constructor(private readonly buf: Buffer) {}
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }
  u64(): number {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.off);
    this.off += 8;
    return Number(v);
  }
  i64(): number {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.off);
    this.off += 8;
    return Number(v);
  }
  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }
  get done(): boolean {
    return this.off === this.buf.length;
  }
  end(): void {
    if (!this.done) throw new BrokerProtocolError('response longer than its fields');
  }
  private need(n: number): void {
    if (this.off + n > this.buf.length) throw new BrokerProtocolError('response shorter than its fields');
  }
}
