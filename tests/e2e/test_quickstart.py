"""The README's quick start stays true: untild on the embedded default
config (etc/untild.conf: loopback, no upstream, Maildir ./var/outbox) and
the worked example (window add, check, held, window end -> released)."""
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from harness import UNTILD, UNTILCTL, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class QuickStart(unittest.TestCase):
    def setUp(self):
        self.top = tempfile.mkdtemp(prefix="untild-qs-")
        self.addCleanup(shutil.rmtree, self.top, True)
        shutil.copytree(os.path.join(ROOT, "etc"), os.path.join(self.top, "etc"))
        self.port = free_port()
        conf = os.path.join(self.top, "etc", "untild.conf")
        with open(conf) as f:
            text = f.read()
        self.assertIn("listen = 127.0.0.1:10587", text)   # what the README promises
        with open(conf, "w") as f:
            f.write(text.replace("127.0.0.1:10587", "127.0.0.1:%d" % self.port))
        self.conf = conf
        self.log = open(os.path.join(self.top, "log"), "wb")
        self.addCleanup(self.log.close)
        self.p = subprocess.Popen([UNTILD, "-c", conf], stdout=self.log, stderr=self.log)
        self.addCleanup(self.stop)
        sock = os.path.join(self.top, "var", "control.sock")
        end = time.time() + 10
        while time.time() < end and not os.path.exists(sock):
            time.sleep(0.05)
        self.assertTrue(os.path.exists(sock))

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            self.p.wait(10)

    def ctl(self, *args):
        return subprocess.run([UNTILCTL, "-c", self.conf] + list(args), capture_output=True, text=True)

    def swaks(self, to):
        return subprocess.run(["swaks", "--server", "127.0.0.1:%d" % self.port, "--from", "rep@example.com",
                               "--to", to, "--header", "Subject: quick start"],
                              capture_output=True, text=True, timeout=30)

    def outbox(self):
        d = os.path.join(self.top, "var", "outbox", "new")
        return [open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d))] if os.path.isdir(d) else []

    def test_readme_walkthrough(self):
        r = self.ctl("window", "add", "jane@acme.com", "--until", "2099-07-01", "--reason", "Lease ends in July")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.ctl("check", "jane@acme.com")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("Lease ends in July", r.stdout)
        self.assertEqual(self.swaks("jane@acme.com").returncode, 0)
        self.assertEqual(self.swaks("bob@other.com").returncode, 0)
        mails = self.outbox()
        self.assertTrue(any(b"X-Untild-Envelope-To: <bob@other.com>" in m for m in mails), mails)
        self.assertFalse(any(b"X-Untild-Envelope-To: <jane@acme.com>" in m for m in mails))
        r = self.ctl("held", "list")
        self.assertIn("jane@acme.com", r.stdout)
        r = self.ctl("window", "end", "jane@acme.com")
        self.assertEqual(r.returncode, 0, r.stderr)
        end = time.time() + 10
        while time.time() < end and not any(b"X-Untild-Envelope-To: <jane@acme.com>" in m for m in self.outbox()):
            time.sleep(0.1)
        self.assertTrue(any(b"X-Untild-Envelope-To: <jane@acme.com>" in m for m in self.outbox()))
        self.assertNotIn("jane@acme.com", self.ctl("held", "list").stdout)


if __name__ == "__main__":
    unittest.main()
