"""End-to-end harness: real daemon, real peers, all on 127.0.0.1.

- Sink: an aiosmtpd SMTP server in this process (its own thread) that
  records every envelope and the exact bytes received.
- Untild: the built daemon on a temp config with free ports, its own
  state dir and control socket, started with --test-clock so tests can
  move time; stopped by PID in tearDown.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from aiosmtpd.controller import Controller

BUILD = os.environ.get("UNTILD_BUILD", os.path.abspath("build"))
UNTILD = os.path.join(BUILD, "untild")
UNTILCTL = os.path.join(BUILD, "untilctl")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Envelope:
    def __init__(self, mail_from, rcpts, data):
        self.mail_from = mail_from
        self.rcpts = rcpts
        self.data = data


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        code = self.sink.rcpt_reply(address)
        if code:
            return code
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.sink.data_reply:
            return self.sink.data_reply
        with self.sink.lock:
            self.sink.messages.append(Envelope(envelope.mail_from, list(envelope.rcpt_tos),
                                               envelope.original_content))
            self.sink.cond.notify_all()
        return "250 2.0.0 Ok: queued as SINK%d" % len(self.sink.messages)


class Sink:
    """A real SMTP server (aiosmtpd) that records what it receives."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.messages = []
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.reject = {}          # address -> "550 ..." reply
        self.data_reply = None    # e.g. "451 4.3.0 try later"
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                     decode_data=False, enable_SMTPUTF8=True,
                                     data_size_limit=100 * 1024 * 1024)

    def rcpt_reply(self, address):
        return self.reject.get(address)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    def restart(self):
        """Listen again on the same port after stop() (a stopped aiosmtpd
        Controller cannot be started twice)."""
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                     decode_data=False, enable_SMTPUTF8=True,
                                     data_size_limit=100 * 1024 * 1024)
        return self.start()

    def wait(self, n, timeout=10):
        end = time.time() + timeout
        with self.lock:
            while len(self.messages) < n and time.time() < end:
                self.cond.wait(0.1)
            return list(self.messages)

    def for_rcpt(self, addr):
        with self.lock:
            return [m for m in self.messages if addr in m.rcpts]


BASE_CONF = """
[daemon]
state_dir = {dir}/state
control_socket = {dir}/control.sock
timezone = {tz}
owner = rep@example.com
[smtp]
listen = 127.0.0.1:{port}
auth = none
max_message_size = {max_size}
{smtp_extra}
[upstream]
{upstream}
[policy]
default_action = hold
split_recipients = {split}
release_time = {release_time}
release_on_weekends = {weekends}
{policy_extra}
[windows]
files = {dir}/windows.d/*.windows
{extra}
"""


class Untild:
    def __init__(self, sink=None, windows="", split="no", release_time="off", tz="UTC",
                 max_size=10 * 1024 * 1024, extra="", smtp_extra="", policy_extra="",
                 upstream=None, workdir=None, weekends="yes"):
        self.dir = workdir or tempfile.mkdtemp(prefix="untild-e2e-")
        os.chmod(self.dir, 0o755)
        os.makedirs(os.path.join(self.dir, "windows.d"), exist_ok=True)
        self.port = free_port()
        self.sink = sink
        if upstream is None:
            upstream = ("url = smtp://127.0.0.1:%d\ntls = none\nconnections = 4\ntimeout = 10" % sink.port
                        if sink else "maildir = %s/outbox" % self.dir)
        self.conf = os.path.join(self.dir, "untild.conf")
        with open(self.conf, "w") as f:
            f.write(BASE_CONF.format(dir=self.dir, port=self.port, tz=tz, split=split,
                                     release_time=release_time, max_size=max_size, extra=extra,
                                     smtp_extra=smtp_extra, policy_extra=policy_extra,
                                     upstream=upstream, weekends=weekends))
        self.write_windows(windows)
        self.proc = None
        self.log = os.path.join(self.dir, "untild.log")

    def write_windows(self, text, name="test.windows"):
        with open(os.path.join(self.dir, "windows.d", name), "w") as f:
            f.write(text)

    def start(self, wait=True):
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([UNTILD, "-v", "--test-clock", "-c", self.conf],
                                     stdout=self.logf, stderr=self.logf)
        if wait:
            end = time.time() + 10
            while time.time() < end:
                if self.proc.poll() is not None:
                    raise RuntimeError("untild exited %s:\n%s" % (self.proc.returncode, self.logtext()))
                try:
                    socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                    if os.path.exists(os.path.join(self.dir, "control.sock")):
                        break
                except OSError:
                    pass
                time.sleep(0.05)
            else:
                raise RuntimeError("untild did not start:\n" + self.logtext())
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "logf", None):
            self.logf.close()
            self.logf = None

    def kill(self):
        self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def sanitizer_errors(self):
        """Lines where ASan/UBSan/LSan complained (builds with sanitizers)."""
        return [l for l in self.logtext().splitlines()
                if "AddressSanitizer" in l or "LeakSanitizer" in l or "runtime error:" in l]

    def cleanup(self):
        self.stop()
        errs = self.sanitizer_errors()
        log = self.logtext()
        shutil.rmtree(self.dir, ignore_errors=True)
        if errs:
            raise AssertionError("sanitizer errors in untild:\n" + log[-6000:])

    def logtext(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def ctl(self, *args, check=None):
        r = subprocess.run([UNTILCTL, "-s", os.path.join(self.dir, "control.sock")] + list(args),
                           capture_output=True, text=True, timeout=20)
        if check is not None and r.returncode != check:
            raise AssertionError("untilctl %s: exit %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def set_clock(self, when):
        self.ctl("debug", "clock", "set", when, check=0)

    def spool_files(self, state="held"):
        d = os.path.join(self.dir, "state", "spool", state)
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def held_json(self):
        """The held list as parsed JSON (untilctl --json held list)."""
        import json
        return json.loads(self.ctl("--json", "held", "list", check=0).stdout)

    def windows_json(self):
        import json
        return json.loads(self.ctl("--json", "window", "list", check=0).stdout)

    def wait_for(self, pred, timeout=10, what="condition"):
        end = time.time() + timeout
        while time.time() < end:
            if pred():
                return True
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s\n--- untild log ---\n%s" % (what, self.logtext()[-4000:]))


class GateTest(unittest.TestCase):
    """Base: a sink and an untild, cleaned up after each test."""
    windows = ""
    split = "no"
    release_time = "off"
    untild_kwargs = {}

    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.u = Untild(self.sink, windows=self.windows, split=self.split,
                        release_time=self.release_time, **self.untild_kwargs)
        self.addCleanup(self.u.cleanup)
        self.u.start()

    def smtp(self):
        import smtplib
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20)
        self.addCleanup(lambda: s.close())
        return s


def message(subject="Hello", body="Hi there.\r\n", extra_headers="", frm="rep@example.com",
            to="jane@acme.com"):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@example.com>\r\n%s\r\n%s"
            % (frm, to, subject, "m%d.%d" % (os.getpid(), int(time.time() * 1e6)), extra_headers, body)).encode()
