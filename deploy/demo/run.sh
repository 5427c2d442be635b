#!/bin/bash
# `make run`: the suite in the foreground on unprivileged loopback ports with the demo config in
# file mode; state and bus sockets in a temporary directory. Ctrl-C stops everything.
set -u
cd "$(dirname "$0")/../.."
BIN=${DFR_BIN:-build/default/bin}
dir=$(mktemp -d /tmp/defenra-demo.XXXXXX)
export DEFENRA_RUN_DIR="$dir/run" DEFENRA_STATE_DIR="$dir/state"
export DEFENRA_CONFIG="$PWD/deploy/demo/config.json" POLLING_INTERVAL=5
export DNS_LISTEN=127.0.0.1:5353 HTTP_LISTEN=127.0.0.1:8000 HTTPS_LISTEN=127.0.0.1:8443
export L4_BIND=127.0.0.1 LOG_LEVEL=${LOG_LEVEL:-info}
unset CORE_URL
mkdir -p "$DEFENRA_STATE_DIR"

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

# syncd first: the others take their config from it over the bus.
for d in syncd dnsd wafd httpd l4d; do
	[ -x "$BIN/defenra-$d" ] || continue
	"$BIN/defenra-$d" &
	pids+=($!)
	[ "$d" = syncd ] && sleep 0.3
done

cat <<MSG
demo: ${#pids[@]} daemons running from $BIN, state and sockets in $dir
  config (file mode):  $DEFENRA_CONFIG   (edit it, then: kill -HUP ${pids[0]})
  agent health:        curl -s http://127.0.0.1:8080/health
  agent stats:         curl -s http://127.0.0.1:8080/stats
  DNS (if dnsd runs):  dig @127.0.0.1 -p 5353 demo.example A
  HTTP (if httpd runs): curl -s -H 'Host: demo.example' http://127.0.0.1:8000/
Ctrl-C stops everything.
MSG
wait
