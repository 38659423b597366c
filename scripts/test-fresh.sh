#!/usr/bin/env bash
# Runs `npm ci && npm test` the way a new user on a fresh machine would: as a non-root
# user, with an empty environment (`env -i`) and a PATH holding only node and npm, so
# no system program (openssl, gcc, exim4, slapd, mkpasswd...) can be found. Tests that
# need one must skip, and everything else must pass. Used by .ci/run; needs root (to
# switch user) and network access for npm ci.
#
# Prints "fresh: N passed, M failed, K skipped" last and exits non-zero when the run
# failed. The copy of the tree is made in a temporary directory and removed afterwards.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
user="${TSIEVED_FRESH_USER:-nobody}"

if [ "$(id -u)" != 0 ]; then
  echo "test-fresh: run as root (it switches to the unprivileged user '$user')" >&2
  exit 2
fi

work="$(mktemp -d /tmp/tsieved-fresh.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/home" "$work/src"

# Only node, the npm that comes with it, and sh (npm runs package scripts with it;
# every machine has one). Nothing else a test might call.
node_bin="$(command -v node)"
npm_cli="$(readlink -f "$(command -v npm)")"
npx_cli="$(readlink -f "$(command -v npx)")"
ln -s "$(readlink -f "$node_bin")" "$work/bin/node"
ln -s "$npm_cli" "$work/bin/npm"
ln -s "$npx_cli" "$work/bin/npx"
ln -s "$(readlink -f /bin/sh)" "$work/bin/sh"

# The source as a clone would have it: no node_modules, no build output.
tar -C "$repo" -c \
  --exclude=./.git --exclude=./node_modules --exclude=./dist --exclude=./test-results \
  --exclude=./helper/build --exclude=./src/sieve/generated --exclude=./var --exclude=./.demo \
  . | tar -C "$work/src" -x
chown -R "$user" "$work/home" "$work/src"
chmod 755 "$work" "$work/bin"

run_stripped() {
  runuser -u "$user" -- env -i HOME="$work/home" PATH="$work/bin" LANG=C.UTF-8 \
    /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "$work/src" "$@"
}

status=0
if ! run_stripped npm ci --no-audit --no-fund >"$work/npm-ci.log" 2>&1; then
  echo "test-fresh: npm ci failed:" >&2
  tail -30 "$work/npm-ci.log" >&2
  status=1
else
  run_stripped npm test
  status=$?
fi

node -e '
const fs = require("fs");
let passed = 0, failed = 0, skipped = 0;
try {
  const r = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
  passed = r.numPassedTests;
  failed = r.numFailedTests;
  skipped = r.numPendingTests + (r.numTodoTests || 0);
  if (failed === 0) failed = (r.numFailedTestSuites || 0) + (r.numRuntimeErrorTestSuites || 0);
} catch (e) { failed = 1; console.error("test-fresh: no test results: " + e.message); }
if (process.argv[2] !== "0" && failed === 0) failed = 1;
console.log(`fresh: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed === 0 ? 0 : 1);
' "$work/src/test-results/results.json" "$status"
