"""Retention: [daemon] audit_retention prunes old audit rows from the state
database (on the daily timer, at start-up, on reload and when the test
clock moves), `untilctl report` then counts only what is left, held mail
and windows stay; "forever" prunes nothing; a bad value is a FILE:LINE
error."""
import calendar
import json
import os
import re
import signal
import sqlite3
import subprocess
import time
import unittest

from harness import UNTILD, Sink, Untild, message

WINDOWS = ('jane@acme.com 2028-06-01 reason="Lease ends"\n'
           'bob@initech.com 2028-06-01 action=flag reason="Audit"\n')
T0 = "2027-03-01T10:00:00Z"     # first batch
T1 = "2027-03-21T10:00:00Z"     # T0 + 20 days
T2 = "2027-04-10T10:00:00Z"     # T0 + 40 days: T0 is past a 30-day cut, T1 is not
CUT = calendar.timegm(time.strptime(T2, "%Y-%m-%dT%H:%M:%SZ")) - 30 * 86400


def set_retention(u, value):
    """Put audit_retention into the [daemon] section of u's config."""
    with open(u.conf) as f:
        text = f.read()
    text = re.sub(r"(?m)^audit_retention = .*\n", "", text)
    text = text.replace("[daemon]\n", "[daemon]\naudit_retention = %s\n" % value, 1)
    with open(u.conf, "w") as f:
        f.write(text)


class RetentionBase(unittest.TestCase):
    retention = None

    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.u = Untild(self.sink, windows=WINDOWS)
        self.addCleanup(self.u.cleanup)
        set_retention(self.u, self.retention)
        self.u.start()

    def send(self, to):
        import smtplib
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20)
        try:
            s.sendmail("rep@example.com", [to], message(to=to))
        finally:
            s.close()

    def report(self, days="100"):
        r = json.loads(self.u.ctl("--json", "report", "--since", days, check=0).stdout)
        return ({x["id"]: x for x in r["by_rep"]}, {x["id"]: x for x in r["by_contact"]})

    def db_count(self, sql):
        db = sqlite3.connect("file:%s/state/untild.db?mode=ro" % self.u.dir, uri=True)
        try:
            return db.execute(sql).fetchone()[0]
        finally:
            db.close()

    def pruned_counts(self):
        return [int(n) for n in re.findall(r"retention: pruned (\d+) ", self.u.logtext())]

    def fill(self):
        """Audit rows at T0 (one held, one flagged) and T1 (one held)."""
        self.u.set_clock(T0)
        self.send("jane@acme.com")
        self.send("bob@initech.com")
        self.u.wait_for(lambda: self.sink.for_rcpt("bob@initech.com"), what="flagged relayed")
        self.u.set_clock(T1)
        self.send("jane@acme.com")
        self.assertEqual(len(self.u.spool_files()), 2)
        by_rep, by_contact = self.report()
        self.assertEqual((by_rep["rep@example.com"]["held"], by_rep["rep@example.com"]["flagged"]), (2, 1))
        self.assertEqual(by_contact["bob@initech.com"]["flagged"], 1)

    def assert_pruned_to_t1(self):
        by_rep, by_contact = self.report()
        self.assertEqual((by_rep["rep@example.com"]["held"], by_rep["rep@example.com"]["flagged"]), (1, 0))
        self.assertNotIn("bob@initech.com", by_contact)
        self.assertEqual(by_contact["jane@acme.com"]["held"], 1)
        self.assertEqual(self.db_count("SELECT count(*) FROM audit WHERE t < %d" % CUT), 0)
        self.assertEqual(self.db_count("SELECT count(*) FROM contacts WHERE t < %d" % CUT), 0)
        # Held mail and the windows are not the audit log: both stay.
        self.assertEqual(len(self.u.spool_files()), 2)
        self.assertEqual(len(self.u.held_json()), 2)



class Retention(RetentionBase):
    retention = "30d"

    def test_clock_move_prunes_older_than_retention(self):
        self.fill()
        self.assertEqual(self.pruned_counts(), [0, 0, 0])   # start-up, T0, T1
        old = self.db_count("SELECT count(*) FROM audit WHERE t < %d" % CUT)
        self.assertGreaterEqual(old, 2)     # at least held + flagged at T0
        # the contact history (issue 12, cadence) goes with the audit
        old += self.db_count("SELECT count(*) FROM contacts WHERE t < %d" % CUT)
        self.u.set_clock(T2)
        self.assertEqual(self.pruned_counts()[-1], old)
        self.assert_pruned_to_t1()
        # Pruning again finds nothing more; the store still takes rows.
        self.u.set_clock(T2)
        self.assertEqual(self.pruned_counts()[-1], 0)
        self.send("bob@initech.com")
        self.u.wait_for(lambda: len(self.sink.for_rcpt("bob@initech.com")) == 2, what="flagged relayed")
        by_rep, _ = self.report()
        self.assertEqual(by_rep["rep@example.com"]["flagged"], 1)


class RetentionForever(RetentionBase):
    retention = "forever"

    def test_forever_keeps_everything_then_reload_prunes(self):
        self.fill()
        total = self.db_count("SELECT count(*) FROM audit")
        self.u.set_clock(T2)
        self.u.set_clock("2028-05-01T00:00:00Z")   # 14 months on, windows still open
        self.u.set_clock(T2)
        self.assertEqual(self.pruned_counts(), [])
        self.assertEqual(self.db_count("SELECT count(*) FROM audit"), total)
        by_rep, by_contact = self.report()
        self.assertEqual((by_rep["rep@example.com"]["held"], by_rep["rep@example.com"]["flagged"]), (2, 1))
        self.assertEqual(by_contact["bob@initech.com"]["flagged"], 1)
        # A reload that sets a retention prunes at once (SIGHUP).
        set_retention(self.u, "30d")
        old = self.db_count("SELECT count(*) FROM audit WHERE t < %d" % CUT)
        old += self.db_count("SELECT count(*) FROM contacts WHERE t < %d" % CUT)
        self.u.proc.send_signal(signal.SIGHUP)
        self.u.wait_for(lambda: self.pruned_counts(), what="prune after reload")
        self.assertEqual(self.pruned_counts(), [old])
        self.assert_pruned_to_t1()


class RetentionConfig(unittest.TestCase):
    def check(self, value):
        u = Untild(None)
        self.addCleanup(u.cleanup)
        set_retention(u, value)
        return subprocess.run([UNTILD, "-t", "-c", u.conf], capture_output=True, text=True, timeout=20), u

    def test_values(self):
        for good in ("365d", "30d", "52w", "P30D", "0", "forever"):
            r, _ = self.check(good)
            self.assertEqual(r.returncode, 0, "%s: %s" % (good, r.stderr))
        for bad in ("soon", "-5d", "30x", "never", ""):
            r, u = self.check(bad)
            self.assertEqual(r.returncode, 1, bad)
            # [daemon] is on line 2, the key right after it.
            self.assertIn("%s:3: audit_retention" % u.conf, r.stderr, bad)


if __name__ == "__main__":
    unittest.main()
