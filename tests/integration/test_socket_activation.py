"""Socket activation: dnsd and httpd take their listening sockets from systemd (LISTEN_FDS) when
given them, so a restart refuses no connection and loses no query. This test plays systemd: it
holds the sockets, starts the daemon with them as fds 3, 4, … and LISTEN_PID set to the daemon's
pid, kills it, sends traffic while it is down, and starts it again on the same sockets."""
import http.server
import os
import socket
import subprocess
import threading
import time

import dns.message
import dns.query
import dns.rdatatype

from dfr import BIN, Suite, Tap, fixture_json, free_port, wait_until, SLOW

t = Tap()
ZONE = "example.com"


class Backend(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


def start_activated(s, name, socks, **extra):
    """Starts defenra-<name> with `socks` handed over as systemd does (fds 3.. in order)."""
    env = s.env(name, **extra)
    env["LISTEN_FDS"] = str(len(socks))
    fds = [sk.fileno() for sk in socks]

    def place_fds():
        # In the child: move the sockets to 3, 4, … (dup2 clears close-on-exec).
        tmp = [os.dup(fd) for fd in fds]
        for i, fd in enumerate(tmp):
            os.dup2(fd, 3 + i)
    log = open(os.path.join(s.dir, "%s.activated.log" % name), "ab")
    # LISTEN_PID must be the daemon's own pid: the shell's pid survives exec.
    proc = subprocess.Popen(["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$0"',
                             os.path.join(BIN, "defenra-" + name)],
                            env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, preexec_fn=place_fds, close_fds=False)
    return proc, log


def health(admin):
    import urllib.request
    try:
        with urllib.request.urlopen("http://%s/health" % admin, timeout=1) as r:
            return r.status == 200
    except Exception:
        return False


backend_port = free_port()
backend = http.server.ThreadingHTTPServer(("127.0.0.1", backend_port), Backend)
threading.Thread(target=backend.serve_forever, daemon=True).start()

with Suite() as s:
    cfg = fixture_json("small.json")
    cfg["domains"][0]["dnsRecords"][0]["value"] = "127.0.0.1"  # apex A: the backend
    cfg["domains"][0]["luaCode"] = None
    s.start("syncd", DEFENRA_CONFIG=s.write("config.json", cfg), POLLING_INTERVAL=3600)

    # --- dnsd ------------------------------------------------------------------------------
    port = free_port()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", port))
    tcp.listen(128)
    admin = "127.0.0.1:%d" % free_port()
    dns_env = dict(DNS_LISTEN="127.0.0.1:%d" % port, DNSD_WORKERS=2, DNSD_ADMIN_LISTEN=admin)
    proc, log = start_activated(s, "dnsd", [udp, tcp], **dns_env)
    t.ok(wait_until(lambda: health(admin), 5), "dnsd starts on the sockets handed over")
    q = dns.message.make_query(ZONE, dns.rdatatype.MX)
    r = dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
    t.ok(r.rcode() == 0 and len(r.answer) == 1, "it answers over the inherited UDP socket")
    r = dns.query.tcp(q, "127.0.0.1", port=port, timeout=2)
    t.ok(r.rcode() == 0 and len(r.answer) == 1, "and over the inherited TCP socket")

    proc.kill()
    proc.wait()
    # While dnsd is down the queries wait in the socket systemd (here: the test) holds.
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(5 * SLOW)
    ids = set()
    for i in range(50):
        m = dns.message.make_query(ZONE, dns.rdatatype.MX)
        ids.add(m.id)
        client.sendto(m.to_wire(), ("127.0.0.1", port))
    time.sleep(0.5)
    proc, log = start_activated(s, "dnsd", [udp, tcp], **dns_env)
    answered = 0
    good = 0
    try:
        while answered < len(ids):
            data, _ = client.recvfrom(65535)
            m = dns.message.from_wire(data)
            if m.id in ids:
                answered += 1
                good += m.rcode() == 0 and len(m.answer) == 1
    except socket.timeout:
        pass
    t.eq((answered, good), (len(ids), len(ids)),
         "50 queries sent while dnsd was down are all answered, correctly, after its restart")
    proc.terminate()
    proc.wait(10)
    log.close()
    with open(os.path.join(s.dir, "dnsd.activated.log")) as f:
        logs = f.read()
    t.ok("listening sockets handed over" in logs, "dnsd logs the hand-over")

    # --- httpd -----------------------------------------------------------------------------
    hport = free_port()
    lsn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsn.bind(("127.0.0.1", hport))
    lsn.listen(128)
    hadmin = "127.0.0.1:%d" % free_port()
    http_env = dict(HTTP_LISTEN="127.0.0.1:%d" % hport, HTTPS_LISTEN="127.0.0.1:%d" % free_port(),
                    HTTPD_WORKERS=2, HTTPD_ADMIN_LISTEN=hadmin, HTTPD_UPSTREAM_PORT=backend_port)
    proc, log = start_activated(s, "httpd", [lsn], **http_env)
    t.ok(wait_until(lambda: health(hadmin), 5), "httpd starts on the socket handed over")

    def get():
        c = socket.create_connection(("127.0.0.1", hport), timeout=10 * SLOW)
        c.sendall(b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
        return c

    def status(c):
        data = b""
        try:
            while True:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        c.close()
        return data.split(b" ", 2)[1] if data.startswith(b"HTTP/1.1 ") else data[:40]

    t.eq(status(get()), b"200", "it proxies over the inherited socket")
    proc.kill()
    proc.wait()
    waiting = [get() for _ in range(20)]  # accepted by the kernel into the held backlog
    proc, log = start_activated(s, "httpd", [lsn], **http_env)
    got = [status(c) for c in waiting]
    t.eq(got, [b"200"] * 20, "20 requests made while httpd was down are all answered after its "
         "restart: no connection refused")
    proc.terminate()
    proc.wait(10)
    log.close()

backend.shutdown()
t.done()
