"""Reliability: crashes (the torture run), upstream faults, a full disk,
load with slow clients, and clock steps (issue 4)."""
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import unittest

from harness import BUILD, UNDER_VALGRIND, GateTest, Sink, Untild, free_port, message

HERE = os.path.dirname(os.path.abspath(__file__))
JANE = "jane@acme.com"
BOB = "bob@other.com"
REP = "rep@example.com"
WINDOWS = 'jane@acme.com 2027-07-01 reason="Lease ends in July"\n'


def read_reply(f):
    lines = []
    while True:
        line = f.readline(4096)
        if not line:
            raise ConnectionError("EOF")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return int(lines[-1][:3]), b"".join(lines)


def transact(port, rcpts, msg, frm=REP, timeout=30):
    """One SMTP transaction, the curl test900 way: returns (stage, code,
    text) of the first reply that is not a success, or ("data", 250, text)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        f = s.makefile("rb")
        code, text = read_reply(f)
        steps = [("ehlo", b"EHLO test\r\n", 250), ("mail", b"MAIL FROM:<%s>\r\n" % frm.encode(), 250)]
        steps += [("rcpt", b"RCPT TO:<%s>\r\n" % r.encode(), 250) for r in rcpts]
        steps += [("data", b"DATA\r\n", 354)]
        for stage, cmd, want in steps:
            s.sendall(cmd)
            code, text = read_reply(f)
            if code != want:
                return stage, code, text
        s.sendall(msg.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        code, text = read_reply(f)
        s.sendall(b"QUIT\r\n")
        return "data", code, text
    finally:
        s.close()


def set_clock(u, when):
    """set_clock right after a start: the control socket's file exists from
    bind(), a moment before listen(); retry a refused connection briefly."""
    end = time.time() + 10
    while True:
        r = u.ctl("debug", "clock", "set", when)
        if r.returncode == 0:
            return
        if time.time() > end:
            raise AssertionError("debug clock set: %s%s" % (r.stdout, r.stderr))
        time.sleep(0.05)


def quiet_msg(subject="Held one"):
    return message(subject=subject, to=JANE)


def mid_of(data):
    m = re.search(rb"^Message-ID: <([^>]+)>", data, re.M | re.I)
    return m.group(1) if m else None


class RawUpstream:
    """A misbehaving upstream on 127.0.0.1: 'stall' answers up to DATA's
    354, then reads nothing more and never answers; 'drop' reads the whole
    message and closes the connection without a reply."""

    def __init__(self, mode):
        self.mode = mode
        self.port = free_port()
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", self.port))
        self.ls.listen(16)
        self.conns = []
        self.stopping = False
        self.datas = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            f = c.makefile("rb")
            c.sendall(b"220 raw ESMTP\r\n")
            while True:
                line = f.readline(4096)
                if not line:
                    return
                cmd = line[:4].upper()
                if cmd in (b"EHLO", b"HELO"):
                    c.sendall(b"250-raw\r\n250 8BITMIME\r\n")
                elif cmd == b"DATA":
                    self.datas += 1
                    c.sendall(b"354 go ahead\r\n")
                    if self.mode == "stall":
                        while not self.stopping:
                            time.sleep(0.1)
                        return
                    while True:
                        line = f.readline(65536)
                        if not line or line == b".\r\n":
                            break
                    c.close()      # mode drop: no reply at all
                    return
                elif cmd == b"QUIT":
                    c.sendall(b"221 bye\r\n")
                    return
                else:
                    c.sendall(b"250 ok\r\n")
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def stop(self):
        self.stopping = True
        self.ls.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def upstream_conf(port, timeout=3):
    return "url = smtp://127.0.0.1:%d\ntls = none\nconnections = 4\ntimeout = %d" % (port, timeout)


class FaultTest(unittest.TestCase):
    def make(self, sink=None, upstream=None, env=None, start=True, **kw):
        kw.setdefault("windows", WINDOWS)
        u = Untild(sink, upstream=upstream, **kw)
        self.addCleanup(u.cleanup)
        if start:
            self.start(u, env)
        return u

    def start(self, u, env=None):
        old = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})
        try:
            u.start()
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        set_clock(u, "2027-01-10T10:00:00Z")

    def sink(self, port=None):
        s = Sink(port).start()
        # Tests may stop a sink themselves (upstream down): stop is then a no-op.
        self.addCleanup(lambda: s.controller._thread and s.stop())
        return s

    def held_json(self, u):
        r = u.ctl("--json", "held", "list", check=0)
        return json.loads(r.stdout or "[]")


class UpstreamFaults(FaultTest):
    """The client gets 4xx where untild could neither deliver nor keep;
    the upstream's 5xx is passed through; nothing is left in the spool."""

    def test_upstream_down_gives_4xx(self):
        u = self.make(upstream=upstream_conf(free_port()))
        stage, code, text = transact(u.port, [BOB], message(to=BOB))
        self.assertEqual(stage, "data")
        self.assertTrue(400 <= code < 500, text)
        self.assertEqual(u.spool_files(), [])
        # Held mail needs no upstream: still accepted and kept.
        stage, code, text = transact(u.port, [JANE], quiet_msg())
        self.assertEqual((stage, code), ("data", 250), text)
        self.assertEqual(len(u.spool_files()), 1)

    def test_upstream_4xx_and_5xx_passed_through(self):
        sink = self.sink()
        u = self.make(sink, upstream=upstream_conf(sink.port))
        sink.data_reply = "451 4.3.0 Try again later"
        stage, code, text = transact(u.port, [BOB], message(to=BOB))
        self.assertEqual((stage, code), ("data", 451), text)
        sink.data_reply = "554 5.6.0 Content rejected"
        stage, code, text = transact(u.port, [BOB], message(to=BOB))
        self.assertEqual((stage, code), ("data", 554), text)
        self.assertIn(b"5.6.0", text)
        sink.data_reply = None
        sink.reject[BOB] = "550 5.1.1 No such user"
        stage, code, text = transact(u.port, [BOB], message(to=BOB))
        self.assertEqual(code, 550, text)
        self.assertEqual(sink.for_rcpt(BOB), [])
        self.assertEqual(u.spool_files(), [])
        # And the daemon still relays once the upstream behaves.
        del sink.reject[BOB]
        stage, code, text = transact(u.port, [BOB], message(to=BOB))
        self.assertEqual((stage, code), ("data", 250), text)
        self.assertEqual(len(sink.wait(1)), 1)

    def test_upstream_stalls_mid_data(self):
        up = RawUpstream("stall")
        self.addCleanup(up.stop)
        u = self.make(upstream=upstream_conf(up.port, timeout=3))
        t0 = time.time()
        stage, code, text = transact(u.port, [BOB], message(to=BOB), timeout=20)
        took = time.time() - t0
        self.assertEqual(stage, "data")
        self.assertTrue(400 <= code < 500, text)
        self.assertGreater(up.datas, 0, "the upstream never saw DATA")
        self.assertLess(took, 15, "upstream timeout = 3 not applied (%.1f s)" % took)
        self.assertEqual(u.spool_files(), [])
        # The daemon is not stuck: held mail is still taken.
        stage, code, text = transact(u.port, [JANE], quiet_msg())
        self.assertEqual(code, 250, text)

    def test_upstream_drops_after_data(self):
        up = RawUpstream("drop")
        self.addCleanup(up.stop)
        u = self.make(upstream=upstream_conf(up.port))
        stage, code, text = transact(u.port, [BOB], message(to=BOB))
        self.assertEqual(stage, "data")
        self.assertTrue(400 <= code < 500, text)
        self.assertGreater(up.datas, 0)
        self.assertEqual(u.spool_files(), [])


class ReleaseFaults(FaultTest):
    def test_release_retries_until_upstream_back(self):
        sink = self.sink()
        port = sink.port
        u = self.make(sink, upstream=upstream_conf(port))
        msg = quiet_msg("retry me")
        self.assertEqual(transact(u.port, [JANE], msg)[1], 250)
        u.wait_for(lambda: sink.for_rcpt(REP), what="held notice")
        sink.stop()
        u.set_clock("2027-07-01T00:00:01Z")
        u.wait_for(lambda: any(h["attempts"] > 0 for h in self.held_json(u)), timeout=20,
                   what="a failed release attempt")
        self.assertEqual(len(u.spool_files()), 1, "the message left the spool while the upstream was down")
        sink2 = self.sink(port)
        # Past the first back-off: the next attempt goes out, once.
        u.set_clock("2027-07-01T02:00:00Z")
        u.wait_for(lambda: len(sink2.for_rcpt(JANE)) == 1, timeout=20, what="delivery after retry")
        u.wait_for(lambda: u.spool_files() == [], what="spool empty")
        self.assertEqual(sink2.for_rcpt(JANE)[0].data, msg)
        u.set_clock("2027-07-02T00:00:00Z")
        time.sleep(1.5)
        self.assertEqual(len(sink2.for_rcpt(JANE)), 1, "sent twice")

    def test_release_gives_up_and_notifies(self):
        sink = self.sink()
        u = self.make(sink, upstream=upstream_conf(sink.port), policy_extra="max_queue_lifetime = 1h")
        u.set_clock("2027-06-30T23:30:00Z")
        msg = quiet_msg("give up on me")
        self.assertEqual(transact(u.port, [JANE], msg)[1], 250)
        sink.reject[JANE] = "451 4.2.0 Mailbox busy"
        u.set_clock("2027-07-01T00:00:01Z")
        u.wait_for(lambda: any(h["attempts"] > 0 for h in self.held_json(u)), timeout=20,
                   what="a failed release attempt")
        self.assertEqual(len(u.spool_files()), 1)
        self.assertFalse([m for m in sink.for_rcpt(REP) if b"Failed" in m.data], "gave up too early")
        # Past max_queue_lifetime (and the back-off): the next failure is final.
        u.set_clock("2027-07-01T01:31:00Z")

        def failed():
            return [m for m in sink.for_rcpt(REP) if re.search(rb"^Subject:.*Failed", m.data, re.M)]
        u.wait_for(failed, timeout=20, what="Failed notice")
        u.wait_for(lambda: u.spool_files() == [], what="spool empty")
        notice = failed()[0].data
        self.assertIn(mid_of(msg), notice, "the message is not attached to the notice")
        self.assertIn(b"give up on me", notice)
        self.assertEqual(sink.for_rcpt(JANE), [])


class DiskFull(FaultTest):
    def spool_state(self, u):
        return {st: u.spool_files(st) for st in ("incoming", "held", "active")}

    def test_spool_write_failure_gives_452(self):
        sink = self.sink()
        for n in ("0", "1", "2"):
            with self.subTest(fail_after=n):
                # Notices are spool files too: without "held" notices the
                # failing write is the n-th held message's, not a notice's
                # written alongside it by another writer thread.
                u = self.make(sink, upstream=upstream_conf(sink.port),
                              env={"UNTILD_TEST_SPOOL_FAIL_AFTER": n},
                              extra="[notify]\nevents = released, failed")
                results = []
                for i in range(5):
                    stage, code, text = transact(u.port, [JANE], quiet_msg("disk %s %d" % (n, i)))
                    results.append(code)
                    if code != 250:
                        self.assertEqual(stage, "data")
                        self.assertEqual(code, 452, text)
                        self.assertIn(b"4.3.1", text)
                        break
                self.assertEqual(results.count(452), 1, results)
                st = self.spool_state(u)
                self.assertEqual(st["incoming"], [], "partial file left in incoming/")
                self.assertEqual(len(st["held"]), results.count(250), "partial or lost file in held/")
                # The daemon keeps serving: held and relayed mail both work.
                self.assertEqual(transact(u.port, [JANE], quiet_msg("after"))[1], 250)
                self.assertEqual(len(u.spool_files()), results.count(250) + 1)
                before = len(sink.for_rcpt(BOB))
                self.assertEqual(transact(u.port, [BOB], message(to=BOB))[1], 250)
                u.wait_for(lambda: len(sink.for_rcpt(BOB)) == before + 1, what="relay after disk full")
                u.stop()

    def test_real_full_tmpfs(self):
        sink = self.sink()
        u = self.make(sink, upstream=upstream_conf(sink.port), start=False)
        spool = os.path.join(u.dir, "state", "spool")
        os.makedirs(spool)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", spool],
                           capture_output=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: %s" % r.stderr.decode().strip())

        def umount():
            u.stop()
            subprocess.run(["umount", spool], capture_output=True)
        self.addCleanup(umount)
        self.start(u)
        big = quiet_msg("too big for the disk") + b"x" * 76 + b"\r\n"
        big += (b"y" * 998 + b"\r\n") * 2000
        stage, code, text = transact(u.port, [JANE], big)
        self.assertEqual((stage, code), ("data", 452), text)
        self.assertIn(b"4.3.1", text)
        self.assertEqual(u.spool_files("incoming"), [])
        self.assertEqual(u.spool_files("held"), [])
        self.assertEqual(transact(u.port, [JANE], quiet_msg("small"))[1], 250)
        self.assertEqual(len(u.spool_files("held")), 1)


class Load(FaultTest):
    # The peak-RSS bound measures valgrind's shadow memory, not untild's.
    @unittest.skipIf(UNDER_VALGRIND, "peak RSS is meaningless under valgrind")
    def test_slow_clients_do_not_starve_a_fast_one(self):
        sink = self.sink()
        u = self.make(sink, upstream=upstream_conf(sink.port))
        slow = []
        self.addCleanup(lambda: [c.close() for c in slow])
        for _ in range(200):
            slow.append(socket.create_connection(("127.0.0.1", u.port), timeout=10))
        stop = threading.Event()
        line = b"EHLO slow.example\r\nMAIL FROM:<rep@example.com>\r\n"

        def dribble():
            i = 0
            while not stop.is_set():
                for c in slow:
                    try:
                        c.send(line[i % len(line):i % len(line) + 1])
                    except OSError:
                        pass
                i += 1
                stop.wait(1.0)
        t = threading.Thread(target=dribble)
        t.start()
        self.addCleanup(t.join)
        self.addCleanup(stop.set)
        time.sleep(1.5)
        self.assertEqual(u.proc.poll(), None)
        for i in range(5):
            t0 = time.time()
            stage, code, text = transact(u.port, [BOB], message(subject="fast %d" % i, to=BOB), timeout=10)
            took = time.time() - t0
            self.assertEqual((stage, code), ("data", 250), text)
            self.assertLess(took, 3.0, "fast client took %.1f s with 200 slow ones" % took)
            stage, code, text = transact(u.port, [JANE], quiet_msg("fast held %d" % i), timeout=10)
            self.assertEqual(code, 250, text)
        self.assertEqual(len(sink.for_rcpt(BOB)), 5)
        u.wait_for(lambda: len(sink.for_rcpt(REP)) == 5, what="5 held notices")
        # The 200 are still connected and served, not dropped.
        r = u.ctl("status", check=0)
        with open("/proc/%d/status" % u.proc.pid) as f:
            hwm = [ln for ln in f if ln.startswith("VmHWM:")][0]
        kb = int(hwm.split()[1])
        print("\nload: 200 slow sessions, daemon peak RSS %d kB (%s)" % (kb, r.stdout.strip().replace("\n", ", ")),
              file=sys.stderr)
        self.assertLess(kb, 200 * 1024)
        alive = 0
        for c in slow:
            c.setblocking(False)
            try:
                alive += bool(c.recv(4096))
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        self.assertEqual(alive, 200, "slow sessions were dropped")


class ClockSteps(GateTest):
    windows = WINDOWS

    def hold(self, subject):
        self.u.set_clock("2027-01-10T10:00:00Z")
        msg = quiet_msg(subject)
        self.assertEqual(transact(self.u.port, [JANE], msg)[1], 250)
        self.assertEqual(len(self.u.spool_files()), 1)
        return msg

    def test_step_backwards_neither_releases_nor_loses(self):
        msg = self.hold("backwards")
        self.u.set_clock("2027-06-30T23:59:00Z")
        self.u.set_clock("2026-01-01T00:00:00Z")     # a step back of 18 months
        time.sleep(2.5)
        self.assertEqual(self.sink.for_rcpt(JANE), [], "released early after a backwards step")
        self.assertEqual(len(self.u.spool_files()), 1)
        self.u.set_clock("2027-06-30T23:59:59Z")
        time.sleep(1.5)
        self.assertEqual(self.sink.for_rcpt(JANE), [], "released early")
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: len(self.sink.for_rcpt(JANE)) == 1, what="release after the steps")
        self.assertEqual(self.sink.for_rcpt(JANE)[0].data, msg)
        self.u.wait_for(lambda: self.u.spool_files() == [], what="spool empty")
        # Stepping back after the release does not send it again.
        self.u.set_clock("2027-01-10T10:00:00Z")
        self.u.set_clock("2027-07-05T00:00:00Z")
        time.sleep(1.5)
        self.assertEqual(len(self.sink.for_rcpt(JANE)), 1, "sent twice")

    def test_step_forward_past_release_sends_once(self):
        msg = self.hold("forwards")
        self.u.set_clock("2027-03-01T00:00:00Z")     # forwards, still quiet
        time.sleep(1.5)
        self.assertEqual(self.sink.for_rcpt(JANE), [], "released early after a forward step")
        self.u.set_clock("2028-02-01T00:00:00Z")     # far past the end
        self.u.wait_for(lambda: len(self.sink.for_rcpt(JANE)) == 1, what="release after a long jump")
        self.assertEqual(self.sink.for_rcpt(JANE)[0].data, msg)
        self.u.wait_for(lambda: self.u.spool_files() == [], what="spool empty")
        time.sleep(1.5)
        self.assertEqual(len(self.sink.for_rcpt(JANE)), 1, "sent twice")

    def test_restart_with_wall_clock_behind_keeps_held(self):
        self.hold("restart")
        # A restart loses the test clock: the daemon runs on the real clock,
        # which is before the window's end, so the message stays held.
        self.u.restart()
        if time.time() >= 1814400000:   # 2027-07-01: real time caught up
            self.skipTest("the real clock is past the window")
        time.sleep(1.5)
        self.assertEqual(self.sink.for_rcpt(JANE), [])
        self.assertEqual(len(self.u.spool_files()), 1)
        set_clock(self.u, "2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: len(self.sink.for_rcpt(JANE)) == 1, what="release after restart")


class Torture(unittest.TestCase):
    def test_kill_9_torture_20_trials(self):
        t0 = time.time()
        r = subprocess.run([sys.executable, os.path.join(HERE, "..", "torture.py"), "--build", BUILD,
                            "--trials", "20"], capture_output=True, text=True, timeout=150)
        print("\n" + "\n".join(ln for ln in r.stdout.splitlines() if ln.startswith("torture:")),
              file=sys.stderr)
        self.assertEqual(r.returncode, 0, r.stdout[-4000:] + r.stderr[-2000:])
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("torture: messages")][0]
        counts = dict(re.findall(r"(\w[\w-]*) (\d+)", line))
        self.assertEqual(counts.get("lost"), "0")
        self.assertEqual(counts.get("duplicated"), "0")
        self.assertGreater(int(counts.get("accepted", "0")), 0)
        self.assertLess(time.time() - t0, 120)


if __name__ == "__main__":
    unittest.main()
