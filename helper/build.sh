#!/usr/bin/env bash
# Builds the file broker (helper/build/tsieved-broker: any C compiler) and the PAM
# helper (helper/build/tsieved-pam-helper: also the libpam headers, Debian package
# libpam0g-dev). Without a compiler, or without the PAM headers for the helper, it
# says so and exits non-zero; scripts/build.mjs tolerates that, and the backends
# that need the missing program then refuse to start with a clear message.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cc="${CC:-cc}"
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "tsieved: no C compiler ($cc); cannot build the file broker or the PAM helper" >&2
  exit 1
fi
mkdir -p "$here/build"
flags=(${CFLAGS:--O2 -g} -std=c11 -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 -fstack-protector-strong)
# Each program is compiled to a temporary name and renamed, so that a running
# server never execs a half-written binary, and a failed build keeps the old one.
build() {
  local name="$1"
  shift
  "$cc" "${flags[@]}" -o "$here/build/$name.tmp" "$here/$name.c" "$@"
  mv -f "$here/build/$name.tmp" "$here/build/$name"
  chmod 0755 "$here/build/$name"
}
build tsieved-broker
if ! printf '#include <security/pam_appl.h>\nint main(void){return 0;}\n' | "$cc" -x c -o /dev/null - -lpam >/dev/null 2>&1; then
  echo "tsieved: PAM development files missing (install libpam0g-dev); cannot build the PAM helper" >&2
  exit 1
fi
# The helper's session child serves the broker protocol itself when no token_command
# wraps the broker, so the broker's code is built into it as well.
build tsieved-pam-helper "$here/tsieved-broker.c" -DTSIEVED_BROKER_NO_MAIN -lpam
