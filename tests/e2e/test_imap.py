"""IMAP watcher (issue 8) against a real Dovecot on 127.0.0.1: Sent-folder
audit, customer re-engagement, notices by APPEND, windows from folders,
reconnects, UIDVALIDITY, bad passwords, TLS verification."""
import os
import re
import signal
import smtplib
import time
import unittest
from email.utils import formatdate

from harness import (Dovecot, Sink, Untild, imap_append, imap_keywords, imap_messages,
                     imap_quote, proc_has_asan, proc_status_kb)

REP = "rep@example.com"
PASSWORD = "s3cret-Pa55"
WINDOWS = ('jane@acme.com 2099-01-01 reason="Lease ends"\n'
           'carol@flagged.com 2099-01-01 action=flag reason="Flag only"\n')


def mail(to, subject="Hello", msgid=None, frm=REP, extra=""):
    msgid = msgid or "m%d.%d@example.com" % (os.getpid(), int(time.time() * 1e6))
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s>\r\n%s\r\nBody.\r\n"
            % (frm, to, subject, formatdate(), msgid, extra)).encode()


class ImapBase(unittest.TestCase):
    dovecot_tls = False
    imap_tls = False
    password = PASSWORD
    with_ca = False
    imap_extra = ""
    untild_extra = ""
    wait_synced = True
    cert_cn = "127.0.0.1"

    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.dv = Dovecot(tls=self.dovecot_tls, cert_cn=self.cert_cn)
        self.addCleanup(self.dv.cleanup)
        self.dv.add_user(REP, PASSWORD).start()
        self.u = Untild(self.sink, windows=WINDOWS, extra=self.untild_extra)
        self.addCleanup(self.u.cleanup)
        pw = os.path.join(self.u.dir, "imap.pass")
        with open(pw, "w") as f:
            f.write(self.password + "\n")
        os.chmod(pw, 0o600)
        section = self.dv.untild_section(REP, pw, tls=self.imap_tls,
                                         tls_ca=self.dv.cert if self.with_ca else None,
                                         extra=self.imap_extra)
        with open(self.u.conf, "a") as f:
            f.write(section)
        self.before_start()
        self.u.start()
        if self.wait_synced:
            self.wait_log("imap[%s]: synced" % REP)
        self.c = self.dv.client(REP)
        self.addCleanup(self._logout)

    def before_start(self):
        pass

    def _logout(self):
        try:
            self.c.logout()
        except Exception:   # the server may have been restarted under it
            pass

    def wait_log(self, text, count=1, timeout=15):
        self.u.wait_for(lambda: self.u.logtext().count(text) >= count, timeout=timeout,
                        what="log line %r x%d" % (text, count))

    def keywords(self, folder, uid):
        return imap_keywords(self.c, folder, uid)

    def wait_keyword(self, folder, uid, kw, timeout=15):
        self.u.wait_for(lambda: kw in self.keywords(folder, uid), timeout=timeout,
                        what="keyword %s on %s/%d" % (kw, folder, uid))

    def imap_notices(self):
        return [m for m in imap_messages(self.c, "INBOX")
                if b"X-Untild: notice" in m and b"not through untild" in m]

    def smtp(self):
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20)
        self.addCleanup(s.close)
        return s


class SentAudit(ImapBase):
    def test_too_early_message_is_flagged_with_keyword_and_notice(self):
        ok = imap_append(self.c, "Sent", mail("bob@other.com", "Fine"))
        bad = imap_append(self.c, "Sent", mail("Bob <bob@other.com>, Jane <Jane+x@ACME.com>",
                                               "Too early"))
        self.wait_keyword("Sent", bad, "$UntildTooEarly")
        self.assertNotIn("$UntildTooEarly", self.keywords("Sent", ok))
        # the rep's notice is APPENDed to INBOX, not mailed
        self.u.wait_for(lambda: len(self.imap_notices()) == 1, what="notice in INBOX")
        n = self.imap_notices()[0]
        self.assertIn(b"jane@acme.com", n)
        self.assertIn(b"Too early", n)
        self.assertNotIn(b"bob@other.com (quiet", n)
        self.assertEqual(self.sink.for_rcpt(REP), [], "notice was mailed instead of appended")
        r = self.u.ctl("report", check=0)
        self.assertIn("jane@acme.com", r.stdout)
        self.assertNotIn(PASSWORD, self.u.logtext())

    def test_quiet_recipient_after_the_128th_is_flagged(self):
        # Issue 18: the watcher read at most 128 recipients of a sent
        # message and dropped the rest silently: a quiet customer listed
        # 200th was never noticed.
        others = ", ".join("person%d@other.com" % i for i in range(199))
        bad = imap_append(self.c, "Sent", mail(others + ", jane@acme.com", "Newsletter"))
        self.wait_keyword("Sent", bad, "$UntildTooEarly")
        self.u.wait_for(lambda: len(self.imap_notices()) == 1, what="notice in INBOX")
        self.assertIn(b"jane@acme.com", self.imap_notices()[0])

    def test_sent_through_untild_is_not_flagged_again_and_held_copy_marked(self):
        s = self.smtp()
        flagged = mail("carol@flagged.com", "Via untild, flagged")
        s.sendmail(REP, ["carol@flagged.com"], flagged)
        self.sink.wait(1)
        held = mail("jane@acme.com", "Via untild, held")
        s.sendmail(REP, ["jane@acme.com"], held)
        self.u.wait_for(lambda: len(self.u.spool_files()) == 1, what="held")
        # the rep's client stores its Sent copies
        u1 = imap_append(self.c, "Sent", flagged)
        u2 = imap_append(self.c, "Sent", held)
        u3 = imap_append(self.c, "Sent", mail("carol@flagged.com", "From webmail"))
        self.wait_keyword("Sent", u3, "$UntildTooEarly")
        self.wait_keyword("Sent", u2, "$UntildHeld")
        self.assertEqual(self.keywords("Sent", u1), [], "gate-flagged copy flagged again")
        self.assertNotIn("$UntildTooEarly", self.keywords("Sent", u2))
        self.u.wait_for(lambda: len(self.imap_notices()) == 1, what="one notice")
        time.sleep(1.5)
        self.assertEqual(len(self.imap_notices()), 1)
        self.assertIn(b"From webmail", self.imap_notices()[0])

    def test_gate_notices_are_appended_not_mailed(self):
        s = self.smtp()
        s.sendmail(REP, ["jane@acme.com"], mail("jane@acme.com", "Held one"))
        self.u.wait_for(lambda: any(b"Held: your message" in m for m in imap_messages(self.c, "INBOX")),
                        what="held notice in INBOX")
        held = [m for m in imap_messages(self.c, "INBOX") if b"Held: your message" in m][0]
        self.assertRegex(held, rb"mailto:release-[0-9a-z]+@untild\.invalid")
        self.assertEqual(self.sink.for_rcpt(REP), [], "notice mailed as well")

    def test_restart_neither_misses_nor_repeats(self):
        u1 = imap_append(self.c, "Sent", mail("jane@acme.com", "Before restart"))
        self.wait_keyword("Sent", u1, "$UntildTooEarly")
        self.u.wait_for(lambda: len(self.imap_notices()) == 1, what="notice")
        self.u.stop()
        u2 = imap_append(self.c, "Sent", mail("jane@acme.com", "While down"))
        self.u.start()
        self.wait_keyword("Sent", u2, "$UntildTooEarly")
        self.u.wait_for(lambda: len(self.imap_notices()) == 2, what="second notice")
        time.sleep(2)
        self.assertEqual(len(self.imap_notices()), 2, "a notice was repeated")

    def test_uidvalidity_change_rescans_without_duplicates(self):
        msg = mail("jane@acme.com", "Recreated folder")
        u1 = imap_append(self.c, "Sent", msg)
        self.wait_keyword("Sent", u1, "$UntildTooEarly")
        self.u.wait_for(lambda: len(self.imap_notices()) == 1, what="notice")
        self.c.select("INBOX")
        typ, _ = self.c.delete("Sent")
        self.assertEqual(typ, "OK")
        self.c.create("Sent")
        time.sleep(1.1)   # a new UIDVALIDITY needs another second on Dovecot
        again = imap_append(self.c, "Sent", msg)   # same message again
        fresh = imap_append(self.c, "Sent", mail("jane@acme.com", "After recreate"))
        self.wait_log("UIDVALIDITY changed")
        self.wait_keyword("Sent", fresh, "$UntildTooEarly")
        self.wait_keyword("Sent", again, "$UntildTooEarly")
        self.u.wait_for(lambda: len(self.imap_notices()) == 2, what="notice for the new one")
        time.sleep(1.5)
        notices = self.imap_notices()
        self.assertEqual(len(notices), 2, "duplicate notice after UIDVALIDITY change")
        self.assertEqual(sum(b"Recreated folder" in n for n in notices), 1)


class SentAuditEventsFilter(ImapBase):
    """The watcher's notices go through [notify] events like the gate's
    (issue 16: one send path that always filters)."""
    untild_extra = "[notify]\nevents = held\n"

    def test_flagged_notice_left_out_by_events(self):
        bad = imap_append(self.c, "Sent", mail("Jane <jane@acme.com>", "Too early"))
        self.wait_keyword("Sent", bad, "$UntildTooEarly")
        self.wait_log('notice: "Flagged: you contacted a quiet customer" not sent ([notify] events)')
        self.assertEqual(self.imap_notices(), [])
        self.assertEqual(self.sink.for_rcpt(REP), [])
        r = self.u.ctl("report", check=0)
        self.assertIn("jane@acme.com", r.stdout)   # audited all the same


class Reengaged(ImapBase):
    def test_customer_mail_lets_the_reply_through(self):
        cid = "cust%d@acme.com" % os.getpid()
        imap_append(self.c, "INBOX", mail(REP, "Can we talk now?", msgid=cid,
                                          frm="Jane <jane@acme.com>"))
        self.wait_log("message %s recorded" % cid)
        s = self.smtp()
        reply = mail("jane@acme.com", "Re: Can we talk now?",
                     extra="In-Reply-To: <%s>\r\nReferences: <%s>\r\n" % (cid, cid))
        s.sendmail(REP, ["jane@acme.com"], reply)
        self.u.wait_for(lambda: self.sink.for_rcpt("jane@acme.com"), what="reply relayed")
        self.assertEqual(self.u.spool_files(), [])
        s.sendmail(REP, ["jane@acme.com"], mail("jane@acme.com", "Unrelated offer"))
        self.assertEqual(len(self.u.spool_files()), 1, "a fresh message was not held")
        self.assertEqual(len(self.sink.for_rcpt("jane@acme.com")), 1)

    def test_mail_from_someone_not_quiet_is_not_recorded(self):
        imap_append(self.c, "INBOX", mail(REP, "Hi", msgid="bob1@other.com", frm="bob@other.com"))
        marker = "cust-marker%d@acme.com" % os.getpid()
        imap_append(self.c, "INBOX", mail(REP, "Hi", msgid=marker, frm="jane@acme.com"))
        self.wait_log("message %s recorded" % marker)
        self.assertNotIn("bob1@other.com recorded", self.u.logtext())


class ReengagedEndsWindow(ImapBase):
    imap_extra = "customer_reply_reopens = end-window\n"

    def test_end_window_mode_ends_the_window(self):
        self.assertIn("jane@acme.com", self.u.ctl("window", "list", check=0).stdout)
        imap_append(self.c, "INBOX", mail(REP, "I am back", msgid="back1@acme.com",
                                          frm="jane@acme.com"))
        self.u.wait_for(lambda: "jane@acme.com" not in self.u.ctl("window", "list", check=0).stdout,
                        what="window ended")
        s = self.smtp()
        s.sendmail(REP, ["jane@acme.com"], mail("jane@acme.com", "Fresh"))
        self.u.wait_for(lambda: self.sink.for_rcpt("jane@acme.com"), what="relayed")


class ReengagedEndsManyWindows(ImapBase):
    imap_extra = "customer_reply_reopens = end-window\n"

    def test_more_windows_than_a_fixed_array_held(self):
        # 100 windows name jane (the watcher kept them in a 64-entry array)
        self.u.write_windows("".join("jane@acme.com 2027-07-01 reason=\"w%d\"\n" % i for i in range(100)),
                             name="many.windows")
        self.u.ctl("reload", check=0)
        self.assertEqual(self.u.ctl("window", "list", check=0).stdout.count("jane@acme.com"), 101)
        imap_append(self.c, "INBOX", mail(REP, "I am back", msgid="back2@acme.com",
                                          frm="jane@acme.com"))
        self.u.wait_for(lambda: "jane@acme.com" not in self.u.ctl("window", "list", check=0).stdout,
                        what="every window ended")
        self.assertEqual(self.u.sanitizer_errors(), [])


class FolderWindows(ImapBase):
    def windows(self):
        return self.u.ctl("window", "list", check=0).stdout

    def test_folder_creates_and_removal_ends_window(self):
        self.c.create(imap_quote("Contact later/2099-07-01"))
        self.c.create(imap_quote("Contact later/July 2098"))
        imap_append(self.c, "Contact later/2099-07-01",
                    mail(REP, "Budget freeze until July", frm="Dave <dave@initech.com>"))
        imap_append(self.c, "Contact later/July 2098",
                    mail(REP, "Later please", frm="erin@initrode.com",
                         extra="Reply-To: erin.private@gmail.com\r\n"))
        self.u.wait_for(lambda: "dave@initech.com" in self.windows()
                        and "erin.private@gmail.com" in self.windows(), what="folder windows")
        w = self.windows()
        self.assertIn("2099-07-01", w)
        self.assertIn("Budget freeze until July", w)
        self.assertIn("2098-07-01", w)
        # the gate holds mail to dave now
        s = self.smtp()
        s.sendmail(REP, ["dave@initech.com"], mail("dave@initech.com", "Offer"))
        self.assertEqual(len(self.u.spool_files()), 1)
        # windows from folders survive a reload
        self.u.proc.send_signal(signal.SIGHUP)
        self.wait_log("reload:")
        self.assertIn("dave@initech.com", self.windows())
        # moving the message out ends the window and releases the held mail
        self.c.select(imap_quote("Contact later/2099-07-01"))
        self.c.uid("COPY", "1:*", "INBOX")
        self.c.uid("STORE", "1:*", "+FLAGS", r"(\Deleted)")
        self.c.expunge()
        self.u.wait_for(lambda: "dave@initech.com" not in self.windows(), what="window ended")
        self.assertIn("erin@initrode.com", self.windows())
        self.u.wait_for(lambda: self.sink.for_rcpt("dave@initech.com"), what="held mail released")


class Reconnect(ImapBase):
    def test_server_restart_mid_idle_recovers(self):
        self._logout()
        self.dv.restart()
        self.c = self.dv.client(REP)
        self.wait_log("reconnecting in")
        self.wait_log("imap[%s]: synced" % REP, count=2, timeout=20)
        uid = imap_append(self.c, "Sent", mail("jane@acme.com", "After restart"))
        self.wait_keyword("Sent", uid, "$UntildTooEarly")


class WrongPassword(ImapBase):
    password = "not-the-password"
    wait_synced = False

    def test_clear_log_and_backoff_without_crash(self):
        self.wait_log("login as %s" % REP, count=3, timeout=20)
        log = self.u.logtext()
        self.assertIn("failed (wrong user name or password?)", log)
        self.assertIn("retrying in 1 s", log)
        self.assertIn("retrying in 2 s", log)
        self.assertNotIn(self.password, log)
        self.assertIsNone(self.u.proc.poll())
        # the gate is not stalled
        s = self.smtp()
        s.sendmail(REP, ["bob@other.com"], mail("bob@other.com"))
        self.u.wait_for(lambda: self.sink.for_rcpt("bob@other.com"), what="relayed")


class TlsUntrusted(ImapBase):
    dovecot_tls = True
    imap_tls = True
    wait_synced = False

    def test_self_signed_refused(self):
        self.wait_log("untrusted server certificate")
        self.assertNotIn("synced", self.u.logtext())
        # untild's (TLS) connection never logged in: the only login is the
        # test's own plain-IMAP client
        tls_logins = [l for l in self.dv.logtext().splitlines()
                      if "Login: user=<%s>" % REP in l and ", TLS," in l]
        self.assertEqual(tls_logins, [])
        # the back-off line follows the refusal (logged a moment later)
        self.wait_log("retrying in")
        self.assertIsNone(self.u.proc.poll())


class TlsWrongName(ImapBase):
    dovecot_tls = True
    imap_tls = True
    with_ca = True                      # trusted, but issued for another name
    cert_cn = "imap.example.net"
    wait_synced = False

    def test_mismatched_name_refused(self):
        self.wait_log("does not match the host name 127.0.0.1")
        self.assertNotIn("synced", self.u.logtext())


class TlsWithCa(ImapBase):
    dovecot_tls = True
    imap_tls = True
    with_ca = True

    def test_tls_ca_accepts_and_works(self):
        self.assertIn("(TLS verified)", self.u.logtext())
        uid = imap_append(self.c, "Sent", mail("jane@acme.com", "Over TLS"))
        self.wait_keyword("Sent", uid, "$UntildTooEarly")


def held_list(u):
    h = u.held_json()
    return h.get("held", h) if isinstance(h, dict) else h


def report_flagged(u, contact):
    import json
    r = json.loads(u.ctl("--json", "report", "--since", "3650", check=0).stdout)
    return sum(row["flagged"] for row in r["by_contact"] if row["id"] == contact)


class GateHandledAfterRelease(ImapBase):
    """The Sent copy of a message the gate held is not flagged, also when it
    is first seen after the message was released by hand or discarded
    (the window still active, the spool entry gone)."""

    def hold_one(self, subject):
        s = self.smtp()
        msg = mail("jane@acme.com", subject)
        s.sendmail(REP, ["jane@acme.com"], msg)
        self.u.wait_for(lambda: len(held_list(self.u)) == 1, what="held")
        return msg, held_list(self.u)[0]["id"]

    def test_released_and_discarded_copies_not_flagged(self):
        released, hid = self.hold_one("Held then released")
        self.u.ctl("held", "release", hid, "--reason", "urgent", check=0)
        self.u.wait_for(lambda: self.sink.for_rcpt("jane@acme.com"), what="released by hand")
        self.u.wait_for(lambda: held_list(self.u) == [], what="spool entry gone")
        discarded, hid2 = self.hold_one("Held then discarded")
        self.u.ctl("held", "discard", hid2, check=0)
        self.u.wait_for(lambda: held_list(self.u) == [], what="discarded")
        # the window is still active: a fresh message to jane is too early
        self.assertEqual(self.u.ctl("check", "jane@acme.com").returncode, 3)
        u1 = imap_append(self.c, "Sent", released)
        u2 = imap_append(self.c, "Sent", discarded)
        marker = imap_append(self.c, "Sent", mail("jane@acme.com", "Webmail marker"))
        self.wait_keyword("Sent", marker, "$UntildTooEarly")
        self.assertNotIn("$UntildTooEarly", self.keywords("Sent", u1), "released copy flagged")
        self.assertNotIn("$UntildTooEarly", self.keywords("Sent", u2), "discarded copy flagged")
        self.u.wait_for(lambda: len(self.imap_notices()) == 1, what="the marker's notice")
        time.sleep(1.5)
        notices = self.imap_notices()
        self.assertEqual(len(notices), 1)
        self.assertIn(b"Webmail marker", notices[0])
        self.assertEqual(report_flagged(self.u, "jane@acme.com"), 1)


class HugeSentMessage(ImapBase):
    def test_20mb_message_fetches_bounded_and_is_audited(self):
        pid = self.u.proc.pid
        before = proc_status_kb(pid, "VmRSS")
        body = (b"y" * 76 + b"\r\n") * (20 * 1024 * 1024 // 78 + 1)
        head = mail("jane@acme.com", "Huge attachment").split(b"\r\n\r\n", 1)[0]
        big = head + b"\r\n\r\n" + body
        self.assertGreater(len(big), 20 * 1024 * 1024)
        uid = imap_append(self.c, "Sent", big)
        self.wait_keyword("Sent", uid, "$UntildTooEarly", timeout=60)
        self.u.wait_for(lambda: len(self.imap_notices()) == 1, what="notice")
        self.assertIn(b"Huge attachment", self.imap_notices()[0])
        self.assertEqual(report_flagged(self.u, "jane@acme.com"), 1)
        hwm = proc_status_kb(pid, "VmHWM")
        # only a bounded part of the header was fetched, never the 20 MB
        self.assertLess(hwm - before, 16 * 1024, "peak RSS grew by %d kB" % (hwm - before))
        if not proc_has_asan(pid):
            self.assertLess(hwm, 100 * 1024, "peak RSS %d kB" % hwm)


class ReloadAddsAndRemovesImap(unittest.TestCase):
    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.dv = Dovecot()
        self.addCleanup(self.dv.cleanup)
        self.dv.add_user(REP, PASSWORD).start()
        self.u = Untild(self.sink, windows=WINDOWS)
        self.addCleanup(self.u.cleanup)
        self.u.start()
        self.c = self.dv.client(REP)
        self.addCleanup(lambda: self.c.logout())

    def log_count(self, text):
        return self.u.logtext().count(text)

    def test_sighup_starts_and_stops_the_watcher(self):
        with open(self.u.conf) as f:
            base = f.read()
        pw = os.path.join(self.u.dir, "imap.pass")
        with open(pw, "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(pw, 0o600)
        self.assertNotIn("imap[", self.u.logtext())
        with open(self.u.conf, "a") as f:
            f.write(self.dv.untild_section(REP, pw))
        self.u.proc.send_signal(signal.SIGHUP)
        self.u.wait_for(lambda: "imap[%s]: synced" % REP in self.u.logtext(), timeout=15,
                        what="watcher started by the reload")
        uid = imap_append(self.c, "Sent", mail("jane@acme.com", "After reload"))
        self.u.wait_for(lambda: "$UntildTooEarly" in imap_keywords(self.c, "Sent", uid), timeout=15,
                        what="flagged after reload")
        self.assertEqual(report_flagged(self.u, "jane@acme.com"), 1)
        # an unrelated reload keeps the connection
        connected = self.log_count("imap[%s]: connected" % REP)
        reloads = self.log_count("reload:")
        self.u.proc.send_signal(signal.SIGHUP)
        self.u.wait_for(lambda: self.log_count("reload:") > reloads, what="second reload")
        time.sleep(1)
        self.assertEqual(self.log_count("imap[%s]: connected" % REP), connected)
        # the section removed: the watcher stops
        with open(self.u.conf, "w") as f:
            f.write(base)
        reloads = self.log_count("reload:")
        self.u.proc.send_signal(signal.SIGHUP)
        self.u.wait_for(lambda: self.log_count("reload:") > reloads, what="third reload")
        uid2 = imap_append(self.c, "Sent", mail("jane@acme.com", "After removal"))
        time.sleep(3)
        self.assertNotIn("$UntildTooEarly", imap_keywords(self.c, "Sent", uid2))
        self.assertEqual(report_flagged(self.u, "jane@acme.com"), 1)
        self.assertIsNone(self.u.proc.poll())


class ReloadChangesNoticeFolder(ImapBase):
    def test_reload_moves_notices_to_the_new_folder(self):
        typ, _ = self.c.create(imap_quote("Untild notices"))
        self.assertEqual(typ, "OK")
        s = self.smtp()
        s.sendmail(REP, ["jane@acme.com"], mail("jane@acme.com", "Before change"))
        self.u.wait_for(lambda: any(b"Before change" in m for m in imap_messages(self.c, "INBOX")),
                        what="first notice in INBOX")
        connected = self.u.logtext().count("imap[%s]: connected" % REP)
        with open(self.u.conf) as f:
            conf = f.read()
        self.assertNotIn("notice_folder", conf)
        with open(self.u.conf, "w") as f:
            f.write(conf.replace("poll_interval = 1\n", "poll_interval = 1\nnotice_folder = Untild notices\n", 1))
        self.u.proc.send_signal(signal.SIGHUP)
        # only notice_folder changed: the connection restarts with it
        self.wait_log("imap[%s]: connected" % REP, count=connected + 1)
        self.wait_log("imap[%s]: synced" % REP, count=2)
        s.sendmail(REP, ["jane@acme.com"], mail("jane@acme.com", "After change"))
        self.u.wait_for(lambda: any(b"After change" in m for m in imap_messages(self.c, "Untild notices")),
                        what="notice in the new folder")
        self.assertFalse(any(b"After change" in m for m in imap_messages(self.c, "INBOX")))
        self.assertEqual(len([m for m in imap_messages(self.c, "INBOX") if b"Held: your message" in m]), 1)
        self.assertEqual(self.sink.for_rcpt(REP), [], "notice mailed instead of appended")


if __name__ == "__main__":
    unittest.main()


def mutf7(name):
    """UTF-8 -> IMAP modified UTF-7, as a client must write folder names
    (imaplib leaves that to its caller)."""
    import base64
    out, run = [], ""

    def flush():
        nonlocal run
        if run:
            b = base64.b64encode(run.encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out.append("&" + b + "-")
            run = ""
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run += ch
    flush()
    return "".join(out)


class FoldersInAnyLanguage(ImapBase):
    """Issue 17 items 10 and 11: folder names written in UTF-8 in
    untild.conf are found on the server (modified UTF-7), shown to the rep
    in UTF-8; dates in "Contact later" subfolder names in the forms people
    write; a name without a date is reported to the rep."""
    SENT = "Éléments envoyés"
    LATER = "Später"
    NOTICE = "Hinweise für mich"
    imap_extra = ("sent_folders = Éléments envoyés\nlater_folder = Später\n"
                  "notice_folder = Hinweise für mich\n")

    def before_start(self):
        c = self.dv.client(REP)
        try:
            for f in (self.SENT, self.NOTICE, self.LATER):
                typ, data = c.create(imap_quote(mutf7(f)))
                self.assertEqual(typ, "OK", data)
        finally:
            c.logout()

    def windows(self):
        return self.u.ctl("window", "list", check=0).stdout

    def notices(self, needle):
        return [m for m in imap_messages(self.c, mutf7(self.NOTICE)) if needle in m]

    def test_sent_folder_and_notice_folder_in_utf8(self):
        uid = imap_append(self.c, mutf7(self.SENT), mail("jane@acme.com", "Too early from the phone"))
        self.wait_keyword(mutf7(self.SENT), uid, "$UntildTooEarly")
        self.u.wait_for(lambda: self.notices(b"Too early from the phone"), what="notice in the notice folder")
        self.assertIn(self.SENT.encode(), self.notices(b"Too early from the phone")[0])
        self.assertNotIn("does not exist", self.u.logtext())

    def test_later_subfolders_dates_in_four_languages_and_quarters(self):
        cases = [("März 2099", "dave@initech.com", "2099-03-01"),
                 ("2099-07", "erin@initrode.com", "2099-07-01"),
                 ("juillet 2098", "fay@globex.com", "2098-07-01"),
                 ("Q4 2098", "gus@hooli.com", "2098-10-01")]
        for leaf, who, _ in cases + [("Someday", "hal@vandelay.com", None)]:
            folder = mutf7(self.LATER + "/" + leaf)
            typ, data = self.c.create(imap_quote(folder))
            self.assertEqual(typ, "OK", data)
            imap_append(self.c, folder, mail(REP, "Later: " + leaf, frm=who))
        self.u.wait_for(lambda: all(who in self.windows() for _, who, _ in cases), what="folder windows")
        w = self.windows()
        for leaf, who, day in cases:
            line = [l for l in w.splitlines() if who in l]
            self.assertTrue(line and day in line[0], (leaf, w))
        self.assertNotIn("hal@vandelay.com", w)
        self.u.wait_for(lambda: self.notices(b"did not understand"), what="not-understood notice")
        n = self.notices(b"did not understand")
        self.assertEqual(len(n), 1)
        self.assertIn("Später/Someday".encode(), n[0])
        self.assertIn(b"Q3 2027", n[0])
        self.assertIn('folder "Später/Someday": no date understood', self.u.logtext())
        # once per name: a later change to the folders does not repeat it
        imap_append(self.c, mutf7(self.LATER + "/Someday"), mail(REP, "Another", frm="ivy@vandelay.com"))
        self.wait_log('folder "Später/Someday": no date understood', count=2)
        self.assertEqual(len(self.notices(b"did not understand")), 1)


class MissingFolderWarns(ImapBase):
    imap_extra = "sent_folders = Gesendete Objekte\nlater_folder = Später\n"

    def test_configured_folder_missing_is_a_clear_warning(self):
        self.wait_log('folder "Gesendete Objekte" (sent_folders) does not exist on the server')
        self.wait_log('folder "Später" (later_folder) does not exist on the server')
        log = self.u.logtext()
        self.assertRegex(log, r'the server has: .*"INBOX"')
        time.sleep(2.5)   # more polls: said once per connection
        self.assertEqual(self.u.logtext().count('"Gesendete Objekte" (sent_folders) does not exist'), 1)


class MissingNoticeFolder(ImapBase):
    imap_extra = "notice_folder = Benachrichtigungen\n"

    def test_missing_notice_folder_is_a_clear_warning(self):
        uid = imap_append(self.c, "Sent", mail("jane@acme.com", "Too early"))
        self.wait_keyword("Sent", uid, "$UntildTooEarly")
        self.wait_log('folder "Benachrichtigungen" (notice_folder: notices go to the inbox) does not exist')
        # nothing lost: the inbox takes the notice
        self.u.wait_for(lambda: len(self.imap_notices()) == 1, what="notice in INBOX")
        self.assertIn(b"Too early", self.imap_notices()[0])
        uid2 = imap_append(self.c, "Sent", mail("jane@acme.com", "Too early again"))
        self.wait_keyword("Sent", uid2, "$UntildTooEarly")
        self.u.wait_for(lambda: len(self.imap_notices()) == 2, what="second notice in INBOX")
        self.assertEqual(self.u.logtext().count("(notice_folder: notices go to the inbox)"), 1)
