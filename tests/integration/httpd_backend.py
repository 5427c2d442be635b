"""Helpers for the httpd integration tests: a threaded test backend, configs, raw HTTP.

The backend (Backend) answers on 127.0.0.1:<port>:
  /echo...          JSON of what it saw: method, target, headers (in order, repeats kept),
                    body length and sha256 (the body is read whole, Content-Length or chunked)
  /big?n=N          N bytes of body with Content-Length, written in 64 KiB pieces
  /chunked?n=N      N bytes in chunks of 1000
  /eof?n=N          N bytes, no length: the connection closes at the end
  /slow?ms=M        answers after M ms
  /status?code=C    an empty answer with that status
  ?delay_ms=D       (any path) sleeps D ms after each piece of body read (a slow backend)
  /ws               WebSocket handshake, then echoes every frame (text/binary) unmasked
  /hdrs?n=N         answers with repeated headers Set-Cookie a, b and X-Multi 1, 2, then
                    N more (X-Many-i: vi-xxx…, 40 x's each)
  /once             answers, then closes that connection when the next request arrives on it
"""
import base64
import hashlib
import json
import os
import socket
import socketserver
import threading
import time
import urllib.parse

from dfr import free_port, wait_until, SLOW

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class _Handler(socketserver.StreamRequestHandler):
    rbufsize = 65536

    def read_head(self):
        line = self.rfile.readline(65537)
        if not line:
            return None
        method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        headers = []
        while True:
            h = self.rfile.readline(65537).decode("latin-1")
            if h in ("\r\n", "\n", ""):
                break
            name, value = h.rstrip("\r\n").split(":", 1)
            headers.append([name, value.strip()])
        return method, target, version, headers

    @staticmethod
    def hget(headers, name):
        for k, v in headers:
            if k.lower() == name:
                return v
        return None

    def body_iter(self, headers):
        te = self.hget(headers, "transfer-encoding")
        if te and "chunked" in te.lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left:
                    d = self.rfile.read(min(left, 1 << 20))
                    if not d:
                        return
                    left -= len(d)
                    yield d
                self.rfile.readline()
        n = int(self.hget(headers, "content-length") or 0)
        while n:
            d = self.rfile.read(min(n, 1 << 20))
            if not d:
                return
            n -= len(d)
            yield d

    def send(self, status, body=b"", headers=(), length=True):
        out = ["HTTP/1.1 %d X" % status]
        for k, v in headers:
            out.append("%s: %s" % (k, v))
        if length:
            out.append("Content-Length: %d" % len(body))
        self.wfile.write(("\r\n".join(out) + "\r\n\r\n").encode() + body)
        self.wfile.flush()

    def handle(self):
        srv = self.server.backend
        while True:
            try:
                head = self.read_head()
            except (ValueError, OSError):
                return
            if head is None:
                return
            method, target, version, headers = head
            if getattr(self, "drop_next", False):
                srv.dropped += 1
                return  # close a kept-alive connection without answering
            srv.requests.append((method, target, headers))
            u = urllib.parse.urlsplit(target)
            q = dict(urllib.parse.parse_qsl(u.query))
            path = u.path
            if path == "/ws":
                self.websocket(headers)
                return
            h = hashlib.sha256()
            n = 0
            delay = int(q.get("delay_ms", "0")) / 1000.0
            for d in self.body_iter(headers):
                h.update(d)
                n += len(d)
                if delay:
                    time.sleep(delay)
            if path.startswith("/big"):
                size = int(q.get("n", "0"))
                self.wfile.write(("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size).encode())
                block = b"x" * 65536
                while size:
                    k = min(size, len(block))
                    self.wfile.write(block[:k])
                    size -= k
                self.wfile.flush()
            elif path.startswith("/chunked"):
                size = int(q.get("n", "0"))
                self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                while size:
                    k = min(size, 1000)
                    self.wfile.write(b"%x\r\n%s\r\n" % (k, b"c" * k))
                    size -= k
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            elif path.startswith("/eof"):
                size = int(q.get("n", "0"))
                self.wfile.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"e" * size)
                self.wfile.flush()
                return
            elif path.startswith("/slow"):
                time.sleep(int(q.get("ms", "1000")) / 1000.0)
                self.send(200, b"slow\n")
            elif path.startswith("/once"):
                self.send(200, b"once\n")
                self.drop_next = True
            elif path.startswith("/status"):
                self.send(int(q.get("code", "200")))
            elif path.startswith("/hdrs"):
                extra = [("X-Many-%d" % i, "v%d-" % i + "x" * 40)
                         for i in range(int(q.get("n", "0")))]
                self.send(200, b"h\n", [("Set-Cookie", "a=1"), ("X-Multi", "1"),
                                        ("Set-Cookie", "b=2"), ("X-Multi", "2")] + extra)
            else:
                doc = {"method": method, "target": target, "version": version,
                       "headers": headers, "body_len": n, "body_sha256": h.hexdigest(),
                       "peer": self.client_address[0]}
                self.send(200, json.dumps(doc).encode(), [("Content-Type", "application/json")])
            if (self.hget(headers, "connection") or "").lower() == "close":
                return

    def websocket(self, headers):
        key = self.hget(headers, "sec-websocket-key") or ""
        acc = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % acc).encode())
        self.wfile.flush()
        while True:
            frame = ws_read_frame(self.rfile)
            if frame is None:
                return
            op, payload = frame
            if op == 8:
                self.wfile.write(ws_frame(8, payload, mask=False))
                self.wfile.flush()
                return
            self.wfile.write(ws_frame(op, payload, mask=False))
            self.wfile.flush()


def ws_frame(op, payload, mask=True):
    b = bytearray([0x80 | op])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        b.append(mbit | n)
    elif n < 65536:
        b.append(mbit | 126)
        b += n.to_bytes(2, "big")
    else:
        b.append(mbit | 127)
        b += n.to_bytes(8, "big")
    if mask:
        key = os.urandom(4)
        b += key
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return bytes(b) + payload


def ws_read_frame(f):
    h = f.read(2)
    if len(h) < 2:
        return None
    op = h[0] & 0x0F
    n = h[1] & 0x7F
    masked = h[1] & 0x80
    if n == 126:
        n = int.from_bytes(f.read(2), "big")
    elif n == 127:
        n = int.from_bytes(f.read(8), "big")
    key = f.read(4) if masked else None
    payload = f.read(n)
    if key:
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return op, payload


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class Backend:
    """The test backend on host:port (port from free_port() unless given)."""

    def __init__(self, host="127.0.0.1", port=None):
        self.host = host
        self.port = port or free_port()
        self.requests = []
        self.dropped = 0
        self.server = _Server((host, self.port), _Handler)
        self.server.backend = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def domain(name, records, http_type="both", lua=None, acme=None, dom_id=None):
    """A Core domain object; records are (name, type, value, proxied)."""
    dom_id = dom_id or hashlib.md5(name.encode()).hexdigest()[:24]
    recs = []
    for i, (n, t, v, p) in enumerate(records):
        recs.append({"id": "%s%04d" % (dom_id[:20], i), "name": n, "type": t, "value": v,
                     "ttl": 60, "priority": None, "httpProxyEnabled": p})
    token, keyauth = acme or ("", "")
    return {"id": dom_id, "domain": name, "description": "", "dnsRecords": recs,
            "geoDnsLocations": [], "httpProxy": {"type": http_type, "antiDDoS": None},
            "ssl": {"enabled": False, "certificate": None, "privateKey": None,
                    "autoRenew": False,
                    "acmeHttpChallenge": {"token": token, "keyAuthorization": keyauth}},
            "luaCode": lua}


def config(domains):
    return json.dumps({"success": True, "message": "ok", "timestamp": "2026-11-24T10:00:00.000Z",
                       "agent": {"id": "agent_t", "name": "t", "pollingInterval": 60,
                                 "inactivityThreshold": 300},
                       "domains": domains, "proxies": [], "stats": {}, "nextPollInterval": None})


def start_proxy(s, cfg_text, backend_port, **env):
    """syncd in file mode + httpd on a free port; returns (syncd, httpd, http_port, cfg_path)."""
    path = s.write("config.json", cfg_text)
    syncd = s.start("syncd", DEFENRA_CONFIG=path, POLLING_INTERVAL=1)
    port = free_port()
    extra = {"HTTP_LISTEN": "127.0.0.1:%d" % port, "HTTPD_UPSTREAM_PORT": backend_port,
             "LOG_LEVEL": os.environ.get("DFR_LOG_LEVEL", "info")}
    extra.update(env)
    httpd = s.start("httpd", **extra)
    return syncd, httpd, port, path


def raw(port, data, timeout=5.0, until_close=False, want=None):
    """Sends bytes, returns what came back (until close, or until `want` bytes, or a pause)."""
    c = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    try:
        c.sendall(data)
        out = b""
        c.settimeout((timeout if until_close else 0.5) * SLOW)
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            try:
                d = c.recv(65536)
            except socket.timeout:
                if until_close or (want is not None and len(out) < want):
                    continue
                break
            if not d:
                break
            out += d
            if want is not None and len(out) >= want and not until_close:
                break
        return out
    finally:
        c.close()


def responses(data):
    """Splits a byte stream of responses with Content-Length into [(status, headers, body)]."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        hdrs = [tuple(x.split(": ", 1)) for x in lines[1:]]
        n = 0
        for k, v in hdrs:
            if k.lower() == "content-length":
                n = int(v)
        out.append((status, hdrs, rest[:n]))
        data = rest[n:]
    return out


def get(port, host, path="/echo", headers=(), method="GET", body=None, timeout=5.0):
    """One request on its own connection with http.client: (status, headers list, body)."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * SLOW)
    try:
        c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        c.putheader("Host", host)
        for k, v in headers:
            c.putheader(k, v)
        if body is not None:
            c.putheader("Content-Length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        return r.status, r.getheaders(), r.read()
    except Exception as e:  # noqa
        return 0, [], str(e).encode()
    finally:
        c.close()


def wait_routes(port, host, timeout=5.0):
    """Waits until httpd routes `host` (anything but 404)."""
    return wait_until(lambda: get(port, host, "/status?code=204")[0] not in (0, 404), timeout)
