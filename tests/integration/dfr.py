"""Helpers for the integration tests: TAP output, free loopback ports, the real daemons as child
processes, and a fake Core API over HTTP.

Every test file is a plain script run with /usr/bin/python3 (Debian's, which has dnspython):

    from dfr import Tap, Suite
    t = Tap()
    with Suite() as s:
        s.fake_core(json_text)
        syncd = s.start("syncd", CORE_URL=s.core.url)
        t.ok(syncd.wait_health(), "syncd becomes healthy")
    t.done()
"""
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.environ.get("DFR_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
BIN = os.environ.get("DFR_BIN", os.path.join(ROOT, "build/default/bin"))
FIXTURES = os.environ.get("DFR_FIXTURES", os.path.join(os.path.dirname(ROOT), "shared/fixtures/core"))
SLOW = float(os.environ.get("DFR_SLOW", "1"))  # sanitized builds are slower


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def fixture_json(name):
    return json.loads(fixture(name))


class Tap:
    """TAP lines on stdout; done() prints the plan and exits 1 if anything failed."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, desc, detail=None):
        self.n += 1
        if not cond:
            self.failed += 1
        print("%sok %d - %s" % ("" if cond else "not ", self.n, desc), flush=True)
        if not cond and detail is not None:
            for line in str(detail).splitlines()[-30:]:
                print("#   " + line, flush=True)
        return bool(cond)

    def eq(self, got, want, desc):
        return self.ok(got == want, desc, "got %r, want %r" % (got, want))

    def diag(self, msg):
        print("# " + msg, flush=True)

    def done(self):
        print("1..%d" % self.n, flush=True)
        sys.exit(1 if self.failed or self.n == 0 else 0)


_ports_given = set()


def free_port(kind=socket.SOCK_STREAM):
    """A port free for both TCP and UDP on 127.0.0.1 at the time of asking, and never one this
    process was given before: the kernel may hand a just-closed port out again, and two proxies
    of a test on one port would share it (l4d now refuses that config)."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port in _ports_given:
            continue
        other = socket.socket(socket.AF_INET,
                              socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM)
        try:
            other.bind(("127.0.0.1", port))
            _ports_given.add(port)
            return port
        except OSError:
            continue
        finally:
            other.close()
    raise RuntimeError("no free port")


def wait_until(pred, timeout=5.0, step=0.05):
    """Polls pred() until it is true or timeout (scaled by DFR_SLOW) passes; returns its value."""
    end = time.time() + timeout * SLOW
    while True:
        try:
            v = pred()
        except Exception:
            v = None
        if v or time.time() > end:
            return v
        time.sleep(step)


def http_get(url, timeout=2.0):
    """(status, body text) of a GET; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except Exception:
        return 0, ""


class Daemon:
    """One of our daemons as a child process with its own environment and log file."""

    def __init__(self, suite, name, env):
        self.suite = suite
        self.name = name
        self.env = env
        self.log_path = os.path.join(suite.dir, "%s.%d.log" % (name, len(suite.daemons)))
        self.proc = None
        self.admin = env.get("%s_ADMIN_LISTEN" % name.upper())

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([os.path.join(BIN, "defenra-" + self.name)],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig and waits; returns the exit status (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                return None
        self.log.close()
        return self.proc.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def get(self, path):
        return http_get("http://%s%s" % (self.admin, path))

    def get_json(self, path):
        status, body = self.get(path)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, None

    def wait_health(self, timeout=5.0, generation=None):
        """True once /health answers 200 (and, if given, reports at least `generation`)."""
        def healthy():
            status, doc = self.get_json("/health")
            if status != 200 or doc is None:
                return False
            return generation is None or doc.get("generation", 0) >= generation
        return bool(wait_until(healthy, timeout))

    def generation(self):
        status, doc = self.get_json("/health")
        return (doc or {}).get("generation", 0)

    def metric(self, name):
        """Value of a Prometheus sample by its full name (with labels), or None."""
        status, body = self.get("/metrics")
        for line in body.splitlines():
            if line.startswith("#"):
                continue
            parts = line.rsplit(" ", 1)
            if len(parts) == 2 and parts[0] == name:
                return float(parts[1])
        return None


class FakeCore:
    """The Core's poll API on 127.0.0.1: answers POST /api/agent/poll with what the test sets.

    core.answer = (status, body_text); core.polls counts polls; core.requests keeps
    (headers, body) of each."""

    def __init__(self, body="", status=200):
        self.answer = (status, body)
        self.polls = 0
        self.requests = []
        self.lock = threading.Lock()
        core = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode("utf-8", "replace")
                with core.lock:
                    core.polls += 1
                    core.requests.append((dict(self.headers), body))
                    status, text = core.answer
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = "http://127.0.0.1:%d" % self.port

    def set(self, body, status=200):
        with self.lock:
            self.answer = (status, body if isinstance(body, str) else json.dumps(body))

    def poll_count(self):
        with self.lock:
            return self.polls

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Suite:
    """A temporary run and state directory, the daemons started in it, and the fake Core.
    Everything is stopped on exit; logs of failed runs stay in the temp dir (printed path)."""

    def __init__(self, keep=False):
        self.dir = tempfile.mkdtemp(prefix="dfr-it-")
        self.run_dir = os.path.join(self.dir, "run")
        self.state_dir = os.path.join(self.dir, "state")
        os.makedirs(self.state_dir)
        self.daemons = []
        self.probes = []
        self.core = None
        self.keep = keep

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in self.probes:
            try:
                p.stop()
            except Exception:
                pass
        for d in self.daemons:
            try:
                d.stop(timeout=5)
            except Exception:
                pass
        self.check_sanitizers()
        if self.core:
            self.core.close()
        if not self.keep and not os.environ.get("DFR_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def check_sanitizers(self):
        """A sanitizer report in any daemon's log fails the test file, whatever it asserted."""
        for d in self.daemons:
            try:
                logs = d.logs()
            except OSError:
                continue
            for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                if mark in logs:
                    i = logs.index(mark)
                    print("not ok - %s in the log of %s (%s)" % (mark, d.name, d.log_path))
                    for line in logs[max(0, i - 200):i + 1500].splitlines():
                        print("#   " + line)
                    sys.stdout.flush()
                    break

    def probe(self):
        return Probe(self)

    def fake_core(self, body="", status=200):
        self.core = FakeCore(body if isinstance(body, str) else json.dumps(body), status)
        return self.core

    def env(self, name, **extra):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DEFENRA_RUN_DIR": self.run_dir,
            "DEFENRA_STATE_DIR": self.state_dir,
            "LOG_LEVEL": "debug",
            "%s_ADMIN_LISTEN" % name.upper(): "127.0.0.1:%d" % free_port(),
        }
        if name == "httpd":
            # Never the default 0.0.0.0:443: a test that wants TLS names a loopback port.
            env["HTTPS_LISTEN"] = "off"
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start(self, name, **extra):
        """Starts defenra-<name> with the suite's directories; extra env overrides."""
        d = Daemon(self, name, self.env(name, **extra))
        self.daemons.append(d)
        return d.start()

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text if isinstance(text, str) else json.dumps(text))
        return path


TOOLS = os.path.join(os.path.dirname(BIN), "tests", "tools")


class Probe:
    """A test subscriber on the config bus (tests/tools/bus_probe.c): every config it is handed
    arrives as a dict {"generation", "domains", "proxies", "deltas", "snapshots", "gaps"}."""

    def __init__(self, suite):
        env = dict(os.environ)
        self.seen = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen([os.path.join(TOOLS, "bus_probe"), suite.run_dir],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, env=env)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        suite.probes.append(self)

    def _read(self):
        for line in self.proc.stdout:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.seen.append(doc)

    def last(self):
        with self.lock:
            return self.seen[-1] if self.seen else None

    def count(self):
        with self.lock:
            return len(self.seen)

    def wait_generation(self, gen, timeout=5.0):
        """The first config handed over with generation >= gen, or None."""
        def found():
            with self.lock:
                for doc in self.seen:
                    if doc["generation"] >= gen:
                        return doc
            return None
        return wait_until(found, timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
