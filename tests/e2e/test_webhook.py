"""Outgoing webhooks (issue 14), end to end: the real daemon, an aiosmtpd
sink upstream, and real HTTP receivers (http.server on 127.0.0.1, a free
port) that check every request's HMAC-SHA256 signature the way
man untild.conf(5) tells a receiver to. Events are signed, unique, in
order; a receiver that is down delays events and loses none, also across
a crash of the daemon; max_age and max_queue drop with a log line."""
import hashlib
import hmac
import json
import os
import smtplib
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import UNTILD, Sink, Untild, free_port, make_self_signed, message

T0 = "2026-12-02T10:00:00Z"
SECRET = "whsec_0123456789abcdef"


class Receiver:
    """A webhook receiver. It verifies each request as the man page says
    (t and v1 from X-Untild-Signature, HMAC-SHA256 of "t." + body) and
    records what came; `fail` answers 503 to the next N requests."""

    def __init__(self, secret, port=None, tls=None):
        self.secret = secret.encode()
        self.tls = tls           # (cert, key): HTTPS
        self.port = port or free_port()
        self.requests = []       # (event id header, parsed body, signature ok)
        self.fail = 0
        self.lock = threading.Lock()
        self.server = None

    def verify(self, header, body):
        parts = dict(p.split("=", 1) for p in header.split(","))
        expected = hmac.new(self.secret, parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300

    def start(self):
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = rec.verify(self.headers.get("X-Untild-Signature", "t=0,v1=x"), body)
                with rec.lock:
                    failing = rec.fail > 0
                    rec.fail -= failing
                    rec.requests.append((self.headers.get("X-Untild-Event-Id"), json.loads(body), ok,
                                         self.headers.get("Content-Type"), failing))
                self.send_response(503 if failing else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if self.tls:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def events(self):
        """The bodies answered 2xx, in the order they came."""
        with self.lock:
            return [b for (_, b, _, _, failing) in self.requests if not failing]

    def of_type(self, t):
        return [e for e in self.events() if e["type"] == t]


class WebhookTest(unittest.TestCase):
    hook_extra = ""

    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.dir = tempfile.mkdtemp(prefix="untild-e2e-")
        secret = os.path.join(self.dir, "crm.secret")
        with open(secret, "w") as f:
            f.write(SECRET + "\n")
        os.chmod(secret, 0o600)
        self.rx = Receiver(SECRET)
        self.addCleanup(self.rx.stop)
        self.held_rx = Receiver(SECRET)
        self.addCleanup(self.held_rx.stop)
        extra = ("[webhook crm]\nurl = http://127.0.0.1:%d/hooks/untild\nsecret_file = crm.secret\n%s\n"
                 "[webhook heldonly]\nurl = http://localhost:%d/h\nevents = message.held\n"
                 "secret_file = %s\n" % (self.rx.port, self.hook_extra, self.held_rx.port, secret))
        self.u = Untild(self.sink, extra=extra, workdir=self.dir)
        self.addCleanup(self.u.cleanup)

    def start(self):
        self.u.start()
        self.u.set_clock(T0)

    def queued(self, hook="crm"):
        db = sqlite3.connect(os.path.join(self.dir, "state", "untild.db"))
        try:
            return db.execute("SELECT count(*) FROM webhook_queue WHERE hook = ?", (hook,)).fetchone()[0]
        finally:
            db.close()

    def add_window(self, who, until="2027-01-01", *args):
        self.u.ctl("window", "add", who, "--until", until, *args, check=0)

    def send(self, to):
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20)
        try:
            s.sendmail("rep@example.com", [to], message(to=to, subject="Hello %s" % to))
        finally:
            s.close()

    def check_all_signed_unique(self, rx):
        with rx.lock:
            reqs = list(rx.requests)
        self.assertTrue(reqs)
        for (hid, body, ok, ctype, _) in reqs:
            self.assertTrue(ok, "bad signature on %s" % body)
            self.assertEqual(hid, body["id"])
            self.assertEqual(ctype, "application/json")
        ids = [b["id"] for b in rx.events()]
        self.assertEqual(len(ids), len(set(ids)), ids)


class WebhookEventsTest(WebhookTest):

    def test_every_kind_signed_unique_in_order(self):
        self.rx.start()
        self.held_rx.start()
        self.start()
        self.add_window("jane@acme.com", "2026-12-10", "--reason", "Lease ends in December")
        self.add_window("bob@initech.com", "2027-01-01", "--action", "flag")
        self.add_window("@globex.com", "2027-01-01", "--action", "reject")
        self.send("jane@acme.com")                                   # held
        self.send("bob@initech.com")                                 # flagged (relayed)
        with self.assertRaises(smtplib.SMTPRecipientsRefused):
            self.send("carl@globex.com")                             # rejected at RCPT
        self.u.ctl("window", "end", "jane@acme.com", check=0)        # ended, then released
        self.u.wait_for(lambda: self.sink.for_rcpt("jane@acme.com"), what="the release")
        want = ["window.created", "window.created", "window.created", "message.held", "message.flagged",
                "message.rejected", "window.ended", "message.released"]
        self.u.wait_for(lambda: len(self.rx.events()) >= len(want), what="8 events at the receiver")
        self.u.wait_for(lambda: self.held_rx.events(), what="the held-only receiver's event")
        ev = self.rx.events()
        self.assertEqual([e["type"] for e in ev], want)             # in order
        self.check_all_signed_unique(self.rx)
        self.check_all_signed_unique(self.held_rx)

        created = ev[0]["data"]
        self.assertEqual(created["contact"], "jane@acme.com")
        self.assertEqual(created["window"]["who"], ["jane@acme.com"])
        self.assertTrue(created["window"]["until"].startswith("2026-12-10T00:00:00"), created)
        self.assertEqual(created["window"]["reason"], "Lease ends in December")
        self.assertEqual(datetime.fromisoformat(ev[0]["time"].replace("Z", "+00:00")).isoformat(),
                         "2026-12-02T10:00:00+00:00")                # the daemon's clock
        held_id = ev[3]["data"]["message_ref"]
        self.assertEqual(ev[3]["data"]["contact"], "jane@acme.com")
        self.assertEqual(ev[3]["data"]["window_id"], created["window_id"])
        self.assertEqual(ev[4]["data"]["contact"], "bob@initech.com")
        self.assertEqual(ev[5]["data"]["contact"], "carl@globex.com")
        self.assertEqual(ev[6]["data"]["window_id"], created["window_id"])
        self.assertEqual(ev[7]["data"]["message_ref"], held_id)    # the same held message
        # [webhook heldonly] events = message.held: that one only.
        self.assertEqual([e["type"] for e in self.held_rx.events()], ["message.held"])
        self.assertEqual(self.held_rx.events()[0]["data"]["message_ref"], held_id)
        # One event, one id for both receivers (the receivers dedupe by it).
        self.assertEqual(self.held_rx.events()[0]["id"], ev[3]["id"])
        self.u.wait_for(lambda: self.queued() == 0, what="an empty queue")

    def test_window_changed(self):
        # window change (untilctl or PATCH /api/v1/windows/ID) is an event
        # of its own, with the window as it is now.
        self.rx.start()
        self.start()
        self.add_window("erin@acme.com", "2027-01-01")
        wid = [w for w in self.u.windows_json() if w["who"] == ["erin@acme.com"]][0]["id"]
        self.u.ctl("window", "change", wid, "--until", "2027-03-01", "--reason", "Moved to March")
        self.u.wait_for(lambda: len(self.rx.events()) >= 2, what="created and changed")
        ev = self.rx.events()
        self.assertEqual([e["type"] for e in ev], ["window.created", "window.changed"])
        self.assertEqual(ev[1]["data"]["window_id"], wid)
        self.assertTrue(ev[1]["data"]["window"]["until"].startswith("2027-03-01"), ev[1])
        self.assertEqual(ev[1]["data"]["window"]["reason"], "Moved to March")
        self.check_all_signed_unique(self.rx)

    def test_message_returned(self):
        self.rx.start()
        self.start()
        self.add_window("dave@acme.com")
        self.send("dave@acme.com")
        self.sink.reject["dave@acme.com"] = "550 5.1.1 no such user"
        self.u.ctl("held", "release", self.u.held_json()[0]["id"], "--reason", "go", check=0)
        self.u.wait_for(lambda: self.rx.of_type("message.returned"), what="message.returned")
        ret = self.rx.of_type("message.returned")[0]["data"]
        held = self.rx.of_type("message.held")[0]["data"]
        self.assertEqual(ret["contact"], "dave@acme.com")
        self.assertEqual(ret["message_ref"], held["message_ref"])
        self.assertIn("550", ret["reason"])
        self.assertFalse(self.rx.of_type("message.released"))
        self.check_all_signed_unique(self.rx)

    def test_window_opened_when_its_end_passes(self):
        self.rx.start()
        self.start()
        self.add_window("jane@acme.com", "2026-12-10")
        self.u.wait_for(lambda: self.rx.of_type("window.created"), what="window.created")
        wid = self.rx.of_type("window.created")[0]["data"]["window_id"]
        self.assertFalse(self.rx.of_type("window.opened"))
        self.u.set_clock("2026-12-10T00:00:30Z")
        self.u.wait_for(lambda: self.rx.of_type("window.opened"), what="window.opened")
        opened = self.rx.of_type("window.opened")
        self.assertEqual(len(opened), 1, opened)
        self.assertEqual(opened[0]["data"]["window_id"], wid)
        self.assertEqual(opened[0]["data"]["contact"], "jane@acme.com")
        self.assertTrue(opened[0]["data"]["due"].startswith("2026-12-10T00:00:00"), opened)
        self.check_all_signed_unique(self.rx)

    def test_errors_retried_with_the_same_id(self):
        self.rx.fail = 2
        self.rx.start()
        self.start()
        self.add_window("jane@acme.com")
        self.u.wait_for(lambda: self.rx.events(), what="the delivery after two 503s")
        with self.rx.lock:
            ids = [hid for (hid, _, _, _, _) in self.rx.requests]
        self.assertEqual(len(ids), 3, ids)
        self.assertEqual(len(set(ids)), 1, ids)                      # one event, tried three times
        self.u.wait_for(lambda: "delivered after 3 attempt(s)" in self.u.logtext(), what="the log line")
        self.assertIn("HTTP 503", self.u.logtext())
        self.check_all_signed_unique(self.rx)


class WebhookDownTest(WebhookTest):
    hook_extra = "retry_max = 1s\n"

    def test_receiver_down_then_up_loses_nothing_across_a_crash(self):
        self.start()
        for i in range(5):
            self.add_window("c%d@acme.com" % i)
        self.u.wait_for(lambda: "attempt 1, next in" in self.u.logtext(), what="a failed attempt")
        self.u.wait_for(lambda: "attempt 2, next in" in self.u.logtext(), what="a second failed attempt")
        self.assertEqual(self.queued(), 5)
        self.u.kill()                                                # kill -9: no clean shutdown
        self.assertEqual(self.queued(), 5)
        self.u.start()
        self.assertIn("webhook crm: 5 event(s) queued from before", self.u.logtext())
        self.add_window("c5@acme.com")
        self.u.wait_for(lambda: self.queued() == 6, what="six queued")
        self.rx.start()                                              # the receiver comes back
        self.u.wait_for(lambda: len(self.rx.events()) >= 6, what="six events delivered")
        self.u.wait_for(lambda: self.queued() == 0, what="an empty queue")
        ev = self.rx.events()
        self.assertEqual([e["data"]["contact"] for e in ev], ["c%d@acme.com" % i for i in range(6)])
        self.check_all_signed_unique(self.rx)


class WebhookLimitsTest(WebhookTest):
    hook_extra = "retry_max = 1s\nmax_age = 2s\nmax_queue = 3\n"

    def test_queue_limit_and_max_age_drop_with_a_log_line(self):
        self.start()
        for i in range(5):
            self.add_window("c%d@acme.com" % i)
        self.u.wait_for(lambda: "webhook crm: queue full (max_queue 3)" in self.u.logtext(), what="queue full")
        self.assertLessEqual(self.queued(), 3)
        self.u.wait_for(lambda: self.queued() == 0, what="the queue emptied by max_age")
        self.assertEqual(self.u.logtext().count("dropped: not delivered within max_age"), 3)
        self.rx.start()
        self.add_window("late@acme.com")
        self.u.wait_for(lambda: self.rx.events(), what="the new event")
        self.u.wait_for(lambda: self.queued() == 0, what="an empty queue")
        self.assertEqual([e["data"]["contact"] for e in self.rx.events()], ["late@acme.com"])
        self.assertIn("queue has room again; 2 event(s) were dropped", self.u.logtext())


class WebhookTlsTest(unittest.TestCase):

    def test_https_with_tls_ca_and_an_untrusted_one(self):
        """https to a receiver whose certificate tls_ca names: delivered;
        the same receiver without tls_ca (not in the system's trust): the
        event waits, and the log says why."""
        sink = Sink().start()
        self.addCleanup(sink.stop)
        d = tempfile.mkdtemp(prefix="untild-e2e-")
        cert, key = make_self_signed(d)
        with open(os.path.join(d, "s.secret"), "w") as f:
            f.write(SECRET + "\n")
        os.chmod(os.path.join(d, "s.secret"), 0o600)
        good, bad = Receiver(SECRET, tls=(cert, key)).start(), Receiver(SECRET, tls=(cert, key)).start()
        self.addCleanup(good.stop)
        self.addCleanup(bad.stop)
        extra = ("[webhook good]\nurl = https://127.0.0.1:%d/\nsecret_file = s.secret\ntls_ca = %s\n"
                 "[webhook bad]\nurl = https://127.0.0.1:%d/\nsecret_file = s.secret\nretry_max = 1s\n"
                 % (good.port, cert, bad.port))
        u = Untild(sink, extra=extra, workdir=d)
        self.addCleanup(u.cleanup)
        u.start()
        u.ctl("window", "add", "jane@acme.com", "--until", "2027-01-01", check=0)
        u.wait_for(lambda: good.events(), what="the event over https")
        self.assertEqual(good.events()[0]["type"], "window.created")
        self.assertTrue(all(ok for (_, _, ok, _, _) in good.requests))
        u.wait_for(lambda: "webhook bad: event" in u.logtext() and "attempt 2" in u.logtext(),
                   what="the untrusted receiver's failures")
        self.assertEqual(bad.requests, [])              # never reached past the TLS handshake
        why = [l for l in u.logtext().splitlines() if "webhook bad: event" in l][0]
        self.assertIn("certificate", why)


class WebhookConfigTest(unittest.TestCase):

    def test_untild_t_reports_file_and_line(self):
        d = tempfile.mkdtemp(prefix="untild-e2e-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        conf = os.path.join(d, "untild.conf")
        with open(conf, "w") as f:
            f.write("[daemon]\nstate_dir = %s/state\n"                    # 1-2
                    "[webhook crm]\n"                                   # 3
                    "url = http://crm.example.com/hook\n"               # 4
                    "events = window.opened, message.bounced\n"         # 5
                    "secret_file = %s/missing.secret\n" % (d, d))       # 6
        r = subprocess.run([UNTILD, "-t", "-c", conf], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        out = r.stdout + r.stderr
        self.assertIn("%s:4: [webhook crm] url: http:// is allowed only to a loopback host" % conf, out)
        self.assertIn('%s:5: events: unknown event "message.bounced"' % conf, out)
        self.assertIn("%s:6: secret_file %s/missing.secret" % (conf, d), out)


if __name__ == "__main__":
    unittest.main()
