#!/usr/bin/python3
"""dnsd's GeoDNS with a real MaxMind database built at test time (make_geoip_db.pl, Perl's
MaxMind::DB::Writer): ECS subnets of several countries and continents and an unknown one,
the neighbour list, continent entries, IPv6 clients and IPv6 node addresses, the source address
when there is no ECS, the ECS scope echoed, and the metrics."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dfr import Suite, Tap, fixture_json, wait_until  # noqa: E402
from dnsd_util import addrs, make_geoip_db, query, rcode, start_dns, wait_dns, wait_metric  # noqa: E402


def merged():
    base = fixture_json("geodns.json")
    for f in ("small.json", "edge.json"):
        base["domains"] += fixture_json(f)["domains"]
    return json.dumps(base)


def scope(msg):
    if msg is None:
        return None
    for o in msg.options:
        if o.otype == 8:
            return o.scopelen
    return None


t = Tap()
with Suite() as s:
    db = make_geoip_db(s)
    t.ok(db is not None, "test GeoIP database built with MaxMind::DB::Writer")
    syncd, dnsd, port, _ = start_dns(s, merged(), GEOIP_DB=db or "/nonexistent")
    t.ok(wait_dns(port, "example.net"), "dnsd serves the config")
    t.ok("geo, GeoIP database" in dnsd.logs() and "opened" in dnsd.logs(), "database opened")

    cases = [
        # (name, type, ECS subnet, expected addresses, what)
        ("example.net", "A", "81.10.1.0/24", ["203.0.113.10"], "DE client: the de entry"),
        ("example.net", "A", "84.10.7.0/24", ["198.51.100.20"], "US client: the us entry"),
        ("example.net", "A", "85.10.0.0/24", ["198.51.100.40"], "BR client: the br entry"),
        ("example.net", "A", "87.10.0.0/24", ["203.0.113.30"], "JP client: the jp entry"),
        ("example.net", "A", "83.10.0.0/24", ["203.0.113.10"], "PL (no entry): neighbour de"),
        ("example.net", "A", "86.10.0.0/24", ["203.0.113.30"], "NZ (no entry): neighbour au"),
        ("example.net", "A", "90.10.0.0/24", ["198.51.100.40"], "CL (no entry): neighbour ar"),
        ("example.net", "A", "91.10.0.0/24", ["203.0.113.30"], "IN (no entry): neighbour sg"),
        ("example.net", "A", "88.10.0.0/24", ["203.0.113.10"],
         "continent EU without a country: stands for de"),
        ("example.net", "A", "89.10.0.0/24", ["198.51.100.80"],
         "IS: no entry, no neighbour list: the default (apex A)"),
        ("example.net", "A", "100.64.0.0/24", ["198.51.100.80"], "unknown address: default"),
        ("example.net", "A", "2a00:1450:4000::/56", ["203.0.113.10"], "IPv6 ECS, DE: the de entry"),
        ("example.net", "A", "2600:1f00:1::/48", ["198.51.100.20"], "IPv6 ECS, US"),
        ("www.example.net", "A", "81.10.1.0/24", ["203.0.113.10"], "proxied sub-domain: GeoDNS"),
        ("api.example.net", "A", "81.10.1.0/24", ["198.51.100.81"], "not proxied: its own record"),
        ("example.org", "A", "82.10.0.0/24", ["203.0.113.10"], "FR, no fr entry: the europe entry"),
        ("example.org", "A", "83.10.0.0/24", ["203.0.113.10"], "PL: europe before the neighbours"),
        ("example.org", "A", "84.10.0.0/24", ["198.51.100.20"], "US: the us entry"),
        ("example.org", "A", "85.10.0.0/24", ["198.51.100.40"], "BR: south-america"),
        ("example.org", "A", "86.10.0.0/24", ["203.0.113.30"], "NZ: oceania"),
        ("www.example.org", "A", "82.10.0.0/24", ["203.0.113.10"], "proxied CNAME name: GeoDNS"),
        ("example.org", "AAAA", "82.10.0.0/24", ["2001:db8:80::1"],
         "AAAA without IPv6 locations: the apex AAAA"),
        ("edgecase.example.net", "AAAA", "81.10.0.0/24", ["2001:db8:4::53"],
         "IPv6 node address of the de location answers AAAA"),
        ("edgecase.example.net", "A", "81.10.0.0/24", ["192.0.2.40"],
         "de has only IPv6: A from the europe entry"),
        ("example.com", "A", "87.10.0.0/24", ["203.0.113.10"], "small.json: JP entry"),
        ("example.com", "A", "86.10.0.0/24", ["203.0.113.10"],
         "small.json: NZ, neighbours au sg id jp: jp"),
        ("example.com", "A", "89.10.0.0/24", ["192.0.2.10"], "small.json: IS: default"),
    ]
    for name, rdtype, ecs, want, what in cases:
        m = query(port, name, rdtype, ecs=ecs)
        t.eq(addrs(m), want, "%s %s from %s: %s" % (name, rdtype, ecs, what))
        if m is not None and name == "example.net" and ecs == "81.10.1.0/24":
            t.ok(all(rr.ttl == 60 for rr in m.answer), "GeoDNS TTL 60")
            t.eq(scope(m), 16, "ECS scope echoed: the database network (/16)")
        if m is not None and name == "api.example.net":
            t.eq(scope(m), 0, "ECS scope 0 for an answer that does not depend on the client")

    # No ECS: the source address (127.0.0.1 is JP in the test database).
    t.eq(addrs(query(port, "example.net")), ["203.0.113.30"], "no ECS: the source address (JP)")
    m = query(port, "example.net", ecs="0.0.0.0/0")
    t.eq(addrs(m), ["203.0.113.30"], "ECS /0: the source address")
    t.eq(scope(m), 0, "ECS /0: scope 0")
    t.eq(addrs(query(port, "example.net", tcp=True, ecs="84.10.0.0/24")), ["198.51.100.20"],
         "ECS over TCP")

    # Same subnet twice: a cache hit.
    for _ in range(3):
        query(port, "example.net", ecs="81.10.9.0/24")
    t.ok(wait_metric(dnsd, "dnsd_geoip_cache_hits_total", 2), "GeoIP cache hits counted")
    t.ok(wait_metric(dnsd, "dnsd_geoip_cache_misses_total", 5), "GeoIP cache misses counted")
    t.ok(wait_metric(dnsd, 'dnsd_geodns_answers_total{location="de"}', 3),
         "GeoDNS answers by location: de")
    t.ok(wait_metric(dnsd, 'dnsd_geodns_answers_total{location="europe"}', 2),
         "GeoDNS answers by location: europe")
    t.ok(wait_metric(dnsd, 'dnsd_geodns_answers_total{location="default"}', 2),
         "GeoDNS answers by location: default")
    t.eq(dnsd.stop(), 0, "dnsd stops cleanly")
t.done()
