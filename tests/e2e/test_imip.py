"""iMIP through the SMTP gate (issue 3): invitations held like mail to a
quiet attendee, whatever their MIME shape; a REPLY to the quiet
organizer's own invitation allowed; a CANCEL eats the held invitation; a
held invitation whose meeting has begun by release time is not sent (the
rep is told to reschedule); malformed calendar data is plain mail."""
import base64
import glob
import os
import sqlite3
import time

from harness import GateTest

REP = "rep@example.com"
JANE = "jane@acme.com"
NOW = "2027-01-10T10:00:00Z"
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "mime")


def ical(method, uid, dtstart="20270801T090000Z", organizer=REP, attendees=(JANE,), seq=0):
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//untild tests//EN", "METHOD:" + method,
             "BEGIN:VEVENT", "UID:" + uid, "SEQUENCE:%d" % seq, "DTSTAMP:20270110T100000Z",
             "DTSTART:" + dtstart, "DURATION:PT1H", "SUMMARY:Renewal review",
             "ORGANIZER;CN=Organizer:mailto:" + organizer]
    for a in attendees:
        # A long, folded ATTENDEE line, as real clients write them.
        lines.append("ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRU\r\n E;CN="
                     + a + ":mailto:" + a)
    if method == "REPLY":
        lines[-1] = lines[-1].replace("NEEDS-ACTION", "ACCEPTED")
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return ("\r\n".join(lines) + "\r\n").encode()


def headers(subject, frm=REP, to=JANE, mid="x"):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s.%d@example.com>\r\n"
            "MIME-Version: 1.0\r\n" % (frm, to, subject, mid, int(time.time() * 1e6))).encode()


def rfc6047(method, uid, subject="Invitation: Renewal review", **kw):
    """text/calendar; method=X inside multipart/alternative."""
    cal = ical(method, uid, **kw)
    return (headers(subject, to=kw.get("organizer", JANE) if method == "REPLY" else JANE)
            + b'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
            b"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYou are invited.\r\n\r\n"
            b"--alt\r\nContent-Type: text/calendar; charset=utf-8; method=" + method.encode()
            + b"\r\n\r\n" + cal + b"\r\n--alt--\r\n")


def google(method, uid, subject="Invitation: Renewal review", **kw):
    """application/ics attachment, base64, METHOD only inside the data."""
    cal = base64.encodebytes(ical(method, uid, **kw)).replace(b"\n", b"\r\n")
    return (headers(subject) + b'Content-Type: multipart/mixed; boundary="mix"\r\n\r\n'
            b"--mix\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(b"You have been invited.\r\n").replace(b"\n", b"\r\n")
            + b'\r\n--mix\r\nContent-Type: application/ics; name="invite.ics"\r\n'
            b'Content-Disposition: attachment; filename="invite.ics"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + cal + b"\r\n--mix--\r\n")


class Imip(GateTest):
    windows = ('jane@acme.com 2027-07-01 reason="Lease ends in July"\n'
               'sam@acme.com 2027-07-01 reason="Lease ends in July"\n'
               'jane.customer@client.example 2027-07-01 reason="seed messages"\n')

    def setUp(self):
        super().setUp()
        self.u.set_clock(NOW)

    def send(self, rcpts, msg):
        s = self.smtp()
        s.ehlo("client.example")
        code, text = s.docmd("MAIL FROM:<%s>" % REP)
        self.assertEqual(code, 250, text)
        for r in rcpts:
            code, text = s.docmd("RCPT TO:<%s>" % r)
            self.assertEqual(code, 250, text)
        code, text = s.data(msg)
        s.quit()
        return code, text.decode("utf-8", "replace")

    def customer_mail(self, addr=JANE):
        return [m for m in self.sink.for_rcpt(addr)]

    def audit(self, event):
        dbs = glob.glob(os.path.join(self.u.dir, "state", "*.db")) + \
            glob.glob(os.path.join(self.u.dir, "state", "*.sqlite*"))
        dbs = [d for d in dbs if not d.endswith(("-wal", "-shm", "-journal"))]
        self.assertTrue(dbs, os.listdir(os.path.join(self.u.dir, "state")))
        db = sqlite3.connect("file:%s?mode=ro" % dbs[0], uri=True, timeout=5)
        try:
            return db.execute("SELECT event, contact, msg_id, detail FROM audit WHERE event = ?",
                              (event,)).fetchall()
        finally:
            db.close()

    def test_request_rfc6047_held(self):
        code, text = self.send([JANE], rfc6047("REQUEST", "req-1@example.com"))
        self.assertEqual(code, 250)
        self.assertIn("Held until", text)
        self.assertEqual(len(self.u.spool_files()), 1)
        time.sleep(1)
        self.assertEqual(self.customer_mail(), [])

    def test_request_google_ics_held(self):
        code, text = self.send([JANE], google("REQUEST", "goog-1@google.com"))
        self.assertEqual(code, 250)
        self.assertIn("Held until", text)
        self.assertEqual(len(self.u.spool_files()), 1)

    def test_seed_messages_held(self):
        # google-both.eml re-sends google-ics.eml's invitation (same UID), so
        # it supersedes the held copy: five held, not six.
        for name in ["outlook-request.eml", "google-ics.eml", "google-both.eml", "qp-request.eml",
                     "octet-ics.eml", "berlin.eml"]:
            with open(os.path.join(DATA, name), "rb") as f:
                msg = f.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            code, text = self.send(["jane.customer@client.example"], msg)
            self.assertEqual(code, 250, name)
            self.assertIn("Held until", text, name)
        self.assertEqual(len(self.u.spool_files()), 5)
        self.assertEqual(len(self.audit("superseded")), 1)
        time.sleep(1)
        self.assertEqual(self.customer_mail("jane.customer@client.example"), [])

    def test_reply_to_quiet_organizer_allowed(self):
        msg = rfc6047("REPLY", "their-own@acme.com", subject="Accepted: Renewal review",
                      organizer=JANE, attendees=(REP,))
        code, text = self.send([JANE], msg)
        self.assertEqual(code, 250, text)
        self.assertNotIn("Held", text)
        self.u.wait_for(lambda: self.customer_mail(), what="reply delivered")
        self.assertEqual(self.customer_mail()[0].data, msg)
        self.assertEqual(self.u.spool_files(), [])

    def test_reply_google_shape_allowed(self):
        msg = google("REPLY", "their-own-2@acme.com", subject="Accepted", organizer=JANE,
                     attendees=(REP,))
        code, text = self.send([JANE], msg)
        self.assertEqual(code, 250, text)
        self.u.wait_for(lambda: self.customer_mail(), what="reply delivered")

    def test_plain_mail_to_quiet_organizer_still_held(self):
        # Only a calendar REPLY is the exception, not any mail to an organizer.
        msg = headers("Re: Renewal review") + b"Content-Type: text/plain\r\n\r\nHi\r\n"
        code, text = self.send([JANE], msg)
        self.assertIn("Held until", text)

    def cancel_case(self, build):
        uid = "cancel-me-%d@example.com" % time.time_ns()
        code, text = self.send([JANE], build("REQUEST", uid))
        self.assertIn("Held until", text)
        self.assertEqual(len(self.u.spool_files()), 1)
        hid = self.u.held_json()[0]["id"]
        code, text = self.send([JANE], build("CANCEL", uid, subject="Canceled: Renewal review"))
        self.assertEqual(code, 250, text)
        self.assertIn(hid, text)
        self.u.wait_for(lambda: self.u.spool_files() == [], what="held invitation removed")
        self.assertEqual(self.u.held_json(), [])
        rows = self.audit("cancelled")
        self.assertTrue(any(r[2] == hid for r in rows), rows)
        # Nothing reaches Jane, neither the CANCEL now nor the REQUEST later.
        self.u.set_clock("2027-07-02T00:00:00Z")
        time.sleep(1.5)
        self.assertEqual(self.customer_mail(), [])

    def test_cancel_removes_held_invitation(self):
        self.cancel_case(rfc6047)

    def test_cancel_google_shape(self):
        self.cancel_case(google)

    def test_cancel_that_fails_to_relay_keeps_held_invitation(self):
        # The CANCEL also goes to an allowed attendee; the upstream is down,
        # so the client hears 4xx and will retry: the held invitation must
        # still be there for that retry to cancel.
        uid = "cancel-fail-%d@example.com" % time.time_ns()
        bob = "bob@other.example"
        self.send([JANE], rfc6047("REQUEST", uid, attendees=(JANE, bob)))
        hid = self.u.held_json()[0]["id"]
        self.sink.stop()
        code, text = self.send([JANE, bob], rfc6047("CANCEL", uid, attendees=(JANE, bob)))
        self.assertGreaterEqual(code, 400, text)
        self.assertLess(code, 500, text)
        self.assertEqual([h["id"] for h in self.u.held_json()], [hid])
        self.assertEqual(self.audit("cancelled"), [])
        self.sink.restart()     # the retry now goes through and cancels it
        code, text = self.send([JANE, bob], rfc6047("CANCEL", uid, attendees=(JANE, bob)))
        self.assertEqual(code, 250, text)
        self.assertIn(hid, text)
        self.assertEqual(self.u.held_json(), [])
        self.assertEqual(len(self.sink.for_rcpt(bob)), 1)

    def test_cancel_other_uid_keeps_held(self):
        self.send([JANE], rfc6047("REQUEST", "keep-1@example.com"))
        self.send([JANE], rfc6047("CANCEL", "other-2@example.com"))
        self.assertEqual(len(self.u.held_json()), 2)   # the CANCEL itself is held too

    def test_update_to_new_attendee_keeps_held_invitation(self):
        # Outlook's "send updates only to added attendees": same UID, only
        # the new attendee in the envelope. Jane's held copy must survive.
        uid = "update-1@example.com"
        self.send([JANE], rfc6047("REQUEST", uid))
        self.assertEqual(len(self.u.held_json()), 1)
        code, text = self.send(["bob@other.com"], rfc6047("REQUEST", uid, seq=1,
                                                           attendees=(JANE, "bob@other.com")))
        self.assertEqual(code, 250, text)
        self.u.wait_for(lambda: self.sink.for_rcpt("bob@other.com"), what="update to bob")
        self.assertEqual(len(self.u.held_json()), 1, "Jane's held invitation was dropped")
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: self.customer_mail(), what="Jane's invitation released")

    def test_cancel_for_removed_attendee_keeps_others(self):
        # The invitation is held for Jane and Sam; the CANCEL goes to Jane
        # only (she was removed): Sam still gets his invitation later.
        uid = "partial-1@example.com"
        self.send([JANE, "sam@acme.com"], rfc6047("REQUEST", uid, attendees=(JANE, "sam@acme.com")))
        self.assertEqual(len(self.u.held_json()), 1)
        code, text = self.send([JANE], rfc6047("CANCEL", uid, seq=1))
        self.assertEqual(code, 250, text)
        h = self.u.held_json()
        self.assertEqual(len(h), 1, "the whole held invitation was dropped")
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: self.sink.for_rcpt("sam@acme.com"), what="Sam's invitation")
        self.assertEqual(self.sink.for_rcpt("sam@acme.com")[0].rcpts, ["sam@acme.com"])
        time.sleep(1)
        self.assertEqual(self.customer_mail(), [])

    def test_stale_invitation_not_sent_reschedule_notice(self):
        # The meeting (March) starts before the window opens (July).
        code, text = self.send([JANE], rfc6047("REQUEST", "stale-1@example.com",
                                               dtstart="20270301T090000Z"))
        self.assertIn("Held until", text)
        hid = self.u.held_json()[0]["id"]
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: self.u.spool_files() == [], what="stale invitation dropped")
        self.u.wait_for(lambda: [m for m in self.sink.for_rcpt(REP) if b"Reschedule" in m.data],
                        what="reschedule notice")
        n = [m for m in self.sink.for_rcpt(REP) if b"Reschedule" in m.data][0].data
        self.assertIn(hid.encode(), n)
        time.sleep(1.5)
        self.assertEqual(self.customer_mail(), [])

    def test_future_invitation_sent_at_release(self):
        msg = rfc6047("REQUEST", "future-1@example.com", dtstart="20270801T090000Z")
        self.send([JANE], msg)
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: self.customer_mail(), what="invitation released")
        self.assertEqual(self.customer_mail()[0].data, msg)

    def test_malformed_calendar_is_plain_mail(self):
        with open(os.path.join(DATA, "malformed.eml"), "rb") as f:
            msg = f.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        code, text = self.send(["jane.customer@client.example"], msg)
        self.assertEqual(code, 250)
        self.assertIn("Held until", text)
        code, text = self.send(["bob@other.com"], msg)
        self.assertEqual(code, 250, text)
        self.assertNotIn("Held", text)
        self.u.wait_for(lambda: self.sink.for_rcpt("bob@other.com"), what="allowed malformed")
        self.assertEqual(self.sink.for_rcpt("bob@other.com")[0].data, msg)
        self.assertIsNone(self.u.proc.poll(), "daemon died")
        # Still serving.
        code, text = self.send(["carol@other.com"], rfc6047("REQUEST", "after@example.com"))
        self.assertEqual(code, 250)
