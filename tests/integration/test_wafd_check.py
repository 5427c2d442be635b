"""defenra-wafd --check: an operator compiles a rule and runs it against a sample request before
it ships; verdict on stdout, exit status 0 (decided), 2 (error verdict), 1 (could not run)."""
import os
import subprocess
import tempfile

from dfr import BIN, SLOW, Tap, fixture_json

t = Tap()
WAFD = os.path.join(BIN, "defenra-wafd")
d = tempfile.mkdtemp(prefix="dfr-wafd-check-")


def write(name, text):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def check(*args):
    p = subprocess.run([WAFD, "--check"] + list(args), capture_output=True, timeout=30 * SLOW,
                       env={"PATH": os.environ.get("PATH", ""), "LOG_LEVEL": "error"},
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


rule = write("rule.lua", """
local ua = ngx.var.http_user_agent or ""
if ua:find("sqlmap", 1, true) then return ngx.exit(403) end
local n = ngx.shared.cache:incr("rl:" .. ngx.var.remote_addr, 1, 0, 60)
if n > 2 then ngx.say("slow down") return ngx.exit(429) end
ngx.header["X-Checked"] = ngx.var.host .. " " .. ngx.var.remote_addr
""")
sample = write("req.txt", "GET /x?a=1 HTTP/1.1\r\nHost: Shop.Example.com:8080\r\n"
               "User-Agent: curl/8\r\n\r\n")
bad_ua = write("bad.txt", "GET / HTTP/1.1\nHost: shop.example.com\nUser-Agent: sqlmap/1.7\n")

rc, out, err = check(rule, "--request", sample, "--peer", "203.0.113.5:5555")
t.eq(rc, 0, "a rule that decides: exit 0")
t.ok("verdict: pass" in out and "header: X-Checked: shop.example.com 203.0.113.5" in out,
     "pass, with the header built from ngx.var", out + err)
rc, out, err = check(rule, "--request", bad_ua)
t.ok(rc == 0 and "verdict: respond 403" in out and "body: Blocked by WAF" in out,
     "scanner sample: respond 403", out + err)
rc, out, err = check(rule, "--request", sample, "--count", "3")
t.ok(out.count("verdict: pass") == 2 and "verdict: respond 429" in out and "body: slow down" in out,
     "--count 3 shows the shared-dict limit on the third request", out + err)

doc = fixture_json("geodns.json")
acme = [x["luaCode"] for x in doc["domains"] if x.get("luaCode")][0]
acme_rule = write("acme.lua", acme)
token = acme.split('acme_token = "')[1].split('"')[0]
keyauth = acme.split('acme_key_auth = "')[1].split('"')[0]
acme_req = write("acme.txt", "GET /.well-known/acme-challenge/%s HTTP/1.1\nHost: example.org\n" % token)
rc, out, err = check(acme_rule, "--request", acme_req)
t.ok(rc == 0 and "verdict: respond 200" in out and ("body: %s" % keyauth) in out
     and "header: Content-Type: text/plain" in out,
     "the Core's ACME block answers 200 with the key authorization", out + err)

edge = fixture_json("edge.json")
broken = write("broken.lua", edge["domains"][0]["luaCode"])
rc, out, err = check(broken)
t.eq(rc, 2, "edge.json's syntax error: exit 2")
t.ok("verdict: error script" in out and "'end' expected" in out, "with the compiler's message",
     out + err)
loop = write("loop.lua", "while true do end")
rc, out, err = check(loop)
t.ok(rc == 2 and "verdict: error budget" in out, "an endless loop: error budget", out + err)
escape = write("escape.lua", "os.execute('touch %s/pwned')" % d)
rc, out, err = check(escape)
t.ok(rc == 2 and "verdict: error script" in out and not os.path.exists(os.path.join(d, "pwned")),
     "os.execute is not there", out + err)
rc, out, err = check(os.path.join(d, "missing.lua"))
t.eq(rc, 1, "a missing file: exit 1")
t.done()
