"""DSN parameters (RFC 3461) reach the upstream: RET and ENVID on MAIL,
NOTIFY and ORCPT on RCPT, for relayed and for held-then-released mail.
The upstream is a real Postfix (it offers DSN) that keeps every message in
its hold queue, so postcat shows the envelope it received."""
import os
import re
import smtplib
import subprocess
import time
import unittest

from harness import Postfix, Sink, Untild, message, postfix_available

REP = "rep@example.com"


@unittest.skipUnless(postfix_available(), "needs root and Postfix")
class Dsn(unittest.TestCase):
    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.pf = Postfix(self.sink.port, extra="header_checks = static:HOLD\n")
        self.addCleanup(self.pf.cleanup if hasattr(self.pf, "cleanup") else self.pf.stop)
        self.pf.start()
        up = "url = smtp://127.0.0.1:%d\ntls = none\nconnections = 2\ntimeout = 20" % self.pf.port
        self.u = Untild(None, upstream=up, windows="jane@acme.com 2027-07-01\n",
                        extra="[notify]\nevents = none\n")
        self.addCleanup(self.u.cleanup)
        self.u.start()
        self.u.set_clock("2027-01-10T10:00Z")

    def envelopes(self):
        r = self.pf.cmd("postqueue", "-c", self.pf.dir, "-j", check=False)
        out = []
        for qid in re.findall(r'"queue_id": *"([0-9A-Za-z]+)"', r.stdout):
            pc = self.pf.cmd("postcat", "-c", self.pf.dir, "-e", "-q", qid, check=False)
            out.append(pc.stdout)
        return out

    def send(self, rcpt, mail_opts, rcpt_opts):
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=30)
        self.addCleanup(s.close)
        s.sendmail(REP, [rcpt], message(to=rcpt), mail_options=mail_opts, rcpt_options=rcpt_opts)

    def check_envelope(self, rcpt):
        self.u.wait_for(lambda: any(rcpt in e for e in self.envelopes()), timeout=20,
                        what="message in Postfix's queue")
        env = [e for e in self.envelopes() if rcpt in e][0]
        self.assertIn("envelope_id=track-42", env)
        self.assertIn("ret_flags=2", env)              # RET=HDRS
        self.assertIn("notify_flags=6", env)           # SUCCESS (2) | FAILURE (4)
        self.assertIn("dsn_orig_rcpt=rfc822;" + rcpt, env)

    def test_relayed_mail_carries_dsn(self):
        self.send("bob@other.example", ["RET=HDRS", "ENVID=track-42"],
                  ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;bob@other.example"])
        self.check_envelope("bob@other.example")

    def test_plain_mail_unchanged_path(self):
        # no DSN asked for: the usual libcurl path, no DSN records invented
        self.send("carol@other.example", [], [])
        self.u.wait_for(lambda: any("carol@other.example" in e for e in self.envelopes()), timeout=20,
                        what="message in Postfix's queue")
        env = [e for e in self.envelopes() if "carol@other.example" in e][0]
        self.assertNotIn("envelope_id=", env)
        self.assertNotIn("notify_flags=", env)

    def test_released_mail_carries_dsn(self):
        self.send("jane@acme.com", ["RET=HDRS", "ENVID=track-42"],
                  ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;jane@acme.com"])
        self.assertEqual(len(self.u.spool_files()), 1)
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.check_envelope("jane@acme.com")


if __name__ == "__main__":
    unittest.main()
