import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../src/protocol/errors.js';
import { CommandFramer, type FrameResult, type FramerLimits } from '../../src/protocol/framer.js';
import type { Token } from '../../src/protocol/tokens.js';

const limits = (maxLiteral = 1000, maxLine = 200): FramerLimits => ({
  maxLineBytes: maxLine,
  literalVerdict(size, soFar) {
    if (size + soFar <= maxLiteral) return { action: 'accept' };
    if (size + soFar <= maxLiteral * 4)
      return { action: 'discard', error: ProtocolError.recoverable('too large', 'QUOTA/MAXSIZE') };
    return { action: 'refuse', error: ProtocolError.fatal('literal too large') };
  },
});

/** Feeds `input` in pieces cut at the given offsets and collects every result. */
function feed(input: Buffer, cuts: number[], framer = new CommandFramer(limits())): FrameResult[] {
  const results: FrameResult[] = [];
  let from = 0;
  for (const cut of [...cuts, input.length]) {
    framer.push(input.subarray(from, cut));
    from = cut;
    for (;;) {
      const r = framer.parse();
      if (r.kind === 'need-more') break;
      results.push(r);
      if (r.kind === 'fatal') return results;
    }
  }
  return results;
}

function show(tokens: Token[]): string[] {
  return tokens.map((t) =>
    t.type === 'atom' ? `atom:${t.value}` : `${t.literal ? 'lit' : 'str'}:${t.value.toString('utf8')}`,
  );
}

describe('CommandFramer', () => {
  it('reads atoms, quoted strings with escapes, and both literal forms', () => {
    const input = Buffer.from('PUTSCRIPT "a \\"b\\" \\\\c" {5+}\r\nkeep;\r\nCHECKSCRIPT {3}\r\nx;y\r\nNOOP\n');
    const results = feed(input, []);
    expect(results.map((r) => (r.kind === 'command' ? show(r.tokens) : r.kind))).toEqual([
      ['atom:PUTSCRIPT', 'str:a "b" \\c', 'lit:keep;'],
      ['atom:CHECKSCRIPT', 'lit:x;y'],
      ['atom:NOOP'],
    ]);
  });

  it('gives the same commands whichever byte the input is split at', () => {
    const input = Buffer.from(
      'AUTHENTICATE "PLAIN" {12+}\r\nAHVzZXIAcHc=\r\nPUTSCRIPT "s\u00e9" {11}\r\nkeep;\r\nstop;\r\nLOGOUT\r\n',
    );
    const whole = feed(input, []);
    expect(whole).toHaveLength(3);
    for (let i = 1; i < input.length; i++) {
      expect(feed(input, [i]), `split at ${i}`).toEqual(whole);
    }
    // And byte by byte.
    expect(
      feed(
        input,
        Array.from({ length: input.length - 1 }, (_, i) => i + 1),
      ),
    ).toEqual(whole);
  });

  it('accepts a literal of exactly the limit and discards one just over it, keeping the stream in step', () => {
    const exact = Buffer.from(`PUTSCRIPT "a" {1000+}\r\n${'x'.repeat(1000)}\r\nNOOP\r\n`);
    const ok = feed(exact, []);
    expect(ok[0]).toMatchObject({ kind: 'command' });
    expect(ok[0].kind === 'command' && ok[0].error).toBeFalsy();
    const over = Buffer.from(`PUTSCRIPT "a" {1001+}\r\n${'x'.repeat(1001)}\r\nNOOP\r\n`);
    const results = feed(over, [30, 500]);
    expect(results).toHaveLength(2);
    expect(results[0]).toMatchObject({ kind: 'command', error: { code: 'QUOTA/MAXSIZE' } });
    expect(results[1].kind === 'command' && show(results[1].tokens)).toEqual(['atom:NOOP']);
  });

  it('refuses a literal far too large to read past without buffering it', () => {
    const framer = new CommandFramer(limits());
    framer.push(Buffer.from('PUTSCRIPT "a" {99999999999+}\r\n'));
    const r = framer.parse();
    expect(r).toMatchObject({ kind: 'fatal' });
  });

  it('counts all literals of one command against the limit', () => {
    const input = Buffer.from(`RENAMESCRIPT {600+}\r\n${'a'.repeat(600)} {600+}\r\n${'b'.repeat(600)}\r\n`);
    const [r] = feed(input, []);
    expect(r).toMatchObject({ kind: 'command', error: { code: 'QUOTA/MAXSIZE' } });
  });

  it('ends the connection on a line without end rather than buffering it', () => {
    const framer = new CommandFramer(limits(1000, 50));
    framer.push(Buffer.from('NOOP "' + 'a'.repeat(60)));
    expect(framer.parse()).toMatchObject({ kind: 'fatal' });
  });

  it('accepts a line of exactly the limit', () => {
    const line = 'NOOP "' + 'a'.repeat(43) + '"';
    expect(line.length).toBe(50);
    const [r] = feed(Buffer.from(line + '\r\n'), [], new CommandFramer(limits(1000, 50)));
    expect(r).toMatchObject({ kind: 'command' });
    expect(r.kind === 'command' && r.error).toBeFalsy();
  });

  it('allows a line ending in bare LF no octet more than one ending in CRLF, wherever the input is split', () => {
    const line = 'NOOP "' + 'a'.repeat(43) + '"'; // 50 octets: the limit
    const longer = 'NOOP "' + 'a'.repeat(44) + '"'; // 51
    for (const end of ['\r\n', '\n']) {
      for (const cut of [10, 49, 50, 51]) {
        const ok = feed(Buffer.from(line + end), [cut], new CommandFramer(limits(1000, 50)));
        expect(ok[0]).toMatchObject({ kind: 'command' });
        const over = feed(Buffer.from(longer + end), [cut], new CommandFramer(limits(1000, 50)));
        expect(over[0]).toMatchObject({ kind: 'fatal' });
      }
    }
  });

  it('reports quoting errors without losing the literal that follows', () => {
    const input = Buffer.from('PUTSCRIPT "bad\\q" {6+}\r\nNOOP\r\n\r\nLOGOUT\r\n');
    const results = feed(input, []);
    expect(results).toHaveLength(2);
    expect(results[0]).toMatchObject({ kind: 'command', error: { fatal: false } });
    expect(results[1].kind === 'command' && show(results[1].tokens)).toEqual(['atom:LOGOUT']);
  });

  it('refuses NUL inside quoted strings and garbage bytes', () => {
    const [a, b] = feed(Buffer.from('NOOP "a\0b"\r\n\x01\x02\xff\r\n'), []);
    expect(a).toMatchObject({ kind: 'command', error: { fatal: false } });
    expect(b).toMatchObject({ kind: 'command', error: { fatal: false } });
  });

  it('reads a zero-length literal', () => {
    const [r] = feed(Buffer.from('NOOP {0+}\r\n\r\n'), []);
    expect(r.kind === 'command' && show(r.tokens)).toEqual(['atom:NOOP', 'lit:']);
  });

  it('drops everything buffered on discardBuffered (STARTTLS injection)', () => {
    const framer = new CommandFramer(limits());
    framer.push(Buffer.from('STARTTLS\r\nLISTSCRIPTS\r\n'));
    expect(framer.parse()).toMatchObject({ kind: 'command' });
    framer.discardBuffered();
    expect(framer.parse()).toEqual({ kind: 'need-more' });
    expect(framer.bufferedBytes).toBe(0);
  });
});
