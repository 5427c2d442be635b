#!/usr/bin/python3
"""dnsd beside Knot DNS and gdnsd: one zone served by each, one dnsperf command run against each in
alternating rounds (A B C, C B A, ...), the server pinned on CPU 1 and dnsperf on CPU 0. Answers
are compared across the servers before the load runs, and every run's lost queries and rcodes
are checked. Then dnsd's GeoDNS (ECS, test GeoIP database) against dnsd's own static figure, and
dnsd's RSS with 10,000 domains under load. Loopback only; about 4 minutes."""
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, os.environ.get("O", "build/default"), "bin")
ROUNDS = int(os.environ.get("ROUNDS", "5"))
SECS = int(os.environ.get("SECONDS_PER_RUN", os.environ.get("SECONDS", "8")))
if SECS > 60:  # bash's own $SECONDS leaks in when the variable is not set by the user
    SECS = 8
SERVER_CPU, LOAD_CPU = "1", "0"
sys.path.insert(0, os.path.join(ROOT, "tests/integration"))

import dns.message  # noqa: E402
import dns.query  # noqa: E402
import dns.rdatatype  # noqa: E402
from knot_conf import knot_setup  # noqa: E402

NHOSTS = 50
ZONE = "bench.test"
GEOZONE = "geo.test"


def free_port():
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            u.close()
    raise RuntimeError("no free port")


def records():
    """(name relative to the apex or '@', type, value, priority) of the static zone."""
    r = [("@", "A", "192.0.2.1", None), ("@", "AAAA", "2001:db8::1", None),
         ("@", "MX", "mail.%s" % ZONE, 10), ("@", "TXT", "v=spf1 mx -all", None),
         ("@", "NS", "ns1.%s" % ZONE, None), ("ns1", "A", "192.0.2.53", None),
         ("www", "A", "192.0.2.2", None), ("www", "AAAA", "2001:db8::2", None),
         ("mail", "A", "192.0.2.25", None), ("api", "A", "192.0.2.3", None),
         ("_dmarc", "TXT", "v=DMARC1; p=none", None)]
    for i in range(NHOSTS):
        r.append(("h%d" % i, "A", "198.51.100.%d" % (i + 1), None))
    return r


def core_answer(domains):
    return json.dumps({"success": True, "domains": domains, "proxies": []})


def dnsd_domain(name, recs, did, locations=None, proxy_all=False):
    out = []
    for i, (n, t, v, prio) in enumerate(recs):
        out.append({"id": "%s%04x" % (did[:20], i), "name": n, "type": t, "value": v, "ttl": 3600,
                    "priority": prio,
                    "httpProxyEnabled": proxy_all and t in ("A", "AAAA") and n != "ns1"})
    dom = {"id": did, "domain": name, "dnsRecords": out, "geoDnsLocations": []}
    if locations:
        dom["dnsRecords"][0]["httpProxyEnabled"] = True
        for code, addr in locations:
            dom["dnsRecords"].append({"name": code, "type": "A", "value": addr, "ttl": 60,
                                      "locationCode": code})
            dom["geoDnsLocations"].append({"code": code, "name": code, "type": "country",
                                           "subdomain": code})
    return dom


def zone_file(gen=1):
    lines = ["$ORIGIN %s." % ZONE, "$TTL 3600",
             "@ 3600 IN SOA ns1.%s. hostmaster.%s. %d 3600 600 604800 300" % (ZONE, ZONE, gen)]
    for n, t, v, prio in records():
        if t in ("MX",):
            v = "%d %s." % (prio, v)
        elif t == "NS":
            v = v + "."
        elif t == "TXT":
            v = '"%s"' % v
        lines.append("%s 3600 IN %s %s" % (n, t, v))
    return "\n".join(lines) + "\n"


def query_lines():
    q = []
    for i in range(NHOSTS):
        q.append("h%d.%s A" % (i, ZONE))
    for n, t in [("", "A"), ("", "AAAA"), ("", "MX"), ("", "TXT"), ("www.", "A"),
                 ("www.", "AAAA"), ("mail.", "A"), ("api.", "A"), ("_dmarc.", "TXT"),
                 ("", "NS")]:
        q += ["%s%s %s" % (n, ZONE, t)] * 5
    for i in range(40):
        q.append("nx%d.%s A" % (i, ZONE))
    return q


def pin_all(pid, cpu):
    subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(pid)], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def cpu_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return int(parts[11]) + int(parts[12])
    except OSError:
        return 0


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_answer(port, name, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            m = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=0.5)
            if m.rcode() == 0 and m.answer:
                return True
        except Exception:
            pass
        time.sleep(0.1)
    return False


def answers(port, lines):
    """Answer section of each query as a comparable set."""
    out = []
    for line in lines:
        name, t = line.split()
        try:
            m = dns.query.udp(dns.message.make_query(name, t, use_edns=False), "127.0.0.1",
                              port=port, timeout=2)
            out.append((m.rcode(), sorted(str(r) for r in m.answer)))
        except Exception as e:
            out.append(("error", str(e)))
    return out


def dnsperf(port, qfile, secs, extra=()):
    cmd = ["taskset", "-c", LOAD_CPU, "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", qfile,
           "-l", str(secs), "-c", "16", "-T", "2", "-q", "200"] + list(extra)
    out = subprocess.run(cmd, capture_output=True, text=True).stdout

    def num(rx, default=0.0):
        m = re.search(rx, out)
        return float(m.group(1)) if m else default
    return {"qps": num(r"Queries per second:\s+([\d.]+)"),
            "sent": num(r"Queries sent:\s+(\d+)"),
            "lost": num(r"Queries lost:\s+(\d+)"),
            "lat": num(r"Average Latency \(s\):\s+([\d.]+)") * 1e6,
            "rcodes": (re.search(r"Response codes:\s+(.*)", out) or [None, ""])[1] if out else "",
            "cmd": " ".join(cmd[3:]), "out": out}


class Procs:
    def __init__(self):
        self.p = []

    def start(self, cmd, env=None, log=None, cpu=None):
        full = (["taskset", "-c", cpu] if cpu else []) + cmd
        f = open(log, "wb") if log else subprocess.DEVNULL
        pr = subprocess.Popen(full, env=env, stdout=f, stderr=subprocess.STDOUT)
        self.p.append(pr)
        return pr

    def stop(self):
        for pr in self.p:
            if pr.poll() is None:
                pr.send_signal(signal.SIGTERM)
        for pr in self.p:
            try:
                pr.wait(10)
            except subprocess.TimeoutExpired:
                pr.kill()


def start_dnsd(procs, d, name, answer, workers="1", geoip=None, cpu=SERVER_CPU):
    run = os.path.join(d, name)
    os.makedirs(os.path.join(run, "run"), exist_ok=True)
    os.makedirs(os.path.join(run, "state"), exist_ok=True)
    cfg = os.path.join(run, "config.json")
    with open(cfg, "w") as f:
        f.write(answer)
    env = {"PATH": os.environ["PATH"], "DEFENRA_RUN_DIR": os.path.join(run, "run"),
           "DEFENRA_STATE_DIR": os.path.join(run, "state"), "DEFENRA_CONFIG": cfg,
           "POLLING_INTERVAL": "3600", "LOG_LEVEL": "warn",
           "SYNCD_ADMIN_LISTEN": "127.0.0.1:%d" % free_port()}
    procs.start([os.path.join(BIN, "defenra-syncd")], env=env, log=os.path.join(run, "syncd.log"),
                cpu=LOAD_CPU)
    port = free_port()
    env = dict(env, DNS_LISTEN="127.0.0.1:%d" % port, DNSD_WORKERS=workers,
               DNSD_ADMIN_LISTEN="127.0.0.1:%d" % free_port(), LOG_LEVEL="info",
               GEOIP_DB=geoip or "/nonexistent.mmdb")
    pr = procs.start([os.path.join(BIN, "defenra-dnsd")], env=env,
                     log=os.path.join(run, "dnsd.log"), cpu=cpu)
    return pr, port


def start_knot(procs, d):
    kd = os.path.join(d, "knot")
    port = free_port()
    args = knot_setup(kd, ZONE, zone_file(), port)
    pr = procs.start(["knotd"] + args, log=os.path.join(kd, "knot.log"), cpu=SERVER_CPU)
    return pr, port


def start_gdnsd(procs, d):
    gd = os.path.join(d, "gdnsd")
    os.makedirs(os.path.join(gd, "zones"), exist_ok=True)
    os.makedirs(os.path.join(gd, "run"), exist_ok=True)
    os.makedirs(os.path.join(gd, "state"), exist_ok=True)
    with open(os.path.join(gd, "zones", ZONE), "w") as f:
        f.write(zone_file())
    port = free_port()
    with open(os.path.join(gd, "config"), "w") as f:
        f.write("options => { listen => [ 127.0.0.1 ], dns_port => %d, udp_threads => 1, "
                "tcp_threads => 1, run_dir => %s/run, state_dir => %s/state }\n" % (port, gd, gd))
    pr = procs.start(["gdnsd", "-c", gd, "start"], log=os.path.join(gd, "gdnsd.log"),
                     cpu=SERVER_CPU)
    return pr, port


def median(xs):
    return statistics.median(xs) if xs else 0.0


def main():
    if not shutil.which("dnsperf") or not shutil.which("knotd"):
        print("bench/dns: needs dnsperf and knot (deploy/deps.d/dnsd.list)")
        return 1
    d = tempfile.mkdtemp(prefix="dfr-bench-dns-")
    procs = Procs()
    try:
        return run(d, procs)
    finally:
        procs.stop()


def run(d, procs):
    lines = query_lines()
    qfile = os.path.join(d, "queries.txt")
    with open(qfile, "w") as f:
        f.write("\n".join(lines) + "\n")
    static = core_answer([dnsd_domain(ZONE, records(), "64b0000000000000000000a1")])
    servers = {}
    pr, port = start_dnsd(procs, d, "dnsd", static)
    servers["dnsd"] = (pr, port)
    pr, port = start_knot(procs, d)
    servers["knotd"] = (pr, port)
    if shutil.which("gdnsd"):
        pr, port = start_gdnsd(procs, d)
        servers["gdnsd"] = (pr, port)
    # GeoDNS: the same zone plus locations, every A/AAAA name proxied (so the A/AAAA answers of
    # the query file are GeoDNS answers), queried with the ECS option of a DE client.
    geo_db = os.path.join(d, "test-city.mmdb")
    subprocess.run(["perl", os.path.join(ROOT, "tests/integration/make_geoip_db.pl"), geo_db],
                   check=True)
    georecs = [(n, t, v, p) for n, t, v, p in records()]
    geo = core_answer([dnsd_domain(ZONE, georecs, "64b0000000000000000000a1",
                                   locations=[("us", "198.51.100.20"), ("de", "203.0.113.10"),
                                              ("gb", "203.0.113.11"), ("jp", "203.0.113.30"),
                                              ("br", "198.51.100.40")], proxy_all=True)])
    pr, port = start_dnsd(procs, d, "dnsd-geo", geo, geoip=geo_db)
    servers["dnsd-geo"] = (pr, port)

    for name, (pr, port) in servers.items():
        if not wait_answer(port, "www." + ZONE):
            print("bench/dns: %s does not answer (logs in %s)" % (name, d))
            if name == "gdnsd":
                del servers[name]
                break
            return 1
        pin_all(pr.pid, SERVER_CPU)

    # Differential check: the same answers from every static server.
    ref = answers(servers["dnsd"][1], lines)
    for name in ("knotd", "gdnsd"):
        if name in servers:
            other = answers(servers[name][1], lines)
            diff = [(lines[i], ref[i], other[i]) for i in range(len(lines)) if ref[i] != other[i]]
            print("answers: dnsd and %s %s" % (name, "agree on all %d queries" % len(lines)
                                               if not diff else "DIFFER on %d" % len(diff)))
            for x in diff[:5]:
                print("   ", x)
    m = dns.message.make_query(ZONE, "A", use_edns=0,
                               options=[dns.edns.ECSOption("81.10.1.0", 24)])
    g = dns.query.udp(m, "127.0.0.1", port=servers["dnsd-geo"][1], timeout=2)
    print("answers: dnsd GeoDNS for a DE client (ECS 81.10.1.0/24): %s" %
          [str(r) for r in g.answer])

    ecs = ["-E", "8:0001180051" + "0a01"]  # family 1, /24, scope 0, 81.10.1
    order = [n for n in ("dnsd", "knotd", "gdnsd", "dnsd-geo") if n in servers]
    res = {n: [] for n in order}
    print("\nrounds: %d x %d s, command: taskset -c %s dnsperf -s 127.0.0.1 -p PORT -d queries.txt "
          "-l %d -c 16 -T 2 -q 200 (dnsd-geo adds %s)" % (ROUNDS, SECS, LOAD_CPU, SECS, " ".join(ecs)))
    for r in range(ROUNDS):
        seq = order if r % 2 == 0 else list(reversed(order))
        for n in seq:
            pr, port = servers[n]
            t0 = cpu_ticks(pr.pid)
            out = dnsperf(port, qfile, SECS, ecs if n == "dnsd-geo" else ())
            t1 = cpu_ticks(pr.pid)
            cpu_s = (t1 - t0) / os.sysconf("SC_CLK_TCK")
            out["cpu_share"] = cpu_s / SECS
            out["us_per_q"] = cpu_s * 1e6 / out["sent"] if out["sent"] else 0
            out["qps_core"] = out["qps"] / out["cpu_share"] if out["cpu_share"] else 0
            out["rss"] = rss_kb(pr.pid)
            res[n].append(out)
            print("round %d %-9s %9.0f qps  lat %6.1f us  lost %d  cpu %.2f  %5.2f us/q  %s" % (
                r + 1, n, out["qps"], out["lat"], out["lost"], out["cpu_share"], out["us_per_q"],
                out["rcodes"].strip()))
    if ROUNDS == 0:  # ROUNDS=0: only the 10,000-domain RSS part
        order = []
    print("\nmedians:")
    for n in order:
        print("  %-9s %9.0f qps  %8.0f qps/server-core  %5.2f us/query  avg latency %6.1f us  "
              "RSS %.1f MiB" % (n, median([x["qps"] for x in res[n]]),
                                median([x["qps_core"] for x in res[n]]),
                                median([x["us_per_q"] for x in res[n]]),
                                median([x["lat"] for x in res[n]]),
                                res[n][-1]["rss"] / 1024))

    def ratio(a, b, key="qps"):
        return median([x[key] / y[key] for x, y in zip(res[a], res[b]) if y[key]])
    print("\nratios (median of per-round ratios):")
    for other in ("knotd", "gdnsd"):
        if res.get(other):
            print("  dnsd / %-6s QPS %.2fx   QPS per server core %.2fx" % (
                other, ratio("dnsd", other), ratio("dnsd", other, "qps_core")))
    if order:
        print("  dnsd GeoDNS / dnsd static QPS %.2fx   per server core %.2fx" % (
            ratio("dnsd-geo", "dnsd"), ratio("dnsd-geo", "dnsd", "qps_core")))
    lost = sum(x["lost"] for n in order for x in res[n])
    print("  lost queries over all runs: %d" % lost)

    # RSS with 10,000 domains.
    procs.stop()
    procs.p = []
    doms = []
    for i in range(10000):
        did = "%024x" % (0x64c000000000000000000000 + i)
        recs = [("@", "A", "192.0.2.%d" % (i % 250 + 1), None), ("@", "AAAA", "2001:db8::%x" % i, None),
                ("www", "CNAME", "d%d.example" % i, None), ("mail", "A", "198.51.100.%d" % (i % 250 + 1), None),
                ("@", "MX", "mail.d%d.example" % i, 10), ("@", "TXT", "v=spf1 mx -all", None),
                ("_dmarc", "TXT", "v=DMARC1; p=none", None), ("api", "A", "203.0.113.%d" % (i % 250 + 1), None)]
        doms.append(dnsd_domain("d%d.example" % i, recs, did,
                                locations=[("us", "198.51.100.20"), ("de", "203.0.113.10")]))
    pr, port = start_dnsd(procs, d, "dnsd-10k", core_answer(doms), workers="2", cpu=None,
                          geoip=geo_db)
    log10k = os.path.join(d, "dnsd-10k", "dnsd.log")

    def applied():
        with open(log10k) as f:
            return "applied, 10000 zones" in f.read()
    apply_peak, end = 0, time.time() + 90
    while time.time() < end and not applied():  # the transient of parsing the snapshot
        apply_peak = max(apply_peak, rss_kb(pr.pid))
        time.sleep(0.05)
    if not wait_answer(port, "mail.d9999.example", timeout=30):
        print("bench/dns: dnsd with 10,000 domains does not answer")
        return 1
    idle_rss = rss_kb(pr.pid)
    qf = os.path.join(d, "queries-10k.txt")
    with open(qf, "w") as f:
        for i in range(0, 10000, 7):
            f.write("d%d.example A\nmail.d%d.example A\nd%d.example MX\nwww.d%d.example A\n" %
                    (i, i, i, i))
    peak = rss_kb(pr.pid)
    perf = subprocess.Popen(["taskset", "-c", LOAD_CPU, "dnsperf", "-s", "127.0.0.1", "-p",
                             str(port), "-d", qf, "-l", "5", "-c", "16", "-T", "2", "-q", "200"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while perf.poll() is None:
        peak = max(peak, rss_kb(pr.pid))
        time.sleep(0.5)
    out = perf.stdout.read()
    qps = re.search(r"Queries per second:\s+([\d.]+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    print("\n10,000 domains (80,000 records + 20,000 locations): dnsd RSS %.1f MiB after the "
          "config applied, peak %.1f MiB under %s qps (lost %s); %.1f MiB at most while the "
          "snapshot was parsed and compiled" % (idle_rss / 1024, peak / 1024,
                                                qps.group(1) if qps else "?",
                                                lost.group(1) if lost else "?", apply_peak / 1024))
    with open(log10k) as f:
        for line in f:
            if "applied" in line:
                print("  " + line.strip().split(" ", 3)[-1])
    shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
