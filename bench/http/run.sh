#!/bin/sh
# bench/http: httpd against nginx proxy_pass (upstream keep-alive) and HAProxy, pinned,
# alternating rounds, wrk --latency; prints the ratios. See httpbench.py and
# docs/performance-http.md.
exec /usr/bin/python3 "$(dirname "$0")/httpbench.py" "$@"
