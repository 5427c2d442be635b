"""Slow clients are cut at their timeouts without delaying others: slowloris heads, a stalled
body, an idle keep-alive connection; and httpd keeps answering everyone else meanwhile."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dfr import Tap, Suite, SLOW  # noqa: E402
from httpd_backend import Backend, config, domain, start_proxy, wait_routes, get  # noqa: E402


def closed_within(c, seconds):
    """Seconds until the peer closed c (reading and discarding), or None."""
    t0 = time.time()
    c.settimeout(0.2)
    while time.time() - t0 < seconds:
        try:
            d = c.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            return time.time() - t0
        if not d:
            return time.time() - t0
    return None


t = Tap()
with Suite() as s:
    be = Backend()
    hto, bto, ito = 1000, 1000, 1500
    syncd, httpd, port, _ = start_proxy(
        s, config([domain("example.com", [("@", "A", "127.0.0.1", True)])]), be.port,
        HTTPD_HEADER_TIMEOUT_MS=hto, HTTPD_BODY_TIMEOUT_MS=bto, HTTPD_IDLE_TIMEOUT_MS=ito)
    t.ok(wait_routes(port, "example.com", 10), "routed")

    # Slowloris: 30 connections that each send a header byte every 200 ms, forever.
    lorises = []
    for _ in range(30):
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(b"GET / HTTP/1.1\r\nHost: example.com\r\n")
        lorises.append(c)
    t0 = time.time()
    fast_ok = 0
    while time.time() - t0 < 0.8:
        for c in lorises:
            try:
                c.sendall(b"X")
            except OSError:
                pass
        st = get(port, "example.com", "/status?code=204", timeout=1)[0]
        fast_ok += st == 204
        time.sleep(0.05)
    t.ok(fast_ok >= 5, "other clients served while slowloris connections trickle (%d)" % fast_ok)
    ends = [closed_within(c, 4 * SLOW) for c in lorises]
    t.ok(all(e is not None for e in ends), "every slowloris connection cut")
    t.ok(max(e or 99 for e in ends) + 0.8 < (hto / 1000.0 + 1.5) * SLOW,
         "cut at the header timeout (%.2f s after the test's last byte)" % max(e or 99 for e in ends))
    for c in lorises:
        c.close()

    # Slow body: the head and 10 of 1000 bytes, then nothing.
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"POST /echo HTTP/1.1\r\nHost: example.com\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    t0 = time.time()
    st = get(port, "example.com", "/status?code=204")[0]
    t.eq(st, 204, "others served while a body stalls")
    c.settimeout(4 * SLOW)
    try:
        data = c.recv(4096)
    except OSError:
        data = b""
    took = time.time() - t0
    t.ok(data.startswith(b"HTTP/1.1 408"), "stalled body answered 408", data[:60])
    t.ok(took < (bto / 1000.0 + 1.5) * SLOW, "after the body timeout (%.2f s)" % took)
    c.close()

    # Idle keep-alive connection closed after the idle timeout.
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"GET /status?code=204 HTTP/1.1\r\nHost: example.com\r\n\r\n")
    c.settimeout(3)
    first = c.recv(4096)
    t.ok(first.startswith(b"HTTP/1.1 204"), "keep-alive request answered")
    e = closed_within(c, 5 * SLOW)
    t.ok(e is not None and e < (ito / 1000.0 + 1.0) * SLOW,
         "idle connection closed after the idle timeout (%s)" % e)
    c.close()
    t.eq(httpd.metric("httpd_connections_open"), 0.0, "no connection left open")
    t.ok(httpd.alive(), "httpd alive")
    t.eq(httpd.stop(), 0, "httpd exits cleanly on SIGTERM (no sanitizer report)")
    for d in s.daemons:
        if d.name == "httpd":
            t.ok("Sanitizer" not in d.logs() and "runtime error" not in d.logs(),
                 "no sanitizer report in httpd's log")
    be.close()
t.done()
