/**
 * Unit tests of the PROXY protocol v1/v2 parser and the trusted-proxy check.
 * Headers are built byte by byte from the spec here (not by the code under test);
 * test/server-proxy/haproxy-headers.test.ts checks the same parser against what a
 * real haproxy sends.
 */
import { describe, expect, it } from 'vitest';
import {
  ProxyHeaderParser,
  V1_MAX_BYTES,
  V2_SIGNATURE,
  compileTrustedProxies,
  isTrustedProxy,
  parseProxyHeader,
  type ProxyParseResult,
} from '../../src/server/proxy-protocol.js';

const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');

interface V2Spec {
  ver?: number;
  cmd?: number;
  family?: number;
  transport?: number;
  body?: Buffer;
  /** Override the length field (to lie about the body). */
  length?: number;
}

function v2(spec: V2Spec): Buffer {
  const body = spec.body ?? Buffer.alloc(0);
  const fixed = Buffer.alloc(4);
  fixed[0] = ((spec.ver ?? 2) << 4) | (spec.cmd ?? 1);
  fixed[1] = ((spec.family ?? 1) << 4) | (spec.transport ?? 1);
  fixed.writeUInt16BE(spec.length ?? body.length, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, body]);
}

function inet4Body(src: number[], dst: number[], sport: number, dport: number, tlvs = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(12);
  Buffer.from(src).copy(b, 0);
  Buffer.from(dst).copy(b, 4);
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  return Buffer.concat([b, tlvs]);
}

function inet6Body(src: string, dst: string, sport: number, dport: number): Buffer {
  const b = Buffer.alloc(36);
  Buffer.from(src.replace(/:/g, ''), 'hex').copy(b, 0);
  Buffer.from(dst.replace(/:/g, ''), 'hex').copy(b, 16);
  b.writeUInt16BE(sport, 32);
  b.writeUInt16BE(dport, 34);
  return b;
}

/** Feed `data` split at `cuts` and return every intermediate result. */
function feedSplit(data: Buffer, cuts: number[]): ProxyParseResult[] {
  const parser = new ProxyHeaderParser();
  const out: ProxyParseResult[] = [];
  let from = 0;
  for (const c of [...cuts, data.length]) {
    out.push(parser.feed(data.subarray(from, c)));
    from = c;
  }
  return out;
}

/** Feed one byte at a time; all results before the last must be need-more. */
function feedBytewise(data: Buffer): ProxyParseResult {
  const parser = new ProxyHeaderParser();
  let last: ProxyParseResult = { kind: 'need-more' };
  for (let i = 0; i < data.length; i++) {
    last = parser.feed(data.subarray(i, i + 1));
    if (last.kind !== 'need-more') {
      // The parser must decide exactly when the header is complete, not earlier.
      return { ...last, ...(last.kind === 'done' ? { rest: Buffer.concat([last.rest, data.subarray(i + 1)]) } : {}) };
    }
  }
  return last;
}

function expectDone(r: ProxyParseResult): Extract<ProxyParseResult, { kind: 'done' }> {
  if (r.kind !== 'done') throw new Error(`expected done, got ${JSON.stringify(r)}`);
  return r;
}

function expectError(r: ProxyParseResult, pattern?: RegExp): void {
  expect(r.kind).toBe('error');
  if (pattern && r.kind === 'error') expect(r.message).toMatch(pattern);
}

describe('PROXY v1', () => {
  it('parses TCP4 and keeps the following bytes', () => {
    const r = expectDone(parseProxyHeader(ascii('PROXY TCP4 192.0.2.10 198.51.100.1 56324 4190\r\nCAPABILITY\r\n')));
    expect(r.version).toBe(1);
    expect(r.source).toEqual({ address: '192.0.2.10', port: 56324 });
    expect(r.destination).toEqual({ address: '198.51.100.1', port: 4190 });
    expect(r.rest.toString()).toBe('CAPABILITY\r\n');
  });

  it('parses TCP6', () => {
    const r = expectDone(parseProxyHeader(ascii('PROXY TCP6 2001:db8::1 ::1 65535 0\r\n')));
    expect(r.source).toEqual({ address: '2001:db8::1', port: 65535 });
    expect(r.destination).toEqual({ address: '::1', port: 0 });
    expect(r.rest.length).toBe(0);
  });

  it('UNKNOWN means: use the connection addresses; anything after it is ignored', () => {
    const a = expectDone(parseProxyHeader(ascii('PROXY UNKNOWN\r\nX')));
    expect(a.source).toBeUndefined();
    expect(a.rest.toString()).toBe('X');
    const b = expectDone(parseProxyHeader(ascii('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n')));
    expect(b.source).toBeUndefined();
  });

  it('accepts a header of exactly 107 bytes, rejects 108', () => {
    // Spec 2.1's worst case: UNKNOWN followed by full-length addresses and 5-digit ports.
    const addr = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const longest = ascii(`PROXY UNKNOWN ${addr} ${addr} 65535 65535\r\n`);
    expect(longest.length).toBe(V1_MAX_BYTES);
    const longestTcp6 = expectDone(parseProxyHeader(ascii(`PROXY TCP6 ${addr} ${addr} 65535 65535\r\n`)));
    expect(longestTcp6.source).toEqual({ address: addr, port: 65535 });
    expectDone(parseProxyHeader(longest));
    expectDone(feedBytewise(longest));
    const tooLong = ascii(`PROXY UNKNOWN ${'x'.repeat(V1_MAX_BYTES - 15)}\r\n`);
    expect(tooLong.length).toBe(V1_MAX_BYTES + 1);
    expectError(parseProxyHeader(tooLong), /too long/);
    expectError(feedBytewise(tooLong), /too long/);
  });

  it('gives up after 107 bytes without CRLF instead of buffering forever', () => {
    const parser = new ProxyHeaderParser();
    expect(parser.feed(ascii('PROXY UNKNOWN ')).kind).toBe('need-more');
    expect(parser.feed(ascii('a'.repeat(V1_MAX_BYTES - 15))).kind).toBe('need-more');
    expectError(parser.feed(ascii('a')), /too long/);
    // Finished: later bytes do not revive it.
    expectError(parser.feed(ascii('\r\n')));
  });

  it('returns the same result for every split of the input', () => {
    const data = ascii('PROXY TCP4 10.1.2.3 10.0.0.1 1234 4190\r\nAUTHENTICATE "PLAIN"\r\n');
    const whole = expectDone(parseProxyHeader(data));
    for (let cut = 0; cut <= data.length; cut++) {
      const results = feedSplit(data, [cut]);
      const final = results.find((r) => r.kind !== 'need-more');
      const done = expectDone(final ?? { kind: 'need-more' });
      // The rest is what followed the header in the chunk that completed it, plus later chunks.
      const idx = results.indexOf(done);
      const later = idx === 0 ? data.subarray(cut) : Buffer.alloc(0);
      expect(done.source).toEqual(whole.source);
      expect(Buffer.concat([done.rest, later]).toString()).toBe(whole.rest.toString());
    }
    const bytewise = expectDone(feedBytewise(data));
    expect(bytewise.source).toEqual(whole.source);
    expect(bytewise.rest.toString()).toBe('AUTHENTICATE "PLAIN"\r\n');
  });

  const hostile: [string, string][] = [
    ['lower-case keyword', 'proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['no space after PROXY', 'PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['unknown protocol', 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['IPv6 address in TCP4', 'PROXY TCP4 ::1 ::1 1 2\r\n'],
    ['IPv4 address in TCP6', 'PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['octet over 255', 'PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n'],
    ['leading zero in octet', 'PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n'],
    ['host name', 'PROXY TCP4 localhost 5.6.7.8 1 2\r\n'],
    ['scoped IPv6', 'PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n'],
    ['port over 65535', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'],
    ['port with leading zero', 'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n'],
    ['negative port', 'PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n'],
    ['hex port', 'PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n'],
    ['missing port', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'],
    ['extra field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n'],
    ['double space', 'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'],
    ['trailing space', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n'],
    ['tab separator', 'PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n'],
    ['bare LF', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'],
    ['CR without LF', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\n'],
    ['NUL byte', 'PROXY TCP4 1.2.3.4\x005.6.7.8 1 2\r\n'],
    ['high byte', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\xff\r\n'],
    ['a ManageSieve command instead of a header', 'CAPABILITY\r\n'],
    ['a TLS ClientHello', '\x16\x03\x01\x02\x00\x01'],
  ];
  for (const [name, text] of hostile) {
    it(`rejects ${name}`, () => {
      const data = ascii(text);
      expectError(parseProxyHeader(data));
      expectError(feedBytewise(data));
    });
  }

  it('rejects garbage early, without waiting for a line end', () => {
    expectError(parseProxyHeader(ascii('PRO\x00')));
    expectError(parseProxyHeader(ascii('PROXY TCP4 1.2\x07')));
    expectError(parseProxyHeader(ascii('GET / HTTP/1.1')));
    expect(parseProxyHeader(ascii('PROX')).kind).toBe('need-more');
  });
});

describe('PROXY v2', () => {
  it('parses PROXY/INET/STREAM with TLVs and keeps the following bytes', () => {
    const tlvs = Buffer.from([0x01, 0x00, 0x02, 0x68, 0x32, 0x04, 0x00, 0x00]); // ALPN "h2", NOOP
    const header = v2({ body: inet4Body([192, 0, 2, 10], [198, 51, 100, 1], 56324, 4190, tlvs) });
    const r = expectDone(parseProxyHeader(Buffer.concat([header, ascii('NOOP\r\n')])));
    expect(r.version).toBe(2);
    expect(r.source).toEqual({ address: '192.0.2.10', port: 56324 });
    expect(r.destination).toEqual({ address: '198.51.100.1', port: 4190 });
    expect(r.rest.toString()).toBe('NOOP\r\n');
  });

  it('parses INET6 addresses into their canonical text', () => {
    const cases: [string, string][] = [
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['0000:0000:0000:0000:0000:0000:0000:0001', '::1'],
      ['0000:0000:0000:0000:0000:0000:0000:0000', '::'],
      ['2001:0db8:0000:0001:0000:0000:0000:0001', '2001:db8:0:1::1'],
      ['2001:0db8:0001:0001:0001:0001:0001:0001', '2001:db8:1:1:1:1:1:1'],
      ['2001:0db8:0000:0001:0001:0001:0001:0000', '2001:db8:0:1:1:1:1:0'],
      ['fe80:0000:0000:0000:0000:0000:0000:0000', 'fe80::'],
      ['0000:0000:0000:0000:0000:ffff:c000:020a', '::ffff:192.0.2.10'],
    ];
    for (const [hex, text] of cases) {
      const r = expectDone(
        parseProxyHeader(v2({ family: 2, body: inet6Body(hex, '0000:0000:0000:0000:0000:0000:0000:0001', 1, 2) })),
      );
      expect(r.source?.address).toBe(text);
      expect(r.destination).toEqual({ address: '::1', port: 2 });
    }
  });

  it('LOCAL: ignores the address block, the caller uses the connection addresses', () => {
    const r = expectDone(parseProxyHeader(v2({ cmd: 0, body: inet4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2) })));
    expect(r.source).toBeUndefined();
    const empty = expectDone(parseProxyHeader(v2({ cmd: 0, family: 0, transport: 0 })));
    expect(empty.source).toBeUndefined();
  });

  it('UNSPEC family and AF_UNIX are treated as local', () => {
    expect(expectDone(parseProxyHeader(v2({ family: 0, transport: 0 }))).source).toBeUndefined();
    expect(expectDone(parseProxyHeader(v2({ family: 3, body: Buffer.alloc(216, 0x61) }))).source).toBeUndefined();
  });

  it('returns the same result for every split, and at every single byte', () => {
    const header = v2({
      family: 2,
      body: inet6Body(
        '2001:0db8:0000:0000:0000:0000:0000:00ff',
        '0000:0000:0000:0000:0000:0000:0000:0001',
        40000,
        4190,
      ),
    });
    const data = Buffer.concat([header, ascii('LOGOUT\r\n')]);
    for (let a = 0; a <= data.length; a++) {
      for (const b of [a, Math.min(a + 1, data.length), Math.min(a + 13, data.length)]) {
        const results = feedSplit(data, [a, b]);
        const idx = results.findIndex((r) => r.kind !== 'need-more');
        const done = expectDone(results[idx]);
        const later = Buffer.concat([data.subarray(a, b), data.subarray(b)].slice(idx === 0 ? 0 : idx === 1 ? 1 : 2));
        expect(done.source).toEqual({ address: '2001:db8::ff', port: 40000 });
        expect(Buffer.concat([done.rest, later]).toString()).toBe('LOGOUT\r\n');
      }
    }
    const bytewise = expectDone(feedBytewise(data));
    expect(bytewise.rest.toString()).toBe('LOGOUT\r\n');
  });

  it('decides on a bad signature at the first wrong byte', () => {
    expectError(parseProxyHeader(Buffer.from([0x0d, 0x0a, 0x0d, 0x0b])), /signature/);
    expect(parseProxyHeader(V2_SIGNATURE.subarray(0, 11)).kind).toBe('need-more');
  });

  it('rejects a length over the configured bound before the body arrives', () => {
    const header = v2({ body: inet4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), length: 65535 });
    expectError(parseProxyHeader(header.subarray(0, 16)), /length/);
    const parser = new ProxyHeaderParser({ maxV2Length: 12 });
    expectError(parser.feed(v2({ body: inet4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, Buffer.alloc(3)) })), /length/);
    expectDone(
      new ProxyHeaderParser({ maxV2Length: 12 }).feed(v2({ body: inet4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2) })),
    );
  });

  const hostile: [string, Buffer][] = [
    ['version 1 nibble', v2({ ver: 1, body: inet4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2) })],
    ['version 3 nibble', v2({ ver: 3, body: inet4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2) })],
    ['unknown command', v2({ cmd: 2, body: inet4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2) })],
    ['unknown family', v2({ family: 4, body: inet4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2) })],
    ['unknown transport', v2({ transport: 3, body: inet4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2) })],
    ['datagram transport', v2({ transport: 2, body: inet4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2) })],
    ['INET block too short', v2({ body: Buffer.alloc(11) })],
    ['INET6 block too short', v2({ family: 2, body: Buffer.alloc(35) })],
    ['UNIX block too short', v2({ family: 3, body: Buffer.alloc(215) })],
  ];
  for (const [name, data] of hostile) {
    it(`rejects ${name}`, () => {
      expectError(parseProxyHeader(data));
      expectError(feedBytewise(data));
    });
  }

  it('a length that claims more than was sent waits (bounded), it does not read past the buffer', () => {
    const header = v2({ body: inet4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), length: 40 });
    expect(parseProxyHeader(header).kind).toBe('need-more');
  });
});

describe('parser robustness', () => {
  it('never throws and never reports done with a source on random input', () => {
    // Deterministic PRNG (mulberry32) so a failure is reproducible.
    let seed = 0x5eed;
    const rand = (): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const prefixes = [
      Buffer.alloc(0),
      ascii('PROXY '),
      ascii('PROXY TCP4 '),
      V2_SIGNATURE,
      Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11])]),
      Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0x00, 0x0c])]),
    ];
    let done = 0;
    for (let i = 0; i < 20000; i++) {
      const len = Math.floor(rand() * 64);
      const noise = Buffer.alloc(len);
      for (let j = 0; j < len; j++) noise[j] = Math.floor(rand() * 256);
      const data = Buffer.concat([prefixes[i % prefixes.length], noise]);
      const r = parseProxyHeader(data);
      expect(['need-more', 'done', 'error']).toContain(r.kind);
      if (r.kind === 'done') {
        done++;
        // Only v2 with enough bytes can complete from noise; its addresses are well-formed.
        if (r.source) expect(r.source.port).toBeLessThanOrEqual(65535);
      }
    }
    // The v2 prefix with INET/STREAM makes some noise complete: the loop did exercise `done`.
    expect(done).toBeGreaterThan(0);
  });
});

describe('isTrustedProxy', () => {
  const trusted = ['127.0.0.1', '10.0.0.0/8', '2001:db8::/32', '::1', '::ffff:192.0.2.0/120', '198.51.100.7'];

  it('matches plain addresses and CIDR networks, IPv4 and IPv6', () => {
    expect(isTrustedProxy('127.0.0.1', trusted)).toBe(true);
    expect(isTrustedProxy('127.0.0.2', trusted)).toBe(false);
    expect(isTrustedProxy('10.255.1.2', trusted)).toBe(true);
    expect(isTrustedProxy('11.0.0.1', trusted)).toBe(false);
    expect(isTrustedProxy('2001:db8:1::5', trusted)).toBe(true);
    expect(isTrustedProxy('2001:db9::5', trusted)).toBe(false);
    expect(isTrustedProxy('::1', trusted)).toBe(true);
    expect(isTrustedProxy('0:0:0:0:0:0:0:1', trusted)).toBe(true);
    expect(isTrustedProxy('::2', trusted)).toBe(false);
  });

  it('treats IPv4-mapped IPv6 peers (dual-stack listeners) like their IPv4 address', () => {
    expect(isTrustedProxy('::ffff:127.0.0.1', trusted)).toBe(true);
    expect(isTrustedProxy('::ffff:10.1.2.3', trusted)).toBe(true);
    expect(isTrustedProxy('::ffff:11.1.2.3', trusted)).toBe(false);
    expect(isTrustedProxy('::FFFF:198.51.100.7', trusted)).toBe(true);
    // A mapped entry trusts the plain IPv4 peer too.
    expect(isTrustedProxy('192.0.2.200', trusted)).toBe(true);
    expect(isTrustedProxy('192.0.3.1', trusted)).toBe(false);
  });

  it('ignores a scope id on link-local peers', () => {
    expect(isTrustedProxy('fe80::1%eth0', ['fe80::/10'])).toBe(true);
    expect(isTrustedProxy('fe80::1%eth0', ['::1'])).toBe(false);
  });

  it('trusts nobody with an empty list, and nothing through malformed entries', () => {
    expect(isTrustedProxy('127.0.0.1', [])).toBe(false);
    const bad = ['localhost', '10.0.0.0/33', '::/129', '10.0.0.0/', '1.2.3.4/8x', '*', '0x7f000001', 'fe80::1%eth0'];
    expect(compileTrustedProxies(bad).invalid).toEqual(bad);
    expect(isTrustedProxy('127.0.0.1', bad)).toBe(false);
    expect(isTrustedProxy('10.0.0.1', bad)).toBe(false);
  });

  it('never trusts something that is not an address', () => {
    expect(isTrustedProxy('', ['0.0.0.0/0', '::/0'])).toBe(false);
    expect(isTrustedProxy('not-an-ip', ['0.0.0.0/0', '::/0'])).toBe(false);
    expect(isTrustedProxy('1.2.3.4', ['0.0.0.0/0'])).toBe(true);
  });
});
