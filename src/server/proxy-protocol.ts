/**
 * PROXY protocol (HAProxy, versions 1 and 2) header parsing, so that behind a
 * load balancer the real client address reaches logs, rate limits and PAM_RHOST.
 *
 * The parser is pure and incremental: feed it the bytes a socket delivers, in
 * whatever pieces they arrive; it answers `need-more` until it has a complete
 * header, then `done` with the addresses and the bytes that followed the header
 * (the start of the ManageSieve conversation), or `error`. It also holds the
 * check of whether a peer may send a header at all (`isTrustedProxy`), and a thin
 * helper that reads a header off a socket with a deadline.
 *
 * Must not know: ManageSieve, configuration loading, logging, what the addresses
 * are used for. Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
 * (cited below as "spec 2.1" etc.).
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { Socket } from 'node:net';

export interface ProxyAddress {
  readonly address: string;
  readonly port: number;
}

export type ProxyParseResult =
  | { readonly kind: 'need-more' }
  | {
      readonly kind: 'done';
      readonly version: 1 | 2;
      /**
       * Absent for v1 UNKNOWN, v2 LOCAL, v2 UNSPEC/UNIX families: the caller uses the
       * connection's own addresses (spec 2.1 "UNKNOWN", 2.2 "LOCAL").
       */
      readonly source?: ProxyAddress;
      readonly destination?: ProxyAddress;
      /** Bytes received after the header; they belong to the protocol that follows. */
      readonly rest: Buffer;
    }
  | { readonly kind: 'error'; readonly message: string };

export interface ProxyParserOptions {
  /**
   * Upper bound on the v2 length field (address block + TLVs). The spec allows up to
   * 65535; a proxy in front of us sends a few hundred bytes at most, and an attacker
   * should not make us buffer 64 KiB per connection before we notice anything.
   */
  readonly maxV2Length?: number;
}

/** Spec 2.1: "a receiver ... can safely use a 107-byte buffer" (CRLF included). */
export const V1_MAX_BYTES = 107;
export const DEFAULT_MAX_V2_LENGTH = 2048;
/** Spec 2.2: the 12-byte v2 signature. */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED_BYTES = 16;
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');

const NEED_MORE: ProxyParseResult = { kind: 'need-more' };

function fail(message: string): ProxyParseResult {
  return { kind: 'error', message };
}

/**
 * An incremental parser for one connection. After `done` or `error` it is finished
 * and further `feed` calls return the same answer.
 */
export class ProxyHeaderParser {
  private buffered: Buffer = Buffer.alloc(0);
  private final: ProxyParseResult | undefined;
  private readonly maxV2Length: number;

  constructor(options: ProxyParserOptions = {}) {
    this.maxV2Length = Math.min(options.maxV2Length ?? DEFAULT_MAX_V2_LENGTH, 0xffff);
  }

  feed(chunk: Buffer): ProxyParseResult {
    if (this.final) return this.final;
    this.buffered = this.buffered.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buffered, chunk]);
    const result = parseProxyHeader(this.buffered, this.maxV2Length);
    if (result.kind !== 'need-more') {
      this.final = result;
      this.buffered = Buffer.alloc(0);
    }
    return result;
  }
}

/**
 * Parse a header at the start of `data`. Decides as early as possible: a prefix
 * that can no longer become a valid header is an error at once, so a client that
 * is not a proxy (or a probe) does not hold a connection waiting for more bytes.
 */
export function parseProxyHeader(data: Buffer, maxV2Length: number = DEFAULT_MAX_V2_LENGTH): ProxyParseResult {
  if (data.length === 0) return NEED_MORE;
  if (data[0] === V2_SIGNATURE[0]) return parseV2(data, maxV2Length);
  if (data[0] === V1_PREFIX[0]) return parseV1(data);
  return fail('no PROXY protocol header');
}

function isPrefixOf(data: Buffer, expected: Buffer): boolean {
  const n = Math.min(data.length, expected.length);
  return data.subarray(0, n).equals(expected.subarray(0, n));
}

// ---------------------------------------------------------------- version 1

const PORT_RE = /^(0|[1-9][0-9]{0,4})$/;

function parseV1(data: Buffer): ProxyParseResult {
  if (!isPrefixOf(data, V1_PREFIX)) return fail('malformed PROXY v1 header');
  // Spec 2.1: the line ends with CRLF within 107 bytes; a bare CR or LF, or any
  // non-printable byte, is an error at once rather than after 107 bytes.
  let end = -1;
  for (let i = 0; i < data.length && i < V1_MAX_BYTES; i++) {
    const b = data[i];
    if (b === 0x0d) {
      if (i + 2 > V1_MAX_BYTES) return fail('PROXY v1 header too long');
      if (i + 1 >= data.length) return NEED_MORE;
      if (data[i + 1] !== 0x0a) return fail('PROXY v1 header: CR not followed by LF');
      end = i;
      break;
    }
    if (b === 0x0a) return fail('PROXY v1 header: LF without CR');
    if (b < 0x20 || b > 0x7e) return fail('PROXY v1 header: invalid characters');
  }
  if (end < 0) return data.length >= V1_MAX_BYTES ? fail('PROXY v1 header too long') : NEED_MORE;
  const line = data.subarray(0, end).toString('latin1');
  const rest = Buffer.from(data.subarray(end + 2));
  const parts = line.split(' ');
  // Spec 2.1: "PROXY UNKNOWN" may be followed by anything; the receiver ignores it.
  if (parts[1] === 'UNKNOWN') return { kind: 'done', version: 1, rest };
  if (parts.length !== 6) return fail('PROXY v1 header: wrong number of fields');
  const [, proto, src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const isAddr = proto === 'TCP4' ? isIPv4 : proto === 'TCP6' ? isIPv6 : undefined;
  if (!isAddr) return fail('PROXY v1 header: unknown protocol');
  // Scope ids ("fe80::1%eth0") are meaningless across hosts.
  if (!isAddr(src) || !isAddr(dst) || src.includes('%') || dst.includes('%')) {
    return fail('PROXY v1 header: bad address');
  }
  const sp = parsePort(sport);
  const dp = parsePort(dport);
  if (sp === undefined || dp === undefined) return fail('PROXY v1 header: bad port');
  return {
    kind: 'done',
    version: 1,
    source: { address: src, port: sp },
    destination: { address: dst, port: dp },
    rest,
  };
}

function parsePort(text: string): number | undefined {
  if (!PORT_RE.test(text)) return undefined;
  const n = Number(text);
  return n <= 65535 ? n : undefined;
}

// ---------------------------------------------------------------- version 2

const CMD_LOCAL = 0x0;
const CMD_PROXY = 0x1;
const AF_UNSPEC = 0x0;
const AF_INET = 0x1;
const AF_INET6 = 0x2;
const AF_UNIX = 0x3;
const T_UNSPEC = 0x0;
const T_STREAM = 0x1;

function parseV2(data: Buffer, maxV2Length: number): ProxyParseResult {
  if (!isPrefixOf(data, V2_SIGNATURE)) return fail('malformed PROXY v2 signature');
  if (data.length < 13) return NEED_MORE;
  const verCmd = data[12];
  // Spec 2.2: the version nibble must be 2; other values must be rejected.
  if (verCmd >> 4 !== 0x2) return fail('PROXY v2 header: unsupported version');
  const command = verCmd & 0x0f;
  if (command !== CMD_LOCAL && command !== CMD_PROXY) return fail('PROXY v2 header: unknown command');
  if (data.length < 14) return NEED_MORE;
  const famProto = data[13];
  const family = famProto >> 4;
  const transport = famProto & 0x0f;
  if (family > AF_UNIX || transport > 0x2) return fail('PROXY v2 header: unknown address family or protocol');
  if (data.length < V2_FIXED_BYTES) return NEED_MORE;
  const length = data.readUInt16BE(14);
  if (length > maxV2Length) return fail('PROXY v2 header: length exceeds limit');
  const total = V2_FIXED_BYTES + length;
  // Spec 2.2: the address block size depends on the family; a shorter block is invalid.
  const need = family === AF_INET ? 12 : family === AF_INET6 ? 36 : family === AF_UNIX ? 216 : 0;
  if (command === CMD_PROXY && length < need) return fail('PROXY v2 header: address block too short');
  if (data.length < total) return NEED_MORE;
  const rest = Buffer.from(data.subarray(total));

  // Spec 2.2: with LOCAL the receiver must ignore the address block and use the
  // real connection endpoints (health checks from the proxy itself).
  if (command === CMD_LOCAL) return { kind: 'done', version: 2, rest };
  // UNSPEC family: "the receiver should ... use the real connection endpoints".
  if (family === AF_UNSPEC) return { kind: 'done', version: 2, rest };
  // This is a stream server: a datagram source cannot be what the proxy relays.
  if (transport !== T_STREAM && !(family === AF_UNIX && transport === T_UNSPEC)) {
    return fail('PROXY v2 header: not a stream connection');
  }
  // AF_UNIX: a local peer of the proxy; nothing useful to log, so treat as local.
  if (family === AF_UNIX) return { kind: 'done', version: 2, rest };

  const body = data.subarray(V2_FIXED_BYTES, total);
  if (family === AF_INET) {
    return {
      kind: 'done',
      version: 2,
      source: { address: ipv4(body, 0), port: body.readUInt16BE(8) },
      destination: { address: ipv4(body, 4), port: body.readUInt16BE(10) },
      rest,
    };
  }
  return {
    kind: 'done',
    version: 2,
    source: { address: ipv6(body, 0), port: body.readUInt16BE(32) },
    destination: { address: ipv6(body, 16), port: body.readUInt16BE(34) },
    rest,
  };
}

function ipv4(buf: Buffer, offset: number): string {
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

/** RFC 5952 text form (lower case, longest zero run compressed), IPv4-mapped as ::ffff:a.b.c.d. */
function ipv6(buf: Buffer, offset: number): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push(buf.readUInt16BE(offset + 2 * i));
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${ipv4(buf, offset + 12)}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    // RFC 5952 4.2.2: a single zero word is not compressed.
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

// ---------------------------------------------------------------- trusted peers

/** A compiled list of trusted proxy addresses and networks. */
export interface TrustedProxies {
  readonly blockList: BlockList;
  /** Entries that could not be understood (reported by `config check`; never trusted). */
  readonly invalid: readonly string[];
}

function stripScope(address: string): string {
  const i = address.indexOf('%');
  return i < 0 ? address : address.slice(0, i);
}

/** `a.b.c.d` of an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), else undefined. */
function unmapIPv4(address: string): string | undefined {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return m && isIPv4(m[1]) ? m[1] : undefined;
}

/**
 * Compile entries such as "10.0.0.5", "10.0.0.0/8", "::1", "fd00::/8",
 * "::ffff:192.0.2.1". An IPv4-mapped entry also trusts the plain IPv4 address, and
 * vice versa, because a dual-stack listener reports IPv4 peers in mapped form.
 */
export function compileTrustedProxies(entries: readonly string[]): TrustedProxies {
  const blockList = new BlockList();
  const invalid: string[] = [];
  for (const raw of entries) {
    const entry = raw.trim();
    const slash = entry.indexOf('/');
    const addrText = slash < 0 ? entry : entry.slice(0, slash);
    const prefixText = slash < 0 ? undefined : entry.slice(slash + 1);
    const mapped = unmapIPv4(addrText);
    const family = isIPv4(addrText) ? 'ipv4' : isIPv6(addrText) && !addrText.includes('%') ? 'ipv6' : undefined;
    if (!family) {
      invalid.push(raw);
      continue;
    }
    if (prefixText === undefined) {
      blockList.addAddress(addrText, family);
      if (mapped) blockList.addAddress(mapped, 'ipv4');
      continue;
    }
    const max = family === 'ipv4' ? 32 : 128;
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
      invalid.push(raw);
      continue;
    }
    const prefix = Number(prefixText);
    blockList.addSubnet(addrText, prefix, family);
    // "::ffff:10.0.0.0/104" is the IPv4 network 10.0.0.0/8 seen through a dual-stack socket.
    if (mapped && prefix >= 96) blockList.addSubnet(mapped, prefix - 96, 'ipv4');
  }
  return { blockList, invalid };
}

const compiledCache = new WeakMap<readonly string[], TrustedProxies>();

/** Is `address` (a peer address as node:net reports it) one of `trusted`? Unparseable entries trust nobody. */
export function isTrustedProxy(address: string, trusted: readonly string[]): boolean {
  let compiled = compiledCache.get(trusted);
  if (!compiled) {
    compiled = compileTrustedProxies(trusted);
    compiledCache.set(trusted, compiled);
  }
  return isTrustedBy(address, compiled);
}

export function isTrustedBy(address: string, compiled: TrustedProxies): boolean {
  const plain = stripScope(address);
  if (isIPv4(plain)) return compiled.blockList.check(plain, 'ipv4');
  if (!isIPv6(plain)) return false;
  if (compiled.blockList.check(plain, 'ipv6')) return true;
  const mapped = unmapIPv4(plain);
  return mapped !== undefined && compiled.blockList.check(mapped, 'ipv4');
}

// ---------------------------------------------------------------- socket helper

export type ProxyReadResult =
  | {
      readonly kind: 'done';
      readonly source?: ProxyAddress;
      readonly destination?: ProxyAddress;
      readonly version: 1 | 2;
    }
  | { readonly kind: 'error'; readonly message: string };

/**
 * Read a PROXY header from a freshly accepted socket before anything else reads it.
 * Bytes after the header are pushed back (`unshift`) so the next reader sees them;
 * the socket is left paused. Resolves `error` on a bad header, on close, or when
 * `timeoutMs` passes (a proxy sends its header at once). The caller decides whether
 * the peer was allowed to send one (`isTrustedProxy`) and closes on error.
 */
export function readProxyHeader(
  socket: Socket,
  options: ProxyParserOptions & { readonly timeoutMs?: number } = {},
): Promise<ProxyReadResult> {
  const parser = new ProxyHeaderParser(options);
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: ProxyReadResult, rest?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
      socket.pause();
      if (rest && rest.length > 0) socket.unshift(rest);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      const r = parser.feed(chunk);
      if (r.kind === 'need-more') return;
      if (r.kind === 'error') return finish(r);
      finish({ kind: 'done', version: r.version, source: r.source, destination: r.destination }, r.rest);
    };
    const onEnd = (): void => finish({ kind: 'error', message: 'connection closed before PROXY header' });
    const onError = (e: Error): void => finish({ kind: 'error', message: `socket error: ${e.message}` });
    const timer = setTimeout(
      () => finish({ kind: 'error', message: 'timed out waiting for PROXY header' }),
      options.timeoutMs ?? 5000,
    );
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', onError);
    socket.resume();
  });
}
