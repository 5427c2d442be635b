#!/usr/bin/python3
"""Config changes while dnsd is under load: a record added, changed and removed, and a domain
removed, are each answered within one second of syncd publishing them, while a dnsperf run
against dnsd loses no query."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dfr import SLOW, Suite, Tap, fixture_json, wait_until  # noqa: E402
from dnsd_util import addrs, change_config, query, rcode, start_dns, wait_dns  # noqa: E402


def publish_time(syncd, gen):
    """Wall-clock time syncd logged publishing generation `gen`, or None."""
    for line in syncd.logs().splitlines():
        if re.search(r"bus, delta %d on \d+ published" % gen, line):
            ts = line.split(" ", 1)[0]
            return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=timezone.utc).timestamp()
    return None


t = Tap()
doc = fixture_json("small.json")
doc["domains"] += fixture_json("geodns.json")["domains"]
with Suite() as s:
    syncd, dnsd, port, _ = start_dns(s, json.dumps(doc))
    t.ok(wait_dns(port, "example.com"), "dnsd serves the config")
    dnsperf = shutil.which("dnsperf")
    perf = None
    seconds = 14
    if dnsperf:
        qf = s.write("queries.txt", "\n".join([
            "example.com A", "mail.example.com A", "example.com MX", "example.com TXT",
            "example.net A", "api.example.net A", "example.org AAAA", "nope.example.com A",
            "www.shop.example.com A", "_dmarc.example.com TXT"]) + "\n")
        rate = "20000" if SLOW == 1 else "2000"
        perf = subprocess.Popen([dnsperf, "-s", "127.0.0.1", "-p", str(port), "-d", qf,
                                 "-l", str(seconds), "-c", "4", "-Q", rate, "-t", "3"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1)
    else:
        t.ok(False, "dnsperf installed (deploy/deps.d/dnsd.list)")

    dom = doc["domains"][0]
    rec = {"id": "6720a1b2c3d4e5f6012346ff", "name": "new", "type": "A", "value": "192.0.2.200",
           "ttl": 300, "priority": None, "httpProxyEnabled": False}

    def step(what, mutate, check):
        gen = dnsd.generation()
        mutate()
        change_config(s, syncd, doc)
        seen = wait_until(lambda: check() and time.time(), 5)
        pub = wait_until(lambda: publish_time(syncd, gen + 1), 2)
        delay = (seen - pub) if seen and pub else None
        t.ok(delay is not None and delay < 1.0, "%s: answered %s s after syncd published it" % (
            what, "%.3f" % delay if delay is not None else "?"))

    step("record added", lambda: dom["dnsRecords"].append(rec),
         lambda: addrs(query(port, "new.example.com", timeout=0.3)) == ["192.0.2.200"])
    step("record changed", lambda: rec.update(value="192.0.2.201"),
         lambda: addrs(query(port, "new.example.com", timeout=0.3)) == ["192.0.2.201"])
    step("record removed", lambda: dom["dnsRecords"].remove(rec),
         lambda: rcode(query(port, "new.example.com", timeout=0.3)) == "NXDOMAIN")
    step("domain removed",
         lambda: doc["domains"].remove([d for d in doc["domains"] if d["domain"] == "example.net"][0]),
         lambda: rcode(query(port, "api.example.net", timeout=0.3)) == "REFUSED")

    if perf is not None:
        out, _ = perf.communicate(timeout=seconds * 3 + 30)
        sent = re.search(r"Queries sent:\s+(\d+)", out)
        lost = re.search(r"Queries lost:\s+(\d+)", out)
        t.ok(sent and int(sent.group(1)) > 1000, "dnsperf sent queries during the changes", out)
        t.ok(lost is not None and int(lost.group(1)) == 0, "dnsperf lost no query", out)
        qps = re.search(r"Queries per second:\s+([\d.]+)", out)
        t.diag("dnsperf: %s queries, %s qps" % (sent.group(1) if sent else "?",
                                                 qps.group(1) if qps else "?"))
    t.ok(dnsd.alive(), "dnsd alive")
t.done()
