"""httpd with the real defenra-wafd: Lua rules block (ngx.exit), pass with ngx.header, a rate limit
with ngx.shared.cache:incr answering 429; wafd stopped (fail-open and fail-closed) and restarted
while requests flow."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dfr import Tap, Suite, SLOW, BIN, free_port, wait_until  # noqa: E402
from httpd_backend import Backend, config, domain, start_proxy, wait_routes, get  # noqa: E402

LUA = r"""
local ua = ngx.var.http_user_agent or ""
if string.find(ua, "badbot", 1, true) then ngx.exit(403) end
if string.find(ngx.var.uri, "/admin", 1, true) then
  ngx.header["X-Blocked"] = "1"
  ngx.status = 403
  ngx.say("no admin")
  ngx.exit(403)
end
if string.sub(ngx.var.uri, 1, 8) == "/limited" then
  local n = ngx.shared.cache:incr("rl:" .. ngx.var.remote_addr, 1, 0, 60)
  if n > 3 then ngx.exit(429) end
end
ngx.header["X-Waf"] = "passed"
"""

t = Tap()
if not os.path.exists(os.path.join(BIN, "defenra-wafd")):
    t.ok(True, "# SKIP defenra-wafd not built")
    t.done()
with Suite() as s:
    be = Backend()
    # Generous: this file checks verdicts; the timeout itself is tested in test_httpd_waf.py.
    tmo = int(1000 * SLOW)
    doms = [domain("waf.test", [("@", "A", "127.0.0.1", True)], lua=LUA)]
    syncd, httpd, port, _ = start_proxy(s, config(doms), be.port, WAF_TIMEOUT_MS=tmo)
    wafd = s.start("wafd", WAFD_WORKERS=1, LOG_LEVEL="info")
    cport = free_port()
    closed = s.start("httpd", HTTP_LISTEN="127.0.0.1:%d" % cport, HTTPD_UPSTREAM_PORT=be.port,
                     WAF_FAIL_MODE="closed", WAF_TIMEOUT_MS=tmo, LOG_LEVEL="info")
    t.ok(wait_routes(port, "waf.test", 10) and wait_routes(cport, "waf.test", 10), "routed")
    # Every httpd worker has its own client of waf.rep: wait until requests on all of them get
    # verdicts (ten in a row), not just the first worker's.
    t.ok(wait_until(lambda: all(dict(get(port, "waf.test", "/echo")[1]).get("X-Waf") == "passed"
                                for _ in range(10)), 10),
         "pass: the script's ngx.header is on the response")
    st, hdrs, body = get(port, "waf.test", "/admin")
    t.eq(st, 403, "ngx.exit(403) blocks")
    t.ok(b"no admin" in body, "the script's body", body)
    t.eq(dict(hdrs).get("X-Blocked"), "1", "the script's header on a block")
    t.eq(get(port, "waf.test", "/", headers=[("User-Agent", "badbot")])[0], 403, "User-Agent rule")
    sts = [get(port, "waf.test", "/limited")[0] for _ in range(5)]
    t.eq(sts, [200, 200, 200, 429, 429], "rate limit with a shared dict answers 429")

    results = {"open": [], "closed": []}
    stop = threading.Event()

    def load(p, key):
        while not stop.is_set():
            st = get(p, "waf.test", "/echo", timeout=3)[0]
            results[key].append((time.time(), st))
            time.sleep(0.01)

    ths = [threading.Thread(target=load, args=(port, "open")),
           threading.Thread(target=load, args=(cport, "closed"))]
    for th in ths:
        th.start()
    time.sleep(0.5)
    wafd.stop()
    t_down = time.time()
    time.sleep(1.0 * SLOW)
    t_up = time.time()
    wafd.start()
    ok_again = wait_until(lambda: dict(get(port, "waf.test", "/echo")[1]).get("X-Waf") == "passed"
                          and get(cport, "waf.test", "/echo")[0] == 200, 10)
    stop.set()
    for th in ths:
        th.join()
    down_open = [r for r in results["open"] if t_down + 0.3 < r[0] < t_up]
    down_closed = [r for r in results["closed"] if t_down + 0.3 < r[0] < t_up]
    t.ok(down_open and all(r[1] == 200 for r in down_open),
         "wafd stopped: fail-open answers 200 (%d requests)" % len(down_open))
    t.ok(down_closed and all(r[1] == 503 for r in down_closed),
         "wafd stopped: fail-closed answers 503 (%d requests)" % len(down_closed))
    t.ok(all(r[1] in (200, 503) for r in results["open"] + results["closed"]),
         "no other status while wafd restarts")
    t.ok(ok_again, "verdicts again after wafd restarted")
    t.eq(httpd.stop(), 0, "httpd exits cleanly")
    t.eq(closed.stop(), 0, "fail-closed httpd exits cleanly")
    be.close()
t.done()
