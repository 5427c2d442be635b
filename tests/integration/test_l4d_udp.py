#!/usr/bin/python3
"""l4d, UDP forwarding: syncd in file mode feeds l4d; Python UDP backends on loopback.

Cases: a backend that answers twice (both replies reach the client); many clients each get
their own answers; datagrams of 1 B to 60 kB keep their boundaries; 200 queries in flight (in
bursts and as a sliding window) lose nothing; sessions expire after L4D_UDP_IDLE_S; a changed
destination applies; a removed proxy answers no more.
"""
import json
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dfr import SLOW, Suite, Tap, free_port, wait_until  # noqa: E402

QUERIES = int(os.environ.get("L4D_TEST_QUERIES", str(20000 if SLOW <= 1 else 5000)))


def proxy(pid, name, typ, sport, dport, host="127.0.0.1"):
    return {"id": "%024x" % pid, "name": name, "type": typ, "sourcePort": sport,
            "destinationHost": host, "destinationPort": dport, "enabled": True}


def config(proxies):
    return json.dumps({"success": True, "domains": [], "proxies": proxies})


class UdpBackend:
    """Answers each datagram `copies` times, prefixed with `tag` and the copy number."""

    def __init__(self, copies=1, tag=b""):
        self.port = free_port(socket.SOCK_DGRAM)
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.s.bind(("127.0.0.1", self.port))
        self.s.settimeout(0.2)
        self.copies = copies
        self.tag = tag
        self.received = 0
        self.peers = set()
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                data, peer = self.s.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.received += 1
            self.peers.add(peer)
            if self.copies == 1 and not self.tag:
                self.s.sendto(data, peer)
                continue
            for i in range(self.copies):
                self.s.sendto(self.tag + b"%d:" % (i + 1) + data, peer)

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.s.close()


def client():
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    c.bind(("127.0.0.1", 0))
    c.settimeout(2 * SLOW)
    return c


def recv_all(c, n, timeout=2.0):
    got = []
    c.settimeout(timeout * SLOW)
    try:
        while len(got) < n:
            got.append(c.recv(65536))
    except socket.timeout:
        pass
    return got


def window_load(port, total, inflight, result):
    """Keeps `inflight` queries outstanding until `total` were sent; counts the answers."""
    c = client()
    c.settimeout(3 * SLOW)
    sent = answered = 0
    seen = set()
    try:
        while sent < min(inflight, total):
            c.sendto(b"q%08d" % sent, ("127.0.0.1", port))
            sent += 1
        while answered < total:
            data = c.recv(100)
            seen.add(data)
            answered += 1
            if sent < total:
                c.sendto(b"q%08d" % sent, ("127.0.0.1", port))
                sent += 1
    except socket.timeout:
        pass
    c.close()
    result["sent"] = sent
    result["answered"] = answered
    result["distinct"] = len(seen)


t = Tap()
with Suite() as s:
    twice = UdpBackend(copies=2)
    echo = UdpBackend()
    other = UdpBackend(tag=b"other ")
    ports = {k: free_port(socket.SOCK_DGRAM) for k in ("twice", "echo", "gone")}
    base = [proxy(1, "twice", "udp", ports["twice"], twice.port),
            proxy(2, "echo", "udp", ports["echo"], echo.port, host="localhost"),
            proxy(3, "gone", "udp", ports["gone"], echo.port)]
    cfg_path = s.write("config.json", config(base))
    syncd = s.start("syncd", DEFENRA_CONFIG=cfg_path, POLLING_INTERVAL=1)
    l4d = s.start("l4d", L4_BIND="127.0.0.1", L4D_UDP_IDLE_S=2, L4D_GRACE_MS=500,
                  L4D_MAX_SESSIONS=64)
    t.ok(l4d.wait_health(generation=1, timeout=10), "l4d applies the first config", l4d.logs())

    def set_config(proxies):
        gen = l4d.generation()
        tmp = cfg_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(config(proxies))
        os.rename(tmp, cfg_path)
        syncd.proc.send_signal(signal.SIGHUP)
        return l4d.wait_health(generation=gen + 1, timeout=10)

    def m(name, p):
        return l4d.metric('%s{proxy="%s"}' % (name, p))

    # --- two replies per request -----------------------------------------------------------
    c = client()
    c.sendto(b"hello", ("127.0.0.1", ports["twice"]))
    got = recv_all(c, 2)
    t.eq(sorted(got), [b"1:hello", b"2:hello"], "both replies of a backend that answers twice "
         "reach the client")
    c.sendto(b"again", ("127.0.0.1", ports["twice"]))
    t.eq(sorted(recv_all(c, 2)), [b"1:again", b"2:again"], "... again, on the same session")
    t.eq(len(twice.peers), 1, "the backend sees one session socket for the client")
    c.close()

    # --- many clients, each its own answers --------------------------------------------------
    clients = [client() for _ in range(20)]
    for i, cl in enumerate(clients):
        cl.sendto(b"client %d" % i, ("127.0.0.1", ports["echo"]))
    good = sum(recv_all(cl, 1) == [b"client %d" % i] for i, cl in enumerate(clients))
    t.eq(good, 20, "20 clients each get their own answer")
    t.ok(wait_until(lambda: m("l4d_udp_sessions_open", "echo") == 20, 3),
         "l4d_udp_sessions_open shows 20 sessions")
    for cl in clients:
        cl.close()

    # --- datagram boundaries ------------------------------------------------------------------
    c = client()
    sizes = [1, 100, 1472, 9000, 60000, 3]
    for n in sizes:
        c.sendto(bytes([n % 251]) * n, ("127.0.0.1", ports["echo"]))
    got = recv_all(c, len(sizes))
    t.eq([len(g) for g in got], sizes, "datagrams of 1 B to 60 kB are neither merged nor split")
    t.ok(all(g == bytes([len(g) % 251]) * len(g) for g in got), "... and intact")
    c.close()

    # --- nothing lost under load --------------------------------------------------------------
    c = client()
    lost = 0
    for burst in range(30):
        for i in range(200):
            c.sendto(b"b%03d-%03d" % (burst, i), ("127.0.0.1", ports["echo"]))
        got = recv_all(c, 200)
        lost += 200 - len(set(got))
    c.close()
    t.eq(lost, 0, "30 bursts of 200 datagrams at once: every one answered")

    t0 = time.time()
    results = [{} for _ in range(8)]
    threads = [threading.Thread(target=window_load, args=(ports["echo"], QUERIES // 8, 25, r))
               for r in results]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    dt = time.time() - t0
    answered = sum(r.get("answered", 0) for r in results)
    distinct = sum(r.get("distinct", 0) for r in results)
    t.diag("window: %d queries, 8 clients x 25 in flight, %.1f s (%.0f q/s)"
           % (answered, dt, answered / dt))
    t.eq(answered, QUERIES // 8 * 8, "200 queries in flight (8 clients x 25): none lost")
    t.eq(distinct, answered, "... each answer once")
    t.eq(m("l4d_udp_datagrams_dropped_total", "echo"), 0.0, "l4d dropped no datagram")

    # --- sessions expire --------------------------------------------------------------------
    t.ok(wait_until(lambda: m("l4d_udp_sessions_open", "echo") == 0, 6),
         "idle sessions expire (L4D_UDP_IDLE_S=2)")
    t.ok("session closed after" in l4d.logs() and "idle timeout" in l4d.logs(),
         "the expiry is logged with the client's address")
    c = client()
    c.sendto(b"back", ("127.0.0.1", ports["echo"]))
    t.eq(recv_all(c, 1), [b"back"], "a client whose session expired is served again")

    # --- a changed destination applies -------------------------------------------------------
    changed = [base[0], proxy(2, "echo", "udp", ports["echo"], other.port), base[2]]
    t.ok(set_config(changed), "a config changing the echo proxy's backend applies")
    c.sendto(b"where", ("127.0.0.1", ports["echo"]))
    t.eq(recv_all(c, 1), [b"other 1:where"], "the same client now reaches the new backend")
    c.close()

    # --- a removed proxy ----------------------------------------------------------------------
    c = client()
    c.sendto(b"gone?", ("127.0.0.1", ports["gone"]))
    t.eq(recv_all(c, 1), [b"gone?"], "the third proxy forwards")
    t.ok(set_config(changed[:2]), "a config removing it applies")
    t.ok(wait_until(lambda: m("l4d_proxy_listening", "gone") == 0, 3),
         "l4d_proxy_listening of the removed proxy is 0")
    # its session ends with the grace period; then the port is closed
    time.sleep(1.0 * SLOW)
    c.sendto(b"gone?", ("127.0.0.1", ports["gone"]))
    t.eq(recv_all(c, 1, 1.0), [], "the removed proxy answers no more")
    c.close()
    c = client()
    c.sendto(b"x", ("127.0.0.1", ports["twice"]))
    t.eq(sorted(recv_all(c, 2)), [b"1:x", b"2:x"], "the other proxies are untouched")
    c.close()

    # --- the session cap ------------------------------------------------------------------------
    many = [client() for _ in range(80)]
    for i, cl in enumerate(many):
        cl.sendto(b"cap %d" % i, ("127.0.0.1", ports["twice"]))
    answered = sum(len(recv_all(cl, 2, 0.3)) == 2 for cl in many)
    for cl in many:
        cl.close()
    rejected = m("l4d_udp_sessions_rejected_total", "twice")
    t.ok(answered <= 64 and rejected is not None and rejected >= 16 and answered + rejected == 80,
         "past L4D_MAX_SESSIONS=64 new clients are dropped and counted (%d answered, %s "
         "rejected)" % (answered, rejected))

    t.eq(l4d.stop(), 0, "l4d stops cleanly on SIGTERM")
    for b in (twice, echo, other):
        b.close()
t.done()
