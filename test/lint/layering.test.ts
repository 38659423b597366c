// The layering rules of eslint.config.js really refuse a forbidden import (and let
// the allowed contract modules through): run ESLint's own Linter with each rule.
import { Linter } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';
// @ts-expect-error eslint.config.js is plain JavaScript without types
import { LAYERS, layerRule } from '../../eslint.config.js';

interface Layer {
  folder: string;
}

function lint(folder: string, code: string): string[] {
  const layer = (LAYERS as Layer[]).find((l) => l.folder === folder);
  if (!layer) throw new Error(`no layer for ${folder}`);
  const linter = new Linter({ configType: 'flat' });
  const messages = linter.verify(
    code,
    [{ files: ['**/*.ts'], languageOptions: { parser: tseslint.parser } }, layerRule(layer) as Linter.Config],
    `src/${folder}/example.ts`,
  );
  return messages.map((m) => `${m.ruleId ?? 'parse'}: ${m.message}`);
}

describe('layering lint rules', () => {
  it('refuse protocol/ importing anything of ours', () => {
    expect(lint('protocol', "import { x } from '../storage/types.js';")).toEqual([
      expect.stringMatching(/^no-restricted-imports: .*protocol/),
    ]);
    expect(lint('protocol', "import { x } from './errors.js';")).toEqual([]);
  });

  it('refuse storage/ importing auth/, the config schema or the wire protocol', () => {
    for (const target of [
      '../auth/types.js',
      '../../auth/pam.js',
      '../config/schema.js',
      '../protocol/response.js',
      '../commands/dispatch.js',
    ]) {
      expect(lint('storage', `import type { X } from '${target}';`), target).toHaveLength(1);
    }
    expect(lint('storage', "import type { Identity } from '../identity.js';")).toEqual([]);
    expect(lint('storage', "import { FileStore } from './file-store.js';")).toEqual([]);
  });

  it('let sasl/ use the auth contract but no auth implementation', () => {
    expect(lint('sasl', "import type { AuthBackend } from '../auth/types.js';")).toEqual([]);
    expect(lint('sasl', "import { decodeUtf8 } from '../auth/identity-rules.js';")).toEqual([]);
    expect(lint('sasl', "import { verifyPassword } from '../auth/password-hash.js';")).toHaveLength(1);
    expect(lint('sasl', "import { x } from '../storage/types.js';")).toHaveLength(1);
  });

  it('refuse sieve/ and auth/ importing the config loader', () => {
    expect(lint('sieve', "import { loadConfig } from '../config/loader.js';")).toHaveLength(1);
    expect(lint('auth', "import type { Config } from '../config/schema.js';")).toHaveLength(1);
  });
});
