#!/bin/sh
# bench/l4: l4d against HAProxy (TCP, iperf3) and nginx stream (UDP, dnsperf to knotd), pinned,
# alternating rounds; prints the ratios. See l4bench.py and docs/performance-l4.md.
exec /usr/bin/python3 "$(dirname "$0")/l4bench.py" "$@"
