"""--json output is valid JSON whatever the mail said: a Subject of raw
8-bit bytes that are not UTF-8 (a stray byte, an overlong form, an encoded
surrogate, a cut-off sequence) and terminal escapes comes out of every
listing as strict UTF-8 JSON, the bad bytes as U+FFFD and ESC as \\u001b."""
import json
import os
import smtplib
import subprocess

from harness import GateTest, UNTILCTL, TIMEOUT_SCALE

RAW_SUBJECT = b"Caf\xe9 \xff \xc0\xaf \xed\xa0\x80 \x1b[31mred\x1b[0m \xc2\x9b2J \xe2\x80\xae \xe2\x82"
WANT = RAW_SUBJECT.decode("utf-8", "replace")   # what a strict decoder shows


def ctl_json(u, *args):
    """untilctl --json ARGS: the bytes, checked as strict UTF-8, then parsed
    strictly (no raw control characters inside strings)."""
    r = subprocess.run([UNTILCTL, "-s", os.path.join(u.dir, "control.sock"), "--json"] + list(args),
                       capture_output=True, timeout=20 * TIMEOUT_SCALE)
    assert r.returncode in (0, 3), (args, r.returncode, r.stderr)
    text = r.stdout.decode("utf-8")                 # strict: raises on any invalid byte
    for bad in ("\x1b", "\x7f", "\x9b", "\u202e"):
        assert bad not in text, (args, bad, text)
    return r.stdout, json.loads(text, strict=True)


class InvalidUtf8Subject(GateTest):
    def setUp(self):
        super().setUp()
        self.u.set_clock("2027-01-10T10:00Z")
        msg = (b"From: rep@example.com\r\nTo: bob@other.com\r\nSubject: " + RAW_SUBJECT
               + b"\r\nMessage-ID: <json.%d@example.com>\r\n\r\nHi.\r\n" % os.getpid())
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20 * TIMEOUT_SCALE)
        self.addCleanup(s.close)
        # the first makes a window for bob (its reason: the Subject), the
        # second is held by it
        s.sendmail("rep@example.com", ["bob@other.com", "until-2027-07-01@untild.invalid"], msg)
        s.sendmail("rep@example.com", ["bob@other.com"], msg)
        self.u.wait_for(lambda: self.u.held_json(), what="the held message")

    def test_held_list_and_show(self):
        raw, held = ctl_json(self.u, "held", "list")
        self.assertIn(b"\\u001b[31mred", raw)
        self.assertEqual(len(held), 1)
        h = held[0]
        self.assertEqual(h["subject"], WANT)
        self.assertIn("\ufffd", h["subject"])
        self.assertIn("\x1b[31mred", h["subject"])
        self.assertEqual(h["subject"].count("\ufffd"), 8)    # e9, ff, c0 af, ed a0 80, e2 82
        # the shape scripts rely on
        self.assertEqual(sorted(h), sorted(["id", "rep", "from", "recipients", "subject", "message_id",
                                            "created", "release_at", "state", "next_attempt", "released_by",
                                            "size", "attempts", "last_error"]))
        self.assertIsInstance(h["size"], int)
        self.assertIsInstance(h["attempts"], int)
        self.assertIsInstance(h["recipients"], list)
        _, shown = ctl_json(self.u, "held", "show", h["id"])
        self.assertEqual(shown, h)
        _, page = ctl_json(self.u, "held", "list", "--limit", "5")
        self.assertEqual(page, {"items": held, "next": None})

    def test_window_list_check_and_the_rest(self):
        raw, windows = ctl_json(self.u, "window", "list")
        w = [w for w in windows if "bob@other.com" in w["who"]]
        self.assertEqual(len(w), 1, windows)
        self.assertEqual(w[0]["reason"], WANT)
        self.assertIn(b"\\u001b[31mred", raw)
        self.assertIn(b"\\u009b2J", raw)
        self.assertIn(b"\\u202e", raw)
        _, c = ctl_json(self.u, "check", "bob@other.com")
        self.assertIs(c["quiet"], True)
        self.assertEqual(c["window"]["reason"], WANT)
        for args in (("status",), ("report",), ("followups",), ("cadence", "list")):
            ctl_json(self.u, *args)
