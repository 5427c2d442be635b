"""A knotd serving one zone file on loopback, for the differential test (test_dnsd_knot.py) and
the DNS benchmark (bench/dns): the zone's directory, its config, and the knotd command line."""
import os


def knot_setup(kd, zone, zone_text, port):
    """Writes kd/<zone>.zone and kd/knot.conf (one UDP and one TCP worker on 127.0.0.1@port);
    returns the knotd argv."""
    os.makedirs(os.path.join(kd, "db"), exist_ok=True)
    with open(os.path.join(kd, zone + ".zone"), "w") as f:
        f.write(zone_text)
    conf = os.path.join(kd, "knot.conf")
    with open(conf, "w") as f:
        f.write("""server:
    rundir: "%(kd)s"
    listen: 127.0.0.1@%(port)d
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "%(kd)s/db"
template:
  - id: default
    storage: "%(kd)s"
    semantic-checks: off
zone:
  - domain: %(zone)s
    file: %(zone)s.zone
""" % {"kd": kd, "port": port, "zone": zone})
    return ["-c", conf, "-s", os.path.join(kd, "knot.sock")]
