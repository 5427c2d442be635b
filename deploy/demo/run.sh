#!/bin/bash
# `make run`: the suite in the foreground on unprivileged loopback ports with the demo config in
# file mode, a demo origin and a demo GeoIP database; state and bus sockets in a temporary
# directory. It prints the dig and curl lines that show it working. Ctrl-C stops everything.
set -u
cd "$(dirname "$0")/../.."
BIN=${DFR_BIN:-build/default/bin}
dir=$(mktemp -d /tmp/defenra-demo.XXXXXX)
export DEFENRA_RUN_DIR="$dir/run" DEFENRA_STATE_DIR="$dir/state"
export DEFENRA_CONFIG="$PWD/deploy/demo/config.json" POLLING_INTERVAL=5
export DNS_LISTEN=127.0.0.1:5353 HTTP_LISTEN=127.0.0.1:8000 HTTPS_LISTEN=127.0.0.1:8443
export L4_BIND=127.0.0.1 LOG_LEVEL=${LOG_LEVEL:-info}
export HTTPD_UPSTREAM_PORT=7080 GEOIP_DB="$dir/demo.mmdb"
unset CORE_URL
mkdir -p "$DEFENRA_STATE_DIR"

# A GeoIP database from a small CSV, so GeoDNS has countries to route (needs Perl's
# MaxMind::DB::Writer, which `make deps` installs); without it dnsd answers the default.
perl tests/integration/make_geoip_db.pl "$GEOIP_DB" deploy/demo/geoip.csv 2>/dev/null ||
	echo "demo: no GeoIP database (libmaxmind-db-writer-perl missing): GeoDNS answers the default"

pids=()
stop() {
	trap - INT TERM
	echo
	echo "demo: stopping"
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	wait
	rm -rf "$dir"
	exit 0
}
trap stop INT TERM

# The origin behind the proxy (demo.example's apex record points at 127.0.0.1:7080).
python3 deploy/demo/origin.py 7080 &
pids+=($!)

# syncd first: the others take their config from it over the bus.
for d in syncd dnsd wafd httpd l4d; do
	[ -x "$BIN/defenra-$d" ] || continue
	"$BIN/defenra-$d" &
	pids+=($!)
	[ "$d" = syncd ] && sleep 0.3
done

# Wait until every daemon has the config, then show it working.
for port in 8080 9101 9102 9103 9104; do
	for _ in $(seq 50); do
		curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
		sleep 0.1
	done
done
show() {
	printf '$'
	printf ' %q' "$@"
	echo
	"$@" 2>&1 | sed 's/^/    /'
}
echo
echo "demo: the suite is up, state and sockets in $dir; config (file mode): $DEFENRA_CONFIG"
echo "      (edit it, then: kill -HUP ${pids[1]} to make syncd reread it now)"
echo
show curl -s http://127.0.0.1:8080/health
show dig +noall +answer @127.0.0.1 -p 5353 demo.example A
show dig +noall +answer @127.0.0.1 -p 5353 demo.example A +subnet=81.10.1.0/24
show dig +noall +answer @127.0.0.1 -p 5353 demo.example A +subnet=84.10.1.0/24
show dig +noall +answer @127.0.0.1 -p 5353 demo.example MX
show curl -s -H 'Host: demo.example' http://127.0.0.1:8000/hello
show curl -s -o /dev/null -w '%{http_code} (the demo WAF rule blocks /admin)\n' -H 'Host: demo.example' http://127.0.0.1:8000/admin
show curl -s http://127.0.0.1:7022/through-l4d
show dig +noall +answer @127.0.0.1 -p 7053 demo.example TXT
echo
echo "Metrics: curl -s http://127.0.0.1:9101/metrics (dnsd), :9102 (httpd), :9103 (l4d), :9104 (wafd)"
echo "Ctrl-C stops everything."
wait
