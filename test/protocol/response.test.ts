// The response encoder on its own (RFC 5804 section 4): the wire forms every client
// accepts, without a server in between.
import { describe, expect, it } from 'vitest';
import {
  bye,
  encodeCapabilityLine,
  encodeLiteral,
  encodeQuoted,
  encodeResponse,
  encodeString,
  no,
  ok,
} from '../../src/protocol/response.js';

const wire = (b: Buffer): string => b.toString('latin1');

describe('encodeResponse', () => {
  it('sends a bare OK on plain success', () => {
    expect(wire(encodeResponse(ok()))).toBe('OK\r\n');
  });

  it('puts the code in parentheses before the text', () => {
    expect(wire(encodeResponse(no('No such script', 'NONEXISTENT')))).toBe('NO (NONEXISTENT) "No such script"\r\n');
    expect(wire(encodeResponse(bye('Shutting down', 'TRYLATER')))).toBe('BYE (TRYLATER) "Shutting down"\r\n');
  });

  it('omits an empty text', () => {
    expect(wire(encodeResponse({ status: 'NO', text: '' }))).toBe('NO\r\n');
  });

  it('echoes a NOOP tag as (TAG "...") and a SASL challenge as (SASL "...")', () => {
    expect(wire(encodeResponse(ok({ tag: Buffer.from('STARTTLS-SYNC-42') })))).toBe('OK (TAG "STARTTLS-SYNC-42")\r\n');
    expect(wire(encodeResponse(ok({ sasl: 'dj1abc' })))).toBe('OK (SASL "dj1abc")\r\n');
  });

  it('sends a tag that cannot be quoted as a literal that still ends in CRLF inside the parentheses', () => {
    expect(wire(encodeResponse(ok({ tag: Buffer.from('a\r\nb') })))).toBe('OK (TAG {4}\r\na\r\nb)\r\n');
  });

  it('sends a multi-line text as a literal', () => {
    expect(wire(encodeResponse(no('line 1: x\r\nline 2: y')))).toBe('NO {20}\r\nline 1: x\r\nline 2: y\r\n');
  });
});

describe('encodeString', () => {
  it('quotes short 7-bit text, escaping only quote and backslash', () => {
    expect(wire(encodeString('say "hi" \\o/'))).toBe('"say \\"hi\\" \\\\o/"');
  });

  it('uses a literal for 8-bit text (Cyrus isieve rejects 8-bit quoted strings)', () => {
    expect(wire(encodeString('café'))).toBe('{5}\r\ncaf\xc3\xa9');
  });

  it('uses a literal past 1024 octets (erratum 2655) and for NUL, CR or LF', () => {
    expect(wire(encodeString('x'.repeat(1024)))).toBe(`"${'x'.repeat(1024)}"`);
    expect(wire(encodeString('x'.repeat(1025))).startsWith('{1025}\r\n')).toBe(true);
    expect(wire(encodeString('a\0b'))).toBe('{3}\r\na\0b');
    expect(wire(encodeString('a\nb'))).toBe('{3}\r\na\nb');
  });

  it('counts a literal in octets, not characters', () => {
    expect(wire(encodeLiteral(Buffer.from('ü', 'utf8')))).toBe('{2}\r\n\xc3\xbc');
  });
});

describe('encodeQuoted', () => {
  it('keeps raw UTF-8 inside the quotes (script names in LISTSCRIPTS)', () => {
    expect(encodeQuoted('Grüße "x"').equals(Buffer.from('"Grüße \\"x\\""', 'utf8'))).toBe(true);
  });
});

describe('encodeCapabilityLine', () => {
  it('writes a name alone or a name and a value, each quoted', () => {
    expect(wire(encodeCapabilityLine('STARTTLS'))).toBe('"STARTTLS"\r\n');
    expect(wire(encodeCapabilityLine('SIEVE', 'fileinto vacation'))).toBe('"SIEVE" "fileinto vacation"\r\n');
  });
});
