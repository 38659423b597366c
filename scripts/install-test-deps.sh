#!/usr/bin/env bash
# Installs (Debian 12, as root) every program the test suite drives: without them
# their tests are skipped, and with CI=true they fail. This is the one list of those
# packages; .ci/run installs them through this script.
#
#   sudo scripts/install-test-deps.sh
#
# Package installs must not start system daemons (exim, slapd, dovecot, haproxy):
# the tests start their own on loopback with private configurations, so a
# policy-rc.d that refuses every start is in place while apt runs (Debian honours it).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

packages=(
  exim4-daemon-light       # the real consumer: exim4 -bf and real deliveries
  sieve-connect            # real clients
  cyrus-clients cyrus-admin
  php-cli php-net-sieve
  libpam0g-dev libpam-pwdfile build-essential   # PAM helper and test PAM modules
  slapd ldap-utils         # LDAP backend tests
  dovecot-sieve dovecot-managesieved            # sievec differential check, bench
  courier-authlib-userdb   # userdbpw for real Courier hashes
  whois                    # mkpasswd (yescrypt, bcrypt)
  openssl haproxy procps iproute2 util-linux
  fail2ban                 # fail2ban-regex checks the shipped filter
  systemd libcap2-bin      # systemd-analyze verify of the unit; capsh (setpriv: util-linux)
  roundcube-core roundcube-plugins roundcube-sqlite3 php-cgi   # Roundcube in a real browser
  chromium dovecot-imapd   # (headless, puppeteer-core) and the IMAP Roundcube logs in to
  prometheus               # scrapes /metrics in the metrics test
)

if [ "$(id -u)" != 0 ]; then
  echo "install-test-deps: run as root (sudo $0)" >&2
  exit 1
fi

created_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  created_policy=1
fi
trap 'if [ -n "$created_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT

apt-get update -q >/dev/null || echo "install-test-deps: apt-get update failed" >&2
apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends "${packages[@]}"
