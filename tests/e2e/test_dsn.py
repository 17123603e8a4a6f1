"""DSN parameters (RFC 3461) reach the upstream: RET and ENVID on MAIL,
NOTIFY and ORCPT on RCPT, for relayed and for held-then-released mail.
The upstream is a real Postfix (it offers DSN) that keeps every message in
its hold queue, so postcat shows the envelope it received.

DsnUpstream: an aiosmtpd upstream that offers DSN and records every MAIL and
RCPT parameter: a recipient it defers (451) keeps its NOTIFY/ORCPT when
untild retries it, and replies without text ("250" alone, RFC 5321 4.2)
are taken."""
import os
import re
import smtplib
import subprocess
import threading
import time
import unittest

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from harness import Postfix, Sink, Untild, free_port, message, postfix_available

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


class _DsnSMTP(SMTP):
    """aiosmtpd's server, told to take the DSN parameters (it refuses with
    555 any parameter it does not know)."""

    def _getparams(self, params):
        r = super()._getparams(params)
        if r is None:
            return r
        return {k: v for k, v in r.items() if k not in ("RET", "ENVID", "NOTIFY", "ORCPT")}


class DsnSink:
    """An upstream that offers DSN and records the parameters of every MAIL
    and RCPT (aiosmtpd upper-cases them). Recipients in defer get 451 once;
    bare=True answers "250" with no text to MAIL, RCPT and DATA."""

    def __init__(self, bare=False, defer=()):
        self.port = free_port()
        self.bare = bare
        self.defer = set(defer)
        self.mails = []        # [mail_options]
        self.rcpts = []        # [(address, rcpt_options)]
        self.messages = []     # [(rcpt_tos, data)]
        self.lock = threading.Lock()
        sink = self

        class Ctl(Controller):
            def factory(self):
                return _DsnSMTP(sink, **self.SMTP_kwargs)

        self.controller = Ctl(self, hostname="127.0.0.1", port=self.port)

    def ok(self, text):
        return "250" if self.bare else "250 " + text

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return responses[:-1] + ["250-DSN", responses[-1]]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        with self.lock:
            self.mails.append(list(mail_options))
        return self.ok("2.1.0 Ok")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            if address in self.defer:
                self.defer.discard(address)
                return "451 4.3.0 try later"
            self.rcpts.append((address, list(rcpt_options)))
        envelope.rcpt_tos.append(address)
        return self.ok("2.1.5 Ok")

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), envelope.original_content))
        return self.ok("2.0.0 Ok: queued")

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    def options_of(self, addr):
        with self.lock:
            return [o for a, o in self.rcpts if a == addr]


class DsnUpstream(unittest.TestCase):
    def start(self, sink):
        self.sink = sink.start()
        self.addCleanup(self.sink.stop)
        up = "url = smtp://127.0.0.1:%d\ntls = none\nconnections = 2\ntimeout = 5" % self.sink.port
        self.u = Untild(None, upstream=up, extra="[notify]\nevents = none\n")
        self.addCleanup(self.u.cleanup)
        self.u.start()
        self.u.set_clock("2027-01-10T10:00Z")

    def smtp(self):
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=30)
        self.addCleanup(s.close)
        s.ehlo()
        return s

    def test_reply_without_text_is_taken(self):
        self.start(DsnSink(bare=True))
        s = self.smtp()
        self.assertEqual(s.mail(REP, ["RET=HDRS", "ENVID=track-42"])[0], 250)
        self.assertEqual(s.rcpt("bob@other.example",
                                ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;bob@other.example"])[0], 250)
        code, text = s.data(message(to="bob@other.example"))
        self.assertEqual(code, 250, text)
        self.assertEqual([m[0] for m in self.sink.messages], [["bob@other.example"]])
        self.assertIn("NOTIFY=SUCCESS,FAILURE", self.sink.options_of("bob@other.example")[0])

    def test_deferred_recipient_keeps_its_dsn_parameters(self):
        self.start(DsnSink(defer={"bob@other.example"}))
        s = self.smtp()
        self.assertEqual(s.mail(REP, ["RET=HDRS", "ENVID=track-42"])[0], 250)
        for r in ("carol@other.example", "bob@other.example"):
            self.assertEqual(s.rcpt(r, ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;" + r])[0], 250)
        code, text = s.data(message(to="carol@other.example, bob@other.example"))
        self.assertEqual(code, 250, text)
        self.assertIn(b"deferred by the upstream", text)
        self.assertEqual([m[0] for m in self.sink.messages], [["carol@other.example"]])
        # the retry (a minute later) carries bob's own parameters, and the message's
        self.u.set_clock("2027-01-10T10:02Z")
        self.u.wait_for(lambda: len(self.sink.messages) == 2, timeout=20, what="the retry")
        self.assertEqual(self.sink.messages[1][0], ["bob@other.example"])
        opts = self.sink.options_of("bob@other.example")
        self.assertEqual(len(opts), 1)
        self.assertIn("NOTIFY=SUCCESS,FAILURE", opts[0])
        self.assertIn("ORCPT=RFC822;BOB@OTHER.EXAMPLE", opts[0])
        self.assertIn("RET=HDRS", self.sink.mails[-1])
        self.assertIn("ENVID=TRACK-42", self.sink.mails[-1])


if __name__ == "__main__":
    unittest.main()
