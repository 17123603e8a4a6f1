"""The control socket is bounded: silent clients are closed after the idle
timeout and cannot hold more than a fixed number of connections."""
import os
import socket
import time

from harness import GateTest


class ControlLimits(GateTest):
    def test_silent_clients_are_dropped(self):
        path = os.path.join(self.u.dir, "control.sock")
        socks = []
        for _ in range(40):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            socks.append(s)
        self.addCleanup(lambda: [s.close() for s in socks])
        self.u.wait_for(lambda: "too many connections" in self.u.logtext(), what="refusal")
        # the idle ones are closed, and the socket serves again
        self.u.wait_for(lambda: "idle for" in self.u.logtext(), timeout=20, what="idle close")
        r = self.u.ctl("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        closed = 0
        for s in socks:
            s.settimeout(0.5)
            try:
                closed += s.recv(1) == b""
            except (socket.timeout, ConnectionResetError):
                closed += 1
        self.assertEqual(closed, 40)


def greeting_time(port, timeout=30):
    """Seconds from connect to the 220 greeting."""
    t0 = time.time()
    s = socket.create_connection(("127.0.0.1", port), timeout)
    try:
        f = s.makefile("rb")
        line = f.readline()
        assert line.startswith(b"220"), line
        return time.time() - t0
    finally:
        s.close()


def raw_request(path, *words):
    """Send one request and leave the answer unread; returns the socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(path)
    s.sendall(b"".join(w.encode() + b"\0" for w in words) + b"\0")
    return s


class SlowReaders(GateTest):
    """Control answers are written as the client reads them: clients that
    do not read cost memory (bounded), never the loop's time."""
    # 5,000 windows: a `window list` answer of about 0.5 MB each
    windows = "".join("c%d@acme.com 2027-07-01 reason=\"busy %d\"\n" % (i, i) for i in range(5000))

    def test_unread_answers_do_not_block_greetings(self):
        path = os.path.join(self.u.dir, "control.sock")
        socks = [raw_request(path, "window", "list", "--limit", "5000") for _ in range(10)]
        self.addCleanup(lambda: [s.close() for s in socks])
        # every request was taken (its answer is queued), none of them read
        self.u.wait_for(lambda: self.u.ctl("status").returncode == 0, what="status")
        worst = max(greeting_time(self.u.port) for _ in range(5))
        self.assertLess(worst, 1.0)
        # the queued answers are still whole when a reader finally reads
        data = b""
        socks[0].settimeout(10)
        while True:
            chunk = socks[0].recv(65536)
            if not chunk:
                break
            data += chunk
        self.assertTrue(data.startswith(b"0\n"), data[:40])
        self.assertEqual(data.count(b"\n"), 5002)     # status, header, 5000 rows

    def test_stuck_reader_is_closed(self):
        path = os.path.join(self.u.dir, "control.sock")
        s = raw_request(path, "window", "list", "--limit", "5000")
        self.addCleanup(s.close)
        self.u.wait_for(lambda: "read nothing of its answer" in self.u.logtext(), timeout=30,
                        what="the stuck reader closed")


class OutputCap(GateTest):
    untild_kwargs = {"extra": "", "smtp_extra": ""}
    windows = "".join("c%d@acme.com 2027-07-01\n" % i for i in range(2000))

    def setUp(self):
        super().setUp()
        with open(self.u.conf) as f:
            conf = f.read()
        with open(self.u.conf, "w") as f:
            f.write(conf.replace("[daemon]\n", "[daemon]\ncontrol_output_max = 8192\n", 1))
        self.u.restart()

    def test_answer_over_the_cap_is_refused(self):
        r = self.u.ctl("window", "list")
        self.assertEqual(r.returncode, 1)
        self.assertIn("control_output_max", r.stderr)
        self.assertIn("exceeds control_output_max", self.u.logtext())
        r = self.u.ctl("window", "list", "--limit", "10")
        self.assertEqual(r.returncode, 0, r.stderr)


class ManyWindows(GateTest):
    # 300 windows for one address (more than the 256 a stack array held)
    windows = "".join("jane@acme.com 2027-07-01 reason=\"w%d\"\n" % i for i in range(300))

    def test_window_end_with_300_windows(self):
        r = self.u.ctl("window", "end", "jane@acme.com")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count("ended "), 300)
        self.assertEqual(self.u.ctl("status").returncode, 0)
        self.assertEqual(self.u.windows_json(), [])


class Paging(GateTest):
    windows = "".join("c%04d@acme.com 2027-07-01\n" % i for i in range(1200))

    def test_window_list_pages_with_a_hint(self):
        r = self.u.ctl("window", "list")
        self.assertEqual(r.returncode, 0)
        rows = r.stdout.splitlines()[1:]
        self.assertEqual(len(rows), 1000)
        self.assertIn("more entries; next page: untilctl window list --after ", r.stderr)
        after = r.stderr.split("--after ")[1].split()[0]
        self.assertEqual(after, rows[-1].split()[0])
        r2 = self.u.ctl("window", "list", "--after", after)
        self.assertEqual(len(r2.stdout.splitlines()[1:]), 200)
        self.assertEqual(r2.stderr, "")
        import json
        page = json.loads(self.u.ctl("--json", "window", "list", "--limit", "1000").stdout)
        self.assertEqual(len(page["items"]), 1000)
        self.assertEqual(page["next"], after)
        rest = json.loads(self.u.ctl("--json", "window", "list", "--after", page["next"]).stdout)
        self.assertIsNone(rest["next"])
        ids = [w["id"] for w in page["items"] + rest["items"]]
        self.assertEqual(len(set(ids)), 1200)


class HostileText(GateTest):
    def test_subject_escapes_do_not_reach_the_terminal(self):
        import smtplib
        from harness import message
        self.u.set_clock("2027-01-10T10:00Z")
        evil = "Hi \x1b]0;pwned\x07\x1b[2J \x9b31m\x7f"
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20)
        self.addCleanup(s.close)
        msg = message(subject="=?utf-8?b?%s?=" % __import__("base64").b64encode(evil.encode()).decode(),
                      to="bob@other.com")
        s.sendmail("rep@example.com", ["bob@other.com", "until-2027-07-01@untild.invalid"], msg)
        r = subprocess_bytes(self.u, "window", "list")
        self.assertIn(b"bob@other.com", r)
        for bad in (b"\x1b", b"\x07", b"\x7f", b"\xc2\x9b"):
            self.assertNotIn(bad, r)
        # (the subject decoder already turns C0 controls into spaces; the C1
        # CSI reached the table as it was)
        self.assertIn(b"?31m", r)
        j = subprocess_bytes(self.u, "--json", "window", "list")
        self.assertIn(b"\\u009b31m", j)
        self.assertNotIn(b"\x1b", j)


def subprocess_bytes(u, *args):
    import subprocess
    from harness import UNTILCTL
    return subprocess.run([UNTILCTL, "-s", os.path.join(u.dir, "control.sock")] + list(args),
                          capture_output=True, timeout=20).stdout
