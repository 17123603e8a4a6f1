"""SMTP gate end to end (issue 3): real daemon, aiosmtpd sink upstream,
clients smtplib, swaks and raw sockets. Every test freezes the daemon's
clock; the sink records exact bytes, so "arrives unchanged" means byte
for byte."""
import json
import os
import pwd
import re
import smtplib
import socket
import subprocess
import tempfile
import time
import unittest

from harness import GateTest, Sink, UNTILCTL, Untild, message

REP = "rep@example.com"
NOW = "2027-01-10T10:00:00Z"           # a Sunday; windows below end in July


def swaks(port, *args, data=None):
    """Run swaks against untild; returns (exit status, transcript)."""
    cmd = ["swaks", "--server", "127.0.0.1", "--port", str(port), "--from", REP,
           "--helo", "client.example", "--timeout", "20"] + list(args)
    tmp = None
    if data is not None:
        fd, tmp = tempfile.mkstemp(prefix="swaks-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        cmd += ["--data", tmp]
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=60)
    finally:
        if tmp:
            os.unlink(tmp)
    return r.returncode, r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")


class RawClient:
    """A bare SMTP client on a socket: for pipelining and protocol abuse."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), 10)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """One (possibly multi-line) reply: (code, [lines])."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("connection closed; got %r" % lines)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), lines


class Base(GateTest):
    def setUp(self):
        super().setUp()
        self.u.set_clock(NOW)

    def raw(self):
        c = RawClient(self.u.port)
        self.addCleanup(c.close)
        code, _ = c.reply()
        self.assertEqual(code, 220)
        return c

    def transaction(self, rcpts, msg=None, mail_from="<%s>" % REP):
        """MAIL/RCPT/DATA with raw command text (so odd address forms reach
        untild as written). Returns (rcpt replies, data reply)."""
        s = self.smtp()
        s.ehlo("client.example")
        s.command_encoding = "utf-8"     # for SMTPUTF8 addresses, sent raw
        code, text = s.docmd("MAIL FROM:" + mail_from)
        self.assertEqual(code, 250, text)
        rr = [s.docmd("RCPT TO:" + r) for r in rcpts]
        if not any(c == 250 for c, _ in rr):
            return rr, None
        code, text = s.data(msg if msg is not None else message())
        s.quit()
        return rr, (code, text.decode("utf-8", "replace"))

    def no_delivery_to(self, addr, wait=1.5):
        time.sleep(wait)
        self.assertEqual(self.sink.for_rcpt(addr), [], "%s got mail" % addr)

    def rep_notices(self, subject_part=None):
        out = [m for m in self.sink.for_rcpt(REP) if m.mail_from in ("", "<>")]
        if subject_part:
            out = [m for m in out if subject_part.encode() in m.data]
        return out


# ----------------------------------------------------------------------------
class Allowed(Base):
    windows = 'jane@acme.com 2027-07-01 reason="Lease ends in July"\n'

    BODY = (b"Line one\r\n.leading dot\r\n..two dots\r\n.\xe9 dot then 8-bit\r\n"
            b"8-bit: \xc3\xa9t\xc3\xa9 \xff\xfe\r\n\r\n.\r\n..\r\nlast\r\n")

    def test_allowed_unchanged_smtplib(self):
        msg = message(to="bob@other.com",
                      extra_headers="X-Odd:   spaced\r\n\tfolded header\r\nContent-Transfer-Encoding: 8bit\r\n") + self.BODY
        s = self.smtp()
        s.sendmail(REP, ["bob@other.com"], msg)
        got = self.sink.wait(1)
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].rcpts, ["bob@other.com"])
        self.assertEqual(got[0].mail_from, REP)
        self.assertEqual(got[0].data, msg)

    def test_allowed_unchanged_swaks(self):
        msg = message(to="bob@other.com") + self.BODY
        # swaks ends the data with its own CRLF (measured against a bare
        # sink), so it gets the message without its last one.
        rc, out = swaks(self.u.port, "--to", "bob@other.com", data=msg[:-2])
        self.assertEqual(rc, 0, out)
        got = self.sink.wait(1)
        self.assertEqual(len(got), 1, out)
        self.assertEqual(got[0].data, msg)


# ----------------------------------------------------------------------------
JANE = "jane@acme.com"


class Hold(Base):
    windows = ('jane@acme.com 2027-07-01 reason="Lease ends in July"\n'
               '@globex.com 2027-07-01 reason="RFP quiet period" action=reject\n'
               'fred@flag.example 2027-07-01 reason="Flag me" action=flag\n')

    def test_quiet_held_swaks_nothing_arrives(self):
        rc, out = swaks(self.u.port, "--to", "jane@acme.com", data=message())
        self.assertEqual(rc, 0, out)
        self.assertIn("Held until 2027-07-01", out)
        self.assertEqual(len(self.u.spool_files()), 1)
        self.no_delivery_to("jane@acme.com")

    def test_bcc_only_recipient_held(self):
        msg = message(to="bob@other.com")      # jane is in no header
        rr, (code, text) = self.transaction(["<jane@acme.com>"], msg)
        self.assertEqual(code, 250)
        self.assertIn("Held until", text)
        self.assertEqual(len(self.u.spool_files()), 1)
        self.no_delivery_to("jane@acme.com")

    def test_reject_at_rcpt_others_accepted(self):
        rr, (code, text) = self.transaction(["<bob@globex.com>", "<bob@other.com>"],
                                            message(to="bob@globex.com, bob@other.com"))
        self.assertEqual(rr[0][0], 550)
        self.assertIn(b"5.7.1", rr[0][1])
        self.assertIn(b"RFP quiet period", rr[0][1])
        self.assertEqual(rr[1][0], 250)
        self.assertEqual(code, 250, text)
        got = self.sink.wait(1)
        self.assertEqual([m.rcpts for m in got if REP not in m.rcpts], [["bob@other.com"]])
        self.assertEqual(self.sink.for_rcpt("bob@globex.com"), [])

    def test_reject_swaks(self):
        rc, out = swaks(self.u.port, "--to", "alice@globex.com", data=message())
        self.assertNotEqual(rc, 0)
        self.assertIn("550 5.7.1", out)
        self.assertIn("RFP quiet period", out)

    def test_flag_header_and_report(self):
        msg = message(to="fred@flag.example")
        s = self.smtp()
        s.sendmail(REP, ["fred@flag.example"], msg)
        got = self.u.wait_for(lambda: self.sink.for_rcpt("fred@flag.example"), what="flagged mail")
        data = self.sink.for_rcpt("fred@flag.example")[0].data
        wid = [w["id"] for w in self.u.windows_json() if "fred@flag.example" in json.dumps(w)][0]
        m = re.match(rb"X-Untild: flagged; recipient=<fred@flag\.example>; until=([^;]+); window=(\S+)\r\n",
                     data)
        self.assertTrue(m, data[:200])
        self.assertTrue(m.group(1).startswith(b"2027-07-01"), m.group(1))
        self.assertEqual(m.group(2).decode(), wid)
        self.assertEqual(data[m.end():], msg, "the rest of the message changed")
        self.u.wait_for(lambda: self.rep_notices("Flagged"), what="flag notice")
        r = self.u.ctl("report", check=0)
        row = [l for l in r.stdout.splitlines() if l.startswith("fred@flag.example")]
        self.assertEqual(len(row), 1, r.stdout)
        self.assertEqual(row[0].split()[1:], ["0", "1", "0"], r.stdout)

    def test_flag_header_only_in_the_flagged_copy(self):
        # The header names a quiet contact: other recipients must not see it.
        msg = message(to="fred@flag.example, ed@flag.example")
        s = self.smtp()
        s.sendmail(REP, ["fred@flag.example", "ed@flag.example"], msg)
        self.u.wait_for(lambda: self.sink.for_rcpt("fred@flag.example") and self.sink.for_rcpt("ed@flag.example"),
                        what="both copies")
        fred = self.sink.for_rcpt("fred@flag.example")
        ed = self.sink.for_rcpt("ed@flag.example")
        self.assertEqual([m.rcpts for m in fred], [["fred@flag.example"]])
        self.assertEqual([m.rcpts for m in ed], [["ed@flag.example"]])
        self.assertTrue(fred[0].data.startswith(b"X-Untild: flagged; recipient=<fred@flag.example>"))
        self.assertEqual(ed[0].data, msg)

    def test_flag_report_counts_only_flagged(self):
        # ed@flag.example is a suffix of fred@flag.example: not flagged.
        s = self.smtp()
        s.sendmail(REP, ["fred@flag.example", "ed@flag.example"],
                   message(to="fred@flag.example, ed@flag.example"))
        self.u.wait_for(lambda: self.sink.for_rcpt("ed@flag.example"), what="delivery")
        r = self.u.ctl("report", check=0)
        rows = {l.split()[0]: l.split()[1:] for l in r.stdout.splitlines()
                if l.startswith(("fred@", "ed@"))}
        self.assertEqual(rows.get("fred@flag.example"), ["0", "1", "0"], r.stdout)
        self.assertNotIn("ed@flag.example", rows, r.stdout)

    def test_released_message_byte_for_byte(self):
        body = (b".leading dot\r\n..two\r\n.\r\n8-bit \xc3\xa9\xff\r\nno final newline? yes\r\n")
        msg = message(extra_headers="Content-Transfer-Encoding: 8bit\r\n") + body
        s = self.smtp()
        s.sendmail("", [JANE], msg)      # null sender too
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: self.sink.for_rcpt(JANE), what="release")
        got = self.sink.for_rcpt(JANE)[0]
        self.assertEqual(got.data, msg)
        self.assertIn(got.mail_from, ("", "<>"))

    def test_restart_keeps_held_and_releases(self):
        s = self.smtp()
        s.sendmail(REP, ["jane@acme.com"], message())
        s.quit()
        ids = [h["id"] for h in self.u.held_json()]
        self.assertEqual(len(ids), 1)
        self.u.restart()
        self.u.set_clock(NOW)
        self.assertEqual([h["id"] for h in self.u.held_json()], ids)
        self.assertEqual(self.sink.for_rcpt("jane@acme.com"), [])
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: len(self.sink.for_rcpt("jane@acme.com")) == 1, what="release after restart")
        self.u.wait_for(lambda: self.u.spool_files() == [], what="spool empty")
        self.assertEqual(self.u.held_json(), [])


# ----------------------------------------------------------------------------
class AddressForms(Base):
    windows = ('jane@acme.com 2027-07-01 reason="Lease"\n'
               '@bücher.example 2027-07-01 reason="U-label window"\n'
               '@xn--mller-kva.example 2027-07-01 reason="A-label window"\n'
               '@globex.com 2027-07-01 reason="parent domain"\n')

    def held(self, rcpt, mail_from="<%s>" % REP):
        rr, res = self.transaction([rcpt], mail_from=mail_from)
        self.assertEqual(rr[0][0], 250, (rcpt, rr))
        self.assertIsNotNone(res)
        self.assertEqual(res[0], 250, res)
        self.assertIn("Held until 2027-07-01", res[1], rcpt)

    def test_subaddress_and_case(self):
        self.held("<Jane+tag@ACME.COM>")

    def test_source_route(self):
        self.held("<@route.example:jane@acme.com>")

    def test_quoted_local_part(self):
        self.held('<"jane"@acme.com>')

    def test_trailing_dot(self):
        self.held("<jane@acme.com.>")

    def test_subdomain_of_domain_window(self):
        self.held("<bob@sales.globex.com>")

    def test_idna_a_label_matches_u_label_window(self):
        self.held("<info@xn--bcher-kva.example>")

    def test_idna_u_label_matches_a_label_window(self):
        self.held("<info@müller.example>", mail_from="<%s> SMTPUTF8" % REP)

    def test_dsn_params_ignored(self):
        self.held("<jane@acme.com> NOTIFY=NEVER ORCPT=rfc822;jane@acme.com")

    def test_nothing_relayed(self):
        for r in ["<Jane+tag@ACME.COM>", "<info@xn--bcher-kva.example>"]:
            self.transaction([r])
        self.assertEqual(len(self.u.spool_files()), 2)
        time.sleep(1)
        self.assertEqual([m for m in self.sink.messages if REP not in m.rcpts], [])


# ----------------------------------------------------------------------------
class ReleaseTime(GateTest):
    """release_time = 09:00 in the window's zone, weekends skipped."""
    windows = ('jane@acme.com 2027-07-01 reason="Thursday"\n'
               'sam@acme.com 2027-07-03 reason="Saturday"\n')
    release_time = "09:00"
    untild_kwargs = {"tz": "Europe/Berlin", "weekends": "no"}

    def test_waits_for_release_time_in_window_tz(self):
        self.u.set_clock(NOW)
        s = self.smtp()
        s.sendmail(REP, ["jane@acme.com"], message())
        # The window ends 2027-07-01 00:00 Berlin = 06-30 22:00Z; release 09:00 Berlin = 07:00Z.
        self.u.set_clock("2027-06-30T22:00:01Z")
        time.sleep(1.5)
        self.assertEqual(self.sink.for_rcpt("jane@acme.com"), [], "released at the window end, not 09:00")
        self.u.set_clock("2027-07-01T06:59:58Z")
        time.sleep(1.5)
        self.assertEqual(self.sink.for_rcpt("jane@acme.com"), [], "released before 09:00 Berlin")
        self.u.set_clock("2027-07-01T07:00:01Z")
        self.u.wait_for(lambda: len(self.sink.for_rcpt("jane@acme.com")) == 1, what="09:00 release")
        self.u.set_clock("2027-07-02T07:00:01Z")
        time.sleep(1.5)
        self.assertEqual(len(self.sink.for_rcpt("jane@acme.com")), 1, "sent twice")

    def test_weekend_skipped(self):
        self.u.set_clock(NOW)
        s = self.smtp()
        s.sendmail(REP, ["sam@acme.com"], message(to="sam@acme.com"))
        h = self.u.held_json()
        self.assertEqual(len(h), 1)
        self.assertIn("2027-07-05", json.dumps(h[0]))
        self.u.set_clock("2027-07-03T07:00:01Z")      # Saturday 09:00 Berlin
        time.sleep(1.5)
        self.assertEqual(self.sink.for_rcpt("sam@acme.com"), [], "released on a Saturday")
        self.u.set_clock("2027-07-04T07:00:01Z")      # Sunday
        time.sleep(1.5)
        self.assertEqual(self.sink.for_rcpt("sam@acme.com"), [], "released on a Sunday")
        self.u.set_clock("2027-07-05T07:00:01Z")      # Monday 09:00 Berlin
        self.u.wait_for(lambda: len(self.sink.for_rcpt("sam@acme.com")) == 1, what="Monday release")


# ----------------------------------------------------------------------------
class SplitYes(Base):
    windows = 'jane@acme.com 2027-07-01 reason="Lease ends in July"\n'
    split = "yes"

    def test_split_allowed_now_quiet_held(self):
        msg = message(to="jane@acme.com, bob@other.com")
        s = self.smtp()
        s.sendmail(REP, ["jane@acme.com", "bob@other.com"], msg)
        self.u.wait_for(lambda: self.sink.for_rcpt("bob@other.com"), what="allowed part")
        got = self.sink.for_rcpt("bob@other.com")
        self.assertEqual(got[0].rcpts, ["bob@other.com"])
        self.assertEqual(got[0].data, msg)
        self.assertEqual(len(self.u.spool_files()), 1)
        self.assertEqual(self.sink.for_rcpt("jane@acme.com"), [])
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: self.sink.for_rcpt("jane@acme.com"), what="held part")
        self.assertEqual(self.sink.for_rcpt("jane@acme.com")[0].rcpts, ["jane@acme.com"])
        self.assertEqual(len(self.sink.for_rcpt("bob@other.com")), 1)

    def test_upstream_down_rolls_back_held_part(self):
        self.sink.stop()
        self.addCleanup(self.sink.restart)   # the base cleanup stops it again
        s = self.smtp()
        with self.assertRaises(smtplib.SMTPDataError) as cm:
            s.sendmail(REP, ["jane@acme.com", "bob@other.com"], message())
        self.assertEqual(cm.exception.smtp_code // 100, 4, cm.exception)
        self.assertEqual(self.u.spool_files(), [], "held part not rolled back")
        self.assertEqual(self.u.held_json(), [])

    def test_upstream_data_refusal_rolls_back(self):
        self.sink.data_reply = "451 4.3.0 try later"
        s = self.smtp()
        with self.assertRaises(smtplib.SMTPDataError) as cm:
            s.sendmail(REP, ["jane@acme.com", "bob@other.com"], message())
        self.assertEqual(cm.exception.smtp_code, 451)
        self.assertEqual(self.u.spool_files(), [])


class SplitNo(Base):
    windows = 'jane@acme.com 2027-07-01 reason="Lease ends in July"\n'
    split = "no"

    def test_whole_message_held_released_together(self):
        msg = message(to="jane@acme.com, bob@other.com")
        s = self.smtp()
        s.sendmail(REP, ["jane@acme.com", "bob@other.com"], msg)
        self.assertEqual(len(self.u.spool_files()), 1)
        self.no_delivery_to("bob@other.com")
        self.assertEqual(self.sink.for_rcpt("jane@acme.com"), [])
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: self.sink.for_rcpt("jane@acme.com"), what="release")
        got = [m for m in self.sink.messages if REP not in m.rcpts]
        self.assertEqual(len(got), 1, "released in more than one transaction")
        self.assertEqual(sorted(got[0].rcpts), ["bob@other.com", "jane@acme.com"])
        self.assertEqual(got[0].data, msg)

    def test_upstream_down_451_nothing_lost(self):
        self.sink.stop()
        self.addCleanup(self.sink.restart)
        s = self.smtp()
        with self.assertRaises(smtplib.SMTPDataError) as cm:
            s.sendmail(REP, ["bob@other.com"], message(to="bob@other.com"))
        self.assertEqual(cm.exception.smtp_code, 451, cm.exception)
        self.assertEqual(self.u.spool_files(), [])


# ----------------------------------------------------------------------------
class Commands(Base):
    windows = 'jane@acme.com 2027-07-01 reason="Lease ends in July"\n'

    def hold_one(self, subject="Quote"):
        s = self.smtp()
        s.sendmail(REP, ["jane@acme.com"], message(subject=subject))
        s.quit()
        ids = [h["id"] for h in self.u.held_json()]
        self.assertEqual(len(ids), 1)
        return ids[0]

    def untild_invalid_reached_upstream(self):
        return [m for m in self.sink.messages if any("untild.invalid" in r for r in m.rcpts)]

    def test_until_bcc_creates_window_and_sends(self):
        msg = message(to="bob@other.com", subject="Contract signed, talk in summer")
        s = self.smtp()
        s.sendmail(REP, ["bob@other.com", "until-2027-07-01@untild.invalid"], msg)
        got = self.sink.wait(1)
        self.u.wait_for(lambda: self.sink.for_rcpt("bob@other.com"), what="message sent")
        m = self.sink.for_rcpt("bob@other.com")[0]
        self.assertEqual(m.rcpts, ["bob@other.com"])
        self.assertEqual(m.data, msg)
        ws = [w for w in self.u.windows_json() if "bob@other.com" in json.dumps(w)]
        self.assertEqual(len(ws), 1, self.u.ctl("window", "list").stdout)
        self.assertIn("Contract signed, talk in summer", json.dumps(ws[0]))
        self.assertIn("2027-07-01", json.dumps(ws[0]))
        r = self.u.ctl("window", "list", check=0)
        self.assertIn("bob@other.com", r.stdout)
        # Now bob is quiet.
        self.assertEqual(self.u.ctl("check", "bob@other.com").returncode, 3)
        self.assertEqual(self.untild_invalid_reached_upstream(), [])

    def test_natural_forms(self):
        s = self.smtp()
        s.sendmail(REP, ["a@other.com", "july@untild.invalid"], message(to="a@other.com", subject="A"))
        s.sendmail(REP, ["b@other.com", "3months@untild.invalid"], message(to="b@other.com", subject="B"))
        ws = self.u.windows_json()
        wa = [w for w in ws if "a@other.com" in json.dumps(w)]
        wb = [w for w in ws if "b@other.com" in json.dumps(w)]
        self.assertEqual(len(wa), 1, ws)
        self.assertEqual(len(wb), 1, ws)
        self.assertIn("2027-07-01", json.dumps(wa[0]))
        self.assertIn("2027-04-10", json.dumps(wb[0]))
        self.u.wait_for(lambda: self.sink.for_rcpt("a@other.com") and self.sink.for_rcpt("b@other.com"),
                        what="both sent")
        self.assertEqual(self.untild_invalid_reached_upstream(), [])

    def test_bad_command_address_refused(self):
        rr, _ = self.transaction(["<until-yesterday-ish@untild.invalid>"])
        self.assertEqual(rr[0][0] // 100, 5)

    def test_release_command(self):
        hid = self.hold_one()
        s = self.smtp()
        s.sendmail(REP, ["release-%s@untild.invalid" % hid], message(to="release-%s@untild.invalid" % hid))
        self.u.wait_for(lambda: len(self.sink.for_rcpt("jane@acme.com")) == 1, what="released now")
        self.u.wait_for(lambda: self.u.spool_files() == [], what="spool empty")
        self.assertEqual(self.untild_invalid_reached_upstream(), [])

    def test_release_command_id_case_insensitive(self):
        # Addresses are case-insensitive: a mail client may upper-case them.
        hid = self.hold_one()
        s = self.smtp()
        s.sendmail(REP, ["RELEASE-%s@UNTILD.INVALID" % hid.upper()], message())
        self.u.wait_for(lambda: len(self.sink.for_rcpt("jane@acme.com")) == 1, what="released now")

    def test_discard_command(self):
        hid = self.hold_one()
        s = self.smtp()
        s.sendmail(REP, ["discard-%s@untild.invalid" % hid], message())
        self.u.wait_for(lambda: self.u.spool_files() == [], what="discarded")
        self.assertEqual(self.u.held_json(), [])
        self.u.set_clock("2027-07-02T00:00:00Z")
        self.no_delivery_to("jane@acme.com")
        self.assertEqual(self.untild_invalid_reached_upstream(), [])

    def test_status_command(self):
        hid = self.hold_one(subject="Quote for Jane")
        s = self.smtp()
        s.sendmail(REP, ["status@untild.invalid"], message())
        self.u.wait_for(lambda: self.rep_notices("untild status"), what="status notice")
        n = self.rep_notices("untild status")[0].data
        self.assertIn(hid.encode(), n)
        self.assertIn(b"Quote for Jane", n)
        self.assertIn(b"release-%s@untild.invalid" % hid.encode(), n)
        self.assertIn(b"jane@acme.com", n)
        self.assertEqual(self.untild_invalid_reached_upstream(), [])

    def test_status_lists_at_most_200_held(self):
        # A rep with many held messages gets a readable status mail, and the
        # daemon derives the state of the ones it lists, not of the queue.
        s = self.smtp()
        for i in range(205):
            s.sendmail(REP, ["jane@acme.com"], message(subject="Quote %d" % i))
        s.sendmail(REP, ["status@untild.invalid"], message())
        s.quit()
        self.u.wait_for(lambda: self.rep_notices("untild status"), what="status notice")
        n = self.rep_notices("untild status")[0].data
        self.assertEqual(n.count(b"mailto:release-"), 200)
        self.assertIn(b"and 5 more, not listed here", n)

    def test_other_rep_cannot_release(self):
        # auth = none has one rep; a non-admin local user is another rep.
        hid = self.hold_one()
        try:
            pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no user nobody")
        if os.geteuid() != 0:
            self.skipTest("needs root to run untilctl as another user")
        sock = os.path.join(self.u.dir, "control.sock")
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            UNTILCTL, "-s", sock, "held", "release", hid],
                           capture_output=True, text=True, timeout=20)
        if "Permission denied" in r.stderr or "cannot" in r.stderr.lower() and r.returncode == 1:
            self.skipTest("nobody cannot reach untilctl/socket: " + r.stderr)
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn("not yours", r.stdout + r.stderr)
        self.assertEqual(len(self.u.spool_files()), 1)
        self.no_delivery_to("jane@acme.com", wait=1)


# ----------------------------------------------------------------------------
class Protocol(Base):
    windows = 'jane@acme.com 2027-07-01 reason="Lease ends in July"\n'
    untild_kwargs = {"max_size": 4096}

    def test_oversized_with_size_param_552(self):
        s = self.smtp()
        with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
            s.sendmail(REP, ["bob@other.com"], message(body="x" * 70 + "\r\n") * 1 + b"y" * 8000)
        self.assertEqual(cm.exception.smtp_code, 552)

    def test_oversized_data_552_session_goes_on(self):
        c = self.raw()
        c.send(b"EHLO c\r\n")
        self.assertEqual(c.reply()[0], 250)
        c.send(b"MAIL FROM:<rep@example.com>\r\n")
        self.assertEqual(c.reply()[0], 250)
        c.send(b"RCPT TO:<bob@other.com>\r\n")
        self.assertEqual(c.reply()[0], 250)
        c.send(b"DATA\r\n")
        self.assertEqual(c.reply()[0], 354)
        c.send(message(to="bob@other.com") + (b"z" * 70 + b"\r\n") * 100 + b".\r\n")
        self.assertEqual(c.reply()[0], 552)
        c.send(b"NOOP\r\n")
        self.assertEqual(c.reply()[0], 250)
        self.no_delivery_to("bob@other.com", wait=0.5)

    def test_overlong_line_500_session_goes_on(self):
        c = self.raw()
        c.send(b"EHLO c\r\n")
        self.assertEqual(c.reply()[0], 250)
        c.send(b"NOOP " + b"x" * 5000 + b"\r\n")
        self.assertEqual(c.reply()[0], 500)
        c.send(b"MAIL FROM:<rep@example.com>\r\n")
        self.assertEqual(c.reply()[0], 250)
        c.send(b"RCPT TO:<bob@other.com>\r\n")
        self.assertEqual(c.reply()[0], 250)
        c.send(b"DATA\r\n")
        self.assertEqual(c.reply()[0], 354)
        c.send(message(to="bob@other.com") + b".\r\n")
        self.assertEqual(c.reply()[0], 250)
        self.u.wait_for(lambda: self.sink.for_rcpt("bob@other.com"), what="delivery after 500")

    def test_pipelined_one_write(self):
        c = self.raw()
        msg = message(to="bob@other.com, jane@acme.com")
        c.send(b"EHLO c\r\nMAIL FROM:<rep@example.com>\r\nRCPT TO:<bob@other.com>\r\n"
               b"RCPT TO:<jane@acme.com>\r\nDATA\r\n")
        code, lines = c.reply()
        self.assertEqual(code, 250)
        self.assertIn("PIPELINING", " ".join(lines))
        self.assertEqual([c.reply()[0] for _ in range(4)], [250, 250, 250, 354])
        c.send(msg + b".\r\nQUIT\r\n")
        code, lines = c.reply()
        self.assertEqual(code, 250)
        self.assertIn("Held until", lines[0])
        self.assertEqual(c.reply()[0], 221)
        self.assertEqual(len(self.u.spool_files()), 1)

    def test_pipelined_swaks(self):
        rc, out = swaks(self.u.port, "--pipeline", "--to", "bob@other.com,jane@acme.com",
                        data=message(to="bob@other.com"))
        self.assertEqual(rc, 0, out)
        self.assertIn("Held until", out)


# ----------------------------------------------------------------------------
class FutureRelease(Base):
    def test_ehlo_advertises(self):
        s = self.smtp()
        s.ehlo()
        self.assertTrue(s.has_extn("futurerelease"))

    def test_holdfor(self):
        rr, (code, text) = self.transaction(["<bob@other.com>"], message(to="bob@other.com"),
                                            mail_from="<%s> HOLDFOR=3600" % REP)
        self.assertEqual(code, 250, text)
        self.assertIn("2027-01-10", text)
        self.assertEqual(len(self.u.spool_files()), 1)
        self.u.set_clock("2027-01-10T10:59:58Z")
        self.no_delivery_to("bob@other.com")
        self.u.set_clock("2027-01-10T11:00:01Z")
        self.u.wait_for(lambda: len(self.sink.for_rcpt("bob@other.com")) == 1, what="HOLDFOR release")
        self.u.wait_for(lambda: self.u.spool_files() == [], what="spool empty")

    def test_holduntil(self):
        rr, (code, text) = self.transaction(["<bob@other.com>"], message(to="bob@other.com"),
                                            mail_from="<%s> HOLDUNTIL=2027-01-12T08:00:00Z" % REP)
        self.assertEqual(code, 250, text)
        self.assertEqual(len(self.u.spool_files()), 1)
        self.u.set_clock("2027-01-12T07:59:58Z")
        self.no_delivery_to("bob@other.com")
        self.u.set_clock("2027-01-12T08:00:01Z")
        self.u.wait_for(lambda: len(self.sink.for_rcpt("bob@other.com")) == 1, what="HOLDUNTIL release")

    def test_holdfor_beyond_limit_501(self):
        s = self.smtp()
        s.ehlo()
        limit = int(s.esmtp_features["futurerelease"].split()[0])
        code, text = s.docmd("MAIL FROM:<%s> HOLDFOR=%d" % (REP, limit + 1))
        self.assertEqual(code, 501, text)
        code, text = s.docmd("MAIL FROM:<%s> HOLDFOR=%d" % (REP, limit))
        self.assertEqual(code, 250, text)


if __name__ == "__main__":
    unittest.main()


# ----------------------------------------------------------------------------
class TwoReps(Base):
    """auth = passwd:FILE gives two reps: one cannot act on the other's
    held mail through command addresses."""
    windows = 'jane@acme.com 2027-07-01 reason="Lease ends in July"\n'
    ALICE, BOB = "alice@example.com", "bob@example.com"

    def setUp(self):
        d = tempfile.mkdtemp(prefix="untild-passwd-")
        self.addCleanup(lambda: __import__("shutil").rmtree(d, ignore_errors=True))
        os.chmod(d, 0o755)
        h = subprocess.run(["openssl", "passwd", "-6", "-salt", "e2esalt", "secret"],
                           capture_output=True, text=True, check=True).stdout.strip()
        path = os.path.join(d, "passwd")
        with open(path, "w") as f:
            f.write("%s:%s\n%s:%s\n" % (self.ALICE, h, self.BOB, h))
        self.untild_kwargs = {"auth": "passwd:" + path}
        super().setUp()

    def login(self, user):
        s = self.smtp()
        s.ehlo()
        s.login(user, "secret")
        return s

    def test_other_rep_cannot_release_or_discard(self):
        s = self.login(self.ALICE)
        s.sendmail(self.ALICE, [JANE], message(frm=self.ALICE))
        hid = self.u.held_json()[0]["id"]
        b = self.login(self.BOB)
        for verb in ("release", "discard"):
            code, text = b.docmd("MAIL FROM:<%s>" % self.BOB)
            self.assertEqual(code, 250, text)
            code, text = b.docmd("RCPT TO:<%s-%s@untild.invalid>" % (verb, hid))
            self.assertEqual(code, 250, text)
            code, text = b.data(message(frm=self.BOB))
            self.assertIn(b"not yours", text)
        self.assertEqual([h["id"] for h in self.u.held_json()], [hid])
        self.no_delivery_to(JANE, wait=1)
        # Alice can.
        s.sendmail(self.ALICE, ["release-%s@untild.invalid" % hid], message(frm=self.ALICE))
        self.u.wait_for(lambda: self.sink.for_rcpt(JANE), what="owner's release")

    def test_unauthenticated_mail_refused(self):
        s = self.smtp()
        s.ehlo()
        code, text = s.docmd("MAIL FROM:<%s>" % self.ALICE)
        self.assertEqual(code // 100, 5, text)


JANE = "jane@acme.com"


class Durability(Base):
    windows = 'jane@acme.com 2027-07-01 reason="Lease ends in July"\n'

    def test_release_while_upstream_down_retried_once(self):
        s = self.smtp()
        s.sendmail(REP, [JANE], message())
        s.quit()
        self.u.wait_for(lambda: self.rep_notices("Held"), what="held notice")
        self.sink.stop()
        self.addCleanup(self.sink.restart)
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: self.u.held_json() and self.u.held_json()[0].get("attempts", 0) >= 1,
                        what="a failed attempt recorded")
        self.assertEqual(len(self.u.spool_files()), 1, "lost while the upstream was down")
        self.sink.restart()
        self.u.set_clock("2027-07-01T02:00:00Z")       # past any backoff
        self.u.wait_for(lambda: len(self.sink.for_rcpt(JANE)) == 1, what="retry delivery")
        self.u.wait_for(lambda: self.u.spool_files() == [], what="spool empty")
        self.u.set_clock("2027-07-02T02:00:00Z")
        time.sleep(1.5)
        self.assertEqual(len(self.sink.for_rcpt(JANE)), 1, "sent twice")
        self.sink.stop()                               # for the cleanup's restart

    def test_retry_lifetime_counts_from_release(self):
        # Held for six months, then the upstream defers: untild retries for
        # max_queue_lifetime (5 days) from the release, not from the hold.
        s = self.smtp()
        s.sendmail(REP, [JANE], message(subject="Lifetime"))
        s.quit()
        self.sink.reject[JANE] = "451 4.2.0 mailbox busy, later"
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: self.u.held_json() and self.u.held_json()[0].get("attempts", 0) >= 1,
                        what="first deferral")
        self.assertEqual(len(self.u.spool_files()), 1, "gave up at the first deferral")
        self.u.set_clock("2027-07-04T00:00:00Z")
        self.u.wait_for(lambda: self.u.held_json() and self.u.held_json()[0].get("attempts", 0) >= 2,
                        what="second deferral")
        self.assertEqual(len(self.u.spool_files()), 1)
        self.u.set_clock("2027-07-07T00:00:00Z")
        self.u.wait_for(lambda: self.u.spool_files() == [], what="expiry after the lifetime")
        self.u.wait_for(lambda: self.rep_notices("Failed"), what="failure notice")
        n = self.rep_notices("Failed")[0].data
        self.assertIn(b"message/rfc822", n)
        self.assertIn(b"Subject: Lifetime", n)
        self.assertEqual(self.sink.for_rcpt(JANE), [])

    def test_sigkill_keeps_held(self):
        s = self.smtp()
        s.sendmail(REP, [JANE], message())
        s.quit()
        ids = [h["id"] for h in self.u.held_json()]
        self.u.kill()
        self.u.start()
        self.u.set_clock(NOW)
        self.assertEqual([h["id"] for h in self.u.held_json()], ids)
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: len(self.sink.for_rcpt(JANE)) == 1, what="release after crash")

    def test_held_notice_has_command_links(self):
        s = self.smtp()
        s.sendmail(REP, [JANE], message(subject="Quote"))
        hid = self.u.held_json()[0]["id"]
        self.u.wait_for(lambda: self.rep_notices("Held"), what="held notice")
        n = self.rep_notices("Held")[0].data
        self.assertIn(("mailto:release-%s@untild.invalid" % hid).encode(), n)
        self.assertIn(("mailto:discard-%s@untild.invalid" % hid).encode(), n)


class NotifyEvents(unittest.TestCase):
    """[notify] events picks which notices the rep gets."""

    def test_held_notice_off_failed_on(self):
        sink = Sink().start()
        self.addCleanup(sink.stop)
        u = Untild(sink, windows="jane@acme.com 2027-07-01\n", extra="[notify]\nevents = failed, stale\n")
        self.addCleanup(u.cleanup)
        u.start()
        u.set_clock("2027-01-10T10:00Z")
        s = smtplib.SMTP("127.0.0.1", u.port, timeout=10)
        self.addCleanup(s.close)
        s.sendmail(REP, [JANE], message())
        self.assertEqual(len(u.spool_files()), 1)
        time.sleep(1.0)
        self.assertEqual(sink.for_rcpt(REP), [], "held notice sent although events leaves it out")

    def test_unknown_kind_is_a_config_error(self):
        u = Untild(None, extra="[notify]\nevents = held, bogus\n")
        self.addCleanup(u.cleanup)
        r = subprocess.run([os.path.join(os.environ.get("UNTILD_BUILD", "build"), "untild"), "-t", "-c", u.conf],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"untild\.conf:\d+: events: unknown notice kind \"bogus\"")


class ManyReleased(GateTest):
    """More held messages than deliveries in flight: all go out when the
    window ends, promptly (a regression: only the first 32 did)."""
    windows = "@bulk.example never reason=\"bulk\"\n"

    def test_all_released_after_window_end(self):
        s = self.smtp()
        n = 80
        for i in range(n):
            s.sendmail(REP, ["c%d@bulk.example" % i], message(to="c%d@bulk.example" % i))
        self.assertEqual(len(self.u.spool_files()), n)
        wid = [w["id"] for w in self.u.windows_json() if "@bulk.example" in w["who"]][0]
        self.u.ctl("window", "end", wid, check=0)
        t0 = time.time()
        self.u.wait_for(lambda: sum(1 for m in self.sink.messages if m.rcpts[0].endswith("@bulk.example")) >= n,
                        timeout=30, what="all %d released" % n)
        self.assertLess(time.time() - t0, 15)
        self.u.wait_for(lambda: self.u.spool_files() == [], what="spool empty")
        got = [m.rcpts[0] for m in self.sink.messages if m.rcpts[0].endswith("@bulk.example")]
        self.assertEqual(sorted(got), sorted("c%d@bulk.example" % i for i in range(n)), "lost or duplicated")
