"""The web console (issue 14): its files served safely by the HTTP API's
server, and browser tests in headless Chromium (Debian's chromium,
chromium-driver, python3-selenium) against the real daemon with `auth =
passwd:FILE` and a real upstream (aiosmtpd Sink): a rep logs in, releases
a held message with a reason and the customer receives it, discards one,
adds a window, and sees none of another rep's mail; a manager sees the
team's chart drawn with its data points. Screenshots go to
BUILD/artefacts/console/.

Without Chromium the browser tests are skipped with the reason (as the
PostgreSQL tests are without PostgreSQL), except in CI (CI set in the
environment), where they fail: CI must run them. UNTILD_CHROMIUM and
UNTILD_CHROMEDRIVER name other binaries (or a missing one, to see that)."""
import base64
import crypt
import json
import os
import shutil
import smtplib
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.request

from harness import BUILD, TIMEOUT_SCALE, UNTILD, Sink, Untild, free_port, message

HERE = os.path.dirname(os.path.abspath(__file__))
CONSOLE = os.path.normpath(os.path.join(HERE, "..", "..", "daemon", "console"))
ARTEFACTS = os.path.join(BUILD, "artefacts", "console")
CHROMIUM = os.environ.get("UNTILD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("UNTILD_CHROMEDRIVER", "/usr/bin/chromedriver")
PASSWORDS = {"alice@example.com": "alice-pw", "bob@example.com": "bob-pw", "boss@example.com": "boss-pw"}


def browser_missing():
    for path, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return "%s is not installed (apt-get install %s; make deps)" % (path, pkg)
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "python3-selenium is not installed (apt-get install python3-selenium; make deps)"
    return None


MISSING = browser_missing()
IN_CI = bool(os.environ.get("CI"))


def get(port, path, method="GET"):
    """(status, headers, body bytes) of a plain request."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=20 * TIMEOUT_SCALE) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def raw_get(port, path):
    """The status of GET path sent as is (urllib would normalise "..")."""
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=20 * TIMEOUT_SCALE)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return int(data.split(b" ", 2)[1]), data


class ConsoleFiles(unittest.TestCase):
    """The console's files from [http] console_dir: types, headers, and
    nothing from outside the directory."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="untild-console-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.cdir = os.path.join(self.dir, "console")
        shutil.copytree(CONSOLE, self.cdir)
        with open(os.path.join(self.dir, "secret.txt"), "w") as f:
            f.write("not for the web\n")
        os.symlink(os.path.join(self.dir, "secret.txt"), os.path.join(self.cdir, "out.txt"))
        os.makedirs(os.path.join(self.cdir, "sub"))
        os.symlink("../console.css", os.path.join(self.cdir, "sub", "in.css"))
        with open(os.path.join(self.cdir, "big.js"), "w") as f:
            f.write("//" + "x" * (1 << 20))
        with open(os.path.join(self.cdir, ".hidden.js"), "w") as f:
            f.write("hidden\n")
        self.hport = free_port()
        self.u = Untild(None, extra="[http]\nlisten = 127.0.0.1:%d\nconsole_dir = %s\n" % (self.hport, self.cdir))
        self.addCleanup(self.u.cleanup)
        self.u.start()

    def test_index_and_assets_with_strict_headers(self):
        st, h, body = get(self.hport, "/")
        self.assertEqual(st, 200)
        self.assertEqual(h["Content-Type"], "text/html; charset=utf-8")
        self.assertEqual(h["X-Content-Type-Options"], "nosniff")
        csp = h["Content-Security-Policy"]
        self.assertIn("default-src 'none'", csp)
        self.assertIn("script-src 'self'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertIn(b'<script src="/console.js" defer></script>', body)
        self.assertNotRegex(body.decode(), r"<script>|<script [^>]*>[^<]|\son[a-z]+=")   # no inline script
        for path, ctype in (("/console.js", "text/javascript; charset=utf-8"),
                            ("/console.css", "text/css; charset=utf-8"),
                            ("/sub/in.css", "text/css; charset=utf-8")):   # a symlink inside: fine
            st, h, body = get(self.hport, path)
            self.assertEqual((st, h["Content-Type"]), (200, ctype), path)
            self.assertEqual(h["X-Content-Type-Options"], "nosniff")
        st, h, body = get(self.hport, "/", method="HEAD")
        self.assertEqual((st, body), (200, b""))
        st, h, _ = get(self.hport, "/", method="POST")
        self.assertEqual((st, h["Allow"]), (405, "GET, HEAD"))
        # the API is still the API, and says nosniff too
        st, h, _ = get(self.hport, "/api/v1/status")
        self.assertEqual((st, h["Content-Type"]), (401, "application/json"))
        self.assertEqual(h["X-Content-Type-Options"], "nosniff")

    def test_nothing_outside_the_directory(self):
        for path in ("/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt",
                     "/out.txt", "/.hidden.js", "/sub/", "//etc/passwd", "/console.js/",
                     "/untild.conf", "/" + "a" * 400 + ".js", "/big.js"):
            st, data = raw_get(self.hport, path)
            self.assertEqual(st, 404, path)
            self.assertNotIn(b"not for the web", data)
        log = self.u.logtext()
        self.assertIn("console: out.txt leads out of", log)
        self.assertIn("console: big.js is over 1048576 bytes, not served", log)

    def test_console_dir_must_be_a_directory(self):
        self.u.stop()
        conf = open(self.u.conf).read().replace(self.cdir, os.path.join(self.dir, "secret.txt"))
        with open(self.u.conf, "w") as f:
            f.write(conf)
        line = conf[:conf.index("console_dir")].count("\n") + 1
        r = subprocess.run([UNTILD, "-t", "-c", self.u.conf], capture_output=True, text=True,
                           timeout=20 * TIMEOUT_SCALE)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("%s:%d:" % (self.u.conf, line), r.stdout + r.stderr)
        self.assertIn("console_dir", r.stdout + r.stderr)
        self.assertIn("not a directory", r.stdout + r.stderr)


class Browser:
    """Headless Chromium through chromium-driver, with its own profile;
    quit() ends both processes."""

    def __init__(self, width=390, height=844):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        self.profile = tempfile.mkdtemp(prefix="untild-chromium-")
        o = webdriver.ChromeOptions()
        o.binary_location = CHROMIUM
        for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--user-data-dir=" + self.profile, "--window-size=%d,%d" % (width, height)):
            o.add_argument(a)
        self.service = Service(CHROMEDRIVER)
        self.d = webdriver.Chrome(service=self.service, options=o)
        self.d.set_script_timeout(20 * TIMEOUT_SCALE)

    def quit(self):
        try:
            self.d.quit()
        finally:
            proc = getattr(self.service, "process", None)
            if proc and proc.poll() is None:
                proc.kill()
                proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)


@unittest.skipIf(MISSING and not IN_CI, MISSING or "")
class ConsoleBrowser(unittest.TestCase):
    def setUp(self):
        if MISSING:
            self.fail("CI: the browser tests must run: " + MISSING)
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support import expected_conditions as EC
        from selenium.webdriver.support.ui import WebDriverWait
        self.By, self.EC, self.Wait, self.Keys = By, EC, WebDriverWait, Keys
        os.makedirs(ARTEFACTS, exist_ok=True)
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.hport = free_port()
        self.u = Untild(self.sink, windows="jane@acme.com 2027-07-01\njim@other.com 2027-07-01\n"
                                           "kim@flag.com 2027-07-01 action=flag\n"
                                           "rex@reject.com 2027-07-01 action=reject\n",
                        extra="[http]\nlisten = 127.0.0.1:%d\nconsole_dir = %s\nadmins = boss@example.com\n"
                              % (self.hport, CONSOLE))
        self.addCleanup(self.u.cleanup)
        pw = os.path.join(self.u.dir, "passwd")
        with open(pw, "w") as f:
            for user, password in PASSWORDS.items():
                f.write("%s:%s\n" % (user, crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))))
        os.chmod(pw, 0o600)
        with open(self.u.conf) as f:
            conf = f.read()
        with open(self.u.conf, "w") as f:
            f.write(conf.replace("auth = none", "auth = passwd:" + pw))
        self.u.start()
        self.u.set_clock("2027-01-04T10:00Z")     # a Monday
        self.b = None

    def browser(self, **kw):
        self.b = Browser(**kw)
        self.addCleanup(self.b.quit)
        return self.b.d

    def shot(self, name):
        """The whole page (not only the window) as a test artefact."""
        d = self.b.d
        size = d.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        png = d.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 8000), "scale": 1}})
        with open(os.path.join(ARTEFACTS, "%s.%s.png" % (self.id().split(".")[-1], name)), "wb") as f:
            f.write(base64.b64decode(png["data"]))

    def wait(self, cond, what, timeout=20):
        """Wait for cond; an element the page replaced meanwhile (stale) is
        looked for again."""
        from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
        try:
            return self.Wait(self.b.d, timeout * TIMEOUT_SCALE,
                             ignored_exceptions=(StaleElementReferenceException,)).until(cond)
        except TimeoutException:
            self.shot("timeout")
            raise AssertionError("browser: timed out waiting for %s\n%s" % (what, self.u.logtext()[-3000:]))

    def send(self, user, to, subject):
        """Mail from user (SMTP AUTH) to a quiet contact: held."""
        before = len(self.u.held_json())
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20 * TIMEOUT_SCALE)
        try:
            s.login(user, PASSWORDS[user])
            s.sendmail(user, [to], message(subject=subject, frm=user, to=to, body="Dear customer,\r\nnews.\r\n"))
        finally:
            s.close()
        self.u.wait_for(lambda: len(self.u.held_json()) == before + 1, what="the message held")
        return [m for m in self.u.held_json() if m["subject"] == subject][-1]["id"]

    def login(self, user):
        d = self.b.d
        d.get("http://127.0.0.1:%d/" % self.hport)
        By = self.By
        self.wait(self.EC.visibility_of_element_located((By.ID, "login-user")), "the login form")
        d.find_element(By.ID, "login-user").send_keys(user)
        d.find_element(By.ID, "login-password").send_keys(PASSWORDS[user])
        d.find_element(By.ID, "login-submit").click()
        self.wait(self.EC.visibility_of_element_located((By.ID, "app")), "the console after login")
        self.wait(lambda d: d.find_element(By.ID, "held-list").get_attribute("aria-busy") == "false",
                  "the held list")

    def set_date(self, input_id, value):
        """A date input's value (typing into one depends on the locale)."""
        self.b.d.execute_script("arguments[0].value = arguments[1]", self.b.d.find_element(self.By.ID, input_id),
                                value)

    def window(self, who):
        wins = [w for w in json.loads(self.u.ctl("--json", "window", "list", check=0).stdout) if who in w["who"]]
        self.assertLessEqual(len(wins), 1)
        return wins[0] if wins else None

    def held_ids(self):
        return self.b.d.execute_script(
            "return [...document.querySelectorAll('#held-list article.held')].map(e => e.dataset.id);")

    def held_items(self):
        return {e.get_attribute("data-id"): e for e in self.b.d.find_elements(self.By.CSS_SELECTOR, "#held-list article.held")}

    def test_rep_releases_discards_adds_a_window_and_sees_only_their_mail(self):
        By, Keys = self.By, self.Keys
        old = self.send("alice@example.com", "jane@acme.com", "Old offer")
        bobs = self.send("bob@example.com", "jim@other.com", "Bob's offer")
        self.u.set_clock("2027-02-01T10:00Z")   # 28 days later: "Old offer" is over 3 weeks old
        young = self.send("alice@example.com", "jane@acme.com", "New offer")
        d = self.browser()
        self.login("alice@example.com")
        self.shot("held")
        items = self.held_items()
        # a rep sees their own mail only, and cannot fetch another's
        self.assertEqual(sorted(items), sorted([old, young]))
        self.assertNotIn("Bob's offer", d.find_element(By.ID, "held-list").text)
        st = d.execute_async_script(
            "const done = arguments[1];"
            "fetch('/api/v1/held/' + arguments[0]).then(r => done(r.status), e => done(-1));", bobs)
        self.assertIn(st, (403, 404))
        st = d.execute_async_script(
            "const id = arguments[0], done = arguments[1];"
            "fetch('/api/v1/me').then(r => r.json()).then(me => fetch('/api/v1/held/' + id + '/release', {"
            "  method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf},"
            "  body: JSON.stringify({reason: 'not mine'})})).then(r => done(r.status), e => done(-1));", bobs)
        self.assertIn(st, (403, 404))
        self.assertIn(bobs, [m["id"] for m in self.u.held_json()])
        self.assertFalse(self.sink.for_rcpt("jim@other.com"))
        # who, why, until when, age; the warning on the old one only
        self.assertIn("jane@acme.com", items[old].find_element(By.CSS_SELECTOR, ".to").text)
        self.assertEqual(items[old].find_element(By.CSS_SELECTOR, ".until").text, "2027-07-01 00:00")
        self.assertEqual(items[old].find_element(By.CSS_SELECTOR, ".age").text, "28 days")
        self.assertIn("quiet until 2027-07-01", items[old].find_element(By.CSS_SELECTOR, ".why").text)
        self.assertTrue(items[old].find_elements(By.CSS_SELECTOR, ".warning"))
        self.assertFalse(items[old].find_element(By.CSS_SELECTOR, "button.discard-yes").is_displayed())
        self.assertIn("over 3 weeks", items[old].find_element(By.CSS_SELECTOR, ".warning").text)
        self.assertFalse(items[young].find_elements(By.CSS_SELECTOR, ".warning"))
        # release with a reason, by keyboard: the customer receives it
        reason = items[old].find_element(By.CSS_SELECTOR, "input.release-reason")
        label = d.find_element(By.CSS_SELECTOR, "label[for='%s']" % reason.get_attribute("id"))
        self.assertEqual(label.text, "Reason for releasing")
        reason.send_keys("customer asked for it today" + Keys.ENTER)
        self.wait(lambda d: old not in self.held_ids(), "the released message to leave the list")
        self.wait(lambda d: "Released" in d.find_element(By.ID, "status").text, "the release notice")
        self.u.wait_for(lambda: self.sink.for_rcpt("jane@acme.com"), what="the customer to receive it")
        got = self.sink.for_rcpt("jane@acme.com")
        self.assertEqual(len(got), 1)
        self.assertIn(b"Subject: Old offer", got[0].data)
        self.assertIn("customer asked for it today", json.dumps(self.audit()))
        self.shot("released")
        # discard asks first
        items = self.held_items()
        items[young].find_element(By.CSS_SELECTOR, "button.discard").click()
        yes = self.wait(self.EC.visibility_of(items[young].find_element(By.CSS_SELECTOR, "button.discard-yes")),
                        "the discard confirmation")
        self.assertIn(young, self.held_ids())         # not yet
        yes.click()
        self.wait(lambda d: young not in self.held_ids(), "the discarded message to leave the list")
        self.assertNotIn(young, [m["id"] for m in self.u.held_json()])
        self.assertEqual(len(self.sink.for_rcpt("jane@acme.com")), 1)     # discarded: never sent
        # add a window that ends in 4 days: it is a follow-up due
        d.find_element(By.ID, "window-who").send_keys("pat@client.com")
        self.set_date("window-until", "2027-02-05")
        d.find_element(By.ID, "window-reason").send_keys("on holiday")
        d.find_element(By.ID, "window-submit").click()
        pat = "#windows-list article[data-who='pat@client.com']"
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, pat), "the new window in the list")
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#followups-list article[data-contact='pat@client.com']"),
                  "the window's follow-up")
        self.shot("window-added")
        w = self.window("pat@client.com")
        self.assertEqual((w["owner"], w["reason"]), ("alice@example.com", "on holiday"))
        self.assertTrue(w["until"].startswith("2027-02-05"), w)
        # change it: a later end, no reason
        d.find_element(By.CSS_SELECTOR, pat + " button.change").click()
        self.assertEqual(d.find_element(By.ID, "window-who").get_attribute("readOnly"), "true")
        self.set_date("window-until", "2027-08-01")
        d.find_element(By.ID, "window-reason").clear()
        d.find_element(By.ID, "window-submit").click()
        self.wait(lambda d: "Changed the window" in d.find_element(By.ID, "status").text, "the change")
        w = self.window("pat@client.com")
        self.assertTrue(w["until"].startswith("2027-08-01"), w)
        self.assertFalse(w.get("reason"))
        self.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, "#followups-list article[data-contact]"),
                  "the follow-up to go (the window now ends in August)")
        # end it, after a confirmation
        d.find_element(By.CSS_SELECTOR, pat + " button.end").click()
        yes = self.wait(self.EC.element_to_be_clickable((By.CSS_SELECTOR, pat + " button.end-yes")),
                        "the end confirmation")
        yes.click()
        self.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, pat), "the ended window to leave the list")
        self.assertIsNone(self.window("pat@client.com"))
        # every form control has a label
        unlabelled = d.execute_script(
            "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
            ".filter(e => !e.labels || !e.labels.length).map(e => e.id || e.name);")
        self.assertEqual(unlabelled, [])
        # the page kept to its Content-Security-Policy (nothing refused)
        refused = [e["message"] for e in d.get_log("browser") if "Content Security Policy" in e["message"]]
        self.assertEqual(refused, [])

    def test_manager_sees_the_team_chart_and_every_reps_mail(self):
        By = self.By
        a1 = self.send("alice@example.com", "jane@acme.com", "A week 1")
        b1 = self.send("bob@example.com", "jim@other.com", "B week 1")
        self.u.set_clock("2027-01-11T10:00Z")   # the next week
        a2 = self.send("alice@example.com", "jane@acme.com", "A week 2")
        a3 = self.send("alice@example.com", "jane@acme.com", "A week 2 again")
        # bob's flagged (sent, marked) and rejected (refused at RCPT) mail
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20 * TIMEOUT_SCALE)
        self.addCleanup(s.close)
        s.login("bob@example.com", PASSWORDS["bob@example.com"])
        s.sendmail("bob@example.com", ["kim@flag.com"], message(subject="flag me", frm="bob@example.com",
                                                                to="kim@flag.com"))
        with self.assertRaises(smtplib.SMTPRecipientsRefused):
            s.sendmail("bob@example.com", ["rex@reject.com"], message(subject="reject me", frm="bob@example.com",
                                                                      to="rex@reject.com"))
        self.u.wait_for(lambda: {"flagged", "rejected"} <= {e for e, _, _ in self.audit()},
                        what="the flagged and rejected audit rows")
        self.browser(width=1280, height=1000)
        self.login("boss@example.com")
        self.assertEqual(sorted(self.held_items()), sorted([a1, b1, a2, a3]))
        reps = {e.get_attribute("data-rep") for e in self.held_items().values()}
        self.assertEqual(reps, {"alice@example.com", "bob@example.com"})
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "svg[data-chart='contact-too-early'] circle.point"),
                  "the chart's data points")
        self.shot("team")
        points = [(p.get_attribute("data-rep"), p.get_attribute("data-week"), int(p.get_attribute("data-count")))
                  for p in self.b.d.find_elements(By.CSS_SELECTOR,
                                                  "svg[data-chart='contact-too-early'] circle.point")]
        weeks = sorted({w for _, w, _ in points})
        self.assertEqual(len(weeks), 2, points)
        count = {(r, w): n for r, w, n in points}
        self.assertEqual(count[("alice@example.com", weeks[0])], 1)
        self.assertEqual(count[("alice@example.com", weeks[1])], 2)
        self.assertEqual(count[("bob@example.com", weeks[0])], 1)
        self.assertEqual(count[("bob@example.com", weeks[1])], 2)
        kinds = {}
        for bar in self.b.d.find_elements(By.CSS_SELECTOR, "svg[data-chart='kinds'] rect.bar"):
            k = bar.get_attribute("data-kind")
            kinds[k] = kinds.get(k, 0) + int(bar.get_attribute("data-count"))
        self.assertEqual(kinds, {"held": 4, "flagged": 1, "rejected": 1})
        pressed = self.b.d.find_elements(By.CSS_SELECTOR, "#pressed li[data-contact]")
        self.assertEqual(pressed[0].get_attribute("data-contact"), "jane@acme.com")
        self.assertEqual(pressed[0].get_attribute("data-count"), "3")

    def audit(self):
        return self.u.audit_rows()


if __name__ == "__main__":
    unittest.main()
