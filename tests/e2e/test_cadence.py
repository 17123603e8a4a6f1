"""Cadence (issue 12), end to end: how often the team may contact one
customer. The real daemon with two reps (auth passwd), an aiosmtpd sink
upstream and the test clock. Holds wait in the same spool and lifecycle as
window holds, until the earliest time the rule allows; a released message
counts as a contact; flag and reject rules; exempt lists, colleagues and
domain scope; everything survives a restart."""
import crypt
import json
import os
import smtplib
import sqlite3
import subprocess
import unittest

from harness import Dovecot, Sink, Untild, imap_append, message

T0 = "2026-12-02T10:00:00Z"            # a Wednesday
ALICE, BOB = "alice@example.com", "bob@example.com"


class CadenceBase(unittest.TestCase):
    cadence = "min_gap = 7d\n"

    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.u = Untild(self.sink, extra="[cadence]\n" + self.cadence)
        self.addCleanup(self.u.cleanup)
        pw = os.path.join(self.u.dir, "passwd")
        with open(pw, "w") as f:
            for user in (ALICE, BOB):
                f.write("%s:%s\n" % (user, crypt.crypt("pw-" + user, crypt.mksalt(crypt.METHOD_SHA512))))
        with open(self.u.conf) as f:
            conf = f.read()
        with open(self.u.conf, "w") as f:
            f.write(conf.replace("auth = none", "auth = passwd:" + pw))
        self.u.start()
        self.u.set_clock(T0)

    def send(self, rep, rcpts, subject="Hello", extra_headers=""):
        """One transaction as rep; returns the final reply (code, text) and
        the refused recipients."""
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20)
        self.addCleanup(s.close)
        s.login(rep, "pw-" + rep)
        s.mail(rep)
        refused = {}
        for r in rcpts:
            code, text = s.rcpt(r)
            if code >= 400:
                refused[r] = (code, text.decode())
        if len(refused) == len(rcpts):
            return None, refused
        code, text = s.data(message(frm=rep, to=", ".join(rcpts), subject=subject,
                                    extra_headers=extra_headers))
        return (code, text.decode()), refused

    def to(self, addr):
        return [m for m in self.sink.for_rcpt(addr) if b"X-Untild: notice" not in m.data]

    def roundtrip(self):
        self.u.ctl("status", check=0)


class CadenceHold(CadenceBase):
    def test_hold_across_reps_release_counts_restart(self):
        # Bob writes first: nothing in the history, relayed.
        reply, _ = self.send(BOB, ["jane@acme.com"], "Bob's offer")
        self.assertEqual(reply[0], 250, reply)
        self.assertEqual(len(self.to("jane@acme.com")), 1)
        # Alice, an hour later: held until a week after Bob's contact.
        self.u.set_clock("2026-12-02T11:00:00Z")
        reply, _ = self.send(ALICE, ["jane@acme.com"], "Alice's offer")
        self.assertEqual(reply[0], 250, reply)
        self.assertIn("Held until 2026-12-09T10:00:00Z", reply[1])
        self.assertIn("contacted by bob@example.com on 2026-12-02", reply[1])
        self.assertIn("at most one contact per 1 week", reply[1])
        held = self.u.held_json()
        self.assertEqual(len(held), 1, held)
        self.assertEqual(len(self.to("jane@acme.com")), 1)
        # The notice says why too.
        self.u.wait_for(lambda: [m for m in self.sink.for_rcpt(ALICE) if b"contacted by bob" in m.data],
                        what="the held notice with the reason")
        # untilctl check shows the cadence state.
        r = self.u.ctl("--json", "check", "jane@acme.com", check=0)
        st = json.loads(r.stdout)["cadence"]
        self.assertEqual(st["next_allowed"], "2026-12-09T10:00:00Z")
        self.assertEqual([(c["rep"], c["channel"]) for c in st["contacts"]], [(BOB, "gate")])
        # A colleague is not a customer: exempt.
        reply, _ = self.send(ALICE, ["carol@example.com"], "lunch?")
        self.assertEqual(len(self.to("carol@example.com")), 1)
        # Not a second early: still held after a restart.
        self.u.restart()
        self.u.set_clock("2026-12-09T09:59:59Z")
        self.roundtrip()
        self.assertEqual(len(self.u.held_json()), 1)
        self.assertEqual(len(self.to("jane@acme.com")), 1)
        self.u.set_clock("2026-12-09T10:00:00Z")
        self.u.wait_for(lambda: len(self.to("jane@acme.com")) == 2, what="Alice's message released")
        self.u.wait_for(lambda: not self.u.held_json(), what="spool empty")
        # The release counted: Bob is held a week after it.
        self.u.set_clock("2026-12-09T10:05:00Z")
        reply, _ = self.send(BOB, ["jane@acme.com"], "Bob again")
        self.assertIn("Held until 2026-12-16T10:00:00Z", reply[1])
        self.assertIn("contacted by alice@example.com on 2026-12-09", reply[1])

    def test_two_held_go_one_at_a_time(self):
        self.send(BOB, ["jane@acme.com"], "first")
        self.u.set_clock("2026-12-03T10:00:00Z")
        self.send(ALICE, ["jane@acme.com"], "alice waits")
        self.send(BOB, ["jane@acme.com"], "bob waits")
        self.assertEqual(len(self.u.held_json()), 2)
        self.u.set_clock("2026-12-09T10:00:00Z")
        self.u.wait_for(lambda: len(self.to("jane@acme.com")) == 2, what="one released")
        self.u.wait_for(lambda: "release: " in self.u.logtext() and
                        len(self.u.held_json()) == 1, what="the other still held")
        self.roundtrip()
        self.assertEqual(len(self.to("jane@acme.com")), 2)
        left = self.u.held_json()
        self.assertEqual(len(left), 1)
        self.assertTrue(left[0]["release_at"].startswith("2026-12-16T10:00"), left)
        self.u.set_clock("2026-12-16T10:00:00Z")
        self.u.wait_for(lambda: len(self.to("jane@acme.com")) == 3, what="the second released")

    def test_hand_release_wins(self):
        self.send(BOB, ["jane@acme.com"], "first")
        self.send(ALICE, ["jane@acme.com"], "urgent")
        hid = self.u.held_json()[0]["id"]
        self.u.ctl("held", "release", hid, check=0)
        self.u.wait_for(lambda: len(self.to("jane@acme.com")) == 2, what="released by hand")


class CadenceCap(CadenceBase):
    cadence = "max = 2 per 30d\nscope = domain\nexempt = billing@acme.com, @status.acme.com\n"

    def test_cap_domain_scope_and_exempt(self):
        self.send(BOB, ["jane@acme.com"])
        self.u.set_clock("2026-12-05T10:00:00Z")
        self.send(ALICE, ["joe@acme.com"])
        self.assertEqual(len(self.to("joe@acme.com")), 1)
        # third contact with the domain within 30 days: held until the first leaves the period
        self.u.set_clock("2026-12-06T10:00:00Z")
        reply, _ = self.send(ALICE, ["ann@acme.com"])
        self.assertIn("Held until 2027-01-01T10:00:00Z", reply[1])
        self.assertIn("at most 2 per 30 days", reply[1])
        # exempt: an address and a domain
        self.send(BOB, ["billing@acme.com"])
        self.send(BOB, ["noreply@eu.status.acme.com"])
        self.assertEqual(len(self.to("billing@acme.com")), 1)
        self.assertEqual(len(self.to("noreply@eu.status.acme.com")), 1)
        # another domain is counted on its own
        self.send(BOB, ["x@globex.com"])
        self.assertEqual(len(self.to("x@globex.com")), 1)


class CadenceFlag(CadenceBase):
    cadence = "min_gap = 7d\naction = flag\n"

    def test_flag(self):
        self.send(BOB, ["jane@acme.com"])
        reply, _ = self.send(ALICE, ["jane@acme.com"], "flag me")
        self.assertEqual(reply[0], 250)
        got = self.to("jane@acme.com")
        self.assertEqual(len(got), 2)
        self.assertIn(b"X-Untild: flagged; recipient=<jane@acme.com>", got[1].data)
        self.assertIn(b"window=cadence", got[1].data)
        self.assertEqual(self.u.held_json(), [])


class CadenceReject(CadenceBase):
    cadence = "min_gap = 7d\naction = reject\n"

    def test_reject_at_rcpt(self):
        self.send(BOB, ["jane@acme.com"])
        reply, refused = self.send(ALICE, ["jane@acme.com", "other@globex.com"], "no")
        self.assertEqual(refused["jane@acme.com"][0], 550)
        self.assertIn("may not be contacted again before 2026-12-09T10:00:00Z", refused["jane@acme.com"][1])
        self.assertIn("contacted by bob@example.com", refused["jane@acme.com"][1])
        self.assertEqual(len(self.to("jane@acme.com")), 1)
        self.assertEqual(len(self.to("other@globex.com")), 1)
        r = self.u.ctl("report", check=0)
        self.assertIn("jane@acme.com", r.stdout)


class CadenceOverride(CadenceBase):
    """Overrides per address or domain: window-file lines with "cadence"."""

    def setUp(self):
        super().setUp()
        self.u.write_windows("@globex.com     cadence action=flag\n"
                             "vip@acme.com    cadence action=allow\n"
                             "slow@acme.com   cadence min_gap=30d\n"
                             "ann@initech.com 2027-01-01 reason=\"a window still decides first\"\n",
                             name="cadence.windows")
        self.assertEqual(self.u.ctl("reload", check=0).returncode, 0)

    def test_overrides(self):
        for who in ("x@globex.com", "vip@acme.com", "slow@acme.com", "plain@acme.com"):
            self.send(BOB, [who], "first")
        self.u.set_clock("2026-12-03T10:00:00Z")
        for who in ("x@globex.com", "vip@acme.com", "slow@acme.com", "plain@acme.com"):
            self.send(ALICE, [who], "second")
        self.assertIn(b"window=cadence", self.to("x@globex.com")[1].data)      # flagged
        self.assertEqual(len(self.to("vip@acme.com")), 2)                      # exempt
        held = self.u.held_json()
        text = json.dumps(held)
        self.assertIn("slow@acme.com", text)
        self.assertIn("plain@acme.com", text)
        self.assertEqual(len(self.u.held_json()), 2, held)
        r = self.u.ctl("--json", "check", "slow@acme.com", check=0)
        self.assertEqual(json.loads(r.stdout)["cadence"]["next_allowed"], "2027-01-01T10:00:00Z")
        r = self.u.ctl("--json", "check", "plain@acme.com", check=0)
        self.assertEqual(json.loads(r.stdout)["cadence"]["next_allowed"], "2026-12-09T10:00:00Z")
        # a window holds first, with its own reason
        reply, _ = self.send(ALICE, ["ann@initech.com"], "x")
        self.assertIn("a window still decides first", reply[1])

    def test_untilctl_overrides(self):
        self.send(BOB, ["plain@acme.com"], "first")
        self.send(ALICE, ["plain@acme.com"], "second")
        self.assertEqual(len(self.u.held_json()), 1)
        # an override set with untilctl: exempt now, and the held message goes
        r = self.u.ctl("cadence", "set", "Plain@ACME.com", "action=allow", check=0)
        self.assertIn("set plain@acme.com: action=allow", r.stdout)
        self.u.wait_for(lambda: len(self.to("plain@acme.com")) == 2, what="released by the override")
        r = self.u.ctl("--json", "cadence", "list", check=0)
        rows = json.loads(r.stdout)
        mine = [x for x in rows if x["who"] == "plain@acme.com"]
        self.assertEqual(len(mine), 1, rows)
        self.assertEqual(mine[0]["options"], "action=allow")
        self.assertTrue(mine[0]["source"].startswith("untilctl"), mine)
        self.assertIn("@globex.com", [x["who"] for x in rows])        # the window file's too
        # survives a restart; clear it and the rule is back
        self.u.restart()
        self.send(ALICE, ["plain@acme.com"], "third")
        self.assertEqual(len(self.to("plain@acme.com")), 3)
        self.assertEqual(self.u.ctl("cadence", "clear", "plain@acme.com", check=0).returncode, 0)
        self.assertEqual(self.u.ctl("cadence", "clear", "plain@acme.com").returncode, 5)
        reply, _ = self.send(ALICE, ["plain@acme.com"], "fourth")
        self.assertIn("Held until", reply[1])
        # a two-word value is kept as one option
        r = self.u.ctl("cadence", "set", "@initech.com", "max=2 per 30d", "scope=domain", check=0)
        self.assertIn('max="2 per 30d" scope=domain', r.stdout)
        self.assertEqual(self.u.ctl("cadence", "set", "x@y.com", "min_gap=soon").returncode, 2)

    def test_bad_line_is_file_line_error(self):
        self.u.write_windows("bob@acme.com cadence min_gap=whenever\n", name="bad.windows")
        r = subprocess.run([os.path.join(os.environ.get("UNTILD_BUILD", "build"), "untild"), "-t", "-c",
                            self.u.conf], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r"bad\.windows:1: min_gap: bad value 'whenever'")


class CadenceImap(unittest.TestCase):
    """Mail sent around the gate (the rep's Sent folder in a real Dovecot)
    counts; the rep's reply to a message the customer sent is exempt."""
    REP, PASSWORD = "rep@example.com", "s3cret-Pa55"

    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.dv = Dovecot()
        self.addCleanup(self.dv.cleanup)
        self.dv.add_user(self.REP, self.PASSWORD).start()
        self.u = Untild(self.sink, extra="[cadence]\nmin_gap = 7d\n")
        self.addCleanup(self.u.cleanup)
        pw = os.path.join(self.u.dir, "imap.pass")
        with open(pw, "w") as f:
            f.write(self.PASSWORD + "\n")
        os.chmod(pw, 0o600)
        with open(self.u.conf, "a") as f:
            f.write(self.dv.untild_section(self.REP, pw))
        self.u.start()
        self.u.set_clock(T0)
        self.u.wait_for(lambda: "imap[%s]: synced" % self.REP in self.u.logtext(), timeout=15,
                        what="IMAP synced")
        self.c = self.dv.client(self.REP)
        self.addCleanup(lambda: self.c.logout())

    def raw(self, frm, to, subject, msgid, date="Wed, 02 Dec 2026 09:00:00 +0000", extra=""):
        return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s>\r\n%s\r\nBody.\r\n"
                % (frm, to, subject, date, msgid, extra)).encode()

    def cadence(self, who):
        r = self.u.ctl("--json", "check", who, check=0)
        return json.loads(r.stdout).get("cadence", {})

    def db_count(self, sql):
        db = sqlite3.connect("file:%s/state/untild.db?mode=ro" % self.u.dir, uri=True)
        try:
            return db.execute(sql).fetchone()[0]
        finally:
            db.close()

    def send(self, to, subject, extra=""):
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20)
        self.addCleanup(s.close)
        s.ehlo()
        s.mail(self.REP)
        s.rcpt(to)
        code, text = s.data(self.raw(self.REP, to, subject, "g%d@example.com" % len(subject),
                                     extra=extra))
        return code, text.decode()

    def test_sent_around_the_gate_counts(self):
        imap_append(self.c, "Sent", self.raw(self.REP, "Jane <jane@acme.com>", "From my phone",
                                             "phone.1@example.com"))
        self.u.wait_for(lambda: self.cadence("jane@acme.com").get("contacts"), timeout=15,
                        what="the Sent message counted")
        st = self.cadence("jane@acme.com")
        self.assertEqual([(c["rep"], c["channel"]) for c in st["contacts"]], [(self.REP, "imap-sent")])
        self.assertEqual(st["next_allowed"], "2026-12-09T09:00:00Z")
        code, text = self.send("jane@acme.com", "Through the gate")
        self.assertEqual(code, 250)
        self.assertIn("Held until 2026-12-09T09:00:00Z", text)
        self.assertIn("(imap-sent)", text)

    def test_reply_to_the_customer_is_exempt(self):
        code, text = self.send("jane@acme.com", "First contact")
        self.assertNotIn("Held", text)
        # Jane writes back; the watcher sees it in the inbox.
        imap_append(self.c, "INBOX", self.raw("Jane <jane@acme.com>", self.REP, "Re: First contact",
                                              "jane.1@acme.com"))
        self.u.wait_for(lambda: self.db_count("SELECT count(*) FROM inbound WHERE message_id = "
                                              "'jane.1@acme.com'") == 1, timeout=15,
                        what="the customer's message seen")
        # The rep's answer to it is not held; a fresh message still is.
        code, text = self.send("jane@acme.com", "Re: Re: First contact",
                               extra="In-Reply-To: <jane.1@acme.com>\r\nReferences: <jane.1@acme.com>\r\n")
        self.assertNotIn("Held", text)
        code, text = self.send("jane@acme.com", "Something else entirely")
        self.assertIn("Held until", text)
        self.assertEqual(len([m for m in self.sink.for_rcpt("jane@acme.com")]), 2)


class CadenceCalDAV(unittest.TestCase):
    """An invitation the calendar server sent (seen by the CalDAV watcher in
    the rep's calendar, Radicale) counts as a contact, once."""

    def setUp(self):
        from harness import Radicale
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.dav = Radicale().start()
        self.addCleanup(self.dav.cleanup)
        self.dav.mkcalendar("/rep/work/", "Work")
        self.u = Untild(self.sink, extra="[cadence]\nmin_gap = 7d\n[caldav]\nurl = http://127.0.0.1:%d/\n"
                                          "username = rep\npassword_file = {dir}/caldav.pass\ntls = none\n"
                                          "poll_interval = 1\n" % self.dav.port)
        self.addCleanup(self.u.cleanup)
        with open(self.u.conf) as f:
            conf = f.read()
        with open(self.u.conf, "w") as f:
            f.write(conf.replace("{dir}", self.u.dir))
        pw = os.path.join(self.u.dir, "caldav.pass")
        with open(pw, "w") as f:
            f.write("secret\n")
        os.chmod(pw, 0o600)
        self.u.start()
        self.u.set_clock(T0)

    def contacts(self, who):
        r = self.u.ctl("--json", "check", who, check=0)
        return json.loads(r.stdout).get("cadence", {}).get("contacts", [])

    def test_invitation_counts_once(self):
        from harness import vevent
        ics = vevent("ev-1@example.com", "20261220T100000Z", "20261220T110000Z", summary="Demo",
                     organizer="rep@example.com", attendees=["jane@acme.com"])
        st, _, _ = self.dav.put("/rep/work/ev-1.ics", ics)
        self.assertIn(st, (200, 201, 204))
        self.u.wait_for(lambda: self.contacts("jane@acme.com"), timeout=20, what="the invitation counted")
        self.assertEqual([(c["rep"], c["channel"]) for c in self.contacts("jane@acme.com")],
                         [("rep@example.com", "caldav")])
        # The object changed without a new SEQUENCE: not a new invitation.
        # (A marker event put after it proves a sync has seen the change.)
        self.dav.put("/rep/work/ev-1.ics", ics.replace("SUMMARY:Demo", "SUMMARY:Demo (room 2)"))
        self.dav.put("/rep/work/m1.ics", vevent("m1@example.com", "20261221T100000Z", "20261221T110000Z",
                                                organizer="rep@example.com", attendees=["joe@other.com"]))
        self.u.wait_for(lambda: self.contacts("joe@other.com"), timeout=20, what="the marker synced")
        self.assertEqual(len(self.contacts("jane@acme.com")), 1)
        # A new SEQUENCE is sent again: a second contact.
        self.dav.put("/rep/work/ev-1.ics", vevent("ev-1@example.com", "20261220T100000Z", "20261220T110000Z",
                                                  summary="Demo moved", organizer="rep@example.com",
                                                  attendees=["jane@acme.com"], sequence=1))
        self.dav.put("/rep/work/m2.ics", vevent("m2@example.com", "20261221T100000Z", "20261221T110000Z",
                                                organizer="rep@example.com", attendees=["ann@other.com"]))
        self.u.wait_for(lambda: self.contacts("ann@other.com"), timeout=20, what="the second marker synced")
        self.assertEqual(len(self.contacts("jane@acme.com")), 2)
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20)
        self.addCleanup(s.close)
        s.ehlo()
        s.mail("rep@example.com")
        s.rcpt("jane@acme.com")
        code, text = s.data(message(to="jane@acme.com", subject="Agenda for the demo"))
        self.assertIn(b"Held until", text)
        self.assertIn(b"(caldav)", text)


if __name__ == "__main__":
    unittest.main()
