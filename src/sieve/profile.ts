/**
 * The dialect profile: which extensions are advertised and accepted (one list,
 * so the SIEVE capability and validation can never disagree) and the limits and
 * policies the passes apply.
 *
 * Must not know: how the list was obtained (see exim-probe.ts / load-profile.ts).
 */

/** Every extension Exim 4.96 can offer, in the order `exim -bI:sieve` prints them. */
export const EXIM_EXTENSIONS = [
  'comparator-i;ascii-numeric',
  'copy',
  'encoded-character',
  'enotify',
  'envelope',
  'fileinto',
  'subaddress',
  'vacation',
] as const;

/**
 * Names Exim's `require` accepts without listing them (exim-sieve.md section
 * 2.1): the comparators every implementation has. Accepted, never advertised.
 */
export const EXIM_IMPLICIT_CAPABILITIES = [
  'comparator-i;octet',
  'comparator-i;ascii-casemap',
  'comparator-en;ascii-casemap',
] as const;

export type FileintoPolicy = 'strict' | 'relative';

export interface SieveProfile {
  /** Exactly what SIEVE advertises, in Exim's order. */
  extensions: readonly string[];
  /** Also accepted by `require`, not advertised. */
  implicitCapabilities: readonly string[];
  maxNesting: number;
  maxRedirects: number;
  fileintoPolicy: FileintoPolicy;
  maxScriptBytes: number;
  /** Where the list came from, for the start-up log line. */
  source: 'exim' | 'config' | 'default';
}

/** RFC 5804 section 1.7: NOTIFY lists the enotify methods; Exim only has mailto. */
export function notifyMethods(profile: SieveProfile): string[] {
  return profile.extensions.includes('enotify') ? ['mailto'] : [];
}

/**
 * A profile without asking Exim: Exim 4.96's list minus vacation and enotify,
 * which only work when the router is configured for them.
 */
export function defaultProfile(overrides: Partial<SieveProfile> = {}): SieveProfile {
  return {
    extensions: EXIM_EXTENSIONS.filter((e) => e !== 'vacation' && e !== 'enotify'),
    implicitCapabilities: [...EXIM_IMPLICIT_CAPABILITIES],
    maxNesting: 64,
    maxRedirects: 10,
    fileintoPolicy: 'strict',
    maxScriptBytes: 1024 * 1024 - 256,
    source: 'default',
    ...overrides,
  };
}

/** Capabilities in a configured list that this validator cannot check. */
export function unknownCapabilities(list: readonly string[]): string[] {
  const known = new Set<string>([...EXIM_EXTENSIONS, ...EXIM_IMPLICIT_CAPABILITIES]);
  return list.filter((c) => !known.has(c));
}
