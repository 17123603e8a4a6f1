"""untild benchmarks (issue 5): every peer is started here on 127.0.0.1.

Figures (each the median of RUNS runs, min and max shown):
  allowed path   smtp-source -> untild -> smtp-sink, against smtp-source ->
                 smtp-sink direct and smtp-source -> Postfix relay ->
                 smtp-sink; 1 and 10 sessions; 5 KB and 100 KB messages.
                 A run's time is from smtp-source's start until the sink
                 has counted every message (so Postfix's queue is drained).
  held path      messages/s accepted into untild's spool (fsync) for a
                 domain that is quiet forever, against Postfix accepting
                 into its hold queue (check_recipient_access -> HOLD).
  release        `untilctl window end` with 10,000 held messages: seconds
                 until the spool is empty and the sink has counted them.
  latency        p50/p99 of single-message transactions on one connection
                 (Python smtplib), through untild minus direct.
  memory         untild's VmHWM/VmRSS with 200 idle sessions and with
                 10,000 held messages.
The window index figures come from build/bench/bench_windows (run.sh).

Usage: /usr/bin/python3 tests/bench/bench.py BUILD_DIR
BENCH_QUICK=1: one run each with smaller counts (a smoke test).
smtp-source opens one connection per message (its default), like a
client population would.
"""
import os
import re
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
os.environ["UNTILD_BUILD"] = BUILD
import harness  # noqa: E402  (reads UNTILD_BUILD at import)

QUICK = os.environ.get("BENCH_QUICK") == "1"
RUNS = 1 if QUICK else 3
SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
POSTFIX = "/usr/sbin/postfix"
FROM = "sender@bench.example"
RCPT_ALLOWED = "someone@allowed.example"
RCPT_HELD = "someone@held.example"
# Messages per allowed-path run, by (sessions, size): sized so that a run
# takes a second or two on the slowest path.
ALLOWED_COUNT = {(1, 5): 1000, (1, 100): 600, (10, 5): 3000, (10, 100): 1500}
HELD_COUNT = 10000
LATENCY_COUNT = 1000
IDLE_SESSIONS = 200
RELEASE_TIMEOUT = 60
if QUICK:
    ALLOWED_COUNT = {k: max(100, v // 10) for k, v in ALLOWED_COUNT.items()}
    HELD_COUNT = 1000
    LATENCY_COUNT = 200

TMP = tempfile.mkdtemp(prefix="untild-bench-")
os.chmod(TMP, 0o755)   # Postfix's unprivileged processes traverse it
PROCS = []             # (name, Popen) we started: stopped by PID at exit


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- sinks

class SmtpSink:
    """Postfix's smtp-sink; `-c` prints running counts (mesg=N) that we
    read back from its output file."""

    def __init__(self, name):
        self.port = harness.free_port()
        self.out = os.path.join(TMP, name + ".sink.out")
        self.f = open(self.out, "wb")
        self.proc = subprocess.Popen([SMTP_SINK, "-u", "postfix", "-c", "127.0.0.1:%d" % self.port, "1000"],
                                     stdout=self.f, stderr=subprocess.STDOUT)
        PROCS.append(("smtp-sink", self.proc))
        wait_port(self.port, self.proc, "smtp-sink")

    def count(self):
        with open(self.out, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 200))
            m = re.findall(rb"mesg=(\d+)", f.read())
        return int(m[-1]) if m else 0

    def wait_count(self, n, timeout=300):
        end = time.monotonic() + timeout
        while self.count() < n:
            if time.monotonic() > end:
                raise RuntimeError("sink: %d of %d messages" % (self.count(), n))
            if self.proc.poll() is not None:
                raise RuntimeError("smtp-sink exited")
            time.sleep(0.005)
        return time.monotonic()


def wait_port(port, proc, what, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited %s" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s did not listen on %d" % (what, port))


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- Postfix

POSTFIX_MASTER = """\
{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

POSTFIX_MAIN = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.localdomain
mydomain = localdomain
mydestination =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
relayhost = {relayhost}
smtpd_tls_security_level = none
smtp_tls_security_level = none
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_peername_lookup = no
message_size_limit = 0
syslog_name = postfix-bench
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
{extra}
"""


class Postfix:
    """A throwaway Postfix instance: own config dir, queue and listener."""

    def __init__(self, name, relayhost="", extra=""):
        self.dir = os.path.join(TMP, name)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.port = harness.free_port()
        with open(os.path.join(self.dir, "main.cf"), "w") as f:
            f.write(POSTFIX_MAIN.format(dir=self.dir, relayhost=relayhost, extra=extra))
        with open(os.path.join(self.dir, "master.cf"), "w") as f:
            f.write(POSTFIX_MASTER.format(port="127.0.0.1:%d" % self.port))
        self.started = False

    def start(self):
        # queue_directory must exist (root-owned); `postfix check` then
        # creates the queue's subdirectories with Postfix's own owners.
        os.makedirs(os.path.join(self.dir, "queue"), mode=0o755)
        os.makedirs(os.path.join(self.dir, "data"), mode=0o700)
        shutil.chown(os.path.join(self.dir, "data"), "postfix", "postfix")
        r = subprocess.run([POSTFIX, "-c", self.dir, "check"], capture_output=True, text=True)
        if r.returncode == 0:
            r = subprocess.run([POSTFIX, "-c", self.dir, "start"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("postfix start: %s%s\n%s" % (r.stdout, r.stderr, self.maillog()))
        self.started = True
        wait_port(self.port, None, "postfix " + self.dir)
        return self

    def stop(self):
        if self.started:
            subprocess.run([POSTFIX, "-c", self.dir, "stop"], capture_output=True)
            self.started = False

    def maillog(self):
        try:
            with open(os.path.join(self.dir, "maillog"), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def hold_count(self):
        d = os.path.join(self.dir, "queue", "hold")
        return len(os.listdir(d)) if os.path.isdir(d) else 0


# ---------------------------------------------------------------- untild

class BenchUntild(harness.Untild):
    """harness.Untild without -v and --test-clock: debug logging of every
    message would be part of what we measure."""

    def start(self, wait=True):
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([harness.UNTILD, "-c", self.conf], stdout=self.logf, stderr=self.logf)
        PROCS.append(("untild", self.proc))
        wait_port(self.port, self.proc, "untild")
        end = time.monotonic() + 10
        while not os.path.exists(os.path.join(self.dir, "control.sock")):
            if time.monotonic() > end:
                raise RuntimeError("untild: no control socket\n" + self.logtext())
            time.sleep(0.05)
        return self


def start_untild(sink, windows=""):
    u = BenchUntild(upstream="url = smtp://127.0.0.1:%d\ntls = none\nconnections = 10\ntimeout = 60" % sink.port,
                       windows=windows, smtp_extra="max_sessions = 1000",
                       workdir=tempfile.mkdtemp(prefix="untild-", dir=TMP))
    # Allowed mail must pass: only the quiet domain is held.
    u.start()
    return u


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) / 1024.0   # MB
    return out


# ---------------------------------------------------------------- load

def smtp_source(port, sessions, count, size_kb, rcpt):
    r = subprocess.run([SMTP_SOURCE, "-s", str(sessions), "-m", str(count), "-l", str(size_kb * 1024),
                        "-f", FROM, "-t", rcpt, "127.0.0.1:%d" % port],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("smtp-source: exit %d: %s" % (r.returncode, r.stderr[-500:]))


def timed_through(port, sink, sessions, count, size_kb):
    """msg/s from smtp-source's start until the sink counted all."""
    base = sink.count()
    t0 = time.monotonic()
    smtp_source(port, sessions, count, size_kb, RCPT_ALLOWED)
    t1 = sink.wait_count(base + count)
    return count / (t1 - t0)


def stats(xs):
    return (statistics.median(xs), min(xs), max(xs))


# ---------------------------------------------------------------- benches

def bench_allowed(results):
    sink_d = SmtpSink("direct")
    sink_u = SmtpSink("untild")
    sink_p = SmtpSink("postfix")
    u = start_untild(sink_u)
    pf = Postfix("pf-relay", relayhost="[127.0.0.1]:%d" % sink_p.port).start()
    try:
        targets = [("direct", sink_d.port, sink_d), ("untild", u.port, sink_u),
                   ("postfix", pf.port, sink_p)]
        # Warm-up: first connections, Postfix's processes, untild's pool.
        for _, port, sink in targets:
            timed_through(port, sink, 10, 50, 5)
        for (sessions, size), count in sorted(ALLOWED_COUNT.items()):
            runs = {name: [] for name, _, _ in targets}
            ratio_d, ratio_p = [], []
            for _ in range(RUNS):
                one = {}
                for name, port, sink in targets:
                    one[name] = timed_through(port, sink, sessions, count, size)
                    runs[name].append(one[name])
                ratio_d.append(one["untild"] / one["direct"])
                ratio_p.append(one["untild"] / one["postfix"])
            key = "allowed s=%d %dKB" % (sessions, size)
            for name in runs:
                results.append(("%s %s msg/s" % (key, name), stats(runs[name]), ""))
            results.append(("%s untild/direct" % key, stats(ratio_d), ">= 0.5"))
            results.append(("%s untild/postfix" % key, stats(ratio_p), ">= 2"))
            log("done", key)
    finally:
        pf.stop()
        u.cleanup()
        for s in (sink_d, sink_u, sink_p):
            stop(s.proc)


def bench_held(results):
    """Held rate, RSS with HELD_COUNT held, release time; Postfix's enqueue
    rate into its hold queue for comparison."""
    held_u, held_p, rel, rel_all, hwm, rss, timeouts = [], [], [], [], [], [], []
    pf = Postfix("pf-hold", extra="smtpd_recipient_restrictions = check_recipient_access static:HOLD, permit_mynetworks, reject").start()
    try:
        for i in range(RUNS):
            sink = SmtpSink("held%d" % i)
            u = start_untild(sink, windows="@held.example never\n")
            try:
                t0 = time.monotonic()
                smtp_source(u.port, 10, HELD_COUNT, 5, RCPT_HELD)
                t1 = time.monotonic()
                held_u.append(HELD_COUNT / (t1 - t0))
                n = len(u.spool_files())
                if n != HELD_COUNT:
                    raise RuntimeError("untild spool holds %d of %d" % (n, HELD_COUNT))
                # Held notices go to the rep through the same upstream:
                # let them drain so they do not skew the release figure.
                sink.wait_count(HELD_COUNT)
                st = proc_status(u.proc.pid)
                hwm.append(st["VmHWM"])
                rss.append(st["VmRSS"])
                base = sink.count()
                t0 = time.monotonic()
                u.ctl("window", "end", "@held.example", check=0)
                end = t0 + RELEASE_TIMEOUT
                while u.spool_files() and time.monotonic() < end:
                    time.sleep(0.01)
                left = len(u.spool_files())
                if left:
                    log("release: %d of %d still held after %d s" % (left, HELD_COUNT, RELEASE_TIMEOUT))
                    timeouts.append(HELD_COUNT - left)
                else:
                    sink.wait_count(base + HELD_COUNT)
                    rel.append(time.monotonic() - t0)
                    # ...and the release notices, one per message.
                    sink.wait_count(base + 2 * HELD_COUNT)
                    rel_all.append(time.monotonic() - t0)
            finally:
                u.cleanup()
                stop(sink.proc)
            pbase = pf.hold_count()
            t0 = time.monotonic()
            smtp_source(pf.port, 10, HELD_COUNT, 5, RCPT_HELD)
            t1 = time.monotonic()
            if pf.hold_count() - pbase != HELD_COUNT:
                raise RuntimeError("postfix hold queue: %d new of %d\n%s"
                                   % (pf.hold_count() - pbase, HELD_COUNT, pf.maillog()))
            held_p.append(HELD_COUNT / (t1 - t0))
            log("done held run", i + 1)
    finally:
        pf.stop()
    results.append(("held s=10 5KB untild msg/s (fsync)", stats(held_u), ""))
    results.append(("held s=10 5KB postfix hold msg/s", stats(held_p), ""))
    results.append(("held untild/postfix", stats([a / b for a, b in zip(held_u, held_p)]), ">= 1"))
    if rel:
        results.append(("release %d s (delivered)" % HELD_COUNT, stats(rel), ""))
        results.append(("release %d s (+ notices)" % HELD_COUNT, stats(rel_all), ""))
    if timeouts:
        results.append(("release: runs over %d s (delivered in them)" % RELEASE_TIMEOUT,
                        stats(timeouts), "TIMEOUT"))
    results.append(("rss %d held VmHWM MB" % HELD_COUNT, stats(hwm), "< 200"))
    results.append(("rss %d held VmRSS MB" % HELD_COUNT, stats(rss), "< 200"))


def latencies(port, count):
    body = b"Subject: latency\r\n\r\n" + (b"x" * 76 + b"\r\n") * 64   # ~5 KB
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    s.ehlo("bench.example")
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        s.sendmail(FROM, [RCPT_ALLOWED], body)
        out.append(time.perf_counter() - t0)
    s.quit()
    out.sort()
    return out[len(out) // 2] * 1e3, out[min(len(out) - 1, int(len(out) * 0.99))] * 1e3


def bench_latency(results):
    sink_d = SmtpSink("lat-direct")
    sink_u = SmtpSink("lat-untild")
    u = start_untild(sink_u)
    try:
        latencies(u.port, 50)                  # warm the upstream connection
        d50, d99, a50, a99 = [], [], [], []
        for _ in range(RUNS):
            p50, p99 = latencies(sink_d.port, LATENCY_COUNT)
            q50, q99 = latencies(u.port, LATENCY_COUNT)
            d50.append(p50); d99.append(p99)
            a50.append(q50 - p50); a99.append(q99 - p99)
        results.append(("latency direct p50 ms", stats(d50), ""))
        results.append(("latency direct p99 ms", stats(d99), ""))
        results.append(("latency added p50 ms", stats(a50), "< 0.5"))
        results.append(("latency added p99 ms", stats(a99), ""))
    finally:
        u.cleanup()
        stop(sink_d.proc)
        stop(sink_u.proc)


def bench_idle(results):
    hwm, rss = [], []
    for _ in range(RUNS):
        sink = SmtpSink("idle")
        u = start_untild(sink)
        socks = []
        try:
            for _ in range(IDLE_SESSIONS):
                c = socket.create_connection(("127.0.0.1", u.port), 10)
                socks.append(c)
            for c in socks:
                f = c.makefile("rb")
                if not f.readline().startswith(b"220"):
                    raise RuntimeError("no greeting")
                c.sendall(b"EHLO bench.example\r\n")
                while True:
                    line = f.readline()
                    if not line.startswith(b"250-"):
                        break
                if not line.startswith(b"250 "):
                    raise RuntimeError("EHLO: %r" % line)
            st = proc_status(u.proc.pid)
            hwm.append(st["VmHWM"])
            rss.append(st["VmRSS"])
        finally:
            for c in socks:
                c.close()
            u.cleanup()
            stop(sink.proc)
    results.append(("rss %d idle sessions VmHWM MB" % IDLE_SESSIONS, stats(hwm), "< 200"))
    results.append(("rss %d idle sessions VmRSS MB" % IDLE_SESSIONS, stats(rss), "< 200"))


def fmt(v):
    return "%.3f" % v if abs(v) < 10 else "%.0f" % v


def main():
    for p in (SMTP_SOURCE, SMTP_SINK, POSTFIX, harness.UNTILD):
        if not os.access(p, os.X_OK):
            sys.exit("bench: %s missing" % p)
    results = []
    only = os.environ.get("BENCH_ONLY", "allowed,held,latency,idle").split(",")
    t0 = time.monotonic()
    try:
        if "allowed" in only:
            bench_allowed(results)
        if "held" in only:
            bench_held(results)
        if "latency" in only:
            bench_latency(results)
        if "idle" in only:
            bench_idle(results)
    finally:
        for _, p in PROCS:
            stop(p)
        shutil.rmtree(TMP, ignore_errors=True)
    print("%-44s %10s %10s %10s  %s" % ("figure (median of %d)" % RUNS, "median", "min", "max", "target"))
    for name, (med, lo, hi), target in results:
        ok = ""
        if target == "TIMEOUT":
            ok = "MISSED (timeout)"
        elif target:
            op, val = target.split()
            good = med >= float(val) if op == ">=" else med < float(val)
            ok = "%s %s" % (target, "ok" if good else "MISSED")
        print("%-44s %10s %10s %10s  %s" % (name, fmt(med), fmt(lo), fmt(hi), ok))
    print("%-44s %10.0f" % ("bench wall time s", time.monotonic() - t0))


if __name__ == "__main__":
    main()
