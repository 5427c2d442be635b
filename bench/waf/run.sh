#!/bin/bash
# wafd against nginx + lua-nginx-module running the same rule set (bench/waf/rules.lua: address
# blocklist, User-Agent blocklist, path rule, shared-dict rate counter) in access_by_lua.
#
# Per round, in alternating order (A B, B A, ...): each server answers bench_waf at a fixed
# RATE (default 10000/s) for SECS seconds -- round-trip p50/p99 from each request's scheduled
# time -- and then as fast as it can for SECS/2 seconds (verdicts/s); wafd also answers for a
# domain without code at RATE (the "floor": the round trip without Lua). Servers on CPU 1 (wafd
# with WAFD_WORKERS=1, nginx with one worker), clients and syncd on CPU 0. Every answer is
# checked against what the rules must decide. Prints each round and the medians; the median of
# per-round ratios is what to compare (BENCHMARKS.md).
#
#   bench/waf/run.sh            ROUNDS=5 SECS=8 RATE=10000 CONNS=8 by default
#   UNPINNED=1 bench/waf/run.sh  no taskset, WAFD_WORKERS=2 and 2 nginx workers (as deployed,
#                                where the daemons float over both cores)
#   NNG_CLIENT=1 bench/waf/run.sh  the wafd client is CONNS NNG REQ sockets (one thread each)
#                                instead of bench_waf --sp
#
# The wafd client (bench_waf --sp) is one thread with one connection speaking SP over IPC as
# httpd does: open loop, each request sent at its scheduled time whatever is in flight, answers
# matched by id (flat out: CONNS requests kept in flight). The nginx client is CONNS threads,
# one keep-alive connection each, a request at a time.
#
# wafd's round trip is client -> waf.rep (SP over a Unix socket) -> Lua -> back; nginx's is a
# keep-alive HTTP request over loopback TCP whose access phase runs the rules before a static
# "ok". They are the two ways a proxy gets a WAF verdict, not the same protocol.
set -eu
cd "$(dirname "$0")/../.."
O=${O:-build/default}
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-8}
RATE=${RATE:-10000}
CONNS=${CONNS:-8}
CLIENT=$O/bench/waf/bench_waf
SPFLAG=--sp
[ "${NNG_CLIENT:-0}" = 1 ] && SPFLAG=
if [ "${UNPINNED:-0}" = 1 ]; then
	SRV="" CLI="" NWORKERS=2
else
	SRV="taskset -c 1" CLI="taskset -c 0" NWORKERS=1
fi
for b in $O/bin/defenra-syncd $O/bin/defenra-wafd $CLIENT; do
	[ -x "$b" ] || make -s -j2 all "$CLIENT" >/dev/null
done
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || {
	echo "bench/waf: needs nginx and libnginx-mod-http-lua (make deps)" >&2
	exit 1
}

tmp=$(mktemp -d /tmp/dfr-bench-waf.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

DOM=6800000000000000000000b0
python3 - "$tmp/config.json" <<EOF
import json, sys
code = open("bench/waf/rules.lua").read()
doc = {"success": True, "proxies": [], "domains": [{"id": "$DOM", "domain": "bench.example",
       "records": [], "httpProxy": {"enabled": True, "type": "both"}, "ssl": {"enabled": False},
       "luaCode": code},
      {"id": "6800000000000000000000b1", "domain": "nocode.example", "records": [],
       "httpProxy": {"enabled": True, "type": "both"}, "ssl": {"enabled": False}}]}
json.dump(doc, open(sys.argv[1], "w"))
EOF
mkdir -p "$tmp/run" "$tmp/state" "$tmp/www"
echo ok >"$tmp/www/ok.txt"
chmod 755 "$tmp" "$tmp/www" && chmod 644 "$tmp/www/ok.txt" # nginx workers run unprivileged
SP=$(port)
WP=$(port)
NP=$(port)
export DEFENRA_RUN_DIR=$tmp/run DEFENRA_STATE_DIR=$tmp/state LOG_LEVEL=warn
DEFENRA_CONFIG=$tmp/config.json POLLING_INTERVAL=3600 SYNCD_ADMIN_LISTEN=127.0.0.1:$SP \
	$CLI "$O/bin/defenra-syncd" 2>"$tmp/syncd.log" &
pids+=($!)
WAFD_WORKERS=$NWORKERS WAFD_ADMIN_LISTEN=127.0.0.1:$WP $SRV "$O/bin/defenra-wafd" \
	2>"$tmp/wafd.log" &
WAFD_PID=$!
pids+=($WAFD_PID)

cat >"$tmp/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes $NWORKERS;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err warn;
events { worker_connections 1024; }
http {
	access_log off;
	keepalive_requests 100000000;
	lua_shared_dict cache 10m;
	server {
		listen 127.0.0.1:$NP;
		root $tmp/www;
		location / {
			default_type text/plain;
			access_by_lua_file $PWD/bench/waf/rules.lua;
			try_files /ok.txt =404;
		}
	}
}
EOF
$SRV nginx -c "$tmp/nginx.conf" -p "$tmp" 2>>"$tmp/nginx.err" &
pids+=($!)

for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$WP/health" >/dev/null 2>&1 &&
		curl -sf "http://127.0.0.1:$NP/" >/dev/null 2>&1 && break
	sleep 0.1
done
curl -sf "http://127.0.0.1:$WP/health" >/dev/null || { echo "wafd did not come up"; cat "$tmp/wafd.log"; exit 1; }
curl -sf "http://127.0.0.1:$NP/" >/dev/null || { echo "nginx did not come up"; cat "$tmp/nginx.err"; exit 1; }
NGINX_PIDS=$(pgrep -P "$(cat "$tmp/nginx.pid")" | tr '\n' ' ')
NGINX_PIDS="$(cat "$tmp/nginx.pid") $NGINX_PIDS"

cpu_ticks() { # utime + stime of the given pids
	local t=0
	for p in "$@"; do
		set -- $(cut -d' ' -f14,15 "/proc/$p/stat")
		t=$((t + $1 + $2))
	done
	echo $t
}

run() { # NAME RATE SECONDS -> one JSON line with cpu_ticks added
	local name=$1 rate=$2 secs=$3 before after out
	if [ "$name" = wafd ] || [ "$name" = floor ]; then
		before=$(cpu_ticks $WAFD_PID)
		if [ "$name" = wafd ]; then
			out=$($CLI "$CLIENT" $SPFLAG --url "ipc://$tmp/run/waf.rep" --domain-id $DOM \
				--domain bench.example --rate "$rate" --duration "$secs" --conns "$CONNS")
		else
			out=$($CLI "$CLIENT" $SPFLAG --url "ipc://$tmp/run/waf.rep" --all-pass \
				--domain-id 6800000000000000000000b1 --domain nocode.example \
				--rate "$rate" --duration "$secs" --conns "$CONNS")
		fi
		after=$(cpu_ticks $WAFD_PID)
	else
		before=$(cpu_ticks $NGINX_PIDS)
		out=$($CLI "$CLIENT" --http "127.0.0.1:$NP" --domain bench.example \
			--rate "$rate" --duration "$secs" --conns "$CONNS")
		after=$(cpu_ticks $NGINX_PIDS)
	fi
	echo "{\"server\":\"$name\",\"target_rate\":$rate,\"cpu_ticks\":$((after - before)),\"r\":$out}"
}

# warm-up
run wafd "$RATE" 1 >/dev/null
run nginx "$RATE" 1 >/dev/null

results=$tmp/results.jsonl
for r in $(seq "$ROUNDS"); do
	if [ $((r % 2)) -eq 1 ]; then order="wafd nginx"; else order="nginx wafd"; fi
	for s in $order; do run "$s" "$RATE" "$SECS" | tee -a "$results"; done
	run floor "$RATE" $((SECS / 2 > 0 ? SECS / 2 : 1)) | tee -a "$results"
	for s in $order; do run "$s" 0 $((SECS / 2 > 0 ? SECS / 2 : 1)) | tee -a "$results"; done
done

python3 - "$results" "$(getconf CLK_TCK)" "$RATE" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
hz = float(sys.argv[2]); rate = int(sys.argv[3])
def pick(server, paced):
    return [x for x in rows if x["server"] == server and (x["target_rate"] > 0) == paced]
bad = [x for x in rows if x["r"].get("wrong") or x["r"].get("errors")]
med = statistics.median
print("--- bench/waf summary (%d rounds; medians) ---" % len(pick("wafd", True)))
def cpu(xs):
    return med([x["cpu_ticks"] / hz * 1e6 / max(1, x["r"]["answered"]) for x in xs])
fl = pick("floor", True)
if fl:
    print("floor (wafd, domain without code: the round trip without Lua) at %d/s: p50 %d us, p99 %d us, "
          "server CPU %.1f us/verdict" % (rate, med([x["r"]["p50_us"] for x in fl]),
          med([x["r"]["p99_us"] for x in fl]), cpu(fl)))
for s in ("wafd", "nginx"):
    p, m = pick(s, True), pick(s, False)
    print("%-5s at %d/s: achieved %.0f/s, p50 %d us, p99 %d us, p99.9 %d us, server CPU %.1f us/verdict"
          % (s, rate, med([x["r"]["rate"] for x in p]), med([x["r"]["p50_us"] for x in p]),
             med([x["r"]["p99_us"] for x in p]), med([x["r"]["p999_us"] for x in p]), cpu(p)))
    print("%-5s flat out: %.0f verdicts/s, p50 %d us, p99 %d us, server CPU %.1f us/verdict"
          % (s, med([x["r"]["rate"] for x in m]), med([x["r"]["p50_us"] for x in m]),
             med([x["r"]["p99_us"] for x in m]), cpu(m)))
w, n = pick("wafd", True), pick("nginx", True)
wm, nm = pick("wafd", False), pick("nginx", False)
print("ratios wafd/nginx (median of per-round ratios): p50 %.2fx, p99 %.2fx, max rate %.2fx" % (
    med([a["r"]["p50_us"] / max(1, b["r"]["p50_us"]) for a, b in zip(w, n)]),
    med([a["r"]["p99_us"] / max(1, b["r"]["p99_us"]) for a, b in zip(w, n)]),
    med([a["r"]["rate"] / max(1, b["r"]["rate"]) for a, b in zip(wm, nm)])))
print("checked answers: %d runs with wrong answers or errors" % len(bad))
p99 = med([x["r"]["p99_us"] for x in w])
print("target p99 < 200 us at %d/s: %s (%d us)" % (rate, "met" if p99 < 200 else "NOT met", p99))
EOF
