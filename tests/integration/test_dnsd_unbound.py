#!/usr/bin/python3
"""A real resolver in front of dnsd: Debian's unbound, with stub-zones pointing at dnsd on
loopback, resolves the configured names, a CNAME chain and an NXDOMAIN. unbound is confined to
loopback (outgoing-interface 127.0.0.1, no IPv6), so nothing leaves the machine."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dfr import Suite, Tap, fixture_json, free_port, wait_until  # noqa: E402
from dnsd_util import addrs, query, rcode, rrs, start_dns, wait_dns  # noqa: E402

UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"

t = Tap()
if not os.path.exists(UNBOUND):
    t.ok(False, "unbound is installed (deploy/deps.d/dnsd.list)")
    t.done()

doc = fixture_json("small.json")
doc["domains"] += fixture_json("geodns.json")["domains"]
with Suite() as s:
    syncd, dnsd, port, _ = start_dns(s, json.dumps(doc))
    t.ok(wait_dns(port, "example.com"), "dnsd serves the config")
    uport = free_port()
    conf = """server:
    interface: 127.0.0.1
    port: %(uport)d
    outgoing-interface: 127.0.0.1
    do-ip6: no
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "%(dir)s"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 1
    module-config: "iterator"
    do-not-query-localhost: no
    access-control: 127.0.0.0/8 allow
    qname-minimisation: no
    num-threads: 1
""" % {"uport": uport, "dir": s.dir}
    for zone in ("example.com", "example.net", "example.org"):
        conf += 'stub-zone:\n    name: "%s"\n    stub-addr: 127.0.0.1@%d\n' % (zone, port)
    path = s.write("unbound.conf", conf)
    chk = subprocess.run(["unbound-checkconf", path], capture_output=True, text=True)
    t.ok(chk.returncode == 0, "unbound config is valid", chk.stdout + chk.stderr)
    log = open(os.path.join(s.dir, "unbound.log"), "wb")
    ub = subprocess.Popen([UNBOUND, "-d", "-c", path], stdout=log, stderr=subprocess.STDOUT)
    try:
        t.ok(wait_until(lambda: query(uport, "mail.example.com", timeout=0.5, rd=True) is not None, 10),
             "unbound answers")

        def rq(name, rdtype="A"):
            return query(uport, name, rdtype, timeout=3, rd=True)
        m = rq("mail.example.com")
        t.eq(addrs(m), ["192.0.2.25"], "resolved through unbound: mail.example.com A")
        m = rq("example.com", "MX")
        t.eq(rrs(m), ["example.com. 3600 IN MX 10 mail.example.com."], "MX through unbound")
        m = rq("www.example.org")
        t.eq(addrs(m), ["192.0.2.80"], "proxied name through unbound (GeoDNS default)")
        m = rq("www.shop.example.com")
        t.ok(m is not None and "www.shop.example.com. 3600 IN CNAME shop.example.com." in rrs(m)
             and addrs(m) == ["203.0.113.90"], "CNAME chain through unbound", rrs(m))
        m = rq("nope.example.com")
        t.eq(rcode(m), "NXDOMAIN", "NXDOMAIN through unbound")
        m = rq("mail.example.com", "AAAA")
        t.ok(rcode(m) == "NOERROR" and m is not None and not m.answer, "NODATA through unbound")
        m = rq("example.net", "TXT")
        t.eq(rrs(m), ['example.net. 3600 IN TXT "site-verification=3Jq9XwQ0pLr7Tz"'],
             "TXT through unbound")
    finally:
        ub.terminate()
        try:
            ub.wait(10)
        except subprocess.TimeoutExpired:
            ub.kill()
            ub.wait()
        log.close()
    t.ok(dnsd.alive(), "dnsd alive")
t.done()
