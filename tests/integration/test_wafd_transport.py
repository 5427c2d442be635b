"""wafd's waf.rep transport (SP over IPC served from wafd's own event loops, docs/waf.md): a raw
SP client written here gets verdicts, pipelined and in order of its ids; an NNG REQ socket
(bench/waf/bench_waf) still does; garbage peers, peers that hang up mid-hello, oversized and
id-less frames close only their own connection (30 rounds each) while another client keeps being
served; a client that does not read its answers is held back without hurting others; the socket
is 0660; a second wafd on the same address refuses to start; a stale socket file of a killed
wafd is replaced; SIGTERM stops wafd within its 2 s bound."""
import json
import os
import socket
import stat
import struct
import subprocess
import time

from dfr import ROOT, SLOW, Suite, Tap, wait_until

t = Tap()
CLIENT = os.path.join(os.path.dirname(os.environ.get("DFR_BIN", os.path.join(ROOT, "build/default/bin"))),
                      "bench", "waf", "bench_waf")
MAGIC, T_REQ, T_REP = 0x44465242, 16, 17
DOM = "6800000000000000000000c1"
LUA = ('if string.find(ngx.var.uri, "/admin", 1, true) then return ngx.exit(403) end\n'
       'ngx.header["X-Seen"] = ngx.var.uri\n')


def s_(v):
    v = v.encode() if isinstance(v, str) else v
    return struct.pack(">I", len(v)) + v


def request(target, gen=1):
    p = struct.pack(">BBBBHH", 0, 1, 1, 0, 40000, 80)
    for v in (DOM, "t.example", "t.example", "GET", target, "192.0.2.1", "127.0.0.1"):
        p += s_(v)
    p += struct.pack(">H", 1) + s_("Host") + s_("t.example") + s_("")
    return struct.pack(">IHHQQII", MAGIC, 1, T_REQ, gen, 0, len(p), 0) + p


def frame(payload):
    return b"\x01" + struct.pack(">Q", len(payload)) + payload


def decode_verdict(body):
    magic, ver, mtype, gen, base, plen, flags = struct.unpack(">IHHQQII", body[:32])
    action, fail, status, vflags, nh = struct.unpack(">BBHIH", body[32:42])
    off, hdrs = 42, []
    for _ in range(nh):
        kv = []
        for _ in range(2):
            n = struct.unpack(">I", body[off:off + 4])[0]
            kv.append(body[off + 4:off + 4 + n].decode())
            off += 4 + n
        hdrs.append(tuple(kv))
    return {"type": mtype, "action": action, "status": status, "headers": hdrs}


class SpClient:
    """A REQ peer speaking SP over IPC by hand."""

    def __init__(self, path, timeout=5.0):
        self.c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.c.settimeout(timeout * SLOW)
        self.c.connect(path)
        self.c.sendall(b"\0SP\0\x00\x30\0\0")
        self.hello = self.recvn(8)

    def recvn(self, n):
        b = b""
        while len(b) < n:
            d = self.c.recv(n - len(b))
            if not d:
                raise EOFError
            b += d
        return b

    def send(self, rid, target):
        self.c.sendall(frame(struct.pack(">I", rid) + request(target)))

    def recv(self):
        kind = self.recvn(1)
        n = struct.unpack(">Q", self.recvn(8))[0]
        m = self.recvn(n)
        return kind, struct.unpack(">I", m[:4])[0], decode_verdict(m[4:])

    def ask(self, rid, target):
        self.send(rid, target)
        return self.recv()

    def close(self):
        self.c.close()


def one_nng(url, target):
    p = subprocess.run([CLIENT, "--url", url, "--one", "--domain-id", DOM, "--domain", "t.example",
                        "--target", target, "--timeout-ms", str(int(3000 * SLOW))],
                       capture_output=True, timeout=30 * SLOW, stdin=subprocess.DEVNULL)
    try:
        return json.loads(p.stdout.decode())
    except ValueError:
        return {"error": p.stdout.decode() + p.stderr.decode()}


def cfg():
    return json.dumps({"success": True, "proxies": [], "domains": [
        {"id": DOM, "domain": "t.example", "records": [], "geoDnsConfig": {"locations": []},
         "httpProxy": {"enabled": True, "type": "both"}, "ssl": {"enabled": False},
         "luaCode": LUA}]})


with Suite() as s:
    path = s.write("config.json", cfg())
    syncd = s.start("syncd", DEFENRA_CONFIG=path, POLLING_INTERVAL=1)
    wafd = s.start("wafd", WAFD_WORKERS=2, LOG_LEVEL="info")
    sock = os.path.join(s.run_dir, "waf.rep")
    url = "ipc://" + sock
    t.ok(wafd.wait_health(10, generation=1), "wafd up with the config", wafd.logs())
    t.eq(oct(stat.S_IMODE(os.stat(sock).st_mode)), "0o660", "waf.rep is mode 0660")

    def policies(proc):
        """Scheduling policy of each thread of proc: {tid: policy}."""
        out = {}
        for tid in os.listdir("/proc/%d/task" % proc.pid):
            try:
                out[int(tid)] = os.sched_getscheduler(int(tid))
            except OSError:
                pass
        return out
    pol = policies(wafd.proc)
    t.ok(sum(1 for v in pol.values() if v == os.SCHED_BATCH) == 2,
         "WAFD_SCHED=batch (default): the 2 workers run under SCHED_BATCH", pol)

    c = SpClient(sock)
    t.eq(c.hello, b"\0SP\0\x00\x31\0\0", "wafd's hello is REP0's")
    kind, rid, v = c.ask(0x80000001, "/x")
    t.ok(kind == b"\x01" and rid == 0x80000001 and v["action"] == 0 and v["type"] == T_REP,
         "raw SP client: a pass verdict carrying its request id", (kind, rid, v))
    t.ok(("X-Seen", "/x") in v["headers"], "the script ran on the request", v)
    kind, rid, v = c.ask(0x80000002, "/admin")
    t.ok(rid == 0x80000002 and v["action"] == 1 and v["status"] == 403, "raw SP client: 403", v)
    # 200 requests in one write: 200 answers, each with its own id and verdict
    ids = [0x80001000 + i for i in range(200)]
    c.c.sendall(b"".join(frame(struct.pack(">I", i) + request("/admin" if i % 2 else "/p"))
                         for i in ids))
    got = [c.recv() for _ in ids]
    t.ok([g[1] for g in got] == ids and
         all((g[2]["status"] == 403) == bool(g[1] % 2) for g in got),
         "200 pipelined requests: answered in order, each verdict its own")
    # a device hop in the backtrace is echoed whole
    c.c.sendall(frame(struct.pack(">II", 7, 0x80000003) + request("/hop")))
    kind = c.recvn(1)
    n = struct.unpack(">Q", c.recvn(8))[0]
    m = c.recvn(n)
    t.eq(struct.unpack(">II", m[:8]), (7, 0x80000003), "a two-word backtrace is echoed")

    v = one_nng(url, "/admin")
    t.ok(v.get("action") == "respond" and v.get("status") == 403, "an NNG REQ socket gets verdicts", v)
    # the benchmark's own SP client (bench_waf --sp): paced, pipelined, every answer matched by id
    p = subprocess.run([CLIENT, "--sp", "--url", url, "--domain-id", DOM, "--domain", "t.example",
                        "--all-pass", "--rate", "2000", "--duration", "1",
                        "--timeout-ms", str(int(3000 * SLOW))],
                       capture_output=True, timeout=30 * SLOW, stdin=subprocess.DEVNULL)
    try:
        r = json.loads(p.stdout.decode())
    except ValueError:
        r = {"error": p.stdout.decode() + p.stderr.decode()}
    # this domain's rule blocks only /admin: the tenth of the mix with that path
    t.ok(r.get("answered") == 2000 and r.get("errors") == 0 and r.get("respond") == 200,
         "bench_waf --sp: 2000 requests at 2000/s, all answered, the /admin tenth blocked", r)

    # abusive peers, 30 rounds of each; c keeps being served in between
    def garbage():
        g = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        g.connect(sock)
        g.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return g

    def half_hello():
        g = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        g.connect(sock)
        g.sendall(b"\0SP")
        g.close()
        return None

    def hang_up():
        g = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        g.connect(sock)
        g.close()
        return None

    def oversize():
        g = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        g.connect(sock)
        g.sendall(b"\0SP\0\x00\x30\0\0" + b"\x01" + struct.pack(">Q", 1 << 40))
        return g

    def no_id():
        g = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        g.connect(sock)
        g.sendall(b"\0SP\0\x00\x30\0\0" + frame(struct.pack(">I", 5) + b"xx"))
        return g

    def wrong_proto():
        g = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        g.connect(sock)
        g.sendall(b"\0SP\0\x00\x31\0\0" + frame(struct.pack(">I", 0x80000001) + request("/")))
        return g

    for name, fn, closes in (("garbage", garbage, True), ("half hello", half_hello, False),
                             ("hang-up", hang_up, False), ("oversized frame", oversize, True),
                             ("frame without an id", no_id, True),
                             ("REP peer", wrong_proto, True)):
        served, closed = 0, 0
        for i in range(30):
            g = fn()
            if g is not None:
                g.settimeout(3 * SLOW)
                try:
                    data = b""
                    while True:
                        d = g.recv(4096)
                        if not d:
                            break
                        data += d
                    closed += data in (b"", b"\0SP\0\x00\x31\0\0")
                except (socket.timeout, OSError):
                    pass
                g.close()
            kind, rid, v = c.ask(0x80002000 + i, "/after")
            served += rid == 0x80002000 + i and v["action"] == 0
        t.eq(served, 30, "%s x30: the other client is served after each" % name)
        if closes:
            t.eq(closed, 30, "%s x30: wafd closes that connection (nothing but its hello sent)"
                 % name)
    t.ok((wafd.metric("wafd_peer_errors_total") or 0) >= 120, "protocol errors counted",
         wafd.metric("wafd_peer_errors_total"))
    t.ok(wafd.alive(), "wafd alive after the abuse")
    c2 = SpClient(sock)
    t.eq(c2.ask(0x80000009, "/new")[2]["action"], 0, "a new client is served after the abuse")

    # a client that sends a lot and reads nothing: held back, others unaffected; then it reads all
    slow = SpClient(sock)
    n_slow = 20000
    blob = b"".join(frame(struct.pack(">I", 0x80100000 + i) + request("/s%d" % i))
                    for i in range(n_slow))
    slow.c.setblocking(False)
    sent = 0
    t0 = time.time()
    while sent < len(blob) and time.time() - t0 < 3:
        try:
            sent += slow.c.send(blob[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.01)
    t.ok(sent < len(blob), "a client that does not read is held back (sent %d of %d bytes)"
         % (sent, len(blob)))
    kind, rid, v = c2.ask(0x8000000a, "/meanwhile")
    t.ok(rid == 0x8000000a and v["action"] == 0, "meanwhile another client is served")
    slow.c.setblocking(True)
    slow.c.settimeout(10 * SLOW)
    got, ok_order = 0, True
    try:
        while got < n_slow:
            if sent < len(blob):
                slow.c.setblocking(False)
                try:
                    sent += slow.c.send(blob[sent:sent + 65536])
                except BlockingIOError:
                    pass
                slow.c.setblocking(True)
                slow.c.settimeout(10 * SLOW)
            kind, rid, v = slow.recv()
            ok_order = ok_order and rid == 0x80100000 + got
            got += 1
    except (EOFError, socket.timeout, OSError) as e:
        t.diag("slow client: %r" % e)
    t.ok(got == n_slow and ok_order, "then it gets all %d answers, in order (%d)" % (n_slow, got))
    slow.close()

    # the same, but the peer half-closes while its answers are backed up: wafd drops it and
    # does not spin on the hang-up
    def cpu_ticks(pid):
        with open("/proc/%d/stat" % pid) as f:
            x = f.read().rsplit(")", 1)[1].split()
        return int(x[11]) + int(x[12])

    hc = SpClient(sock)
    hc.c.setblocking(False)
    sent = 0
    t0 = time.time()
    while sent < len(blob) and time.time() - t0 < 3:
        try:
            sent += hc.c.send(blob[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.01)
    hc.c.shutdown(socket.SHUT_WR)
    time.sleep(0.3)
    before = cpu_ticks(wafd.proc.pid)
    time.sleep(1.0)
    used = (cpu_ticks(wafd.proc.pid) - before) / os.sysconf("SC_CLK_TCK")
    t.ok(used < 0.3, "a half-closed peer that does not read: wafd idle (%.2f s CPU in 1 s)" % used)
    hc.close()
    kind, rid, v = c2.ask(0x8000000b, "/still")
    t.ok(rid == 0x8000000b and v["action"] == 0, "and still serves the others")
    c.close()
    c2.close()

    # a second wafd on the same address refuses; the first keeps serving
    second = s.start("wafd", WAFD_WORKERS=1)
    try:
        rc = second.proc.wait(10 * SLOW)
    except subprocess.TimeoutExpired:
        rc = None
    t.ok(rc not in (0, None), "a second wafd on the same waf.rep refuses to start (%s)" % rc)
    t.ok("another wafd" in second.logs(), "and says why", second.logs()[-500:])
    t.eq(one_nng(url, "/").get("action"), "pass", "the first wafd still serves")

    # killed: the socket file stays; a new wafd replaces it
    wafd.kill()
    t.ok(os.path.exists(sock), "a killed wafd leaves its socket file")
    wafd.env["WAFD_SCHED"] = "normal"
    wafd.start()
    t.ok(wafd.wait_health(10, generation=1), "a new wafd starts over the stale socket file",
         wafd.logs()[-800:])
    pol = policies(wafd.proc)
    t.ok(pol and all(v == os.SCHED_OTHER for v in pol.values()),
         "WAFD_SCHED=normal: no thread under SCHED_BATCH", pol)
    t.ok(wait_until(lambda: one_nng(url, "/admin").get("status") == 403, 5 * SLOW),
         "and serves verdicts")
    t0 = time.time()
    rc = wafd.stop()
    took = time.time() - t0
    t.eq(rc, 0, "SIGTERM: wafd exits 0")
    t.ok(took < 2.5 * SLOW, "within the 2 s bound (%.2f s)" % took)
    t.ok(not os.path.exists(sock), "and removes its socket")
t.done()
