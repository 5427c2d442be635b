"""httpd's WAF client against a stand-in wafd (httpd_fakewaf.py) on the real bus address: block,
pass with headers, a rate limit answering 429, wafd slow, silent, failing, stopped (fail-open and
fail-closed) and restarted under load; what httpd tells wafd about the request."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dfr import Tap, Suite, SLOW, free_port, wait_until  # noqa: E402
from httpd_backend import Backend, config, domain, start_proxy, wait_routes, get  # noqa: E402
from httpd_fakewaf import FakeWaf, PASS, RESPOND, ERROR  # noqa: E402

LUA = "if string.find(ngx.var.uri, '/admin', 1, true) then ngx.exit(403) end"
counts = {}
lock = threading.Lock()


def rule(req):
    target = req["target"]
    ua = dict((k.lower(), v) for k, v in req["headers"]).get("user-agent", "")
    if "/admin" in target or "badbot" in ua:
        return (RESPOND, 403, [("Content-Type", "text/html"), ("X-Blocked", "1")],
                b"Blocked by WAF")
    if target.startswith("/limited"):
        with lock:
            counts[req["peer"]] = counts.get(req["peer"], 0) + 1
            n = counts[req["peer"]]
        if n > 3:
            return (RESPOND, 429, [("Retry-After", "60")], b"Too many requests")
    if target.startswith("/wafhalf"):
        return ("sleep", 0.05, (PASS, 0, [("X-Waf", "half")], b""))
    if target.startswith("/wafslow"):
        return ("sleep", 1.0, (PASS, 0, [], b""))
    if target.startswith("/silent"):
        return None
    if target.startswith("/err"):
        return (ERROR, 0, [], b"")
    return (PASS, 0, [("X-Waf", "passed"), ("Set-Cookie", "w=1")], b"")


t = Tap()
with Suite() as s:
    be = Backend()
    waf = FakeWaf(s.run_dir, rule)
    tmo = int(200 * SLOW)
    doms = [domain("waf.test", [("@", "A", "127.0.0.1", True)], lua=LUA),
            domain("nowaf.test", [("@", "A", "127.0.0.1", True)])]
    syncd, httpd, port, _ = start_proxy(s, config(doms), be.port, WAF_TIMEOUT_MS=tmo)
    cport = free_port()
    closed = s.start("httpd", HTTP_LISTEN="127.0.0.1:%d" % cport, HTTPD_UPSTREAM_PORT=be.port,
                     WAF_FAIL_MODE="closed", WAF_TIMEOUT_MS=tmo, LOG_LEVEL="info")
    t.ok(wait_routes(port, "nowaf.test", 10) and wait_routes(cport, "nowaf.test", 10), "routed")

    st, hdrs, body = get(port, "waf.test", "/echo", headers=[("X-Forwarded-For", "6.6.6.6")])
    h = dict(hdrs)
    t.eq(st, 200, "pass: forwarded")
    t.eq(h.get("X-Waf"), "passed", "pass: the WAF's header is on the response")
    t.ok(("Set-Cookie", "w=1") in hdrs, "pass: every WAF header added")
    req = waf.seen[-1] if waf.seen else {}
    t.eq((req.get("host"), req.get("method"), req.get("target"), req.get("domain")),
         ("waf.test", "GET", "/echo", "waf.test"), "wafd told host, method, target, domain")
    t.eq((req.get("server"), req.get("server_port")), ("127.0.0.1", port),
         "wafd told the local address and port")
    # two requests on one keep-alive connection: the second reuses the address asked once
    import http.client
    kc = http.client.HTTPConnection("127.0.0.1", port, timeout=5 * SLOW)
    for path in ("/echo?k=1", "/echo?k=2"):
        kc.request("GET", path, headers={"Host": "waf.test"})
        kc.getresponse().read()
    kc.close()
    last = [r for r in waf.seen if r.get("target") in ("/echo?k=1", "/echo?k=2")]
    t.ok(len(last) == 2 and all((r.get("server"), r.get("server_port")) == ("127.0.0.1", port)
                                and r.get("peer_port") == last[0].get("peer_port")
                                for r in last),
         "same local address on both requests of a keep-alive connection",
         [(r.get("server"), r.get("server_port"), r.get("peer_port")) for r in last])

    # A client that half-closes right after its request, while wafd is still judging it.
    import socket
    c = socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW)
    c.sendall(b"GET /wafhalf HTTP/1.1\r\nHost: waf.test\r\n\r\n")
    c.shutdown(socket.SHUT_WR)
    got = b""
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            got += d
    except OSError:
        pass
    c.close()
    t.ok(got.startswith(b"HTTP/1.1 200") and b"X-Waf: half" in got,
         "half-closed during the verdict: still answered after it", got[:200])
    t.eq(req.get("peer"), "127.0.0.1", "wafd told the socket's peer, not X-Forwarded-For")
    t.ok(("X-Forwarded-For", "6.6.6.6") in req.get("headers", []), "headers passed as sent")
    n = len(waf.seen)
    t.eq(get(port, "nowaf.test", "/echo")[0], 200, "domain without Lua: no WAF")
    t.eq(len(waf.seen), n, "wafd not asked for it")

    nreq = len(be.requests)
    st, hdrs, body = get(port, "waf.test", "/admin/x")
    t.eq((st, body), (403, b"Blocked by WAF"), "block: status and body from the WAF")
    t.eq(dict(hdrs).get("Content-Type"), "text/html", "block: WAF content type")
    t.eq(dict(hdrs).get("X-Blocked"), "1", "block: WAF header")
    t.eq(get(port, "waf.test", "/", headers=[("User-Agent", "badbot/1.0")])[0], 403,
         "User-Agent rule blocks")
    t.eq(len(be.requests), nreq, "blocked requests never reach the backend")
    sts = [get(port, "waf.test", "/limited")[0] for _ in range(6)]
    t.eq(sts, [200, 200, 200, 429, 429, 429], "rate limit answers 429 after 3")

    t0 = time.time()
    st, hdrs, _ = get(port, "waf.test", "/wafslow")
    took = time.time() - t0
    t.eq(st, 200, "slow wafd: fail-open passes")
    t.ok(took < (tmo / 1000.0 + 0.6) * SLOW, "slow wafd: not waited past the timeout (%.2f s)" % took)
    t.eq(get(port, "waf.test", "/silent")[0], 200, "silent wafd: fail-open passes")
    t.eq(get(port, "waf.test", "/err")[0], 200, "script error: fail-open passes")
    t.eq(get(cport, "waf.test", "/wafslow")[0], 503, "slow wafd: fail-closed answers 503")
    t.eq(get(cport, "waf.test", "/err")[0], 503, "script error: fail-closed answers 503")
    t.eq(get(cport, "waf.test", "/echo")[0], 200, "fail-closed instance passes normally")
    fo = httpd.metric('httpd_waf_failures_total{mode="open"}')
    t.ok(fo is not None and fo >= 3, "fail-open counted (%s)" % fo)

    # wafd stopped, then restarted while requests flow.
    results = {"open": [], "closed": []}
    stop = threading.Event()

    def load(p, key):
        while not stop.is_set():
            st, hdrs, _ = get(p, "waf.test", "/echo", timeout=3)
            results[key].append((time.time(), st, dict(hdrs).get("X-Waf")))
            time.sleep(0.01)

    ths = [threading.Thread(target=load, args=(port, "open")),
           threading.Thread(target=load, args=(cport, "closed"))]
    for th in ths:
        th.start()
    time.sleep(0.5)
    waf.stop()
    t_down = time.time()
    time.sleep(1.0 * SLOW)
    t_up = time.time()
    waf.start()
    time.sleep(0.3)
    ok_again = wait_until(lambda: get(port, "waf.test", "/echo")[1] and
                          dict(get(port, "waf.test", "/echo")[1]).get("X-Waf") == "passed", 5)
    stop.set()
    for th in ths:
        th.join()
    down_open = [r for r in results["open"] if t_down + 0.2 < r[0] < t_up]
    down_closed = [r for r in results["closed"] if t_down + 0.2 < r[0] < t_up]
    t.ok(down_open and all(r[1] == 200 for r in down_open),
         "wafd down: fail-open keeps answering 200 (%d requests)" % len(down_open),
         set(r[1] for r in down_open))
    t.ok(down_closed and all(r[1] == 503 for r in down_closed),
         "wafd down: fail-closed answers 503 (%d requests)" % len(down_closed),
         set(r[1] for r in down_closed))
    t.ok(all(r[1] in (200, 503) for r in results["open"] + results["closed"]),
         "no other status across the restart")
    t.ok(ok_again, "verdicts again after wafd restarted")
    t.ok(httpd.alive() and closed.alive(), "both httpd alive")
    waf.stop()
    t.eq(httpd.stop(), 0, "httpd exits cleanly on SIGTERM (no sanitizer report)")
    t.eq(closed.stop(), 0, "closed exits cleanly on SIGTERM (no sanitizer report)")
    for d in s.daemons:
        if d.name == "httpd":
            t.ok("Sanitizer" not in d.logs() and "runtime error" not in d.logs(),
                 "no sanitizer report in httpd's log")
    be.close()
t.done()
