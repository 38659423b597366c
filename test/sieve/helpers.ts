/** Shared set-up for the Sieve tests: the full Exim 4.96 profile. */
import { defaultProfile, type SieveProfile } from '../../src/sieve/index.js';
import { CORPUS_EXTENSIONS } from './corpus.js';

export function fullProfile(overrides: Partial<SieveProfile> = {}): SieveProfile {
  return defaultProfile({ extensions: CORPUS_EXTENSIONS, ...overrides });
}
