"""httpd against a real backend: routing and every status, headers both ways, keep-alive and the
backend pool, pipelining, chunked both ways, 100-continue, WebSocket, ACME, config change."""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dfr import Tap, Suite, SLOW, free_port, wait_until  # noqa: E402
from httpd_backend import (Backend, config, domain, start_proxy, raw, responses, get,  # noqa: E402
                           wait_routes, ws_frame, ws_read_frame)

TOKEN = "tok-123_abc"
KEYAUTH = TOKEN + ".thumbprint"

t = Tap()
with Suite() as s:
    be = Backend()
    dead = free_port()  # nothing listens there
    doms = [
        domain("example.com", [("@", "A", "127.0.0.1", True), ("www", "CNAME", "example.com", True),
                               ("mail", "A", "127.0.0.1", False), ("*", "A", "127.0.0.1", False)],
               acme=(TOKEN, KEYAUTH)),
        domain("secure.test", [("@", "A", "127.0.0.1", True)], http_type="https"),
        domain("down.test", [("@", "A", "127.0.0.2", True)]),
        domain("cname-out.test", [("@", "CNAME", "elsewhere.invalid", True)]),
    ]
    syncd, httpd, port, cfg_path = start_proxy(
        s, config(doms), be.port, HTTPD_UPSTREAM_READ_TIMEOUT_MS=1000,
        HTTPD_UPSTREAM_CONNECT_TIMEOUT_MS=1000, HTTPD_MAX_HEADER_BYTES=4096,
        HTTPD_MAX_BODY_MB=1, HTTPD_ACCESS_LOG="json")
    t.ok(httpd.wait_health(10), "httpd becomes healthy")
    t.ok(wait_routes(port, "example.com"), "example.com routed")

    # --- routing and statuses ---
    st, hdrs, body = get(port, "example.com", "/echo?q=1")
    doc = json.loads(body or b"{}")
    t.eq(st, 200, "apex proxied: 200")
    t.eq(doc.get("target"), "/echo?q=1", "target unchanged")
    t.eq([h for h in doc.get("headers", []) if h[0].lower() == "host"], [["Host", "example.com"]],
         "client's Host goes upstream unchanged")
    st, _, body = get(port, "WWW.Example.com:%d" % port, "/echo")
    t.eq(st, 200, "CNAME to the apex followed, Host case and port accepted")
    t.ok(b'"WWW.Example.com:%d"' % port in body, "Host with port forwarded as sent")
    t.eq(get(port, "mail.example.com")[0], 403, "name without proxy: 403")
    t.eq(get(port, "other.example.com")[0], 403, "name under a non-proxied wildcard: 403")
    t.eq(get(port, "unknown.invalid")[0], 404, "unknown host: 404")
    st, hdrs, _ = get(port, "secure.test", "/p?x=1")
    t.eq(st, 301, "https-only domain over http: redirect")
    t.eq(dict(hdrs).get("Location"), "https://secure.test/p?x=1", "redirect target")
    t.eq(get(port, "cname-out.test")[0], 502, "proxied CNAME out of the config: 502")
    t.eq(get(port, "down.test")[0], 502, "backend refused: 502")
    t0 = time.time()
    st = get(port, "example.com", "/slow?ms=3000")[0]
    t.eq(st, 504, "backend too slow: 504")
    t.ok(time.time() - t0 < 2.5 * SLOW, "504 after the read timeout")
    st, hdrs, body = get(port, "example.com", "/.well-known/acme-challenge/" + TOKEN)
    t.eq((st, body), (200, KEYAUTH.encode()), "ACME HTTP-01 answered from the config")
    t.eq(get(port, "example.com", "/.well-known/acme-challenge/wrong")[0], 200,
         "other acme path goes to the backend")
    t.eq(get(port, "secure.test", "/.well-known/acme-challenge/" + TOKEN)[0], 301,
         "token of another zone not answered")
    big = "a" * 5000
    t.eq(get(port, "example.com", "/echo", headers=[("X-Big", big)])[0], 431,
         "headers over the limit: 431")
    out = raw(port, b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) +
              b"Host: example.com\r\n\r\n")
    t.ok(out.startswith(b"HTTP/1.1 431"), "too many headers: 431", out[:80])
    out = raw(port, b"POST /echo HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2000000\r\n\r\n")
    t.ok(out.startswith(b"HTTP/1.1 413"), "body over the limit: 413", out[:80])
    out = raw(port, b"GARBAGE\r\n\r\n")
    t.ok(out.startswith(b"HTTP/1.1 400"), "malformed: 400", out[:80])
    out = raw(port, b"GET / HTTP/1.1\r\n\r\n")
    t.ok(out.startswith(b"HTTP/1.1 400"), "HTTP/1.1 without Host: 400", out[:80])
    out = raw(port, b"POST /e HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    t.ok(out.startswith(b"HTTP/1.1 400"), "Content-Length with chunked: 400", out[:80])

    # --- headers ---
    st, _, body = get(port, "example.com", "/echo", headers=[
        ("X-Forwarded-For", "6.6.6.6"), ("X-Real-IP", "6.6.6.6"), ("X-Forwarded-Proto", "https"),
        ("Connection", "keep-alive, X-Secret"), ("X-Secret", "s"), ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"), ("X-Rep", "1"), ("X-Other", "o"), ("X-Rep", "2")])
    doc = json.loads(body or b"{}")
    seen = doc.get("headers", [])
    hmap = {}
    for k, v in seen:
        hmap.setdefault(k.lower(), []).append(v)
    t.eq(hmap.get("x-forwarded-for"), ["6.6.6.6, 127.0.0.1"],
         "X-Forwarded-For: the client's list, then the socket's peer")
    t.eq(hmap.get("x-real-ip"), ["127.0.0.1"], "X-Real-IP is the peer, not the client's")
    t.eq(hmap.get("x-forwarded-proto"), ["http"], "X-Forwarded-Proto set")
    t.ok(not any(k in hmap for k in ("x-secret", "keep-alive", "te", "connection")),
         "hop-by-hop headers removed", seen)
    t.eq([k for k, v in seen if k.lower() in ("x-rep", "x-other")], ["X-Rep", "X-Other", "X-Rep"],
         "repeated headers and their order kept upstream")
    out = raw(port, b"GET /hdrs HTTP/1.1\r\nHost: example.com\r\n\r\n")
    rs = responses(out)
    t.ok(rs and [h for h in rs[0][1] if h[0] in ("Set-Cookie", "X-Multi")] ==
         [("Set-Cookie", "a=1"), ("X-Multi", "1"), ("Set-Cookie", "b=2"), ("X-Multi", "2")],
         "repeated response headers and their order kept", out[:300])

    # --- keep-alive, pool, pipelining ---
    n_before = len(be.requests)
    pipe = b"".join(b"GET /echo?n=%d HTTP/1.1\r\nHost: example.com\r\n\r\n" % i for i in range(20))
    pipe += b"GET /echo?n=last HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
    out = raw(port, pipe, until_close=True)
    rs = responses(out)
    t.eq(len(rs), 21, "21 pipelined requests answered")
    t.ok([json.loads(b)["target"] for _, _, b in rs] ==
         ["/echo?n=%d" % i for i in range(20)] + ["/echo?n=last"], "answered in order")
    t.eq(len(be.requests) - n_before, 21, "each reached the backend once")
    reuse = httpd.metric("httpd_upstream_reused_total")
    t.ok(reuse is not None and reuse >= 19, "backend connections reused (%s)" % reuse)

    # A pooled connection the backend closes as we reuse it: sent again on a fresh one.
    retries = httpd.metric("httpd_upstream_retries_total") or 0
    dropped = be.dropped
    out = raw(port, b"GET /once HTTP/1.1\r\nHost: example.com\r\n\r\n"
              b"GET /echo?after=once HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
              until_close=True)
    t.eq([r[0] for r in responses(out)], [200, 200],
         "request on a reused connection the backend closed: retried, 200")
    t.ok(be.dropped > dropped and (httpd.metric("httpd_upstream_retries_total") or 0) > retries,
         "the retry happened (backend dropped %d, retries %s)" % (
             be.dropped - dropped, httpd.metric("httpd_upstream_retries_total")))

    # Local answers keep the connection: 404, 403, ACME and a proxied answer in one pipeline.
    out = raw(port, b"GET /a HTTP/1.1\r\nHost: unknown.invalid\r\n\r\n"
              b"GET /b HTTP/1.1\r\nHost: mail.example.com\r\n\r\n"
              b"GET /.well-known/acme-challenge/" + TOKEN.encode() +
              b" HTTP/1.1\r\nHost: example.com\r\n\r\n"
              b"GET /echo HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
              until_close=True)
    t.eq([r[0] for r in responses(out)], [404, 403, 200, 200],
         "local answers keep the connection alive, in order")

    # --- chunked both ways, 100-continue ---
    out = raw(port, b"POST /echo HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n"
              b"\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    rs = responses(out)
    t.ok(rs and json.loads(rs[0][2])["body_len"] == 11, "chunked request body forwarded", out[:200])
    out = raw(port, b"GET /chunked?n=5500 HTTP/1.1\r\nHost: example.com\r\n\r\n", want=5600)
    t.ok(b"Transfer-Encoding: chunked" in out and out.endswith(b"0\r\n\r\n"),
         "chunked response passed as chunked", out[:200])
    out = raw(port, b"GET /eof?n=3000 HTTP/1.1\r\nHost: example.com\r\n\r\n", want=3100)
    t.ok(b"Transfer-Encoding: chunked" in out and out.endswith(b"0\r\n\r\n"),
         "response delimited by close re-chunked for a 1.1 client", out[:200])
    out = raw(port, b"GET /eof?n=3000 HTTP/1.0\r\nHost: example.com\r\n\r\n", until_close=True)
    t.ok(out.endswith(b"e" * 3000) and b"chunked" not in out,
         "response delimited by close passed as is to a 1.0 client", out[:200])
    c = socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW)
    c.sendall(b"POST /echo HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n"
              b"Expect: 100-continue\r\n\r\n")
    first = c.recv(100)
    t.ok(first.startswith(b"HTTP/1.1 100 Continue"), "100 Continue sent", first)
    c.sendall(b"body")
    out = b""
    while b"body_len" not in out:
        d = c.recv(65536)
        if not d:
            break
        out += d
    t.ok(b'"body_len": 4' in out, "body after 100-continue forwarded", out[-200:])
    c.close()

    # --- WebSocket ---
    c = socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW)
    c.sendall(b"GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    f = c.makefile("rb")
    status = f.readline()
    while f.readline() not in (b"\r\n", b""):
        pass
    t.ok(status.startswith(b"HTTP/1.1 101"), "WebSocket upgrade: 101", status)
    got = []
    for msg in (b"hello", b"x" * 70000):
        c.sendall(ws_frame(2, msg))
        fr = ws_read_frame(f)
        got.append(fr[1] if fr else None)
    t.ok(got == [b"hello", b"x" * 70000], "WebSocket echo through the proxy (small and 70 KB)")
    c.sendall(ws_frame(8, b""))
    c.close()

    # --- config change while requests flow ---
    stop = threading.Event()
    errors = []
    count = [0]

    def load():
        while not stop.is_set():
            st = get(port, "example.com", "/status?code=204")[0]
            count[0] += 1
            if st != 204:
                errors.append(st)

    th = threading.Thread(target=load)
    th.start()
    time.sleep(0.3)
    doms2 = doms + [domain("new.test", [("@", "A", "127.0.0.1", True)])]
    with open(cfg_path, "w") as fh:
        fh.write(config(doms2))
    t.ok(wait_until(lambda: get(port, "new.test", "/status?code=204")[0] == 204, 8),
         "new domain served after a config change")
    time.sleep(0.3)
    stop.set()
    th.join()
    t.ok(count[0] > 10 and not errors,
         "no failed request across the change (%d requests, errors %s)" % (count[0], errors[:5]))

    # IPv4 and IPv6 listeners on one port, the v6 one IPv6-only: peers keep their own form.
    p2 = free_port()
    dual = s.start("httpd", HTTP_LISTEN="127.0.0.1:%d,[::1]:%d" % (p2, p2),
                   HTTPD_UPSTREAM_PORT=be.port, LOG_LEVEL="info")
    t.ok(wait_routes(p2, "example.com", 10), "second httpd on 127.0.0.1 and [::1]")
    st4, _, b4 = get(p2, "example.com", "/echo")
    try:
        import http.client
        c = http.client.HTTPConnection("::1", p2, timeout=5 * SLOW)
        c.request("GET", "/echo", headers={"Host": "example.com"})
        r = c.getresponse()
        st6, b6 = r.status, r.read()
        c.close()
    except Exception as e:  # noqa
        st6, b6 = 0, str(e).encode()
    xri = lambda b: [v for k, v in json.loads(b or b"{}").get("headers", [])  # noqa: E731
                     if k.lower() == "x-real-ip"]
    t.ok(st4 == 200 and xri(b4) == ["127.0.0.1"], "IPv4 client seen as 127.0.0.1", b4[:200])
    t.ok(st6 == 200 and xri(b6) == ["::1"], "IPv6 client seen as ::1", b6[:200])
    t.eq(dual.stop(), 0, "second httpd exits cleanly")

    logs = httpd.logs()
    t.ok('"status":200' in logs and '"host":"example.com"' in logs, "JSON access log lines")
    t.ok((httpd.metric('httpd_requests_total{domain="example.com",status="2xx"}') or 0) > 0,
         "requests counted by domain and status")
    _, text = httpd.get("/metrics")
    buckets = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("httpd_upstream_latency_seconds_bucket{")]
    count = httpd.metric("httpd_upstream_latency_seconds_count") or 0
    t.ok(len(buckets) > 2 and count > 0 and buckets == sorted(buckets) and buckets[-1] == count,
         "backend latency histogram: cumulative buckets, +Inf equal to the count",
         (buckets, count))
    t.ok(httpd.alive(), "httpd still running")
    t.eq(httpd.stop(), 0, "clean exit on SIGTERM")
    for d in s.daemons:
        if d.name == "httpd":
            t.ok("Sanitizer" not in d.logs() and "runtime error" not in d.logs(),
                 "no sanitizer report in httpd's log")
    be.close()
t.done()
