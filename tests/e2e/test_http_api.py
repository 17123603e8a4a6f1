"""The HTTP JSON API (issue 14, first part): tokens made with untilctl, every
/api/v1 request authenticated with a Bearer token, rep tokens confined to the
rep's own mail, windows added through the API holding real SMTP mail,
releases through the API reaching the real upstream (aiosmtpd Sink), bad
input refused with a JSON error and nothing changed. All against the real
daemon on 127.0.0.1, through urllib (and curl for TLS)."""
import json
import os
import re
import shutil
import subprocess
import unittest
import urllib.error
import urllib.request

from harness import UNTILCTL, UNTILD, Sink, Untild, TIMEOUT_SCALE, free_port, make_self_signed, message
from test_core import REP_USER, setUpModule as core_setup, tearDownModule as core_teardown


def setUpModule():
    core_setup()        # the local non-admin user of test_core (as root)


def tearDownModule():
    core_teardown()


def api(port, method, path, token=None, body=None, headers=None, scheme="http"):
    """(status, parsed JSON or None, headers) of one request."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request("%s://127.0.0.1:%d%s" % (scheme, port, path), data=data, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=20 * TIMEOUT_SCALE) as r:
            raw, status, hdrs = r.read(), r.status, r.headers
    except urllib.error.HTTPError as e:
        raw, status, hdrs = e.read(), e.code, e.headers
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = None
    return status, doc, hdrs


class ApiTest(unittest.TestCase):
    smtp_extra = ""
    http_extra = ""

    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.hport = free_port()
        self.u = Untild(self.sink, smtp_extra=self.smtp_extra,
                        extra="[http]\nlisten = 127.0.0.1:%d\n%s" % (self.hport, self.http_extra))
        self.addCleanup(self.u.cleanup)
        self.u.start()
        self.u.set_clock("2027-01-10T10:00Z")

    def call(self, method, path, token=None, body=None, **kw):
        return api(self.hport, method, path, token, body, **kw)

    def token(self, name, scope):
        r = self.u.ctl("token", "add", name, "--scope", scope, check=0)
        tok = r.stdout.strip()
        self.assertRegex(tok, r"^utk_[0-9a-f]{64}$")
        return tok

    def hold_mail(self, to="jane@acme.com", subject="Renewal", frm="rep@example.com"):
        """A window on to (unless there is one) and a message to it, held."""
        before = len(self.u.held_json())
        s = __import__("smtplib").SMTP("127.0.0.1", self.u.port, timeout=20 * TIMEOUT_SCALE)
        self.addCleanup(s.close)
        s.sendmail(frm, [to], message(subject=subject, frm=frm, to=to,
                                      body="Dear Jane,\r\nthe new prices.\r\n"))
        self.u.wait_for(lambda: len(self.u.held_json()) == before + 1, what="the message held")
        return [m for m in self.u.held_json() if m["subject"] == subject][-1]["id"]

    def audit(self):
        return self.u.audit_rows()


class Tokens(ApiTest):
    def test_add_list_revoke(self):
        tok = self.token("crm", "admin")
        self.token("alice", "rep:Alice@Example.com")
        out = self.u.ctl("token", "list", check=0).stdout
        self.assertIn("crm", out)
        self.assertIn("rep:alice@example.com", out)
        self.assertNotIn(tok, out)                      # shown once, never again
        listed = json.loads(self.u.ctl("--json", "token", "list", check=0).stdout)
        self.assertEqual(sorted(t["name"] for t in listed), ["alice", "crm"])
        # only a hash is stored
        db = open(os.path.join(self.u.dir, "state", "untild.db"), "rb").read()
        self.assertNotIn(tok.encode(), db)
        # a taken name, a bad scope, a bad name
        self.assertEqual(self.u.ctl("token", "add", "crm", "--scope", "admin").returncode, 2)
        r = self.u.ctl("token", "add", "x", "--scope", "root")
        self.assertEqual(r.returncode, 2)
        self.assertIn("admin or rep:WHO", r.stdout + r.stderr)
        self.assertEqual(self.u.ctl("token", "add", "a b", "--scope", "admin").returncode, 2)
        self.u.ctl("token", "revoke", "crm", check=0)
        self.assertEqual(self.u.ctl("token", "revoke", "crm").returncode, 5)
        self.assertNotIn("crm", self.u.ctl("token", "list", check=0).stdout)
        events = [e for e, _, _ in self.audit()]
        self.assertIn("token-added", events)
        self.assertIn("token-revoked", events)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run untilctl as another user")
    def test_token_verbs_are_for_admins_only(self):
        for args in (["token", "add", "mine", "--scope", "admin"], ["token", "list"], ["token", "revoke", "x"]):
            r = subprocess.run(["runuser", "-u", REP_USER, "--", UNTILCTL, "-s",
                                os.path.join(self.u.dir, "control.sock")] + args,
                               capture_output=True, text=True, timeout=20 * TIMEOUT_SCALE)
            self.assertEqual(r.returncode, 4, args)
            self.assertIn("admins only", r.stdout + r.stderr)
        self.assertNotIn("mine", self.u.ctl("token", "list", check=0).stdout)

    def test_unauthenticated_and_revoked_are_401(self):
        st, doc, hdrs = self.call("GET", "/api/v1/status")
        self.assertEqual(st, 401)
        self.assertEqual(doc["error"], "unauthorized")
        self.assertIn("Bearer", doc["reason"])
        self.assertIn("Bearer", hdrs.get("WWW-Authenticate", ""))
        self.assertEqual(self.call("GET", "/api/v1/status", "utk_" + "0" * 64)[0], 401)
        self.assertEqual(self.call("GET", "/api/v1/status", "nonsense")[0], 401)
        tok = self.token("crm", "admin")
        st, doc, _ = self.call("GET", "/api/v1/status", tok)
        self.assertEqual(st, 200)
        self.assertEqual(doc["windows"], 0)
        self.u.ctl("token", "revoke", "crm", check=0)
        st, doc, _ = self.call("GET", "/api/v1/status", tok)
        self.assertEqual(st, 401)
        self.assertIn("revoked", doc["reason"])
        denied = [a for a in self.audit() if a[0] == "api-denied"]
        self.assertTrue(denied)
        self.assertIn("from 127.0.0.1", denied[-1][2])


class RateLimit(ApiTest):
    smtp_extra = "auth_max_failures = 3\nauth_failure_window = 600"

    def test_failed_tokens_are_rate_limited_per_address(self):
        tok = self.token("crm", "admin")
        for _ in range(3):
            self.assertEqual(self.call("GET", "/api/v1/status", "utk_bad")[0], 401)
        st, doc, _ = self.call("GET", "/api/v1/status", tok)   # even a good one, for now
        self.assertEqual(st, 429)
        self.assertIn("too many", doc["reason"])
        self.assertIn("auth_max_failures", self.u.logtext())


class Endpoints(ApiTest):
    def test_admin_window_holds_smtp_mail_and_release_delivers(self):
        tok = self.token("hubspot", "admin")
        st, w, _ = self.call("POST", "/api/v1/windows", tok,
                             {"who": "jane@acme.com", "until": "2027-06-01", "reason": "renewal talks"})
        self.assertEqual(st, 201, w)
        self.assertEqual(w["who"], ["jane@acme.com"])
        self.assertEqual(w["reason"], "renewal talks")
        st, chk, _ = self.call("GET", "/api/v1/check?address=jane@acme.com", tok)
        self.assertEqual(st, 200)
        self.assertTrue(chk["quiet"])
        self.assertEqual(chk["window"]["id"], w["id"])
        self.assertFalse(self.call("GET", "/api/v1/check?address=bob@other.com", tok)[1]["quiet"])

        mid = self.hold_mail()
        self.assertEqual(self.sink.for_rcpt("jane@acme.com"), [])
        st, page, _ = self.call("GET", "/api/v1/held", tok)
        self.assertEqual(st, 200)
        self.assertEqual([m["id"] for m in page["items"]], [mid])
        self.assertIsNone(page["next"])
        st, shown, _ = self.call("GET", "/api/v1/held/" + mid, tok)
        self.assertEqual(st, 200)
        self.assertIn({"name": "Subject", "value": "Renewal"}, shown["headers"])
        self.assertIn("the new prices.", shown["preview"])
        self.assertNotIn("\r", shown["preview"])

        st, doc, _ = self.call("POST", "/api/v1/held/%s/release" % mid, tok, {"reason": "customer asked"})
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc, {"id": mid, "state": "releasing"})
        self.u.wait_for(lambda: self.sink.for_rcpt("jane@acme.com"), 20, "the released message at the upstream")
        self.assertIn(b"the new prices.", self.sink.for_rcpt("jane@acme.com")[0].data)
        # audited: which token, from where
        rows = [a for a in self.audit() if a[0] == "api"]
        self.assertTrue(any(r[1] == "hubspot" and "release" in r[2] and "127.0.0.1" in r[2] for r in rows), rows)
        self.assertTrue(any(r[1] == "hubspot" and "window add" in r[2] for r in rows), rows)

        # the window ends through the API; a second end finds nothing
        st, doc, _ = self.call("DELETE", "/api/v1/windows/" + w["id"], tok)
        self.assertEqual((st, doc), (200, {"id": w["id"], "ended": True}))
        self.assertEqual(self.call("DELETE", "/api/v1/windows/" + w["id"], tok)[0], 404)
        # an address is not a window id here
        self.assertEqual(self.call("DELETE", "/api/v1/windows/jane@acme.com", tok)[0], 404)

    def test_discard(self):
        tok = self.token("crm", "admin")
        self.u.ctl("window", "add", "jane@acme.com", "--until", "2027-06-01", check=0)
        mid = self.hold_mail()
        st, doc, _ = self.call("POST", "/api/v1/held/%s/discard" % mid, tok)
        self.assertEqual((st, doc), (200, {"id": mid, "state": "discarded"}))
        self.assertEqual(self.u.held_json(), [])
        self.assertEqual(self.call("POST", "/api/v1/held/%s/discard" % mid, tok)[0], 404)

    def test_eight_bit_message_shown_as_valid_json(self):
        # Text that is not UTF-8 never makes an answer invalid JSON: a
        # message in Latin-1 without a charset (the preview shows "?").
        tok = self.token("crm", "admin")
        self.u.ctl("window", "add", "jane@acme.com", "--until", "2027-06-01", check=0)
        s = __import__("smtplib").SMTP("127.0.0.1", self.u.port, timeout=20 * TIMEOUT_SCALE)
        self.addCleanup(s.close)
        s.sendmail("rep@example.com", ["jane@acme.com"],
                   b"From: rep@example.com\r\nTo: jane@acme.com\r\nSubject: Offre\r\n"
                   b"X-Note: caf\xe9\r\n\r\nLe caf\xe9 est pr\xeat.\r\n")
        self.u.wait_for(lambda: len(self.u.held_json()) == 1, what="the message held")
        mid = self.u.held_json()[0]["id"]
        st, shown, _ = self.call("GET", "/api/v1/held/" + mid, tok)
        self.assertEqual(st, 200)
        self.assertIsNotNone(shown, "the answer is not valid JSON")
        self.assertIn("Le caf? est pr?t.", shown["preview"])   # the preview cleans its own text
        self.assertIn({"name": "X-Note", "value": "caf?"}, shown["headers"])
        # An error naming an unknown field cuts it at 64 bytes, here in the
        # middle of a two-byte character: still JSON, the cut as U+FFFD.
        st, doc, _ = self.call("POST", "/api/v1/windows", tok, {"\u00e9" * 40: "x"})
        self.assertEqual(st, 400)
        self.assertIsNotNone(doc, "the error is not valid JSON")
        self.assertIn("\u00e9" * 32, doc["reason"])

    def test_paging(self):
        tok = self.token("crm", "admin")
        for i in range(5):
            self.u.ctl("window", "add", "c%d@acme.com" % i, "--until", "2027-06-01", check=0)
        seen, after = [], None
        while True:
            st, page, _ = self.call("GET", "/api/v1/windows?limit=2" + ("&after=" + after if after else ""), tok)
            self.assertEqual(st, 200)
            self.assertLessEqual(len(page["items"]), 2)
            seen += [w["who"][0] for w in page["items"]]
            after = page["next"]
            if not after:
                break
        self.assertEqual(sorted(seen), ["c%d@acme.com" % i for i in range(5)])
        st, doc, _ = self.call("GET", "/api/v1/windows?limit=0", tok)
        self.assertEqual((st, doc["field"]), (400, "limit"))
        st, doc, _ = self.call("GET", "/api/v1/held?limit=abc", tok)
        self.assertEqual((st, doc["field"]), (400, "limit"))

    def test_rep_token_sees_and_acts_on_its_own_only(self):
        admin = self.token("crm", "admin")
        mine = self.token("rep", "rep:rep@example.com")
        other = self.token("other", "rep:other@example.com")
        self.u.ctl("window", "add", "jane@acme.com", "--until", "2027-06-01", check=0)
        mid = self.hold_mail()
        # the other rep: not listed, not shown, not released, not discarded
        st, page, _ = self.call("GET", "/api/v1/held", other)
        self.assertEqual((st, page["items"]), (200, []))
        for method, path in (("GET", "/api/v1/held/" + mid), ("POST", "/api/v1/held/%s/release" % mid),
                             ("POST", "/api/v1/held/%s/discard" % mid)):
            st, doc, _ = self.call(method, path, other)
            self.assertIn(st, (403, 404), (method, path, doc))
            self.assertEqual(doc["error"], "forbidden")
        self.assertEqual([m["id"] for m in self.u.held_json()], [mid])
        self.assertEqual(self.sink.for_rcpt("jane@acme.com"), [])
        # nor end an admin's window
        wid = self.u.windows_json()[0]["id"]
        self.assertEqual(self.call("DELETE", "/api/v1/windows/" + wid, other)[0], 403)
        self.assertEqual(len(self.u.windows_json()), 1)
        # a window the rep adds is the rep's, whatever owner it asks for
        st, w, _ = self.call("POST", "/api/v1/windows", other,
                             {"who": "sam@acme.com", "until": "2027-05-01", "owner": "rep@example.com"})
        self.assertEqual(st, 201, w)
        self.assertEqual(w["owner"], "other@example.com")
        # the rep who sent it sees it and may release it
        st, page, _ = self.call("GET", "/api/v1/held", mine)
        self.assertEqual([m["id"] for m in page["items"]], [mid])
        self.assertEqual(self.call("GET", "/api/v1/held/" + mid, mine)[0], 200)
        self.assertEqual(self.call("POST", "/api/v1/held/%s/release" % mid, mine)[0], 200)
        self.u.wait_for(lambda: self.sink.for_rcpt("jane@acme.com"), 20, "the released message at the upstream")
        # admins see everything
        self.assertEqual(len(self.call("GET", "/api/v1/windows", admin)[1]["items"]), 2)

    def test_bad_input_is_400_and_changes_nothing(self):
        tok = self.token("crm", "admin")
        cases = [
            (b'{"who": "jane@acme.com", "until": ', "bad JSON", None, "malformed JSON"),
            (b'[1, 2]', "bad request", None, "JSON object"),
            (b'{"who": 5, "until": "2027-06-01"}', "bad request", "who", "string"),
            (b'{"who": "jane@acme.com"}', "bad request", "until", "required"),
            (b'{"until": "2027-06-01"}', "bad request", "who", "required"),
            (b'{"who": "jane@acme.com", "until": "2027-06-01", "colour": "red"}', "bad request", None, "unknown field"),
            (b'{"who": "jane@acme.com", "until": "2020-01-01"}', "bad request", "until", "past"),
            (b'{"who": "jane@acme.com", "until": "2027-06-01", "action": "explode"}', "bad request", None, "action"),
            (b'{"who": "jane@acme.com", "until": "2027-06-01", "reason": "--json"}', "bad request", "reason", "--"),
            (b'{"who": "not an address", "until": "2027-06-01"}', "bad request", "who", "spaces"),
            (b'{"who": "jane@acme.com", "until": "2027-06-01"} trailing', "bad JSON", None, "after"),
            (b'', "bad request", None, "required"),
        ]
        for body, error, field, reason in cases:
            st, doc, _ = self.call("POST", "/api/v1/windows", tok, body)
            self.assertEqual(st, 400, (body, doc))
            self.assertEqual(doc["error"], error, body)
            self.assertEqual(doc["field"], field, (body, doc))
            self.assertIn(reason, doc["reason"], body)
        self.assertEqual(self.u.windows_json(), [])
        st, doc, _ = self.call("GET", "/api/v1/check", tok)
        self.assertEqual((st, doc["field"]), (400, "address"))
        st, doc, _ = self.call("GET", "/api/v1/check?address=not-an-address", tok)
        self.assertEqual((st, doc["field"]), (400, "address"))
        # release: wrong type of reason; the message stays held
        self.u.ctl("window", "add", "jane@acme.com", "--until", "2027-06-01", check=0)
        mid = self.hold_mail()
        st, doc, _ = self.call("POST", "/api/v1/held/%s/release" % mid, tok, {"reason": ["x"]})
        self.assertEqual((st, doc["field"]), (400, "reason"))
        st, doc, _ = self.call("POST", "/api/v1/held/%s/release" % mid, tok, b"{oops")
        self.assertEqual(st, 400)
        self.assertEqual([m["id"] for m in self.u.held_json()], [mid])
        self.assertEqual(self.sink.for_rcpt("jane@acme.com"), [])

    def test_unknown_path_404_wrong_method_405(self):
        tok = self.token("crm", "admin")
        # "/" and other paths outside /api/ are the web console (test_console.py)
        for path in ("/api/v2/status", "/api/v1/nothing", "/api/v1/held/x/y", "/api/v1/held/a%20b"):
            st, doc, _ = self.call("GET", path, tok)
            self.assertEqual(st, 404, path)
            self.assertEqual(doc["error"], "not found")
        st, doc, hdrs = self.call("DELETE", "/api/v1/status", tok)
        self.assertEqual(st, 405)
        self.assertEqual(hdrs["Allow"], "GET")
        st, _, hdrs = self.call("PUT", "/api/v1/windows", tok, {})
        self.assertEqual((st, hdrs["Allow"]), (405, "GET, POST, DELETE"))
        self.assertEqual(self.call("GET", "/api/v1/held/x/release", tok)[0], 405)


class Document(ApiTest):
    def test_openapi_describes_what_exists(self):
        """Every path and method of docs/openapi.yaml is routed (not the
        router's 404 or 405), and the router has no path the document lacks."""
        import yaml
        root = os.path.join(os.path.dirname(__file__), "..", "..")
        doc = yaml.safe_load(open(os.path.join(root, "docs", "openapi.yaml")))
        tok = self.token("crm", "admin")
        base = doc["servers"][0]["url"].split("8025", 1)[1]
        self.assertEqual(base, "/api/v1")
        for path, ops in doc["paths"].items():
            for method in ops:
                st, body, _ = self.call(method.upper(), base + path.replace("{id}", "x1"), tok)
                self.assertNotEqual(st, 405, (method, path))
                self.assertFalse(st == 404 and body["reason"].startswith("no such resource"), (method, path, body))
        for path in ("/api/v1/reports", "/api/v1/followup", "/api/v1/windows/x1/change"):
            self.assertEqual(self.call("GET", path, tok)[0], 404, path)


class BodyLimit(ApiTest):
    http_extra = "max_body = 2k\n"

    def test_oversized_body_is_413_and_changes_nothing(self):
        tok = self.token("crm", "admin")
        big = json.dumps({"who": "jane@acme.com", "until": "2027-06-01", "reason": "x" * 10000}).encode()
        st, doc, _ = self.call("POST", "/api/v1/windows", tok, big)
        self.assertEqual(st, 413)
        self.assertIn("max_body", doc["reason"])
        self.assertEqual(self.u.windows_json(), [])
        self.assertIn("over max_body", self.u.logtext())
        # chunked (no Content-Length): refused as it arrives
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                            "-H", "Authorization: Bearer " + tok, "-H", "Transfer-Encoding: chunked",
                            "--data-binary", "@-", "http://127.0.0.1:%d/api/v1/windows" % self.hport],
                           input=big, capture_output=True, timeout=30 * TIMEOUT_SCALE)
        self.assertEqual(r.stdout, b"413")
        self.assertEqual(self.u.windows_json(), [])
        # under the limit it works
        st, _, _ = self.call("POST", "/api/v1/windows", tok, {"who": "jane@acme.com", "until": "2027-06-01"})
        self.assertEqual(st, 201)


class ConnectionLimit(ApiTest):
    http_extra = "max_connections = 2\n"

    def test_connections_over_the_limit_wait_and_are_logged(self):
        import socket
        import threading
        tok = self.token("crm", "admin")
        idle = [socket.create_connection(("127.0.0.1", self.hport)) for _ in range(2)]
        self.addCleanup(lambda: [s.close() for s in idle])
        self.u.wait_for(lambda: "max_connections reached" in self.u.logtext(), what="the limit logged")
        got = []
        t = threading.Thread(target=lambda: got.append(self.call("GET", "/api/v1/status", tok)[0]))
        t.start()
        t.join(0.5)
        self.assertEqual(got, [])           # waits in the listen queue
        for s in idle:
            s.close()
        t.join(20 * TIMEOUT_SCALE)
        self.assertEqual(got, [200])


class IdleTimeout(ApiTest):
    http_extra = "timeout = 1\n"

    def test_a_trickling_client_is_closed(self):
        import socket
        s = socket.create_connection(("127.0.0.1", self.hport))
        self.addCleanup(s.close)
        s.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n")    # and never the end
        s.settimeout(20 * TIMEOUT_SCALE)
        self.assertEqual(s.recv(100), b"")     # closed by the daemon, no answer


class Config(unittest.TestCase):
    def test_plain_http_off_loopback_refused(self):
        u = Untild(None, extra="[http]\nlisten = 0.0.0.0:%d\n" % free_port())
        self.addCleanup(u.cleanup)
        r = subprocess.run([UNTILD, "-t", "-c", u.conf], capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not loopback", r.stdout + r.stderr)
        self.assertIn("tls_cert", r.stdout + r.stderr)

    def test_reload_keeps_the_listener_and_says_so(self):
        port = free_port()
        u = Untild(None, extra="[http]\nlisten = 127.0.0.1:%d\n" % port)
        self.addCleanup(u.cleanup)
        u.start()
        tok = u.ctl("token", "add", "crm", "--scope", "admin", check=0).stdout.strip()
        with open(u.conf, "a") as f:
            f.write("max_body = 4k\n")
        u.ctl("reload", check=0)
        self.assertIn("[http] changes take effect at the next restart", u.logtext())
        self.assertEqual(api(port, "GET", "/api/v1/status", tok)[0], 200)

    def test_port_taken_refuses_to_start(self):
        import socket
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        self.addCleanup(busy.close)
        u = Untild(None, extra="[http]\nlisten = 127.0.0.1:%d\n" % busy.getsockname()[1])
        self.addCleanup(u.cleanup)
        with self.assertRaises(RuntimeError):
            u.start()
        self.assertIn("api: cannot listen on 127.0.0.1:%d" % busy.getsockname()[1], u.logtext())
        self.assertIn("cannot start the HTTP API", u.logtext())

    def test_off_by_default(self):
        u = Untild(None)
        self.addCleanup(u.cleanup)
        u.start()
        self.assertNotIn("api: listening", u.logtext())

    @unittest.skipUnless(shutil.which("openssl") and shutil.which("curl"), "needs openssl and curl")
    def test_https(self):
        port = free_port()
        u = Untild(None)
        self.addCleanup(u.cleanup)
        cert, key = make_self_signed(u.dir, "127.0.0.1", "http")
        with open(u.conf, "a") as f:
            f.write("[http]\nlisten = 127.0.0.1:%d\ntls_cert = %s\ntls_key = %s\n" % (port, cert, key))
        u.start()
        tok = u.ctl("token", "add", "crm", "--scope", "admin", check=0).stdout.strip()
        r = subprocess.run(["curl", "-s", "--cacert", cert, "-H", "Authorization: Bearer " + tok,
                            "https://127.0.0.1:%d/api/v1/status" % port],
                           capture_output=True, text=True, timeout=30 * TIMEOUT_SCALE)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["held"], 0)


if __name__ == "__main__":
    unittest.main()
