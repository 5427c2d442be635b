"""httpd over TLS: certificates by SNI (apex, subdomain, wildcard; ECDSA and RSA with a chain),
unknown names refused, TLS 1.0/1.1 refused, 1.2 and 1.3 served, session resumption with
tickets, X-Forwarded-Proto, the domain's type both ways, pipelining and bodies over TLS, a
certificate swapped by a config change while a download runs on the old one, a broken
certificate in a later config keeping the previous one, and the metrics."""
import hashlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dfr import Tap, Suite, SLOW, free_port, wait_until  # noqa: E402
from httpd_backend import (Backend, config, domain, start_proxy, get, wait_routes,  # noqa: E402
                           ws_frame, ws_read_frame)


def sh(*argv, stdin=None, timeout=20):
    r = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout * SLOW)
    return r.returncode, r.stdout.decode("latin-1"), r.stderr.decode("latin-1")


class Certs:
    """A test CA, an intermediate, and leaf certificates made with the openssl command."""

    def __init__(self, d):
        self.d = d
        os.makedirs(d, exist_ok=True)
        self.ca_key, self.ca = self.make("ca", "Defenra Test CA", None, ca=True)
        self.int_key, self.int = self.make("int", "Defenra Test Intermediate", "ca", ca=True,
                                           kind="rsa")

    def path(self, name):
        return os.path.join(self.d, name)

    def make(self, name, cn, issuer, sans=(), ca=False, kind="ec"):
        key, crt, csr, ext = (self.path(name + x) for x in (".key", ".pem", ".csr", ".ext"))
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec" \
            else ["-newkey", "rsa:2048"]
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:%s\n" % ("TRUE" if ca else "FALSE"))
            if ca:
                f.write("keyUsage=critical,keyCertSign,cRLSign\n")
            if sans:
                f.write("subjectAltName=" + ",".join("DNS:" + s for s in sans) + "\n")
        if issuer is None:
            rc, _, err = sh("openssl", "req", "-x509", *newkey, "-nodes", "-keyout", key, "-out",
                            crt, "-days", "30", "-subj", "/CN=" + cn, "-addext",
                            "basicConstraints=critical,CA:TRUE", "-addext",
                            "keyUsage=critical,keyCertSign,cRLSign")
        else:
            rc, _, err = sh("openssl", "req", "-new", *newkey, "-nodes", "-keyout", key, "-out",
                            csr, "-subj", "/CN=" + cn)
            if rc == 0:
                rc, _, err = sh("openssl", "x509", "-req", "-in", csr, "-CA",
                                self.path(issuer + ".pem"), "-CAkey",
                                self.path(issuer + ".key"), "-set_serial",
                                str(int.from_bytes(os.urandom(8), "big")), "-days", "30",
                                "-out", crt, "-extfile", ext)
        if rc != 0:
            raise RuntimeError("openssl failed for %s: %s" % (name, err))
        return open(key).read(), open(crt).read()

    def leaf(self, name, sans, issuer="ca", kind="ec"):
        key, crt = self.make(name, sans[0], issuer, sans, kind=kind)
        chain = crt + (self.int if issuer == "int" else "")
        return chain, key


def tls_domain(name, records, chain=None, key=None, **kw):
    d = domain(name, records, **kw)
    if chain is not None:
        d["ssl"].update({"enabled": True, "certificate": chain, "privateKey": key})
    return d


def ctx(ca_path, **kw):
    c = ssl.create_default_context(cafile=ca_path)
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def tls_connect(port, name, c, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    try:
        return c.wrap_socket(s, server_hostname=name)
    except Exception:
        s.close()
        raise


def peer_fp(ts):
    return hashlib.sha256(ts.getpeercert(binary_form=True)).hexdigest()


def tls_raw(port, name, c, data, until_close=True, timeout=5.0):
    ts = tls_connect(port, name, c, timeout)
    try:
        ts.sendall(data)
        out = b""
        while True:
            try:
                d = ts.recv(65536)
            except (socket.timeout, ssl.SSLError, OSError):
                break
            if not d:
                break
            out += d
        return out
    finally:
        ts.close()


def s_client(port, name, *args, stdin=b""):
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port]
    if name:
        argv += ["-servername", name]
    return sh(*argv, *args, stdin=stdin)


t = Tap()
with Suite() as s:
    certs = Certs(os.path.join(s.dir, "pki"))
    ca_path = certs.path("ca.pem")
    a_chain, a_key = certs.leaf("a", ["a.test", "*.a.test"])                 # ECDSA, by the CA
    b_chain, b_key = certs.leaf("b", ["b.test"], issuer="int", kind="rsa")   # RSA + intermediate
    a2_chain, a2_key = certs.leaf("a2", ["a.test", "*.a.test"])              # the renewal
    sec_chain, sec_key = certs.leaf("sec", ["secure.test"])
    plain_chain, plain_key = certs.leaf("plain", ["plain.test"])
    be = Backend()
    proxied = [("@", "A", "127.0.0.1", True), ("www", "A", "127.0.0.1", True),
               ("*", "A", "127.0.0.1", True)]

    def doms(a=(a_chain, a_key), marker=None):
        out = [tls_domain("a.test", proxied, *a),
               tls_domain("b.test", [("@", "A", "127.0.0.1", True)], b_chain, b_key),
               tls_domain("secure.test", [("@", "A", "127.0.0.1", True)], sec_chain, sec_key,
                          http_type="https"),
               tls_domain("plain.test", [("@", "A", "127.0.0.1", True)], plain_chain,
                          plain_key, http_type="http"),
               tls_domain("nocert.test", [("@", "A", "127.0.0.1", True)])]
        if marker:
            out.append(domain(marker, [("@", "A", "127.0.0.1", True)]))
        return out

    hport = free_port()
    syncd, httpd, port, cfg_path = start_proxy(s, config(doms()), be.port,
                                               HTTPS_LISTEN="127.0.0.1:%d" % hport)
    t.ok(httpd.wait_health(10), "httpd becomes healthy")
    t.ok(wait_routes(port, "a.test"), "routes in force")

    def curl(name, path="/echo", *extra):
        rc, out, err = sh("curl", "-sS", "--cacert", ca_path, "--resolve",
                          "%s:%d:127.0.0.1" % (name, hport), "-o", "-", "-w",
                          "\n%{http_code} %{ssl_verify_result}", *extra,
                          "https://%s:%d%s" % (name, hport, path))
        body, _, tail = out.rpartition("\n")
        return rc, tail, body, err

    # --- certificates by SNI, verified against the test CA ---
    rc, tail, body, err = curl("a.test", "/echo?x=1")
    t.eq((rc, tail), (0, "200 0"), "curl https://a.test: 200, certificate verified (%s)" % err)
    doc = json.loads(body or "{}")
    hdrs = {k.lower(): v for k, v in doc.get("headers", [])}
    t.eq(hdrs.get("x-forwarded-proto"), "https", "X-Forwarded-Proto: https upstream")
    t.eq(hdrs.get("x-real-ip"), "127.0.0.1", "X-Real-IP over TLS")
    t.eq(doc.get("target"), "/echo?x=1", "target forwarded")
    rc, tail, _, err = curl("b.test")
    t.eq((rc, tail), (0, "200 0"), "curl https://b.test: RSA leaf + intermediate verified (%s)" %
         err)
    rc, tail, _, err = curl("www.a.test")
    t.eq((rc, tail), (0, "200 0"), "subdomain gets the zone's certificate (%s)" % err)
    rc, tail, _, err = curl("deep.a.test")
    t.eq((rc, tail), (0, "200 0"), "wildcard name gets the zone's certificate (%s)" % err)
    rc, tail, _, err = curl("A.TEST")
    t.eq((rc, tail), (0, "200 0"), "SNI is case-insensitive (%s)" % err)

    rc, out, _ = s_client(hport, "b.test", "-CAfile", ca_path, "-showcerts")
    t.ok("Verify return code: 0 (ok)" in out, "s_client b.test: chain verifies")
    t.ok("CN = b.test" in out and "CN = Defenra Test Intermediate" in out,
         "s_client b.test: the leaf and the intermediate are sent")
    t.eq(out.count("-----BEGIN CERTIFICATE-----"), 2, "two certificates in the chain")
    rc, out, _ = s_client(hport, "a.test", "-CAfile", ca_path)
    t.ok("CN = a.test" in out and "Verify return code: 0 (ok)" in out,
         "s_client a.test: ECDSA leaf, another certificate")
    t.ok("Server Temp Key" in out and "Peer signature type: ECDSA" in out,
         "a.test signs with ECDSA", out[-600:])

    before = httpd.metric('httpd_tls_handshake_failures_total{reason="unknown_name"}') or 0
    rc, out, err = s_client(hport, "nocert.test")
    t.ok(rc != 0 and "unrecognized name" in (out + err),
         "a name without a certificate: handshake fails with unrecognized_name",
         (out + err)[-300:])
    rc, out, err = s_client(hport, "unknown.invalid")
    t.ok(rc != 0 and "unrecognized name" in (out + err), "a name outside every zone: refused")
    t.ok(wait_until(lambda: (httpd.metric(
        'httpd_tls_handshake_failures_total{reason="unknown_name"}') or 0) >= before + 2, 3),
        "failures counted by reason (unknown_name)")
    rc, out, err = s_client(hport, None, "-noservername")
    t.ok(rc != 0, "no SNI at all: handshake fails")
    t.ok(wait_until(lambda: (httpd.metric(
        'httpd_tls_handshake_failures_total{reason="no_sni"}') or 0) >= 1, 3),
        "counted as no_sni")

    # --- versions ---
    for v in ("-tls1", "-tls1_1"):
        rc, out, err = s_client(hport, "a.test", v, "-cipher", "DEFAULT@SECLEVEL=0")
        t.ok(rc != 0 and "Cipher is (NONE)" in out, "%s refused" % v, (out + err)[-300:])
    t.ok(wait_until(lambda: (httpd.metric(
        'httpd_tls_handshake_failures_total{reason="version"}') or 0) >= 2, 3),
        "old versions counted as reason=version")
    v12 = httpd.metric('httpd_tls_versions_total{version="TLSv1.2"}') or 0
    rc, out, _ = s_client(hport, "a.test", "-tls1_2", "-CAfile", ca_path)
    t.ok(rc == 0 and "Protocol  : TLSv1.2" in out, "TLS 1.2 served")
    t.ok("ECDHE-ECDSA-AES128-GCM-SHA256" in out, "TLS 1.2 with an AEAD ECDHE suite")
    rc, out, _ = s_client(hport, "b.test", "-tls1_2", "-cipher", "AES128-SHA256")
    t.ok(rc != 0, "TLS 1.2 without forward secrecy refused (AES128-SHA256)")
    rc, out, _ = s_client(hport, "a.test", "-tls1_3", "-CAfile", ca_path)
    t.ok(rc == 0 and "TLSv1.3" in out, "TLS 1.3 served")
    t.ok((httpd.metric('httpd_tls_versions_total{version="TLSv1.2"}') or 0) >= v12 + 1,
         "TLS versions counted")

    # --- resumption with tickets ---
    req = b"GET /echo HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    for v in ("-tls1_2", "-tls1_3"):
        sess = os.path.join(s.dir, "sess" + v)
        resumed0 = httpd.metric('httpd_tls_handshakes_total{kind="resumed"}') or 0
        rc, out, _ = s_client(hport, "a.test", v, "-CAfile", ca_path, "-sess_out", sess,
                              "-ign_eof", stdin=req)
        t.ok(rc == 0 and "HTTP/1.1 200" in out and os.path.exists(sess),
             "%s: first connection, session saved" % v)
        rc, out, _ = s_client(hport, "a.test", v, "-CAfile", ca_path, "-sess_in", sess,
                              "-ign_eof", stdin=req)
        t.ok(rc == 0 and "Reused," in out and "HTTP/1.1 200" in out,
             "%s: second connection resumes the session (ticket) and is served" % v,
             out[-400:])
        t.ok((httpd.metric('httpd_tls_handshakes_total{kind="resumed"}') or 0) >= resumed0 + 1,
             "%s: resumed handshake counted" % v)
    t.ok((httpd.metric('httpd_tls_handshakes_total{kind="full"}') or 0) >= 5,
         "full handshakes counted")

    # --- domain types ---
    rc, tail, _, _ = curl("secure.test")
    t.eq(tail, "200 0", "https-only domain over TLS: proxied")
    st, hdrs, _ = get(port, "secure.test", "/x")
    t.eq((st, dict(hdrs).get("Location")), (301, "https://secure.test/x"),
         "https-only domain over plain http: 301 to https")
    rc, tail, _, _ = curl("plain.test")
    t.eq(tail, "403 0", "http-only domain over TLS: 403")
    t.eq(get(port, "plain.test")[0], 200, "http-only domain over plain http: proxied")

    # --- HTTP/1.1 details over TLS ---
    c = ctx(ca_path)
    pipe = b"".join(b"GET /echo?n=%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % i for i in range(10))
    pipe += b"GET /echo?n=last HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    out = tls_raw(hport, "a.test", c, pipe)
    t.eq(out.count(b"HTTP/1.1 200"), 11, "11 pipelined requests over TLS answered")
    # Head and body in one write: the reads past the input's limit (read-ahead) leave an empty
    # reserved chain behind, which once reached the parser as an end of input (400).
    whole = 0
    for _ in range(5):
        body = os.urandom(300000)
        try:
            out = tls_raw(hport, "a.test", c, b"POST /echo HTTP/1.1\r\nHost: a.test\r\n"
                          b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) +
                          body)
        except OSError:  # ssl.SSLError too: httpd answered early and closed
            out = b""
        whole += hashlib.sha256(body).hexdigest().encode() in out
    t.eq(whole, 5, "a 300 kB body goes up whole over TLS, five times")
    out = tls_raw(hport, "a.test", c, b"GET /chunked?n=100000 HTTP/1.1\r\nHost: a.test\r\n"
                  b"Connection: close\r\n\r\n")
    t.ok(out.startswith(b"HTTP/1.1 200") and out.count(b"c") >= 100000,
         "a chunked response streams down over TLS")
    ts = tls_connect(hport, "a.test", c)
    ts.sendall(b"GET /echo HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n")
    out = b""
    while True:
        d = ts.recv(65536)
        if not d:
            break
        out += d
    ts.close()
    t.ok(out.startswith(b"HTTP/1.1 200"), "the Host picks the route (SNI a.test, Host b.test)")
    # WebSocket through TLS: the tunnel writes through SSL too.
    ts = tls_connect(hport, "a.test", c)
    ts.sendall(b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade"
               b"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13"
               b"\r\n\r\n")
    f = ts.makefile("rb")
    line = f.readline()
    while f.readline() not in (b"\r\n", b""):
        pass
    big = os.urandom(200000)
    echoes = []
    for payload in (b"hello over tls", big):
        ts.sendall(ws_frame(2, payload))
        echoes.append(ws_read_frame(f))
    f.close()
    ts.close()
    t.ok(line.startswith(b"HTTP/1.1 101") and echoes == [(2, b"hello over tls"), (2, big)],
         "WebSocket over TLS: 101, a small and a 200 kB frame echoed", line)
    t.ok(tls_raw(hport, "a.test", c, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400"),
         "malformed request over TLS: 400")
    t.eq(sh("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
            "http://127.0.0.1:%d/" % hport)[1], "400",
         "plain HTTP on the TLS port: a plain 400, nothing served")
    t.ok(wait_until(lambda: (httpd.metric(
        'httpd_tls_handshake_failures_total{reason="plain_http"}') or 0) >= 1, 3),
        "counted as plain_http")

    # --- a certificate swapped by a config change during a download ---
    ts_old = tls_connect(hport, "a.test", c)
    fp_old = peer_fp(ts_old)
    size = 16 * 1024 * 1024
    ts_old.sendall(b"GET /big?n=%d HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n" % size)
    got = bytearray()
    head = ts_old.recv(65536)
    got += head
    gen0 = httpd.generation()
    with open(cfg_path, "w") as f:
        f.write(config(doms(a=(a2_chain, a2_key), marker="m1.test")))
    t.ok(httpd.wait_health(10 * SLOW, generation=gen0 + 1), "new generation applied")
    t.ok(wait_routes(port, "m1.test"), "the new config is in force")
    ts_new = tls_connect(hport, "a.test", c)
    fp_new = peer_fp(ts_new)
    ts_new.close()
    a2_fp = hashlib.sha256(ssl.PEM_cert_to_DER_cert(a2_chain)).hexdigest()
    t.ok(fp_new != fp_old and fp_new == a2_fp, "a new connection gets the new certificate")
    # Read the rest of the download on the old connection.
    ts_old.settimeout(10 * SLOW)
    while True:
        d = ts_old.recv(1 << 20)
        if not d:
            break
        got += d
    ts_old.close()
    hd, _, rest = bytes(got).partition(b"\r\n\r\n")
    t.ok(hd.startswith(b"HTTP/1.1 200") and len(rest) == size,
         "the download on the old connection completes (%d of %d bytes)" % (len(rest), size))

    # --- a broken certificate in a later config: the previous one stays ---
    gen1 = httpd.generation()
    bad = a2_chain.replace("MII", "MIX", 1)
    with open(cfg_path, "w") as f:
        f.write(config(doms(a=(bad, a2_key), marker="m2.test")))
    t.ok(httpd.wait_health(10 * SLOW, generation=gen1 + 1) and wait_routes(port, "m2.test"),
         "a config with a broken certificate is applied for the rest")
    ts = tls_connect(hport, "a.test", c)
    t.eq(peer_fp(ts), a2_fp, "the broken certificate is refused, the previous one serves")
    ts.close()
    gen2 = httpd.generation()
    with open(cfg_path, "w") as f:  # a key of another pair
        f.write(config(doms(a=(a2_chain, a_key), marker="m3.test")))
    t.ok(httpd.wait_health(10 * SLOW, generation=gen2 + 1) and wait_routes(port, "m3.test"),
         "a config with a key that does not match is applied for the rest")
    ts = tls_connect(hport, "a.test", c)
    t.eq(peer_fp(ts), a2_fp, "a key that does not match is refused, the previous pair serves")
    ts.close()
    t.ok("certificate for a.test rejected" in syncd.logs(),
         "the refusal is logged with a reason by the config model")
    rc, tail, _, _ = curl("b.test")
    t.eq(tail, "200 0", "other domains unaffected")

    # --- a domain gains and loses its certificate ---
    gen3 = httpd.generation()
    ds = doms(a=(a2_chain, a2_key), marker="m4.test")
    ds[4]["ssl"].update({"enabled": True, "certificate": b_chain, "privateKey": b_key})
    with open(cfg_path, "w") as f:
        f.write(config(ds))
    t.ok(httpd.wait_health(10 * SLOW, generation=gen3 + 1) and wait_routes(port, "m4.test"),
         "config with a new certificate for nocert.test")
    rc, out, _ = s_client(hport, "nocert.test")
    t.ok("CN = b.test" in out and "Cipher is (NONE)" not in out,
         "nocert.test now served (with the pair given)")
    built = httpd.metric("httpd_tls_contexts_built_total") or 0
    t.ok(0 < built <= 7, "contexts are reused across generations (%d built)" % built)

    t.ok(httpd.alive(), "httpd still running")
    t.eq(httpd.stop(), 0, "httpd stops cleanly")
be.close()
t.done()
