"""The whole suite under load on DNS, HTTP and L4 at once, with a fake Core: each daemon in turn is
killed with SIGKILL and started again. The others lose nothing, and the restarted one serves the
current config within 2 s. Then syncd restarted in the middle of a config change, and a Core
outage of many polls."""
import copy
import http.server
import os
import socket
import threading
import time

import dns.message
import dns.query
import dns.rdatatype

from dfr import Suite, Tap, fixture_json, free_port, http_get, wait_until

t = Tap()
ZONE = "suite.example"


class Backend(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # head and body in one write: no Nagle wait on the kept-alive connection

    def do_GET(self):
        body = b"origin ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def echo_server(port):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(512)

    def serve(c):
        with c:
            while True:
                data = c.recv(65536)
                if not data:
                    return
                c.sendall(data)

    def loop():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return srv


def make_config(echo_port, l4_port, txt="v=1"):
    doc = fixture_json("small.json")
    dom = doc["domains"][0]
    dom["domain"] = ZONE
    dom["ssl"] = {"enabled": False, "certificate": None, "privateKey": None, "autoRenew": False,
                  "acmeHttpChallenge": {"token": "", "keyAuthorization": ""}}
    recs = []
    for r in dom["dnsRecords"]:
        r = copy.deepcopy(r)
        if r["type"] == "A" and r["name"] == "@":
            r["value"] = "127.0.0.1"
        if r["type"] == "AAAA" and r["name"] == "@":
            r["value"] = "::1"
        if r["type"] == "CNAME":
            r["value"] = ZONE
        if r["type"] == "TXT" and r["name"] == "@":
            r["value"] = txt
        recs.append(r)
    dom["dnsRecords"] = recs
    dom["luaCode"] = ('if string.find(ngx.var.uri, "/blocked", 1, true) then\n'
                      '  return ngx.exit(403)\nend\nngx.header["X-Suite"] = "waf"\n')
    doc["proxies"] = [{"id": "6720b0c1d2e3f40516273899", "name": "echo", "type": "tcp",
                       "sourcePort": l4_port, "destinationHost": "127.0.0.1",
                       "destinationPort": echo_port, "enabled": True}]
    doc["nextPollInterval"] = 1
    return doc


class Load:
    """Traffic on one protocol in a thread; counts successes and failures per phase."""

    def __init__(self, name, fn):
        self.name = name
        self.fn = fn
        self.ok = 0
        self.errors = []
        self.stop = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                err = self.fn()
            except Exception as e:  # a failure is a result here, not a crash of the test
                err = repr(e)
            with self.lock:
                if err:
                    self.errors.append(err)
                else:
                    self.ok += 1
            time.sleep(0.005)

    def take(self):
        """(successes, errors) since the last take."""
        with self.lock:
            ok, errs = self.ok, self.errors
            self.ok, self.errors = 0, []
        return ok, errs


backend_port = free_port()
backend = http.server.ThreadingHTTPServer(("127.0.0.1", backend_port), Backend)
threading.Thread(target=backend.serve_forever, daemon=True).start()
echo_port = free_port()
echo = echo_server(echo_port)
l4_port = free_port()
dns_port = free_port()
http_port = free_port()
closed_port = free_port()

with Suite() as s:
    s.fake_core(make_config(echo_port, l4_port))
    common = dict(POLLING_INTERVAL=1, LOG_LEVEL="info")
    env = {
        "syncd": dict(CORE_URL=s.core.url, AGENT_ID="agent_suite", AGENT_KEY="suite-key"),
        "dnsd": dict(DNS_LISTEN="127.0.0.1:%d" % dns_port, DNSD_WORKERS=1),
        "wafd": dict(WAFD_WORKERS=1),
        "httpd": dict(HTTP_LISTEN="127.0.0.1:%d" % http_port,
                      HTTPS_LISTEN="127.0.0.1:%d" % free_port(), HTTPD_WORKERS=1,
                      HTTPD_UPSTREAM_PORT=backend_port, WAF_FAIL_MODE="open"),
        "l4d": dict(L4_BIND="127.0.0.1"),
    }
    daemons = {}
    for name in ("syncd", "dnsd", "wafd", "httpd", "l4d"):
        e = dict(common)
        e.update(env[name])
        daemons[name] = s.start(name, **e)
    # A second httpd in fail-closed mode: with wafd down it must answer 503, nothing else.
    closed = s.start("httpd", **dict(common, HTTP_LISTEN="127.0.0.1:%d" % closed_port,
                                     HTTPS_LISTEN="127.0.0.1:%d" % free_port(),
                                     HTTPD_WORKERS=1, HTTPD_UPSTREAM_PORT=backend_port,
                                     WAF_FAIL_MODE="closed"))
    t.ok(closed.wait_health(10), "the fail-closed httpd is healthy", closed.logs()[-3000:])
    daemons["httpd_closed"] = closed  # in the generation checks; not killed on its own
    for name, d in daemons.items():
        t.ok(d.wait_health(10), "%s is healthy with the config" % name, d.logs()[-3000:])
    gen = daemons["syncd"].generation()
    t.ok(all(d.generation() == gen for d in daemons.values()),
         "all six daemons on generation %d" % gen,
         {n: d.generation() for n, d in daemons.items()})

    def dns_query():
        q = dns.message.make_query(ZONE, dns.rdatatype.TXT)
        r = dns.query.udp(q, "127.0.0.1", port=dns_port, timeout=1.0)
        return None if r.rcode() == 0 and r.answer else "rcode %d" % r.rcode()

    def http_request():
        import urllib.request
        req = urllib.request.Request("http://127.0.0.1:%d/page" % http_port,
                                     headers={"Host": ZONE})
        with urllib.request.urlopen(req, timeout=2) as r:
            body = r.read()
            return None if r.status == 200 and body == b"origin ok\n" else "status %d" % r.status

    def http_closed_request():
        """None for a 200 judged by wafd (its header is there); "503" for the fail-closed
        answer; anything else describes a failure."""
        import urllib.error
        import urllib.request
        req = urllib.request.Request("http://127.0.0.1:%d/page" % closed_port,
                                     headers={"Host": ZONE})
        try:
            with urllib.request.urlopen(req, timeout=2) as r:
                body = r.read()
                if r.status == 200 and body == b"origin ok\n" and r.headers.get("X-Suite") == "waf":
                    return None
                return "status %d, X-Suite %r" % (r.status, r.headers.get("X-Suite"))
        except urllib.error.HTTPError as e:
            return "503" if e.code == 503 else "status %d" % e.code

    def l4_exchange():
        with socket.create_connection(("127.0.0.1", l4_port), timeout=2) as c:
            c.sendall(b"ping\n")
            got = b""
            while len(got) < 5:
                chunk = c.recv(64)
                if not chunk:
                    break
                got += chunk
            return None if got == b"ping\n" else "echo %r" % got

    t.ok(dns_query() is None, "DNS answers through dnsd")
    t.ok(http_request() is None, "HTTP answers through httpd (and wafd)")
    t.ok(l4_exchange() is None, "TCP echoes through l4d")
    t.ok(wait_until(lambda: http_closed_request() is None, 5),
         "HTTP answers through the fail-closed httpd, judged by wafd")
    loads = {"dns": Load("dns", dns_query), "http": Load("http", http_request),
             "http_closed": Load("http_closed", http_closed_request),
             "l4": Load("l4", l4_exchange)}
    time.sleep(1)
    for l in loads.values():
        l.take()

    # Which protocols a daemon's death may interrupt: its own only.
    own = {"dnsd": {"dns"}, "httpd": {"http"}, "l4d": {"l4"}, "wafd": set(), "syncd": set()}
    for name in ("wafd", "dnsd", "l4d", "httpd", "syncd"):
        d = daemons[name]
        d.kill()
        time.sleep(0.5)
        if name == "wafd":
            # Taken while wafd is down: the fail-closed httpd answers 503 and only that.
            _, errs = loads["http_closed"].take()
            t.ok(errs and all(e == "503" for e in errs),
                 "with wafd down the fail-closed httpd answers 503 (%d answers)" % len(errs),
                 sorted(set(errs))[:5])
        d.start()
        start = time.time()
        healthy = d.wait_health(2, generation=gen)
        took = time.time() - start
        t.ok(healthy, "%s killed with SIGKILL is back on generation %d in %.1f s (<= 2 s)"
             % (name, gen, took), d.logs()[-2000:])
        time.sleep(1)
        for proto, l in loads.items():
            ok, errs = l.take()
            if name == "wafd" and proto == "http_closed":
                t.ok(ok > 0 and all(e == "503" for e in errs),
                     "the fail-closed httpd is judged again after wafd's restart (%d ok, "
                     "%d answered 503)" % (ok, len(errs)), sorted(set(errs))[:5])
            elif proto in own[name]:
                t.ok(ok > 0, "%s serves again after %s's restart (%d ok, %d failed while it "
                     "was down)" % (proto, name, ok, len(errs)))
            else:
                t.ok(ok > 0 and not errs, "%s lost nothing while %s restarted (%d ok)"
                     % (proto, name, ok), errs[:5])

    # syncd restarted in the middle of a config change: every daemon ends on one generation.
    daemons["syncd"].kill()
    s.core.set(make_config(echo_port, l4_port, txt="v=2"))
    daemons["syncd"].start()
    t.ok(daemons["syncd"].wait_health(3), "syncd back during a config change")
    new_gen = wait_until(lambda: daemons["syncd"].generation() > gen and
                         daemons["syncd"].generation(), 5)
    t.ok(new_gen, "the change gets a new generation")
    same = wait_until(lambda: all(d.generation() == new_gen for d in daemons.values()), 5)
    t.ok(same, "every daemon ends on generation %s" % new_gen,
                {n: d.generation() for n, d in daemons.items()})

    # A Core outage of many polls changes nothing for clients; its return brings the newest.
    for l in loads.values():
        l.take()
    s.core.set('{"error": "Poll failed"}', 500)
    polls = s.core.poll_count()
    wait_until(lambda: s.core.poll_count() >= polls + 4, 15)
    t.ok(s.core.poll_count() >= polls + 4, "the Core failed %d polls" %
         (s.core.poll_count() - polls))
    for proto, l in loads.items():
        ok, errs = l.take()
        t.ok(ok > 0 and not errs, "%s unaffected by the Core outage (%d ok)" % (proto, ok),
             errs[:5])
    s.core.set(make_config(echo_port, l4_port, txt="v=3"))
    newest = wait_until(lambda: daemons["syncd"].generation() > new_gen and
                        daemons["syncd"].generation(), 8)
    t.ok(newest and wait_until(lambda: all(d.generation() == newest
                                                  for d in daemons.values()), 5),
                "the Core's return brings the newest config to every daemon",
                {n: d.generation() for n, d in daemons.items()})

    def txt_now():
        q = dns.message.make_query(ZONE, dns.rdatatype.TXT)
        r = dns.query.udp(q, "127.0.0.1", port=dns_port, timeout=1.0)
        return b"".join(r.answer[0][0].strings) if r.answer else b""
    t.ok(wait_until(lambda: txt_now() == b"v=3", 3), "and DNS answers from it")
    for l in loads.values():
        l.stop = True
    for l in loads.values():
        l.thread.join(5)

backend.shutdown()
echo.close()
t.done()
