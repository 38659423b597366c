/**
 * The filter file's merge of leading requires (src/sieve/merge-requires.ts):
 * exact output, line numbers kept, and text left alone where Exim reads it as is.
 * Exim itself runs the merged files in test/storage/exim.test.ts and, for the
 * corpus, test/integration/exim-bf.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { mergeRequires } from '../../src/sieve/merge-requires.js';

describe('mergeRequires', () => {
  it('merges requires one per line into the first, keeping comments and line numbers', () => {
    const text = 'require "fileinto";\n# then\nrequire ["vacation",\n  "copy"];\nkeep;\n';
    const out = mergeRequires(text);
    expect(out).toBe('require ["fileinto", "vacation", "copy"];\n# then\n\n\nkeep;\n');
    expect(out!.split('\n')).toHaveLength(text.split('\n').length);
  });

  it('leaves one require, or requires each right after the previous ";", as they are', () => {
    expect(mergeRequires('require "fileinto";\nkeep;\n')).toBeUndefined();
    expect(mergeRequires('require "fileinto";require "copy";\nkeep;\n')).toBeUndefined();
    expect(mergeRequires('keep;\n')).toBeUndefined();
  });

  it('drops repeated names and writes encoded names decoded where Exim decodes them', () => {
    expect(mergeRequires('require "copy";\nrequire ["copy", "fileinto"];\n')).toBe('require ["copy", "fileinto"];\n\n');
    expect(mergeRequires('require "encoded-character";\nrequire "${hex:66}ileinto";\n')).toBe(
      'require ["encoded-character", "fileinto"];\n\n',
    );
    // Not in the require that names encoded-character, nor before it: Exim does not decode there.
    expect(mergeRequires('require ["encoded-character", "${hex:66}x"];\nrequire "copy";\n')).toBe(
      'require ["encoded-character", "${hex:66}x", "copy"];\n\n',
    );
  });

  it('reads quoted escapes and text: strings, and quotes names again', () => {
    expect(mergeRequires('require "fil\\einto";\nrequire text:\ncopy\n.\n;\n')).toBe(
      'require ["fileinto", "copy\r\n"];\n\n\n\n\n',
    );
    expect(mergeRequires('require "a\\"b";\nrequire "c\\\\d";\n')).toBe('require ["a\\"b", "c\\\\d"];\n\n');
  });

  it('leaves text it cannot read alone', () => {
    expect(mergeRequires('require "fileinto";\nrequire "copy"\nkeep;\n')).toBeUndefined();
    expect(mergeRequires('require "fileinto";\nrequire "unterminated;\n')).toBeUndefined();
    expect(mergeRequires('require "a";\n/* open comment\nrequire "b";\n')).toBeUndefined();
  });
});
