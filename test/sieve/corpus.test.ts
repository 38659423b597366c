/**
 * Every corpus script gets the verdict and first diagnostic written next to it.
 */
import { describe, expect, it } from 'vitest';
import { validateScript } from '../../src/sieve/index.js';
import { bytesOf, corpus } from './corpus.js';
import { fullProfile } from './helpers.js';

describe('sieve corpus', () => {
  it('has at least 200 scripts with unique names', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(200);
    expect(new Set(corpus.map((e) => e.name)).size).toBe(corpus.length);
  });

  it.each(corpus.map((e) => [e.name, e] as const))('%s', (_name, entry) => {
    const diags = validateScript(bytesOf(entry), fullProfile(entry.profile));
    const errors = diags.filter((d) => d.severity === 'error');
    const warnings = diags.filter((d) => d.severity === 'warning');
    const summary = diags.map((d) => `${d.line}:${d.column}: ${d.severity}: ${d.message}`).join('\n');
    if (entry.verdict === 'valid') {
      expect(diags, summary).toEqual([]);
      return;
    }
    if (entry.verdict === 'warning') {
      expect(errors, summary).toEqual([]);
      expect(warnings.length, summary).toBeGreaterThan(0);
    } else {
      expect(errors.length, summary).toBeGreaterThan(0);
    }
    const first = entry.verdict === 'warning' ? warnings[0] : errors[0];
    expect(`${first.line}: ${first.message}`, summary).toContain(`${entry.first!.line}: `);
    expect(first.line, summary).toBe(entry.first!.line);
    expect(first.message, summary).toContain(entry.first!.includes);
    if (entry.first!.column !== undefined) expect(first.column, summary).toBe(entry.first!.column);
  });
});
