#!/usr/bin/python3
"""bench/l4: l4d against HAProxy (TCP) and nginx stream (UDP), side by side in one run.

TCP: iperf3 (one stream) through l4d, through HAProxy 2.6 (mode tcp, option splice-auto) and
direct. UDP: dnsperf through l4d's UDP proxy, through nginx's stream module and direct to the same
knotd. The forwarder under test is pinned to CPU 1 (all its processes); iperf3, dnsperf and knotd
to CPU 0. Rounds alternate the order (A B C, C B A, ...); the figure is the median of the
per-round ratios. CPU is the forwarder's utime+stime (all its processes) over the run.

Environment: L4_BENCH_ROUNDS (7), L4_BENCH_SECONDS (3), DFR_BIN (build/default/bin),
L4_BENCH_ONLY (tcp or udp: one half only).
Loopback only; about 3 minutes.
"""
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
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("DFR_BIN", os.path.join(ROOT, "build/default/bin"))
# Many short rounds rather than a few long ones: on a shared box the load of others comes in
# bursts of seconds, and the two runs of one round are then closer in time.
ROUNDS = int(os.environ.get("L4_BENCH_ROUNDS", "7"))
SECS = int(os.environ.get("L4_BENCH_SECONDS", "3"))
ONLY = os.environ.get("L4_BENCH_ONLY", "")  # "tcp" or "udp" to run one half (development)
SERVER_CPU = "1"
LOAD_CPU = "0"
TCK = os.sysconf("SC_CLK_TCK")

procs = []
tmp = tempfile.mkdtemp(prefix="dfr-bench-l4-")


def free_port():
    for _ in range(50):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
    raise RuntimeError("no free port")


def start(name, argv, cpu, env=None):
    log = open(os.path.join(tmp, name + ".log"), "wb")
    p = subprocess.Popen(["taskset", "-c", cpu] + argv, stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    procs.append(p)
    return p


def tree(pid):
    """pid and its descendants."""
    out = [pid]
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                for c in f.read().split():
                    out += tree(int(c))
    except OSError:
        pass
    return out


def cpu_s(pid):
    total = 0
    for p in tree(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / TCK


def pin_all(pid, cpu):
    for p in tree(pid):
        subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(p)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def sock_drops(pid):
    """Datagrams the kernel dropped at each UDP socket of pid's tree (full receive buffer), by
    inode: /proc/net/udp's last column."""
    inodes = set()
    for p in tree(pid):
        try:
            for fd in os.listdir("/proc/%d/fd" % p):
                try:
                    link = os.readlink("/proc/%d/fd/%s" % (p, fd))
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            pass
    drops = {}
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                for line in f.readlines()[1:]:
                    x = line.split()
                    if len(x) > 12 and x[9] in inodes:
                        drops[x[9]] = int(x[12])
        except OSError:
            pass
    return drops


def drops_delta(a, b):
    return sum(v - a.get(k, 0) for k, v in b.items())


def wait_port(port, udp=False, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if udp:
            return True
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def cleanup():
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except OSError:
                pass
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
    shutil.rmtree(tmp, ignore_errors=True)


# --- fixtures ----------------------------------------------------------------------------------
def write(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def zone_and_queries():
    recs = ["$ORIGIN example.com.", "$TTL 3600",
            "@ SOA ns1 hostmaster 1 3600 600 86400 300", "@ NS ns1", "ns1 A 192.0.2.53",
            "@ A 192.0.2.1", "@ AAAA 2001:db8::1", "@ MX 10 mail", "mail A 192.0.2.25",
            '@ TXT "v=spf1 mx -all"']
    queries = ["example.com A", "example.com AAAA", "example.com MX", "example.com TXT"]
    for i in range(200):
        recs.append("host%d A 192.0.2.%d" % (i, i % 250 + 1))
        queries.append("host%d.example.com A" % i)
        if i % 4 == 0:
            queries.append("missing%d.example.com A" % i)
    return "\n".join(recs) + "\n", "\n".join(queries) + "\n"


def main():
    if os.cpu_count() < 2:
        print("bench/l4 needs 2 CPUs")
        return 1
    for tool in ("iperf3", "haproxy", "nginx", "dnsperf", "knotd"):
        if shutil.which(tool) is None:
            print("bench/l4: %s missing (make deps installs it)" % tool)
            return 1
    ports = {k: free_port() for k in ("iperf", "knot", "l4_tcp", "l4_udp", "hap", "ngx",
                                      "admin")}
    # iperf3 server and knotd: the load side
    start("iperf3", ["iperf3", "-s", "-p", str(ports["iperf"])], LOAD_CPU)
    zone, queries = zone_and_queries()
    write("example.com.zone", zone)
    qfile = write("queries.txt", queries)
    os.makedirs(os.path.join(tmp, "knot"), exist_ok=True)
    kconf = write("knot.conf", """server:
    listen: 127.0.0.1@%d
    udp-workers: 2
    tcp-workers: 1
    background-workers: 1
    rundir: %s/knot
database:
    storage: %s/knot
log:
  - target: stderr
    any: warning
zone:
  - domain: example.com
    file: %s/example.com.zone
""" % (ports["knot"], tmp, tmp, tmp))
    knot = start("knotd", ["knotd", "-c", kconf], LOAD_CPU)

    # l4d with syncd in file mode
    cfg = write("config.json", json.dumps({"success": True, "domains": [], "proxies": [
        {"id": "%024x" % 1, "name": "iperf", "type": "tcp", "sourcePort": ports["l4_tcp"],
         "destinationHost": "127.0.0.1", "destinationPort": ports["iperf"], "enabled": True},
        {"id": "%024x" % 2, "name": "dns", "type": "udp", "sourcePort": ports["l4_udp"],
         "destinationHost": "127.0.0.1", "destinationPort": ports["knot"], "enabled": True}]}))
    env = dict(os.environ, DEFENRA_RUN_DIR=os.path.join(tmp, "run"),
               DEFENRA_STATE_DIR=os.path.join(tmp, "state"), DEFENRA_CONFIG=cfg,
               POLLING_INTERVAL="60", SYNCD_ADMIN_LISTEN="127.0.0.1:%d" % free_port(),
               L4_BIND="127.0.0.1", L4D_ADMIN_LISTEN="127.0.0.1:%d" % ports["admin"],
               LOG_LEVEL="warn")
    os.makedirs(env["DEFENRA_STATE_DIR"], exist_ok=True)
    start("syncd", [os.path.join(BIN, "defenra-syncd")], LOAD_CPU, env)
    l4d = start("l4d", [os.path.join(BIN, "defenra-l4d")], SERVER_CPU, env)

    hcfg = write("haproxy.cfg", """global
    maxconn 1000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option splice-auto
listen fwd
    bind 127.0.0.1:%d
    server iperf 127.0.0.1:%d
""" % (ports["hap"], ports["iperf"]))
    hap = start("haproxy", ["haproxy", "-db", "-f", hcfg], SERVER_CPU)
    ncfg = write("nginx.conf", """load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
daemon off;
error_log stderr warn;
pid %s/nginx.pid;
events { worker_connections 4096; }
stream {
    server {
        listen 127.0.0.1:%d udp;
        proxy_pass 127.0.0.1:%d;
        proxy_responses 1;
        proxy_timeout 10s;
    }
}
""" % (tmp, ports["ngx"], ports["knot"]))
    ngx = start("nginx", ["nginx", "-p", tmp, "-c", ncfg, "-e", "stderr"], SERVER_CPU)

    ok = all(wait_port(ports[k]) for k in ("iperf", "hap"))
    end = time.time() + 10
    while time.time() < end:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % ports["admin"],
                                        timeout=1) as r:
                if r.status == 200:
                    break
        except Exception:
            time.sleep(0.1)
    ok = ok and wait_port(ports["l4_tcp"])
    if not ok:
        print("bench/l4: a server did not start; logs in", tmp)
        return 1
    time.sleep(0.5)
    for p in (knot,):
        pin_all(p.pid, LOAD_CPU)
    for p in (l4d, hap, ngx):
        pin_all(p.pid, SERVER_CPU)

    with open("/proc/loadavg") as f:
        print("load average before: %s" % " ".join(f.read().split()[:3]), flush=True)

    # --- TCP ------------------------------------------------------------------------------
    def iperf(port):
        out = subprocess.run(["taskset", "-c", LOAD_CPU, "iperf3", "-c", "127.0.0.1", "-p",
                              str(port), "-t", str(SECS), "-J"], capture_output=True, text=True)
        try:
            doc = json.loads(out.stdout)
            return doc["end"]["sum_received"]["bits_per_second"] / 1e9, doc["end"]["sum_received"]["bytes"]
        except (ValueError, KeyError):
            return 0.0, 0

    tcp_targets = [("l4d", ports["l4_tcp"], l4d), ("haproxy", ports["hap"], hap),
                   ("direct", ports["iperf"], None)]
    tcp = {n: [] for n, _, _ in tcp_targets}
    for name, port, proc in tcp_targets:  # warm-up: first connections, pipes, caches
        subprocess.run(["taskset", "-c", LOAD_CPU, "iperf3", "-c", "127.0.0.1", "-p", str(port),
                        "-t", "1"], capture_output=True)
    print("TCP bulk: iperf3 -t %d, 1 stream, %d rounds" % (SECS, ROUNDS), flush=True)
    for r in range(ROUNDS if ONLY != "udp" else 0):
        order = tcp_targets if r % 2 == 0 else tcp_targets[::-1]
        for name, port, proc in order:
            c0 = cpu_s(proc.pid) if proc else 0
            t0 = time.time()
            gbps, nbytes = iperf(port)
            wall = time.time() - t0
            c1 = cpu_s(proc.pid) if proc else 0
            share = (c1 - c0) / wall
            tcp[name].append((gbps, share))
            print("  round %d %-8s %6.2f Gbit/s  server CPU %.2f core (%.3f core per Gbit/s)"
                  % (r + 1, name, gbps, share, share / gbps if gbps else 0), flush=True)

    # --- UDP ------------------------------------------------------------------------------
    def dnsperf(port):
        out = subprocess.run(["taskset", "-c", LOAD_CPU, "dnsperf", "-s", "127.0.0.1", "-p",
                              str(port), "-d", qfile, "-l", str(SECS), "-c", "16", "-T", "1",
                              "-q", "200"], capture_output=True, text=True)
        txt = out.stdout
        def num(pat):
            m = re.search(pat, txt)
            return float(m.group(1)) if m else -1
        rc_bad = re.findall(r"(SERVFAIL|REFUSED|FORMERR) (\d+)", txt)
        return {"qps": num(r"Queries per second:\s+([\d.]+)"),
                "sent": num(r"Queries sent:\s+(\d+)"),
                "lost": num(r"Queries lost:\s+(\d+)"),
                "bad": sum(int(n) for _, n in rc_bad)}

    def l4d_udp_counters():
        vals = {}
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % ports["admin"],
                                        timeout=2) as r:
                for line in r.read().decode().splitlines():
                    for k in ("from_client", "to_client", "dropped"):
                        if line.startswith("l4d_udp_datagrams_%s_total{" % k):
                            vals[k] = float(line.rsplit(" ", 1)[1])
        except OSError:
            pass
        return vals

    udp_targets = [("l4d", ports["l4_udp"], l4d), ("nginx", ports["ngx"], ngx),
                   ("direct", ports["knot"], None)]
    udp = {n: [] for n, _, _ in udp_targets}
    for name, port, proc in udp_targets:  # warm-up
        subprocess.run(["taskset", "-c", LOAD_CPU, "dnsperf", "-s", "127.0.0.1", "-p", str(port),
                        "-d", qfile, "-l", "1", "-c", "16", "-q", "200"], capture_output=True)
    print("UDP DNS: dnsperf -l %d -c 16 -q 200 to knotd, %d rounds" % (SECS, ROUNDS), flush=True)
    for r in range(ROUNDS if ONLY != "tcp" else 0):
        order = udp_targets if r % 2 == 0 else udp_targets[::-1]
        for name, port, proc in order:
            c0 = cpu_s(proc.pid) if proc else 0
            k0 = l4d_udp_counters()
            d0, n0 = sock_drops(l4d.pid), sock_drops(knot.pid)
            t0 = time.time()
            res = dnsperf(port)
            wall = time.time() - t0
            c1 = cpu_s(proc.pid) if proc else 0
            time.sleep(0.2)  # answers of the queries dnsperf stopped waiting for
            k1 = l4d_udp_counters()
            res["l4d_drops"] = drops_delta(d0, sock_drops(l4d.pid))
            res["knot_drops"] = drops_delta(n0, sock_drops(knot.pid))
            res["share"] = (c1 - c0) / wall
            res["fwd"] = {k: k1.get(k, 0) - k0.get(k, 0) for k in k1}
            udp[name].append(res)
            extra = ""
            if name == "l4d":
                f = res["fwd"]
                extra = ("\n      l4d: %d sent by dnsperf, %d forwarded, %d answers back, %d "
                         "dropped by l4d, %d by the kernel at l4d's sockets" % (
                             res["sent"], f.get("from_client", 0), f.get("to_client", 0),
                             f.get("dropped", 0), res["l4d_drops"]))
            extra += "  (knotd's socket dropped %d)" % res["knot_drops"]
            print("  round %d %-8s %8.0f q/s  lost %d  bad rcodes %d  server CPU %.2f core%s"
                  % (r + 1, name, res["qps"], res["lost"], res["bad"], res["share"], extra),
                  flush=True)

    # --- summary ------------------------------------------------------------------------------
    def ratio(a, b, key):
        if not a:
            return 0.0
        return statistics.median(key(x) / key(y) if key(y) else 0 for x, y in zip(a, b))

    gb = lambda x: x[0]
    cpg = lambda x: x[1] / x[0] if x[0] else 0
    qps = lambda x: x["qps"]
    t_ratio = ratio(tcp["l4d"], tcp["haproxy"], gb)
    t_cpu = ratio(tcp["l4d"], tcp["haproxy"], cpg)
    t_direct = ratio(tcp["l4d"], tcp["direct"], gb)
    h_direct = ratio(tcp["haproxy"], tcp["direct"], gb)
    u_ratio = ratio(udp["l4d"], udp["nginx"], qps)
    u_direct = ratio(udp["l4d"], udp["direct"], qps)
    n_direct = ratio(udp["nginx"], udp["direct"], qps)
    # l4d lost nothing when every query dnsperf sent was forwarded, l4d dropped none and the
    # kernel dropped none at l4d's sockets. Answers knotd never sent (its own socket overflows
    # when its core is starved; direct runs lose them too) are the backend's, printed apart;
    # dnsperf's "lost" counts both, plus queries in flight when its time is up.
    lost = sum(x["sent"] - x["fwd"].get("from_client", 0) for x in udp["l4d"]) + \
        sum(x["fwd"].get("dropped", 0) + x["l4d_drops"] + x["bad"] for x in udp["l4d"])
    unanswered = sum(x["fwd"].get("from_client", 0) - x["fwd"].get("to_client", 0)
                     for x in udp["l4d"])
    print("UDP  through l4d: %d queries knotd did not answer (drops at knotd's socket over all "
          "runs: %d)" % (unanswered, sum(x["knot_drops"] for n in udp for x in udp[n])))
    for n in ("l4d", "nginx", "direct"):
        print("UDP  dnsperf 'lost' (incl. in flight at the end) %s: %d"
              % (n, sum(x["lost"] for x in udp[n])))
    med = lambda xs: statistics.median(xs) if xs else 0
    with open("/proc/loadavg") as f:
        print("load average after: %s" % " ".join(f.read().split()[:3]))
    wins_t = sum(a[0] > b[0] for a, b in zip(tcp["l4d"], tcp["haproxy"]))
    wins_u = sum(a["qps"] > b["qps"] for a, b in zip(udp["l4d"], udp["nginx"]))
    print()
    print("TCP  l4d ahead of haproxy in %d of %d rounds; UDP l4d ahead of nginx in %d of %d"
          % (wins_t, len(tcp["l4d"]), wins_u, len(udp["l4d"])))
    print("TCP  l4d %.2f Gbit/s, haproxy %.2f, direct %.2f (medians)"
          % (med([x[0] for x in tcp["l4d"]]), med([x[0] for x in tcp["haproxy"]]),
             med([x[0] for x in tcp["direct"]])))
    print("TCP  l4d / haproxy throughput: %.2fx (target >= 1.10x)" % t_ratio)
    print("TCP  l4d / haproxy CPU per Gbit/s: %.2fx (target <= 1.00x)" % t_cpu)
    print("TCP  l4d / direct: %.2fx; haproxy / direct: %.2fx" % (t_direct, h_direct))
    print("UDP  l4d %.0f q/s, nginx %.0f, direct %.0f (medians)"
          % (med([x["qps"] for x in udp["l4d"]]), med([x["qps"] for x in udp["nginx"]]),
             med([x["qps"] for x in udp["direct"]])))
    print("UDP  l4d / nginx: %.2fx (target >= 1.30x); queries l4d lost: %d"
          % (u_ratio, lost))
    print("UDP  l4d / nginx server CPU per query: %.2fx"
          % ratio(udp["l4d"], udp["nginx"], lambda x: x["share"] / x["qps"] if x["qps"] else 0))
    print("UDP  l4d / direct: %.2fx; nginx / direct: %.2fx" % (u_direct, n_direct))
    passed = (ONLY == "udp" or (t_ratio >= 1.10 and t_cpu <= 1.0)) and \
        (ONLY == "tcp" or (u_ratio >= 1.30 and lost == 0))
    print("bench/l4: %s" % ("targets met" if passed else "targets NOT met"))
    return 0 if passed else 1


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        cleanup()
    sys.exit(rc)
