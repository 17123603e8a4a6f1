"""Shared state on PostgreSQL (issue 13): two untild gateways on one
throwaway PostgreSQL cluster. A window added at one holds mail at the other
within a second (the latency is recorded), an end at one releases mail held
at the other, the audit of both is in one report; with the database stopped
both keep deciding from what they know, journal their changes and send them
when it is back; a gateway restarted during the outage starts from its
local copy; a dead gateway's spool is taken over by another.

The cluster runs as an unprivileged user (initdb and postgres refuse root),
its Unix socket in the test's temp dir, on a free port. Skipped when
Debian's postgresql-15 is not installed."""
import json
import os
import pwd
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
import unittest

from harness import (TIMEOUT_SCALE, UNTILD, Dovecot, Postfix, Sink, Untild, free_port, imap_append,
                     imap_quote, message, postfix_available)

PGBIN = "/usr/lib/postgresql/15/bin"


def pg_missing():
    for b in ("initdb", "pg_ctl", "postgres", "psql"):
        if not os.access(os.path.join(PGBIN, b), os.X_OK):
            return "PostgreSQL 15 is not installed (%s/%s; apt-get install postgresql-15)" % (PGBIN, b)
    if os.geteuid() == 0:
        for u in ("postgres", "nobody"):
            try:
                pwd.getpwnam(u)
                break
            except KeyError:
                pass
        else:
            return "no unprivileged user to run PostgreSQL as"
    return None


class Postgres:
    """A throwaway cluster: trust auth on a Unix socket only."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="untild-pg-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            for u in ("postgres", "nobody"):
                try:
                    pwd.getpwnam(u)
                    self.user = u
                    break
                except KeyError:
                    pass
            shutil.chown(self.dir, self.user)
        self.url = "postgresql:///postgres?host=%s&port=%d&user=untild" % (self.dir, self.port)

    def run(self, *argv, check=True):
        pre = ["runuser", "-u", self.user, "--"] if self.user else []
        r = subprocess.run(pre + [os.path.join(PGBIN, argv[0])] + list(argv[1:]),
                           capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE)
        if check and r.returncode != 0:
            raise RuntimeError("%s: %s%s" % (argv[0], r.stdout, r.stderr))
        return r

    def init(self):
        self.run("initdb", "-D", self.data, "-U", "untild", "--auth=trust", "-E", "UTF8",
                 "--no-sync", "--no-instructions")
        return self

    def start(self):
        self.run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "pg.log"), "-w", "-t", "60",
                 "-o", "-p %d -k %s -c listen_addresses='' -c fsync=off" % (self.port, self.dir), "start")
        return self

    def stop(self):
        self.run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", check=False)

    def sql(self, q, db="postgres"):
        r = self.run("psql", "-h", self.dir, "-p", str(self.port), "-U", "untild", "-d", db,
                     "-Atqc", q)
        return r.stdout.strip()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


WINDOWS = 'jane@acme.com 2027-07-01 reason="Lease ends in July"\n'


def store_section(pg, node):
    return "[store]\nurl = %s\nnode = %s\nretry_interval = 1\n" % (pg.url, node)


@unittest.skipIf(pg_missing(), pg_missing() or "")
class PgStore(unittest.TestCase):
    def setUp(self):
        self.pg = Postgres().init().start()
        self.addCleanup(self.pg.cleanup)
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.a = self.gateway("a")
        self.b = self.gateway("b")

    def gateway(self, node, start=True):
        u = Untild(self.sink, windows=WINDOWS, extra=store_section(self.pg, node))
        self.addCleanup(u.cleanup)
        if start:
            self.boot(u)
        return u

    def boot(self, u, connected=True):
        u.start()
        u.set_clock("2027-01-10T10:00Z")
        if connected:
            u.wait_for(lambda: self.status(u)["store"]["state"] == "connected", what="connected")
        return u

    @staticmethod
    def status(u):
        return json.loads(u.ctl("--json", "status", check=0).stdout)

    @staticmethod
    def jctl(u, *args):
        return json.loads(u.ctl("--json", *args, check=0).stdout)

    def send(self, u, to, subject):
        s = smtplib.SMTP("127.0.0.1", u.port, timeout=20 * TIMEOUT_SCALE)
        s.sendmail("rep@example.com", [to], message(to=to, subject=subject))
        s.quit()

    @staticmethod
    def held(u, subject):
        return [h for h in json.loads(u.ctl("--json", "held", "list", check=0).stdout)
                if h["subject"] == subject]

    def test_window_added_at_a_holds_at_b_within_a_second(self):
        self.assertEqual(self.b.ctl("check", "carol@hooli.com").returncode, 0)
        t0 = time.time()
        w = self.jctl(self.a, "window", "add", "carol@hooli.com", "--until", "2027-12-01",
                      "--reason", "Negotiation")
        self.assertTrue(w["id"].endswith("-a"), w["id"])   # ids are unique across gateways
        self.b.wait_for(lambda: self.b.ctl("check", "carol@hooli.com").returncode == 3,
                        timeout=5, what="the window at B")
        self.assertLess(time.time() - t0, 1.0 * TIMEOUT_SCALE + 0.5)
        # The latency is measured and recorded: log line and status.
        m = re.search(r"store: window %s changed at a applied \(propagation (\d+) ms\)" % re.escape(w["id"]),
                      self.b.logtext())
        self.assertIsNotNone(m, self.b.logtext()[-3000:])
        self.assertLess(int(m.group(1)), 1000)
        lat = self.status(self.b)["store"]["latency_ms"]
        self.assertGreaterEqual(lat["samples"], 1)
        self.assertLess(lat["p99"], 1000)
        ws = {x["id"]: x for x in self.jctl(self.b, "window", "list")}
        self.assertEqual(ws[w["id"]]["reason"], "Negotiation")
        # It holds mail at B.
        self.send(self.b, "carol@hooli.com", "Offer at B")
        self.assertEqual(len(self.held(self.b, "Offer at B")), 1)
        self.assertEqual(self.sink.for_rcpt("carol@hooli.com"), [])

    def test_end_at_b_releases_mail_held_at_a(self):
        w = self.jctl(self.a, "window", "add", "carol@hooli.com", "--until", "2027-12-01")
        self.send(self.a, "carol@hooli.com", "Offer")
        self.assertEqual(len(self.held(self.a, "Offer")), 1)
        self.b.wait_for(lambda: w["id"] in [x["id"] for x in self.jctl(self.b, "window", "list")],
                        what="the window at B")
        r = self.b.ctl("window", "end", w["id"], check=0)
        self.assertIn(w["id"], r.stdout)
        # The clock is frozen: only the end from B can release it at A.
        self.a.wait_for(lambda: len(self.sink.for_rcpt("carol@hooli.com")) == 1, what="release at A")
        self.a.wait_for(lambda: self.held(self.a, "Offer") == [], what="spool empty at A")
        self.assertRegex(self.a.logtext(), r"store: window %s ended at b applied" % re.escape(w["id"]))

    def test_file_window_ended_by_hand_is_shared(self):
        self.send(self.b, "jane@acme.com", "Lease")
        self.assertEqual(len(self.held(self.b, "Lease")), 1)
        self.a.ctl("window", "end", "jane@acme.com", check=0)
        self.b.wait_for(lambda: len(self.sink.for_rcpt("jane@acme.com")) == 1, what="release at B")
        self.assertEqual(self.b.ctl("check", "jane@acme.com").returncode, 0)
        # Still ended after B restarts (its local copy has the end).
        self.b.restart()
        self.b.set_clock("2027-01-10T10:00Z")
        self.assertEqual(self.b.ctl("check", "jane@acme.com").returncode, 0)

    def test_audit_of_both_gateways_in_one_report(self):
        self.jctl(self.a, "window", "add", "@hooli.com", "--until", "2027-12-01")
        self.b.wait_for(lambda: self.b.ctl("check", "x@hooli.com").returncode == 3, what="window at B")
        self.send(self.a, "carol@hooli.com", "From A")
        self.send(self.b, "dave@hooli.com", "From B")

        def contacts(u):
            rep = self.jctl(u, "report")
            return {c["id"]: c["held"] for c in rep["by_contact"]}
        for u in (self.a, self.b):
            u.wait_for(lambda: contacts(u).get("carol@hooli.com") == 1 and
                       contacts(u).get("dave@hooli.com") == 1, what="both gateways' audit")
        self.assertEqual(self.pg.sql("SELECT count(*) FROM untild_audit WHERE event = 'held'"), "2")

    def test_outage_keeps_holding_journals_and_replays(self):
        w = self.jctl(self.a, "window", "add", "carol@hooli.com", "--until", "2027-12-01")
        self.b.wait_for(lambda: self.b.ctl("check", "carol@hooli.com").returncode == 3, what="window at B")
        self.pg.stop()
        for u in (self.a, self.b):
            u.wait_for(lambda: self.status(u)["store"]["state"] == "degraded", what="degraded")
            self.assertIn("store degraded since", u.logtext())
            self.assertIn("degraded since", u.ctl("status", check=0).stdout)
        # Known windows still hold at both.
        self.send(self.b, "carol@hooli.com", "During outage")
        self.assertEqual(len(self.held(self.b, "During outage")), 1)
        # A change during the outage is journalled at A and decided there.
        w2 = self.jctl(self.a, "window", "add", "dave@hooli.com", "--until", "2027-12-01")
        self.assertEqual(self.a.ctl("check", "dave@hooli.com").returncode, 3)
        self.assertGreaterEqual(self.status(self.a)["store"]["journal"], 2)   # window + audit
        self.assertEqual(self.b.ctl("check", "dave@hooli.com").returncode, 0)
        self.pg.start()
        self.b.wait_for(lambda: self.b.ctl("check", "dave@hooli.com").returncode == 3, timeout=15,
                        what="the outage's window at B")
        self.a.wait_for(lambda: self.status(self.a)["store"]["journal"] == 0, what="journal drained")
        for u in (self.a, self.b):
            u.wait_for(lambda: self.status(u)["store"]["state"] == "connected", what="connected")
            self.assertIn("PostgreSQL is back", u.logtext())
        # Nothing lost, nothing duplicated.
        self.assertEqual(self.pg.sql("SELECT count(*) FROM untild_windows WHERE NOT ended"), "2")
        self.assertEqual(self.pg.sql("SELECT count(*) FROM untild_audit WHERE event = 'window-added'"), "2")
        self.assertEqual(self.pg.sql("SELECT count(*) FROM untild_audit WHERE window_id = '%s'" % w2["id"]), "1")
        self.assertIn(w["id"], [x["id"] for x in self.jctl(self.b, "window", "list")])

    def test_conflict_during_outage_latest_change_wins(self):
        w = self.jctl(self.a, "window", "add", "carol@hooli.com", "--until", "2027-12-01")
        self.b.wait_for(lambda: self.b.ctl("check", "carol@hooli.com").returncode == 3, what="window at B")
        self.pg.stop()
        for u in (self.a, self.b):
            u.wait_for(lambda: self.status(u)["store"]["state"] == "degraded", what="degraded")
        # B ends the window during the outage; A knows nothing of it.
        self.b.ctl("window", "end", w["id"], check=0)
        self.assertEqual(self.a.ctl("check", "carol@hooli.com").returncode, 3)
        self.pg.start()
        # Ending wins over nothing: A learns of the end.
        self.a.wait_for(lambda: self.a.ctl("check", "carol@hooli.com").returncode == 0, timeout=15,
                        what="the end at A")
        self.assertEqual(self.pg.sql("SELECT ended FROM untild_windows WHERE id = '%s'" % w["id"]), "t")

    def test_restart_while_database_down_starts_from_local_copy(self):
        w = self.jctl(self.a, "window", "add", "carol@hooli.com", "--until", "2027-12-01")
        self.b.wait_for(lambda: self.b.ctl("check", "carol@hooli.com").returncode == 3, what="window at B")
        self.pg.stop()
        self.b.stop()
        self.boot(self.b, connected=False)
        self.b.wait_for(lambda: self.status(self.b)["store"]["state"] == "degraded", what="degraded")
        self.assertIn(w["id"], [x["id"] for x in self.jctl(self.b, "window", "list")])
        self.send(self.b, "carol@hooli.com", "After restart")
        self.assertEqual(len(self.held(self.b, "After restart")), 1)
        self.assertEqual(self.sink.for_rcpt("carol@hooli.com"), [])

    def test_check_mode_reports_connection_and_schema(self):
        r = subprocess.run([UNTILD, "-t", "-c", self.a.conf], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("schema version 1", r.stdout)
        # A database migrated by a newer untild is refused with the reason.
        self.pg.sql("INSERT INTO untild_schema VALUES (99)")
        r = subprocess.run([UNTILD, "-t", "-c", self.a.conf], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("schema version 99 is newer", r.stdout)
        self.pg.stop()
        r = subprocess.run([UNTILD, "-t", "-c", self.a.conf], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot connect", r.stdout)

    def test_8bit_text_does_not_block_the_journal(self):
        """A reason that is not UTF-8 (PostgreSQL refuses such text) is
        sent with '?' for the bad bytes; what follows it is not held up."""
        from harness import UNTILCTL
        r = subprocess.run([UNTILCTL, "-s", os.path.join(self.a.dir, "control.sock"), "window", "add",
                            "carol@hooli.com", "--until", "2027-12-01", "--reason", b"Caf\xe9 talks"],
                           capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 0, r)
        self.jctl(self.a, "window", "add", "dave@hooli.com", "--until", "2027-12-01")
        self.b.wait_for(lambda: self.b.ctl("check", "dave@hooli.com").returncode == 3, what="next window at B")
        self.assertEqual(self.b.ctl("check", "carol@hooli.com").returncode, 3)
        reasons = [w.get("reason") for w in self.jctl(self.b, "window", "list")]
        self.assertIn("Caf? talks", reasons)
        self.assertEqual(self.status(self.a)["store"]["journal"], 0)

    def test_gateways_converge_after_outages(self):
        """Random adds and ends at both gateways across two outages (fixed
        seed): afterwards both list the same windows as PostgreSQL holds,
        and every change is in PostgreSQL's audit exactly once."""
        import random
        rnd = random.Random(13)
        gws = (self.a, self.b)
        adds = 0
        ends = 0
        for rnd_no in range(2):
            self.pg.stop()
            for u in gws:
                u.wait_for(lambda: self.status(u)["store"]["state"] == "degraded", what="degraded")
            for step in range(12):
                u = rnd.choice(gws)
                live = [w["id"] for w in self.jctl(u, "window", "list") if w["source"] == "runtime"]
                if live and rnd.random() < 0.4:
                    self.assertEqual(u.ctl("window", "end", rnd.choice(live)).returncode, 0)
                    ends += 1
                else:
                    self.jctl(u, "window", "add", "c%d.%d@conv.example" % (rnd_no, step),
                              "--until", "2027-12-01")
                    adds += 1
            self.pg.start()
            for u in gws:
                u.wait_for(lambda: self.status(u)["store"]["journal"] == 0, timeout=15, what="journal drained")

        def ids(u):
            return sorted(w["id"] for w in self.jctl(u, "window", "list") if w["source"] == "runtime")
        want = sorted(self.pg.sql("SELECT id FROM untild_windows WHERE NOT ended").split())
        for u in gws:
            u.wait_for(lambda: ids(u) == want, timeout=10, what="the same windows as PostgreSQL")
        self.assertEqual(int(self.pg.sql("SELECT count(*) FROM untild_audit WHERE event = 'window-added'")), adds)
        self.assertEqual(int(self.pg.sql("SELECT count(*) FROM untild_audit WHERE event = 'window-ended'")), ends)

    def test_spool_takeover_from_a_dead_gateway(self):
        """B dies for good with mail held; its spool files move to A (A
        stopped), A starts and owns them: listed, held by the shared
        windows, released once each when the window ends."""
        w = self.jctl(self.a, "window", "add", "carol@hooli.com", "--until", "2027-12-01")
        self.b.wait_for(lambda: self.b.ctl("check", "carol@hooli.com").returncode == 3, what="window at B")
        for n in (1, 2):
            self.send(self.b, "carol@hooli.com", "Stranded %d" % n)
        ids = [self.held(self.b, "Stranded %d" % n)[0]["id"] for n in (1, 2)]
        self.b.kill()
        self.a.stop()
        src = os.path.join(self.b.dir, "state", "spool")
        dst = os.path.join(self.a.dir, "state", "spool", "held")
        for sub in ("held", "active"):
            for name in os.listdir(os.path.join(src, sub)):
                os.rename(os.path.join(src, sub, name), os.path.join(dst, name))
        self.boot(self.a)
        self.assertEqual(sorted(h["id"] for h in self.held(self.a, "Stranded 1") + self.held(self.a, "Stranded 2")),
                         sorted(ids))
        self.assertEqual(self.sink.for_rcpt("carol@hooli.com"), [])
        self.a.ctl("window", "end", w["id"], check=0)
        self.a.wait_for(lambda: len(self.sink.for_rcpt("carol@hooli.com")) == 2, what="both released")
        self.a.wait_for(lambda: self.a.spool_files() == [], what="A's spool empty")
        self.assertEqual(len(self.sink.for_rcpt("carol@hooli.com")), 2)
        self.assertEqual(os.listdir(os.path.join(src, "held")), [])


@unittest.skipIf(pg_missing(), pg_missing() or "")
class PgMigrate(unittest.TestCase):
    """Several gateways starting at once on an empty database: one
    migrates, the others wait, none fails."""

    def test_concurrent_first_start(self):
        pg = Postgres().init().start()
        self.addCleanup(pg.cleanup)
        us = [Untild(None, extra=store_section(pg, n)) for n in ("x", "y", "z")]
        for u in us:
            self.addCleanup(u.cleanup)
            u.start(wait=False)
        for u in us:
            u.wait_for(lambda: "connected to PostgreSQL" in u.logtext(), timeout=20, what="connected")
        self.assertEqual(pg.sql("SELECT string_agg(version::text, ',') FROM untild_schema"), "1")
        self.assertEqual(sum(u.logtext().count("schema migrated to version 1") for u in us), 1)


@unittest.skipIf(pg_missing() or not os.path.exists("/usr/sbin/dovecot"),
                 pg_missing() or "Dovecot is not installed")
class PgWatcherWindows(unittest.TestCase):
    """What gateway A's IMAP watcher learns reaches gateway B, which has no
    watcher: windows from a "Contact later" folder (and their end), and
    messages seen from quiet contacts (customer re-opened)."""
    rep, password = "rep@example.com", "s3cret-Pa55"

    def setUp(self):
        pg = Postgres().init().start()
        self.addCleanup(pg.cleanup)
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        dv = Dovecot()
        self.addCleanup(dv.cleanup)
        dv.add_user(self.rep, self.password).start()
        self.a = a = Untild(self.sink, windows=WINDOWS, extra=store_section(pg, "a"))
        self.b = b = Untild(self.sink, windows=WINDOWS, extra=store_section(pg, "b"))
        for u in (a, b):
            self.addCleanup(u.cleanup)
        pw = os.path.join(a.dir, "imap.pass")
        with open(pw, "w") as f:
            f.write(self.password + "\n")
        os.chmod(pw, 0o600)
        with open(a.conf, "a") as f:
            f.write(dv.untild_section(self.rep, pw))
        for u in (a, b):
            u.start()
            u.set_clock("2027-01-10T10:00Z")
        a.wait_for(lambda: "imap[%s]: synced" % self.rep in a.logtext(), timeout=15, what="synced")
        self.c = dv.client(self.rep)
        self.addCleanup(self.c.logout)

    def test_folder_window_reaches_the_other_gateway(self):
        a, b, c = self.a, self.b, self.c
        c.create(imap_quote("Contact later/2099-07-01"))
        imap_append(c, "Contact later/2099-07-01",
                    ("From: Dave <dave@initech.com>\r\nTo: %s\r\nSubject: Budget freeze\r\n"
                     "Message-ID: <bf1@initech.com>\r\n\r\nLater.\r\n" % self.rep).encode())
        a.wait_for(lambda: a.ctl("check", "dave@initech.com").returncode == 3, timeout=15, what="window at A")
        b.wait_for(lambda: b.ctl("check", "dave@initech.com").returncode == 3, timeout=5, what="window at B")
        self.assertRegex(b.logtext(), r"store: window i\S+ changed at a applied")
        c.select(imap_quote("Contact later/2099-07-01"))
        c.uid("STORE", "1:*", "+FLAGS", r"(\Deleted)")
        c.expunge()
        b.wait_for(lambda: b.ctl("check", "dave@initech.com").returncode == 0, timeout=15, what="ended at B")

    def test_customer_mail_seen_at_a_lets_the_reply_through_at_b(self):
        import sqlite3
        cid = "cust%d@acme.com" % os.getpid()
        imap_append(self.c, "INBOX", ("From: Jane <jane@acme.com>\r\nTo: %s\r\nSubject: Can we talk now?\r\n"
                                      "Message-ID: <%s>\r\n\r\nNow.\r\n" % (self.rep, cid)).encode())
        self.a.wait_for(lambda: "message %s recorded" % cid in self.a.logtext(), timeout=15, what="seen at A")

        def seen_at_b():
            db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.b.dir, "state", "untild.db"),
                                 uri=True, timeout=5)
            try:
                return db.execute("SELECT count(*) FROM seen WHERE message_id = ?", (cid,)).fetchone()[0]
            finally:
                db.close()
        self.b.wait_for(lambda: seen_at_b() == 1, timeout=5, what="seen row at B")
        s = smtplib.SMTP("127.0.0.1", self.b.port, timeout=20 * TIMEOUT_SCALE)
        s.sendmail(self.rep, ["jane@acme.com"],
                   ("From: %s\r\nTo: jane@acme.com\r\nSubject: Re: Can we talk now?\r\n"
                    "Message-ID: <r%s>\r\nIn-Reply-To: <%s>\r\nReferences: <%s>\r\n\r\nYes.\r\n"
                    % (self.rep, cid, cid, cid)).encode())
        s.quit()
        self.b.wait_for(lambda: self.sink.for_rcpt("jane@acme.com"), what="reply relayed at B")
        self.assertEqual(self.b.spool_files(), [])
        # Not a blanket pass: a fresh message to jane is still held at B.
        s = smtplib.SMTP("127.0.0.1", self.b.port, timeout=20 * TIMEOUT_SCALE)
        s.sendmail(self.rep, ["jane@acme.com"], message(to="jane@acme.com", subject="Unrelated offer"))
        s.quit()
        self.assertEqual(len(self.b.spool_files()), 1)


@unittest.skipIf(pg_missing() or not postfix_available(),
                 pg_missing() or "needs root and Postfix (postfix, postsuper, postqueue)")
class PgPostfixRelay(unittest.TestCase):
    """Two gateways and a Postfix relay whose untild runs the policy
    service, all on one database: a window added at gateway A holds mail
    at B and in the relay's hold queue; the audit of all three is in one
    report at A."""

    def test_window_from_a_holds_at_b_and_at_the_postfix_relay(self):
        pg = Postgres().init().start()
        self.addCleanup(pg.cleanup)
        sink = Sink().start()
        self.addCleanup(sink.stop)
        pport = free_port()
        pf = Postfix(sink.port, policy="inet:127.0.0.1:%d" % pport)
        self.addCleanup(pf.cleanup)
        a = Untild(sink, windows=WINDOWS, extra=store_section(pg, "a"))
        b = Untild(sink, windows=WINDOWS, extra=store_section(pg, "b"))
        c = Untild(sink, windows=WINDOWS, extra=store_section(pg, "mx1") +
                   "[policy_service]\nlisten = inet:127.0.0.1:%d\npostfix_config_dir = %s\n" % (pport, pf.dir))
        for u in (a, b, c):
            self.addCleanup(u.cleanup)
            u.start()
            u.set_clock("2027-01-10T10:00Z")
        pf.start()
        self.jctl = lambda u, *args: json.loads(u.ctl("--json", *args, check=0).stdout)
        self.jctl(a, "window", "add", "@hooli.com", "--until", "2027-12-01", "--reason", "Merger")
        for u in (b, c):
            u.wait_for(lambda: u.ctl("check", "x@hooli.com").returncode == 3, timeout=5, what="window")
        r = pf.swaks("carol@hooli.com")
        self.assertEqual(r.returncode, 0, r.stdout)
        c.wait_for(lambda: [q for q in pf.queue() if q.get("queue_name") == "hold"], what="Postfix hold")
        s = smtplib.SMTP("127.0.0.1", b.port, timeout=20 * TIMEOUT_SCALE)
        s.sendmail("rep@example.com", ["dave@hooli.com"], message(to="dave@hooli.com", subject="At B"))
        s.quit()
        s = smtplib.SMTP("127.0.0.1", a.port, timeout=20 * TIMEOUT_SCALE)
        s.sendmail("rep@example.com", ["erin@hooli.com"], message(to="erin@hooli.com", subject="At A"))
        s.quit()
        self.assertEqual(sink.for_rcpt("carol@hooli.com") + sink.for_rcpt("dave@hooli.com") +
                         sink.for_rcpt("erin@hooli.com"), [])

        def held_contacts():
            return {x["id"] for x in self.jctl(a, "report")["by_contact"] if x["held"]}
        a.wait_for(lambda: held_contacts() >= {"carol@hooli.com", "dave@hooli.com", "erin@hooli.com"},
                   what="the audit of all three at A")


@unittest.skipIf(pg_missing(), pg_missing() or "")
class PgPassword(unittest.TestCase):
    """A role with a password (scram-sha-256): password_file and
    password_command are read at connect; a wrong one is refused with the
    server's reason, and untild -t says so."""

    def setUp(self):
        self.pg = Postgres().init()
        self.addCleanup(self.pg.cleanup)
        with open(os.path.join(self.pg.data, "pg_hba.conf"), "w") as f:
            f.write("local all untild trust\nlocal all gw scram-sha-256\n")
        self.pg.start()
        self.pg.sql("CREATE ROLE gw LOGIN PASSWORD 'Corr3ct-horse'")
        self.pg.sql("CREATE DATABASE shared OWNER gw")
        self.url = "postgresql:///shared?host=%s&port=%d&user=gw" % (self.pg.dir, self.pg.port)

    def untild(self, node, extra):
        u = Untild(None, extra="[store]\nurl = %s\nnode = %s\nretry_interval = 1\n%s" % (self.url, node, extra))
        self.addCleanup(u.cleanup)
        return u

    def check(self, u):
        return subprocess.run([UNTILD, "-t", "-c", u.conf], capture_output=True, text=True, timeout=30)

    def test_password_file_and_command(self):
        pw = tempfile.NamedTemporaryFile("w", delete=False, dir="/tmp")
        self.addCleanup(os.unlink, pw.name)
        pw.write("Corr3ct-horse\n")
        pw.close()
        os.chmod(pw.name, 0o600)
        a = self.untild("a", "password_file = %s\n" % pw.name)
        r = self.check(a)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("untild migrates it to 1", r.stdout)      # empty database
        a.start()
        a.wait_for(lambda: "connected to PostgreSQL" in a.logtext(), what="connected")
        self.assertEqual(self.pg.sql("SELECT tableowner FROM pg_tables WHERE tablename = 'untild_windows'",
                                     db="shared"), "gw")
        b = self.untild("b", "password_command = echo Corr3ct-horse\n")
        self.assertEqual(self.check(b).returncode, 0)
        self.assertNotIn("Corr3ct-horse", a.logtext())

    def test_wrong_password_is_refused_with_the_reason(self):
        a = self.untild("a", "password_command = echo wrong\n")
        r = self.check(a)
        self.assertEqual(r.returncode, 1)
        self.assertIn("password authentication failed", r.stdout)
        a.start()
        a.wait_for(lambda: "store degraded since" in a.logtext(), what="degraded")
        self.assertIn("password authentication failed", a.logtext())
        self.assertNotIn("wrong", a.logtext().replace("wrong password", ""))


if __name__ == "__main__":
    unittest.main()
