/**
 * The small modules on their own: input decoding positions, encoded
 * characters, addresses, mailto URIs, folder policy and the client wording.
 */
import { describe, expect, it } from 'vitest';
import { headerMailboxProblem, mailboxProblem } from '../../src/sieve/address.js';
import { DiagnosticSink, MAX_DIAGNOSTICS } from '../../src/sieve/diagnostics.js';
import { decodeEncodedCharacters } from '../../src/sieve/encoded-character.js';
import { formatDiagnosticsForClient, validateScript, type Diagnostic } from '../../src/sieve/index.js';
import { decodeInput, firstInvalidUtf8 } from '../../src/sieve/input.js';
import { parseMailto } from '../../src/sieve/mailto.js';
import { folderProblem, folderRuleProblem } from '../../src/sieve/passes/fileinto.js';
import { fullProfile } from './helpers.js';

describe('input', () => {
  it('reports invalid UTF-8 with line and column', () => {
    const sink = new DiagnosticSink();
    const r = decodeInput(
      Buffer.concat([Buffer.from('keep;\nif header :is "a" "é'), Buffer.from([0xff]), Buffer.from('" {}\n')]),
      1e6,
      sink,
    );
    expect(r.text).toBeUndefined();
    expect(sink.items[0]).toMatchObject({ line: 2, column: 21, severity: 'error' });
    expect(sink.items[0].message).toContain('invalid UTF-8 at byte 27');
  });

  it('finds overlong, surrogate and truncated sequences', () => {
    expect(firstInvalidUtf8(Buffer.from([0x41, 0xc0, 0x80]))).toBe(1);
    expect(firstInvalidUtf8(Buffer.from([0xed, 0xa0, 0x80]))).toBe(0);
    expect(firstInvalidUtf8(Buffer.from([0x41, 0xe2, 0x82]))).toBe(1);
    expect(firstInvalidUtf8(Buffer.from([0xf4, 0x90, 0x80, 0x80]))).toBe(0);
    expect(firstInvalidUtf8(Buffer.from('ok ☺ 😀', 'utf8'))).toBe(-1);
  });

  it('turns CRLF into LF and keeps line numbers', () => {
    const sink = new DiagnosticSink();
    expect(decodeInput(Buffer.from('a\r\nb\r\n'), 100, sink).text).toBe('a\nb\n');
    const d = validateScript(Buffer.from('keep;\r\n  frob;\r\n'), fullProfile());
    expect(d[0]).toMatchObject({ line: 2, column: 3 });
  });

  it('reports a missing ";" once, where it is missing', () => {
    const d = validateScript(Buffer.from('require "fileinto";\nkeep\nfileinto "a";\n'), fullProfile());
    expect(d).toEqual([expect.objectContaining({ line: 2, column: 5, message: 'missing ";" after keep' })]);
  });

  it('escapes line breaks and control characters in messages', () => {
    const d = validateScript(Buffer.from('require "fileinto";\nfileinto "a\nb\tc";\n'), fullProfile());
    expect(d[0].message).toContain('"a\\r\\nb\\tc"');
  });

  it('counts columns in code points, also for bytes refused before parsing', () => {
    const sink = new DiagnosticSink();
    decodeInput(Buffer.concat([Buffer.from('# \u{1F600}\u{1F600}'), Buffer.from([0xff])]), 100, sink);
    expect(sink.items[0]).toMatchObject({ line: 1, column: 5 });
    sink.setText('a\u{1F600}b\n\u{1F600}\u{1F600}c');
    expect(sink.positionOf(3)).toEqual({ line: 1, column: 3 });
    expect(sink.positionOf(9)).toEqual({ line: 2, column: 3 });
  });

  it('counts columns in characters after UTF-8 text', () => {
    const d = validateScript(Buffer.from('# ü\nif header :is "ä" "ö" { frob; }\n'), fullProfile());
    expect(d[0]).toMatchObject({ line: 2, column: 25, message: 'unknown command "frob"' });
  });
});

describe('encoded-character', () => {
  const dec = (s: string): { value: string; problems: string[] } => {
    const r = decodeEncodedCharacters(Buffer.from(s, 'utf8'));
    return {
      value: Buffer.from(r.bytes).toString('utf8'),
      problems: r.problems.map((p) => `${p.kind}@${p.at}:${p.item}`),
    };
  };

  it('decodes hex and unicode, leaves malformed text', () => {
    expect(dec('${hex: 48 49 }!').value).toBe('HI!');
    expect(dec('${HEX:e2 98 ba}').value).toBe('☺');
    expect(dec('${unicode:263A 20 41}').value).toBe('☺ A');
    expect(dec('${hex:123}').value).toBe('${hex:123}');
    expect(dec('${ hex:41}').value).toBe('${ hex:41}');
    expect(dec('${hex:}${unicode:}${unicode: }').value).toBe('${hex:}${unicode:}${unicode: }');
    // A malformed sequence is copied one character at a time: what it holds is still decoded.
    expect(dec('${hex:${hex:41}}').value).toBe('${hex:A}');
  });

  it('treats only SP, TAB and LF as blanks, as Exim does', () => {
    expect(dec('${hex:41\n42\t43 }').value).toBe('ABC');
    // A raw line break is CR LF for Exim: the sequence stays literal.
    expect(dec('${hex:41\r\n}').value).toBe('${hex:41\r\n}');
    expect(dec('${unicode:41\r\n110000}')).toEqual({ value: '${unicode:41\r\n110000}', problems: [] });
  });

  it('reports an out-of-range item before looking at what follows it', () => {
    expect(dec('${unicode:110000}').problems).toEqual(['range@10:110000']);
    expect(dec('x${unicode:110000x}').problems).toEqual(['range@11:110000']);
    expect(dec('${unicode:d800 zz}').problems).toEqual(['range@10:d800']);
    expect(dec('${unicode:FFFFFFFZ}').problems).toEqual(['range@10:FFFFFFF']);
    expect(dec('${unicode:41 110000,}').problems).toEqual(['range@13:110000']);
    expect(dec('${UNICODE:0000000041}').value).toBe('A');
    // Seven significant digits are too many, whatever their value.
    expect(dec('${unicode:0000041}').value).toBe('A');
    expect(dec('${unicode:1000041}').problems).toEqual(['range@10:1000041']);
    // After a malformed item Exim stops reading the sequence.
    expect(dec('${unicode:41x 110000}')).toEqual({ value: '${unicode:41x 110000}', problems: [] });
  });

  it('writes code points above FFFF as Exim 4.96 does, and says so', () => {
    const r = decodeEncodedCharacters(Buffer.from('${unicode:1F600}'));
    expect([...r.bytes]).toEqual([0xf0, 0x80 + ((0x1f600 >> 10) & 0x3f), 0x98, 0x80]);
    expect(r.problems).toEqual([{ kind: 'astral', at: 10, item: '1F600' }]);
  });
});

describe('addresses', () => {
  it('accepts RFC 5321 mailboxes', () => {
    for (const a of [
      'a@example.org',
      'first.last+tag@sub.example.org',
      '"a b"@example.org',
      'x@[192.0.2.1]',
      'x@[IPv6:2001:db8::1]',
      'root@localhost',
    ]) {
      expect(mailboxProblem(a), a).toBeUndefined();
    }
  });
  it('refuses what is not one mailbox', () => {
    for (const a of [
      '',
      'a',
      '@example.org',
      'a@',
      'a@b@c',
      'a b@example.org',
      'a..b@example.org',
      'a@-x.org',
      'a@x..org',
      'a@b.c, d@e.f',
      'a@[300.1.1.1]',
      'ä@example.org',
    ]) {
      expect(mailboxProblem(a), a).toBeDefined();
    }
  });
  it('allows display names for header addresses', () => {
    expect(headerMailboxProblem('Bob Smith <bob@example.org>')).toBeUndefined();
    expect(headerMailboxProblem('"Smith, Bob" <bob@example.org>')).toBeUndefined();
    expect(headerMailboxProblem('J. Müller <bob@example.org>')).toBeUndefined();
    expect(headerMailboxProblem('<bob@example.org>')).toBeUndefined();
    expect(headerMailboxProblem('Smith, Bob <bob@example.org>')).toBeDefined();
    expect(headerMailboxProblem('Mül]ler <bob@example.org>')).toBeDefined();
    expect(headerMailboxProblem('"" <bob@example.org>')).toBeUndefined();
    expect(headerMailboxProblem('x@y <bob@example.org>')).toBeDefined();
    expect(headerMailboxProblem('Bob <bob>')).toBeDefined();
  });
});

describe('mailto', () => {
  it('parses recipients the way Exim separates them', () => {
    expect(parseMailto('mailto:a@example.org%2Cb@example.org')).toEqual({
      recipients: ['a@example.org', 'b@example.org'],
    });
    expect(parseMailto('mailto:a%40example.org').recipients).toEqual(['a@example.org']);
  });
  it('refuses what Exim refuses or mis-parses', () => {
    expect(parseMailto('MAILTO:a@example.org').problem).toContain('lower case');
    expect(parseMailto('sms:+1555').problem).toContain('unknown notification method');
    expect(parseMailto('mailto:a@example.org?body=x').problem).toContain('mis-parses');
    expect(parseMailto('mailto:a%4@example.org').problem).toContain('%-encoding');
    expect(parseMailto('mailto:a b@example.org').problem).toContain('%-encoded');
  });
});

describe('folder policy', () => {
  it('refuses dangerous names under both policies', () => {
    for (const name of ['', '|cmd', '>x', '/abs', 'a/../b', '..', 'a\nb']) {
      expect(folderProblem(name, 'relative'), name).toBeDefined();
      expect(folderProblem(name, 'strict'), name).toBeDefined();
    }
  });
  it('allows more under the relative policy', () => {
    for (const name of ['.hidden', 'dir/', '~x', 'a//b']) {
      expect(folderProblem(name, 'relative'), name).toBeUndefined();
      expect(folderProblem(name, 'strict'), name).toBeDefined();
    }
    expect(folderProblem('a/..b', 'relative')).toBeUndefined();
  });
  it('takes the shortcut for plain names only where every rule agrees', () => {
    // Names built from the characters the rules look at, in every position.
    const alphabet = ['a', '.', '/', '~', '|', '>', '\x01', ' ', 'é'];
    const names = [''];
    for (let len = 1; len <= 4; len++) {
      for (let k = 0; k < alphabet.length ** len; k++) {
        let name = '';
        for (let j = 0, x = k; j < len; j++, x = Math.floor(x / alphabet.length)) name += alphabet[x % alphabet.length];
        names.push(name);
      }
    }
    let plain = 0;
    for (const name of names) {
      for (const policy of ['strict', 'relative'] as const) {
        expect(folderProblem(name, policy), `${JSON.stringify(name)} ${policy}`).toBe(folderRuleProblem(name, policy));
      }
      if (folderRuleProblem(name, 'strict') === undefined) plain++;
    }
    expect(plain).toBeGreaterThan(100);
  });
});

describe('formatDiagnosticsForClient', () => {
  const d = (severity: 'error' | 'warning', line: number, message: string): Diagnostic => ({
    severity,
    line,
    column: 1,
    message,
  });
  it('puts errors first and caps the count', () => {
    const text = formatDiagnosticsForClient(
      [d('warning', 1, 'w'), d('error', 5, 'e2'), d('error', 3, 'e1'), d('error', 9, 'e3')],
      2,
    );
    expect(text).toBe('line 3: error: e1 (column 1)\nline 5: error: e2 (column 1)\n(2 more not shown)');
  });
  it('formats warnings alone', () => {
    expect(formatDiagnosticsForClient([d('warning', 2, 'clamped')], 10)).toBe('line 2: warning: clamped (column 1)');
  });
  it('names the script on every line, as Pigeonhole does for PUTSCRIPT', () => {
    const text = formatDiagnosticsForClient(
      [{ ...d('error', 3, 'e1'), column: 7 }, d('error', 4, 'e2'), d('warning', 1, 'w')],
      10,
      'my script',
    );
    expect(text.split('\n')).toEqual([
      'my script: line 3: error: e1 (column 7)',
      'my script: line 4: error: e2 (column 1)',
      'my script: line 1: warning: w (column 1)',
    ]);
  });
});

describe('limits', () => {
  it('keeps at most MAX_DIAGNOSTICS, but never loses the first error', () => {
    const many = validateScript(Buffer.from('frob;\n'.repeat(2000)), fullProfile());
    expect(many).toHaveLength(MAX_DIAGNOSTICS);
    const sink = new DiagnosticSink();
    for (let i = 0; i < MAX_DIAGNOSTICS + 10; i++) sink.warning({ line: 1, column: 1 }, 'w');
    sink.error({ line: 2, column: 1 }, 'e');
    sink.error({ line: 3, column: 1 }, 'e2');
    expect(sink.items.filter((d) => d.severity === 'error')).toHaveLength(1);
    expect(sink.items).toHaveLength(MAX_DIAGNOSTICS + 1);
  });

  it('reports deep nesting at its line without overflowing the stack', () => {
    const text = 'keep;\n' + 'if true {\n'.repeat(5000) + '}'.repeat(5000) + '\n';
    const diags = validateScript(Buffer.from(text), fullProfile());
    expect(diags[0].message).toContain('nests deeper');
    // Reported near where the limit (64, plus the pre-scan's slack) is crossed.
    expect(diags[0].line).toBeGreaterThan(64);
    expect(diags[0].line).toBeLessThan(80);
  });
  it('respects a lower nesting limit', () => {
    const text = 'if true {\n'.repeat(5) + 'keep;\n' + '}\n'.repeat(5);
    expect(validateScript(Buffer.from(text), fullProfile({ maxNesting: 4 }))[0].message).toContain(
      'nest deeper than the limit of 4',
    );
    expect(validateScript(Buffer.from(text), fullProfile({ maxNesting: 5 }))).toEqual([]);
  });
});
