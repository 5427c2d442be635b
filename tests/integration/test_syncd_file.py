"""defenra-syncd in file mode (the default without CORE_URL), SIGHUP, and its start-up errors."""
import copy
import json
import os
import signal
import subprocess

from dfr import BIN, Suite, Tap, fixture, fixture_json, free_port, wait_until

t = Tap()

# --- file mode: the file is read at start, on SIGHUP and every interval ---------------------
with Suite() as s:
    path = s.write("config.json", fixture("geodns.json"))
    syncd = s.start("syncd", DEFENRA_CONFIG=path, POLLING_INTERVAL=3600)
    t.ok(syncd.wait_health(), "file mode: the file's config applies", syncd.logs())
    st, health = syncd.get_json("/health")
    t.eq((health or {}).get("domains_loaded"), 3, "all three domains of geodns.json")
    probe = s.probe()
    first = probe.wait_generation(1)
    t.ok(first is not None and len(first["domains"]) == 3, "a subscriber receives them", first)

    doc = fixture_json("geodns.json")
    doc["domains"] = doc["domains"][:2]
    s.write("config.json", json.dumps(doc))
    syncd.proc.send_signal(signal.SIGHUP)
    gen = first["generation"] if first else 1
    got = probe.wait_generation(gen + 1, 3)
    t.ok(got is not None and len(got["domains"]) == 2 and "shop.example.com" not in got["domains"],
         "SIGHUP rereads the file: a removed domain is removed", got)
    t.ok(got is not None and got["deltas"] >= 1, "as a delta", got)

    s.write("config.json", "{ broken")
    syncd.proc.send_signal(signal.SIGHUP)
    t.ok(wait_until(lambda: "answer rejected" in syncd.logs(), 3), "a broken file is logged")
    t.eq(syncd.generation(), gen + 1, "and changes nothing")

# --- odd input: invalid items dropped with a reason, the rest applies -----------------------
with Suite() as s:
    syncd = s.start("syncd", DEFENRA_CONFIG=s.write("config.json", fixture("edge.json")),
                    POLLING_INTERVAL=3600)
    t.ok(syncd.wait_health(), "edge.json applies", syncd.logs())
    logs = syncd.logs()
    t.ok("not-an-ip" in logs, "the record with value not-an-ip is dropped with its reason")
    st, health = syncd.get_json("/health")
    t.ok((health or {}).get("domains_loaded") in (2, 3),
         "the domain whose name repeats in another case is dropped, the others stay", health)
    t.ok((syncd.metric("syncd_dropped_items") or 0) >= 2, "dropped items are counted")

# --- start-up errors: one line naming variable, value, expectation --------------------------
def start_error(env_extra):
    env = {"PATH": os.environ.get("PATH", ""), "DEFENRA_RUN_DIR": "/tmp/dfr-never",
           "DEFENRA_STATE_DIR": "/tmp/dfr-never", "SYNCD_ADMIN_LISTEN": "127.0.0.1:%d" % free_port()}
    env.update(env_extra)
    p = subprocess.run([os.path.join(BIN, "defenra-syncd")], env=env, capture_output=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    return p.returncode, p.stderr.decode("utf-8", "replace")


for var, val in (("POLLING_INTERVAL", "abc"), ("POLLING_INTERVAL", "0"),
                 ("CORE_URL", "ftp://core.example"), ("SYNCD_ADMIN_LISTEN", "127.0.0.1:99999"),
                 ("LOG_LEVEL", "chatty")):
    rc, err = start_error({var: val})
    lines = [l for l in err.splitlines() if l.strip()]
    t.ok(rc != 0 and any(var in l and val in l for l in lines),
         "%s=%s stops syncd with a line naming both" % (var, val), err)
rc, err = start_error({"CORE_URL": "http://127.0.0.1:1"})
t.ok(rc != 0 and "AGENT_ID" in err, "an http CORE_URL without AGENT_ID is refused", err)

t.done()
