#!/usr/bin/env bash
# Checks the npm package as a user would get it: `npm pack` (prepack cleans dist/
# and builds), the tarball's contents (dist/, the helper's C source, LICENSE; no
# compiled helper, no source maps), `npm install -g` into a temporary prefix, then
# the installed `tsieved`: --version, --help, `check` on a good and a bad script,
# and `serve --demo` with a real sieve-connect login (needs sieve-connect, openssl).
# Used by .ci/run; prints "npm package: ok" last when everything held.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d /tmp/tsieved-npm-package.XXXXXX)"
demo_pid=
cleanup() {
  if [ -n "$demo_pid" ]; then kill "$demo_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "npm package: $*" >&2
  exit 1
}

cd "$repo"
npm pack --pack-destination "$work" >"$work/pack.log" 2>&1 || { cat "$work/pack.log"; fail "npm pack failed"; }
tarball="$(ls "$work"/tsieved-*.tgz)"
tar -tzf "$tarball" >"$work/contents"
for want in package/dist/tsieved.cjs package/dist/cli.js package/dist/cli/check.bundle.cjs package/dist/cli/check.bundle.cjs.cache package/dist/sieve/generated/parser.js package/helper/tsieved-pam-helper.c package/helper/tsieved-broker.c \
  package/helper/build.sh package/LICENSE package/README.md package/contrib/systemd/tsieved.service; do
  grep -qx "$want" "$work/contents" || fail "the tarball lacks $want"
done
if grep -q '^package/helper/build/' "$work/contents"; then fail "the tarball ships a compiled helper"; fi
if grep -q '\.map$' "$work/contents"; then fail "the tarball ships source maps of sources it does not contain"; fi
if grep -q '^package/\(src\|test\)/' "$work/contents"; then fail "the tarball ships src/ or test/"; fi
grep -q '"license": "MIT"' package.json && grep -q '^MIT License' LICENSE || fail "LICENSE does not match package.json"

npm install -g --prefix "$work/prefix" --no-audit --no-fund "$tarball" >"$work/install.log" 2>&1 \
  || { cat "$work/install.log"; fail "npm install -g of the tarball failed"; }
tsieved="$work/prefix/bin/tsieved"
version="$(node -p 'require("./package.json").version')"
[ "$("$tsieved" --version)" = "tsieved $version" ] || fail "tsieved --version does not say $version"
"$tsieved" --help | grep -q 'tsieved serve' || fail "tsieved --help prints no usage"

printf 'require "fileinto";\nif header :contains "subject" "[list]" {\n  fileinto "Lists";\n}\n' >"$work/good.sieve"
printf 'require "regex";\nkeep;\n' >"$work/bad.sieve"
"$tsieved" check "$work/good.sieve" || fail "tsieved check refused a valid script"
if "$tsieved" check "$work/bad.sieve" >"$work/bad.out" 2>&1; then fail "tsieved check accepted an invalid script"; fi
grep -q 'bad.sieve:1:' "$work/bad.out" || fail "tsieved check gave no position: $(cat "$work/bad.out")"

# The demo from the installed package, on a free loopback port, and a real login.
mkdir "$work/demo"
(cd "$work/demo" && exec "$tsieved" serve --demo --listen 127.0.0.1:0 >"$work/demo.log" 2>&1) &
demo_pid=$!
port=
for _ in $(seq 100); do
  port="$(grep -o '"event":"listening"[^}]*"port":[0-9]*' "$work/demo.log" 2>/dev/null | grep -o '[0-9]*$' | head -1 || true)"
  [ -n "$port" ] && break
  sleep 0.2
done
[ -n "$port" ] || { cat "$work/demo.log"; fail "the demo did not start"; }
sieve-connect --nosrv --notlsverify -s 127.0.0.1 -p "$port" -u demo@example.org --passwordfd 3 \
  --upload --localsieve "$work/good.sieve" --remotesieve good 3<"$work/demo/var/demo-password" >"$work/sc.log" 2>&1 \
  || { cat "$work/sc.log"; fail "sieve-connect could not log in to the demo and upload"; }
sieve-connect --nosrv --notlsverify -s 127.0.0.1 -p "$port" -u demo@example.org --passwordfd 3 \
  --list 3<"$work/demo/var/demo-password" >"$work/sc.log" 2>&1 || { cat "$work/sc.log"; fail "sieve-connect --list failed"; }
grep -qw 'good' "$work/sc.log" || fail "the uploaded script is not listed: $(cat "$work/sc.log")"
echo "npm package: ok"
