"""Browser login for the HTTP API (issue 14): POST /api/v1/login with the
SMTP identity ([smtp] auth = passwd:FILE), the untild_session cookie
(HttpOnly, SameSite=Strict, Secure over TLS), CSRF tokens on changes,
cross-site requests refused, logout, expiry on the test clock, failed
logins limited like SMTP AUTH (one count for both), and one rep's session
confined to that rep's mail and windows. All against the real daemon on
127.0.0.1, with real SMTP mail held and released to a real upstream."""
import crypt
import json
import os
import shutil
import smtplib
import subprocess
import time
import unittest

from harness import UNDER_VALGRIND, Sink, Untild, TIMEOUT_SCALE, free_port, make_self_signed, message
from test_http_api import api

PASSWORDS = {"alice@example.com": "alice-pw", "bob@example.com": "bob-pw", "boss@example.com": "boss-pw"}


def write_passwd(path):
    with open(path, "w") as f:
        f.write("# reps\n")
        for user, pw in PASSWORDS.items():
            f.write("%s:%s\n" % (user, crypt.crypt(pw, crypt.mksalt(crypt.METHOD_SHA512))))


def set_cookie(hdrs):
    """The Set-Cookie header of a response (one at most)."""
    got = hdrs.get_all("Set-Cookie") or []
    assert len(got) <= 1, got
    return got[0] if got else None


class Session:
    """A browser's view: the cookie and the CSRF token from the login."""

    def __init__(self, port, cookie, csrf):
        self.port, self.cookie, self.csrf = port, cookie, csrf

    def call(self, method, path, body=None, csrf=True, headers=None):
        h = {"Cookie": "untild_session=" + self.cookie}
        if csrf and self.csrf:
            h["X-CSRF-Token"] = self.csrf if csrf is True else csrf
        h.update(headers or {})
        return api(self.port, method, path, body=body, headers=h)


class LoginTest(unittest.TestCase):
    smtp_extra = "auth_failure_delay = 0\n"
    http_extra = ""

    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.hport = free_port()
        self.u = Untild(self.sink, smtp_extra=self.smtp_extra,
                        extra="[http]\nlisten = 127.0.0.1:%d\nadmins = boss@example.com\n%s"
                              % (self.hport, self.http_extra))
        self.addCleanup(self.u.cleanup)
        pw = os.path.join(self.u.dir, "passwd")
        write_passwd(pw)
        with open(self.u.conf) as f:
            conf = f.read()
        with open(self.u.conf, "w") as f:
            f.write(conf.replace("auth = none", "auth = passwd:" + pw))
        self.u.start()
        self.u.set_clock("2027-01-10T10:00Z")

    def login(self, user, password=None, headers=None):
        """(status, doc, headers) of a login."""
        return api(self.hport, "POST", "/api/v1/login",
                   body={"user": user, "password": PASSWORDS.get(user) if password is None else password},
                   headers=headers)

    def session(self, user):
        st, doc, hdrs = self.login(user)
        self.assertEqual(st, 200, doc)
        cookie = set_cookie(hdrs)
        self.assertTrue(cookie.startswith("untild_session="), cookie)
        return Session(self.hport, cookie.split(";")[0].split("=", 1)[1], doc["csrf"])

    def hold_mail_from(self, user, to="jane@acme.com", subject="Renewal"):
        """A message sent by user (SMTP AUTH) to to, held; its id."""
        self.u.ctl("window", "add", to, "--until", "2027-06-01", check=0)
        before = len(self.u.held_json())
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20 * TIMEOUT_SCALE)
        self.addCleanup(s.close)
        s.login(user, PASSWORDS[user])
        s.sendmail(user, [to], message(subject=subject, frm=user, to=to))
        self.u.wait_for(lambda: len(self.u.held_json()) == before + 1, what="the message held")
        return [m for m in self.u.held_json() if m["subject"] == subject][-1]["id"]

    def audit(self):
        return self.u.audit_rows()


class Login(LoginTest):
    def test_login_sets_a_strict_httponly_cookie_and_me_answers(self):
        st, doc, hdrs = self.login("alice@example.com")
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["user"], "alice@example.com")
        self.assertIs(doc["admin"], False)
        self.assertRegex(doc["csrf"], r"^[0-9a-f]{64}$")
        cookie = set_cookie(hdrs)
        self.assertRegex(cookie, r"^untild_session=[0-9a-f]{64}; ")
        attrs = [a.strip() for a in cookie.split(";")[1:]]
        self.assertEqual(sorted(attrs), ["HttpOnly", "Path=/", "SameSite=Strict"])   # no Secure on plain HTTP
        s = Session(self.hport, cookie.split(";")[0].split("=", 1)[1], doc["csrf"])
        st, me, _ = s.call("GET", "/api/v1/me")
        self.assertEqual((st, me), (200, {"user": "alice@example.com", "admin": False, "csrf": doc["csrf"]}))
        # the id is stored hashed, nowhere on disk, and never logged
        self.assertNotIn(s.cookie, self.u.logtext())
        self.assertNotIn("alice-pw", self.u.logtext())
        for root, _, files in os.walk(os.path.join(self.u.dir, "state")):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    self.assertNotIn(s.cookie.encode(), f.read(), name)
        rows = [r for r in self.audit() if r[0] == "api-login"]
        self.assertEqual(rows[-1][1], "alice@example.com")
        self.assertIn("from 127.0.0.1", rows[-1][2])

    def test_a_new_login_replaces_the_browsers_session(self):
        old = self.session("alice@example.com")
        st, doc, hdrs = self.login("bob@example.com", headers={"Cookie": "untild_session=" + old.cookie})
        self.assertEqual(st, 200)
        new = set_cookie(hdrs).split(";")[0].split("=", 1)[1]
        self.assertNotEqual(new, old.cookie)
        self.assertEqual(old.call("GET", "/api/v1/me")[0], 401)
        self.assertEqual(Session(self.hport, new, doc["csrf"]).call("GET", "/api/v1/me")[1]["user"],
                         "bob@example.com")

    def test_admins_are_named_in_http_admins(self):
        st, doc, _ = self.login("boss@example.com")
        self.assertEqual((st, doc["admin"]), (200, True))

    def test_wrong_password_and_unknown_user_look_the_same(self):
        st1, wrong, h1 = self.login("alice@example.com", "guess")
        st2, unknown, h2 = self.login("nobody@example.com", "guess")
        self.assertEqual((st1, st2), (401, 401))
        self.assertEqual(wrong, unknown)
        self.assertEqual(wrong["error"], "unauthorized")
        self.assertIsNone(set_cookie(h1))
        self.assertIsNone(set_cookie(h2))
        self.assertNotIn("guess", self.u.logtext())
        self.assertEqual(len([r for r in self.audit() if r[0] == "api-login-failed"]), 2)

    def test_bad_bodies_are_400(self):
        for body, field in (({"user": "alice@example.com"}, "password"), ({"password": "x"}, "user"),
                            ({"user": 5, "password": "x"}, "user"), ({"user": "a\nb", "password": "x"}, "user"),
                            ({"user": "a", "password": "x", "remember": True}, None)):
            st, doc, _ = api(self.hport, "POST", "/api/v1/login", body=body)
            self.assertEqual(st, 400, body)
            self.assertEqual(doc["field"], field, (body, doc))
        st, doc, hdrs = api(self.hport, "GET", "/api/v1/login")
        self.assertEqual((st, hdrs["Allow"]), (405, "POST"))

    def test_no_cookie_or_a_forged_one_is_401(self):
        # a logged-out console asking who it is, again and again: 401, never
        # counted as failed credentials (auth_max_failures is 10)
        for _ in range(12):
            st, doc, _ = api(self.hport, "GET", "/api/v1/me")
            self.assertEqual(st, 401)
        self.assertIn("POST /api/v1/login", doc["reason"])
        self.assertNotIn("api-denied", [r[0] for r in self.audit()])
        st, doc, hdrs = Session(self.hport, "ab" * 32, None).call("GET", "/api/v1/me")
        self.assertEqual(st, 401)
        self.assertIn("Max-Age=0", set_cookie(hdrs))           # the stale cookie is cleared
        self.assertEqual(Session(self.hport, "junk", None).call("GET", "/api/v1/held")[0], 401)

    def test_token_me_has_no_csrf_and_needs_none(self):
        tok = self.u.ctl("token", "add", "crm", "--scope", "rep:alice@example.com", check=0).stdout.strip()
        st, me, _ = api(self.hport, "GET", "/api/v1/me", token=tok)
        self.assertEqual((st, me), (200, {"user": "alice@example.com", "admin": False, "token": "crm"}))
        st, w, _ = api(self.hport, "POST", "/api/v1/windows", token=tok,
                       body={"who": "sam@acme.com", "until": "2027-05-01"})
        self.assertEqual(st, 201, w)
        # a token ends no session
        self.assertEqual(api(self.hport, "POST", "/api/v1/logout", token=tok)[0], 400)

    def test_login_needs_smtp_identities(self):
        port = free_port()
        u = Untild(None, extra="[http]\nlisten = 127.0.0.1:%d\n" % port)
        self.addCleanup(u.cleanup)
        u.start()
        st, doc, _ = api(port, "POST", "/api/v1/login", body={"user": "alice@example.com", "password": "x"})
        self.assertEqual(st, 403)
        self.assertIn("auth = passwd:FILE", doc["reason"])


class Csrf(LoginTest):
    def test_changes_need_the_csrf_token(self):
        s = self.session("alice@example.com")
        w = {"who": "sam@acme.com", "until": "2027-05-01"}
        for token in (False, "0" * 64, s.csrf[:-1], s.csrf + "0"):
            st, doc, _ = s.call("POST", "/api/v1/windows", w, csrf=token)
            self.assertEqual((st, doc["error"]), (403, "csrf"), token)
        self.assertEqual(self.u.windows_json(), [])             # nothing changed
        st, made, _ = s.call("POST", "/api/v1/windows", w)
        self.assertEqual(st, 201, made)
        self.assertEqual(made["owner"], "alice@example.com")
        st, doc, _ = s.call("DELETE", "/api/v1/windows/" + made["id"], csrf=False)
        self.assertEqual((st, doc["error"]), (403, "csrf"))
        self.assertEqual(len(self.u.windows_json()), 1)
        self.assertEqual(s.call("DELETE", "/api/v1/windows/" + made["id"])[0], 200)
        self.assertTrue([r for r in self.audit() if r[0] == "api-csrf" and r[1] == "alice@example.com"])
        # reads need no token
        self.assertEqual(s.call("GET", "/api/v1/windows", csrf=False)[0], 200)
        # another session's token is not this one's
        other = self.session("alice@example.com")
        self.assertNotEqual(other.csrf, s.csrf)
        self.assertEqual(s.call("POST", "/api/v1/windows", w, csrf=other.csrf)[0], 403)

    def test_cross_site_requests_are_refused(self):
        s = self.session("alice@example.com")
        mine = "http://127.0.0.1:%d" % self.hport
        evil = {"Origin": "http://evil.example"}
        st, doc, _ = s.call("POST", "/api/v1/windows", {"who": "sam@acme.com", "until": "2027-05-01"},
                            headers=evil)
        self.assertEqual((st, doc["error"]), (403, "csrf"))
        self.assertIn("Origin", doc["reason"])
        self.assertEqual(s.call("GET", "/api/v1/held", headers=evil)[0], 403)
        self.assertEqual(s.call("GET", "/api/v1/me", headers={"Origin": "null"})[0], 403)
        self.assertEqual(s.call("GET", "/api/v1/me", headers={"Sec-Fetch-Site": "cross-site"})[0], 403)
        self.assertEqual(self.u.windows_json(), [])
        # a login from another site is refused too (login CSRF)
        st, doc, hdrs = self.login("alice@example.com", headers=evil)
        self.assertEqual((st, doc["error"]), (403, "csrf"))
        self.assertIsNone(set_cookie(hdrs))
        # the same origin is fine
        self.assertEqual(s.call("GET", "/api/v1/me", headers={"Origin": mine, "Sec-Fetch-Site": "same-origin"})[0],
                         200)
        # behind a proxy that ends TLS the page's origin is https with our host
        self.assertEqual(s.call("GET", "/api/v1/me", headers={"Origin": "https://127.0.0.1:%d" % self.hport})[0],
                         200)
        st, _, _ = s.call("POST", "/api/v1/windows", {"who": "sam@acme.com", "until": "2027-05-01"},
                          headers={"Origin": mine})
        self.assertEqual(st, 201)

    def test_logout_ends_the_session(self):
        s = self.session("alice@example.com")
        self.assertEqual(s.call("POST", "/api/v1/logout", csrf=False)[0], 403)
        self.assertEqual(s.call("GET", "/api/v1/me")[0], 200)    # still logged in
        st, doc, hdrs = s.call("POST", "/api/v1/logout")
        self.assertEqual(st, 200, doc)
        cookie = set_cookie(hdrs)
        self.assertTrue(cookie.startswith("untild_session=;"), cookie)
        self.assertIn("Max-Age=0", cookie)
        self.assertEqual(s.call("GET", "/api/v1/me")[0], 401)
        self.assertEqual(s.call("GET", "/api/v1/held")[0], 401)
        self.assertTrue([r for r in self.audit() if r[0] == "api-logout" and r[1] == "alice@example.com"])


class Expiry(LoginTest):
    http_extra = "session_idle = 10m\nsession_lifetime = 1h\n"

    def test_idle_sessions_end(self):
        s = self.session("alice@example.com")
        self.u.ctl("debug", "clock", "advance", "599", check=0)
        self.assertEqual(s.call("GET", "/api/v1/me")[0], 200)     # used: idle starts again
        self.u.ctl("debug", "clock", "advance", "599", check=0)
        self.assertEqual(s.call("GET", "/api/v1/me")[0], 200)
        self.u.ctl("debug", "clock", "advance", "600", check=0)
        st, doc, hdrs = s.call("GET", "/api/v1/me")
        self.assertEqual(st, 401)
        self.assertIn("log in again", doc["reason"])
        self.assertIn("Max-Age=0", set_cookie(hdrs))

    def test_sessions_end_after_their_lifetime_however_used(self):
        s = self.session("alice@example.com")
        for _ in range(5):
            self.u.ctl("debug", "clock", "advance", "500", check=0)
            self.assertEqual(s.call("GET", "/api/v1/me")[0], 200)
        self.u.ctl("debug", "clock", "advance", "1100", check=0)  # 3600 s after login, used 100 s ago
        self.assertEqual(s.call("GET", "/api/v1/me")[0], 401)
        self.assertEqual(self.session("alice@example.com").call("GET", "/api/v1/me")[0], 200)


class MaxSessions(LoginTest):
    http_extra = "max_sessions = 2\n"

    def test_the_least_recently_used_session_goes_and_it_is_logged(self):
        a = self.session("alice@example.com")
        b = self.session("bob@example.com")
        self.u.ctl("debug", "clock", "advance", "60", check=0)
        self.assertEqual(a.call("GET", "/api/v1/me")[0], 200)    # a is now the more recent
        c = self.session("boss@example.com")
        self.assertEqual(b.call("GET", "/api/v1/me")[0], 401)
        self.assertEqual(a.call("GET", "/api/v1/me")[0], 200)
        self.assertEqual(c.call("GET", "/api/v1/me")[0], 200)
        self.assertIn("max_sessions (2) reached", self.u.logtext())
        self.assertIn("(bob@example.com) ended", self.u.logtext())


class PerRep(LoginTest):
    http_extra = "max_sessions_per_rep = 2\n"

    def test_a_reps_logins_end_their_own_oldest_session(self):
        bob = self.session("bob@example.com")
        a1 = self.session("alice@example.com")
        self.u.ctl("debug", "clock", "advance", "60", check=0)
        a2 = self.session("alice@example.com")
        a3 = self.session("alice@example.com")
        self.assertEqual(a1.call("GET", "/api/v1/me")[0], 401)
        for s in (a2, a3, bob):
            self.assertEqual(s.call("GET", "/api/v1/me")[0], 200)
        self.assertIn("alice@example.com has [http] max_sessions_per_rep (2) sessions", self.u.logtext())


class RateLimit(LoginTest):
    smtp_extra = "auth_failure_delay = 0\nauth_max_failures = 3\nauth_failure_window = 600\n"

    def test_failed_logins_are_limited_like_smtp_auth(self):
        for _ in range(3):
            self.assertEqual(self.login("alice@example.com", "guess")[0], 401)
        st, doc, hdrs = self.login("alice@example.com")         # even the right password, for now
        self.assertEqual(st, 429, doc)
        self.assertIn("too many", doc["reason"])
        self.assertEqual(hdrs["Retry-After"], "600")
        self.assertIsNone(set_cookie(hdrs))
        self.assertIn("HTTP login from 127.0.0.1 refused unchecked", self.u.logtext())
        # one count for both doors: SMTP AUTH as alice is refused unchecked as well
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20 * TIMEOUT_SCALE)
        self.addCleanup(s.close)
        with self.assertRaises(smtplib.SMTPException):
            s.login("alice@example.com", PASSWORDS["alice@example.com"])
        self.u.wait_for(lambda: "AUTH from 127.0.0.1 refused unchecked" in self.u.logtext(),
                        what="SMTP AUTH refused by the same count")


class Delay(LoginTest):
    smtp_extra = "auth_failure_delay = 8\n"

    def test_a_refused_login_is_answered_after_auth_failure_delay(self):
        # The refusal waits the whole delay (a lower bound: no timing
        # luck); a good login does not (8 s of margin on a loaded machine).
        t0 = time.monotonic()
        self.assertEqual(self.login("alice@example.com", "guess")[0], 401)
        self.assertGreaterEqual(time.monotonic() - t0, 7.9)
        t0 = time.monotonic()
        self.assertEqual(self.login("alice@example.com")[0], 200)
        self.assertLess(time.monotonic() - t0, 7.9)


class Confinement(LoginTest):
    def test_a_reps_session_sees_and_touches_only_their_own(self):
        mid = self.hold_mail_from("alice@example.com")
        alice, bob, boss = (self.session(u) for u in ("alice@example.com", "bob@example.com", "boss@example.com"))
        # bob: not listed, not shown, not released, not discarded
        st, page, _ = bob.call("GET", "/api/v1/held")
        self.assertEqual((st, page["items"]), (200, []))
        for method, path in (("GET", "/api/v1/held/" + mid), ("POST", "/api/v1/held/%s/release" % mid),
                             ("POST", "/api/v1/held/%s/discard" % mid)):
            st, doc, _ = bob.call(method, path)
            self.assertEqual((st, doc["error"]), (403, "forbidden"), (method, path, doc))
        self.assertEqual([m["id"] for m in self.u.held_json()], [mid])
        # bob's window: alice neither sees nor ends it
        st, bw, _ = bob.call("POST", "/api/v1/windows", {"who": "sam@acme.com", "until": "2027-05-01"})
        self.assertEqual((st, bw["owner"]), (201, "bob@example.com"))
        st, page, _ = alice.call("GET", "/api/v1/windows")
        self.assertNotIn(bw["id"], [w["id"] for w in page["items"]])
        self.assertEqual(alice.call("DELETE", "/api/v1/windows/" + bw["id"])[0], 403)
        self.assertIn(bw["id"], [w["id"] for w in self.u.windows_json()])
        # the admin sees both
        st, page, _ = boss.call("GET", "/api/v1/held")
        self.assertEqual([m["id"] for m in page["items"]], [mid])
        # alice releases her own; the customer receives it
        st, doc, _ = alice.call("POST", "/api/v1/held/%s/release" % mid, {"reason": "customer asked"})
        self.assertEqual((st, doc), (200, {"id": mid, "state": "releasing"}))
        self.u.wait_for(lambda: self.sink.for_rcpt("jane@acme.com"), 20, "the released message at the upstream")
        # audited: who (the rep) and from where
        rows = [r for r in self.audit() if r[0] == "api" and "release" in r[2]]
        self.assertEqual(rows[-1][1], "alice@example.com")
        self.assertIn("from 127.0.0.1 (session)", rows[-1][2])
        refused = [r for r in self.audit() if r[0] == "api-refused" and r[1] == "bob@example.com"]
        self.assertTrue(refused)


class Reload(LoginTest):
    def test_admins_and_timeouts_take_effect_on_reload_for_open_sessions(self):
        boss = self.session("boss@example.com")
        self.assertIs(boss.call("GET", "/api/v1/me")[1]["admin"], True)
        with open(self.u.conf) as f:
            conf = f.read()
        with open(self.u.conf, "w") as f:
            f.write(conf.replace("admins = boss@example.com\n", "admins = ops@example.com\nsession_idle = 2m\n"))
        self.u.ctl("reload", check=0)
        self.u.wait_for(lambda: "reload" in self.u.logtext(), what="the reload")
        st, me, _ = boss.call("GET", "/api/v1/me")
        self.assertEqual((st, me["admin"]), (200, False))        # the same session, no longer an admin
        self.assertEqual(boss.call("GET", "/api/v1/held")[1]["items"], [])
        self.u.ctl("debug", "clock", "advance", "120", check=0)
        self.assertEqual(boss.call("GET", "/api/v1/me")[0], 401)


class TokenWins(LoginTest):
    def test_a_request_with_a_token_ignores_the_cookie(self):
        s = self.session("alice@example.com")
        tok = self.u.ctl("token", "add", "crm", "--scope", "admin", check=0).stdout.strip()
        st, me, _ = s.call("GET", "/api/v1/me", headers={"Authorization": "Bearer " + tok})
        self.assertEqual((st, me["user"], me["admin"]), (200, "crm", True))
        # a bad token is not rescued by a good cookie
        st, _, _ = s.call("GET", "/api/v1/me", headers={"Authorization": "Bearer utk_" + "0" * 64})
        self.assertEqual(st, 401)
        # and a token request from another origin needs no CSRF token
        st, _, _ = api(self.hport, "POST", "/api/v1/windows", token=tok,
                       body={"who": "sam@acme.com", "until": "2027-05-01"}, headers={"Origin": "http://crm.example"})
        self.assertEqual(st, 201)


class StopDuringLogin(LoginTest):
    def test_a_login_being_checked_when_the_daemon_stops(self):
        """The password check is on a worker when SIGTERM comes: the daemon
        stops cleanly (no leak under valgrind), the client gets an answer or
        a closed connection, never a hang."""
        import threading
        pw = os.path.join(self.u.dir, "passwd")
        rounds = 20000 if UNDER_VALGRIND else 1000000     # about half a second either way
        with open(pw, "w") as f:
            f.write("alice@example.com:%s\n" % crypt.crypt("alice-pw", "$6$rounds=%d$saltsalt$" % rounds))
        got = []

        def attempt():
            try:
                got.append(self.login("alice@example.com")[0])
            except OSError as e:
                got.append(repr(e))
        t = threading.Thread(target=attempt)
        t.start()
        self.addCleanup(t.join, 60 * TIMEOUT_SCALE)
        self.u.wait_for(lambda: "login as alice@example.com from 127.0.0.1: checking" in self.u.logtext(),
                        what="the check under way")
        proc = self.u.proc
        self.u.stop()
        self.assertEqual(proc.returncode, 0, self.u.logtext()[-2000:])
        t.join(60 * TIMEOUT_SCALE)
        self.assertFalse(t.is_alive())
        self.assertTrue(got)
        self.assertNotEqual(got[0], 200)


@unittest.skipUnless(shutil.which("openssl") and shutil.which("curl"), "needs openssl and curl")
class Https(unittest.TestCase):
    def test_the_cookie_is_secure_over_tls(self):
        port = free_port()
        u = Untild(None)
        self.addCleanup(u.cleanup)
        pw = os.path.join(u.dir, "passwd")
        write_passwd(pw)
        cert, key = make_self_signed(u.dir, "127.0.0.1", "http")
        with open(u.conf) as f:
            conf = f.read().replace("auth = none", "auth = passwd:" + pw)
        with open(u.conf, "w") as f:
            f.write(conf + "[http]\nlisten = 127.0.0.1:%d\ntls_cert = %s\ntls_key = %s\n" % (port, cert, key))
        u.start()
        r = subprocess.run(["curl", "-s", "-i", "--cacert", cert, "-H", "Content-Type: application/json",
                            "-H", "Origin: https://127.0.0.1:%d" % port,
                            "--data", json.dumps({"user": "bob@example.com", "password": "bob-pw"}),
                            "https://127.0.0.1:%d/api/v1/login" % port],
                           capture_output=True, text=True, timeout=30 * TIMEOUT_SCALE)
        self.assertEqual(r.returncode, 0, r.stderr)
        head = r.stdout.split("\n\n", 1)[0].lower()    # text=True: CRLF read as LF
        self.assertIn(" 200", head.split("\n")[0])
        cookie = [h for h in head.split("\n") if h.startswith("set-cookie:")][0].strip()
        self.assertIn("; secure", cookie)
        self.assertIn("; httponly", cookie)
        self.assertIn("samesite=strict", cookie)
        # the session works over TLS, with an https Origin
        sid = cookie.split(";")[0].split("=", 1)[1]
        r = subprocess.run(["curl", "-s", "--cacert", cert, "-H", "Cookie: untild_session=" + sid,
                            "-H", "Origin: https://127.0.0.1:%d" % port, "https://127.0.0.1:%d/api/v1/me" % port],
                           capture_output=True, text=True, timeout=30 * TIMEOUT_SCALE)
        self.assertEqual(json.loads(r.stdout)["user"], "bob@example.com")
        # over TLS an http:// page (which anyone on the path could have
        # written) is another origin
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", cert,
                            "-H", "Cookie: untild_session=" + sid, "-H", "Origin: http://127.0.0.1:%d" % port,
                            "https://127.0.0.1:%d/api/v1/me" % port],
                           capture_output=True, text=True, timeout=30 * TIMEOUT_SCALE)
        self.assertEqual(r.stdout, "403")


if __name__ == "__main__":
    unittest.main()
