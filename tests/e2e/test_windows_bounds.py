"""Recurring windows cost the loop a bounded amount (issue 18, items 3 and 7).

A local user may add a run-time window with any RRULE: the pathological
ones are refused with the reason, and the valid-but-heavy ones do not stall
other clients. A SIGHUP with many windows builds the new index on a worker
thread: an SMTP client connecting meanwhile is greeted at once.

The greeting figures asserted here are loose (a loaded 2-core test machine);
`make bench` measures the 50 ms target."""
import os
import signal
import socket
import threading
import time

from harness import GateTest, TIMEOUT_SCALE, UNDER_VALGRIND

# Worst greeting we accept here; the stall being guarded against took
# seconds (47 s for one BYMONTHDAY=29 rule, ~9.5 s per SIGHUP).
GREETING_MAX = 0.5 * TIMEOUT_SCALE


class Prober:
    """Opens a connection every 20 ms and records the time to the 220."""

    def __init__(self, port):
        self.port = port
        self.times = []
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop_ev.is_set():
            t0 = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", self.port), 30) as s:
                    buf = b""
                    while b"\n" not in buf:
                        chunk = s.recv(512)
                        if not chunk:
                            break
                        buf += chunk
                    s.sendall(b"QUIT\r\n")
                if buf.startswith(b"220"):
                    self.times.append(time.monotonic() - t0)
            except OSError:
                pass
            self.stop_ev.wait(0.02)

    def __enter__(self):
        self.th.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.th.join()

    def worst(self):
        return max(self.times) if self.times else None


class RuleBounds(GateTest):
    def test_pathological_rules_are_refused_with_the_reason(self):
        self.u.set_clock("2027-01-10T10:00Z")
        cases = [
            ("FREQ=SECONDLY;BYMONTH=2", "FREQ=SECONDLY is too frequent"),
            ("FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=29", "too frequent"),
            ("FREQ=MINUTELY", "FREQ=MINUTELY is too frequent"),
            ("FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30", "no date ever matches"),
            ("FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30", "no occurrence within 2000 hours"),
            ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=6", "no date ever matches"),
        ]
        for rule, why in cases:
            t0 = time.monotonic()
            r = self.u.ctl("window", "add", "x@acme.com", "--until", "never", "--rrule", rule)
            took = time.monotonic() - t0
            self.assertEqual(r.returncode, 2, rule + ": " + r.stdout + r.stderr)
            out = r.stdout + r.stderr
            self.assertIn("bad rrule '%s'" % rule, out)
            self.assertIn(why, out)
            self.assertLess(took, 5 * TIMEOUT_SCALE, rule)
        self.assertEqual(self.u.windows_json(), [])
        # a long occurrence is refused too
        r = self.u.ctl("window", "add", "x@acme.com", "--until", "never", "--rrule", "FREQ=DAILY",
                       "--duration", "P400D")
        self.assertEqual(r.returncode, 2)
        self.assertIn("rrule_max_duration", r.stdout + r.stderr)

    def test_heavy_rule_does_not_stall_greetings(self):
        self.u.set_clock("2027-06-01T10:00Z")
        heavy = {
            "leap@acme.com": "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29",
            "mon@acme.com": "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",
            "hour@acme.com": "FREQ=HOURLY;BYMONTH=2;BYDAY=MO",
        }
        with Prober(self.u.port) as p:
            for who, rule in heavy.items():
                r = self.u.ctl("window", "add", who, "--until", "never", "--rrule", rule,
                               "--duration", "1h")
                self.assertEqual(r.returncode, 0, rule + ": " + r.stdout + r.stderr)
            # every check at a new time is a fresh evaluation (no cached answer)
            for day in range(1, 29):
                self.u.set_clock("2027-%02d-%02dT10:30Z" % (day % 12 + 1, day))
                for who in heavy:
                    self.assertIn(self.u.ctl("check", who).returncode, (0, 3))
            # answers are right
            self.u.set_clock("2028-02-29T00:30Z")
            self.assertEqual(self.u.ctl("check", "leap@acme.com").returncode, 3)
            self.u.set_clock("2028-03-01T00:30Z")
            self.assertEqual(self.u.ctl("check", "leap@acme.com").returncode, 0)
            self.u.set_clock("2027-02-01T10:30Z")   # a Monday in February
            self.assertEqual(self.u.ctl("check", "hour@acme.com").returncode, 3)
            s = self.smtp()
            s.ehlo("client.example")
            s.mail("rep@example.com")
            self.assertEqual(s.rcpt("hour@acme.com")[0], 250)
            s.quit()
        self.assertGreater(len(p.times), 5)
        self.assertLess(p.worst(), GREETING_MAX, "worst greeting %.3f s" % p.worst())


class ReloadOffLoop(GateTest):
    windows = 'jane@acme.com 2027-07-01 reason="Lease ends in July"\n'

    def reload_and_wait(self, marker):
        n = self.u.logtext().count(marker)
        self.u.proc.send_signal(signal.SIGHUP)
        self.u.wait_for(lambda: self.u.logtext().count(marker) > n, timeout=60, what="log: " + marker)

    def test_sighup_with_many_windows_keeps_greeting(self):
        self.u.set_clock("2027-01-10T10:00Z")
        n = 20000 if UNDER_VALGRIND else 200000   # valgrind runs one thread at a time
        lines = ["user%d@dom%d.example 2027-07-01 reason=\"pause %d\"\n" % (i, i % 5000, i)
                 for i in range(n)]
        # zones the loop has not resolved yet: the worker may not ask libical
        # by name, so the files are read a second time once they are
        lines.append('ny@acme.com 2027-07-01 from=2027-01-10T04:00 tz=America/New_York\n')
        lines.append('tokyo@acme.com never rrule="FREQ=WEEKLY;BYDAY=SU" tz=Asia/Tokyo\n')
        self.u.write_windows("".join(lines), name="many.windows")
        with Prober(self.u.port) as p:
            self.reload_and_wait("reload: %d window(s) loaded" % (n + 3))
        self.assertGreater(len(p.times), 3)
        self.assertLess(p.worst(), GREETING_MAX, "worst greeting %.3f s" % p.worst())
        self.assertIn("window loader: 2 new time zone name(s) resolved", self.u.logtext())
        # 04:00 in New York is 09:00Z: quiet at 10:00Z
        self.assertEqual(self.u.ctl("check", "ny@acme.com").returncode, 3)
        self.assertEqual(self.u.ctl("check", "user77@dom77.example").returncode, 3)
        self.assertEqual(self.u.ctl("check", "jane@acme.com").returncode, 3)
        # Sunday in Tokyo starts Saturday 15:00Z
        self.u.set_clock("2027-01-16T16:00Z")
        self.assertEqual(self.u.ctl("check", "tokyo@acme.com").returncode, 3)

    def test_bad_rrule_in_a_file_keeps_the_old_index(self):
        self.u.set_clock("2027-01-10T10:00Z")
        wfile = os.path.join(self.u.dir, "windows.d", "test.windows")
        self.u.write_windows('bob@initech.com 2027-05-01\n'
                             'x@acme.com never rrule="FREQ=SECONDLY;BYMONTH=2"\n')
        self.reload_and_wait("keeping the old one")
        log = self.u.logtext()
        self.assertIn(wfile + ":2: bad rrule 'FREQ=SECONDLY;BYMONTH=2': FREQ=SECONDLY is too frequent", log)
        self.assertEqual(self.u.ctl("check", "jane@acme.com").returncode, 3)
        self.assertEqual(self.u.ctl("check", "bob@initech.com").returncode, 0)
        # fixed: the next SIGHUP applies it
        self.u.write_windows('bob@initech.com 2027-05-01\n')
        self.reload_and_wait("reload: 1 window(s) loaded")
        self.assertEqual(self.u.ctl("check", "bob@initech.com").returncode, 3)
        self.assertEqual(self.u.ctl("check", "jane@acme.com").returncode, 0)
