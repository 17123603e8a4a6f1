"""Follow-up on the promised day (issue 12), end to end: the real daemon,
an aiosmtpd sink upstream, the test clock. A one-off window that ends by
itself reminds the right rep once, at the aligned release time, threaded
with the message that set the window; a restart sends no second one; a
window ended by hand reminds nobody."""
import email
import email.policy
import json
import smtplib
import unittest

from harness import GateTest, message

REP = "rep@example.com"
T0 = "2026-12-02T10:00:00Z"            # a Wednesday


def parse(m):
    return email.message_from_bytes(m.data, policy=email.policy.default)


class FollowupTest(GateTest):
    release_time = "09:00"

    def setUp(self):
        super().setUp()
        self.u.set_clock(T0)

    def followups(self):
        return [m for m in self.sink.messages if b"X-Untild-Followup:" in m.data]

    def roundtrip(self):
        """One control request: every scan the last clock move asked for
        has run (it runs in the loop turn of the request that kicked it)."""
        self.u.ctl("status", check=0)

    def set_window_by_bcc(self, contact="jane@acme.com", name="Jane Doe", until="2026-12-10",
                          subject="Lease ends, talk in December", msgid="orig.1@example.com"):
        data = ("From: %s\r\nTo: \"%s\" <%s>\r\nSubject: %s\r\nMessage-ID: <%s>\r\n\r\nTalk soon.\r\n"
                % (REP, name, contact, subject, msgid)).encode()
        s = self.smtp()
        s.sendmail(REP, [contact, "until-%s@untild.invalid" % until], data)
        self.u.wait_for(lambda: self.sink.for_rcpt(contact), what="the message that set the window")

    def test_listing_counts_held_mail_per_window(self):
        # Issue 18: the counts come from one pass over the held mail (a
        # pass per listed follow-up held the loop for seconds with 100,000
        # held); a domain window counts its subdomains, a message to two
        # addresses of one window counts once, and one to two windows
        # counts for each.
        for who, until in (("@globex.com", "2026-12-20"), ("bob@initech.com", "2026-12-21"),
                           ("jane@acme.com", "2026-12-22")):
            self.u.ctl("window", "add", who, "--until", until, "--owner", REP)
        s = self.smtp()
        s.sendmail(REP, ["ann@sales.globex.com"], message(to="ann@sales.globex.com", subject="One"))
        s.sendmail(REP, ["x@globex.com", "y@globex.com", "bob@initech.com"],
                   message(to="x@globex.com", subject="Two"))
        s.sendmail(REP, ["someone@globex.com.evil"], message(to="someone@globex.com.evil", subject="Three"))
        self.assertEqual(len(self.u.held_json()), 2)
        r = self.u.ctl("--json", "followups", "--days", "30", check=0)
        got = {i["contact"]: i["held"] for i in json.loads(r.stdout)}
        self.assertEqual(got, {"@globex.com": 2, "bob@initech.com": 1, "jane@acme.com": 0}, r.stdout)

    def test_reminder_at_aligned_time_threaded_once(self):
        self.set_window_by_bcc()
        # A second message to Jane is held by the window.
        s = self.smtp()
        s.sendmail(REP, ["jane@acme.com"], message(to="jane@acme.com", subject="Renewal offer"))
        held = self.u.held_json()
        self.assertEqual(len(held), 1, held)
        hid = held[0]["id"]

        # The listing shows it before it is due.
        r = self.u.ctl("--json", "followups", "--days", "30", check=0)
        items = json.loads(r.stdout)
        self.assertEqual([(i["contact"], i["held"], i["owner"]) for i in items],
                         [("jane@acme.com", 1, REP)], r.stdout)
        self.assertTrue(items[0]["date"].startswith("2026-12-10T09:00"), items)

        # The window ends at midnight; the follow-up waits for 09:00.
        self.u.set_clock("2026-12-10T08:59:00Z")
        self.roundtrip()
        self.assertNotIn("followup: reminded", self.u.logtext())
        self.assertEqual(self.followups(), [])

        self.u.set_clock("2026-12-10T09:00:00Z")
        self.u.wait_for(lambda: self.followups(), what="the reminder")
        self.u.wait_for(lambda: self.sink.for_rcpt("jane@acme.com")[1:], what="the held message released")
        fu = self.followups()
        self.assertEqual(len(fu), 1)
        self.assertEqual(fu[0].rcpts, [REP])
        m = parse(fu[0])
        self.assertEqual(m["Subject"], "Follow up with Jane Doe <jane@acme.com> today")
        self.assertEqual(m["In-Reply-To"], "<orig.1@example.com>")
        self.assertEqual(m["References"], "<orig.1@example.com>")
        body = m.get_content()
        self.assertIn("Lease ends, talk in December", body)
        self.assertIn("Bcc command address", body)
        self.assertIn("by %s" % REP, body)
        # The held message was still held at the reminder's time (both at
        # 09:00): it is listed with its links.
        self.assertIn("Renewal offer", body)
        self.assertIn("mailto:release-%s@untild.invalid" % hid, body)
        self.assertIn("mailto:discard-%s@untild.invalid" % hid, body)

        # Later, and after a restart: no second reminder.
        self.u.set_clock("2026-12-10T12:00:00Z")
        self.roundtrip()
        self.u.restart()
        self.u.set_clock("2026-12-11T09:30:00Z")
        self.roundtrip()
        self.roundtrip()
        self.assertEqual(self.u.logtext().count("followup: reminded"), 1, self.u.logtext()[-3000:])
        self.assertEqual(len(self.followups()), 1)
        r = self.u.ctl("--json", "followups", "--days", "1", check=0)
        self.assertTrue(all(i["sent"] for i in json.loads(r.stdout)), r.stdout)

    def test_ended_by_hand_reminds_nobody(self):
        self.set_window_by_bcc(contact="bob@initech.com", name="Bob", until="2026-12-10",
                               msgid="orig.3@example.com")
        wid = [w for w in self.u.windows_json() if "bob@initech.com" in json.dumps(w)][0]["id"]
        self.u.ctl("window", "end", wid, check=0)
        self.u.set_clock("2026-12-10T09:00:00Z")
        self.roundtrip()
        self.roundtrip()
        self.assertNotIn("followup: reminded", self.u.logtext())
        self.assertEqual(self.followups(), [])

    def test_recurring_window_reminds_nobody(self):
        self.u.write_windows('@acme.com never rrule="FREQ=WEEKLY;BYDAY=SA,SU" reason="weekends"\n'
                             'carol@acme.com 2026-12-05 reason="call after the audit"\n')
        self.u.ctl("reload", check=0)
        self.u.set_clock("2026-12-07T09:30:00Z")
        self.roundtrip()
        self.roundtrip()
        # carol's window has no owner and nobody was held for her: nobody
        self.assertIn("followup: window", self.u.logtext())
        self.assertIn("nobody to remind", self.u.logtext())
        self.assertEqual(self.followups(), [])

    def test_ownerless_window_reminds_the_held_rep(self):
        self.u.write_windows('dave@acme.com 2026-12-05 reason="RFP quiet period"\n')
        self.u.ctl("reload", check=0)
        s = self.smtp()
        s.sendmail(REP, ["dave@acme.com"], message(to="dave@acme.com", subject="Our proposal"))
        self.assertEqual(len(self.u.held_json()), 1)
        self.u.set_clock("2026-12-05T09:00:00Z")
        self.u.wait_for(lambda: self.followups(), what="the reminder")
        fu = self.followups()
        self.assertEqual(fu[0].rcpts, [REP])
        m = parse(fu[0])
        self.assertEqual(m["Subject"], "Follow up with dave@acme.com today")
        self.assertIn("a window file", m.get_content())
        self.assertIsNone(m["In-Reply-To"])

    def test_followups_command_address(self):
        self.set_window_by_bcc(contact="erin@acme.com", name="Erin", until="2026-12-06",
                               msgid="orig.4@example.com")
        s = self.smtp()
        s.sendmail(REP, ["followups@untild.invalid"], message(to="followups@untild.invalid",
                                                             subject="list"))
        self.u.wait_for(lambda: [m for m in self.sink.for_rcpt(REP) if b"Your follow-ups" in m.data],
                        what="the follow-up list")
        m = [m for m in self.sink.for_rcpt(REP) if b"Your follow-ups" in m.data][0]
        self.assertIn(b"erin@acme.com", m.data)


class FollowupWeekendTest(FollowupTest.__bases__[0]):
    release_time = "09:00"
    untild_kwargs = {"weekends": "no"}

    def test_saturday_end_reminds_monday(self):
        self.u.set_clock(T0)
        s = self.smtp()
        data = ("From: %s\r\nTo: jane@acme.com\r\nSubject: x\r\nMessage-ID: <o7@example.com>\r\n\r\nx\r\n"
                % REP).encode()
        s.sendmail(REP, ["jane@acme.com", "until-2026-12-12@untild.invalid"], data)   # a Saturday
        self.u.set_clock("2026-12-13T12:00:00Z")   # Sunday
        self.u.ctl("status", check=0)
        self.u.ctl("status", check=0)
        self.assertNotIn("followup: reminded", self.u.logtext())
        self.u.set_clock("2026-12-14T09:00:00Z")   # Monday at release_time
        self.u.wait_for(lambda: "followup: reminded" in self.u.logtext(), what="the reminder")


class FollowupConfigTest(GateTest):
    release_time = "09:00"
    untild_kwargs = {"extra": "[followup]\nenabled = no\n"}

    def test_disabled(self):
        self.u.set_clock(T0)
        s = self.smtp()
        data = ("From: %s\r\nTo: jane@acme.com\r\nSubject: x\r\nMessage-ID: <o5@example.com>\r\n\r\nx\r\n"
                % REP).encode()
        s.sendmail(REP, ["jane@acme.com", "until-2026-12-10@untild.invalid"], data)
        self.u.set_clock("2026-12-10T09:00:00Z")
        self.u.ctl("status", check=0)
        self.u.ctl("status", check=0)
        self.assertNotIn("followup: reminded", self.u.logtext())


class FollowupTeamTest(GateTest):
    release_time = "09:00"
    untild_kwargs = {"extra": "[followup]\nteam = sales-team@example.com\n"}

    def test_team_copy(self):
        self.u.set_clock(T0)
        s = self.smtp()
        data = ("From: %s\r\nTo: jane@acme.com\r\nSubject: x\r\nMessage-ID: <o6@example.com>\r\n\r\nx\r\n"
                % REP).encode()
        s.sendmail(REP, ["jane@acme.com", "until-2026-12-10@untild.invalid"], data)
        self.u.set_clock("2026-12-10T09:00:00Z")
        self.u.wait_for(lambda: self.sink.for_rcpt("sales-team@example.com") and
                        [m for m in self.sink.for_rcpt(REP) if b"X-Untild-Followup" in m.data],
                        what="rep and team reminded")


if __name__ == "__main__":
    unittest.main()


class FollowupCalendar(unittest.TestCase):
    """With [caldav], a follow-up item sits in the rep's calendar (created
    if missing) on the follow-up date; a changed window moves it; a window
    ended by hand removes it (event) or marks it done (todo). Radicale."""
    item = "event"

    def setUp(self):
        from harness import Radicale, Sink, Untild
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.dav = Radicale().start()
        self.addCleanup(self.dav.cleanup)
        self.dav.mkcalendar("/rep/work/", "Work")
        self.u = Untild(self.sink, release_time="09:00",
                        extra="[followup]\nitem = %s\n[caldav]\nurl = http://127.0.0.1:%d/\nusername = rep\n"
                              "password_file = {dir}/caldav.pass\ntls = none\npoll_interval = 1\n"
                              % (self.item, self.dav.port))
        with open(self.u.conf) as f:
            conf = f.read()
        with open(self.u.conf, "w") as f:
            f.write(conf.replace("{dir}", self.u.dir))
        pw = self.u.dir + "/caldav.pass"
        with open(pw, "w") as f:
            f.write("secret\n")
        import os
        os.chmod(pw, 0o600)
        self.addCleanup(self.u.cleanup)
        self.u.start()
        self.u.set_clock(T0)

    def item_at(self, wid):
        st, _, body = self.dav.get("/rep/follow-ups/untild-followup-%s.ics" % wid)
        return body.decode() if st == 200 else None

    def wid_for(self, who):
        return [w for w in self.u.windows_json() if who in json.dumps(w)][0]["id"]

    def test_item_put_moved_removed(self):
        self.u.write_windows('jane@acme.com 2026-12-10 owner=%s reason="Lease ends"\n' % REP)
        self.u.ctl("reload", check=0)
        wid = self.wid_for("jane@acme.com")
        self.u.wait_for(lambda: self.item_at(wid), timeout=20, what="the calendar item")
        ics = self.item_at(wid)
        self.assertIn("DTSTART;VALUE=DATE:20261210", ics)
        self.assertIn("SUMMARY:Follow up with jane@acme.com: Lease ends", ics)
        st, _, body = self.dav.request("PROPFIND", "/rep/follow-ups/", None, {"Depth": "0"})
        self.assertIn(b"Follow-ups", body)
        # The window moves: so does the item (a file line's id follows its content).
        self.u.write_windows('jane@acme.com 2026-12-17 owner=%s reason="Lease ends"\n' % REP)
        self.u.ctl("reload", check=0)
        wid2 = self.wid_for("jane@acme.com")
        self.assertNotEqual(wid, wid2)
        self.u.wait_for(lambda: self.item_at(wid2) and not self.item_at(wid), timeout=20,
                        what="the item moved")
        self.assertIn("DTSTART;VALUE=DATE:20261217", self.item_at(wid2))
        # Ended by hand: gone.
        self.u.ctl("window", "end", wid2, check=0)
        self.u.wait_for(lambda: not self.item_at(wid2), timeout=20, what="the item removed")
        # The Bcc command's window gets one too, and a restart puts nothing twice.
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20)
        self.addCleanup(s.close)
        s.sendmail(REP, ["bob@initech.com", "until-2026-12-21@untild.invalid"],
                   message(to="bob@initech.com", subject="After the holidays"))
        wid3 = self.wid_for("bob@initech.com")
        self.u.wait_for(lambda: self.item_at(wid3), timeout=20, what="the Bcc window's item")
        self.assertIn("DTSTART;VALUE=DATE:20261221", self.item_at(wid3))
        # the worker's result reaches the loop after Radicale has the item
        self.u.wait_for(lambda: "calendar item for %s put" % wid3 in self.u.logtext(), what="recorded")
        puts = self.u.logtext().count("calendar item for %s put" % wid3)
        self.u.restart()
        self.u.ctl("status", check=0)
        self.u.ctl("status", check=0)
        self.assertEqual(self.u.logtext().count("calendar item for %s put" % wid3), puts)


class FollowupCalendarTodo(FollowupCalendar):
    item = "todo"

    def test_item_put_moved_removed(self):
        self.u.write_windows('jane@acme.com 2026-12-10 owner=%s reason="Lease ends"\n' % REP)
        self.u.ctl("reload", check=0)
        wid = self.wid_for("jane@acme.com")
        self.u.wait_for(lambda: self.item_at(wid), timeout=20, what="the calendar item")
        ics = self.item_at(wid)
        self.assertIn("BEGIN:VTODO", ics)
        self.assertIn("DUE;VALUE=DATE:20261210", ics)
        self.assertIn("STATUS:NEEDS-ACTION", ics)
        self.u.ctl("window", "end", wid, check=0)
        self.u.wait_for(lambda: "STATUS:COMPLETED" in (self.item_at(wid) or ""), timeout=20,
                        what="the item marked done")
