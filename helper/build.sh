#!/usr/bin/env bash
# Builds the PAM helper (helper/build/tsieved-pam-helper) with the system C compiler.
# Without a compiler or the libpam headers (Debian: libpam0g-dev) it says so and
# exits non-zero; scripts/build.mjs tolerates that and the pam backend then refuses
# to start with a clear message.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cc="${CC:-cc}"
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "tsieved: no C compiler ($cc); cannot build the PAM helper" >&2
  exit 1
fi
if ! printf '#include <security/pam_appl.h>\nint main(void){return 0;}\n' | "$cc" -x c -o /dev/null - -lpam >/dev/null 2>&1; then
  echo "tsieved: PAM development files missing (install libpam0g-dev); cannot build the PAM helper" >&2
  exit 1
fi
mkdir -p "$here/build"
"$cc" ${CFLAGS:--O2 -g} -std=c11 -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 -fstack-protector-strong \
  -o "$here/build/tsieved-pam-helper.tmp" "$here/tsieved-pam-helper.c" -lpam
# Rename so that a running server never execs a half-written binary.
mv -f "$here/build/tsieved-pam-helper.tmp" "$here/build/tsieved-pam-helper"
chmod 0755 "$here/build/tsieved-pam-helper"
