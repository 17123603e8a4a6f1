"""Recipients an upstream may rewrite into a quiet address (issue 11.12).

A percent-hack (jane%acme.com@relay.example), bang-path
(acme.com!jane@relay.example) or quoted-"@" ("jane@acme.com"@relay.example)
recipient names a host that forwards the message on: Postfix, with its
defaults, delivers every one of them to jane@acme.com when relay.example is
one of its own domains. untild refuses such routed recipients (553 5.1.3) at
the SMTP gate and in the Postfix policy service, quoted or not, nested or
mixed; address literals too (nobody can tell whom they reach). Every other
spelling of a quiet address (case, trailing dot, source route, quoted local
part, sub-address, U-label) is matched as that address.

The Postfix classes show what a real Postfix does with these forms, and that
untild's reading of them ("untilctl check") names the same final address."""
import json
import time
import unittest

from harness import GateTest, Postfix, Sink, Untild, free_port, message, postfix_available

REP = "rep@example.com"
WINDOWS = ("jane@acme.com 2027-07-01\n"
           "anna@bücher.example 2027-07-01\n")

# routed forms, each with the address Postfix finally delivers it to
# (mydestination = relay.example, hop.example; swap_bangpath, allow_percent_hack
# and resolve_dequoted_address at their defaults)
ROUTED = [
    ("jane%acme.com@relay.example", "jane@acme.com"),
    ("acme.com!jane@relay.example", "jane@acme.com"),
    ("JANE%ACME.COM@relay.example", "jane@acme.com"),
    ("jane%acme.com%hop.example@relay.example", "jane@acme.com"),
    ("hop.example!acme.com!jane@relay.example", "jane@acme.com"),
    ("hop.example!jane%acme.com@relay.example", "jane@acme.com"),
    ('"jane@acme.com"@relay.example', "jane@acme.com"),
    ('"jane%acme.com"@relay.example', "jane@acme.com"),
    ('"acme.com!jane"@relay.example', "jane@acme.com"),
    ("jane+tag%acme.com@relay.example", "jane+tag@acme.com"),
    ("jane%acme.com.@relay.example", "jane@acme.com"),
]

# spellings of jane@acme.com (or anna@bücher.example) that are matched
MATCHED = [
    "JANE@ACME.COM",
    "jane@acme.com.",
    "@relay.example:jane@acme.com",
    "@a.example,@b.example:Jane@Acme.Com",
    '"jane"@acme.com',
    '"JANE"@acme.com',
    "jane+tag@acme.com",
    '"jane+tag"@acme.com',
    '"j\\ane"@acme.com',
    "anna@xn--bcher-kva.example",
    "anna@BÜCHER.example",
    "anna+x@bücher.example.",
]


class GateRefusesRouted(GateTest):
    windows = WINDOWS
    untild_kwargs = {"extra": "[notify]\nevents = none\n"}

    def setUp(self):
        super().setUp()
        self.u.set_clock("2027-01-10T10:00:00Z")

    def rcpt(self, s, addr):
        s.docmd("RSET")
        code, _ = s.docmd("MAIL FROM:<%s> SMTPUTF8" % REP)
        self.assertEqual(code, 250)
        s.send(("RCPT TO:<%s>\r\n" % addr).encode())   # UTF-8 as it is (SMTPUTF8)
        return s.getreply()

    def test_routed_recipients_refused(self):
        s = self.smtp()
        s.ehlo()
        for addr, final in ROUTED:
            code, text = self.rcpt(s, addr)
            self.assertEqual(code, 553, "%s: %d %s" % (addr, code, text))
            self.assertIn(b"5.1.3", text)
            self.assertIn(final.replace("+tag", "").encode(), text, addr)
        # unresolvable and unqualified routed forms too
        for addr in ("acme.com!jane", "jane%acme.com", "jane%@relay.example",
                     "!jane@relay.example", "a%b!c@relay.example",
                     "@relay.example:jane%acme.com@relay.example"):
            code, text = self.rcpt(s, addr)
            self.assertEqual(code, 553, "%s: %d %s" % (addr, code, text))
        # a routed address to a contact nobody keeps quiet is refused all the same
        code, _ = self.rcpt(s, "bob%other.example@relay.example")
        self.assertEqual(code, 553)

    def test_routed_recipient_never_relayed(self):
        # the allowed recipient goes; the routed one is refused, not relayed
        s = self.smtp()
        refused = s.sendmail(REP, ["bob@other.example", "jane%acme.com@relay.example"],
                             message(to="bob@other.example"))
        self.assertEqual(refused["jane%acme.com@relay.example"][0], 553)
        got = self.sink.wait(1)
        self.assertEqual([m.rcpts for m in got], [["bob@other.example"]])
        self.assertEqual(self.u.spool_files(), [])

    def test_address_literal_refused(self):
        s = self.smtp()
        s.ehlo()
        for addr in ("jane@[127.0.0.1]", "jane@[IPv6:::1]"):
            code, text = self.rcpt(s, addr)
            self.assertEqual(code, 553, "%s: %d %s" % (addr, code, text))
            self.assertIn(b"5.1.3", text)

    def test_other_spellings_are_held(self):
        s = self.smtp()
        s.ehlo()
        for i, addr in enumerate(MATCHED):
            code, text = self.rcpt(s, addr)
            self.assertEqual(code, 250, "%s: %d %s" % (addr, code, text))
            code, text = s.data(message(to="x@y.example"))
            self.assertEqual(code, 250, addr)
            self.assertIn(b"Held until", text, addr)
            self.assertEqual(len(self.u.spool_files()), i + 1, addr)
        self.assertEqual(self.sink.messages, [])


def postfix_with_local_relay(sink, **kw):
    """A Postfix whose own domains are relay.example and hop.example: the
    percent hack, bang paths and quoted "@" forms at those domains are
    rewritten (Postfix defaults) and the result relayed to the sink."""
    return Postfix(sink.port, extra="mydestination = relay.example, hop.example\n"
                   "local_recipient_maps =\n", **kw)


@unittest.skipUnless(postfix_available(), "needs root and Postfix")
class PostfixRewritesRouted(unittest.TestCase):
    """What the upstream does with these forms, and that untild names the
    same final address (untilctl check reads them as the gate does)."""

    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.pf = postfix_with_local_relay(self.sink)
        self.addCleanup(self.pf.cleanup)
        self.pf.start()
        self.u = Untild(self.sink, windows=WINDOWS)
        self.addCleanup(self.u.cleanup)
        self.u.start()
        self.u.set_clock("2027-01-10T10:00:00Z")

    def test_postfix_delivers_routed_forms_to_the_final_address(self):
        for n, (addr, final) in enumerate(ROUTED, 1):
            r = self.pf.swaks(addr)
            self.assertEqual(r.returncode, 0, r.stdout)
            got = self.sink.wait(n, timeout=30)
            self.assertEqual(len(got), n, self.pf.logtext()[-3000:])
            self.assertEqual([r.lower() for r in got[-1].rcpts], [final], addr)
            # untild reads the form as the address Postfix delivered it to
            c = self.u.ctl("--json", "check", addr)
            self.assertEqual(json.loads(c.stdout)["address"],
                             final.replace("+tag", ""), addr)


@unittest.skipUnless(postfix_available(), "needs root and Postfix")
class PolicyServiceRefusesRouted(unittest.TestCase):
    """The Postfix policy service path: Postfix hands untild the recipient in
    its internal (unquoted) form; routed forms are refused, not let through
    to be rewritten into the quiet address."""

    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        pport = free_port()
        self.pf = Postfix(self.sink.port, policy="inet:127.0.0.1:%d" % pport,
                          extra="mydestination = relay.example, hop.example\n"
                                "local_recipient_maps =\n")
        self.addCleanup(self.pf.cleanup)
        self.u = Untild(self.sink, windows=WINDOWS,
                        extra="[policy_service]\nlisten = inet:127.0.0.1:%d\npostfix_config_dir = %s\n"
                        % (pport, self.pf.dir))
        self.addCleanup(self.u.cleanup)
        self.u.start()
        self.u.set_clock("2027-01-10T10:00:00Z")
        self.pf.start()

    def test_routed_forms_refused(self):
        for addr in ("jane%acme.com@relay.example", "acme.com!jane@relay.example",
                     '"jane@acme.com"@relay.example', "acme.com!jane",
                     "hop.example!jane%acme.com@relay.example", "jane@[127.0.0.1]"):
            r = self.pf.swaks(addr)
            self.assertNotEqual(r.returncode, 0, addr)
            self.assertIn("553 5.1.3", r.stdout, addr)
        # an ordinary allowed recipient still passes, and nothing else arrived
        r = self.pf.swaks("bob@other.example")
        self.assertEqual(r.returncode, 0, r.stdout)
        got = self.sink.wait(1, timeout=30)
        self.assertEqual([m.rcpts for m in got], [["bob@other.example"]])

    def test_quiet_spelling_held(self):
        # a spelling Postfix hands over quoted-less ("jane"@acme.com -> jane@acme.com)
        r = self.pf.swaks('"JANE"@acme.com.')
        self.assertEqual(r.returncode, 0, r.stdout)
        end = time.time() + 20
        while time.time() < end and not any(q.get("queue_name") == "hold" for q in self.pf.queue()):
            time.sleep(0.1)
        self.assertTrue(any(q.get("queue_name") == "hold" for q in self.pf.queue()),
                        self.u.logtext()[-3000:])
        self.assertEqual(self.sink.messages, [])


class PolicyProtocolRouted(unittest.TestCase):
    """The policy socket spoken to directly, with recipients in Postfix's
    internal (unquoted) form, as smtpd hands them over."""

    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.pport = free_port()
        self.u = Untild(self.sink, windows=WINDOWS,
                        extra="[policy_service]\nlisten = inet:127.0.0.1:%d\n" % self.pport)
        self.addCleanup(self.u.cleanup)
        self.u.start()
        self.u.set_clock("2027-01-10T10:00:00Z")

    def ask(self, rcpt, state="RCPT", instance="i1", qid=""):
        import socket
        s = socket.create_connection(("127.0.0.1", self.pport), 10)
        self.addCleanup(s.close)
        s.sendall(("request=smtpd_access_policy\nprotocol_state=%s\nprotocol_name=ESMTP\n"
                   "instance=%s\nqueue_id=%s\nsender=rep@example.com\nrecipient=%s\n\n"
                   % (state, instance, qid, rcpt)).encode())
        buf = b""
        while not buf.endswith(b"\n\n"):
            d = s.recv(4096)
            if not d:
                break
            buf += d
        return buf.decode()

    def test_internal_forms(self):
        for rcpt, final in (("jane%acme.com@relay.example", "jane@acme.com"),
                            ("acme.com!jane@relay.example", "jane@acme.com"),
                            ("jane@acme.com@relay.example", "jane@acme.com"),   # "jane@acme.com"@relay
                            ("hop.example!jane%acme.com@relay.example", "jane@acme.com")):
            got = self.ask(rcpt)
            self.assertTrue(got.startswith("action=553 5.1.3 %s routes on to %s" % (rcpt, final)),
                            "%s: %r" % (rcpt, got))
        for rcpt in ("acme.com!jane", "jane%acme.com", "a%b!c@relay.example"):
            self.assertTrue(self.ask(rcpt).startswith("action=553 5.1.3 "), rcpt)
        self.assertTrue(self.ask("jane@[192.0.2.1]").startswith("action=553 5.1.3 "))
        # unreadable: refused, not let through unmatched
        self.assertTrue(self.ask("jane@acme..com").startswith("action=501 5.1.3 "))
        self.assertTrue(self.ask("j" * 70 + "+x@acme.com").startswith("action=501 5.1.3 "))
        # the upstream's own local names pass; so do ordinary recipients
        self.assertEqual(self.ask("postmaster"), "action=DUNNO\n\n")
        self.assertEqual(self.ask("bob@other.example"), "action=DUNNO\n\n")

    def test_internal_quiet_spellings_held(self):
        # "jane doe"-style and quoted spellings arrive unquoted; each is jane
        for i, rcpt in enumerate(("JANE@ACME.COM.", "jane+tag@acme.com",
                                  "@relay.example:jane@acme.com", "anna@BÜCHER.example")):
            inst = "q%d" % i
            self.assertEqual(self.ask(rcpt, instance=inst), "action=DUNNO\n\n")
            got = self.ask("", state="END-OF-MESSAGE", instance=inst, qid="ABCDEF%d" % i)
            self.assertTrue(got.startswith("action=HOLD untild: "), "%s: %r" % (rcpt, got))


class ImapSentRouted(unittest.TestCase):
    """A message the rep sent around untild to a routed form of a quiet
    contact is flagged by the IMAP watcher (read as the final address)."""

    def setUp(self):
        import os
        from harness import Dovecot
        from test_imap import PASSWORD
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.dv = Dovecot()
        self.addCleanup(self.dv.cleanup)
        self.dv.add_user(REP, PASSWORD).start()
        self.u = Untild(self.sink, windows=WINDOWS)
        self.addCleanup(self.u.cleanup)
        pw = os.path.join(self.u.dir, "imap.pass")
        with open(pw, "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(pw, 0o600)
        with open(self.u.conf, "a") as f:
            f.write(self.dv.untild_section(REP, pw))
        self.u.start()
        self.u.wait_for(lambda: ("imap[%s]: synced" % REP) in self.u.logtext(), what="imap sync")
        self.c = self.dv.client(REP)
        self.addCleanup(lambda: self.c.logout())

    def test_routed_forms_flagged(self):
        from harness import imap_append, imap_keywords
        from test_imap import mail
        uids = [imap_append(self.c, "Sent", mail(to, "Routed %d" % i))
                for i, to in enumerate(("jane%acme.com@relay.example",
                                        "Jane <acme.com!jane@relay.example>",
                                        '"jane@acme.com"@relay.example'))]
        ok = imap_append(self.c, "Sent", mail("bob%other.example@relay.example", "Fine"))
        for uid in uids:
            self.u.wait_for(lambda: "$UntildTooEarly" in imap_keywords(self.c, "Sent", uid),
                            what="keyword on %d" % uid)
        self.assertNotIn("$UntildTooEarly", imap_keywords(self.c, "Sent", ok))


if __name__ == "__main__":
    unittest.main()
