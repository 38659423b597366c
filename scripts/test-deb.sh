#!/usr/bin/env bash
# Checks the Debian package the way an administrator meets it (as root, on Debian 12
# with sieve-connect installed): build it, `apt-get install ./tsieved_*.deb`, see
# that nothing was enabled or started, `tsieved config check` of the shipped
# configuration, a real login against the installed server (started by hand as
# nobody on loopback, not through systemd), an upgrade over itself that keeps the
# admin's edit of a conffile, removal (users' scripts and filter, and the conffiles,
# stay), and purge (the package's own files go; the users' files and a file the
# admin added to /etc/tsieved stay). Used by .ci/run; prints "deb: ok" last.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
work="$(mktemp -d /tmp/tsieved-deb-test.XXXXXX)"
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  if dpkg-query -W -f '${Status}' tsieved 2>/dev/null | grep -q 'installed'; then apt-get purge -y -q tsieved >/dev/null 2>&1 || true; fi
  rm -f /etc/tsieved/admin-added.pem
  rmdir /etc/tsieved 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "deb: $*" >&2
  exit 1
}
apt_get() { apt-get -o DPkg::Lock::Timeout=900 -y -q "$@"; }

# Cyrus (cyrus-common, which the test programs pull in) may own /etc/pam.d/sieve:
# then the package must leave it exactly as it is.
pam_before="$(md5sum /etc/pam.d/sieve 2>/dev/null || true)"
deb="$(scripts/build-deb.sh | tail -1)"
[ -f "$deb" ] || fail "build-deb.sh made no package"
apt_get install "$deb" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "apt-get install failed"; }

[ -x /usr/lib/tsieved/helper/build/tsieved-pam-helper ] || fail "no PAM helper in /usr/lib/tsieved"
[ -f /lib/systemd/system/tsieved.service ] || fail "no systemd unit"
[ -f /etc/pam.d/sieve ] && [ -f /etc/fail2ban/filter.d/tsieved.conf ] || fail "PAM service or fail2ban filter missing"
if [ -n "$pam_before" ]; then
  [ "$(md5sum /etc/pam.d/sieve)" = "$pam_before" ] || fail "installing changed an existing /etc/pam.d/sieve"
fi
[ ! -e /etc/systemd/system/multi-user.target.wants/tsieved.service ] || fail "installing enabled the service"
if ps -eo args | grep -q '^/usr/bin/node /usr/lib/tsieved/dist/tsieved.cjs serve'; then fail "installing started a server"; fi
version="$(node -p 'require("./package.json").version')"
[ "$(tsieved --version)" = "tsieved $version" ] || fail "installed tsieved --version is wrong"
tsieved config check --config /etc/tsieved/tsieved.toml || fail "the shipped configuration does not pass config check"

# A login against the installed server, run by hand as nobody on a loopback port.
chmod 755 "$work"
home="$work/home/alice"
mkdir -p "$home"
chown nobody "$home"
cp test/fixtures/tls/ca.pem test/fixtures/tls/server.pem test/fixtures/tls/server.key "$work/"
chown nobody "$work/server.key"
password='deb-test pässword'
hash="$(node -e 'process.stdout.write("{SHA256}" + require("crypto").createHash("sha256").update(process.argv[1]).digest("base64"))' "$password")"
printf 'alice\tuid=%s|gid=%s|home=%s|systempw=%s\n' "$(id -u nobody)" "$(id -g nobody)" "$home" "$hash" >"$work/userdb"
cat >"$work/tsieved.toml" <<TOML
[server]
listen = ["127.0.0.1:0"]
[tls]
cert_file = "$work/server.pem"
key_file = "$work/server.key"
[auth]
backend = "userdb"
userdb = "$work/userdb"
[storage]
scripts_dir = "{home}/sieve"
filter_path = "{home}/.forward"
TOML
runuser -u nobody -- /usr/bin/tsieved serve --config "$work/tsieved.toml" >"$work/server.log" 2>&1 &
server_pid=$!
port=
for _ in $(seq 100); do
  port="$(grep -o '"event":"listening"[^}]*"port":[0-9]*' "$work/server.log" 2>/dev/null | grep -o '[0-9]*$' | head -1 || true)"
  [ -n "$port" ] && break
  sleep 0.2
done
[ -n "$port" ] || { cat "$work/server.log"; fail "the installed server did not start"; }
printf '%s\n' "$password" >"$work/password"
printf 'require "fileinto";\nif header :contains "subject" "[deb]" {\n  fileinto "Deb";\n}\n' >"$work/main.sieve"
sc() { sieve-connect --nosrv --tlscafile "$work/ca.pem" -s localhost -p "$port" -u alice --passwordfd 3 "$@" 3<"$work/password"; }
sc --upload --localsieve "$work/main.sieve" --remotesieve main >"$work/sc.log" 2>&1 || { cat "$work/sc.log"; fail "login and upload failed"; }
sc --activate --remotesieve main >"$work/sc.log" 2>&1 || { cat "$work/sc.log"; fail "activate failed"; }
[ -s "$home/.forward" ] || fail "no filter file written"
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=
cp "$home/.forward" "$work/forward.before"

# Upgrade over itself: the admin's edit of a conffile is kept.
echo '# edited by the admin' >>/etc/tsieved/tsieved.toml
apt_get install --reinstall "$deb" >"$work/upgrade.log" 2>&1 || { cat "$work/upgrade.log"; fail "reinstall failed"; }
grep -q '^# edited by the admin' /etc/tsieved/tsieved.toml || fail "the upgrade replaced the admin's configuration"
tsieved config check --config /etc/tsieved/tsieved.toml >/dev/null || fail "config check failed after the upgrade"

# Remove: the program goes; conffiles and every user's files stay.
apt_get remove tsieved >"$work/remove.log" 2>&1 || { cat "$work/remove.log"; fail "remove failed"; }
[ ! -e /usr/bin/tsieved ] && [ ! -e /usr/lib/tsieved/dist/tsieved.cjs ] || fail "remove left the program"
[ -f /etc/tsieved/tsieved.toml ] || fail "remove deleted the configuration"
cmp -s "$home/.forward" "$work/forward.before" && [ -f "$home/sieve/main.sieve" ] || fail "remove touched the user's files"

# Purge: the package's conffiles go; the users' files and the admin's own file stay.
touch /etc/tsieved/admin-added.pem
apt_get purge tsieved >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "purge failed"; }
[ ! -e /etc/tsieved/tsieved.toml ] && [ ! -e /etc/fail2ban/filter.d/tsieved.conf ] || fail "purge left a conffile"
if [ -n "$pam_before" ]; then
  [ "$(md5sum /etc/pam.d/sieve 2>/dev/null)" = "$pam_before" ] || fail "purge changed or removed another package's /etc/pam.d/sieve"
else
  [ ! -e /etc/pam.d/sieve ] || fail "purge left the PAM file the package installed"
fi
[ -f /etc/tsieved/admin-added.pem ] || fail "purge removed a file the admin added"
cmp -s "$home/.forward" "$work/forward.before" && [ -f "$home/sieve/main.sieve" ] || fail "purge touched the user's files"
rm -f "$deb"
echo "deb: ok"
