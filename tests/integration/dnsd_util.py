"""Helpers for dnsd's integration tests: start syncd (file mode) and dnsd on a free loopback port,
ask with dnspython over UDP or TCP, and build the GeoIP test database."""
import json
import os
import signal
import socket
import subprocess
import time

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from dfr import ROOT, free_port, wait_until


def no_next_poll(config_text):
    """The config without nextPollInterval, so syncd rereads the file every POLLING_INTERVAL."""
    doc = json.loads(config_text)
    doc.pop("nextPollInterval", None)
    return json.dumps(doc)


def start_dns(s, config_text, workers=2, ipv6=False, **extra):
    """syncd in file mode with config_text, then dnsd on 127.0.0.1:<free port>.
    Returns (syncd, dnsd, port, config_path)."""
    path = s.write("config.json", no_next_poll(config_text))
    syncd = s.start("syncd", DEFENRA_CONFIG=path, POLLING_INTERVAL=1)
    port = free_port()
    listen = "127.0.0.1:%d" % port + (",[::1]:%d" % port if ipv6 else "")
    env = dict(DNS_LISTEN=listen, DNSD_WORKERS=workers)
    env.update(extra)
    dnsd = s.start("dnsd", **env)
    return syncd, dnsd, port, path


def query(port, name, rdtype="A", tcp=False, edns=-1, payload=1232, ecs=None, timeout=2.0,
          want_dnssec=False, rd=False, host="127.0.0.1"):
    """The answer (dns.message.Message) to one query, or None on timeout."""
    opts = []
    if ecs is not None:
        addr, plen = ecs.split("/")
        opts.append(dns.edns.ECSOption(addr, int(plen)))
        if edns < 0:
            edns = 0
    q = dns.message.make_query(name, rdtype, use_edns=edns, payload=payload, options=opts,
                               want_dnssec=want_dnssec)
    if edns > 0:
        q.use_edns(edns, payload=payload, options=opts)
    if not rd:
        q.flags &= ~dns.flags.RD
    try:
        if tcp:
            return dns.query.tcp(q, host, port=port, timeout=timeout)
        return dns.query.udp(q, host, port=port, timeout=timeout, ignore_trailing=True)
    except Exception:
        return None


def rrs(msg, section="answer"):
    """The records of a section as sorted 'name ttl type rdata' strings."""
    if msg is None:
        return None
    out = []
    for rrset in getattr(msg, section):
        for rd in rrset:
            out.append("%s %d IN %s %s" % (rrset.name, rrset.ttl, dns.rdatatype.to_text(rrset.rdtype),
                                        rd.to_text()))
    return sorted(out)


def addrs(msg):
    """The A/AAAA addresses of an answer, sorted."""
    if msg is None:
        return None
    return sorted(rd.address for rrset in msg.answer for rd in rrset
                  if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA))


def rcode(msg):
    return None if msg is None else dns.rcode.to_text(msg.rcode())


def wait_dns(port, name, timeout=10.0):
    """Waits until dnsd answers `name` with NOERROR (its config applied)."""
    return wait_until(lambda: rcode(query(port, name, timeout=0.5)) == "NOERROR", timeout)


def make_geoip_db(s):
    """Builds the test GeoIP database in the suite's dir; returns its path or None."""
    path = os.path.join(s.dir, "test-city.mmdb")
    r = subprocess.run(["perl", os.path.join(ROOT, "tests/integration/make_geoip_db.pl"), path],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        print("# make_geoip_db.pl failed: " + r.stderr.strip().replace("\n", "\n# "))
        return None
    return path


def raw_udp(port, data, timeout=1.0):
    """Sends raw bytes over UDP; returns the reply bytes or None."""
    sk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sk.settimeout(timeout)
    try:
        sk.sendto(data, ("127.0.0.1", port))
        return sk.recv(65535)
    except socket.timeout:
        return None
    finally:
        sk.close()


def change_config(s, syncd, doc):
    """Writes a new config and makes syncd read it now (SIGHUP)."""
    s.write("config.json", no_next_poll(doc if isinstance(doc, str) else json.dumps(doc)))
    syncd.proc.send_signal(signal.SIGHUP)


def wait_metric(daemon, name, minimum, timeout=5.0):
    """True once the metric reaches `minimum` (workers add their counts within ~200 ms)."""
    return bool(wait_until(lambda: (daemon.metric(name) or 0) >= minimum, timeout))
