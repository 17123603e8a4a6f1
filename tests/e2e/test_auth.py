"""SMTP AUTH modes end to end: passwd:FILE (crypt hashes) and upstream
(the rep's credentials are checked by logging in to the upstream, and the
rep's mail is relayed with them). The rep is the authenticated user."""
import crypt
import os
import smtplib
import time
import logging
import unittest
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from harness import TIMEOUT_SCALE, UNDER_VALGRIND, Sink, Untild, _Handler, free_port, message

# aiosmtpd warns (rightly) about AUTH without TLS; this upstream is on loopback.
warnings.filterwarnings("ignore", module="aiosmtpd")
logging.getLogger("mail.log").setLevel(logging.ERROR)


class AuthSink(Sink):
    """A Sink that requires AUTH (PLAIN/LOGIN over plain text: loopback test)."""

    def __init__(self, users):
        self.users = users
        self.logins = []
        super().__init__()

        def authenticator(server, session, envelope, mechanism, data):
            ok = isinstance(data, LoginPassword) and \
                self.users.get(data.login.decode()) == data.password.decode()
            if ok:
                self.logins.append(data.login.decode())
            # handled=False: aiosmtpd itself answers 535 (handled=True would
            # leave the client waiting for an answer)
            return AuthResult(success=ok, handled=False)

        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                     decode_data=False, auth_required=True, auth_require_tls=False,
                                     authenticator=authenticator)


def set_auth(u, line):
    with open(u.conf) as f:
        conf = f.read()
    with open(u.conf, "w") as f:
        f.write(conf.replace("auth = none", line))


class PasswdAuth(unittest.TestCase):
    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.u = Untild(self.sink, windows="jane@acme.com 2027-07-01\n")
        self.addCleanup(self.u.cleanup)
        pw = os.path.join(self.u.dir, "passwd")
        with open(pw, "w") as f:
            f.write("# reps\nalice@example.com:%s\n" % crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_SHA512)))
        set_auth(self.u, "auth = passwd:" + pw)
        self.u.start()
        self.u.set_clock("2027-01-10T10:00Z")

    def test_mail_before_auth_refused(self):
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=10)
        self.addCleanup(s.close)
        s.ehlo()
        code, _ = s.mail("alice@example.com")
        self.assertEqual(code, 530)

    def test_wrong_password_535(self):
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=10)
        self.addCleanup(s.close)
        with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
            s.login("alice@example.com", "wrong")
        self.assertEqual(cm.exception.smtp_code, 535)
        self.assertNotIn("wrong", self.u.logtext())   # passwords never logged

    def test_rep_is_the_authenticated_user(self):
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=10)
        self.addCleanup(s.close)
        s.login("alice@example.com", "s3cret")
        s.sendmail("alice@example.com", ["jane@acme.com"], message(frm="alice@example.com"))
        r = self.u.ctl("--json", "held", "list", check=0)
        import json
        held = json.loads(r.stdout)
        self.assertEqual([h["rep"] for h in held], ["alice@example.com"])
        self.assertNotIn("s3cret", self.u.logtext())


def greeting_time(port, source="127.0.0.1"):
    import socket
    t0 = time.time()
    s = socket.create_connection(("127.0.0.1", port), 30, source_address=(source, 0))
    try:
        line = s.makefile("rb").readline()
        assert line.startswith(b"220"), line
        return time.time() - t0
    finally:
        s.close()


class AuthFlood(unittest.TestCase):
    """Password guessing costs the guesser, not the loop: checks run on
    worker threads, each refusal waits auth_failure_delay, and past
    auth_max_failures per address or per user nothing is checked."""

    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.u = Untild(self.sink, smtp_extra="auth_failure_delay = 1\nauth_max_failures = 3\n"
                                              "auth_failure_window = 600\n")
        self.addCleanup(self.u.cleanup)
        pw = os.path.join(self.u.dir, "passwd")
        # a deliberately slow hash (about a tenth of a second): on the loop,
        # 200 of them stalled every other client for seconds
        # (under valgrind, where threads take turns, an ordinary one)
        rounds = 5000 if UNDER_VALGRIND else 400000
        slow = crypt.crypt("s3cret", "$6$rounds=%d$%s$" % (rounds, crypt.mksalt(crypt.METHOD_SHA512)[3:11]))
        with open(pw, "w") as f:
            f.write("alice@example.com:%s\n" % slow)
        set_auth(self.u, "auth = passwd:" + pw)
        self.u.start()

    def test_pipelined_failures_are_delayed_limited_and_stall_nobody(self):
        import base64
        import socket
        import threading
        bad = base64.b64encode(b"\0alice@example.com\0wrong").decode()
        a = socket.create_connection(("127.0.0.1", self.u.port), 60)
        self.addCleanup(a.close)
        f = a.makefile("rb")
        self.assertTrue(f.readline().startswith(b"220"))
        a.sendall(b"EHLO flood\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        t0 = time.time()
        a.sendall(("AUTH PLAIN %s\r\n" % bad).encode() * 200)
        replies = []

        def read_all():
            for line in f:
                replies.append((time.time() - t0, line.decode().strip()))
        reader = threading.Thread(target=read_all)
        reader.start()
        greetings = []
        while reader.is_alive() and time.time() - t0 < 30 * TIMEOUT_SCALE:
            greetings.append(greeting_time(self.u.port, "127.0.0.2"))
            time.sleep(0.05)
        reader.join(30 * TIMEOUT_SCALE)
        self.assertLess(max(greetings), 1.0 * TIMEOUT_SCALE, greetings)
        codes = [r[1][:3] for r in replies]
        # three refusals, a second apart, then 421 and the session closes
        self.assertEqual(codes, ["535", "535", "535", "421"], replies)
        self.assertGreaterEqual(replies[0][0], 0.9)
        self.assertGreaterEqual(replies[3][0], 3.5)
        self.assertIn("reached auth_max_failures", self.u.logtext())
        # this address stays refused, even with the right password
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=10)
        self.addCleanup(s.close)
        with self.assertRaises(smtplib.SMTPException):
            s.login("alice@example.com", "s3cret")
        # and so does this user from another address (per-user count)
        s2 = smtplib.SMTP("127.0.0.1", self.u.port, timeout=10, source_address=("127.0.0.2", 0))
        self.addCleanup(s2.close)
        with self.assertRaises(smtplib.SMTPException):
            s2.login("alice@example.com", "s3cret")
        self.assertIn("for this user", self.u.logtext())
        # another user from another address is checked as usual
        s3 = smtplib.SMTP("127.0.0.1", self.u.port, timeout=10, source_address=("127.0.0.3", 0))
        self.addCleanup(s3.close)
        with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
            s3.login("bob@example.com", "whatever")
        self.assertEqual(cm.exception.smtp_code, 535)


class UpstreamAuth(unittest.TestCase):
    def setUp(self):
        self.sink = AuthSink({"bob@example.com": "hunter2"}).start()
        self.addCleanup(self.sink.stop)
        up = ("url = smtp://127.0.0.1:%d\ntls = none\nconnections = 2\ntimeout = 10" % self.sink.port)
        self.u = Untild(self.sink, upstream=up)
        self.addCleanup(self.u.cleanup)
        set_auth(self.u, "auth = upstream")
        self.u.start()

    def test_good_credentials_relay_as_the_rep(self):
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=10)
        self.addCleanup(s.close)
        s.login("bob@example.com", "hunter2")
        s.sendmail("bob@example.com", ["carol@other.example"], message(frm="bob@example.com"))
        got = self.sink.wait(1)
        self.assertEqual([m.rcpts for m in got], [["carol@other.example"]])
        # once for the check, once for the relay: both with bob's credentials
        self.assertGreaterEqual(self.sink.logins.count("bob@example.com"), 2)
        self.assertNotIn("hunter2", self.u.logtext())

    def test_bad_credentials_refused(self):
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=10)
        self.addCleanup(s.close)
        t0 = time.time()
        with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
            s.login("bob@example.com", "nope")
        self.assertEqual(cm.exception.smtp_code, 535)
        # the upstream's own 535, not a timeout taken for a refusal
        self.assertLess(time.time() - t0, 5)
        self.assertNotIn("upstream unreachable", self.u.logtext())
        self.assertEqual(self.sink.messages, [])


class UpstreamLogin(unittest.TestCase):
    """Issue 14: the web console's login takes the SMTP identity in both
    modes; with auth = upstream the password is checked by the upstream."""

    def setUp(self):
        self.sink = AuthSink({"bob@example.com": "hunter2"}).start()
        self.addCleanup(self.sink.stop)
        up = ("url = smtp://127.0.0.1:%d\ntls = none\nconnections = 2\ntimeout = 10" % self.sink.port)
        self.hport = free_port()
        self.u = Untild(self.sink, upstream=up, extra="[http]\nlisten = 127.0.0.1:%d\n" % self.hport)
        self.addCleanup(self.u.cleanup)
        set_auth(self.u, "auth = upstream")
        self.u.start()

    def login(self, user, password):
        import json
        import urllib.error
        import urllib.request
        req = urllib.request.Request("http://127.0.0.1:%d/api/v1/login" % self.hport, method="POST",
                                     data=json.dumps({"user": user, "password": password}).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=20 * TIMEOUT_SCALE) as r:
                return r.status, json.loads(r.read()), r.headers
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}"), e.headers

    def test_login_checked_by_the_upstream(self):
        st, doc, hdrs = self.login("bob@example.com", "hunter2")
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["user"], "bob@example.com")
        self.assertIn("untild_session=", hdrs.get("Set-Cookie", ""))
        self.assertIn("bob@example.com", self.sink.logins)
        st, doc, _ = self.login("bob@example.com", "nope")
        self.assertEqual(st, 401, doc)
        self.assertNotIn("hunter2", self.u.logtext())


class UpstreamAuthUnreachable(unittest.TestCase):
    def test_unreachable_upstream_is_a_temporary_failure(self):
        # nothing listens there: the credentials cannot be checked, which is
        # not the same as wrong credentials (454, not 535)
        up = "url = smtp://127.0.0.1:%d\ntls = none\nconnections = 1\ntimeout = 3" % free_port()
        u = Untild(None, upstream=up)
        self.addCleanup(u.cleanup)
        set_auth(u, "auth = upstream")
        u.start()
        s = smtplib.SMTP("127.0.0.1", u.port, timeout=20)
        self.addCleanup(s.close)
        s.ehlo()
        code, _ = s.docmd("AUTH", "PLAIN AGJvYkBleGFtcGxlLmNvbQBodW50ZXIy")
        self.assertEqual(code, 454)


if __name__ == "__main__":
    unittest.main()
