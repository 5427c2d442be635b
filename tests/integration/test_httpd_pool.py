"""The backend pool under a load that needs more connections at once than HTTPD_UPSTREAM_KEEPALIVE:
the connections above the limit are kept for a second (reused by the next burst, not reconnected),
then closed, leaving the limit."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dfr import Tap, Suite, SLOW  # noqa: E402
from httpd_backend import Backend, config, domain, start_proxy, wait_routes, get  # noqa: E402

N = 8  # requests at once, above the limit of 2


def burst(port):
    """N requests at once, each held 300 ms by the backend; their statuses."""
    out = [0] * N

    def one(i):
        out[i] = get(port, "example.com", "/slow?ms=300", timeout=10)[0]

    ts = [threading.Thread(target=one, args=(i,)) for i in range(N)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    return out


t = Tap()
with Suite() as s:
    be = Backend()
    syncd, httpd, port, _ = start_proxy(
        s, config([domain("example.com", [("@", "A", "127.0.0.1", True)])]), be.port,
        HTTPD_WORKERS=1, HTTPD_UPSTREAM_KEEPALIVE=2, HTTPD_UPSTREAM_IDLE_TIMEOUT_MS=60000)
    t.ok(wait_routes(port, "example.com", 10), "routed")
    time.sleep(1.5)  # the routing probe's connection is down to the limit again

    def reused():
        return httpd.metric("httpd_upstream_reused_total") or 0

    t.eq(burst(port), [200] * N, "a burst of %d requests at once: all 200" % N)
    r0 = reused()
    t.eq(burst(port), [200] * N, "a second burst right after: all 200")
    t.eq(reused() - r0, N, "every request of the second burst took a pooled connection "
         "(the %d above the limit of 2 were kept)" % (N - 2))
    time.sleep(1.0 + 1.0 * SLOW)
    r1 = reused()
    t.eq(burst(port), [200] * N, "a third burst two seconds later: all 200")
    t.eq(reused() - r1, 2, "only the limit's 2 were left to reuse (the surplus closed after 1 s)")
t.done()
