/**
 * Builds the dialect profile from the `[sieve]` configuration: an explicit
 * capability list wins; otherwise the configured (or found) Exim binary is asked,
 * and vacation / enotify are dropped unless the router is set up for them;
 * with no Exim at all, Exim 4.96's list without vacation and enotify.
 *
 * Must not know: the validator's passes.
 */
import type { Logger } from '../log/logger.js';
import { eximRouterOptions, eximSieveExtensions, EximProbeError, findExim } from './exim-probe.js';
import { defaultProfile, EXIM_IMPLICIT_CAPABILITIES, unknownCapabilities, type SieveProfile } from './profile.js';

/** The `[sieve]` settings a profile is built from, in this module's own terms (sieve/ does not import the config schema). */
export interface SieveSettings {
  readonly exim?: string | undefined;
  readonly capabilities?: readonly string[] | undefined;
  readonly exim_router: string;
  readonly exim_config?: string | undefined;
  readonly max_nesting: number;
  readonly max_redirects: number;
  readonly fileinto_policy: 'strict' | 'relative';
}

export class ProfileError extends Error {
  override name = 'ProfileError';
}

export async function loadProfile(sieve: SieveSettings, maxScriptBytes: number, log?: Logger): Promise<SieveProfile> {
  const base = {
    implicitCapabilities: [...EXIM_IMPLICIT_CAPABILITIES],
    maxNesting: sieve.max_nesting,
    maxRedirects: sieve.max_redirects,
    fileintoPolicy: sieve.fileinto_policy,
    maxScriptBytes,
  };
  if (sieve.capabilities !== undefined) {
    const unknown = unknownCapabilities(sieve.capabilities);
    if (unknown.length > 0) {
      throw new ProfileError(
        `[sieve] capabilities: cannot validate scripts for ${unknown.map((u) => `"${u}"`).join(', ')}`,
      );
    }
    const profile: SieveProfile = { ...base, extensions: [...sieve.capabilities], source: 'config' };
    log?.info(
      { event: 'sieve_profile', source: 'config', extensions: profile.extensions },
      'Sieve capabilities from configuration',
    );
    return profile;
  }
  const bin = sieve.exim === undefined || sieve.exim === 'auto' ? findExim() : sieve.exim;
  if (bin === undefined) {
    const profile = defaultProfile(base);
    log?.warn(
      { event: 'sieve_profile', source: 'default', extensions: profile.extensions },
      'no Exim binary found; advertising Exim 4.96 capabilities without vacation and enotify',
    );
    return profile;
  }
  // Both questions at once: each is an Exim start (tsieved check waits for them).
  const routerProbe = eximRouterOptions(bin, sieve.exim_router, sieve.exim_config).then(
    (options) => ({ options }),
    (error: unknown) => ({ error }),
  );
  let extensions: string[];
  try {
    extensions = await eximSieveExtensions(bin, sieve.exim_config);
  } catch (e) {
    throw new ProfileError(e instanceof Error ? e.message : String(e));
  }
  const unknown = unknownCapabilities(extensions);
  if (unknown.length > 0) {
    log?.warn(
      { event: 'sieve_profile', unknown },
      'Exim offers Sieve extensions this validator cannot check; not advertising them',
    );
    extensions = extensions.filter((e) => !unknown.includes(e));
  }
  let router = { vacation: false, enotify: false };
  const probed = await routerProbe;
  if ('options' in probed) router = probed.options;
  else {
    const e = probed.error;
    if (!(e instanceof EximProbeError)) throw e;
    log?.warn(
      { event: 'sieve_profile', router: sieve.exim_router, err: e.message },
      'cannot read the Exim router; vacation and enotify disabled',
    );
  }
  if (!router.vacation) extensions = extensions.filter((e) => e !== 'vacation');
  if (!router.enotify) extensions = extensions.filter((e) => e !== 'enotify');
  const profile: SieveProfile = { ...base, extensions, source: 'exim' };
  log?.info(
    { event: 'sieve_profile', source: 'exim', exim: bin, router: sieve.exim_router, extensions },
    'Sieve capabilities from Exim',
  );
  return profile;
}
