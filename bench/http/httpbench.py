#!/usr/bin/python3
"""bench/http: httpd against nginx (proxy_pass, upstream keep-alive) and HAProxy, side by side in
one run, in front of the same origin (BENCHMARKS.md, HTTP and HTTPS parts).

Origin: nginx, 1 worker, `return 200 "ok\\n"`, pinned to CPU 0 with wrk. Proxies under test
pinned to CPU 1 (every process and thread): httpd (with syncd in file mode; syncd is not on the
request path and sits on CPU 0), nginx with 2 workers and `keepalive 64`, HAProxy with 2 threads
and `http-reuse always`. Load: `wrk -t1 -c64 -d<S>s --latency` with the Host of a proxied domain.
Rounds alternate the order (A B C, C B A, ...); figures are the medians of per-round ratios. A run
with a non-2xx answer or a socket error counts as nothing (the script says so and fails).

With defenra-wafd built, a fourth column runs httpd on a domain with the typical WAF rule set
(User-Agent blocklist, a path rule, a per-address counter with incr and a TTL) against httpd's own
no-WAF figure of the same round (wafd pinned to CPU 1 too).

HTTPS (HTTP_BENCH_SETS has "https"): httpd and nginx terminate TLS with the same ECDSA P-256
certificate (made with openssl in the temp dir) in front of the same origin: `tls` is wrk over TLS
with keep-alive (requests/s), `tls-new` is wrk with `Connection: close`, a new TLS 1.3 connection
and handshake per request, so its requests/s are new handshakes per second. wrk keeps its SSL
object across reconnections and offers the last session's ticket, so these handshakes are
resumptions (PSK with ECDHE, no certificate) as long as the server sends a new ticket after each
one (a TLS 1.3 ticket is used once): the script prints the share httpd resumed (its metrics).
`h2` is `h2load -c64 -m10` over ALPN h2 when httpd offers h2 (else it is skipped and said so).
HTTP_BENCH_SETS=tls-new runs the new-handshake pair alone. wrk sends the SNI "127.0.0.1": httpd
runs with HTTPS_DEFAULT_DOMAIN (nginx serves its default server the same way). wrk on CPU 0 does
the client half of every handshake: at -c64 CPU 0 is as busy as CPU 1, so a client that must
check a certificate on every other connection makes fewer of them.

"c256" runs the three plain HTTP proxies again with 256 connections (BENCHMARKS.md's second
setting). nginx keeps its anchor `keepalive 64`: past 64 busy backend connections per worker it
opens and closes one per request, which is its cost at that setting, and the reason its figure
drops there (docs/performance-http.md has it with `keepalive 256` too).

Environment: HTTP_BENCH_ROUNDS (7), HTTP_BENCH_SECONDS (5), HTTP_BENCH_CONNS (64),
HTTP_BENCH_SETS ("http,c256,https"; or "tls-new"), DFR_BIN (build/default/bin). Loopback only;
about 8 minutes with all three sets.
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
ROUNDS = int(os.environ.get("HTTP_BENCH_ROUNDS", "7"))
SECS = int(os.environ.get("HTTP_BENCH_SECONDS", "5"))
SETS = [x.strip() for x in os.environ.get("HTTP_BENCH_SETS", "http,c256,https").split(",")]
CONNS = int(os.environ.get("HTTP_BENCH_CONNS", "64"))
WIDE_CONNS = 256  # the "c256" set: BENCHMARKS.md's second connection count
SERVER_CPU = "1"
LOAD_CPU = "0"
TCK = os.sysconf("SC_CLK_TCK")

WAF_LUA = r"""
local ua = ngx.var.http_user_agent or ""
local bad = {"sqlmap", "nikto", "nmap", "masscan", "zgrab", "python-requests", "curl/7.1",
             "wget", "libwww", "httpclient", "scrapy", "nessus"}
for _, b in ipairs(bad) do
  if string.find(ua, b, 1, true) then ngx.exit(403) end
end
if string.find(ngx.var.uri, "/admin", 1, true) then ngx.exit(403) end
local key = "rl:" .. ngx.var.remote_addr
local n = ngx.shared.cache:incr(key, 1, 0, 60)
if n and n > 100000000 then ngx.exit(429) end
"""

procs = []
tmp = tempfile.mkdtemp(prefix="dfr-bench-http-")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(name, argv, cpu, env=None):
    log = open(os.path.join(tmp, name + ".log"), "wb")
    p = subprocess.Popen(["taskset", "-c", cpu] + argv, stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    procs.append(p)
    return p


def tree(pid):
    out = [pid]
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                for c in f.read().split():
                    out += tree(int(c))
    except OSError:
        pass
    return out


def cpu_s(pids):
    total = 0
    for pid in pids:
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


def write(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


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


def http_status(port, host, path="/"):
    try:
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), headers={"Host": host})
        with urllib.request.urlopen(req, timeout=1) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except Exception:
        return 0, b""


def tls_handshakes(admin_port):
    """(full, resumed) TLS handshakes httpd has counted (its /metrics), or None."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin_port, timeout=2) as r:
            text = r.read().decode()
    except Exception:
        return None
    n = dict(re.findall(r'httpd_tls_handshakes_total\{kind="(\w+)"\} (\d+)', text))
    return int(n.get("full", 0)), int(n.get("resumed", 0))


def wait_ok(port, host, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        st, body = http_status(port, host)
        if st == 200 and body == b"ok\n":
            return True
        time.sleep(0.1)
    return False


def nginx_conf(name, workers, body):
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    return write(name + ".conf", """
worker_processes %d;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %s/body;
    proxy_temp_path %s/proxy;
    fastcgi_temp_path %s/fcgi;
    uwsgi_temp_path %s/uwsgi;
    scgi_temp_path %s/scgi;
    keepalive_requests 1000000;
    %s
}
""" % (workers, d, d, d, d, d, d, d, body))


def unit_ms(v, u):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[u]


def wrk(port, host, scheme="http", close=False, conns=CONNS):
    """(requests/s, p99 ms, total requests, problems) of one wrk run pinned to LOAD_CPU."""
    extra = ["-H", "Connection: close"] if close else []
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c%d" % conns,
                          "-d%ds" % SECS, "--latency", "-H", "Host: " + host] + extra +
                         ["%s://127.0.0.1:%d/" % (scheme, port)], capture_output=True, text=True,
                         timeout=SECS + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = unit_ms(m.group(1), m.group(2)) if m else float("nan")
    total = int(re.search(r"(\d+) requests in", out).group(1))
    problems = []
    for pat in (r"Non-2xx or 3xx responses: \d+", r"Socket errors: [^\n]+"):
        mm = re.search(pat, out)
        if mm:
            problems.append(mm.group(0))
    return rps, p99, total, problems


def h2load(port, host):
    """The same for one h2load run (64 connections x 10 streams) pinned to LOAD_CPU."""
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "h2load", "-c%d" % CONNS, "-m10",
                          "-D%d" % SECS, "-H", ":authority: " + host,
                          "https://127.0.0.1:%d/" % port], capture_output=True, text=True,
                         timeout=SECS + 30).stdout
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    rps = float(m.group(1)) if m else 0.0
    m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) "
                  r"failed, (\d+) errored", out)
    total = int(m.group(3)) if m else 0
    m2 = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    problems = []
    if m is None or m2 is None or total == 0:
        problems.append("h2load output not understood: " + out[-300:])
    else:
        if int(m.group(4)) or int(m.group(5)):
            problems.append("%s failed, %s errored" % (m.group(4), m.group(5)))
        if int(m2.group(3)) or int(m2.group(4)):
            problems.append("non-2xx: %s 4xx, %s 5xx" % (m2.group(3), m2.group(4)))
    m = re.search(r"time for request:\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)", out)
    p99 = unit_ms(m.group(1), m.group(2)) if m else float("nan")  # the max, h2load has no p99
    return rps, p99, total, problems


def offers_h2(port):
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername",
                        "bench.test", "-alpn", "h2,http/1.1"], input=b"", capture_output=True,
                       timeout=10)
    return b"ALPN protocol: h2" in r.stdout


def make_cert():
    key, crt = os.path.join(tmp, "bench.key"), os.path.join(tmp, "bench.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt, "-days",
                    "30", "-subj", "/CN=bench.test", "-addext", "subjectAltName=DNS:bench.test"],
                   check=True, capture_output=True)
    return crt, key


def main():
    if os.cpu_count() < 2:
        print("bench/http needs 2 CPUs")
        return 1
    for tool in ("wrk", "haproxy", "nginx", "taskset"):
        if shutil.which(tool) is None:
            print("bench/http: %s missing (make deps installs it)" % tool)
            return 1
    ports = {k: free_port() for k in ("origin", "httpd", "ngx", "hap", "admin", "wafadmin",
                                      "httpds", "ngxs")}
    tls = "https" in SETS
    tls_kinds = ("tls", "tls-new") if tls else ("tls-new",) if "tls-new" in SETS else ()
    crt, key = make_cert()
    origin = start("origin", ["nginx", "-e", "stderr", "-g", "daemon off;", "-c", nginx_conf(
        "origin", 1, 'server { listen 127.0.0.1:%d; location / { return 200 "ok\\n"; } }'
        % ports["origin"])], LOAD_CPU)

    have_waf = os.path.exists(os.path.join(BIN, "defenra-wafd"))
    doms = [{"id": "%024x" % 1, "domain": "bench.test", "description": "",
             "dnsRecords": [{"id": "r1", "name": "@", "type": "A", "value": "127.0.0.1",
                             "ttl": 60, "priority": None, "httpProxyEnabled": True}],
             "geoDnsLocations": [], "httpProxy": {"type": "both", "antiDDoS": None},
             "ssl": {"enabled": True, "certificate": open(crt).read(),
                     "privateKey": open(key).read(), "autoRenew": False,
                     "acmeHttpChallenge": {"token": "", "keyAuthorization": ""}},
             "luaCode": None}]
    if have_waf:
        w = json.loads(json.dumps(doms[0]))
        w["id"] = "%024x" % 2
        w["domain"] = "waf.test"
        w["dnsRecords"][0]["id"] = "r2"
        w["luaCode"] = WAF_LUA
        doms.append(w)
    cfg = write("config.json", json.dumps({"success": True, "domains": doms, "proxies": []}))
    env = dict(os.environ, DEFENRA_RUN_DIR=os.path.join(tmp, "run"),
               DEFENRA_STATE_DIR=os.path.join(tmp, "state"), DEFENRA_CONFIG=cfg,
               POLLING_INTERVAL="60", SYNCD_ADMIN_LISTEN="127.0.0.1:%d" % free_port(),
               HTTP_LISTEN="127.0.0.1:%d" % ports["httpd"],
               HTTPS_LISTEN="127.0.0.1:%d" % ports["httpds"], HTTPS_DEFAULT_DOMAIN="bench.test",
               HTTPD_ADMIN_LISTEN="127.0.0.1:%d" % ports["admin"],
               WAFD_ADMIN_LISTEN="127.0.0.1:%d" % ports["wafadmin"],
               HTTPD_UPSTREAM_PORT=str(ports["origin"]), HTTPD_WORKERS="2", WAFD_WORKERS="1",
               LOG_LEVEL="warn")
    env.pop("CORE_URL", None)
    os.makedirs(env["DEFENRA_STATE_DIR"], exist_ok=True)
    start("syncd", [os.path.join(BIN, "defenra-syncd")], LOAD_CPU, env)
    httpd = start("httpd", [os.path.join(BIN, "defenra-httpd")], SERVER_CPU, env)
    servers = {"httpd": [httpd]}
    if have_waf:
        servers["httpd"].append(start("wafd", [os.path.join(BIN, "defenra-wafd")], SERVER_CPU,
                                      env))
    ngx = start("nginx", ["nginx", "-e", "stderr", "-g", "daemon off;", "-c", nginx_conf(
        "proxy", 2, """
    upstream origin { server 127.0.0.1:%d; keepalive 64; }
    server { listen 127.0.0.1:%d;
        location / { proxy_pass http://origin; proxy_http_version 1.1;
                     proxy_set_header Connection ""; proxy_set_header Host $host; } }
    server { listen 127.0.0.1:%d ssl http2;
        ssl_certificate %s; ssl_certificate_key %s;
        ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets on;
        location / { proxy_pass http://origin; proxy_http_version 1.1;
                     proxy_set_header Connection ""; proxy_set_header Host $host;
                     proxy_set_header X-Forwarded-Proto https; } }
""" % (ports["origin"], ports["ngx"], ports["ngxs"], crt, key))], SERVER_CPU)
    hap = start("haproxy", ["haproxy", "-f", write("haproxy.cfg", """global
    maxconn 4096
    nbthread 2
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend fe
    bind 127.0.0.1:%d
    default_backend be
backend be
    server origin 127.0.0.1:%d maxconn 1000
""" % (ports["hap"], ports["origin"]))], SERVER_CPU)
    servers["nginx"] = [ngx]
    servers["haproxy"] = [hap]

    # name -> (port, host, kind): kind http, tls (keep-alive), tls-new (a handshake a request), h2
    targets = {}
    if "http" in SETS:
        targets = {"httpd": (ports["httpd"], "bench.test", "http"),
                   "nginx": (ports["ngx"], "bench.test", "http"),
                   "haproxy": (ports["hap"], "bench.test", "http")}
    else:
        have_waf = False
    if "c256" in SETS:
        for name, port in (("httpd", ports["httpd"]), ("nginx", ports["ngx"]),
                           ("haproxy", ports["hap"])):
            targets[name + "-c256"] = (port, "bench.test", "c256")
            servers[name + "-c256"] = servers[name]
    if have_waf:
        targets["httpd+waf"] = (ports["httpd"], "waf.test", "http")
        servers["httpd+waf"] = servers["httpd"]
    have_h2 = False
    if tls_kinds:
        for kind in tls_kinds:
            targets["httpd-" + kind] = (ports["httpds"], "bench.test", kind)
            targets["nginx-" + kind] = (ports["ngxs"], "bench.test", kind)
            servers["httpd-" + kind] = servers["httpd"]
            servers["nginx-" + kind] = servers["nginx"]
    if have_waf:
        # The WAF column means something only when wafd judges: /admin must be blocked.
        end = time.time() + 10
        while time.time() < end and http_status(ports["httpd"], "waf.test", "/admin")[0] != 403:
            time.sleep(0.2)
        if http_status(ports["httpd"], "waf.test", "/admin")[0] != 403:
            print("bench/http: wafd does not judge (no 403 for /admin): WAF column skipped")
            have_waf = False
            del targets["httpd+waf"]
            del servers["httpd+waf"]
    if tls:
        have_h2 = wait_ok(ports["httpd"], "bench.test") and offers_h2(ports["httpds"])
        if have_h2 and shutil.which("h2load"):
            targets["httpd-h2"] = (ports["httpds"], "bench.test", "h2")
            targets["nginx-h2"] = (ports["ngxs"], "bench.test", "h2")
            servers["httpd-h2"] = servers["httpd"]
            servers["nginx-h2"] = servers["nginx"]
        else:
            print("bench/http: httpd does not offer h2 (ALPN): h2 not measured")
            have_h2 = False
    for name, (port, host, kind) in targets.items():
        if kind != "http" and name != "httpd-tls-new" and name != "nginx-tls-new":
            continue
        if kind != "http":  # ready over plain HTTP first (same process, same routes)
            port = ports["httpd"] if name.startswith("httpd") else ports["ngx"]
        if not wait_ok(port, host):
            print("bench/http: %s does not answer 200 ok on :%d (logs in %s)" % (name, port, tmp))
            return 1
    time.sleep(0.5)
    for ps in servers.values():
        for p in ps:
            pin_all(p.pid, SERVER_CPU)
    pin_all(origin.pid, LOAD_CPU)

    order = list(targets)
    res = {k: [] for k in order}
    split = {k: [] for k in order}
    bad = []
    resumed = [0, 0]  # httpd-tls-new: full, resumed
    for r in range(ROUNDS):
        seq = order if r % 2 == 0 else order[::-1]
        for name in seq:
            port, host, kind = targets[name]
            c0 = [cpu_s([p.pid]) for p in servers[name]]
            h0 = tls_handshakes(ports["admin"]) if name == "httpd-tls-new" else None
            if kind == "h2":
                rps, p99, total, problems = h2load(port, host)
            elif kind == "http":
                rps, p99, total, problems = wrk(port, host)
            elif kind == "c256":
                rps, p99, total, problems = wrk(port, host, conns=WIDE_CONNS)
            else:
                rps, p99, total, problems = wrk(port, host, "https", kind == "tls-new")
            c1 = [cpu_s([p.pid]) for p in servers[name]]
            h1 = tls_handshakes(ports["admin"]) if h0 is not None else None
            if h0 is not None and h1 is not None:
                resumed[0] += h1[0] - h0[0]
                resumed[1] += h1[1] - h0[1]
            each = [(b - a) * 1e6 / max(total, 1) for a, b in zip(c0, c1)]
            us = sum(each)
            res[name].append((rps, p99, us))
            if len(each) > 1:
                split[name].append(each)
            if problems:
                bad.append("%s round %d: %s" % (name, r + 1, ", ".join(problems)))
            print("round %d %-17s %9.0f req/s  p99 %6.2f ms  %5.1f us/req%s" % (
                r + 1, name, rps, p99, us, "  BAD " + "; ".join(problems) if problems else ""),
                flush=True)

    def med_ratio(a, b, i):
        return statistics.median(x[i] / y[i] for x, y in zip(res[a], res[b]))

    print()
    print("median req/s: " + ", ".join("%s %.0f" % (k, statistics.median(x[0] for x in res[k]))
                                       for k in order))
    print("median p99 ms: " + ", ".join("%s %.2f" % (k, statistics.median(x[1] for x in res[k]))
                                        for k in order))
    print("median server CPU us/req: " + ", ".join(
        "%s %.1f" % (k, statistics.median(x[2] for x in res[k])) for k in order))
    ok = True
    for sfx, conns in (("", CONNS), ("-c256", WIDE_CONNS)):
        if "httpd" + sfx not in res:
            continue
        rn = med_ratio("httpd" + sfx, "nginx" + sfx, 0)
        pn = med_ratio("httpd" + sfx, "nginx" + sfx, 1)
        rh = med_ratio("httpd" + sfx, "haproxy" + sfx, 0)
        # requests per second of server CPU: the figure the load generator's core does not cap
        core = statistics.median(y[2] / x[2] for x, y in zip(res["httpd" + sfx],
                                                             res["nginx" + sfx]))
        print("httpd / nginx, %d connections: %.2fx req/s (bar 1.0x), p99 %.2fx (bar at most "
              "1.2x), %.2fx req/s per server core" % (conns, rn, pn, core))
        print("httpd / haproxy, %d connections: %.2fx req/s" % (conns, rh))
        ok = ok and rn >= 1.0 and pn <= 1.2
    for kind, what in (("tls", "HTTPS keep-alive req/s"),
                       ("tls-new", "new TLS 1.3 handshakes/s"), ("h2", "h2 req/s")):
        if "httpd-" + kind not in res:
            continue
        r = med_ratio("httpd-" + kind, "nginx-" + kind, 0)
        cpu = statistics.median(x[2] / y[2] for x, y in zip(res["httpd-" + kind],
                                                            res["nginx-" + kind]))
        print("httpd / nginx %s: %.2fx (bar 0.9x), server CPU per request %.2fx" % (what, r, cpu))
        ok = ok and r >= 0.9
    if sum(resumed) > 0:
        print("httpd tls-new: %.0f%% of %d handshakes resumed (wrk offers the last ticket)" % (
            100.0 * resumed[1] / sum(resumed), sum(resumed)))
    if tls and not have_h2:
        print("h2: not measured (httpd does not offer h2)")
    if have_waf:
        rw = med_ratio("httpd+waf", "httpd", 0)
        print("httpd+waf / httpd: %.2fx req/s (bar 0.75x)" % rw)
        if split["httpd+waf"]:
            print("httpd+waf CPU us/req by process: httpd %.1f, wafd %.1f" % (
                statistics.median(x[0] for x in split["httpd+waf"]),
                statistics.median(x[1] for x in split["httpd+waf"])))
        ok = ok and rw >= 0.75
    elif "http" in SETS:
        print("httpd+waf: defenra-wafd not built or not judging, not measured")
    if bad:
        print("runs with errors (they count as nothing):\n  " + "\n  ".join(bad))
        ok = False
    print("bench/http: %s" % ("bars met" if ok else "bars NOT met"))
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        cleanup()
