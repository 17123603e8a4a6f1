"""Windows, checks and reports over the HTTP API and untilctl (issue 14,
second part): window change (PATCH /windows/{id}, untilctl window change)
re-evaluating held mail, CSV import (POST /windows/import, untilctl window
import) idempotent and all-or-nothing with per-line errors, idempotent adds
and ends for CRM workflows, POST /check for many addresses, and report,
followups and cadence as the verbs answer them. Rep A cannot change rep B's
window through the API nor through untilctl. Against the real daemon."""
import datetime
import json
import os
import subprocess
import unittest

from harness import TIMEOUT_SCALE
from test_core import REP_USER, as_rep
from test_http_api import ApiTest, setUpModule as api_setup, tearDownModule as api_teardown

CSV = ('email,until,reason,action\r\n'
       'jane@acme.com,2027-06-01,"Budget frozen, call in June",hold\r\n'
       '"sam@acme.com",2027-07-01,"He said ""not now""",flag\r\n'
       'amy@other.com,never,left the company\r\n')


def setUpModule():
    api_setup()


def tearDownModule():
    api_teardown()


class Change(ApiTest):
    def test_extend_then_shorten_to_now_releases_the_held_mail(self):
        tok = self.token("crm", "admin")
        st, w, _ = self.call("POST", "/api/v1/windows", tok, {"who": "jane@acme.com", "until": "2027-06-01"})
        self.assertEqual(st, 201, w)
        mid = self.hold_mail()
        st, doc, _ = self.call("PATCH", "/api/v1/windows/" + w["id"], tok,
                               {"until": "2027-09-01", "reason": "moved to autumn"})
        self.assertEqual(st, 200, doc)
        self.assertEqual((doc["id"], doc["changed"], doc["reason"]), (w["id"], True, "moved to autumn"))
        self.assertTrue(doc["until"].startswith("2027-09-01"), doc)
        self.u.wait_for(lambda: self.u.held_json()[0]["release_at"].startswith("2027-09-01"), 20,
                        "the held message re-evaluated to the new end")
        # the same change again changes nothing
        st, doc, _ = self.call("PATCH", "/api/v1/windows/" + w["id"], tok, {"until": "2027-09-01"})
        self.assertEqual((st, doc["changed"]), (200, False))
        # shortened to before now: the window ends and what it held goes out
        st, doc, _ = self.call("PATCH", "/api/v1/windows/" + w["id"], tok, {"until": "2027-01-10T09:00Z"})
        self.assertEqual((st, doc["ended"]), (200, True), doc)
        self.assertEqual(self.u.windows_json(), [])
        self.u.wait_for(lambda: self.sink.for_rcpt("jane@acme.com"), 20, "the released message at the upstream")
        self.assertEqual([m for m in self.u.held_json() if m["id"] == mid and m["state"] == "held"], [])
        events = [e for e, _, _ in self.audit()]
        self.assertIn("window-changed", events)
        self.assertIn("window-ended", events)
        # the API's own row says which token and from where
        self.assertTrue(any(e == "api" and rep == "crm" and "127.0.0.1" in d for e, rep, d in self.audit()))

    def test_untilctl_change(self):
        w = json.loads(self.u.ctl("--json", "window", "add", "jane@acme.com", "--until", "2027-06-01",
                                  "--reason", "first", check=0).stdout)
        r = self.u.ctl("window", "change", w["id"], "--action", "flag", "--reason", 'say "later"', check=0)
        self.assertIn("changed " + w["id"], r.stdout)
        now = self.u.windows_json()[0]
        self.assertEqual((now["action"], now["reason"], now["until"][:10]), ("flag", 'say "later"', "2027-06-01"))
        self.assertEqual(self.u.ctl("window", "change", w["id"]).returncode, 2)      # nothing to change
        self.assertEqual(self.u.ctl("window", "change", "w999").returncode, 5)
        r = self.u.ctl("window", "change", w["id"], "--until", "someday")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        # a value is never read as more of the window's line
        r = self.u.ctl("window", "change", w["id"], "--until", "2027-08-01 action=reject")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        r = self.u.ctl("window", "add", "x@acme.com 2027-08-01 action=reject", "--until", "never")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertEqual(self.u.windows_json()[0]["until"], now["until"])

    def test_file_windows_are_changed_in_their_file(self):
        tok = self.token("crm", "admin")
        self.u.write_windows("jane@acme.com 2027-06-01\n")
        self.u.ctl("reload", check=0)
        wid = self.u.windows_json()[0]["id"]
        st, doc, _ = self.call("PATCH", "/api/v1/windows/" + wid, tok, {"until": "2027-09-01"})
        self.assertEqual(st, 409, doc)
        self.assertIn("window file", doc["reason"])

    def test_bad_input_changes_nothing(self):
        tok = self.token("crm", "admin")
        wid = self.call("POST", "/api/v1/windows", tok, {"who": "jane@acme.com", "until": "2027-06-01"})[1]["id"]
        before = self.u.windows_json()
        for body, field in ((b'{"until": ', None), (b'{"until": 5}', "until"), (b'{}', None),
                            (b'{"who": "x@y.com"}', "who"), (b'{"owner": "me"}', "owner"),
                            (b'{"until": "yesterday-ish"}', "until"), (b'{"action": "explode"}', None),
                            (b'{"colour": "red"}', None)):
            st, doc, _ = self.call("PATCH", "/api/v1/windows/" + wid, tok, body)
            self.assertEqual(st, 400, (body, doc))
            self.assertEqual(doc["field"], field, (body, doc))
        self.assertEqual(self.call("PATCH", "/api/v1/windows/w999", tok, {"until": "2027-09-01"})[0], 404)
        # a body over [http] max_body (1 MiB by default) is refused unread
        # (curl: it waits for the early answer where urllib may still be
        # writing into a closed connection)
        huge = b'{"reason": "' + b"x" * (1100 * 1024) + b'"}'
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PATCH",
                            "-H", "Authorization: Bearer " + tok, "-H", "Content-Type: application/json",
                            "--data-binary", "@-", "http://127.0.0.1:%d/api/v1/windows/%s" % (self.hport, wid)],
                           input=huge, capture_output=True, timeout=30 * TIMEOUT_SCALE)
        self.assertEqual(r.stdout, b"413")
        self.assertEqual(self.u.windows_json(), before)


@unittest.skipUnless(os.geteuid() == 0, "needs root to run untilctl as another user")
class Rights(ApiTest):
    def test_rep_a_cannot_change_rep_b_window(self):
        b_tok = self.token("b", "rep:rep@example.com")
        a_tok = self.token("a", "rep:other@example.com")
        st, w, _ = self.call("POST", "/api/v1/windows", b_tok, {"who": "jane@acme.com", "until": "2027-06-01"})
        self.assertEqual((st, w["owner"]), (201, "rep@example.com"))
        st, doc, _ = self.call("PATCH", "/api/v1/windows/" + w["id"], a_tok, {"until": "2027-12-01"})
        self.assertEqual((st, doc["error"]), (403, "forbidden"), doc)
        # nor through untilctl, as a local user who is not its owner
        r = as_rep(self.u, "window", "change", w["id"], "--until", "2027-12-01")
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn("not yours", r.stderr)
        self.assertTrue(self.u.windows_json()[0]["until"].startswith("2027-06-01"))
        denied = [(e, rep) for e, rep, d in self.audit() if e == "denied" and d == "window change"]
        self.assertEqual(sorted(denied), sorted([("denied", "other@example.com"), ("denied", REP_USER)]))
        # an import by A never matches or touches B's window: A gets its own
        st, doc, _ = self.call("POST", "/api/v1/windows/import", a_tok, b"jane@acme.com,2027-06-01,\n",
                               headers={"Content-Type": "text/csv"})
        self.assertEqual((st, doc["added"]), (200, 1), doc)
        owners = sorted(w["owner"] for w in self.u.windows_json())
        self.assertEqual(owners, ["other@example.com", "rep@example.com"])
        # the owner may change it
        st, doc, _ = self.call("PATCH", "/api/v1/windows/" + w["id"], b_tok, {"until": "2027-12-01"})
        self.assertEqual(st, 200, doc)


class Import(ApiTest):
    def post_csv(self, tok, body, ctype="text/csv"):
        return self.call("POST", "/api/v1/windows/import", tok, body.encode() if isinstance(body, str) else body,
                         headers={"Content-Type": ctype})

    def test_import_twice_changes_nothing_the_second_time(self):
        tok = self.token("crm", "admin")
        st, doc, _ = self.post_csv(tok, CSV)
        self.assertEqual(st, 200, doc)
        self.assertEqual((doc["added"], doc["unchanged"], doc["errors"]), (3, 0, []))
        self.assertEqual([x["line"] for x in doc["windows"]], [2, 3, 4])
        wins = {w["who"][0]: w for w in self.u.windows_json()}
        self.assertEqual(wins["jane@acme.com"]["reason"], "Budget frozen, call in June")
        self.assertEqual(wins["sam@acme.com"]["reason"], 'He said "not now"')
        self.assertEqual(wins["sam@acme.com"]["action"], "flag")
        self.assertEqual(wins["amy@other.com"]["until"], "never")
        audit_rows = len(self.audit())
        st, doc, _ = self.post_csv(tok, CSV)
        self.assertEqual((st, doc["added"], doc["unchanged"]), (200, 0, 3), doc)
        self.assertEqual(sorted(w["id"] for w in self.u.windows_json()), sorted(w["id"] for w in wins.values()))
        # nothing but the import's own rows was recorded
        self.assertEqual([e for e, _, _ in self.audit()[audit_rows:]], ["window-import", "api"])

    def test_untilctl_import_twice(self):
        path = os.path.join(self.u.dir, "crm.csv")
        with open(path, "w") as f:
            f.write(CSV)
        r = self.u.ctl("window", "import", path, check=0)
        self.assertIn("added 3, unchanged 0", r.stdout)
        r = self.u.ctl("--json", "window", "import", path, check=0)
        self.assertEqual(json.loads(r.stdout)["unchanged"], 3)
        self.assertEqual(len(self.u.windows_json()), 3)
        # the file is the caller's to read: a missing one never reaches the daemon
        r = self.u.ctl("window", "import", path + ".nope")
        self.assertEqual(r.returncode, 1)
        self.assertIn("No such file", r.stderr)

    def test_line_errors_name_the_line_and_nothing_is_added(self):
        tok = self.token("crm", "admin")
        bad = ('email,until,reason\n'
               'jane@acme.com,2027-06-01,fine\n'
               'not an address,2027-06-01,x\n'
               'sam@acme.com,2020-01-01,past\n'
               'amy@other.com,2027-06-01,x,explode\n'
               'bob@other.com,2027-06-01,"open\n')
        st, doc, _ = self.post_csv(tok, bad)
        self.assertEqual(st, 400, doc)
        self.assertEqual((doc["added"], doc["error"], doc["field"]), (0, "bad request", "body"))
        got = [(e["line"], e["field"]) for e in doc["errors"]]
        self.assertEqual(got, [(6, "reason"), (3, "email"), (4, "until"), (5, "action")])
        self.assertIn("past", doc["errors"][2]["reason"])
        self.assertEqual(self.u.windows_json(), [])
        path = os.path.join(self.u.dir, "bad.csv")
        with open(path, "w") as f:
            f.write(bad)
        r = self.u.ctl("window", "import", path)
        self.assertEqual(r.returncode, 2)
        self.assertIn("line 4: until: in the past", r.stderr)
        self.assertIn("nothing imported", r.stderr)
        self.assertEqual(self.u.windows_json(), [])

    def test_bad_requests(self):
        tok = self.token("crm", "admin")
        st, doc, _ = self.post_csv(tok, CSV, "application/json")
        self.assertEqual(st, 415, doc)
        big = "email,until,reason\n" + "".join("u%d@acme.com,2027-06-01,%s\n" % (i, "r" * 60) for i in range(4000))
        self.assertGreater(len(big), 256 * 1024)
        st, doc, _ = self.post_csv(tok, big)
        self.assertEqual(st, 413, doc)
        self.assertIn("262144", doc["reason"])
        st, doc, _ = self.post_csv(tok, b"jane@acme.com,2027-06-01,a\x00b\n")
        self.assertEqual((st, doc["field"]), (400, "body"))
        many = "".join("u%d@acme.com,2027-06-01,r\n" % i for i in range(1001))
        st, doc, _ = self.post_csv(tok, many)
        self.assertEqual((st, doc["errors"][0]["line"]), (400, 0), doc)
        self.assertIn("1000", doc["errors"][0]["reason"])
        self.assertEqual(self.u.windows_json(), [])
        # more than one row over: each counted, none written past the
        # parser's 1000 rows (heap overflow on the loop: any rep could)
        many = "".join("u%d@acme.com,2027-06-01,r\n" % i for i in range(1200))
        st, doc, _ = self.post_csv(tok, many)
        self.assertEqual((st, doc["errors"][0]["line"]), (400, 0), doc)
        self.assertIn("1200 rows", doc["errors"][0]["reason"])
        self.assertEqual(self.call("GET", "/api/v1/status", tok)[0], 200)
        self.assertEqual(self.u.windows_json(), [])
        # untilctl refuses an over-long file itself
        path = os.path.join(self.u.dir, "big.csv")
        with open(path, "w") as f:
            f.write(big)
        r = self.u.ctl("window", "import", path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("split it", r.stderr)


class Crm(ApiTest):
    def test_set_and_end_one_address_idempotently(self):
        tok = self.token("crm", "admin")
        body = {"who": "jane@acme.com", "until": "2027-06-01", "reason": "renewal in June"}
        st, first, _ = self.call("POST", "/api/v1/windows", tok, body)
        self.assertEqual((st, first["created"]), (201, True))
        st, again, _ = self.call("POST", "/api/v1/windows", tok, body)
        self.assertEqual((st, again["created"], again["id"]), (200, False, first["id"]))
        self.assertEqual(len(self.u.windows_json()), 1)
        st, doc, _ = self.call("DELETE", "/api/v1/windows?who=jane@acme.com", tok)
        self.assertEqual((st, doc["ended"]), (200, [first["id"]]), doc)
        st, doc, _ = self.call("DELETE", "/api/v1/windows?who=jane@acme.com", tok)
        self.assertEqual((st, doc["ended"]), (200, []), doc)
        self.assertEqual(self.call("DELETE", "/api/v1/windows?who=not%20one", tok)[0], 400)
        st, doc, _ = self.call("DELETE", "/api/v1/windows?who=nobody", tok)
        self.assertEqual((st, doc["field"]), (400, "who"), doc)


class Check(ApiTest):
    def test_many_addresses(self):
        tok = self.token("crm", "admin")
        self.u.ctl("window", "add", "jane@acme.com", "--until", "2027-06-01", check=0)
        st, doc, _ = self.call("POST", "/api/v1/check", tok,
                               {"who": ["jane@acme.com", "free@acme.com", "not an address"]})
        self.assertEqual(st, 200, doc)
        v = doc["verdicts"]
        self.assertEqual([x.get("address") for x in v], ["jane@acme.com", "free@acme.com", "not an address"])
        self.assertEqual((v[0]["quiet"], v[1]["quiet"]), (True, False))
        self.assertIn("error", v[2])
        # later, the window is over
        st, doc, _ = self.call("POST", "/api/v1/check", tok, {"who": ["jane@acme.com"], "at": "2027-07-01"})
        self.assertEqual(doc["verdicts"][0]["quiet"], False)
        # GET with ?who= is the one-address form
        st, one, _ = self.call("GET", "/api/v1/check?who=jane@acme.com", tok)
        self.assertEqual((st, one["quiet"]), (200, True))
        for body, field in (({"who": "jane@acme.com"}, "who"), ({"who": []}, "who"), ({"who": [5]}, "who"),
                            ({"who": ["a@b.com"] * 101}, "who"), ({"who": ["a@b.com"], "at": 5}, "at"),
                            ({"who": ["a@b.com"], "x": 1}, None)):
            st, doc, _ = self.call("POST", "/api/v1/check", tok, body)
            self.assertEqual((st, doc["field"]), (400, field), body)


class Report(ApiTest):
    def test_report_followups_cadence_match_untilctl(self):
        tok = self.token("crm", "admin")
        mine = self.token("rep", "rep:rep@example.com")
        self.u.ctl("window", "add", "jane@acme.com", "--until", "2027-06-01", check=0)
        self.hold_mail()
        st, rep, _ = self.call("GET", "/api/v1/report?since=7", tok)
        self.assertEqual(st, 200, rep)
        self.assertEqual(rep, json.loads(self.u.ctl("--json", "report", "--since", "7", check=0).stdout))
        y, w, _ = datetime.date(2027, 1, 10).isocalendar()
        self.assertIn({"week": "%d-W%02d" % (y, w), "rep": "rep@example.com", "channel": "smtp",
                       "held": 1, "flagged": 0, "rejected": 0}, rep["weeks"])
        self.assertIn("WEEK", self.u.ctl("report", check=0).stdout)
        # a rep token's report is the rep's own (the same rows here)
        st, r2, _ = self.call("GET", "/api/v1/report", mine)
        self.assertEqual([x["id"] for x in r2["by_rep"]], ["rep@example.com"])
        self.assertEqual(self.call("GET", "/api/v1/report?since=abc", tok)[1]["field"], "since")
        st, fu, _ = self.call("GET", "/api/v1/followups?days=30", tok)
        self.assertEqual(st, 200, fu)
        self.assertEqual(fu, json.loads(self.u.ctl("--json", "followups", "--days", "30", check=0).stdout))
        st, cad, _ = self.call("GET", "/api/v1/cadence", tok)
        self.assertEqual((st, cad), (200, json.loads(self.u.ctl("--json", "cadence", "list", check=0).stdout)))


if __name__ == "__main__":
    unittest.main()
