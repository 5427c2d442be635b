#!/bin/bash
# `make run`'s demo (deploy/demo/run.sh) comes up and shows each part working: the agent's
# /health, DNS with GeoDNS by ECS, HTTP through httpd to the demo origin, the demo WAF rule, TCP
# and UDP through l4d. Uses the demo's fixed loopback ports; stops it with SIGINT as Ctrl-C does.
set -u
cd "$(dirname "$0")/../.."
out=$(mktemp /tmp/dfr-demo-test.XXXXXX)
trap 'rm -f "$out"' EXIT
timeout -s INT "$((25 * ${DFR_SLOW:-1}))" deploy/demo/run.sh >"$out" 2>&1
rc=$?
n=0
fails=0
check() { # check DESCRIPTION PATTERN
	n=$((n + 1))
	if grep -qE -- "$2" "$out"; then
		echo "ok $n - $1"
	else
		fails=$((fails + 1))
		echo "not ok $n - $1 (no line matching: $2)"
	fi
}
check "the agent is healthy" '"status":"healthy"'
check "dnsd answers the apex with the default entry" 'demo\.example\.[[:space:]]+60[[:space:]]+IN[[:space:]]+A[[:space:]]+127\.0\.0\.1'
check "GeoDNS: a DE subnet gets the DE node" 'IN[[:space:]]+A[[:space:]]+203\.0\.113\.10'
check "GeoDNS: a US subnet gets the US node" 'IN[[:space:]]+A[[:space:]]+198\.51\.100\.20'
check "MX from the config" 'IN[[:space:]]+MX[[:space:]]+10 mail\.demo\.example\.'
check "HTTP reaches the origin through httpd with the client's Host" '"path": "/hello"'
check "httpd sets X-Real-IP" '"x-real-ip": "127\.0\.0\.1"'
check "the demo WAF rule blocks /admin" '^    403 '
check "TCP reaches the origin through l4d" '"path": "/through-l4d"'
check "UDP DNS through l4d" 'IN[[:space:]]+TXT[[:space:]]+"v=spf1 -all"'
check "Ctrl-C stops the demo" '^demo: stopping'
n=$((n + 1))
# timeout says 124 when it sent the signal; 137 would mean the demo had to be killed.
if [ "$rc" -eq 124 ] && ! grep -qE 'AddressSanitizer|runtime error:' "$out"; then
	echo "ok $n - the demo exits cleanly"
else
	fails=$((fails + 1))
	echo "not ok $n - the demo exits cleanly (status $rc)"
	tail -30 "$out" | sed 's/^/#   /'
fi
[ "$fails" -gt 0 ] && sed 's/^/#   /' "$out" | head -80
echo "1..$n"
[ "$fails" -eq 0 ]
