"""Smoke: allowed mail relays unchanged; quiet recipient is held; release
at the window's end delivers exactly once."""
import smtplib

from harness import GateTest, message


class Smoke(GateTest):
    windows = 'jane@acme.com 2027-07-01 reason="Lease ends in July"\n'

    def test_allowed_relayed_byte_for_byte(self):
        self.u.set_clock("2027-01-10T10:00Z")
        body = ("Line one\r\n.leading dot\r\n..two dots\r\n8-bit: \xc3\xa9t\xc3\xa9\r\n").encode("latin-1")
        msg = message(to="bob@other.com") + body
        s = self.smtp()
        s.sendmail("rep@example.com", ["bob@other.com"], msg)
        got = self.sink.wait(1)
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].rcpts, ["bob@other.com"])
        self.assertEqual(got[0].data, msg)

    def test_quiet_held_then_released_once(self):
        self.u.set_clock("2027-01-10T10:00Z")
        s = self.smtp()
        code, resp = s.sendmail("rep@example.com", ["Jane+news@ACME.com"], message()) or (250, b"")
        self.assertEqual(self.u.spool_files(), [f for f in self.u.spool_files()])
        self.assertEqual(len(self.u.spool_files()), 1)
        self.assertEqual(self.sink.wait(0, 0.5), [])
        r = self.u.ctl("held", "list", check=0)
        self.assertIn("jane@acme.com", r.stdout)
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: len(self.sink.messages) == 1, what="release")
        self.u.wait_for(lambda: self.u.spool_files() == [], what="spool empty")
        self.u.set_clock("2027-07-02T00:00:00Z")
        self.assertEqual(len(self.sink.wait(2, 1.5)), 1)

    def test_reply_text_for_hold(self):
        self.u.set_clock("2027-01-10T10:00Z")
        s = self.smtp()
        s.ehlo()
        s.mail("rep@example.com")
        s.rcpt("jane@acme.com")
        code, text = s.data(message())
        self.assertEqual(code, 250)
        self.assertIn(b"Held until 2027-07-01", text)
        self.assertIn(b"Lease ends in July", text)
