"""defenra-wafd over its real socket: config from syncd, verdicts for good, broken, looping and
memory-hungry scripts side by side, a rate limit in a shared dict, a code change, many clients
at once, and a restart of wafd under load (clients reconnect; only requests in flight may fail).

The client is bench/waf/bench_waf (--one prints one verdict as JSON; the load mode checks every
answer against bench/waf/rules.lua)."""
import json
import os
import signal
import subprocess
import time

from dfr import ROOT, SLOW, Suite, Tap, wait_until

t = Tap()
CLIENT = os.path.join(os.path.dirname(os.environ.get("DFR_BIN", os.path.join(ROOT, "build/default/bin"))),
                      "bench", "waf", "bench_waf")
RULES = open(os.path.join(ROOT, "bench", "waf", "rules.lua")).read()

GOOD = "6800000000000000000000a1"
BROKEN = "6800000000000000000000a2"
LOOP = "6800000000000000000000a3"
BOMB = "6800000000000000000000a4"
LIMIT = "6800000000000000000000a5"
NOCODE = "6800000000000000000000a6"
BENCH = "6800000000000000000000b0"

ACME = ('if ngx.var.request_uri == "/.well-known/acme-challenge/tok" then\n'
        '  ngx.header["Content-Type"] = "text/plain"\n'
        '  ngx.say("tok.keyauth")\n'
        '  return ngx.exit(200)\n'
        'end\n')


def domain(id_, name, code):
    d = {"id": id_, "domain": name, "records": [], "geoDnsConfig": {"locations": []},
         "httpProxy": {"enabled": True, "type": "both"}, "ssl": {"enabled": False}}
    if code is not None:
        d["luaCode"] = code
    return d


def config(good_code, bench_extra=""):
    return json.dumps({"success": True, "proxies": [], "domains": [
        domain(GOOD, "good.example", good_code),
        domain(BROKEN, "broken.example", "if x then"),
        domain(LOOP, "loop.example", "if ngx.var.uri == '/spin' then while true do end end"),
        domain(BOMB, "bomb.example",
               "if ngx.var.uri == '/bomb' then local t = {} for i = 1, 1e9 do "
               "t[i] = string.rep('x', 65536) .. i end end"),
        domain(LIMIT, "limit.example",
               "local n = ngx.shared.cache:incr('rl:' .. ngx.var.remote_addr, 1, 0, 60)\n"
               "if n > 5 then return ngx.exit(429) end"),
        domain(NOCODE, "nocode.example", None),
        domain(BENCH, "bench.example", RULES + bench_extra),
    ]})


GOOD_V1 = ACME + (
    'if string.find(string.lower(ngx.var.http_user_agent or ""), "sqlmap", 1, true) then\n'
    '  return ngx.exit(403)\nend\n'
    'ngx.header["X-Frame-Options"] = "SAMEORIGIN"\n')
GOOD_V2 = 'if ngx.var.uri == "/v2" then return ngx.exit(418) end\n'


def one(url, dom_id, name, target="/", peer="192.0.2.10", headers=(), gen=1):
    args = [CLIENT, "--url", url, "--one", "--domain-id", dom_id, "--domain", name,
            "--target", target, "--peer", peer, "--gen", str(gen), "--timeout-ms", str(int(3000 * SLOW))]
    for h in headers:
        args += ["--header", h]
    p = subprocess.run(args, capture_output=True, timeout=30 * SLOW, stdin=subprocess.DEVNULL)
    try:
        return json.loads(p.stdout.decode())
    except ValueError:
        return {"error": p.stdout.decode() + p.stderr.decode()}


def load(url, seconds, conns, rate=0):
    args = [CLIENT, "--url", url, "--domain-id", BENCH, "--domain", "bench.example",
            "--duration", str(seconds), "--conns", str(conns), "--rate", str(rate),
            "--timeout-ms", str(int(2000 * SLOW))]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)


def result(p):
    out, err = p.communicate(timeout=60 * SLOW)
    try:
        return json.loads(out.decode())
    except ValueError:
        return {"error": out.decode() + err.decode()}


with Suite() as s:
    path = s.write("config.json", config(GOOD_V1))
    syncd = s.start("syncd", DEFENRA_CONFIG=path, POLLING_INTERVAL=1)
    wafd = s.start("wafd", WAFD_WORKERS=2, WAFD_LUA_MEMORY_MB=16, WAFD_LUA_BUDGET=2000000,
                  WAFD_LUA_TIMEOUT_MS=int(1000 * SLOW))
    url = "ipc://%s/waf.rep" % s.run_dir
    t.ok(syncd.wait_health(10), "syncd up", syncd.logs())
    t.ok(wafd.wait_health(10, generation=1), "wafd has the config", wafd.logs())
    gen = wafd.generation()

    v = one(url, GOOD, "good.example", headers=["User-Agent: curl/8"])
    t.ok(v.get("action") == "pass" and ["X-Frame-Options", "SAMEORIGIN"] in v.get("headers", []),
         "ordinary request passes with the header the script sets", v)
    t.eq(v.get("generation"), gen, "the verdict names the generation")
    v = one(url, GOOD, "good.example", headers=["User-Agent: sqlmap/1.7"])
    t.ok(v.get("action") == "respond" and v.get("status") == 403, "scanner blocked", v)
    v = one(url, GOOD, "good.example", target="/.well-known/acme-challenge/tok")
    t.ok(v.get("action") == "respond" and v.get("status") == 200 and v.get("body") == "tok.keyauth\n",
         "the ACME block answers 200 with the key authorization", v)

    v = one(url, BROKEN, "broken.example")
    t.ok(v.get("action") == "error" and v.get("fail") == "script", "broken script: error script", v)
    # A budget over a million: the worker's CPU-time timer arms the count after 1 ms.
    v = one(url, LOOP, "loop.example", target="/spin")
    t.ok(v.get("action") == "error" and v.get("fail") == "budget", "endless loop: error budget", v)
    t.ok("instruction budget" in wafd.logs(), "ended by the instruction budget (not the "
         "deadline): the watchdog armed it in the worker")
    v = one(url, BOMB, "bomb.example", target="/bomb")
    t.ok(v.get("action") == "error" and v.get("fail") == "memory", "memory bomb: error memory", v)
    v = one(url, LOOP, "loop.example", target="/fine")
    t.eq(v.get("action"), "pass", "the looping domain's other requests pass")
    v = one(url, GOOD, "good.example", headers=["User-Agent: sqlmap/1.7"])
    t.ok(v.get("status") == 403, "the good domain keeps its verdicts beside them", v)
    v = one(url, NOCODE, "nocode.example")
    t.eq(v.get("action"), "pass", "a domain without code passes")
    v = one(url, "6800000000000000000000ff", "unknown.example")
    t.ok(v.get("action") == "error" and v.get("fail") == "no-code", "an unknown domain: no-code", v)
    v = one(url, GOOD, "good.example", gen=gen + 100)
    t.ok(v.get("flags", 0) & 1, "a request from a newer generation is flagged stale", v)
    t.ok("does not compile" in wafd.logs(), "the broken script is logged when the config arrives")

    statuses = [one(url, LIMIT, "limit.example", peer="198.51.100.9").get("status", 0)
                for _ in range(8)]
    t.eq(statuses, [0] * 5 + [429] * 3, "rate limit through ngx.shared: 5 pass, then 429")
    t.eq(one(url, LIMIT, "limit.example", peer="198.51.100.10").get("status"), 0,
         "another address is not limited")

    # many clients at once, every answer checked
    r = result(load(url, 2, 16))
    t.diag("16 clients, 2 s: %s" % r)
    t.ok(r.get("answered", 0) > 200 and r.get("wrong") == 0 and r.get("errors") == 0,
         "16 concurrent clients: every verdict right, no errors", r)

    # metrics
    t.ok((wafd.metric('wafd_failures_total{kind="budget"}') or 0) >= 1, "budget kills counted")
    t.ok((wafd.metric('wafd_failures_total{kind="memory"}') or 0) >= 1, "memory kills counted")
    t.ok((wafd.metric('wafd_failures_total{kind="script"}') or 0) >= 1, "script errors counted")
    t.ok((wafd.metric('wafd_verdicts_total{result="pass"}') or 0) >= 100, "verdicts counted")

    # a code change applies without a restart
    s.write("config.json", config(GOOD_V2))
    syncd.proc.send_signal(signal.SIGHUP)
    t.ok(wafd.wait_health(10, generation=gen + 1), "new generation reaches wafd", wafd.logs())
    v = one(url, GOOD, "good.example", target="/v2", gen=gen + 1)
    t.ok(v.get("status") == 418 and v.get("generation") == gen + 1, "the new code decides", v)
    v = one(url, GOOD, "good.example", headers=["User-Agent: sqlmap/1.7"], gen=gen + 1)
    t.eq(v.get("action"), "pass", "the old rule is gone")
    statuses = [one(url, LIMIT, "limit.example", peer="198.51.100.9").get("status", 0)
                for _ in range(2)]
    t.eq(statuses, [429, 429], "shared dict counters survive a code change elsewhere")

    # the code under load changes (same rules, new text): every state recompiles, nothing drops
    p = load(url, 2, 8, rate=1000)
    time.sleep(0.7)
    s.write("config.json", config(GOOD_V2, "\n-- recompiled\n"))
    syncd.proc.send_signal(signal.SIGHUP)
    r = result(p)
    t.diag("load across a code change: %s" % r)
    t.ok(wafd.wait_health(10, generation=gen + 2), "the changed code reached wafd")
    t.ok(r.get("answered", 0) > 500 and r.get("wrong") == 0 and r.get("errors") == 0,
         "a code swap under load drops nothing and every verdict is right", r)
    gen += 1

    # wafd restarted under load: the clients reconnect by themselves
    conns = 4
    p = load(url, 4, conns, rate=400)
    time.sleep(1.0)
    wafd.stop()
    time.sleep(0.3)
    wafd.start()
    r = result(p)
    t.diag("load across the restart: %s" % r)
    t.ok(r.get("answered", 0) > 300, "load went on after the restart", r)
    t.ok(r.get("errors", 99) <= conns, "no more failed requests than were in flight (%d)" % conns, r)
    t.ok(r.get("wrong", 99) == r.get("error_verdicts", -1),
         "no wrong verdict: at most error verdicts while the new wafd waits for its config", r)
    t.ok(wafd.wait_health(10, generation=gen + 1), "restarted wafd serves the current config")
    r = result(load(url, 1, 4))
    t.ok(r.get("answered", 0) > 50 and r.get("wrong") == 0 and r.get("errors") == 0,
         "after the restart every verdict is right again", r)
    t.eq(wafd.stop(), 0, "wafd stops cleanly on SIGTERM")
t.done()
