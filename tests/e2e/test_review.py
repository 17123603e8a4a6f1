"""Regression tests for bugs found in the code review: each says what the
client or the spool must see, and failed before its fix."""
import os

from harness import GateTest, message


class Review(GateTest):
    windows = 'jane@acme.com 2027-07-01 reason="Lease ends in July"\n'

    def data_reply(self, rcpts):
        s = self.smtp()
        s.ehlo()
        s.mail("rep@example.com")
        for r in rcpts:
            s.rcpt(r)
        return s.data(message())

    # gate.c txn_finish_ok: the "; deferred" branch broke the else-if chain,
    # so every held or relayed reply had "250 2.0.0 Done" glued to its end.
    def test_held_reply_is_one_reply(self):
        self.u.set_clock("2027-01-10T10:00Z")
        code, text = self.data_reply(["jane@acme.com"])
        self.assertEqual(code, 250)
        self.assertIn(b"Held until 2027-07-01", text)
        self.assertNotIn(b"Done", text)
        self.assertNotIn(b"250", text)

    def test_relayed_reply_is_the_upstreams(self):
        self.u.set_clock("2027-01-10T10:00Z")
        code, text = self.data_reply(["bob@other.com"])
        self.assertEqual(code, 250)
        self.assertNotIn(b"Done", text)
        self.assertNotIn(b"250", text)

    def test_mixed_reply_is_one_reply(self):
        self.u.set_clock("2027-01-10T10:00Z")
        code, text = self.data_reply(["bob@other.com", "jane@acme.com"])
        self.assertEqual(code, 250)
        self.assertIn(b"held until 2027-07-01", text.lower())
        self.assertNotIn(b"Done", text)

    # release.c start(): a held file that cannot be read once activated was
    # left in active/, so every later attempt failed to activate it and it
    # was never retried (nor listed after a restart as held).
    def test_unreadable_held_goes_back_to_held(self):
        self.u.set_clock("2027-01-10T10:00Z")
        self.data_reply(["jane@acme.com"])
        files = self.u.spool_files()
        self.assertEqual(len(files), 1)
        path = os.path.join(self.u.dir, "state", "spool", "held", files[0])
        with open(path, "rb") as f:
            data = f.read()
        # drop the end record: the file is no longer trusted
        with open(path, "wb") as f:
            f.write(data[:data.rindex(b"\nend ")])
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: "cannot read %s" % files[0] in self.u.logtext(),
                        what="failed release attempt")
        self.u.wait_for(lambda: self.u.spool_files("held") == files, what="back in held/")
        self.assertEqual(self.u.spool_files("active"), [])
        self.assertEqual(self.sink.for_rcpt("jane@acme.com"), [])
