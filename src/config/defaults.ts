/**
 * Defaults the schema (schema.ts) applies, kept in a module that does not load
 * zod, so that `tsieved check` without --config starts with only what checking
 * needs. schema.ts takes its defaults for these keys from here: still one source.
 *
 * Must not know: how configuration is read or checked.
 */

/** Exim refuses filter files over 1 MiB (exim-sieve.md 10.2); the generated header must still fit. */
export const MAX_SCRIPT_BYTES_DEFAULT = 1024 * 1024 - 256;

/** `[sieve]` without a file: no explicit capabilities, Exim asked if found. */
export const SIEVE_DEFAULTS = {
  exim_router: 'userforward',
  max_nesting: 64,
  max_redirects: 10,
  fileinto_policy: 'strict',
  max_reported_errors: 10,
} as const;
