"""defenra-syncd against a fake Core over HTTP, watched by a test subscriber on the bus."""
import copy
import json
import os
import stat
import time

from dfr import Suite, Tap, fixture, fixture_json, wait_until

t = Tap()
small = fixture_json("small.json")
small["nextPollInterval"] = 1  # the Core's interval wins over POLLING_INTERVAL
KEY = "k3y-for-tests-0123456789"


def with_domain(doc, name, dom_id):
    doc = copy.deepcopy(doc)
    dom = copy.deepcopy(doc["domains"][0])
    dom["id"] = dom_id
    dom["domain"] = name
    dom["ssl"] = {"enabled": False, "certificate": None, "privateKey": None,
                  "autoRenew": False, "acmeHttpChallenge": {"token": "", "keyAuthorization": ""}}
    doc["domains"].append(dom)
    return doc


def start_syncd(s, **extra):
    env = dict(CORE_URL=s.core.url, AGENT_ID="agent_test", AGENT_KEY=KEY, POLLING_INTERVAL=1)
    env.update(extra)
    return s.start("syncd", **env)


# --- the config arrives; the poll is what the Core expects ---------------------------------
with Suite() as s:
    s.fake_core(small)
    probe = s.probe()  # started before syncd: must catch up once syncd appears
    time.sleep(0.3)
    syncd = start_syncd(s)
    t.ok(syncd.wait_health(), "syncd becomes healthy once the Core's config applied",
         syncd.logs())
    st, health = syncd.get_json("/health")
    t.eq((health or {}).get("status"), "healthy", "/health says healthy (the Go agent's word)")
    t.eq((health or {}).get("domains_loaded"), 1, "/health domains_loaded")
    t.eq((health or {}).get("proxies_active"), 2, "/health proxies_active")
    t.ok(all(k in (health or {}) for k in ("uptime", "last_poll", "memory_usage", "timestamp",
                                            "generation", "uptime_s")),
         "/health carries the Go agent's fields and the suite's", health)
    got = probe.wait_generation(1)
    t.ok(got is not None and got["domains"] == ["example.com"] and got["proxies"] == 2,
         "a subscriber started before syncd receives the config", got)

    hdrs, body = s.core.requests[0]
    auth = {k.lower(): v for k, v in hdrs.items()}.get("authorization")
    t.eq(auth, "Bearer " + KEY, "poll sends Authorization: Bearer AGENT_KEY")
    try:
        sent = json.loads(body)
    except ValueError:
        sent = {}
    t.eq(sent, {"agentId": "agent_test", "agentKey": KEY}, "poll body carries agentId and agentKey")
    t.ok(KEY not in syncd.logs(), "the agent key never reaches the log")

    # --- same config polled again: no new generation ----------------------------------------
    gen = syncd.generation()
    polls = s.core.poll_count()
    wait_until(lambda: s.core.poll_count() >= polls + 2, 5)
    t.ok(s.core.poll_count() >= polls + 2, "syncd polls every POLLING_INTERVAL")
    t.eq(syncd.generation(), gen, "an unchanged config does not move the generation")
    t.eq(probe.count(), 1, "and the subscriber sees no churn")

    # --- a change in the Core arrives as a delta within one poll -----------------------------
    s.core.set(with_domain(small, "example.info", "6720a1b2c3d4e5f6012345ff"))
    got = probe.wait_generation(gen + 1, 3)
    t.ok(got is not None and "example.info" in got["domains"],
         "a new domain in the Core reaches the subscriber within a poll", got)
    t.ok(got is not None and got["deltas"] >= 1, "it came as a delta", got)
    state = os.path.join(s.state_dir, "config.json")
    t.ok(os.path.exists(state) and "example.info" in open(state).read(),
         "the applied config is saved in DEFENRA_STATE_DIR/config.json")
    t.eq(stat.S_IMODE(os.stat(state).st_mode), 0o600, "the state file is private (it holds keys)")

    # --- garbage and 500: old config stays, failures counted, back-off visible -------------
    gen = syncd.generation()
    before = syncd.metric('syncd_polls_total{result="failed"}') or 0
    s.core.set("{this is not json", 200)
    wait_until(lambda: (syncd.metric('syncd_polls_total{result="failed"}') or 0) >= before + 1, 5)
    s.core.set('{"error": "Poll failed"}', 500)
    wait_until(lambda: (syncd.metric('syncd_polls_total{result="failed"}') or 0) >= before + 3, 10)
    failed = syncd.metric('syncd_polls_total{result="failed"}') or 0
    t.ok(failed >= before + 3, "garbage and 500 answers are counted as failed polls",
         "failed=%r before=%r" % (failed, before))
    t.eq(syncd.generation(), gen, "the config in force stays")
    st, health = syncd.get_json("/health")
    t.eq(st, 200, "/health stays 200 while the Core fails")
    st, stats = syncd.get_json("/stats")
    t.ok(stats is not None and stats["config"]["failed_polls"] >= 3 and
         stats["config"]["total_polls"] > stats["config"]["failed_polls"],
         "/stats has the Go agent's total_polls and failed_polls", stats)
    t.ok(stats is not None and stats["poll"]["consecutive_failures"] >= 2,
         "/stats shows the run of failures", stats)
    t.ok((syncd.metric("syncd_poll_backoff_ms") or 0) > 0, "the back-off delay is in /metrics")
    logs = syncd.logs()
    t.ok("HTTP 500" in logs and "Poll failed" in logs, "the 500 is logged with the Core's reason")
    loud = [l for l in logs.splitlines() if "HTTP 500: Poll failed" in l and " debug: " not in l]
    t.ok(len(loud) == 1, "a repeated failure is logged once, then counted", "\n".join(loud))

    s.core.set(with_domain(small, "example.info", "6720a1b2c3d4e5f6012345ff"))
    t.ok(wait_until(lambda: "ok again" in syncd.logs(), 8), "recovery is logged")
    t.eq(syncd.generation(), gen, "the Core's return with the same config keeps the generation")

    # --- syncd killed and started again: subscriber resyncs, generation grows ----------------
    syncd.kill()
    s.core.set(with_domain(small, "example.biz", "6720a1b2c3d4e5f6012345fe"))
    syncd2 = start_syncd(s)
    got = probe.wait_generation(gen + 1, 6)
    t.ok(got is not None and "example.biz" in got["domains"],
         "after SIGKILL and restart the subscriber gets the new config without a restart", got)
    t.ok(got is not None and got["generation"] > gen, "and the generation kept growing", got)
    t.ok(probe.proc.poll() is None, "the subscriber kept running throughout")

# --- Core down at start: the last good config is served ------------------------------------
with Suite() as s:
    s.fake_core(small)
    syncd = start_syncd(s)
    t.ok(syncd.wait_health(), "first run applies the Core's config")
    gen = syncd.generation()
    syncd.stop()
    url = s.core.url
    s.core.close()  # the Core is down: connections refused
    s.core = None
    syncd = s.start("syncd", CORE_URL=url, AGENT_ID="agent_test", AGENT_KEY=KEY,
                    POLLING_INTERVAL=1)
    t.ok(syncd.wait_health(2), "with the Core down, a restarted syncd is healthy at once",
         syncd.logs())
    t.eq(syncd.generation(), gen, "serving the saved generation")
    probe = s.probe()
    got = probe.wait_generation(gen)
    t.ok(got is not None and got["domains"] == ["example.com"],
         "and subscribers receive the saved config", got)
    t.ok(wait_until(lambda: "Connection refused" in syncd.logs() or "Couldn't connect" in syncd.logs(), 5),
         "the refused connection is logged", syncd.logs())
    t.eq(syncd.stop(), 0, "SIGTERM stops syncd cleanly (exit 0)")

# --- wrong key: one clear line ---------------------------------------------------------------
with Suite() as s:
    s.fake_core('{"error": "Invalid agent key"}', 401)
    syncd = start_syncd(s)
    wait_until(lambda: s.core.poll_count() >= 3, 8)
    logs = syncd.logs()
    lines = [l for l in logs.splitlines() if "401" in l and " debug: " not in l]
    t.ok(len(lines) == 1 and "Invalid agent key" in lines[0] and "AGENT_KEY" in lines[0],
         "a 401 is logged in one clear line naming AGENT_KEY", "\n".join(lines) or logs)
    st, health = syncd.get_json("/health")
    t.eq(st, 503, "/health is 503 before any config applied")
    t.eq((health or {}).get("status"), "starting", "and says starting")

t.done()
