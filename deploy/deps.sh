#!/bin/sh
# Install the Debian packages the build, the tests and the demo need. Idempotent and quiet when
# everything is already there; needs root (or sudo) only when something is missing.
set -e
PKGS="build-essential pkg-config clang libclang-rt-14-dev
libevent-dev libssl-dev liblua5.4-dev libmaxminddb-dev libldns-dev libnng-dev
libcurl4-openssl-dev libcjson-dev liburcu-dev libsystemd-dev libhttp-parser-dev libnghttp2-dev
python3 python3-dnspython dnsutils curl socat openssl"
# Each part of the suite may list what its tests or benchmarks need in deploy/deps.d/*.list.
for f in "$(dirname "$0")"/deps.d/*.list; do
	[ -f "$f" ] && PKGS="$PKGS $(grep -v '^#' "$f" | tr '\n' ' ')"
done
[ -n "$DEFENRA_EXTRA_PKGS" ] && PKGS="$PKGS $DEFENRA_EXTRA_PKGS"

missing=
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
