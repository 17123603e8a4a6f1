"""Smoke: allowed mail relays unchanged; quiet recipient is held; release
at the window's end delivers exactly once."""
import time

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
        jane = "Jane+news@ACME.com"
        s.sendmail("rep@example.com", [jane], message())
        self.assertEqual(len(self.u.spool_files()), 1)
        # The rep is told; the customer gets nothing.
        self.u.wait_for(lambda: self.sink.for_rcpt("rep@example.com"), what="held notice")
        self.assertEqual(self.sink.for_rcpt(jane), [])
        r = self.u.ctl("held", "list", check=0)
        self.assertIn("jane@acme.com", r.stdout)
        self.u.set_clock("2027-06-30T23:59:59Z")
        time.sleep(1.5)
        self.assertEqual(self.sink.for_rcpt(jane), [], "released early")
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: len(self.sink.for_rcpt(jane)) == 1, what="release")
        self.u.wait_for(lambda: self.u.spool_files() == [], what="spool empty")
        self.u.set_clock("2027-07-02T00:00:00Z")
        time.sleep(1.5)
        self.assertEqual(len(self.sink.for_rcpt(jane)), 1, "sent twice")

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
