import { describe, expect, it } from 'vitest';
import {
  encodeFrame,
  FrameDecoder,
  FrameError,
  MAX_PAYLOAD_BYTES,
  parseRequest,
  parseResponse,
} from '../../src/storage/worker/protocol.js';

describe('storage RPC frames', () => {
  it('round-trips header and binary payload, split at every byte boundary', () => {
    const payload = Buffer.from([0, 1, 2, 0xff, 0x0d, 0x0a, 0]);
    const frame = encodeFrame({ id: 7, op: 'put', name: 'a\u00e9' }, payload);
    for (let cut = 0; cut <= frame.length; cut++) {
      const d = new FrameDecoder();
      const frames = [...d.push(frame.subarray(0, cut)), ...d.push(frame.subarray(cut))];
      expect(frames).toHaveLength(1);
      expect(frames[0]!.header).toEqual({ id: 7, op: 'put', name: 'a\u00e9' });
      expect(frames[0]!.payload.equals(payload)).toBe(true);
    }
  });

  it('decodes several frames from one chunk, in order', () => {
    const d = new FrameDecoder();
    const frames = d.push(Buffer.concat([encodeFrame({ id: 1 }), encodeFrame({ id: 2 }, Buffer.from('x')), encodeFrame({ id: 3 })]));
    expect(frames.map((f) => (f.header as { id: number }).id)).toEqual([1, 2, 3]);
    expect(frames[1]!.payload.toString()).toBe('x');
  });

  it('refuses an oversized length before buffering it', () => {
    const prefix = Buffer.alloc(8);
    prefix.writeUInt32BE(2, 0);
    prefix.writeUInt32BE(MAX_PAYLOAD_BYTES + 1, 4);
    expect(() => new FrameDecoder().push(prefix)).toThrow(FrameError);
    expect(() => encodeFrame({ id: 1 }, Buffer.alloc(MAX_PAYLOAD_BYTES + 1))).toThrow(FrameError);
  });

  it('refuses a header that is not a JSON object', () => {
    const body = Buffer.from('nope');
    const prefix = Buffer.alloc(8);
    prefix.writeUInt32BE(body.length, 0);
    expect(() => new FrameDecoder().push(Buffer.concat([prefix, body]))).toThrow(FrameError);
  });

  it('checks request shapes', () => {
    expect(parseRequest({ id: 1, op: 'get', name: 'x' })).toBeDefined();
    expect(parseRequest({ id: 1, op: 'get' })).toBeUndefined();
    expect(parseRequest({ id: 1, op: 'unlink', name: 'x' })).toBeUndefined();
    expect(parseRequest({ id: '1', op: 'list' })).toBeUndefined();
    expect(parseRequest({ id: 1, op: 'checkSpace', name: 'x', size: -1 })).toBeUndefined();
    expect(parseRequest({ id: 1, op: 'rename', from: 'a', to: 'b' })).toBeDefined();
  });

  it('maps unknown error kinds to io', () => {
    expect(parseResponse({ id: 1, ok: false, error: { kind: 'weird', message: 'm' } })).toEqual({
      id: 1,
      ok: false,
      error: { kind: 'io', message: 'm' },
    });
    expect(parseResponse({ id: 1, ok: false, error: { kind: 'trylater', message: 'm' } })).toMatchObject({ error: { kind: 'trylater' } });
    expect(parseResponse({ ok: true })).toBeUndefined();
  });
});
