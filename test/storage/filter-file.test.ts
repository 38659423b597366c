import { describe, expect, it } from 'vitest';
import {
  isSieveFilter,
  isTsievedFilter,
  renderFilter,
  SIEVE_HEADER_LINE,
  TSIEVED_MARKER_LINE,
} from '../../src/storage/filter-file.js';

const b = (s: string) => Buffer.from(s, 'utf8');

describe('renderFilter', () => {
  it('prepends the Sieve header and the tsieved marker, with LF line ends', () => {
    const out = renderFilter(b('keep;\r\nstop;\r\n')).toString('utf8');
    expect(out).toBe(`${SIEVE_HEADER_LINE}\n${TSIEVED_MARKER_LINE}\nkeep;\nstop;\n`);
  });

  it('does not add a second header when the script starts with one', () => {
    const out = renderFilter(b('# Sieve filter\nkeep;\n')).toString('utf8');
    expect(out).toBe(`# Sieve filter\n${TSIEVED_MARKER_LINE}\nkeep;\n`);
    expect(out.match(/sieve filter/gi)).toHaveLength(1);
    const mixed = renderFilter(b('#SIEVE  Filter\r\nkeep;')).toString('utf8');
    expect(mixed).toBe(`#SIEVE  Filter\n${TSIEVED_MARKER_LINE}\nkeep;\n`);
  });

  it('strips a BOM, turns lone CR into LF and ends with LF', () => {
    const out = renderFilter(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b('a;\rb;')])).toString('utf8');
    expect(out).toBe(`${SIEVE_HEADER_LINE}\n${TSIEVED_MARKER_LINE}\na;\nb;\n`);
    expect(out).not.toContain('\r');
  });

  it('keeps non-ASCII bytes unchanged', () => {
    const script = b('if header :contains "subject" "größe" { discard; }\n');
    expect(renderFilter(script).subarray(-script.length)).toEqual(script);
  });
});

describe('recognising filter files', () => {
  it('recognises its own output, not a hand-written Sieve file', () => {
    expect(isTsievedFilter(renderFilter(b('keep;')))).toBe(true);
    // A script's own, very long, Sieve header line is kept: still recognised as ours.
    const long = renderFilter(b(`# Sieve filter ${'x'.repeat(3000)}\r\nkeep;\r\n`));
    expect(long.toString('latin1').startsWith(`# Sieve filter ${'x'.repeat(3000)}\n${TSIEVED_MARKER_LINE}\n`)).toBe(
      true,
    );
    expect(isTsievedFilter(long)).toBe(true);
    expect(isTsievedFilter(b(`# Sieve filter\n${TSIEVED_MARKER_LINE}`))).toBe(false);
    expect(isTsievedFilter(b('# Sieve filter\nkeep;\n'))).toBe(false);
    expect(isTsievedFilter(b(`# Exim filter\n${TSIEVED_MARKER_LINE}\n`))).toBe(false);
  });

  it("applies Exim's Sieve test (leading white space, any case, optional blanks)", () => {
    expect(isSieveFilter(b('# Sieve filter\n'))).toBe(true);
    expect(isSieveFilter(b('\n  #sieve FILTER\nkeep;'))).toBe(true);
    expect(isSieveFilter(b('# Exim filter\n'))).toBe(false);
    expect(isSieveFilter(b('alice@example.org\n'))).toBe(false);
    expect(isSieveFilter(b(''))).toBe(false);
  });
});
