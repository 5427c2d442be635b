"""httpd's own SP-over-IPC client of wafd (defenra-httpd/waf.c) against the real wafd: a lost
connection fails the requests in flight at once (fail-open 200, fail-closed 503) instead of
after WAF_TIMEOUT_MS; wafd killed and restarted over its stale socket, or stopped and started
again: httpd reconnects by itself and verdicts resume within 2 s; a request stuck in one wafd
worker does not hold up the next ones of the same httpd worker (WAF_CONNS connections)."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dfr import Tap, Suite, SLOW, BIN, free_port, wait_until  # noqa: E402
from httpd_backend import Backend, config, domain, start_proxy, wait_routes, get  # noqa: E402

LUA = r"""
if ngx.var.uri == "/spin" then local x = 0 while true do x = x + 1 end end
if string.find(ngx.var.uri, "/admin", 1, true) then ngx.exit(403) end
ngx.header["X-Waf"] = "passed"
"""

t = Tap()
if not os.path.exists(os.path.join(BIN, "defenra-wafd")):
    t.ok(True, "# SKIP defenra-wafd not built")
    t.done()


def judged(port):
    return dict(get(port, "waf.test", "/echo", timeout=3)[1]).get("X-Waf") == "passed"


def all_judged(*ports):
    # every httpd worker has its own connection: ten in a row on each instance
    return all(judged(p) for p in ports for _ in range(10))


with Suite() as s:
    be = Backend()
    tmo = 8000  # far above what any check below may take: a fail before it is the lost link
    doms = [domain("waf.test", [("@", "A", "127.0.0.1", True)], lua=LUA)]
    syncd, httpd, port, _ = start_proxy(s, config(doms), be.port, WAF_TIMEOUT_MS=tmo)
    cport = free_port()
    closed = s.start("httpd", HTTP_LISTEN="127.0.0.1:%d" % cport, HTTPD_UPSTREAM_PORT=be.port,
                     WAF_FAIL_MODE="closed", WAF_TIMEOUT_MS=tmo, LOG_LEVEL="info")
    wenv = dict(WAFD_WORKERS=2, WAFD_LUA_BUDGET=2000000000, WAFD_LUA_TIMEOUT_MS=30000,
                LOG_LEVEL="info")
    wafd = s.start("wafd", **wenv)
    t.ok(wait_routes(port, "waf.test", 10) and wait_routes(cport, "waf.test", 10), "routed")
    t.ok(wait_until(lambda: all_judged(port, cport), 10 * SLOW), "verdicts on both instances")
    t.eq(get(port, "waf.test", "/admin")[0], 403, "a block")

    # requests stuck in wafd (an endless script) when wafd dies: failed at once
    res = {}

    def spin(p, key):
        t0 = time.time()
        st = get(p, "waf.test", "/spin", timeout=20)[0]
        res[key] = (st, time.time() - t0)

    ths = [threading.Thread(target=spin, args=(port, "open")),
           threading.Thread(target=spin, args=(cport, "closed"))]
    for th in ths:
        th.start()
    time.sleep(0.5 * SLOW)
    t_kill = time.time()
    wafd.kill()
    for th in ths:
        th.join()
    t.diag("spin requests: %s, killed %.2f s after they were sent" % (res, 0.5 * SLOW))
    st, took = res.get("open", (0, 99))
    t.ok(st == 200 and took < 0.5 * SLOW + 1.5, "lost connection: fail-open passes at once "
         "(%s after %.2f s; WAF_TIMEOUT_MS is %.0f s)" % (st, took, tmo / 1000.0))
    st, took = res.get("closed", (0, 99))
    t.ok(st == 503 and took < 0.5 * SLOW + 1.5, "lost connection: fail-closed answers 503 at "
         "once (%s after %.2f s)" % (st, took))
    t.ok("connection to wafd lost" in httpd.logs(), "httpd logs the lost connection")
    # while wafd is away: fail mode at once
    t0 = time.time()
    st = get(port, "waf.test", "/echo")[0]
    t.ok(st == 200 and time.time() - t0 < 1.0 * SLOW, "wafd away: fail-open at once")
    t.eq(get(cport, "waf.test", "/echo")[0], 503, "wafd away: fail-closed 503")

    # killed wafd restarted over its stale socket file: verdicts within 2 s
    time.sleep(1.5)  # long enough for the back-off to reach its cap
    t0 = time.time()
    wafd.start()
    ok = wait_until(lambda: all_judged(port, cport), 10 * SLOW, step=0.02)
    took = time.time() - t0
    t.ok(ok and took < 2.0 * SLOW, "wafd restarted after a kill: verdicts on every worker of "
         "both instances again within 2 s (%.2f s)" % took)

    # stopped cleanly and started again, under load
    stats = []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            r = get(port, "waf.test", "/echo", timeout=3)
            stats.append((time.time(), r[0], dict(r[1]).get("X-Waf")))

    th = threading.Thread(target=load)
    th.start()
    time.sleep(0.3)
    t.eq(wafd.stop(), 0, "wafd stops cleanly (httpd connected)")
    time.sleep(0.5)
    t0 = time.time()
    wafd.start()
    ok = wait_until(lambda: all_judged(port, cport), 10 * SLOW, step=0.02)
    took = time.time() - t0
    stop.set()
    th.join()
    t.ok(ok and took < 2.0 * SLOW, "wafd stopped and started: verdicts again within 2 s (%.2f s)"
         % took)
    t.ok(stats and all(r[1] == 200 for r in stats), "fail-open: only 200s across the restart "
         "(%d requests)" % len(stats), set(r[1] for r in stats))
    t.ok(httpd.alive() and closed.alive(), "both httpd alive")
    t.eq(httpd.stop(), 0, "httpd exits cleanly")
    t.eq(closed.stop(), 0, "fail-closed httpd exits cleanly")
    be.close()

# One httpd worker, two wafd workers: the worker's two connections land on both, so while a
# script spins in one, the next request goes on the other connection and is judged at once
# (with one connection it would wait behind the spinning one until WAFD_LUA_TIMEOUT_MS).
with Suite() as s:
    be = Backend()
    doms = [domain("waf.test", [("@", "A", "127.0.0.1", True)], lua=LUA)]
    syncd, httpd, port, _ = start_proxy(s, config(doms), be.port, WAF_TIMEOUT_MS=8000,
                                        HTTPD_WORKERS=1)
    wafd = s.start("wafd", **wenv)
    t.ok(wait_routes(port, "waf.test", 10) and wait_until(lambda: all_judged(port), 10 * SLOW),
         "one httpd worker judged by wafd")
    res = {}
    th = threading.Thread(target=lambda: res.update(spin=get(port, "waf.test", "/spin",
                                                             timeout=20)[0]))
    th.start()
    time.sleep(0.5 * SLOW)
    t0 = time.time()
    r = get(port, "waf.test", "/echo", timeout=10)
    took = time.time() - t0
    t.ok(r[0] == 200 and dict(r[1]).get("X-Waf") == "passed" and took < 1.0 * SLOW,
         "while a script spins in one wafd worker, the next request is judged by the other "
         "(%s, X-Waf %r, %.2f s)" % (r[0], dict(r[1]).get("X-Waf"), took))
    wafd.kill()
    th.join()
    t.eq(res.get("spin"), 200, "the spinning request gets the fail mode when wafd goes")
    be.close()
t.done()
