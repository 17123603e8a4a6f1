"""The weekly digest (issue 12), end to end: a seeded week (held, flagged,
relayed, a follow-up set for the coming week), the test clock moved to
the digest's day and time: the rep gets last week's figures and the
follow-ups due, the manager the team's table and the contacts pressed
most; plain text with an HTML alternative; once, also across a restart."""
import email
import email.policy
import unittest

from harness import GateTest, message

REP = "rep@example.com"


class DigestTest(GateTest):
    windows = ('jane@acme.com 2027-07-01 reason="Lease ends"\n'
               'bob@initech.com 2027-07-01 action=flag reason="Flag only"\n')
    untild_kwargs = {"extra": "[digest]\nenabled = yes\nday = monday\ntime = 08:00\n"
                              "managers = boss@example.com\n"}

    def digests(self, to):
        return [m for m in self.sink.for_rcpt(to) if b"multipart/alternative" in m.data]

    def test_week(self):
        self.u.set_clock("2026-12-02T10:00:00Z")          # Wednesday
        s = self.smtp()
        s.sendmail(REP, ["jane@acme.com"], message(to="jane@acme.com", subject="held one"))
        s.sendmail(REP, ["bob@initech.com"], message(to="bob@initech.com", subject="flagged one"))
        s.sendmail(REP, ["x@other.com"], message(to="x@other.com", subject="plain"))
        s.sendmail(REP, ["erin@acme.com", "until-2026-12-09@untild.invalid"],
                   message(to="erin@acme.com", subject="Call me on the 9th"))
        self.u.wait_for(lambda: self.sink.for_rcpt("bob@initech.com") and self.sink.for_rcpt("erin@acme.com"),
                        what="relayed")
        self.u.set_clock("2026-12-07T07:59:00Z")
        self.u.ctl("status", check=0)
        self.assertEqual(self.digests(REP), [])
        self.u.set_clock("2026-12-07T08:00:00Z")          # Monday 08:00
        self.u.wait_for(lambda: self.digests(REP) and self.digests("boss@example.com"), what="digests")
        m = email.message_from_bytes(self.digests(REP)[0].data, policy=email.policy.default)
        self.assertEqual(m["Subject"], "Your week with untild: 1 held, 1 flagged, 0 rejected, 0 released")
        text = m.get_body(("plain",)).get_content()
        html = m.get_body(("html",)).get_content()
        self.assertIn("Your week to 2026-12-07", text)
        self.assertIn("erin@acme.com", text)               # follow-up due on the 9th
        self.assertIn("Call me on the 9th", text)
        self.assertIn("<table", html)
        self.assertIn("<td>1</td>", html)
        boss = email.message_from_bytes(self.digests("boss@example.com")[0].data, policy=email.policy.default)
        btext = boss.get_body(("plain",)).get_content()
        self.assertIn(REP, btext)
        self.assertIn("Contacts pressed most", btext)
        self.assertIn("jane@acme.com", btext)
        self.assertIn("<table", boss.get_body(("html",)).get_content())
        # Once: not again later that day, nor after a restart.
        self.u.set_clock("2026-12-07T12:00:00Z")
        self.u.restart()
        self.u.set_clock("2026-12-07T12:30:00Z")
        self.u.ctl("status", check=0)
        self.u.ctl("status", check=0)
        self.assertEqual(self.u.logtext().count("digest: week to"), 1)
        self.assertEqual(len(self.digests(REP)), 1)


class DigestOff(GateTest):
    def test_off_by_default(self):
        self.u.set_clock("2026-12-02T10:00:00Z")
        s = self.smtp()
        s.sendmail(REP, ["x@other.com"], message(to="x@other.com"))
        self.u.set_clock("2026-12-07T08:00:00Z")
        self.u.ctl("status", check=0)
        self.u.ctl("status", check=0)
        self.assertNotIn("digest: week to", self.u.logtext())


if __name__ == "__main__":
    unittest.main()
