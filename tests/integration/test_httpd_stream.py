"""httpd streams bodies with back-pressure: 1 GB up and down (Content-Length and chunked) with
httpd's RSS sampled all along, a slow reader and a slow backend that must not make it buffer."""
import hashlib
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dfr import Tap, Suite, SLOW  # noqa: E402
from httpd_backend import Backend, config, domain, start_proxy, wait_routes  # noqa: E402

GB = 1 << 30
MB = 1 << 20


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssWatch:
    """Samples a process's RSS every 100 ms while active."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = 0
        self.stop = threading.Event()
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, rss_kb(self.pid))
            except OSError:
                return
            time.sleep(0.1)

    def done(self):
        self.stop.set()
        self.th.join()
        return self.peak


def curl(*args, timeout=120):
    p = subprocess.run(["curl", "-sS", "--noproxy", "*"] + list(args), capture_output=True,
                       timeout=timeout * SLOW)
    return p.returncode, p.stdout, p.stderr


t = Tap()
with Suite() as s:
    be = Backend()
    # ASan's quarantine holds freed memory back (256 MB by default): keep it small so RSS
    # shows what httpd holds, not what the sanitizer delays.
    asan = (os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4"
            ":thread_local_quarantine_size_kb=64").lstrip(":")
    syncd, httpd, port, _ = start_proxy(s, config([domain("example.com", [
        ("@", "A", "127.0.0.1", True)])]), be.port, ASAN_OPTIONS=asan)
    t.ok(wait_routes(port, "example.com", 10), "routed")
    pid = httpd.proc.pid
    base = rss_kb(pid)
    url = "http://127.0.0.1:%d" % port
    # Sanitized builds keep freed memory in quarantine: allow more there.
    allowed = (24 if SLOW == 1 else 96) * 1024

    sparse = os.path.join(s.dir, "1g.bin")
    with open(sparse, "wb") as f:
        f.truncate(GB)
    zero_sha = None

    w = RssWatch(pid)
    rc, out, err = curl("-H", "Host: example.com", "-o", "/dev/null", "-w", "%{size_download}",
                        url + "/big?n=%d" % GB)
    peak = w.done()
    t.ok(rc == 0 and out == str(GB).encode(), "1 GB download through the proxy", err)
    t.ok(peak - base < allowed, "RSS during the download: +%d KiB" % (peak - base))

    w = RssWatch(pid)
    rc, out, err = curl("-H", "Host: example.com", "-T", sparse, url + "/sink")
    peak = w.done()
    doc = json.loads(out or b"{}")
    if zero_sha is None:
        h = hashlib.sha256()
        block = bytes(MB)
        for _ in range(GB // MB):
            h.update(block)
        zero_sha = h.hexdigest()
    t.ok(rc == 0 and doc.get("body_len") == GB and doc.get("body_sha256") == zero_sha,
         "1 GB upload (Content-Length) arrives whole", (rc, out[:200], err))
    t.ok(peak - base < allowed, "RSS during the upload: +%d KiB" % (peak - base))

    w = RssWatch(pid)
    p1 = subprocess.Popen(["head", "-c", str(256 * MB), "/dev/zero"], stdout=subprocess.PIPE)
    p2 = subprocess.run(["curl", "-sS", "--noproxy", "*", "-H", "Host: example.com", "-T", "-",
                         url + "/sink"], stdin=p1.stdout, capture_output=True, timeout=120 * SLOW)
    p1.wait()
    peak = w.done()
    doc = json.loads(p2.stdout or b"{}")
    t.ok(p2.returncode == 0 and doc.get("body_len") == 256 * MB,
         "256 MB chunked upload arrives whole", p2.stderr)
    t.ok(peak - base < allowed, "RSS during the chunked upload: +%d KiB" % (peak - base))

    # Slow client: the backend is fast, the client reads at 40 MB/s; httpd must not buffer.
    w = RssWatch(pid)
    rc, out, err = curl("--limit-rate", "40M", "-H", "Host: example.com", "-o", "/dev/null", "-w",
                        "%{size_download}", url + "/big?n=%d" % (120 * MB))
    peak = w.done()
    t.ok(rc == 0 and out == str(120 * MB).encode(), "120 MB to a slow reader")
    t.ok(peak - base < allowed, "RSS with a slow reader: +%d KiB" % (peak - base))

    # Slow backend: it reads 1 MB every 20 ms; the client sends as fast as it can.
    w = RssWatch(pid)
    part = os.path.join(s.dir, "100m.bin")
    with open(part, "wb") as f:
        f.truncate(100 * MB)
    rc, out, err = curl("-H", "Host: example.com", "-T", part, url + "/sink?delay_ms=20")
    peak = w.done()
    doc = json.loads(out or b"{}")
    t.ok(rc == 0 and doc.get("body_len") == 100 * MB, "100 MB to a slow backend", err)
    t.ok(peak - base < allowed, "RSS with a slow backend: +%d KiB" % (peak - base))
    t.ok(httpd.alive(), "httpd alive")
    t.eq(httpd.stop(), 0, "httpd exits cleanly on SIGTERM (no sanitizer report)")
    for d in s.daemons:
        if d.name == "httpd":
            t.ok("Sanitizer" not in d.logs() and "runtime error" not in d.logs(),
                 "no sanitizer report in httpd's log")
    be.close()
t.done()
