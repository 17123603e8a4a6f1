#!/usr/bin/python3
"""Figures for shared state on PostgreSQL (issue 13), printed like bench.py:
  - propagation latency between two gateways (p50, p99 of N window adds at
    A as B's status records them; target p99 < 1000 ms);
  - outage replay: N changes journalled at A while the database was away
    (written into A's journal while A is stopped, exactly the rows
    store.c writes), then A started: seconds until A's journal is empty
    and B has applied them all;
  - start-up with M windows in PostgreSQL: a fresh gateway reads them all
    (seconds until applied), then restarts from its local copy (seconds
    until "untild ready") with its peak RSS.
Lookups do not touch the store (the same index, the same code): the
window-index figures of bench_windows hold unchanged.

Usage: pgstore.py BUILD_DIR. BENCH_QUICK=1: small counts. Skips (exit 0)
without PostgreSQL 15."""
import json
import os
import sqlite3
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
os.environ["UNTILD_BUILD"] = build
sys.path.insert(0, os.path.join(here, "..", "e2e"))

from harness import Untild  # noqa: E402
from test_pgstore import Postgres, pg_missing, store_section  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
N_PROP = 100 if QUICK else 500
N_REPLAY = 2000 if QUICK else 10000
N_START = 50000 if QUICK else 1000000


def status(u):
    return json.loads(u.ctl("--json", "status", check=0).stdout)["store"]


def wait(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.05)
    raise RuntimeError("timed out: " + what)


def gateway(pg, node, cleanup):
    u = Untild(None, extra=store_section(pg, node).replace("retry_interval = 1", "retry_interval = 1\nbatch = 1000"))
    cleanup.append(u)
    u.start()
    wait(lambda: status(u)["state"] == "connected", 30, "connected " + node)
    return u


def propagation(pg, a, b):
    for i in range(N_PROP):
        a.ctl("window", "add", "c%d@prop.example" % i, "--until", "2099-01-01", check=0)
    wait(lambda: status(b)["applied"] >= 2 * N_PROP, 120, "propagation")   # window + audit row each
    lat = status(b)["latency_ms"]
    return lat["p50"], lat["p99"]


def replay(pg, a, b):
    before = status(b)["applied"]
    a.stop()
    db = sqlite3.connect(os.path.join(a.dir, "state", "untild.db"))
    now = int(time.time() * 1000)
    db.executemany("INSERT INTO journal (kind, changed_at, t0, t1, t2, t3, t4, t5, i0, i1, i2, i3, i4, i5)"
                   " VALUES ('w', ?, ?, ?, NULL, 'UTC', 'outage', 'rep@example.com', 0, 4070908800,"
                   " 86400, 1, 1, ?)",
                   [(now + i, "w%d-a" % (900000000 + i), "o%d@outage.example" % i, now // 1000)
                    for i in range(N_REPLAY)])
    db.commit()
    db.close()
    t0 = time.time()
    a.start()
    wait(lambda: status(a)["journal"] == 0, 300, "journal drained")
    t_sent = time.time() - t0
    wait(lambda: status(b)["applied"] >= before + N_REPLAY, 300, "applied at B")
    return t_sent, time.time() - t0


def startup(pg, cleanup):
    pg.sql("INSERT INTO untild_windows (id, ended, changed_at, origin, seq, who, tz, reason, owner,"
           " from_t, until_t, duration, action, source, created)"
           " SELECT 'w' || g || '-z', false, 1, 'z', nextval('untild_seq'), 's' || g || '@start.example',"
           " 'UTC', NULL, 'rep@example.com', 0, 4070908800, 86400, 1, 1, 1"
           " FROM generate_series(1, %d) g" % N_START)
    t0 = time.time()
    c = gateway(pg, "c", cleanup)
    wait(lambda: status(c)["applied"] >= N_START, 3600, "start-up feed")
    t_feed = time.time() - t0
    c.stop()
    t0 = time.time()
    c.start()
    t_local = time.time() - t0
    rss = 0
    with open("/proc/%d/status" % c.proc.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1]) // 1024
    windows = json.loads(c.ctl("--json", "status", check=0).stdout)["windows"]
    return t_feed, t_local, rss, windows


def main():
    why = pg_missing()
    if why:
        print("# pgstore: skipped: " + why)
        return 0
    cleanup = []
    pg = Postgres().init().start()
    try:
        t0 = time.time()
        a = gateway(pg, "a", cleanup)
        b = gateway(pg, "b", cleanup)
        p50, p99 = propagation(pg, a, b)
        print("%-45s %10s  %s" % ("pg propagation %d windows p50 ms" % N_PROP, p50, ""))
        print("%-45s %10s  %s" % ("pg propagation %d windows p99 ms" % N_PROP, p99,
                                  "< 1000 " + ("ok" if p99 < 1000 else "MISSED")))
        sent, applied = replay(pg, a, b)
        print("%-45s %10.2f" % ("pg outage replay %d changes s (sent)" % N_REPLAY, sent))
        print("%-45s %10.2f" % ("pg outage replay %d changes s (at B)" % N_REPLAY, applied))
        feed, local, rss, windows = startup(pg, cleanup)
        print("%-45s %10.1f" % ("pg start-up %d windows s (from PostgreSQL)" % N_START, feed))
        print("%-45s %10.1f" % ("pg start-up %d windows s (local copy)" % N_START, local))
        print("%-45s %10d" % ("pg start-up %d windows VmHWM MB" % N_START, rss))
        print("%-45s %10d" % ("pg start-up windows indexed", windows))
        print("%-45s %10d" % ("pg bench wall time s", time.time() - t0))
        return 0 if p99 < 1000 else 1
    finally:
        for u in cleanup:
            u.cleanup()
        pg.cleanup()


if __name__ == "__main__":
    sys.exit(main())
