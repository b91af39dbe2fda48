#!/usr/bin/env bash
# Makes sure the real SMTP peers the integration tests drive are installed (Debian/Ubuntu).
# Idempotent: when everything is present it only checks and exits 0 (well under 2 s).
# Installs only what is missing, as root, with apt-get. Fails loudly otherwise: tests never skip.
set -euo pipefail

# /usr/sbin holds postfix, postconf, smtp-sink, smtp-source, saslpasswd2, haproxy; a non-login PATH may lack it.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

declare -a missing_what=()
declare -A packages=()

need() { # need <description> <package> <check command...>
  local what=$1 pkg=$2
  shift 2
  if ! "$@" >/dev/null 2>&1; then
    missing_what+=("$what")
    packages[$pkg]=1
  fi
}

have() { command -v "$1"; }
perl_module() { perl "-M$1" -e 1; }
sasl_plugin() { compgen -G "/usr/lib/*/sasl2/lib$1.so*" || compgen -G "/usr/lib/sasl2/lib$1.so*"; }

check_all() {
  missing_what=()
  packages=()
  need postfix postfix have postfix
  need postconf postfix have postconf
  need smtp-sink postfix test -x /usr/sbin/smtp-sink
  need smtp-source postfix test -x /usr/sbin/smtp-source
  need swaks swaks have swaks
  need openssl openssl have openssl
  need msmtp msmtp have msmtp
  need haproxy haproxy have haproxy
  need tshark tshark have tshark
  need saslpasswd2 sasl2-bin have saslpasswd2
  need python3 python3 have python3
  need curl curl have curl
  need perl perl-base have perl
  need 'perl Authen::SASL' libauthen-sasl-perl perl_module Authen::SASL
  # Only Suggested by libauthen-sasl-perl, but its CRAM-MD5 and DIGEST-MD5 (and swaks's) need it.
  need 'perl Digest::HMAC_MD5' libdigest-hmac-perl perl_module Digest::HMAC_MD5
  need 'perl IO::Socket::SSL' libio-socket-ssl-perl perl_module IO::Socket::SSL
  # Cyrus SASL mechanisms (PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5) and the sasldb store Postfix uses.
  need 'Cyrus SASL PLAIN/LOGIN/CRAM-MD5/DIGEST-MD5 plugins' libsasl2-modules \
    bash -c "$(declare -f sasl_plugin); sasl_plugin plain && sasl_plugin login && sasl_plugin crammd5 && sasl_plugin digestmd5"
  need 'Cyrus SASL sasldb plugin' libsasl2-modules-db bash -c "$(declare -f sasl_plugin); sasl_plugin sasldb"
}

check_all
if [ ${#missing_what[@]} -eq 0 ]; then
  echo "install-peers: all test peers present"
  exit 0
fi

pkgs=("${!packages[@]}")
echo "install-peers: missing: ${missing_what[*]}"
echo "install-peers: packages to install: ${pkgs[*]}"

if [ "$(id -u)" -ne 0 ]; then
  echo "install-peers: ERROR: not root, cannot install. Run as root, or: sudo apt-get install -y ${pkgs[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-peers: ERROR: apt-get not found (Debian 12 expected). Install by hand: ${missing_what[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Postfix must install without questions and without configuring the system mail server;
# tshark must not ask whether non-root users may capture.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections

# Another apt/dpkg run may hold the lock; wait for it instead of failing.
apt_opts=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
apt-get "${apt_opts[@]}" update -q
apt-get "${apt_opts[@]}" install -y -q --no-install-recommends "${pkgs[@]}"

check_all
if [ ${#missing_what[@]} -ne 0 ]; then
  echo "install-peers: ERROR: still missing after apt-get install: ${missing_what[*]}" >&2
  exit 1
fi
echo "install-peers: installed ${pkgs[*]}"
