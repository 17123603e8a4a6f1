"""Generated mail stays within RFC 5322's limits (issue 11, item 17): a
"Held" notice for a message to 300 quiet recipients lists one recipient a
line, and the status@ summary of a message with a very long subject wraps
its lines; the upstream here (aiosmtpd, as strict as real ones) refuses any
line over 1000 octets with "500 Line too long", so a notice that breaks the
limit never arrives."""
import smtplib
import unittest

from harness import Sink, Untild, message

REP = "rep@example.com"
REASON = "Quiet period for the whole account"


def lines_over(data, limit=998):
    return [l[:80] for l in data.split(b"\r\n") if len(l) > limit]


class Notices(unittest.TestCase):
    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.u = Untild(self.sink, windows='@acme.com 2027-07-01 reason="%s"\n' % REASON)
        self.addCleanup(self.u.cleanup)
        self.u.start()
        self.u.set_clock("2027-01-10T10:00:00Z")

    def notices(self, needle):
        return [m for m in self.sink.for_rcpt(REP) if needle.encode() in m.data]

    def send(self, rcpts, msg):
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=30)
        self.addCleanup(s.close)
        s.sendmail(REP, rcpts, msg)
        s.quit()

    def test_held_notice_for_300_recipients(self):
        rcpts = ["c%03d@acme.com" % i for i in range(300)]
        # A long subject, folded in the original as it must be.
        subject = "\r\n ".join(["Quarterly pricing update for every account"] * 40)
        self.send(rcpts, message(subject=subject, to="c000@acme.com"))
        self.u.wait_for(lambda: self.notices("Held: your message"), timeout=20, what="held notice")
        n = self.notices("Held: your message")[0].data
        self.assertEqual(lines_over(n), [])
        body = n.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
        for r in rcpts:
            self.assertIn(("  %s (%s)" % (r, REASON)).encode(), body, r)
        self.assertIn(b"Recipients held:", n)
        self.assertNotIn(b"500 Line too long", self.u.logtext().encode())
        # The status@ summary of the same message: its subject (1,700
        # characters once unfolded) is wrapped too.
        self.send(["status@untild.invalid"], message())
        self.u.wait_for(lambda: self.notices("untild status"), timeout=20, what="status notice")
        st = self.notices("untild status")[0].data
        self.assertEqual(lines_over(st), [])
        self.assertIn(b"Quarterly pricing update", st)
        self.assertEqual(len(self.u.held_json()), 1)


if __name__ == "__main__":
    unittest.main()
