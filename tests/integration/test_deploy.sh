#!/bin/bash
# The deploy files: `make install` lays out binaries, units and examples; every unit passes
# `systemd-analyze verify`; the compose file validates with `docker-compose config` (no engine).
set -u
cd "$(dirname "$0")/../.."
O=${O:-build/default}
n=0
fails=0
ok() { # ok COND-EXIT-STATUS DESCRIPTION [DETAIL-FILE]
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		fails=$((fails + 1))
		echo "not ok $n - $2"
		[ -n "${3:-}" ] && sed 's/^/#   /' "$3" | tail -20
	fi
}
tmp=$(mktemp -d /tmp/dfr-deploy.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

make -s install O="$O" PREFIX="$tmp/usr" UNITDIR="$tmp/units" ETCDIR="$tmp/etc" >"$tmp/install.log" 2>&1
ok $? "make install with PREFIX, UNITDIR and ETCDIR" "$tmp/install.log"
for b in "$O"/bin/defenra-*; do
	[ -x "$tmp/usr/bin/${b##*/}" ]
	ok $? "${b##*/} installed"
done
[ -f "$tmp/etc/defenra.env.example" ] && [ -f "$tmp/etc/config.json.example" ]
ok $? "example env file and config installed"
! grep -l '@BINDIR@\|@DOCDIR@' "$tmp"/units/* >/dev/null 2>&1
ok $? "unit placeholders substituted"

for u in "$tmp"/units/*.service "$tmp"/units/*.socket "$tmp"/units/*.target; do
	name=${u##*/}
	bin=$(sed -n 's/^ExecStart=//p' "$u")
	if [ -n "$bin" ] && [ ! -x "$bin" ]; then
		continue # a daemon not built yet in this tree
	fi
	# verify exits 0 on unknown keys and bad values: any output is a failure too.
	systemd-analyze verify "$u" >"$tmp/verify.log" 2>&1 && [ ! -s "$tmp/verify.log" ]
	ok $? "systemd-analyze verify $name (no warning)" "$tmp/verify.log"
done
for u in "$tmp"/units/*.service; do
	grep -q '^PartOf=defenra.target' "$u" && ! grep -q '^Requires=' "$u" &&
		grep -q '^Type=notify' "$u" && grep -q '^WatchdogSec=' "$u" &&
		grep -q '^RuntimeDirectoryPreserve=yes' "$u" && grep -q '^NoNewPrivileges=yes' "$u" &&
		grep -q '^ProtectSystem=strict' "$u" && grep -q '^User=defenra' "$u"
	ok $? "${u##*/}: restartable alone, notify with watchdog, unprivileged, hardened"
done
grep -q '^Sockets=defenra-dnsd.socket' "$tmp/units/defenra-dnsd.service" &&
	grep -q '^Sockets=defenra-httpd.socket' "$tmp/units/defenra-httpd.service" &&
	grep -q '^ListenDatagram=0.0.0.0:53' "$tmp/units/defenra-dnsd.socket"
ok $? "dnsd and httpd take their listening sockets from socket units"
grep -q CAP_NET_BIND_SERVICE "$tmp/units/defenra-dnsd.service" &&
	! grep -q 'AmbientCapabilities=CAP' "$tmp/units/defenra-syncd.service" &&
	! grep -q 'AmbientCapabilities=CAP' "$tmp/units/defenra-wafd.service"
ok $? "only the daemons that bind low ports get CAP_NET_BIND_SERVICE"

if command -v docker-compose >/dev/null; then
	(cd deploy/docker && docker-compose config -q) >"$tmp/compose.log" 2>&1
	ok $? "docker-compose config validates deploy/docker/docker-compose.yml" "$tmp/compose.log"
	(cd deploy/docker && docker-compose config --services) >"$tmp/services" 2>&1
	[ "$(sort "$tmp/services" | tr '\n' ' ')" = "dnsd httpd l4d syncd wafd " ]
	ok $? "compose has one service per daemon" "$tmp/services"
else
	ok 1 "docker-compose is installed (make deps)"
fi
echo "1..$n"
[ "$fails" -eq 0 ]
