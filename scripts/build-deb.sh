#!/usr/bin/env bash
# Builds the Debian package tsieved_VERSION-1_ARCH.deb in the repository root with
# Debian's own dpkg-deb (npm run deb). Needs npm, a C compiler and libpam0g-dev (the
# PAM helper is compiled for this architecture), and network access for npm ci.
#
# Layout:
#   /usr/lib/tsieved/            the npm package as `npm pack` makes it (dist/, helper
#                                source), its runtime node_modules (npm ci --omit=dev)
#                                and the compiled PAM helper in helper/build/
#   /usr/bin/tsieved             runs /usr/lib/tsieved/dist/tsieved.cjs with Debian's node
#   /lib/systemd/system/tsieved.service   from contrib/systemd (not enabled, not started)
#   /etc/tsieved/tsieved.toml    conffile: a commented example `tsieved config check` accepts
#   /etc/pam.d/sieve             the PAM service (contrib/pam/sieve), put there by postinst
#                                unless one exists (Cyrus ships one); purge removes it if unedited
#   /etc/fail2ban/filter.d/tsieved.conf   conffile: the fail2ban filter (the jail, which
#                                would enable itself, is an example under /usr/share/doc)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pkg="$repo/packaging/debian"
cd "$repo"

for cmd in dpkg-deb npm cc; do
  command -v "$cmd" >/dev/null || { echo "build-deb: $cmd is missing" >&2; exit 1; }
done

version="$(node -p 'require("./package.json").version')-1"
arch="$(dpkg --print-architecture)"
work="$(mktemp -d /tmp/tsieved-deb.XXXXXX)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
lib="$root/usr/lib/tsieved"

# The same files the npm package ships (prepack cleans dist/ and builds).
npm pack --pack-destination "$work" >"$work/pack.log" 2>&1 || { cat "$work/pack.log" >&2; exit 1; }
mkdir -p "$lib"
tar -xzf "$work"/tsieved-*.tgz -C "$lib" --strip-components=1
# Runtime dependencies exactly as the lock file pins them, no build tools. Install
# scripts are not run: nothing may fetch binaries at build time either.
cp package-lock.json "$lib/"
(cd "$lib" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund >"$work/npm-ci.log" 2>&1) \
  || { cat "$work/npm-ci.log" >&2; exit 1; }
rm -f "$lib/package-lock.json"
bash "$lib/helper/build.sh"
test -x "$lib/helper/build/tsieved-pam-helper"

install -D -m 755 "$pkg/tsieved.sh" "$root/usr/bin/tsieved"
install -D -m 644 contrib/systemd/tsieved.service "$root/lib/systemd/system/tsieved.service"
install -D -m 644 "$pkg/tsieved.toml" "$root/etc/tsieved/tsieved.toml"
# /etc/pam.d/sieve is installed by postinst only where none exists (Cyrus ships one).
install -D -m 644 contrib/pam/sieve "$root/usr/share/tsieved/pam.d-sieve"
install -D -m 644 contrib/fail2ban/filter.d/tsieved.conf "$root/etc/fail2ban/filter.d/tsieved.conf"
doc="$root/usr/share/doc/tsieved"
install -D -m 644 README.md "$doc/README.md"
install -D -m 644 contrib/fail2ban/jail.d/tsieved.conf "$doc/examples/fail2ban/jail.d/tsieved.conf"
install -D -m 644 contrib/README.md "$doc/examples/README.md"
if [ -d contrib/haproxy ]; then cp -r contrib/haproxy "$doc/examples/"; fi
if [ -d contrib/exim ]; then cp -r contrib/exim "$doc/examples/"; fi
{
  echo 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/'
  echo 'Upstream-Name: tsieved'
  echo
  echo 'Files: *'
  echo 'Copyright: the tsieved authors'
  echo 'License: MIT'
  sed 's/^$/./; s/^/ /' LICENSE
  echo
  echo 'Files: usr/lib/tsieved/node_modules/*'
  echo 'Copyright: the authors of each module (see its package.json and LICENSE)'
  echo 'License: see each module'
} >"$doc/copyright"

mkdir -p "$root/DEBIAN"
install -m 755 "$pkg/postinst" "$pkg/prerm" "$pkg/postrm" "$root/DEBIAN/"
printf '%s\n' /etc/tsieved/tsieved.toml /etc/fail2ban/filter.d/tsieved.conf >"$root/DEBIAN/conffiles"
size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" "$pkg/control.in" >"$root/DEBIAN/control"
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"

out="$repo/tsieved_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$out" >/dev/null
echo "$out"
