#!/usr/bin/python3
"""dnsd against real clients (dnspython, dig): every record type, the negative cases, EDNS,
truncation and TCP (several queries per connection, idle timeout), malformed packets and the
fuzz corpus replayed against the running server, metrics. Config: the three Core fixtures merged,
fed through syncd in file mode."""
import json
import os
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dfr import ROOT, SLOW, Suite, Tap, fixture_json, wait_until  # noqa: E402
from dnsd_util import addrs, change_config, query, raw_udp, rcode, rrs, start_dns, wait_dns, wait_metric  # noqa: E402

import dns.flags  # noqa: E402
import dns.message  # noqa: E402


def merged():
    base = fixture_json("small.json")
    for f in ("geodns.json", "edge.json"):
        doc = fixture_json(f)
        base["domains"] += doc["domains"]
        base["proxies"] += doc["proxies"]
    return json.dumps(base)


t = Tap()
with Suite() as s:
    syncd, dnsd, port, _ = start_dns(s, merged(), ipv6=True)
    t.ok(wait_dns(port, "example.com"), "dnsd serves the config from syncd")
    t.ok(dnsd.wait_health(), "dnsd /health is 200 once a config applied")

    m = query(port, "example.com")
    t.ok(m is not None and m.flags & dns.flags.AA, "AA set")
    t.eq(rrs(m), ["example.com. 60 IN A 192.0.2.10"], "apex A: GeoDNS default, TTL 60")
    t.eq(rrs(query(port, "example.com", "AAAA")), ["example.com. 60 IN AAAA 2001:db8::10"],
         "apex AAAA")
    t.eq(rrs(query(port, "mail.example.com")), ["mail.example.com. 3600 IN A 192.0.2.25"], "A")
    t.eq(rrs(query(port, "example.com", "MX")), ["example.com. 3600 IN MX 10 mail.example.com."], "MX")
    t.eq(rrs(query(port, "example.com", "TXT")),
         ['example.com. 3600 IN TXT "v=spf1 mx ip4:192.0.2.25 -all"'], "TXT")
    t.eq(rrs(query(port, "edgecase.example.net", "NS")),
         ["edgecase.example.net. 86400 IN NS ns1.example.org."], "NS")
    t.eq(rrs(query(port, "_sip._udp.edgecase.example.net", "SRV")),
         ["_sip._udp.edgecase.example.net. 3600 IN SRV 10 5 5060 sip.example.org."], "SRV")
    t.eq(rrs(query(port, "edgecase.example.net", "CAA")),
         ['edgecase.example.net. 3600 IN CAA 0 issue "letsencrypt.org"'], "CAA")
    t.eq(rrs(query(port, "alias.edgecase.example.net", "CNAME")),
         ["alias.edgecase.example.net. 3600 IN CNAME target.example.org."], "CNAME")
    m = query(port, "www.shop.example.com")
    t.eq(rrs(m), ["shop.example.com. 60 IN A 203.0.113.90",
                  "www.shop.example.com. 3600 IN CNAME shop.example.com."],
         "CNAME followed inside the zone; nested zone shop.example.com under example.com")
    t.eq(rrs(query(port, "static.shop.example.com", "AAAA")),
         ["static.shop.example.com. 3600 IN AAAA 2001:db8:90::2"], "AAAA")
    t.eq(rrs(query(port, "foo.edgecase.example.net")), ["foo.edgecase.example.net. 3600 IN A 192.0.2.99"],
         "wildcard")
    t.eq(rrs(query(port, "ns.edgecase.example.net")), ["ns.edgecase.example.net. 3600 IN A 192.0.2.53"],
         "two-letter sub-domain that is not a location")
    m = query(port, "dkim._domainkey.edgecase.example.net", "TXT", edns=0)
    t.ok(m is not None and len(m.answer) == 1 and len(m.answer[0][0].strings) == 2 and
         len(b"".join(m.answer[0][0].strings)) == 332, "332-byte TXT as two strings, bytes kept")

    # IPv6 listener.
    t.eq(rrs(query(port, "mail.example.com", host="::1")),
         ["mail.example.com. 3600 IN A 192.0.2.25"], "UDP over IPv6 (::1)")
    t.eq(rrs(query(port, "mail.example.com", host="::1", tcp=True)),
         ["mail.example.com. 3600 IN A 192.0.2.25"], "TCP over IPv6 (::1)")

    # The question echoed as asked.
    m = query(port, "WwW.ExAmPlE.CoM")
    t.eq(str(m.question[0].name) if m else None, "WwW.ExAmPlE.CoM.", "question echoed with its case")

    # Negative answers.
    m = query(port, "nope.example.com")
    t.eq(rcode(m), "NXDOMAIN", "NXDOMAIN")
    t.ok(m is not None and len(m.authority) == 1 and m.authority[0].rdtype == 6 and
         m.authority[0].ttl == 300, "NXDOMAIN: SOA in authority, negative TTL")
    gen = dnsd.generation()
    t.eq(m.authority[0][0].serial if m and m.authority else None, gen, "SOA serial = generation")
    m = query(port, "mail.example.com", "AAAA")
    t.ok(rcode(m) == "NOERROR" and not m.answer and m.authority and m.authority[0].rdtype == 6,
         "NODATA: NOERROR, SOA in authority")
    m = query(port, "example.invalid")
    t.eq(rcode(m), "REFUSED", "outside every zone: REFUSED")
    t.ok(m is not None and not (m.flags & dns.flags.AA), "REFUSED without AA")
    m = query(port, "example.com", "ANY")
    t.ok(rcode(m) == "NOERROR" and len(m.answer) == 1, "ANY: one rrset (RFC 8482)")

    # EDNS.
    m = query(port, "example.com", edns=0)
    t.ok(m is not None and m.edns == 0 and m.payload == 1232, "EDNS answered with EDNS")
    m = query(port, "example.com", edns=1)
    t.ok(m is not None and m.rcode() == 16, "EDNS version 1: BADVERS", rcode(m))

    # Truncation: a 332-byte TXT plus more fits 512? Use the big MX/TXT apex of example.org? Use
    # a UDP size of 512 without EDNS on the longest answer we have.
    big = "dkim._domainkey.edgecase.example.net"
    m = query(port, big, "TXT")  # no EDNS: 512 bytes
    t.ok(m is not None and not (m.flags & dns.flags.TC), "a 400-byte answer fits 512 bytes")
    status, before = dnsd.get("/metrics")

    # TCP: several queries on one connection, answered in order.
    sk = socket.create_connection(("127.0.0.1", port), timeout=3)
    wire = b""
    names = ["example.com", "mail.example.com", "nope.example.com", "example.org"]
    for i, n in enumerate(names):
        q = dns.message.make_query(n, "A")
        q.id = 100 + i
        w = q.to_wire()
        wire += struct.pack("!H", len(w)) + w
    sk.sendall(wire)
    got = []
    buf = b""
    end = time.time() + 5 * SLOW
    while len(got) < len(names) and time.time() < end:
        try:
            chunk = sk.recv(65535)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
            ln = struct.unpack("!H", buf[:2])[0]
            got.append(dns.message.from_wire(buf[2:2 + ln]))
            buf = buf[2 + ln:]
    t.eq([g.id for g in got], [100, 101, 102, 103], "TCP: four pipelined queries on one connection")
    t.eq([rcode(g) for g in got], ["NOERROR", "NOERROR", "NXDOMAIN", "NOERROR"], "TCP: their rcodes")
    # Idle timeout: the server closes the idle connection (10 s).
    sk.settimeout(20 * SLOW)
    t0 = time.time()
    try:
        closed = sk.recv(1) == b""
    except Exception:
        closed = False
    t.ok(closed and time.time() - t0 < 15 * SLOW, "TCP: idle connection closed by the server")
    sk.close()

    # A truncated answer over UDP then the full one over TCP: a zone with many records.
    cfg = json.loads(merged())
    cfg["domains"][0]["dnsRecords"] += [
        {"id": "big%d" % i, "name": "big", "type": "A", "value": "198.51.100.%d" % (i + 1),
         "ttl": 300, "priority": None, "httpProxyEnabled": False} for i in range(60)]
    change_config(s, syncd, cfg)
    t.ok(wait_until(lambda: rcode(query(port, "big.example.com", tcp=True)) == "NOERROR", 10),
         "a config change is picked up")
    m = query(port, "big.example.com")
    t.ok(m is not None and m.flags & dns.flags.TC and not m.answer, "UDP over 512 bytes: TC set")
    m = query(port, "big.example.com", tcp=True)
    t.ok(m is not None and not (m.flags & dns.flags.TC) and len(m.answer[0]) == 60,
         "TCP: the whole answer")
    m = query(port, "big.example.com", edns=0, payload=4096)
    t.ok(m is not None and not (m.flags & dns.flags.TC) and len(m.answer[0]) == 60,
         "EDNS 4096: the whole answer over UDP")
    dig = subprocess.run(["dig", "+norec", "+ignore", "-p", str(port), "@127.0.0.1", "+noedns",
                          "big.example.com", "A"], capture_output=True, text=True, timeout=10)
    t.ok("flags: qr aa tc" in dig.stdout, "dig sees TC", dig.stdout)
    dig = subprocess.run(["dig", "+norec", "-p", str(port), "@127.0.0.1", "+noedns",
                          "big.example.com", "A"], capture_output=True, text=True, timeout=10)
    t.ok("ANSWER: 60" in dig.stdout and "(TCP)" in dig.stdout, "dig retries over TCP", dig.stdout)

    # Malformed packets: answered FORMERR or dropped, never a crash.
    q = dns.message.make_query("example.com", "A").to_wire()
    r = raw_udp(port, q[:5])
    t.ok(r is None, "5-byte packet dropped")
    bad = bytearray(q)
    bad[5] = 2
    r = raw_udp(port, bytes(bad))
    t.ok(r is not None and len(r) == 12 and r[3] & 0xF == 1, "two questions: FORMERR")
    corpus = os.path.join(ROOT, "fuzz/corpus/dns_query")
    files = sorted(os.listdir(corpus))
    sk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for f in files:
        with open(os.path.join(corpus, f), "rb") as fh:
            sk.sendto(fh.read(), ("127.0.0.1", port))
    sk.close()
    for f in files[:50]:
        with open(os.path.join(corpus, f), "rb") as fh:
            data = fh.read()
        try:
            tk = socket.create_connection(("127.0.0.1", port), timeout=2)
            tk.sendall(struct.pack("!H", len(data)) + data)
            tk.settimeout(0.5)
            try:
                tk.recv(65535)
            except socket.timeout:
                pass
            tk.close()
        except OSError:
            pass
    t.ok(dnsd.alive(), "fuzz corpus (%d inputs) replayed over UDP and TCP: dnsd alive" % len(files))
    t.eq(rcode(query(port, "example.com")), "NOERROR", "and still answering")

    # Metrics.
    t.ok(wait_metric(dnsd, 'dnsd_queries_total{type="A",rcode="NOERROR"}', 6),
         "metric: queries by type and rcode")
    t.ok(wait_metric(dnsd, 'dnsd_queries_total{type="A",rcode="NXDOMAIN"}', 1),
         "metric: NXDOMAIN counted")
    t.ok(wait_metric(dnsd, "dnsd_truncated_total", 2), "metric: truncations")
    t.ok(wait_metric(dnsd, "dnsd_malformed_total", 2), "metric: malformed packets")
    t.ok(wait_metric(dnsd, 'dnsd_geodns_answers_total{location="default"}', 1),
         "metric: GeoDNS answers by location")
    t.ok(dnsd.metric("dnsd_config_generation") == dnsd.generation(), "metric: generation")
    t.ok("geo, GeoIP database" in dnsd.logs() and dnsd.logs().count("GeoDNS answers the default") == 1,
         "missing GeoIP database: one warning")
    rc = dnsd.stop()
    t.eq(rc, 0, "dnsd stops cleanly on SIGTERM")
    if rc != 0:
        t.diag(dnsd.logs()[-3000:])
t.done()
