import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/loader.js';
import { checkStorageTemplates } from '../../src/storage/paths.js';
import { PACKAGE_ROOT } from '../helpers/tsieved.js';

describe('example configurations', () => {
  for (const file of ['tsieved.example.toml', 'tsieved.hcoop.toml']) {
    it(`${file} uses only real keys and sound storage templates`, () => {
      const config = parseConfig(readFileSync(join(PACKAGE_ROOT, 'certs-example', file), 'utf8'), file);
      expect(checkStorageTemplates(config.storage)).toEqual([]);
    });
  }

  it('the HCoop example keeps the filter in the public AFS directory and runs storage as the member', () => {
    const config = parseConfig(readFileSync(join(PACKAGE_ROOT, 'certs-example', 'tsieved.hcoop.toml'), 'utf8'));
    expect(config.storage.filter_path).toBe('{home}/.public/.forward');
    expect(config.auth.backend).toBe('pam');
    expect(config.server.listen[1]).toMatchObject({ address: '127.0.0.1:4191', allow_plaintext: true });
  });
});
