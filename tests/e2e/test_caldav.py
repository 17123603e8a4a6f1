"""CalDAV (issue 7) against a real Radicale on 127.0.0.1.

Watcher: an invitation from the rep to a quiet attendee is flagged once
(audit + notice), not again after a restart or a rejected sync token;
events of the "Do not contact" calendar become windows that hold mail, and
deleting the event ends the window; a malformed event is skipped with a
log line.
Proxy: a PUT through untild stores SCHEDULE-AGENT=CLIENT for the quiet
attendee only; ETag preconditions pass through; the held iMIP REQUEST is
sent once at the window's end; a DELETE or CANCELLED event drops it."""
import http.server
import json
import os
import re
import sqlite3
import threading
import time
import unittest
import urllib.error
import urllib.request

from harness import Radicale, Sink, Untild, free_port, make_self_signed, message, unfold, vevent

REP = "rep@example.com"
WINDOWS = 'jane@acme.com 2027-07-01 reason="Lease ends in July"\n'


def window_list(u):
    w = u.windows_json()
    return w.get("windows", w) if isinstance(w, dict) else w


def flagged_for(u, contact):
    r = json.loads(u.ctl("--json", "report", "--since", "3650", check=0).stdout)
    for row in r["by_contact"]:
        if row["id"] == contact:
            return row["flagged"]
    return 0


class CalDAVBase(unittest.TestCase):
    proxy = False
    caldav_extra = ""          # more [caldav] keys
    configured = True          # False: the [caldav] section is left out
    windows = WINDOWS

    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.dav = Radicale().start()
        self.addCleanup(self.dav.cleanup)
        self.dav.mkcalendar("/rep/work/", "Work")
        self.dav.mkcalendar("/rep/dnc/", "Do not contact")
        self.pport = free_port()
        extra = ("[caldav]\nurl = %s\nusername = rep\npassword_file = {dir}/caldav.pass\n"
                 "tls = none\npoll_interval = 1\n" % self.caldav_url())
        if self.proxy:
            extra += "proxy_listen = 127.0.0.1:%d\n" % self.pport
        extra += self.caldav_extra
        self.u = Untild(self.sink, windows=self.windows, release_time="off")
        self.addCleanup(self.u.cleanup)
        self.addCleanup(self.no_password_in_log)   # runs first (LIFO)
        with open(self.u.conf) as f:
            conf = f.read()
        self.section = extra.replace("{dir}", self.u.dir)
        with open(self.u.conf, "w") as f:
            f.write(conf + (self.section if self.configured else ""))
        pw = os.path.join(self.u.dir, "caldav.pass")
        with open(pw, "w") as f:
            f.write("secret\n")
        os.chmod(pw, 0o600)
        self.before_start()
        self.u.start()
        self.u.set_clock("2027-01-10T10:00:00Z")

    def caldav_url(self):
        return "http://127.0.0.1:%d/" % self.dav.port

    def no_password_in_log(self):
        log = self.u.logtext()
        for leak in ("rep:secret", ":secret@", "secret\n"):
            self.assertNotIn(leak, log, "the CalDAV password reached the log")

    def before_start(self):
        pass

    def notices(self, needle):
        return [m for m in self.sink.for_rcpt(REP) if needle.encode() in m.data]

    def wait_log(self, needle, count=1, timeout=15):
        self.u.wait_for(lambda: self.u.logtext().count(needle) >= count, timeout=timeout,
                        what="log line %r" % needle)


class Watcher(CalDAVBase):
    def put_invite(self, uid, attendees, summary):
        st, _, body = self.dav.put("/rep/work/%s.ics" % uid,
                                   vevent(uid, "20270301T100000Z", "20270301T110000Z", summary=summary,
                                          attendees=attendees))
        self.assertIn(st, (201, 204), body)

    def test_invitation_flagged_once_across_restart_and_token_reset(self):
        self.put_invite("inv1", ["jane@acme.com", "bob@other.com"], "Lease talk")
        self.u.wait_for(lambda: self.notices("Lease talk"), timeout=15, what="flag notice")
        n = self.notices("Lease talk")[0]
        self.assertIn(b"Flagged", n.data)
        self.assertIn(b"jane@acme.com", n.data)
        self.assertIn(b"Lease ends in July", n.data)
        self.assertIn(b"2027-03-01", n.data)   # the event's time
        self.assertEqual(flagged_for(self.u, "jane@acme.com"), 1)
        self.assertEqual(flagged_for(self.u, "bob@other.com"), 0)
        time.sleep(2.5)   # more polls: nothing new
        self.assertEqual(len(self.notices("Lease talk")), 1)

        # Restart: the stored token means no repeat; a new invitation is seen.
        self.u.restart()
        self.u.set_clock("2027-01-10T10:00:00Z")
        self.put_invite("inv2", ["jane@acme.com"], "Second talk")
        self.u.wait_for(lambda: self.notices("Second talk"), timeout=15, what="second flag")
        self.assertEqual(len(self.notices("Lease talk")), 1)
        self.assertEqual(flagged_for(self.u, "jane@acme.com"), 2)

        # A token the server rejects: full resync, still no repeats.
        self.u.stop()
        db = sqlite3.connect(os.path.join(self.u.dir, "state", "untild.db"))
        db.execute("UPDATE kv SET value = ? WHERE key = ?",
                   ("S\t/rep/work/\thttp://radicale.org/ns/sync/bogus\n", "caldav:state:" + REP))
        self.assertEqual(db.total_changes, 1)
        db.commit()
        db.close()
        self.u.start()
        self.u.set_clock("2027-01-10T10:00:00Z")
        self.wait_log("sync token for /rep/work/ rejected")
        self.put_invite("inv3", ["jane@acme.com"], "Third talk")
        self.u.wait_for(lambda: self.notices("Third talk"), timeout=15, what="third flag")
        time.sleep(1.5)
        self.assertEqual(len(self.notices("Lease talk")), 1)
        self.assertEqual(len(self.notices("Second talk")), 1)
        self.assertEqual(flagged_for(self.u, "jane@acme.com"), 3)

    def test_changed_event_without_new_sequence_not_flagged_again(self):
        self.put_invite("inv1", ["jane@acme.com"], "Lease talk")
        self.u.wait_for(lambda: self.notices("Lease talk"), timeout=15, what="flag notice")
        # Same SEQUENCE, new etag (description added): no new invitation.
        self.dav.put("/rep/work/inv1.ics", vevent("inv1", "20270301T100000Z", "20270301T110000Z",
                                                  summary="Lease talk", attendees=["jane@acme.com"],
                                                  description="agenda"))
        self.put_invite("marker", ["jane@acme.com"], "Marker talk")
        self.u.wait_for(lambda: self.notices("Marker talk"), timeout=15, what="marker flag")
        self.assertEqual(len(self.notices("Lease talk")), 1)

    def test_windows_calendar_holds_mail_and_delete_ends_it(self):
        st, _, _ = self.dav.put("/rep/dnc/carol.ics", vevent(
            "dnc1", "20270101T000000Z", "20270201T000000Z", summary="Quiet: mailto:carol@globex.com",
            organizer=None, description="Merger talks"))
        self.assertEqual(st, 201)
        self.u.wait_for(lambda: any("carol@globex.com" in w["who"] for w in window_list(self.u)),
                        timeout=15, what="window from the calendar")
        w = [w for w in window_list(self.u) if "carol@globex.com" in w["who"]][0]
        self.assertEqual(w["source"], "caldav")
        self.assertEqual(w["reason"], "Merger talks")
        self.assertTrue(w["id"].startswith("c") and len(w["id"]) < 16, w["id"])
        self.assertIn("2027-02-01", w["until"])
        self.assertIn(w["id"], self.u.ctl("window", "list", check=0).stdout)

        import smtplib
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20)
        self.addCleanup(s.close)
        s.ehlo()
        s.mail(REP)
        s.rcpt("carol@globex.com")
        code, text = s.data(message(to="carol@globex.com", subject="Merger"))
        self.assertEqual(code, 250)
        self.assertIn(b"Held until 2027-02-01", text)
        self.assertEqual(len(self.u.spool_files()), 1)

        # A SIGHUP rebuilds the index: the calendar's window is put back.
        import signal
        self.u.proc.send_signal(signal.SIGHUP)
        self.wait_log("reload:")
        self.assertTrue(any("carol@globex.com" in w["who"] for w in window_list(self.u)))
        time.sleep(1.5)
        self.assertEqual(self.sink.for_rcpt("carol@globex.com"), [])

        st, _, _ = self.dav.delete("/rep/dnc/carol.ics")
        self.assertIn(st, (200, 204))
        self.u.wait_for(lambda: not any("carol@globex.com" in w["who"] for w in window_list(self.u)),
                        timeout=15, what="window ended")
        self.u.wait_for(lambda: len(self.sink.for_rcpt("carol@globex.com")) == 1, timeout=15,
                        what="held mail released")
        self.u.wait_for(lambda: self.u.spool_files() == [], what="spool empty")

    def test_recurring_window_from_calendar(self):
        # Every Saturday and Sunday, from an attendee.
        self.dav.put("/rep/dnc/weekend.ics", vevent(
            "dnc2", "20270102T000000Z", "20270104T000000Z", summary="no weekend mail",
            organizer=REP, attendees=["dave@initech.com"], extra="RRULE:FREQ=WEEKLY;BYDAY=SA"))
        self.u.wait_for(lambda: any("dave@initech.com" in w["who"] for w in window_list(self.u)),
                        timeout=15, what="recurring window")
        w = [w for w in window_list(self.u) if "dave@initech.com" in w["who"]][0]
        self.assertIn("FREQ=WEEKLY", w["rrule"])
        self.assertNotIn(REP, w["who"])
        self.assertEqual(self.u.ctl("check", "dave@initech.com", "--at", "2027-01-16T12:00Z").returncode, 3)
        self.assertEqual(self.u.ctl("check", "dave@initech.com", "--at", "2027-01-13T12:00Z").returncode, 0)

    def test_server_down_backs_off_and_daemon_keeps_working(self):
        self.dav.stop()
        self.wait_log("sync failed")
        # The gate does not wait for the calendar server.
        import smtplib
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=5)
        self.addCleanup(s.close)
        s.sendmail(REP, ["bob@other.com"], message(to="bob@other.com"))
        self.assertEqual(len(self.sink.for_rcpt("bob@other.com")), 1)
        self.dav.start()
        self.put_invite("inv1", ["jane@acme.com"], "After outage")
        self.u.wait_for(lambda: self.notices("After outage"), timeout=30, what="flag after outage")
        self.assertIn("sync works again", self.u.logtext())

    def test_event_with_errors_flagged_all_the_same(self):
        # Fail closed (issue 17 item 8): unknown and malformed properties do
        # not hide an invitation to a quiet attendee.
        bad = vevent("bad1", "20270301T100000Z", "20270301T110000Z", summary="Broken talk",
                     attendees=["jane@acme.com"], extra="GEO:abc\r\nFOO:bar\r\nLOCATION:")
        st, _, _ = self.dav.put("/rep/work/bad1.ics", bad)
        self.assertEqual(st, 201)
        self.u.wait_for(lambda: self.notices("Broken talk"), timeout=15, what="flag despite errors")
        self.assertIn("/rep/work/bad1.ics: 3 iCalendar error(s)", self.u.logtext())
        self.assertEqual(flagged_for(self.u, "jane@acme.com"), 1)

    def test_organizer_by_email_parameter_flagged(self):
        ics = vevent("em1", "20270301T100000Z", "20270301T110000Z", summary="Principal talk", organizer=None,
                     attendees=["jane@acme.com"],
                     extra="ORGANIZER;CN=Rep;EMAIL=rep@example.com:/principals/rep/")
        self.assertEqual(self.dav.put("/rep/work/em1.ics", ics)[0], 201)
        self.u.wait_for(lambda: self.notices("Principal talk"), timeout=15, what="flag for EMAIL organizer")
        ics = vevent("em2", "20270301T100000Z", "20270301T110000Z", summary="Own principal", organizer=None,
                     attendees=["jane@acme.com"], extra="ORGANIZER;CN=Rep:/rep/")
        self.assertEqual(self.dav.put("/rep/work/em2.ics", ics)[0], 201)
        self.u.wait_for(lambda: self.notices("Own principal"), timeout=15, what="flag for principal organizer")


class Proxy(CalDAVBase):
    proxy = True

    def put_via_proxy(self, path, ics, headers=None):
        return self.dav.put(path, ics, headers=headers, port=self.pport)

    def invite(self, uid="inv1", start="20270901T100000Z", end="20270901T110000Z", **kw):
        kw.setdefault("attendees", ["jane@acme.com", "bob@other.com"])
        kw.setdefault("summary", "Contract signing")
        return vevent(uid, start, end, **kw)

    def test_put_marks_quiet_attendee_and_sends_at_window_end_once(self):
        st, hdrs, body = self.put_via_proxy("/rep/work/inv1.ics", self.invite())
        self.assertEqual(st, 201, body)
        st, _, stored = self.dav.get("/rep/work/inv1.ics")
        self.assertEqual(st, 200)
        lines = unfold(stored).splitlines()
        jane = [l for l in lines if l.startswith("ATTENDEE") and "jane@acme.com" in l]
        bob = [l for l in lines if l.startswith("ATTENDEE") and "bob@other.com" in l]
        self.assertEqual(len(jane), 1)
        self.assertIn("SCHEDULE-AGENT=CLIENT", jane[0])
        self.assertNotIn("SCHEDULE-AGENT", bob[0])
        self.assertEqual(len(self.u.spool_files()), 1)
        held = self.u.held_json()
        held = held.get("held", held) if isinstance(held, dict) else held
        self.assertEqual(len(held), 1)
        self.u.wait_for(lambda: self.notices("Held"), what="held notice")

        # The watcher sees SCHEDULE-AGENT=CLIENT: the server sent nothing, no flag.
        time.sleep(2.5)
        self.assertEqual(flagged_for(self.u, "jane@acme.com"), 0)

        # ETag preconditions pass through the proxy.
        st, h, _ = self.dav.get("/rep/work/inv1.ics", port=self.pport)
        self.assertEqual(st, 200)
        etag = h["etag"]
        st, _, _ = self.put_via_proxy("/rep/work/inv1.ics", self.invite(sequence=1),
                                      headers={"If-Match": '"stale-etag"'})
        self.assertEqual(st, 412)
        st, _, _ = self.put_via_proxy("/rep/work/inv1.ics", self.invite(), headers={"If-None-Match": "*"})
        self.assertEqual(st, 412)
        self.assertEqual(len(self.u.spool_files()), 1)
        st, h2, _ = self.put_via_proxy("/rep/work/inv1.ics", self.invite(sequence=1, summary="Contract v2"),
                                       headers={"If-Match": etag})
        self.assertIn(st, (200, 201, 204))
        self.assertNotEqual(h2.get("etag"), etag)
        self.assertEqual(len(self.u.spool_files()), 1, "the update replaces the held invitation")

        self.u.set_clock("2027-06-30T23:59:59Z")
        time.sleep(1.5)
        self.assertEqual(self.sink.for_rcpt("jane@acme.com"), [], "sent early")
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: len(self.sink.for_rcpt("jane@acme.com")) == 1, what="iMIP at window end")
        self.u.wait_for(lambda: self.u.spool_files() == [], what="spool empty")
        m = self.sink.for_rcpt("jane@acme.com")[0]
        self.assertEqual(m.rcpts, ["jane@acme.com"])
        data = unfold(m.data)
        self.assertIn("METHOD:REQUEST", data)
        self.assertIn("text/calendar; method=REQUEST", data)
        self.assertIn("Contract v2", data)
        self.assertNotIn("SCHEDULE-AGENT", data)
        self.assertIn("UID:inv1", data)
        self.u.set_clock("2027-07-02T00:00:00Z")
        time.sleep(1.5)
        self.assertEqual(len(self.sink.for_rcpt("jane@acme.com")), 1, "sent twice")
        self.assertEqual(self.sink.for_rcpt("bob@other.com"), [], "bob is the server's business")

    def test_delete_drops_held_invitation(self):
        st, _, _ = self.put_via_proxy("/rep/work/inv1.ics", self.invite())
        self.assertEqual(st, 201)
        self.assertEqual(len(self.u.spool_files()), 1)
        st, _, _ = self.dav.delete("/rep/work/inv1.ics", port=self.pport)
        self.assertIn(st, (200, 204))
        self.assertEqual(self.u.spool_files(), [])
        self.assertEqual(self.dav.get("/rep/work/inv1.ics")[0], 404)
        self.u.set_clock("2027-07-01T00:00:01Z")
        time.sleep(2)
        self.assertEqual(self.sink.for_rcpt("jane@acme.com"), [])

    def test_cancelled_event_drops_held_invitation(self):
        self.assertEqual(self.put_via_proxy("/rep/work/inv1.ics", self.invite())[0], 201)
        self.assertEqual(len(self.u.spool_files()), 1)
        st, _, _ = self.put_via_proxy("/rep/work/inv1.ics", self.invite(sequence=1, status="CANCELLED"))
        self.assertIn(st, (200, 201, 204))
        self.assertEqual(self.u.spool_files(), [])
        self.u.set_clock("2027-07-01T00:00:01Z")
        time.sleep(2)
        self.assertEqual(self.sink.for_rcpt("jane@acme.com"), [])

    def test_event_before_window_end_is_never_sent(self):
        st, _, _ = self.put_via_proxy("/rep/work/early.ics",
                                      self.invite("early", "20270301T100000Z", "20270301T110000Z",
                                                  summary="Too early"))
        self.assertEqual(st, 201)
        self.assertEqual(len(self.u.spool_files()), 1)
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: self.notices("Reschedule"), what="reschedule notice")
        self.u.wait_for(lambda: self.u.spool_files() == [], what="spool empty")
        self.assertEqual(self.sink.for_rcpt("jane@acme.com"), [])

    def test_running_series_is_sent_while_occurrences_remain(self):
        # Issue 17 item 2: weekly series that began before the window opens.
        series = {"s1": "RRULE:FREQ=WEEKLY;COUNT=52",             # runs to December
                  "s2": "RRULE:FREQ=WEEKLY",                      # no end
                  "s3": "RRULE:FREQ=WEEKLY;UNTIL=20270301T000000Z",   # over by July
                  "s4": "RRULE:FREQ=WEEKLY;COUNT=4"}              # over by July
        for uid, rule in series.items():
            st, _, _ = self.put_via_proxy("/rep/work/%s.ics" % uid, self.invite(
                uid, "20270104T100000Z", "20270104T110000Z", summary="Series " + uid,
                attendees=["jane@acme.com"], extra=rule))
            self.assertEqual(st, 201)
        self.assertEqual(len(self.u.spool_files()), 4)
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: len(self.sink.for_rcpt("jane@acme.com")) == 2, what="two series sent")
        self.u.wait_for(lambda: len(self.notices("Reschedule")) == 2, what="two reschedule notices")
        self.u.wait_for(lambda: self.u.spool_files() == [], what="spool empty")
        sent = b"".join(m.data for m in self.sink.for_rcpt("jane@acme.com"))
        self.assertIn(b"UID:s1", sent)
        self.assertIn(b"UID:s2", sent)
        self.assertIn(b"RRULE:FREQ=WEEKLY;COUNT=52", sent)
        notes = b"".join(m.data for m in self.notices("Reschedule"))
        self.assertIn(b"Series s3", notes)
        self.assertIn(b"Series s4", notes)

    def test_released_attendee_is_scheduled_by_the_server_again(self):
        # Issue 17 item 1: after the held invitation went out, the stored
        # event loses SCHEDULE-AGENT=CLIENT (If-Match), so the server
        # carries later edits and the final DELETE to the attendee.
        def jane_line(ics):
            return [l for l in unfold(ics).splitlines() if l.startswith("ATTENDEE") and "jane@acme.com" in l][0]
        sent_body = self.invite()
        self.assertEqual(self.put_via_proxy("/rep/work/inv1.ics", sent_body)[0], 201)
        stale = self.dav.get("/rep/work/inv1.ics")[2]   # what a client keeps
        self.assertIn("SCHEDULE-AGENT=CLIENT", jane_line(stale))
        time.sleep(2.5)   # syncs while still held: nothing changes
        self.assertIn("SCHEDULE-AGENT=CLIENT", jane_line(self.dav.get("/rep/work/inv1.ics")[2]))
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: len(self.sink.for_rcpt("jane@acme.com")) == 1, what="iMIP at window end")
        self.u.wait_for(lambda: "SCHEDULE-AGENT" not in jane_line(self.dav.get("/rep/work/inv1.ics")[2]),
                        timeout=15, what="server copy unmarked")
        self.wait_log("was released: the server schedules them again")
        stored = self.dav.get("/rep/work/inv1.ics")[2]
        self.assertNotIn("SCHEDULE-AGENT", unfold(stored))
        # an edit from a client that still has the marked copy: the mark goes
        edit = stale.decode().replace("SUMMARY:Contract signing", "SUMMARY:Contract moved")
        st, _, _ = self.put_via_proxy("/rep/work/inv1.ics", edit)
        self.assertIn(st, (200, 201, 204))
        stored = self.dav.get("/rep/work/inv1.ics")[2]
        self.assertIn("Contract moved", unfold(stored))
        self.assertNotIn("SCHEDULE-AGENT", jane_line(stored))
        self.assertEqual(self.u.spool_files(), [], "nothing held: jane is not quiet")
        # and the DELETE reaches the server with jane scheduled normally
        self.assertIn(self.dav.delete("/rep/work/inv1.ics", port=self.pport)[0], (200, 204))
        self.assertEqual(len(self.sink.for_rcpt("jane@acme.com")), 1)

    def test_discarded_invitation_keeps_the_mark(self):
        self.assertEqual(self.put_via_proxy("/rep/work/inv1.ics", self.invite())[0], 201)
        held = self.u.held_json()
        held = held.get("held", held) if isinstance(held, dict) else held
        self.u.ctl("held", "discard", held[0]["id"])
        self.u.set_clock("2027-07-01T00:00:01Z")
        time.sleep(2.5)   # several syncs
        stored = self.dav.get("/rep/work/inv1.ics")[2]
        self.assertIn("SCHEDULE-AGENT=CLIENT", unfold(stored), "the rep chose not to invite jane")

    def test_other_requests_pass_through(self):
        # PROPFIND with a body and Depth, and the server's own 404 / 401.
        body = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:displayname/></D:prop>'
                '</D:propfind>')
        st, _, data = self.dav.request("PROPFIND", "/rep/work/", body,
                                       {"Depth": "0", "Content-Type": "application/xml"}, port=self.pport)
        self.assertEqual(st, 207)
        self.assertIn(b"Work", data)
        self.assertEqual(self.dav.get("/rep/work/nothing.ics", port=self.pport)[0], 404)
        st, h, _ = self.dav.request("GET", "/rep/work/", auth=False, port=self.pport)
        self.assertEqual(st, 401)
        self.assertIn("www-authenticate", h)
        # A PUT with nobody quiet is stored unchanged and holds nothing.
        ics = self.invite("plain", attendees=["bob@other.com"])
        self.assertEqual(self.put_via_proxy("/rep/work/plain.ics", ics)[0], 201)
        self.assertNotIn("SCHEDULE-AGENT", unfold(self.dav.get("/rep/work/plain.ics")[2]))
        self.assertEqual(self.u.spool_files(), [])


def caldav_state(u):
    """The watcher's persisted sync state blob (kv), read-only."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(u.dir, "state", "untild.db"), uri=True,
                         timeout=5)
    try:
        row = db.execute("SELECT value FROM kv WHERE key = ?", ("caldav:state:" + REP,)).fetchone()
        return row[0] if row else None
    finally:
        db.close()


class EtagFallback(CalDAVBase):
    """sync = etag: the ctag/etag listing used for servers without
    sync-collection, against the real Radicale."""
    caldav_extra = "sync = etag\n"

    def put_invite(self, uid, attendees, summary):
        st, _, body = self.dav.put("/rep/work/%s.ics" % uid,
                                   vevent(uid, "20270301T100000Z", "20270301T110000Z", summary=summary,
                                          attendees=attendees))
        self.assertIn(st, (201, 204), body)

    def test_invitation_flagged_once_by_etag_listing(self):
        self.assertIn("sync = etag", self.u.logtext())
        self.put_invite("inv1", ["jane@acme.com", "bob@other.com"], "Lease talk")
        self.u.wait_for(lambda: self.notices("Lease talk"), timeout=15, what="flag notice")
        self.assertIn(b"jane@acme.com", self.notices("Lease talk")[0].data)
        self.assertEqual(flagged_for(self.u, "jane@acme.com"), 1)
        self.assertEqual(flagged_for(self.u, "bob@other.com"), 0)
        state = caldav_state(self.u)
        self.assertIn("E\t/rep/work/\t/rep/work/inv1.ics\t", state)
        self.assertIn("C\t/rep/work/\t", state)
        self.assertNotIn("S\t", state, "sync-collection used despite sync = etag")
        # a changed calendar: only the new event is flagged
        self.put_invite("inv2", ["jane@acme.com"], "Second talk")
        self.u.wait_for(lambda: self.notices("Second talk"), timeout=15, what="second flag")
        time.sleep(2.5)
        self.assertEqual(len(self.notices("Lease talk")), 1)
        self.assertEqual(flagged_for(self.u, "jane@acme.com"), 2)
        # restart: the stored etags mean no repeat
        self.u.restart()
        self.u.set_clock("2027-01-10T10:00:00Z")
        self.put_invite("inv3", ["jane@acme.com"], "Third talk")
        self.u.wait_for(lambda: self.notices("Third talk"), timeout=15, what="third flag")
        time.sleep(1.5)
        self.assertEqual(len(self.notices("Lease talk")), 1)
        self.assertEqual(len(self.notices("Second talk")), 1)
        self.assertEqual(flagged_for(self.u, "jane@acme.com"), 3)

    def test_windows_calendar_holds_mail_and_delete_ends_it(self):
        st, _, _ = self.dav.put("/rep/dnc/carol.ics", vevent(
            "dnc1", "20270101T000000Z", "20270201T000000Z", summary="Quiet: mailto:carol@globex.com",
            organizer=None, description="Merger talks"))
        self.assertEqual(st, 201)
        self.u.wait_for(lambda: any("carol@globex.com" in w["who"] for w in window_list(self.u)),
                        timeout=15, what="window from the calendar")
        import smtplib
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20)
        self.addCleanup(s.close)
        s.sendmail(REP, ["carol@globex.com"], message(to="carol@globex.com", subject="Merger"))
        self.assertEqual(len(self.u.spool_files()), 1)
        st, _, _ = self.dav.delete("/rep/dnc/carol.ics")
        self.assertIn(st, (200, 204))
        self.u.wait_for(lambda: not any("carol@globex.com" in w["who"] for w in window_list(self.u)),
                        timeout=15, what="window ended")
        self.u.wait_for(lambda: len(self.sink.for_rcpt("carol@globex.com")) == 1, timeout=15,
                        what="held mail released")
        self.assertNotIn("S\t", caldav_state(self.u) or "")


class ReloadAddsCalDAV(CalDAVBase):
    configured = False

    def test_sighup_starts_the_watcher(self):
        import signal
        self.assertNotIn("caldav: watching", self.u.logtext())
        with open(self.u.conf, "a") as f:
            f.write(self.section)
        self.u.proc.send_signal(signal.SIGHUP)
        self.wait_log("caldav: watching")
        st, _, _ = self.dav.put("/rep/work/r1.ics", vevent("r1", "20270301T100000Z", "20270301T110000Z",
                                                           summary="After reload",
                                                           attendees=["jane@acme.com"]))
        self.assertIn(st, (201, 204))
        self.u.wait_for(lambda: self.notices("After reload"), timeout=15, what="flag after reload")
        self.assertEqual(flagged_for(self.u, "jane@acme.com"), 1)


class WellKnown(CalDAVBase):
    """RFC 6764: the url is the well-known URI; Radicale answers it with a
    301 to "/", which the watcher follows by hand (same origin)."""
    def caldav_url(self):
        return "http://127.0.0.1:%d/.well-known/caldav" % self.dav.port

    def test_well_known_url_finds_the_calendars(self):
        st, _, _ = self.dav.put("/rep/work/wk1.ics", vevent("wk1", "20270301T100000Z", "20270301T110000Z",
                                                            summary="Well known talk",
                                                            attendees=["jane@acme.com"]))
        self.assertIn(st, (201, 204))
        self.u.wait_for(lambda: self.notices("Well known talk"), timeout=15, what="flag notice")
        self.assertEqual(flagged_for(self.u, "jane@acme.com"), 1)
        self.assertNotIn("sync failed", self.u.logtext())


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers everything with 301 to server.location (or 200 if None), and
    counts the requests it gets."""
    def _any(self):
        self.server.hits.append((self.command, self.path, self.headers.get("Authorization")))
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        if self.server.location:
            self.send_response(301)
            self.send_header("Location", self.server.location)
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PROPFIND = do_REPORT = do_POST = _any

    def log_message(self, *a):
        pass


def start_recorder(host, location):
    srv = http.server.ThreadingHTTPServer((host, 0), _Recorder)
    srv.hits = []
    srv.location = location
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class RedirectElsewhere(CalDAVBase):
    """A redirect to another host is refused: the password never leaves."""
    def caldav_url(self):
        self.far = start_recorder("127.0.0.2", None)
        self.addCleanup(self.far.server_close)
        self.addCleanup(self.far.shutdown)
        self.near = start_recorder("127.0.0.1", "http://127.0.0.2:%d/" % self.far.server_address[1])
        self.addCleanup(self.near.server_close)
        self.addCleanup(self.near.shutdown)
        return "http://127.0.0.1:%d/" % self.near.server_address[1]

    def test_redirect_to_another_host_refused(self):
        self.wait_log("refused: not the same scheme, host and port")
        self.wait_log("sync failed")
        self.assertTrue(any(p == "/.well-known/caldav" for _, p, _ in self.near.hits), self.near.hits)
        time.sleep(1.5)
        self.assertEqual(self.far.hits, [], "untild followed the redirect to another host")
        # the recorder on 127.0.0.2 does record what reaches it
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen("http://127.0.0.2:%d/probe" % self.far.server_address[1], timeout=5)
        self.assertEqual(cm.exception.code, 404)
        cm.exception.close()
        self.assertEqual(len(self.far.hits), 1)


class _Rewriter(http.server.BaseHTTPRequestHandler):
    """Forwards every request to Radicale and passes each 207 answer
    through server.rewrite(command, request body, answer) -> answer;
    records (command, path, request body)."""
    protocol_version = "HTTP/1.1"
    HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "te", "upgrade"}

    def _any(self):
        import http.client
        srv = self.server
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        srv.log.append((self.command, self.path, body or b""))
        hdrs = {k: v for k, v in self.headers.items() if k.lower() not in self.HOP and k.lower() != "host"}
        c = http.client.HTTPConnection("127.0.0.1", srv.dav_port, timeout=20)
        try:
            c.request(self.command, self.path, body=body, headers=hdrs)
            r = c.getresponse()
            data = r.read()
            status, reason, rh = r.status, r.reason, r.getheaders()
        finally:
            c.close()
        if status == 207:
            data = srv.rewrite(self.command, body or b"", data)
        self.send_response(status, reason)
        for k, v in rh:
            if k.lower() not in self.HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_DELETE = do_POST = do_OPTIONS = _any
    do_PROPFIND = do_PROPPATCH = do_REPORT = do_MKCALENDAR = do_MKCOL = _any

    def log_message(self, *a):
        pass


LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa">'
          + b"".join(b'<!ENTITY %s "%s">' % (b"a" * (i + 2), b"&%s;" % (b"a" * (i + 1)) * 10) for i in range(9))
          + b']><multistatus xmlns="DAV:"><response><href>&aaaaaaaaaa;</href></response></multistatus>')


class DavXml(CalDAVBase):
    """WebDAV XML is read by namespace, not by prefix (issue 15): the same
    answers with DAV: under a "d:" prefix and a foreign-namespace href
    before every DAV:href are read right; a truncated answer and a
    billion-laughs answer are logged as malformed XML, the sync is retried
    and the daemon keeps working."""

    def caldav_url(self):
        self.rw = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Rewriter)
        self.rw.dav_port = self.dav.port
        self.rw.log = []
        self.rw.rewrite = lambda cmd, body, data: data
        threading.Thread(target=self.rw.serve_forever, daemon=True).start()
        self.addCleanup(self.rw.server_close)
        self.addCleanup(self.rw.shutdown)
        return "http://127.0.0.1:%d/" % self.rw.server_address[1]

    def put_invite(self, uid, summary):
        st, _, body = self.dav.put("/rep/work/%s.ics" % uid,
                                   vevent(uid, "20270301T100000Z", "20270301T110000Z", summary=summary,
                                          attendees=["jane@acme.com"]))
        self.assertIn(st, (201, 204), body)

    def test_prefix_and_foreign_href(self):
        import re

        def reprefix(cmd, body, data):
            # Radicale writes DAV: as the default namespace: move it to d:
            data = data.replace(b'xmlns="DAV:"', b'xmlns:d="DAV:" xmlns:X="urn:x-evil"', 1)
            data = re.sub(rb"<(/?)(?=[A-Za-z])(?![\w.-]+:)", rb"<\1d:", data)
            return data.replace(b"<d:href>", b"<X:href>/evil/x.ics</X:href><d:href>")
        self.rw.rewrite = reprefix
        self.put_invite("p1", "Prefixed talk")
        self.u.wait_for(lambda: self.notices("Prefixed talk"), timeout=15, what="flag through d: answers")
        self.assertEqual(flagged_for(self.u, "jane@acme.com"), 1)
        self.assertIn(b'<d:multistatus xmlns:d="DAV:" xmlns:X="urn:x-evil"><X:href>/evil/x.ics</X:href>'
                      b"<d:href>/</d:href></d:multistatus>",
                      reprefix("", b"", b'<multistatus xmlns="DAV:"><href>/</href></multistatus>'))
        self.assertFalse([r for r in self.rw.log if b"/evil/" in r[2] or "/evil/" in r[1]], self.rw.log)
        self.assertTrue([r for r in self.rw.log if b"calendar-multiget" in r[2] and b"/rep/work/p1.ics" in r[2]],
                        self.rw.log)
        self.assertNotIn("malformed XML", self.u.logtext())
        self.assertNotIn("sync failed", self.u.logtext())

    def test_malformed_and_hostile_answers_logged_and_retried(self):
        bad = [lambda data: data[:len(data) // 2], lambda data: LAUGHS]

        def hostile(cmd, body, data):
            if cmd == "REPORT" and b"sync-collection" in body and bad:
                return bad.pop(0)(data)
            return data
        self.rw.rewrite = hostile
        self.put_invite("h1", "Hostile talk")
        url = "http://127.0.0.1:%d/rep/" % self.rw.server_address[1]
        self.wait_log("caldav: malformed XML from " + url)
        self.wait_log("DOCTYPE refused")
        self.u.wait_for(lambda: self.notices("Hostile talk"), timeout=30, what="flag after the bad answers")
        self.assertEqual(bad, [])
        log = self.u.logtext()
        self.assertRegex(log, r"caldav: malformed XML from %s\S+: line \d+: " % re.escape(url))
        self.assertGreaterEqual(log.count("sync failed"), 2)
        self.assertNotIn("aaaaaaaaaaaaaaaaaaaa", log)
        self.assertEqual(self.u.ctl("window", "list").returncode, 0)   # the loop still answers
        self.assertEqual(flagged_for(self.u, "jane@acme.com"), 1)


def first_pem(text):
    begin = text.index("-----BEGIN CERTIFICATE-----")
    end = text.index("-----END CERTIFICATE-----", begin)
    return text[begin:end + len("-----END CERTIFICATE-----")]


class TlsCaBundle(CalDAVBase):
    """tls_ca adds to the system trust: the CAINFO bundle in state_dir is
    the system bundle plus tls_ca (0600); the watcher still works."""
    caldav_extra = "tls_ca = {dir}/extra-ca.pem\n"
    SYSTEM = "/etc/ssl/certs/ca-certificates.crt"

    def before_start(self):
        cert, _ = make_self_signed(self.u.dir, cn="ca.example", name="extra-ca")
        self.assertEqual(cert, os.path.join(self.u.dir, "extra-ca.pem"))

    def test_bundle_is_system_plus_tls_ca(self):
        put_st = self.dav.put("/rep/work/t1.ics", vevent("t1", "20270301T100000Z", "20270301T110000Z",
                                                              summary="Bundle talk",
                                                              attendees=["jane@acme.com"]))[0]
        self.assertIn(put_st, (201, 204))
        self.u.wait_for(lambda: self.notices("Bundle talk"), timeout=15, what="flag with tls_ca set")
        bundle = os.path.join(self.u.dir, "state", "caldav-ca.%s.pem" % REP)
        st = os.stat(bundle)
        self.assertEqual(st.st_mode & 0o777, 0o600)
        with open(bundle) as f:
            text = f.read()
        with open(os.path.join(self.u.dir, "extra-ca.pem")) as f:
            self.assertIn(first_pem(f.read()), text)
        if os.path.exists(self.SYSTEM):
            with open(self.SYSTEM) as f:
                self.assertIn(first_pem(f.read()), text)
            self.assertGreater(text.count("BEGIN CERTIFICATE"), 1)


if __name__ == "__main__":
    unittest.main()


class _Truncator(http.server.BaseHTTPRequestHandler):
    """Forwards every request to Radicale unchanged, except the first
    sync-collection answer with two or more events: RFC 6578 section 3.6
    truncation (first event kept, the rest replaced by a 507 response for
    the request-URI). Its sync-token is the one the client sent, so the
    continuation must bring the dropped events again."""
    protocol_version = "HTTP/1.1"
    HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "te", "upgrade"}

    def _any(self):
        import http.client
        import re
        srv = self.server
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        is_sync = self.command == "REPORT" and body and b"sync-collection" in body
        if is_sync:
            m = re.search(rb"<(?:\w+:)?sync-token[^>]*>(.*?)</(?:\w+:)?sync-token>|<(?:\w+:)?sync-token\s*/>",
                          body, re.S)
            sent = (m.group(1) or b"").strip() if m else b""
            srv.held.wait(20)   # the test holds REPORTs while it stores events
        hdrs = {k: v for k, v in self.headers.items() if k.lower() not in self.HOP and k.lower() != "host"}
        c = http.client.HTTPConnection("127.0.0.1", srv.dav_port, timeout=20)
        try:
            c.request(self.command, self.path, body=body, headers=hdrs)
            r = c.getresponse()
            data = r.read()
            status, reason, rh = r.status, r.reason, r.getheaders()
        finally:
            c.close()
        truncated = False
        if is_sync and status == 207 and not srv.done:
            rx = re.compile(rb"<((?:\w+:)?)response\b[^>]*>.*?</\1response>", re.S)
            events = [m for m in rx.finditer(data) if re.search(rb"<(?:\w+:)?href>[^<]*\.ics</", m.group(0))]
            if len(events) >= 2:
                p = events[0].group(1)
                extra = (b"<%sresponse><%shref>%s</%shref><%sstatus>HTTP/1.1 507 Insufficient Storage"
                         b"</%sstatus></%sresponse>" % (p, p, self.path.encode(), p, p, p, p))
                out, last = [], 0
                for i, ev in enumerate(events):
                    out.append(data[last:ev.start()])
                    if i == 0:
                        out.append(ev.group(0) + extra)
                    last = ev.end()
                out.append(data[last:])
                data = b"".join(out)
                data, k = re.subn(rb"(<((?:\w+:)?)sync-token>).*?(</\2sync-token>)",
                                  lambda mm: mm.group(1) + sent + mm.group(3), data, flags=re.S)
                assert k == 1, data
                srv.done = truncated = True
                srv.dropped = len(events) - 1
        srv.log.append((self.command, self.path, sent if is_sync else None, truncated))
        self.send_response(status, reason)
        for k, v in rh:
            if k.lower() not in self.HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_DELETE = do_POST = do_OPTIONS = _any
    do_PROPFIND = do_PROPPATCH = do_REPORT = do_MKCALENDAR = do_MKCOL = _any

    def log_message(self, *a):
        pass


class TruncatedSync(CalDAVBase):
    """RFC 6578 section 3.6: a sync-collection answer truncated with a 507
    for the request-URI; the watcher asks again with the returned token and
    flags every invitation exactly once."""

    def caldav_url(self):
        self.tp = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Truncator)
        self.tp.dav_port = self.dav.port
        self.tp.log, self.tp.done, self.tp.dropped = [], False, 0
        self.tp.held = threading.Event()
        self.tp.held.set()
        threading.Thread(target=self.tp.serve_forever, daemon=True).start()
        self.addCleanup(self.tp.server_close)
        self.addCleanup(self.tp.shutdown)
        self.addCleanup(self.tp.held.set)
        return "http://127.0.0.1:%d/" % self.tp.server_address[1]

    def put_invite(self, uid, summary):
        st, _, body = self.dav.put("/rep/work/%s.ics" % uid,
                                   vevent(uid, "20270301T100000Z", "20270301T110000Z", summary=summary,
                                          attendees=["jane@acme.com"]))
        self.assertIn(st, (201, 204), body)

    def check_once(self, summaries, sent_token):
        for s in summaries:
            self.u.wait_for(lambda s=s: self.notices(s), timeout=15, what="flag for %s" % s)
        time.sleep(2.5)   # more polls: nothing repeated
        for s in summaries:
            self.assertEqual(len(self.notices(s)), 1, s)
        self.assertEqual(flagged_for(self.u, "jane@acme.com"), len(summaries))
        log = self.tp.log
        self.assertTrue(self.tp.done, log)
        self.assertEqual(self.tp.dropped, len(summaries) - 1)
        i = [k for k, r in enumerate(log) if r[3]][0]
        self.assertEqual(log[i][:3], ("REPORT", "/rep/work/", sent_token))
        # the continuation: at once (no discovery PROPFIND of a new poll in
        # between), the same calendar, with the token of the truncated answer
        self.assertGreater(len(log), i + 1, log)
        self.assertEqual(log[i + 1], ("REPORT", "/rep/work/", sent_token, False))
        self.assertGreaterEqual(len([r for r in log if r[2] is not None]), 2)
        self.assertNotIn("sync failed", self.u.logtext())

    def test_truncated_incremental_sync_asks_again(self):
        self.u.wait_for(lambda: "S\t/rep/work/\t" in (caldav_state(self.u) or ""), timeout=15,
                        what="first sync token stored")
        token = [l for l in caldav_state(self.u).splitlines() if l.startswith("S\t/rep/work/\t")][0]
        token = token.split("\t", 2)[2].encode()
        self.tp.held.clear()   # both events land in one sync
        try:
            self.put_invite("t1", "Truncated one")
            self.put_invite("t2", "Truncated two")
        finally:
            self.tp.held.set()
        self.check_once(["Truncated one", "Truncated two"], token)

    def test_truncated_initial_sync_asks_again(self):
        self.check_once(["Initial one", "Initial two", "Initial three"], b"")

    def before_start(self):
        if self._testMethodName == "test_truncated_initial_sync_asks_again":
            for i, s in enumerate(["Initial one", "Initial two", "Initial three"]):
                self.put_invite("i%d" % i, s)


class _PutRecorder(http.server.BaseHTTPRequestHandler):
    """Forwards every request to Radicale unchanged and records each PUT
    body as it reached the server (Radicale re-serialises what it stores,
    so byte fidelity is checked on the wire)."""
    protocol_version = "HTTP/1.1"
    HOP = _Truncator.HOP

    def _any(self):
        import http.client
        srv = self.server
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        if self.command == "PUT":
            srv.puts.append((self.path, body))
        hdrs = {k: v for k, v in self.headers.items() if k.lower() not in self.HOP and k.lower() != "host"}
        c = http.client.HTTPConnection("127.0.0.1", srv.dav_port, timeout=20)
        try:
            c.request(self.command, self.path, body=body, headers=hdrs)
            r = c.getresponse()
            data = r.read()
            status, reason, rh = r.status, r.reason, r.getheaders()
        finally:
            c.close()
        self.send_response(status, reason)
        for k, v in rh:
            if k.lower() not in self.HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_DELETE = do_POST = do_OPTIONS = _any
    do_PROPFIND = do_PROPPATCH = do_REPORT = do_MKCALENDAR = do_MKCOL = do_MOVE = do_COPY = _any

    def log_message(self, *a):
        pass


def logical_lines(body):
    """iCalendar bytes split into logical lines, each with its folds and
    line ending exactly as sent."""
    import re
    return [l for l in re.split(rb"(?<=\n)(?![ \t])", body) if l]


def unfold_line(line):
    import re
    return re.sub(rb"\r?\n[ \t]", b"", line).rstrip(b"\r\n")


# An event as a rich client writes it: quoted CN with a comma, a line the
# client folded, VALUE=DURATION, a multi-valued FEATURE, CATEGORIES, X-
# and unknown properties, an alarm.
RICH = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example Corp//Rich Client 4.2//EN\r\n"
        "CALSCALE:GREGORIAN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20270101T000000Z\r\n"
        "DTSTART:20270901T100000Z\r\nDURATION;VALUE=DURATION:PT1H\r\n"
        "SUMMARY:Contract signing with a title long enough that the client folded i\r\n t for us\r\n"
        "ORGANIZER;CN=\"Rep, The\":mailto:rep@example.com\r\n"
        "ATTENDEE;CN=\"Doe, Jane\";ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=T\r\n"
        " RUE:mailto:jane@acme.com\r\n"
        "ATTENDEE;CN=Bob;RSVP=TRUE:mailto:bob@other.com\r\n"
        "CONFERENCE;VALUE=URI;FEATURE=AUDIO,VIDEO;LABEL=\"Room: 1\":https://meet.example.com/x\r\n"
        "CATEGORIES:Sales,Legal,Lease\r\n"
        "X-RICH-COLOR;X-P=\"a:b\":teal\r\n"
        "LOCATION:\r\n"
        "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER;VALUE=DURATION:-PT15M\r\nDESCRIPTION:Soon\r\n"
        "END:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


class ProxyFidelity(CalDAVBase):
    """Issue 17 items 4, 5, 3 and 8: the proxy changes the ATTENDEE lines
    that need SCHEDULE-AGENT=CLIENT and nothing else, says so by giving no
    ETag, knows the organizer in its other forms, and fails closed."""
    proxy = True

    def caldav_url(self):
        self.rec = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PutRecorder)
        self.rec.dav_port = self.dav.port
        self.rec.puts = []
        threading.Thread(target=self.rec.serve_forever, daemon=True).start()
        self.addCleanup(self.rec.server_close)
        self.addCleanup(self.rec.shutdown)
        return "http://127.0.0.1:%d/" % self.rec.server_address[1]

    def put(self, path, ics, headers=None):
        return self.dav.put(path, ics, headers=headers, port=self.pport)

    def forwarded(self, path):
        """The body of the last PUT of path (python-caldav sends a first
        one without credentials, answered 401)."""
        bodies = [b for p, b in self.rec.puts if p == path]
        self.assertTrue(bodies, self.rec.puts)
        self.assertEqual(len(set(bodies)), 1, bodies)
        return bodies[-1]

    def assert_only_attendee_changed(self, sent, got, who=b"jane@acme.com"):
        """got is sent with ;SCHEDULE-AGENT=CLIENT on who's ATTENDEE line;
        every other byte equal, the changed line folded at 75 octets with
        the client's line ending."""
        a, b = logical_lines(sent), logical_lines(got)
        self.assertEqual(len(a), len(b), got)
        changed = [(x, y) for x, y in zip(a, b) if x != y]
        self.assertEqual(len(changed), 1, changed)
        x, y = changed[0]
        self.assertIn(who, unfold_line(x))
        self.assertEqual(unfold_line(y), unfold_line(x).replace(b"ATTENDEE", b"ATTENDEE;SCHEDULE-AGENT=CLIENT", 1))
        eol = b"\r\n" if x.endswith(b"\r\n") else b"\n"
        for phys in y.split(eol)[:-1]:
            self.assertLessEqual(len(phys), 75, y)
            self.assertFalse(phys.endswith(b"\r"), y)
        self.assertTrue(y.endswith(eol))

    def test_python_caldav_put_changed_only_on_the_quiet_attendee(self):
        import caldav
        client = caldav.DAVClient(url="http://127.0.0.1:%d/rep/" % self.pport, username="rep",
                                  password="secret")
        sent = []   # the bytes python-caldav put on the wire (after its own LF -> CRLF)
        real_request = client.session.request

        def request(method, url, *a, **kw):
            if method == "PUT":
                body = kw.get("data")
                sent.append(body if isinstance(body, bytes) else body.encode("utf-8"))
            return real_request(method, url, *a, **kw)
        client.session.request = request
        cal = client.calendar(url="http://127.0.0.1:%d/rep/work/" % self.pport)
        ev = cal.save_event(RICH.format(uid="rich1"))
        self.assertEqual(len(set(sent)), 1)
        got = self.forwarded(str(caldav.lib.url.URL.objectify(ev.url).path))
        self.assert_only_attendee_changed(sent[0], got)
        self.assertEqual(len(self.u.spool_files()), 1)
        # the invitation held for later is the client's event too
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: len(self.sink.for_rcpt("jane@acme.com")) == 1, what="iMIP at window end")
        data = self.sink.for_rcpt("jane@acme.com")[0].data
        self.assertIn(b"FEATURE=AUDIO,VIDEO;LABEL=\"Room: 1\"", data)
        self.assertIn(b"CATEGORIES:Sales,Legal,Lease\r\n", data)
        jane = [unfold_line(l) for l in logical_lines(sent[0]) if b"jane@acme.com" in l][0]
        self.assertIn(jane + b"\r\n", unfold(data).encode())   # the client's line, unchanged
        self.assertIn(b"METHOD:REQUEST\r\n", data)
        self.assertNotIn(b"SCHEDULE-AGENT", data)

    def test_lf_line_endings_and_existing_parameter_kept(self):
        ics = RICH.format(uid="lf1").replace("\r\n", "\n").replace(
            "ATTENDEE;CN=Bob;", "ATTENDEE;CN=Bob;SCHEDULE-AGENT=SERVER;").replace(
            "mailto:bob@other.com", "mailto:bob@other.com\nATTENDEE;SCHEDULE-AGENT=SERVER;CN=Dee:"
            "mailto:dee@acme.com")
        self.u.ctl("window", "add", "dee@acme.com", "--until", "2027-08-01")
        st, _, body = self.put("/rep/work/lf1.ics", ics.encode())
        self.assertEqual(st, 201, body)
        got = self.forwarded("/rep/work/lf1.ics")
        a, b = logical_lines(ics.encode()), logical_lines(got)
        self.assertEqual(len(a), len(b))
        diff = [(x, y) for x, y in zip(a, b) if x != y]
        self.assertEqual(len(diff), 2, diff)   # jane's and dee's lines only
        self.assertNotIn(b"\r", got)
        self.assertEqual(unfold_line(diff[1][1]), b"ATTENDEE;SCHEDULE-AGENT=CLIENT;CN=Dee:mailto:dee@acme.com")
        self.assertIn(b"ATTENDEE;CN=Bob;SCHEDULE-AGENT=SERVER;RSVP=TRUE:mailto:bob@other.com\n", got)

    def test_no_etag_when_the_body_was_changed(self):
        st, h, _ = self.put("/rep/work/e1.ics", RICH.format(uid="e1"))
        self.assertEqual(st, 201)
        self.assertNotIn("etag", h, "RFC 7231 4.3.4: the stored body is not the one the client sent")
        st, h, data = self.dav.get("/rep/work/e1.ics", port=self.pport)
        self.assertEqual(st, 200)
        self.assertIn("etag", h)
        self.assertIn(b"SCHEDULE-AGENT=CLIENT", data)
        # unchanged body: the server's ETag passes through
        st, h, _ = self.put("/rep/work/e2.ics", vevent("e2", "20270901T100000Z", "20270901T110000Z",
                                                       attendees=["bob@other.com"]))
        self.assertEqual(st, 201)
        self.assertIn("etag", h)

    def organizer_case(self, uid, organizer):
        ics = vevent(uid, "20270901T100000Z", "20270901T110000Z", organizer=None,
                     attendees=["jane@acme.com"], extra=organizer)
        st, _, body = self.put("/rep/work/%s.ics" % uid, ics)
        self.assertEqual(st, 201, body)
        return b"SCHEDULE-AGENT=CLIENT" in self.forwarded("/rep/work/%s.ics" % uid)

    def test_organizer_by_email_parameter_or_principal(self):
        self.assertTrue(self.organizer_case("o1", "ORGANIZER;CN=Rep;EMAIL=rep@example.com:/principals/rep/"))
        self.assertTrue(self.organizer_case("o2", "ORGANIZER;CN=Rep:/rep/"))   # Radicale's principal of "rep"
        self.assertTrue(self.organizer_case(
            "o3", "ORGANIZER;CN=Rep:http://127.0.0.1:%d/principals/users/rep/" % self.dav.port))
        self.assertFalse(self.organizer_case("o4", "ORGANIZER;CN=Boss:mailto:boss@example.com"))
        self.assertFalse(self.organizer_case("o5", "ORGANIZER;CN=Boss:/principals/boss/"))
        self.assertEqual(len(self.u.spool_files()), 3)

    def test_unknown_properties_still_mark_the_quiet_attendee(self):
        ics = vevent("u1", "20270901T100000Z", "20270901T110000Z", attendees=["jane@acme.com"],
                     extra="FOO:bar\r\nX-ODD;X-P=\"a:b\":c\r\nLOCATION:\r\nGEO:abc")
        st, _, body = self.put("/rep/work/u1.ics", ics)
        self.assertEqual(st, 201, body)
        self.assertIn(b"SCHEDULE-AGENT=CLIENT", self.forwarded("/rep/work/u1.ics"))
        self.assertEqual(len(self.u.spool_files()), 1)
        self.assertIn("quiet attendees marked all the same", self.u.logtext())

    def test_unreadable_object_refused_not_forwarded(self):
        bad = [
            # an ATTENDEE line that cannot be read (unterminated quote)
            vevent("r1", "20270901T100000Z", "20270901T110000Z", attendees=["jane@acme.com"]).replace(
                "ATTENDEE;CN=jane", "ATTENDEE;CN=\"jane"),
            # a VEVENT that never ends
            vevent("r2", "20270901T100000Z", "20270901T110000Z", attendees=["jane@acme.com"]).replace(
                "END:VEVENT\r\n", ""),
        ]
        for i, ics in enumerate(bad):
            st, h, body = self.put("/rep/work/r%d.ics" % i, ics)
            self.assertEqual(st, 403, body)
            self.assertIn(b"valid-calendar-data", body)
            self.assertIn(b"cannot be read", body)
            self.assertEqual(self.dav.get("/rep/work/r%d.ics" % i)[0], 404)
        self.assertEqual([p for p, _ in self.rec.puts], [])
        self.assertEqual(self.u.spool_files(), [])
        self.assertIn("refused", self.u.logtext())

    def test_oversized_calendar_with_attendees_refused_not_forwarded(self):
        # Over [smtp] max_calendar_part (1 MiB by default): not parsed (its
        # cost is about 30 times the size, in time and memory), and with
        # attendees it is refused, never passed on unchecked; without
        # attendees there is nobody to protect and it is stored.
        desc = "DESCRIPTION:" + "x" * 70 + "\r\n"
        big = vevent("big1", "20270901T100000Z", "20270901T110000Z", attendees=["jane@acme.com"])
        big = big.replace("END:VEVENT", desc.rstrip("\r\n") + "\r\n" + (" " + "y" * 70 + "\r\n") * 15500
                          + "END:VEVENT")
        self.assertGreater(len(big), 1024 * 1024)
        st, h, body = self.put("/rep/work/big1.ics", big)
        self.assertEqual(st, 403, body)
        self.assertIn(b"max_calendar_part", body)
        self.assertEqual(self.dav.get("/rep/work/big1.ics")[0], 404)
        self.assertEqual([p for p, _ in self.rec.puts], [])
        self.assertIn("over [smtp] max_calendar_part", self.u.logtext())
        alone = big.replace("ATTENDEE", "X-NOT-AN-ATTENDEE").replace("ORGANIZER", "X-NOT-ORGANIZER")
        st, h, body = self.put("/rep/work/big2.ics", alone)
        self.assertIn(st, (201, 204), body)


class ProxyMaxBody(CalDAVBase):
    """Issue 18: the proxy's request-body limit is [caldav] proxy_max_body
    (was a fixed 32 MiB): a larger body is answered 413, logged, and not
    forwarded; one under it goes through."""
    proxy = True
    caldav_extra = "proxy_max_body = 64k\n"

    def test_body_over_proxy_max_body_refused_413(self):
        desc = "DESCRIPTION:" + "x" * 70 + "\r\n"
        ics = vevent("mb1", "20270901T100000Z", "20270901T110000Z")
        big = ics.replace("END:VEVENT", desc + (" " + "y" * 70 + "\r\n") * 1000 + "END:VEVENT")
        self.assertGreater(len(big), 64 * 1024)
        st, h, body = self.dav.put("/rep/work/mb1.ics", big, port=self.pport)
        self.assertEqual(st, 413, body)
        self.assertIn(b"proxy_max_body", body)
        self.assertEqual(self.dav.get("/rep/work/mb1.ics")[0], 404)
        self.assertIn("over [caldav] proxy_max_body (65536 bytes) refused", self.u.logtext())
        st, h, body = self.dav.put("/rep/work/mb2.ics", ics, port=self.pport)
        self.assertIn(st, (201, 204), body)
        self.assertEqual(self.dav.get("/rep/work/mb2.ics")[0], 200)


class ProxyManyQuiet(CalDAVBase):
    """Issue 18: the proxy held at most 64 quiet attendees of an event and
    dropped the rest silently, though their lines were marked
    SCHEDULE-AGENT=CLIENT: the server did not invite them and untild never
    did. Every quiet attendee is held, each address once."""
    proxy = True
    windows = WINDOWS + '@quiet.example 2027-07-01 reason="All quiet"\n'

    def test_hundred_quiet_attendees_all_held_and_invited(self):
        people = ["p%d@quiet.example" % i for i in range(100)]
        ics = vevent("many1", "20270901T100000Z", "20270901T110000Z", attendees=people + ["p7@quiet.example"])
        st, h, body = self.dav.put("/rep/work/many1.ics", ics, port=self.pport)
        self.assertEqual(st, 201, body)
        stored = unfold(self.dav.get("/rep/work/many1.ics")[2])
        marked = [l for l in stored.splitlines() if l.startswith("ATTENDEE") and "SCHEDULE-AGENT=CLIENT" in l]
        self.assertEqual(len(marked), 101)
        self.u.set_clock("2027-07-01T00:00:01Z")
        got = lambda: {r for m in self.sink.messages for r in m.rcpts if r.endswith("@quiet.example")}
        self.u.wait_for(lambda: got() == set(people), what="the invitation to all 100")
        self.assertEqual(sum(len([r for r in m.rcpts if r == "p7@quiet.example"]) for m in self.sink.messages), 1)


class ProxyMoves(CalDAVBase):
    """Issue 17 item 6: held invitations follow the event (its UID), not
    one href: a move as add-then-delete, a WebDAV MOVE (Destination names
    the proxy), and deleting a whole calendar."""
    proxy = True

    def put(self, path, ics, **kw):
        return self.dav.put(path, ics, port=self.pport, **kw)

    def invite(self, uid):
        return vevent(uid, "20270901T100000Z", "20270901T110000Z", summary="Moving " + uid,
                      attendees=["jane@acme.com"])

    def at_window_end(self):
        self.u.set_clock("2027-07-01T00:00:01Z")

    def test_move_as_add_then_delete_keeps_the_held_invitation(self):
        self.dav.mkcalendar("/rep/other/", "Other")
        self.assertEqual(self.put("/rep/work/m1.ics", self.invite("m1"))[0], 201)
        self.assertEqual(len(self.u.spool_files()), 1)
        # Thunderbird: add to the new calendar, then delete from the old one
        self.assertEqual(self.put("/rep/other/m1.ics", self.invite("m1"))[0], 201)
        st, _, _ = self.dav.delete("/rep/work/m1.ics", port=self.pport)
        self.assertIn(st, (200, 204))
        self.assertEqual(len(self.u.spool_files()), 1, "the event still exists: its invitation stays held")
        self.assertIn("is still at /rep/other/m1.ics", self.u.logtext())
        self.at_window_end()
        self.u.wait_for(lambda: len(self.sink.for_rcpt("jane@acme.com")) == 1, what="iMIP at window end")

    def test_webdav_move_rewrites_destination_and_is_followed(self):
        self.dav.mkcalendar("/rep/other/", "Other")
        self.assertEqual(self.put("/rep/work/m3.ics", self.invite("m3"))[0], 201)
        st, _, body = self.dav.request("MOVE", "/rep/work/m3.ics", headers={
            "Destination": "http://127.0.0.1:%d/rep/other/m3.ics" % self.pport}, port=self.pport)
        self.assertIn(st, (201, 204), body)
        self.assertEqual(self.dav.get("/rep/other/m3.ics")[0], 200)
        self.assertEqual(self.dav.get("/rep/work/m3.ics")[0], 404)
        self.assertEqual(len(self.u.spool_files()), 1)
        st, _, _ = self.dav.delete("/rep/other/m3.ics", port=self.pport)
        self.assertIn(st, (200, 204))
        self.assertEqual(self.u.spool_files(), [], "the DELETE at the new place cancels it")

    def test_deleting_a_calendar_drops_its_held_invitations(self):
        self.dav.mkcalendar("/rep/other/", "Other")
        self.assertEqual(self.put("/rep/other/c1.ics", self.invite("c1"))[0], 201)
        self.assertEqual(self.put("/rep/other/c2.ics", self.invite("c2"))[0], 201)
        self.assertEqual(self.put("/rep/work/c3.ics", self.invite("c3"))[0], 201)
        self.assertEqual(len(self.u.spool_files()), 3)
        st, _, _ = self.dav.delete("/rep/other/", port=self.pport)
        self.assertIn(st, (200, 204))
        self.assertEqual(len(self.u.spool_files()), 1, "c3 in another calendar stays held")
        self.at_window_end()
        self.u.wait_for(lambda: len(self.sink.for_rcpt("jane@acme.com")) == 1, what="c3 sent")
        time.sleep(1.5)
        sent = self.sink.for_rcpt("jane@acme.com")
        self.assertEqual(len(sent), 1)
        self.assertIn(b"UID:c3", sent[0].data)


class ProxyEdits(CalDAVBase):
    """Issue 17 item 9: an edit while quiet keeps the held invitation's id
    (the links in the rep's notice keep working) and sends no second
    "Held" notice; a change the rep should know (another quiet attendee)
    gives one "Updated" notice with the same links."""
    proxy = True

    def put(self, ics):
        st, _, body = self.dav.put("/rep/work/ed1.ics", ics, port=self.pport)
        self.assertIn(st, (201, 204), body)

    def held_ids(self):
        h = self.u.held_json()
        h = h.get("held", h) if isinstance(h, dict) else h
        return [e["id"] for e in h]

    def test_edits_keep_the_id_and_the_links(self):
        self.put(vevent("ed1", "20270901T100000Z", "20270901T110000Z", summary="Contract v1",
                        attendees=["jane@acme.com"]))
        self.u.wait_for(lambda: self.notices("Held"), what="held notice")
        ids = self.held_ids()
        self.assertEqual(len(ids), 1)
        hid = ids[0]
        self.assertIn(("release-%s@" % hid).encode(), self.notices("Held")[0].data)
        for seq in (1, 2):
            self.put(vevent("ed1", "20270901T100000Z", "20270901T110000Z", summary="Contract v%d" % (seq + 1),
                            attendees=["jane@acme.com"], sequence=seq))
            self.assertEqual(self.held_ids(), [hid])
        self.assertEqual(len(self.u.spool_files()), 1)
        self.u.ctl("window", "add", "dee@acme.com", "--until", "2027-08-01")
        self.put(vevent("ed1", "20270901T100000Z", "20270901T110000Z", summary="Contract v4",
                        attendees=["jane@acme.com", "dee@acme.com"], sequence=3))
        self.u.wait_for(lambda: self.notices("Updated"), what="updated notice")
        self.assertEqual(self.held_ids(), [hid])
        self.assertIn(("release-%s@" % hid).encode(), self.notices("Updated")[0].data)
        self.assertEqual(len(self.notices("Held: your invitation")), 1)
        self.assertEqual(len(self.notices("Updated")), 1)
        # the link from the first notice sends the newest version
        import smtplib
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20)
        self.addCleanup(s.close)
        s.sendmail(REP, ["release-%s@untild.invalid" % hid], message(to="release-%s@untild.invalid" % hid))
        self.u.wait_for(lambda: len(self.sink.for_rcpt("jane@acme.com")) == 1, what="released by the old link")
        self.assertIn(b"Contract v4", self.sink.for_rcpt("jane@acme.com")[0].data)
        self.u.wait_for(lambda: self.u.spool_files() == [], what="spool empty")


BIG = 40 << 20   # more than the 32 MiB the proxy used to buffer


class _BigServer(_PutRecorder):
    """Radicale pass-through, plus GET /big (40 MiB with Content-Length)
    and /big-chunked (the same, chunked)."""

    def _any(self):
        if self.command != "GET" or not self.path.startswith("/big"):
            return _PutRecorder._any(self)
        chunked = self.path.startswith("/big-chunked")
        self.send_response(200)
        self.send_header("Content-Type", "text/calendar")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(BIG))
        self.end_headers()
        block = bytes(range(256)) * 4096   # 1 MiB
        for _ in range(BIG // len(block)):
            if chunked:
                self.wfile.write(b"%x\r\n" % len(block) + block + b"\r\n")
            else:
                self.wfile.write(block)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    do_GET = _any


class ProxyLarge(CalDAVBase):
    """Issue 17 item 7: answers larger than 32 MiB reach a client that does
    not ask for gzip, streamed through bounded memory."""
    proxy = True

    def caldav_url(self):
        self.big = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BigServer)
        self.big.dav_port = self.dav.port
        self.big.puts = []
        threading.Thread(target=self.big.serve_forever, daemon=True).start()
        self.addCleanup(self.big.server_close)
        self.addCleanup(self.big.shutdown)
        return "http://127.0.0.1:%d/" % self.big.server_address[1]

    def fetch(self, path):
        import hashlib
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.pport, timeout=60)
        self.addCleanup(c.close)
        c.request("GET", path)
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        h, n = hashlib.sha256(), 0
        while True:
            b = r.read(1 << 20)
            if not b:
                break
            h.update(b)
            n += len(b)
        return n, h.hexdigest()

    def test_40_mib_answer_streamed(self):
        import hashlib
        want = hashlib.sha256(bytes(range(256)) * 4096 * (BIG // (1 << 20))).hexdigest()
        from harness import proc_status_kb, proc_has_asan
        before = proc_status_kb(self.u.proc.pid, "VmHWM")
        self.assertEqual(self.fetch("/big"), (BIG, want))
        self.assertEqual(self.fetch("/big-chunked"), (BIG, want))
        if not proc_has_asan(self.u.proc.pid):
            grew = proc_status_kb(self.u.proc.pid, "VmHWM") - before
            self.assertLess(grew, 16 * 1024, "the answer was buffered, not streamed (%d kB)" % grew)


class ProxyVdirsyncer(CalDAVBase):
    """Issue 17 item 5 with a real client: vdirsyncer uploads an event
    through the proxy; the answer has no ETag because untild changed the
    body (RFC 7231 4.3.4), so the next sync fetches the stored version
    instead of keeping its own copy for ever."""
    proxy = True

    def vdirsyncer(self, *args):
        import subprocess
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env["HOME"] = self.vd
        r = subprocess.run(["vdirsyncer", "-c", os.path.join(self.vd, "config")] + list(args),
                           input="y\n" * 4, capture_output=True, text=True, timeout=120, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def test_vdirsyncer_fetches_the_changed_event(self):
        import shutil
        import tempfile
        self.vd = tempfile.mkdtemp(prefix="vdirsyncer-e2e-")
        self.addCleanup(shutil.rmtree, self.vd, True)
        local = os.path.join(self.vd, "local")
        os.makedirs(local)
        with open(os.path.join(self.vd, "config"), "w") as f:
            f.write('[general]\nstatus_path = "%s/status/"\n\n[pair p]\na = "local"\nb = "remote"\n'
                    'collections = null\n\n[storage local]\ntype = "filesystem"\npath = "%s/"\n'
                    'fileext = ".ics"\n\n[storage remote]\ntype = "caldav"\n'
                    'url = "http://127.0.0.1:%d/rep/work/"\nusername = "rep"\npassword = "secret"\n'
                    % (self.vd, local, self.pport))
        with open(os.path.join(local, "vd1.ics"), "w", newline="") as f:
            f.write(vevent("vd1", "20270901T100000Z", "20270901T110000Z", summary="Synced talk",
                           attendees=["jane@acme.com"]))
        self.vdirsyncer("discover")
        self.vdirsyncer("sync")
        self.assertEqual(len(self.u.spool_files()), 1)
        st, _, stored = self.dav.get("/rep/work/vd1.ics")
        self.assertEqual(st, 200)
        self.assertIn("SCHEDULE-AGENT=CLIENT", unfold(stored))
        self.vdirsyncer("sync")
        with open(os.path.join(local, "vd1.ics")) as f:
            self.assertIn("SCHEDULE-AGENT=CLIENT", unfold(f.read()), "vdirsyncer kept its stale copy")
