"""A stand-in for defenra-wafd in httpd's tests: a REP server on ipc://RUN_DIR/waf.rep that speaks
NNG's wire protocol (SP over IPC) and the suite's WAF messages (shared/waf_msg.h), with a rule
function written in Python so each test decides the verdicts.

SP over IPC (NNG 1.5): each side sends 8 bytes "\\0SP\\0" + protocol (u16 BE; REQ 0x30, REP
0x31) + 2 zero bytes; then every message is a byte 0x01, a u64 BE length, and the bytes. A
request starts with the REQ's 4-byte request id, which the reply must start with too."""
import os
import socket
import struct
import threading
import time

MAGIC = 0x44465242
T_REQ, T_REP = 16, 17
PASS, RESPOND, ERROR = 0, 1, 2


def _recvn(c, n):
    b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d:
            raise EOFError
        b += d
    return b


def decode_request(buf):
    """The WAF request (dict) in a bus message, or None."""
    magic, version, mtype, gen, base, plen, flags = struct.unpack(">IHHQQII", buf[:32])
    if magic != MAGIC or mtype != T_REQ:
        return None
    p = buf[32:]
    scheme, major, minor, fl, pport, sport = struct.unpack(">BBBBHH", p[:8])
    off = 8

    def s():
        nonlocal off
        n = struct.unpack(">I", p[off:off + 4])[0]
        v = p[off + 4:off + 4 + n]
        off += 4 + n
        return v.decode("latin-1")

    r = {"generation": gen, "peer_port": pport, "server_port": sport}
    for k in ("domain_id", "domain", "host", "method", "target", "peer", "server"):
        r[k] = s()
    n = struct.unpack(">H", p[off:off + 2])[0]
    off += 2
    r["headers"] = [(s(), s()) for _ in range(n)]
    r["body"] = s()
    return r


def encode_verdict(action, status=0, headers=(), body=b"", gen=0):
    def s(v):
        v = v.encode() if isinstance(v, str) else v
        return struct.pack(">I", len(v)) + v
    p = struct.pack(">BBHIH", action, 0 if action != ERROR else 1, status, 0, len(headers))
    for k, v in headers:
        p += s(k) + s(v)
    p += s(body)
    return struct.pack(">IHHQQII", MAGIC, 1, T_REP, gen, 0, len(p), 0) + p


class FakeWaf:
    """rule(req dict) -> (action, status, headers, body), or None for no answer at all."""

    def __init__(self, run_dir, rule):
        self.path = os.path.join(run_dir, "waf.rep")
        self.rule = rule
        self.seen = []
        self.lock = threading.Lock()
        self.conns = []
        self.running = False
        self.start()

    def start(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.running = True
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)
        self.thread.start()

    def stop(self):
        self.running = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                except OSError:
                    pass
            self.conns = []
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def accept_loop(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        send_lock = threading.Lock()
        try:
            c.sendall(b"\0SP\0" + struct.pack(">H", 0x31) + b"\0\0")
            hello = _recvn(c, 8)
            if hello[:4] != b"\0SP\0":
                return
            while self.running:
                kind = _recvn(c, 1)
                n = struct.unpack(">Q", _recvn(c, 8))[0]
                msg = _recvn(c, n)
                # Request id(s): 4-byte words up to one with the high bit set.
                i = 0
                while i + 4 <= len(msg):
                    i += 4
                    if msg[i - 4] & 0x80:
                        break
                hdr, body = msg[:i], msg[i:]
                req = decode_request(body)
                with self.lock:
                    self.seen.append(req)
                threading.Thread(target=self.answer, args=(c, send_lock, hdr, req),
                                 daemon=True).start()
        except (EOFError, OSError):
            pass

    def answer(self, c, send_lock, hdr, req):
        v = self.rule(req) if req else (ERROR, 0, (), b"")
        if v is None:
            return
        if v[0] == "sleep":
            time.sleep(v[1])
            v = v[2]
        out = hdr + encode_verdict(*v, gen=req["generation"] if req else 0)
        try:
            with send_lock:
                c.sendall(b"\x01" + struct.pack(">Q", len(out)) + out)
        except OSError:
            pass
