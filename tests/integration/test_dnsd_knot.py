#!/usr/bin/python3
"""Differential test (STYLE.md §11, Knot's resp.cmp): the same zone served by dnsd (from a Core
config through syncd) and by Knot DNS (from a zone file), the same queries to both; rcode, AA,
answer section and authority section must agree. Covers every record type, CNAME chains (in and
out of the zone, dangling), wildcards, empty non-terminals, NXDOMAIN and NODATA. The additional
section is not compared (dnsd sends minimal answers)."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dfr import Suite, Tap, free_port, wait_until  # noqa: E402
from dnsd_util import query, start_dns, wait_dns  # noqa: E402
from knot_conf import knot_setup  # noqa: E402

import dns.flags  # noqa: E402

ZONE = "diff.test"
# (owner relative to the apex, type, value as the Core writes it, priority, zone-file rdata, ttl)
RECORDS = [
    ("@", "A", "192.0.2.1", None, "192.0.2.1", 300),
    ("@", "AAAA", "2001:db8::1", None, "2001:db8::1", 300),
    ("@", "NS", "ns1.diff.test", None, "ns1.diff.test.", 3600),
    ("@", "MX", "mail.diff.test", 10, "10 mail.diff.test.", 3600),
    ("@", "MX", "mx2.example.org", 20, "20 mx2.example.org.", 3600),
    ("@", "TXT", "v=spf1 mx -all", None, '"v=spf1 mx -all"', 3600),
    ("@", "CAA", '0 issue "ca.example.net"', None, '0 issue "ca.example.net"', 3600),
    ("ns1", "A", "192.0.2.53", None, "192.0.2.53", 3600),
    ("mail", "A", "192.0.2.25", None, "192.0.2.25", 3600),
    ("www", "CNAME", "diff.test", None, "diff.test.", 3600),
    ("a", "CNAME", "b.diff.test", None, "b.diff.test.", 600),
    ("b", "CNAME", "mail.diff.test", None, "mail.diff.test.", 600),
    ("out", "CNAME", "elsewhere.example.org", None, "elsewhere.example.org.", 600),
    ("dangling", "CNAME", "gone.diff.test", None, "gone.diff.test.", 600),
    ("_sip._udp", "SRV", "5 5060 sip.diff.test", 10, "10 5 5060 sip.diff.test.", 3600),
    ("*", "A", "192.0.2.99", None, "192.0.2.99", 3600),
    ("*.wild", "TXT", "wild", None, '"wild"', 3600),
    ("x.y.deep", "A", "192.0.2.77", None, "192.0.2.77", 3600),
    ("long", "TXT", "k" * 300, None, '"%s" "%s"' % ("k" * 255, "k" * 45), 3600),
]
QUERIES = [
    ("diff.test", t) for t in ("A", "AAAA", "NS", "MX", "TXT", "CAA", "SOA", "SRV", "CNAME")
] + [
    ("mail.diff.test", "A"), ("mail.diff.test", "AAAA"), ("MAIL.Diff.Test", "A"),
    ("www.diff.test", "A"), ("www.diff.test", "MX"), ("www.diff.test", "CNAME"),
    ("a.diff.test", "A"), ("a.diff.test", "TXT"), ("out.diff.test", "A"),
    ("dangling.diff.test", "A"), ("_sip._udp.diff.test", "SRV"), ("_udp.diff.test", "SRV"),
    ("anything.diff.test", "A"), ("anything.diff.test", "AAAA"), ("x.wild.diff.test", "TXT"),
    ("x.wild.diff.test", "A"), ("wild.diff.test", "TXT"), ("y.deep.diff.test", "A"),
    ("deep.diff.test", "A"), ("z.y.deep.diff.test", "A"), ("x.y.deep.diff.test", "A"),
    ("long.diff.test", "TXT"), ("ns1.diff.test", "A"), ("*.diff.test", "A"),
]


def core_config():
    recs = []
    for i, (n, t, v, prio, _, ttl) in enumerate(RECORDS):
        recs.append({"id": "r%d" % i, "name": n, "type": t, "value": v, "ttl": ttl,
                     "priority": prio, "httpProxyEnabled": False})
    return json.dumps({"success": True, "proxies": [], "domains": [
        {"id": "0123456789abcdef0123d1ff", "domain": ZONE, "dnsRecords": recs}]})


def zone_text(serial):
    lines = ["$ORIGIN %s." % ZONE,
             "@ 3600 IN SOA ns1.diff.test. hostmaster.diff.test. %d 3600 600 604800 300" % serial]
    for n, t, _, _, rdata, ttl in RECORDS:
        lines.append("%s %d IN %s %s" % (n, ttl, t, rdata))
    return "\n".join(lines) + "\n"


def view(m):
    if m is None:
        return None
    return {"rcode": m.rcode(), "aa": bool(m.flags & dns.flags.AA),
            "answer": sorted(rr.to_text() for rr in m.answer),
            "authority": sorted(rr.to_text() for rr in m.authority)}


t = Tap()
knotd = shutil.which("knotd") or "/usr/sbin/knotd"
if not os.path.exists(knotd):
    t.ok(False, "knotd installed (deploy/deps.d/dnsd.list)")
    t.done()
with Suite() as s:
    syncd, dnsd, port, _ = start_dns(s, core_config())
    t.ok(wait_dns(port, ZONE), "dnsd serves the zone")
    serial = dnsd.generation()
    kd = os.path.join(s.dir, "knot")
    kport = free_port()
    args = knot_setup(kd, ZONE, zone_text(serial), kport)
    log = open(os.path.join(kd, "knot.log"), "wb")
    kp = subprocess.Popen([knotd] + args, stdout=log,
                          stderr=subprocess.STDOUT)
    try:
        t.ok(wait_until(lambda: query(kport, ZONE, timeout=0.5) is not None, 10), "knotd answers")
        for name, rdtype in QUERIES:
            for tcp in (False, True):
                a = view(query(port, name, rdtype, tcp=tcp, edns=0))
                b = view(query(kport, name, rdtype, tcp=tcp, edns=0))
                t.ok(a is not None and a == b, "%s %s over %s: dnsd and knotd agree" % (
                    name, rdtype, "TCP" if tcp else "UDP"), "dnsd  %r\nknotd %r" % (a, b))
    finally:
        kp.terminate()
        try:
            kp.wait(10)
        except subprocess.TimeoutExpired:
            kp.kill()
            kp.wait()
        log.close()
    t.ok(dnsd.alive(), "dnsd alive")
t.done()
