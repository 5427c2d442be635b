#!/bin/bash
# bench/dns: dnsd against Knot DNS and gdnsd on the same zone, the same dnsperf command against
# each, in alternating rounds, server pinned on CPU 1 and dnsperf on CPU 0 (BENCHMARKS.md).
# Prints per-round figures, the median ratios, and dnsd's RSS with 10,000 domains.
#   bench/dns/run.sh            (ROUNDS=5 SECONDS=8 by default; O=build dir)
set -eu
cd "$(dirname "$0")/../.."
O=${O:-build/default}
[ -x "$O/bin/defenra-dnsd" ] && [ -x "$O/bin/defenra-syncd" ] || make -s all
exec /usr/bin/python3 bench/dns/dnsbench.py "$@"
