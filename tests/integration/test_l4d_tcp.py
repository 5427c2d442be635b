#!/usr/bin/python3
"""l4d, TCP forwarding: syncd in file mode feeds l4d; Python backends on loopback.

Cases: echo; 1 GB each way at once with checksums (256 MB when DFR_SLOW > 1, or L4D_TEST_BYTES)
with half-close in both directions; 1,000 concurrent connections; a slow reader (the backend is
held back, l4d's memory stays bounded); a backend that is down (the client is closed promptly);
PROXY protocol v2; a proxy added and removed while another carries traffic without an error; a
port already in use (logged, l4d_proxy_listening 0, retried); the read/write path (L4D_SPLICE=0)
with an idle timeout.
"""
import json
import os
import selectors
import signal
import socket
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dfr import SLOW, Suite, Tap, free_port, wait_until  # noqa: E402

MB = 1024 * 1024
BULK = int(os.environ.get("L4D_TEST_BYTES", str(1024 * MB if SLOW <= 1 else 256 * MB)))
CHUNK = 4 * MB


def proxy(pid, name, typ, sport, dport, host="127.0.0.1", enabled=True):
    return {"id": "%024x" % pid, "name": name, "type": typ, "sourcePort": sport,
            "destinationHost": host, "destinationPort": dport, "enabled": enabled}


def config(proxies):
    return json.dumps({"success": True, "domains": [], "proxies": proxies})


class Echo:
    """Echo server for many connections in one thread (selectors)."""

    def __init__(self):
        self.port = free_port()
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", self.port))
        self.ls.listen(4096)
        self.ls.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.ls, selectors.EVENT_READ)
        self.stop = False
        self.accepted = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            for key, _ in self.sel.select(0.1):
                if key.fileobj is self.ls:
                    try:
                        while True:
                            c, _ = self.ls.accept()
                            c.setblocking(False)
                            self.accepted += 1
                            self.sel.register(c, selectors.EVENT_READ)
                    except BlockingIOError:
                        pass
                    continue
                c = key.fileobj
                try:
                    data = c.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.sel.unregister(c)
                    c.close()
                    continue
                c.setblocking(True)  # small echoes: the client reads them
                try:
                    c.sendall(data)
                except OSError:
                    pass
                c.setblocking(False)

    def close(self):
        self.stop = True
        self.thread.join(2)


def stream(nbytes, seed):
    """The pattern of a bulk transfer: 4 MB of random data, rotated differently per chunk."""
    base = os.urandom(CHUNK)
    mv = memoryview(base)
    sent = 0
    i = 0
    while sent < nbytes:
        off = (i * 4093 + seed) % CHUNK
        for part in (mv[off:], mv[:off]):
            part = part[:nbytes - sent]
            if len(part):
                yield part
                sent += len(part)
        i += 1


def send_stream(sock, nbytes, seed, result):
    crc = 0
    try:
        for part in stream(nbytes, seed):
            sock.sendall(part)
            crc = zlib.crc32(part, crc)
        sock.shutdown(socket.SHUT_WR)  # half-close: the peer reads EOF, may still answer
        result["sent_crc"] = crc
    except OSError as e:
        result["send_err"] = repr(e)


def recv_stream(sock, result, key):
    crc = 0
    n = 0
    buf = bytearray(MB)
    try:
        while True:
            k = sock.recv_into(buf)
            if k == 0:
                break
            crc = zlib.crc32(memoryview(buf)[:k], crc)
            n += k
    except OSError as e:
        result[key + "_err"] = repr(e)
    result[key + "_crc"] = crc
    result[key + "_n"] = n


class Bulk:
    """Backend for the 1 GB case: reads everything (checksum) while sending its own stream."""

    def __init__(self, nbytes):
        self.port = free_port()
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", self.port))
        self.ls.listen(8)
        self.nbytes = nbytes
        self.res = {}
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        c, _ = self.ls.accept()
        sender = threading.Thread(target=send_stream, args=(c, self.nbytes, 7, self.res))
        sender.start()
        recv_stream(c, self.res, "got")
        sender.join()
        c.close()


class Source:
    """Backend that pushes nbytes as fast as the client lets it; counts what it got out."""

    def __init__(self, nbytes):
        self.port = free_port()
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", self.port))
        self.ls.listen(8)
        self.nbytes = nbytes
        self.sent = 0
        self.crc = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        c, _ = self.ls.accept()
        try:
            for part in stream(self.nbytes, 3):
                while len(part):
                    k = c.send(part[:256 * 1024])
                    self.crc = zlib.crc32(part[:k], self.crc)
                    self.sent += k
                    part = part[k:]
        except OSError:
            pass
        c.close()


class HalfClose:
    """Backend: greets, shuts its sending side, then reads to EOF and records what came."""

    def __init__(self):
        self.port = free_port()
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", self.port))
        self.ls.listen(8)
        self.got = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            c.sendall(b"hello, I send no more")
            c.shutdown(socket.SHUT_WR)
            data = b""
            while True:
                k = c.recv(65536)
                if not k:
                    break
                data += k
            self.got.append(data)
            c.close()


class PP2:
    """Backend that keeps the first 28 bytes it gets (the PROXY v2 header), then echoes."""

    def __init__(self):
        self.port = free_port()
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", self.port))
        self.ls.listen(8)
        self.headers = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        c, _ = self.ls.accept()
        hdr = b""
        while len(hdr) < 28:
            k = c.recv(28 - len(hdr))
            if not k:
                break
            hdr += k
        self.headers.append(hdr)
        while True:
            k = c.recv(65536)
            if not k:
                break
            c.sendall(k)
        c.close()


def echo_once(port, msg, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW) as c:
        c.sendall(msg)
        got = b""
        while len(got) < len(msg):
            k = c.recv(65536)
            if not k:
                break
            got += k
        return got


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def metric(d, name, labels):
    return d.metric('%s{%s}' % (name, labels))


t = Tap()
with Suite() as s:
    echo = Echo()
    bulk = Bulk(BULK)
    source = Source(256 * MB)
    half = HalfClose()
    pp2 = PP2()
    dead_port = free_port()
    ports = {k: free_port() for k in ("echo", "bulk", "source", "half", "dead", "pp2", "added",
                                      "busy", "stuck")}
    # A backend whose accept queue is full: SYNs to it are dropped, connects hang.
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(0)
    stuck_port = stuck.getsockname()[1]
    fillers = []
    for _ in range(3):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(("127.0.0.1", stuck_port))
        fillers.append(f)
    base = [
        proxy(1, "echo", "tcp", ports["echo"], echo.port),
        proxy(2, "bulk", "tcp", ports["bulk"], bulk.port),
        proxy(3, "source", "tcp", ports["source"], source.port, host="localhost"),
        proxy(4, "half", "tcp", ports["half"], half.port),
        proxy(5, "dead", "tcp", ports["dead"], dead_port),
        proxy(6, "pp2", "tcp", ports["pp2"], pp2.port),
        proxy(9, "stuck", "tcp", ports["stuck"], stuck_port),
    ]
    cfg_path = s.write("config.json", config(base))
    syncd = s.start("syncd", DEFENRA_CONFIG=cfg_path, POLLING_INTERVAL=1)
    l4d = s.start("l4d", L4_BIND="127.0.0.1", L4D_GRACE_MS=1000,
                  L4D_PROXY_PROTOCOL_PORTS="%d" % ports["pp2"])
    t.ok(l4d.wait_health(generation=1, timeout=10), "l4d applies the first config",
         l4d.logs())

    def set_config(proxies):
        gen = l4d.generation()
        tmp = cfg_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(config(proxies))
        os.rename(tmp, cfg_path)
        syncd.proc.send_signal(signal.SIGHUP)
        return l4d.wait_health(generation=gen + 1, timeout=10)

    # --- echo -------------------------------------------------------------------------------
    t.eq(wait_until(lambda: echo_once(ports["echo"], b"ping\n"), 5), b"ping\n",
         "a line comes back through the TCP proxy")

    # --- 1 GB each way at once, half-close passed on ---------------------------------------
    t0 = time.time()
    res = {}
    c = socket.create_connection(("127.0.0.1", ports["bulk"]), timeout=60 * SLOW)
    sender = threading.Thread(target=send_stream, args=(c, BULK, 11, res))
    sender.start()
    recv_stream(c, res, "back")
    sender.join()
    c.close()
    bulk.thread.join(60 * SLOW)
    dt = time.time() - t0
    t.diag("bulk: %d MB each way in %.1f s (%.0f MB/s each way)" % (BULK // MB, dt,
                                                                    BULK / MB / dt))
    t.eq(bulk.res.get("got_n"), BULK, "the backend receives every byte of the client's stream")
    t.eq(bulk.res.get("got_crc"), res.get("sent_crc"), "... intact (checksum)")
    t.eq(res.get("back_n"), BULK, "the client receives every byte of the backend's stream")
    t.eq(res.get("back_crc"), bulk.res.get("sent_crc"), "... intact (checksum)")
    t.ok(wait_until(lambda: metric(l4d, "l4d_bytes_from_client_total", 'proxy="bulk"') == BULK,
                    3), "bytes from the client are counted")

    # --- half-close, the other way: the backend stops sending first ------------------------
    with socket.create_connection(("127.0.0.1", ports["half"]), timeout=5 * SLOW) as c:
        got = b""
        while True:
            k = c.recv(65536)
            if not k:
                break
            got += k
        t.eq(got, b"hello, I send no more", "the backend's half-close reaches the client as EOF")
        c.sendall(b"but I still talk")
        c.shutdown(socket.SHUT_WR)
        t.eq(c.recv(10), b"", "and the client's EOF closes the connection")
    t.ok(wait_until(lambda: half.got == [b"but I still talk"], 5),
         "the client's bytes after the backend's half-close arrive", half.got)

    # --- 1,000 concurrent connections ------------------------------------------------------
    conns = []
    t0 = time.time()
    for i in range(1000):
        c = socket.create_connection(("127.0.0.1", ports["echo"]), timeout=10 * SLOW)
        conns.append(c)
    for i, c in enumerate(conns):
        c.sendall(b"conn %d\n" % i)
    good = 0
    for i, c in enumerate(conns):
        want = b"conn %d\n" % i
        got = b""
        try:
            while len(got) < len(want):
                k = c.recv(100)
                if not k:
                    break
                got += k
        except OSError:
            pass
        good += got == want
    t.eq(good, 1000, "1,000 concurrent connections each get their own echo")
    t.ok(wait_until(lambda: metric(l4d, "l4d_connections_open", 'proxy="echo"') == 1000, 5),
         "l4d_connections_open shows 1,000")
    for c in conns:
        c.close()
    t.ok(wait_until(lambda: metric(l4d, "l4d_connections_open", 'proxy="echo"') == 0, 10),
         "... and 0 once they are closed")
    t.diag("1,000 connections in %.1f s" % (time.time() - t0))

    # --- slow reader: back-pressure, bounded memory -----------------------------------------
    rss0 = rss_kb(l4d.proc.pid)
    c = socket.create_connection(("127.0.0.1", ports["source"]), timeout=30 * SLOW)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    time.sleep(1.5)
    wait_until(lambda: False, 0.5)  # let the backend fill every buffer on the way
    held = source.sent
    rss1 = rss_kb(l4d.proc.pid)
    t.ok(held < 48 * MB, "a client that does not read holds the backend back (%d MB sent of 256)"
         % (held // MB))
    t.ok(rss1 - rss0 < 16 * 1024, "l4d's memory stays bounded (RSS %d -> %d kB)" % (rss0, rss1))
    res = {}
    recv_stream(c, res, "slow")
    c.close()
    source.thread.join(10 * SLOW)
    t.eq(res.get("slow_n"), 256 * MB, "once it reads, the slow client gets everything")
    t.eq(res.get("slow_crc"), source.crc, "... intact")

    # --- a backend that is down ---------------------------------------------------------------
    t0 = time.time()
    c = socket.create_connection(("127.0.0.1", ports["dead"]), timeout=5 * SLOW)
    cport = c.getsockname()[1]
    try:
        c.sendall(b"anyone?")
        got = c.recv(10)
    except OSError:
        got = b""
    c.close()
    t.ok(got == b"" and time.time() - t0 < 2 * SLOW,
         "a client of a dead backend is closed promptly (%.2f s)" % (time.time() - t0))
    t.ok(wait_until(lambda: (metric(l4d, "l4d_connect_failures_total", 'proxy="dead"') or 0) >= 1,
                    3), "the connect failure is counted")
    t.ok(wait_until(lambda: "client 127.0.0.1:%d" % cport in l4d.logs(), 3),
         "the log names the client's address")

    # --- PROXY protocol v2 ------------------------------------------------------------------
    with socket.create_connection(("127.0.0.1", ports["pp2"]), timeout=5 * SLOW) as c:
        c.sendall(b"after the header")
        got = c.recv(100)
        caddr = c.getsockname()
    hdr = pp2.headers[0] if pp2.headers else b""
    t.eq(got, b"after the header", "PROXY v2 proxy: the client's bytes follow the header")
    t.eq(hdr[:13], b"\r\n\r\n\x00\r\nQUIT\n\x21", "the backend gets a PROXY v2 header")
    t.eq(hdr[13:16], b"\x11\x00\x0c", "... TCP over IPv4, 12 address bytes")
    t.eq((socket.inet_ntoa(hdr[16:20]), int.from_bytes(hdr[24:26], "big")) if len(hdr) == 28
         else None, caddr, "... carrying the client's address and port")

    # --- a proxy added and removed while another carries traffic ----------------------------
    traffic = {"ok": 0, "err": [], "stop": False}

    def run_traffic():
        long = socket.create_connection(("127.0.0.1", ports["echo"]), timeout=5 * SLOW)
        i = 0
        while not traffic["stop"]:
            try:
                msg = b"long %d\n" % i
                long.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    k = long.recv(100)
                    if not k:
                        raise OSError("closed")
                    got += k
                if got != msg:
                    raise OSError("wrong echo %r" % got)
                if echo_once(ports["echo"], b"short %d\n" % i) != b"short %d\n" % i:
                    raise OSError("short echo wrong")
                traffic["ok"] += 1
            except OSError as e:
                traffic["err"].append(repr(e))
            i += 1
        long.close()

    th = threading.Thread(target=run_traffic)
    th.start()
    added = proxy(7, "added", "tcp", ports["added"], echo.port)
    t.ok(set_config(base + [added]), "a config adding a proxy applies")
    t.eq(wait_until(lambda: echo_once(ports["added"], b"new\n"), 5), b"new\n",
         "the added proxy forwards")
    held = socket.create_connection(("127.0.0.1", ports["added"]), timeout=5 * SLOW)
    held.sendall(b"x")
    held.recv(1)
    t0 = time.time()
    t.ok(set_config(base), "a config removing it applies")
    refused = False
    try:
        socket.create_connection(("127.0.0.1", ports["added"]), timeout=2).close()
    except ConnectionRefusedError:
        refused = True
    t.ok(refused, "the removed proxy takes no new connection")
    try:
        held.settimeout(10 * SLOW)
        end = held.recv(10)
    except OSError:
        end = b""
    dt = time.time() - t0
    held.close()
    t.ok(end == b"" and 0.5 <= dt <= 4 * SLOW,
         "its open connection is closed after the grace period (%.2f s, L4D_GRACE_MS=1000)" % dt)
    time.sleep(0.3)
    traffic["stop"] = True
    th.join(10)
    t.ok(traffic["ok"] > 20 and not traffic["err"],
         "the other proxy carried traffic all along without an error (%d exchanges)"
         % traffic["ok"], traffic["err"][:5])

    # --- a port already in use ------------------------------------------------------------------
    squat = socket.socket()
    squat.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squat.bind(("127.0.0.1", ports["busy"]))
    squat.listen(1)
    busy = proxy(8, "busy-port", "tcp", ports["busy"], echo.port)
    t.ok(set_config(base + [busy]), "a config with a port already in use applies")
    line = "l4, proxy busy-port tcp :%d cannot listen (Address already in use)" % ports["busy"]
    t.ok(wait_until(lambda: line in l4d.logs(), 5), "the bind failure is logged", line)
    t.eq(metric(l4d, "l4d_proxy_listening", 'proxy="busy-port"'), 0.0,
         "l4d_proxy_listening{proxy=\"busy-port\"} is 0")
    t.eq(metric(l4d, "l4d_proxy_listening", 'proxy="echo"'), 1.0, "the other proxies listen")
    t.eq(echo_once(ports["echo"], b"still\n"), b"still\n", "... and forward")
    squat.close()
    t.ok(wait_until(lambda: metric(l4d, "l4d_proxy_listening", 'proxy="busy-port"') == 1.0, 5),
         "once the port is free, the proxy listens (retried)")
    t.eq(wait_until(lambda: echo_once(ports["busy"], b"late\n"), 5), b"late\n",
         "... and forwards")

    t.eq(l4d.stop(), 0, "l4d stops cleanly on SIGTERM")

    # --- the read/write path, the caps and the timeouts ------------------------------------
    l4b = s.start("l4d", L4_BIND="127.0.0.1", L4D_SPLICE=0, L4D_IDLE_TIMEOUT_S=2,
                  L4D_MAX_CONNS=2, L4D_CONNECT_TIMEOUT_MS=700)
    t.ok(l4b.wait_health(timeout=10), "l4d with L4D_SPLICE=0 starts")
    big = os.urandom(8 * MB)
    with socket.create_connection(("127.0.0.1", ports["echo"]), timeout=10 * SLOW) as c:
        sender = threading.Thread(target=lambda: (c.sendall(big), c.shutdown(socket.SHUT_WR)))
        sender.start()
        got = bytearray()
        while True:
            k = c.recv(MB)
            if not k:
                break
            got += k
        sender.join()
    t.ok(bytes(got) == big, "8 MB echo through the read/write path arrives intact")
    t.ok(wait_until(lambda: l4b.metric('l4d_connections_open{proxy="echo"}') == 0, 3),
         "its connection is gone")
    two = [socket.create_connection(("127.0.0.1", ports["echo"]), timeout=5 * SLOW)
           for _ in range(2)]
    for i, c in enumerate(two):
        c.sendall(b"%d" % i)
        c.recv(10)
    c = socket.create_connection(("127.0.0.1", ports["echo"]), timeout=5 * SLOW)
    try:
        c.sendall(b"3")
        third = c.recv(10)
    except OSError:
        third = b""
    c.close()
    t.eq(third, b"", "past L4D_MAX_CONNS=2 a third client is closed at once")
    t.ok(wait_until(lambda: l4b.metric('l4d_connections_rejected_total{proxy="echo"}') == 1, 3),
         "... and counted")
    for c in two:
        c.close()
    t0 = time.time()
    c = socket.create_connection(("127.0.0.1", ports["stuck"]), timeout=10 * SLOW)
    try:
        end = c.recv(10)
    except OSError:
        end = b""
    c.close()
    dt = time.time() - t0
    t.ok(end == b"" and 0.5 <= dt < 3 * SLOW,
         "a backend that never accepts: the client is closed at L4D_CONNECT_TIMEOUT_MS=700 "
         "(%.2f s)" % dt)
    t.ok(wait_until(lambda: "backend connect timed out" in l4b.logs(), 3),
         "the timeout is logged")
    c = socket.create_connection(("127.0.0.1", ports["echo"]), timeout=10 * SLOW)
    t0 = time.time()
    try:
        end = c.recv(10)
    except OSError:
        end = b""
    c.close()
    dt = time.time() - t0
    t.ok(end == b"" and 0.9 <= dt < 5 * SLOW,
         "an idle connection is closed after L4D_IDLE_TIMEOUT_S=2 (%.1f s)" % dt)
    t.eq(l4b.stop(), 0, "it stops cleanly")

    # --- an IPv6 listener -----------------------------------------------------------------
    l4c = s.start("l4d", L4_BIND="::1")
    t.ok(l4c.wait_health(timeout=10), "l4d with L4_BIND=::1 starts")

    def echo6():
        with socket.create_connection(("::1", ports["echo"]), timeout=5 * SLOW) as c:
            c.sendall(b"over v6\n")
            return c.recv(100), c.getsockname()[1]
    got6 = wait_until(echo6, 5)
    t.eq(got6[0] if got6 else None, b"over v6\n", "an IPv6 client reaches the IPv4 backend")
    t.ok(got6 and wait_until(lambda: "client [::1]:%d" % got6[1] in l4c.logs(), 3),
         "the log names the IPv6 client")
    t.eq(l4c.stop(), 0, "it stops cleanly")
    echo.close()
    for f in fillers:
        f.close()
    stuck.close()
t.done()
