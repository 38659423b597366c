/**
 * `tsieved build-helper`: compiles the two small C programs from the sources shipped
 * in the package (helper/build.sh): the file broker (helper/build/tsieved-broker,
 * for [storage] isolation = "process"; any C compiler) and the PAM helper
 * (helper/build/tsieved-pam-helper, where [auth] pam_helper points by default; also
 * libpam0g-dev). The npm package ships no binary (one compiled on the packer's
 * machine would not fit this one) and runs nothing at install time, so an
 * administrator who needs them runs this once, as the owner of the installation.
 *
 * Must not know: PAM or the broker protocol, or how the programs are used.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultPamHelperPath } from '../auth/pam.js';
import { defaultBrokerPath } from '../storage/broker/launcher.js';

const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export function buildHelper(out: NodeJS.WritableStream, err: NodeJS.WritableStream): number {
  const script = join(PACKAGE_ROOT, 'helper/build.sh');
  if (!existsSync(script)) {
    err.write(`tsieved: ${script} is missing: this installation has no PAM helper source\n`);
    return 1;
  }
  const r = spawnSync('bash', [script], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error) {
    err.write(`tsieved: cannot run ${script}: ${r.error.message}\n`);
    return 1;
  }
  if (r.status !== 0) {
    err.write(
      'tsieved: not everything was built (see above): the broker needs a C compiler, the PAM helper also libpam0g-dev\n',
    );
    return 1;
  }
  out.write(`built: ${defaultBrokerPath()} and ${defaultPamHelperPath()}\n`);
  return 0;
}
