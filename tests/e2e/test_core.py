"""Core end-to-end tests (issue 2): config checking, reload, untilctl verbs,
runtime window persistence, SO_PEERCRED permissions, the report."""
import json
import os
import pwd
import signal
import smtplib
import subprocess
import tempfile
import time
import unittest

from harness import UNTILCTL, UNTILD, GateTest, Sink, Untild, message

REP_USER = "untild-e2e-rep"
_created_user = False


def setUpModule():
    global _created_user
    try:
        pwd.getpwnam(REP_USER)
    except KeyError:
        if os.geteuid() == 0:
            subprocess.run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", REP_USER], check=True)
            _created_user = True


def tearDownModule():
    if _created_user:
        subprocess.run(["userdel", REP_USER], check=False)


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, **kw)


GOOD_CONF = """[daemon]
state_dir = {d}/state
control_socket = {d}/control.sock
timezone = UTC
[smtp]
listen = 127.0.0.1:{port}
[upstream]
url = smtp://127.0.0.1:{port2}
tls = none
[windows]
files = {d}/w/*.windows
"""


class ConfigCheck(unittest.TestCase):
    """untild -t and start-up refusal; no daemon left running."""

    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="untild-e2e-cfg-")
        os.makedirs(os.path.join(self.d, "w"))
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.d]))
        self.conf = os.path.join(self.d, "untild.conf")
        self.port = __import__("harness").free_port()

    def write(self, conf, windows=""):
        with open(self.conf, "w") as f:
            f.write(conf)
        self.wfile = os.path.join(self.d, "w", "a.windows")
        with open(self.wfile, "w") as f:
            f.write(windows)

    def good(self):
        return GOOD_CONF.format(d=self.d, port=self.port, port2=self.port + 1 if self.port < 65535 else 1)

    def test_check_ok(self):
        self.write(self.good(), 'jane@acme.com 2027-07-01 reason="x"\n@globex.com never rrule="FREQ=WEEKLY;BYDAY=SA,SU"\n')
        r = run([UNTILD, "-t", "-c", self.conf])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK, 2 window(s)", r.stdout)
        self.assertFalse(os.path.exists(os.path.join(self.d, "state")), "-t must not create state")

    def test_check_config_errors_file_line(self):
        conf = self.good().replace("timezone = UTC\n", "timezone = UTC\nbogus_key = 1\n")
        conf = conf.replace("listen = 127.0.0.1:%d" % self.port, "listen = 127.0.0.1:notaport")
        conf += "[daemon]\nowner = rep@example.com\n"
        self.write(conf)
        r = run([UNTILD, "-t", "-c", self.conf])
        self.assertEqual(r.returncode, 1)
        lines = r.stderr.splitlines()
        self.assertTrue(any(l.startswith(self.conf + ":5: ") and "unknown key" in l and "bogus_key" in l
                            for l in lines), r.stderr)
        self.assertTrue(any(l.startswith(self.conf + ":7: ") and "notaport" in l for l in lines), r.stderr)
        self.assertTrue(any(l.startswith(self.conf + ":13: ") and "duplicate section" in l for l in lines), r.stderr)

    def test_check_window_errors_file_line(self):
        self.write(self.good(),
                   "# comment\n"
                   "jane@acme.com 2027-13-45 reason=\"bad date\"\n"
                   "not-an-address 2027-07-01\n"
                   "bob@x.com 2027-07-01 rrule=\"FREQ=SOMETIMES\"\n"
                   "bob@x.com 2027-07-01 colour=blue\n"
                   "ok@x.com 2027-07-01\n")
        r = run([UNTILD, "-t", "-c", self.conf])
        self.assertEqual(r.returncode, 1)
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 4, r.stderr)
        self.assertTrue(lines[0].startswith(self.wfile + ":2: ") and "date" in lines[0], lines)
        self.assertTrue(lines[1].startswith(self.wfile + ":3: ") and "address" in lines[1], lines)
        self.assertTrue(lines[2].startswith(self.wfile + ":4: ") and "rrule" in lines[2], lines)
        self.assertTrue(lines[3].startswith(self.wfile + ":5: ") and "colour" in lines[3], lines)

    def test_daemon_refuses_bad_config(self):
        conf = self.good().replace("timezone = UTC\n", "timezone = UTC\nbogus_key = 1\n")
        self.write(conf)
        r = run([UNTILD, "-c", self.conf])
        self.assertEqual(r.returncode, 1)
        self.assertIn(self.conf + ":5: ", r.stderr)
        self.assertIn("bogus_key", r.stderr)

    def test_daemon_refuses_bad_windows(self):
        self.write(self.good(), "jane@acme.com 2027-02-30\n")
        r = run([UNTILD, "-c", self.conf])
        self.assertEqual(r.returncode, 1)
        self.assertIn(self.wfile + ":1: ", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.d, "control.sock")))

    def test_missing_config(self):
        r = run([UNTILD, "-t", "-c", os.path.join(self.d, "nope.conf")])
        self.assertEqual(r.returncode, 1)
        self.assertIn("nope.conf", r.stderr)

    def test_help_and_bad_option(self):
        r = run([UNTILD, "--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage: untild", r.stdout)
        r = run([UNTILD, "--no-such-option"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: untild", r.stderr)
        r = run([UNTILD, "-c"])
        self.assertEqual(r.returncode, 2)

    def test_untilctl_no_daemon(self):
        sock = os.path.join(self.d, "control.sock")
        r = run([UNTILCTL, "-s", sock, "window", "list"])
        self.assertEqual(r.returncode, 1)
        self.assertIn(sock, r.stderr)
        self.assertEqual(r.stdout, "")

    def test_untilctl_usage(self):
        r = run([UNTILCTL])
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage", r.stderr)
        r = run([UNTILCTL, "--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("window add", r.stdout)


def stop_and_check_sanitizers(test, u):
    """Stop the daemon and fail on any ASan/UBSan/LSan report in its log
    (meaningful with an instrumented --build)."""
    u.stop()
    log = u.logtext()
    for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        test.assertNotIn(bad, log, log[-4000:])


class CoreTest(GateTest):
    def setUp(self):
        super().setUp()
        self.addCleanup(stop_and_check_sanitizers, self, self.u)


class Reload(CoreTest):
    windows = 'jane@acme.com 2027-07-01 reason="Lease ends in July"\n'

    def reload_and_wait(self, marker):
        n = self.u.logtext().count(marker)
        self.u.proc.send_signal(signal.SIGHUP)
        self.u.wait_for(lambda: self.u.logtext().count(marker) > n, what="reload log: " + marker)

    def test_sighup_reload_keeps_open_session(self):
        self.u.set_clock("2027-01-10T10:00Z")
        self.assertEqual(self.u.ctl("check", "bob@initech.com").returncode, 0)
        s = self.smtp()
        s.ehlo("client.example")
        s.mail("rep@example.com")
        self.u.write_windows('jane@acme.com 2027-07-01 reason="Lease ends in July"\n'
                             'bob@initech.com 2027-03-01 reason="Board decides"\n')
        self.reload_and_wait("reload: 2 window(s) loaded")
        # The session opened before the reload still works, and sees the new window.
        self.assertEqual(s.rcpt("bob@initech.com")[0], 250)
        code, text = s.data(message(to="bob@initech.com"))
        self.assertEqual(code, 250, text)
        self.assertIn(b"Held until 2027-03-01", text)
        self.assertIn(b"Board decides", text)
        self.assertEqual(len(self.u.spool_files()), 1)
        r = self.u.ctl("check", "bob@initech.com")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("Board decides", r.stdout)
        s.quit()

    def test_bad_reload_keeps_old_config(self):
        self.u.set_clock("2027-01-10T10:00Z")
        s = self.smtp()
        s.ehlo("client.example")
        wfile = os.path.join(self.u.dir, "windows.d", "test.windows")
        self.u.write_windows('bob@initech.com 2027-99-01 reason="typo"\n')
        self.reload_and_wait("keeping the old one")
        log = self.u.logtext()
        self.assertIn(wfile + ":1: ", log)
        # Old windows still apply; the daemon and the open session still work.
        r = self.u.ctl("check", "jane@acme.com")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertEqual(self.u.ctl("check", "bob@initech.com").returncode, 0)
        s.mail("rep@example.com")
        self.assertEqual(s.rcpt("jane@acme.com")[0], 250)
        code, text = s.data(message())
        self.assertEqual(code, 250)
        self.assertIn(b"Held until 2027-07-01", text)
        # A bad main config is refused the same way.
        with open(self.u.conf, "a") as f:
            f.write("no_such_key = 1\n")
        self.u.write_windows('jane@acme.com 2027-07-01 reason="Lease ends in July"\n')
        r = self.u.ctl("reload")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no_such_key", self.u.logtext())
        self.assertIsNone(self.u.proc.poll())

    def test_reload_via_untilctl(self):
        self.u.set_clock("2027-01-10T10:00Z")
        self.u.write_windows('@initech.com 2027-03-01 action=reject reason="RFP"\n')
        r = self.u.ctl("reload")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.u.ctl("check", "jane@acme.com").returncode, 0)
        self.assertEqual(self.u.ctl("check", "x@sub.initech.com").returncode, 3)


class Control(CoreTest):
    windows = ('jane@acme.com 2027-07-01 reason="Lease ends in July"\n'
               '@globex.com 2027-05-01 action=reject reason="RFP quiet period"\n'
               'bob@initech.com 2027-05-01 action=flag reason="Audit"\n')

    def setUp(self):
        super().setUp()
        self.u.set_clock("2027-01-10T10:00Z")

    def jctl(self, *args, check=0):
        r = self.u.ctl("--json", *args, check=check)
        return json.loads(r.stdout)

    def hold(self, to="jane@acme.com", subject="Hello"):
        s = self.smtp()
        s.sendmail("rep@example.com", [to], message(to=to, subject=subject))
        s.quit()
        held = self.jctl("held", "list")
        return [h for h in held if h["subject"] == subject][0]["id"]

    def test_window_list_table_and_json(self):
        r = self.u.ctl("window", "list", check=0)
        self.assertIn("jane@acme.com", r.stdout)
        self.assertIn("Lease ends in July", r.stdout)
        self.assertIn("ID", r.stdout.splitlines()[0])
        ws = self.jctl("window", "list")
        self.assertEqual(len(ws), 3)
        for w in ws:
            self.assertTrue(w["id"])
            self.assertEqual(w["source"], "file")
        jane = [w for w in ws if w["who"] == ["jane@acme.com"]][0]
        self.assertEqual(jane["action"], "hold")
        self.assertTrue(jane["until"].startswith("2027-07-01"))
        self.assertEqual(len({w["id"] for w in ws}), 3)

    def test_check_verdicts(self):
        r = self.u.ctl("check", "Jane+x@ACME.com")
        self.assertEqual(r.returncode, 3)
        for word in ("quiet", "hold", "2027-07-01", "Lease ends in July"):
            self.assertIn(word, r.stdout)
        wid = [w for w in self.jctl("window", "list") if w["who"] == ["jane@acme.com"]][0]["id"]
        self.assertIn(wid, r.stdout)
        r = self.u.ctl("check", "x@sales.globex.com")
        self.assertEqual(r.returncode, 3)
        self.assertIn("reject", r.stdout)
        r = self.u.ctl("check", "someone@else.com")
        self.assertEqual(r.returncode, 0)
        self.assertIn("allow", r.stdout)
        v = json.loads(self.u.ctl("--json", "check", "jane@acme.com", check=3).stdout)
        self.assertTrue(v["quiet"])
        self.assertEqual(v["action"], "hold")
        self.assertEqual(v["window"]["id"], wid)
        self.assertTrue(v["quiet_until"].startswith("2027-07-01"))
        # --at after the window: allow.
        self.assertEqual(self.u.ctl("check", "jane@acme.com", "--at", "2027-08-01").returncode, 0)

    def test_bad_arguments_exit_2(self):
        for args in (["window", "add", "x@y.com"],                       # no --until
                     ["window", "add", "x@y.com", "--until", "2027-02-30"],
                     ["window", "add", "x@y.com", "--until", "2026-01-01"],   # past
                     ["window", "add", "x@y.com", "--until", "2027-07-01", "--action", "explode"],
                     ["window", "add", "x@y.com", "--until", "2027-07-01", "--rrule", "FREQ=NEVER"],
                     ["window", "add", "x@@y", "--until", "2027-07-01"],
                     ["window", "frobnicate"],
                     ["check"],
                     ["check", "not an address"],
                     ["check", "a@b.com", "--at", "yesterday-ish"],
                     ["held", "show"],
                     ["report", "--since", "lots"],
                     ["frobnicate"]):
            r = self.u.ctl(*args)
            self.assertEqual(r.returncode, 2, "%s: %s%s" % (args, r.stdout, r.stderr))
            self.assertTrue(r.stderr.strip(), args)
            self.assertEqual(r.stdout, "", args)
        self.assertEqual(len(self.jctl("window", "list")), 3)
        r = self.u.ctl("held", "show", "NOSUCHID")
        self.assertEqual(r.returncode, 5)
        self.assertIn("NOSUCHID", r.stderr)

    def test_window_add_end_runtime(self):
        w = self.jctl("window", "add", "carol@hooli.com", "--until", "2027-03-01",
                      "--reason", "Negotiation", "--action", "hold")
        self.assertTrue(w["id"])
        self.assertEqual(w["source"], "runtime")
        self.assertEqual(w["reason"], "Negotiation")
        self.assertIn(w["id"], [x["id"] for x in self.jctl("window", "list")])
        self.assertEqual(self.u.ctl("check", "carol@hooli.com").returncode, 3)
        r = self.u.ctl("window", "end", w["id"], check=0)
        self.assertIn(w["id"], r.stdout)
        self.assertEqual(self.u.ctl("check", "carol@hooli.com").returncode, 0)
        self.assertNotIn(w["id"], [x["id"] for x in self.jctl("window", "list")])
        self.assertEqual(self.u.ctl("window", "end", "carol@hooli.com").returncode, 5)

    def test_runtime_window_survives_restart_and_kill9(self):
        w = self.jctl("window", "add", "@hooli.com", "--until", "2027-03-01", "--reason", "Merger")
        self.u.restart()
        self.u.set_clock("2027-01-10T10:00Z")
        ws = {x["id"]: x for x in self.jctl("window", "list")}
        self.assertIn(w["id"], ws)
        self.assertEqual(ws[w["id"]]["reason"], "Merger")
        self.assertEqual(self.u.ctl("check", "a@hooli.com").returncode, 3)
        w2 = self.jctl("window", "add", "dave@hooli.com", "--until", "never", "--action", "reject")
        self.u.kill()
        self.u.start()
        self.u.set_clock("2027-01-10T10:00Z")
        ids = [x["id"] for x in self.jctl("window", "list")]
        self.assertIn(w["id"], ids)
        self.assertIn(w2["id"], ids)
        r = self.u.ctl("check", "dave@hooli.com")
        self.assertEqual(r.returncode, 3)
        self.assertIn("reject", r.stdout)
        # And a runtime window survives a reload too.
        self.assertEqual(self.u.ctl("reload").returncode, 0)
        self.assertIn(w2["id"], [x["id"] for x in self.jctl("window", "list")])

    def test_window_end_runtime_releases_at_once(self):
        w = self.jctl("window", "add", "carol@hooli.com", "--until", "2027-12-01")
        hid = self.hold(to="carol@hooli.com", subject="Offer")
        self.assertEqual(len(self.u.spool_files()), 1)
        time.sleep(1.2)
        self.assertEqual(self.sink.for_rcpt("carol@hooli.com"), [])
        self.u.ctl("window", "end", w["id"], check=0)
        # The clock is frozen: only "ended by hand" can release it.
        self.u.wait_for(lambda: len(self.sink.for_rcpt("carol@hooli.com")) == 1, what="release on end")
        self.u.wait_for(lambda: self.u.spool_files() == [], what="spool empty")
        self.assertEqual(self.u.ctl("held", "show", hid).returncode, 5)

    def test_window_end_file_window_persists(self):
        ws = self.jctl("window", "list")
        jane = [w for w in ws if w["who"] == ["jane@acme.com"]][0]
        hid = self.hold()
        r = self.u.ctl("window", "end", "jane@acme.com", check=0)
        self.assertIn(jane["id"], r.stdout)
        self.u.wait_for(lambda: len(self.sink.for_rcpt("jane@acme.com")) == 1, what="release on end")
        self.assertEqual(self.u.ctl("check", "jane@acme.com").returncode, 0)
        # Still ended after a reload (the file still has the line) ...
        self.assertEqual(self.u.ctl("reload").returncode, 0)
        self.assertEqual(self.u.ctl("check", "jane@acme.com").returncode, 0)
        self.assertNotIn(jane["id"], [w["id"] for w in self.jctl("window", "list")])
        # ... and after a restart; the other file windows are untouched.
        self.u.restart()
        self.u.set_clock("2027-01-10T10:00Z")
        self.assertEqual(self.u.ctl("check", "jane@acme.com").returncode, 0)
        self.assertEqual(self.u.ctl("check", "bob@initech.com").returncode, 3)
        self.assertEqual(len(self.jctl("window", "list")), 2)
        self.assertEqual(self.u.ctl("held", "show", hid).returncode, 5)
        self.assertEqual(len(self.sink.for_rcpt("jane@acme.com")), 1)

    def test_held_list_show_release_discard(self):
        h1 = self.hold(subject="First")
        h2 = self.hold(subject="Second")
        self.assertNotEqual(h1, h2)
        r = self.u.ctl("held", "list", check=0)
        self.assertIn(h1, r.stdout)
        self.assertIn("Second", r.stdout)
        m = self.jctl("held", "show", h1)
        self.assertEqual(m["id"], h1)
        self.assertEqual(m["rep"], "rep@example.com")
        self.assertEqual(m["recipients"][0]["address"], "jane@acme.com")
        self.assertEqual(m["recipients"][0]["state"], "held")
        self.assertTrue(m["release_at"].startswith("2027-07-01"))
        r = self.u.ctl("held", "show", h2, check=0)
        self.assertIn("Second", r.stdout)
        self.assertIn("jane@acme.com", r.stdout)
        self.u.ctl("held", "release", h1, "--reason", "customer asked", check=0)
        self.u.wait_for(lambda: len(self.sink.for_rcpt("jane@acme.com")) == 1, what="release by hand")
        self.assertIn(b"Subject: First", self.sink.for_rcpt("jane@acme.com")[0].data)
        self.u.ctl("held", "discard", h2, check=0)
        self.u.wait_for(lambda: self.u.spool_files() == [], what="spool empty")
        self.assertEqual(self.jctl("held", "list"), [])
        time.sleep(1.2)
        self.assertEqual(len(self.sink.for_rcpt("jane@acme.com")), 1, "discarded mail was sent")
        self.assertEqual(self.u.ctl("held", "release", h2).returncode, 5)

    def test_report_counts(self):
        self.hold(subject="One")
        self.hold(subject="Two")
        s = self.smtp()
        s.ehlo("client.example")
        s.mail("rep@example.com")
        code, text = s.rcpt("ceo@globex.com")
        self.assertEqual(code, 550)
        self.assertIn(b"RFP quiet period", text)
        s.rset()
        s.sendmail("rep@example.com", ["bob@initech.com"], message(to="bob@initech.com"))
        self.sink.wait(1)
        self.u.wait_for(lambda: self.sink.for_rcpt("bob@initech.com"), what="flagged relayed")
        self.assertIn(b"X-Untild: flagged", self.sink.for_rcpt("bob@initech.com")[0].data)
        rep = self.jctl("report")
        by_rep = {r["id"]: r for r in rep["by_rep"]}
        by_contact = {r["id"]: r for r in rep["by_contact"]}
        self.assertEqual(by_rep["rep@example.com"]["held"], 2)
        self.assertEqual(by_rep["rep@example.com"]["flagged"], 1)
        self.assertEqual(by_rep["rep@example.com"]["rejected"], 1)
        self.assertEqual((by_contact["jane@acme.com"]["held"], by_contact["jane@acme.com"]["flagged"]), (2, 0))
        self.assertEqual(by_contact["ceo@globex.com"]["rejected"], 1)
        self.assertEqual(by_contact["bob@initech.com"]["flagged"], 1)
        r = self.u.ctl("report", check=0)
        line = [l for l in r.stdout.splitlines() if l.startswith("jane@acme.com")][0]
        self.assertEqual(line.split()[1:], ["2", "0", "0"])
        line = [l for l in r.stdout.splitlines() if l.startswith("rep@example.com")][0]
        self.assertEqual(line.split()[1:], ["2", "1", "1"])
        # --since 0 still counts today; a later clock with --since 1 drops them.
        self.u.set_clock("2027-01-20T10:00Z")
        rep = self.jctl("report", "--since", "1")
        self.assertEqual(rep["by_rep"], [])


def as_rep(u, *args):
    return run(["runuser", "-u", REP_USER, "--", UNTILCTL, "-s", os.path.join(u.dir, "control.sock")] + list(args))


@unittest.skipUnless(os.geteuid() == 0, "needs root to run untilctl as another user")
class PeerCred(CoreTest):
    windows = 'jane@acme.com 2027-07-01 reason="Lease ends in July"\n'

    def setUp(self):
        super().setUp()
        self.u.set_clock("2027-01-10T10:00Z")
        s = self.smtp()
        s.sendmail("rep@example.com", ["jane@acme.com"], message(subject="Private"))
        s.quit()
        self.hid = json.loads(self.u.ctl("--json", "held", "list", check=0).stdout)[0]["id"]

    def test_socket_mode(self):
        st = os.stat(os.path.join(self.u.dir, "control.sock"))
        self.assertEqual(st.st_mode & 0o777, 0o666)

    def test_rep_sees_only_own_mail(self):
        r = as_rep(self.u, "--json", "held", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), [])
        r = as_rep(self.u, "held", "list")
        self.assertNotIn(self.hid, r.stdout)
        r = as_rep(self.u, "held", "show", self.hid)
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertNotIn("Private", r.stdout + r.stderr)

    def test_rep_release_denied_and_audited(self):
        r = as_rep(self.u, "held", "release", self.hid, "--reason", "mine now")
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn("not yours", r.stderr)
        r = as_rep(self.u, "held", "discard", self.hid)
        self.assertEqual(r.returncode, 4)
        time.sleep(1.2)
        self.assertEqual(self.sink.for_rcpt("jane@acme.com"), [])
        self.assertEqual(len(self.u.spool_files()), 1)
        # The admin sees it still held, and the denial is on record.
        self.assertEqual(self.u.ctl("held", "show", self.hid).returncode, 0)
        self.u.wait_for(lambda: "denied" in self.u.logtext() and REP_USER in self.u.logtext(),
                        what="denied in log")
        rep = json.loads(self.u.ctl("--json", "report", check=0).stdout)
        denied = {d["id"]: d["denied"] for d in rep["denied"]}
        self.assertEqual(denied.get(REP_USER), 2, rep)
        r = self.u.ctl("report", check=0)
        self.assertIn(REP_USER, r.stdout)
        # A rep's own report does not show other reps' mail.
        r = as_rep(self.u, "--json", "report")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["by_rep"], [])

    def test_rep_windows_are_their_own(self):
        r = as_rep(self.u, "--json", "window", "add", "zed@zzz.com", "--until", "2027-03-01", "--reason", "mine")
        self.assertEqual(r.returncode, 0, r.stderr)
        mine = json.loads(r.stdout)
        self.assertEqual(mine["owner"], REP_USER)
        # Another rep's run-time window is invisible to them; shared file
        # windows (no owner) apply to everyone and are listed.
        other = json.loads(self.u.ctl("--json", "window", "add", "amy@other.com", "--until", "2027-03-01",
                                      "--owner", "rep@example.com", check=0).stdout)
        self.assertEqual(other["owner"], "rep@example.com")
        listed = json.loads(as_rep(self.u, "--json", "window", "list").stdout)
        ids = sorted(w["id"] for w in listed)
        self.assertIn(mine["id"], ids)
        self.assertNotIn(other["id"], ids)
        self.assertEqual([w["source"] for w in listed if w["id"] != mine["id"]], ["file"])
        r = as_rep(self.u, "window", "end", other["id"])
        self.assertEqual(r.returncode, 4)
        # The admin sees all three; the rep may not end the shared window.
        self.assertEqual(len(json.loads(self.u.ctl("--json", "window", "list", check=0).stdout)), 3)
        r = as_rep(self.u, "window", "end", "jane@acme.com")
        self.assertEqual(r.returncode, 4)
        self.assertEqual(self.u.ctl("check", "jane@acme.com").returncode, 3)
        r = as_rep(self.u, "window", "end", mine["id"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.u.ctl("check", "zed@zzz.com").returncode, 0)

    def test_rep_cannot_debug_or_reload(self):
        self.assertEqual(as_rep(self.u, "reload").returncode, 4)
        self.assertEqual(as_rep(self.u, "debug", "clock", "set", "2027-08-01").returncode, 4)
        self.assertEqual(self.u.ctl("check", "jane@acme.com").returncode, 3)


if __name__ == "__main__":
    unittest.main()
