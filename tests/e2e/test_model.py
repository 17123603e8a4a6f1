"""Model-based test of the held-message lifecycle (issue 11): Hypothesis
drives the REAL daemon through its public interfaces (SMTP to the listener,
untilctl, window files + SIGHUP, the test clock, the upstream's behaviour,
restart, kill -9) and checks it against a small reference model.

The model knows windows (who, until, action, ended by hand?), messages
(accepted recipients, the part sent at once, the part held, FUTURERELEASE,
released by hand, discarded) and the upstream's mode. It decides two things
at every step, from DESIGN.md "Spool and release":

  may_go(M)   M may leave now: released by hand; or past its FUTURERELEASE
              time, no pending recipient matched by a HOLD window (matched
              as at RCPT time: most specific, then latest until), and for a
              recipient whose last hold window ended by itself, its aligned
              release time reached. Anything sent when may_go was false (in
              every model state of the last LAG seconds) is a violation.
  must_go(M)  M must leave (or come back to the rep) within the scheduler's
              slack: may_go, the upstream accepts and has for a whole
              back-off, and no hold window that could have governed a
              recipient since the last step is still in force or before its
              aligned release. The test waits for it.

and, always: each accepted message reaches each recipient exactly once or
comes back to the rep attached to a notice (duplicates only around a kill
-9, counted); a message the daemon said it discarded never arrives; a
message refused to the client never arrives; nothing stays in active/ when
idle; the audit agrees. At the end all windows are ended by hand, the
upstream accepts, the clock jumps: everything must be delivered or returned
and the spool must be empty.

Universe: one rep (single-user install), contacts jane@ and joe@acme.com,
bob@beta.com, windows on those and on @acme.com; split_recipients and
release_time (off / 09:00) drawn per daemon.

Run length: UNTILD_MODEL_EXAMPLES (default 40; Hypothesis starts with about
ten tiny ones) examples of at most UNTILD_MODEL_STEPS (default 30) steps,
about a second each against a correct daemon; `make model-check EXAMPLES=N`
runs long and shrinks what fails (UNTILD_MODEL_SHRINK=1). Each example
starts its own daemon and sink. At the end the test prints how many
examples ran clean."""
import calendar
import os
import re
import signal
import sys
import time
import unittest

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from harness import Sink, Untild
from lifecycle_util import REP, audit_rows, held_by_mid, make_msg, smtp_send, spool_all, delivering

EXAMPLES = int(os.environ.get("UNTILD_MODEL_EXAMPLES", "40") or 40)
STEPS = int(os.environ.get("UNTILD_MODEL_STEPS", "30") or 30)
# Shrinking replays failing runs against the daemon (minutes when waits
# time out): on for `make model-check`, off for the short run in `make check`.
SHRINK = os.environ.get("UNTILD_MODEL_SHRINK", "0") == "1"

CONTACTS = ["jane@acme.com", "joe@acme.com", "bob@beta.com"]
WHO = CONTACTS + ["@acme.com"]
# the window actions drawn (UNTILD_MODEL_ACTIONS=hold,reject narrows a hunt)
ACTIONS = os.environ.get("UNTILD_MODEL_ACTIONS", "hold,hold,flag,allow,reject").split(",")
T0 = calendar.timegm((2027, 1, 4, 10, 0, 0))      # a Monday, 10:00 UTC
GRID = 600                  # the clock moves in multiples of 10 minutes ...
DURATIONS = [3600, 86400, 3 * 86400, 20 * 86400, None]   # ... window lengths (+ a few seconds: no ties)
ADVANCES = [600, 7200, 86400, 4 * 86400, 20 * 86400]
BACKOFF_MAX = 6 * 3600     # retries are at most this far apart (release.c: an hour)
LAG = 2.5                   # seconds a delivery may trail the model state that allowed it
MUST_WAIT = float(os.environ.get("UNTILD_MODEL_MUST_WAIT", "10"))  # seconds the scheduler gets for what must go
TEMPFAIL = "451 4.3.0 Upstream busy, try later"
PERMFAIL = "550 5.1.1 No such user here"


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def domain_key(addr):
    return "@" + addr.split("@", 1)[1]


class Win:
    def __init__(self, seq, who, until, action, source):
        self.seq, self.who, self.until, self.action, self.source = seq, who, until, action, source
        self.reason = "mw%d" % seq
        self.ended = False          # by hand (untilctl window end)
        self.daemon_id = None       # runtime windows: the id untilctl answered

    def active(self, t):
        return not self.ended and (self.until is None or t < self.until)

    def line(self):
        return '%s %s action=%s reason="%s"\n' % (self.who, iso(self.until) if self.until else "never",
                                                self.action, self.reason)

    def __repr__(self):
        return "W%d(%s %s %s%s)" % (self.seq, self.who, iso(self.until) if self.until else "never",
                                    self.action, " ended" if self.ended else "")


class Msg:
    def __init__(self, n, mid, rcpts):
        self.n, self.mid, self.rcpts = n, mid, list(rcpts)
        self.relayed = set()        # sent at once, in the SMTP transaction
        self.pending = set()        # held, not yet seen delivered
        self.hold_until = 0         # FUTURERELEASE
        self.spool_id = None
        self.hand_released = 0      # released by hand: the window seq at that moment + 1
        self.discarded = False      # the daemon said so (exit 0)
        self.last_hold = {}         # rcpt -> the hold window that matched it last
        self.maybe = {}             # rcpt -> hold windows that may have governed it
        self.lenient = set()        # rcpts a reject window covered while held
        self.failed_possible = False
        self.last_fail_clock = None
        self.hist = []              # (wall time the state began, may_go)
        self.deliveries = {}        # rcpt -> [sink arrival times]
        self.returned = False


class LifecycleMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.u = None
        self.sink = None
        self.clock = T0
        self.wins = []
        self.msgs = []
        self.by_mid = {}
        self.mode = "accept"
        self.kills = []             # wall times of kill -9
        self.seen_env = 0
        self.seq = 0
        self.dups_after_kill = 0
        self.refused_mids = set()

    # ------------------------------------------------------------ set-up
    @initialize(split=st.booleans(), release_time=st.sampled_from(["off", "09:00"]))
    def start(self, split, release_time):
        self.sink = Sink().start()
        self.release_time = release_time
        self.split = split
        self.u = Untild(self.sink, split="yes" if split else "no", release_time=release_time,
                        upstream="url = smtp://127.0.0.1:%d\ntls = none\nconnections = 4\ntimeout = 10"
                        % self.sink.port)
        self.u.start()
        self.set_daemon_clock()
        self.after_step(time.time())

    def set_daemon_clock(self):
        end = time.time() + 10
        while True:
            r = self.u.ctl("debug", "clock", "set", iso(self.clock))
            if r.returncode == 0:
                return
            if time.time() > end:
                raise AssertionError("debug clock set: %s%s" % (r.stdout, r.stderr))
            time.sleep(0.05)

    def teardown(self):
        try:
            if self.u and self.u.proc:
                self.drain()
        finally:
            if self.sink:
                self.sink.unstall()
                if self.sink.controller._thread:
                    self.sink.stop()
            if self.u:
                self.u.cleanup()

    # ------------------------------------------------------------ the model
    def align(self, t):
        if t is None or self.release_time == "off":
            return t
        day = t - t % 86400
        nine = day + 9 * 3600
        return nine if nine >= t else nine + 86400

    def match(self, addr, t):
        """The window that decides for addr at t: the most specific key
        with an active window, then the latest until (untils never tie)."""
        for key in (addr, domain_key(addr)):
            cands = [w for w in self.wins if w.who == key and w.active(t)]
            if cands:
                return max(cands, key=lambda w: float("inf") if w.until is None else w.until)
        return None

    def in_gap(self, w, t):
        """w ended by itself and its aligned release is still ahead."""
        return (w is not None and not w.ended and w.until is not None and w.until <= t < self.align(w.until))

    def may_go(self, m, t):
        if m.discarded:
            return False
        if m.hand_released:
            return True
        if t < m.hold_until:
            return False
        for p in m.pending:
            w = self.match(p, t)
            if w is not None and w.action == "hold":
                return False
            if w is None and self.in_gap(m.last_hold.get(p), t):
                return False
        return True

    def must_go(self, m, t):
        if self.mode != "accept" or m.discarded or self.settled(m) or not self.may_go(m, t):
            return False
        if m.failed_possible and t < m.last_fail_clock + BACKOFF_MAX:
            return False
        if m.hand_released:
            # A hold window added after the hand release: the rep's release
            # may or may not win over it (may_go says it may); not a must.
            return not any(w.seq >= m.hand_released and w.action == "hold" and w.active(t)
                           for p in m.pending for w in m.maybe.get(p, ()))
        for p in m.pending - m.lenient:
            for w in m.maybe.get(p, set()) | ({m.last_hold[p]} if m.last_hold.get(p) else set()):
                if w.active(t) or self.in_gap(w, t):
                    return False
        return True

    def settled(self, m):
        return m.discarded or m.returned or not (m.pending - m.lenient)

    def observe_windows(self, m, t):
        for p in m.pending:
            w = self.match(p, t)
            if w is not None:
                m.last_hold[p] = w if w.action == "hold" else None
                if w.action == "reject":
                    m.lenient.add(p)
            keys = (p, domain_key(p))
            m.maybe.setdefault(p, set()).update(
                x for x in self.wins if x.who in keys and x.action == "hold" and x.active(t))

    # ------------------------------------------------------------ checks
    def after_step(self, t_begin):
        for m in self.msgs:
            if m.discarded or m.returned or not m.pending:
                continue
            self.observe_windows(m, self.clock)
            ok = self.may_go(m, self.clock)
            if ok and self.mode != "accept":
                m.failed_possible = True
                m.last_fail_clock = self.clock
            m.hist.append((t_begin, ok))
        due = [m for m in self.msgs if self.must_go(m, self.clock)]
        if due:
            end = time.time() + MUST_WAIT
            while time.time() < end:
                self.check_sink()
                if all(self.settled(m) for m in due):
                    break
                time.sleep(0.05)
            late = [m for m in due if not self.settled(m)]
            assert not late, "due now (clock %s, upstream accepts) but neither delivered nor returned " \
                "to the rep: %s\n%s" % (
                iso(self.clock), [(m.mid, m.spool_id, sorted(m.pending)) for m in late], self.u.logtext()[-3000:])
        self.check_sink()
        self.check_not_stuck()

    def permitted(self, m, t):
        """Did some model state in [t - LAG, t] allow m to leave?"""
        for i, (start, ok) in enumerate(m.hist):
            stop = m.hist[i + 1][0] if i + 1 < len(m.hist) else float("inf")
            if ok and start <= t and stop >= t - LAG:
                return True
        return False

    def check_sink(self):
        with self.sink.lock:
            envs = self.sink.messages[self.seen_env:]
            self.seen_env = len(self.sink.messages)
        for env in envs:
            mm = re.search(rb"^Message-ID: <([^>]+)>", env.data, re.M | re.I)
            if REP in env.rcpts:
                for m in self.msgs:
                    if notices_with_env(env, m.mid):
                        # Returned: a delivery failed, or a reject window
                        # covered every recipient left when it went out.
                        assert m.failed_possible or (m.pending and m.pending <= m.lenient), \
                            "%s returned to the rep, but no delivery could have failed" % m.mid
                        m.returned = True
                continue
            mid = mm.group(1).decode() if mm else None
            m = self.by_mid.get(mid)
            assert m is not None, "a message the client was refused (or never sent) was delivered: %s %s" % (
                mid, env.rcpts)
            for p in env.rcpts:
                assert p in m.rcpts, "%s delivered to %s, not one of its recipients" % (mid, p)
                prev = m.deliveries.setdefault(p, [])
                if prev:
                    around_kill = any(prev[0] - 1 <= k <= env.t for k in self.kills)
                    assert around_kill, "%s delivered to %s twice (no kill -9 in between)" % (mid, p)
                    self.dups_after_kill += 1
                prev.append(env.t)
                if p in m.relayed and len(prev) == 1:
                    continue
                assert not m.discarded, "%s delivered to %s after the daemon said it was discarded" % (mid, p)
                assert self.permitted(m, env.t), (
                    "%s delivered to %s while it had to wait (clock %s; windows %s; hand release %s; "
                    "FUTURERELEASE %s)" % (mid, p, iso(self.clock), self.wins, m.hand_released,
                                           iso(m.hold_until) if m.hold_until else "-"))
                m.pending.discard(p)

    def check_not_stuck(self):
        self.u.wait_for(lambda: spool_all(self.u)["active"] == [] and not delivering(self.u), timeout=8,
                        what="nothing stuck delivering (%s)" % spool_all(self.u))

    # ------------------------------------------------------------ rules
    @rule(rcpts=st.lists(st.sampled_from(CONTACTS), min_size=1, max_size=3, unique=True),
          holdfor=st.sampled_from([0, 0, 0, 3600, 2 * 86400]))
    def send(self, rcpts, holdfor):
        t_begin = time.time()
        data, mid = make_msg("model %d" % len(self.msgs), rcpts, tag="model")
        codes, code, text = smtp_send(self.u.port, rcpts, data,
                                      mail_params="HOLDFOR=%d" % holdfor if holdfor else "")
        verdict = {}
        for p in rcpts:
            w = self.match(p, self.clock)
            verdict[p] = w.action if w is not None and w.action != "allow" else "allow"
            want = 550 if verdict[p] == "reject" else 250
            assert codes.get(p) == want, "RCPT %s: %s, the model says %s (%s)" % (p, codes.get(p), verdict[p], w)
        accepted = [p for p in rcpts if verdict[p] != "reject"]
        if not accepted:
            return self.after_step(t_begin)
        held = {p for p in accepted if verdict[p] == "hold"}
        if holdfor or (held and not self.split):
            held = set(accepted)
        relayed = set(accepted) - held
        if relayed and self.mode != "accept":
            assert code >= 400, "the upstream fails, yet the client heard %d %s" % (code, text)
            self.refused_mids.add(mid)
            return self.after_step(t_begin)
        assert code == 250, "%d %s (model: held %s, relayed %s)" % (code, text, held, relayed)
        assert ("eld until" in text) == bool(held), "reply %r, model: held %s" % (text, held)
        m = Msg(len(self.msgs), mid, accepted)
        m.relayed, m.pending = relayed, set(held)
        m.hold_until = self.clock + holdfor if holdfor else 0
        for p in relayed:
            got = [e for e in self.sink.for_rcpt(p) if ("<%s>" % mid).encode() in e.data]
            assert len(got) == 1, "%s: sent at once to %s %d times" % (mid, p, len(got))
        if held:
            h = held_by_mid(self.u, mid)
            assert len(h) == 1, "held list for %s: %s" % (mid, h)
            m.spool_id = h[0]["id"]
            for p in held:
                w = self.match(p, self.clock)
                m.last_hold[p] = w if w is not None and w.action == "hold" else None
        self.msgs.append(m)
        self.by_mid[mid] = m
        self.after_step(t_begin)

    # Hypothesis draws rules uniformly: a second entry doubles the weight of
    # what makes held mail and moves it (sends and the clock).
    @rule(rcpts=st.lists(st.sampled_from(CONTACTS), min_size=1, max_size=3, unique=True),
          holdfor=st.sampled_from([0, 0, 3600]))
    def send_more(self, rcpts, holdfor):
        self.send(rcpts, holdfor)

    @rule(by=st.sampled_from(ADVANCES))
    def clock_advance_more(self, by):
        self.clock_advance(by)

    def new_until(self, dur):
        self.seq += 1
        return None if dur is None else self.clock + dur + self.seq % 599 + 1

    def never_taken(self, who):
        return any(w.who == who and w.until is None and not w.ended for w in self.wins)

    @rule(who=st.sampled_from(WHO), dur=st.sampled_from(DURATIONS), action=st.sampled_from(ACTIONS))
    def window_add(self, who, dur, action):
        t_begin = time.time()
        if dur is None and self.never_taken(who):
            dur = 20 * 86400
        w = Win(self.seq + 1, who, self.new_until(dur), action, "runtime")
        r = self.u.ctl("--json", "window", "add", who, "--until", iso(w.until) if w.until else "never",
                       "--action", action, "--reason", w.reason)
        assert r.returncode == 0, r.stdout + r.stderr
        import json
        w.daemon_id = json.loads(r.stdout)["id"]
        self.wins.append(w)
        self.after_step(t_begin)

    def write_file_windows(self):
        n = self.u.logtext().count("window(s) loaded")
        self.u.write_windows("".join(w.line() for w in self.wins if w.source == "file"))
        self.u.proc.send_signal(signal.SIGHUP)
        self.u.wait_for(lambda: self.u.logtext().count("window(s) loaded") > n, what="the SIGHUP reload")

    @rule(who=st.sampled_from(WHO), dur=st.sampled_from(DURATIONS), action=st.sampled_from(ACTIONS))
    def file_window_add(self, who, dur, action):
        t_begin = time.time()
        if dur is None and self.never_taken(who):
            dur = 20 * 86400
        self.wins.append(Win(self.seq + 1, who, self.new_until(dur), action, "file"))
        self.write_file_windows()
        self.after_step(t_begin)

    def file_windows(self):
        return [w for w in self.wins if w.source == "file" and not w.ended and w.until is not None]

    @precondition(lambda self: self.u and self.file_windows())
    @rule(i=st.integers(0, 50), longer=st.booleans())
    def file_window_edit(self, i, longer):
        t_begin = time.time()
        w = self.file_windows()[i % len(self.file_windows())]
        if longer:
            w.until += 20 * 86400
        elif w.until > self.clock + 2 * 3600:
            w.until = self.clock + 3600 + w.seq % 599 + 1     # shortened, still ahead
        else:
            return self.after_step(t_begin)
        self.write_file_windows()
        self.after_step(t_begin)

    def live_windows(self):
        return [w for w in self.wins if not w.ended]

    def end_window(self, w):
        wid = w.daemon_id
        if wid is None:
            import json
            ws = json.loads(self.u.ctl("--json", "window", "list", check=0).stdout)
            wid = [x["id"] for x in ws if x.get("reason") == w.reason][0]
        r = self.u.ctl("window", "end", wid)
        assert r.returncode == 0, "window end %s (%s): %s%s" % (wid, w, r.stdout, r.stderr)
        w.ended = True

    @precondition(lambda self: self.u and self.live_windows())
    @rule(i=st.integers(0, 50))
    def window_end(self, i):
        t_begin = time.time()
        self.end_window(self.live_windows()[i % len(self.live_windows())])
        self.after_step(t_begin)

    @rule(by=st.sampled_from(ADVANCES))
    def clock_advance(self, by):
        t_begin = time.time()
        self.clock += by
        self.set_daemon_clock()
        self.after_step(t_begin)

    @precondition(lambda self: self.u and any(w.until for w in self.wins))
    @rule(i=st.integers(0, 50), aligned=st.booleans())
    def clock_to_window_end(self, i, aligned):
        """Just past a window's natural end, or to its aligned release."""
        t_begin = time.time()
        ws = [w for w in self.wins if w.until]
        w = ws[i % len(ws)]
        target = self.align(w.until) if aligned else w.until
        target = T0 + -(-(target - T0) // GRID) * GRID           # up to the clock's grid
        if target > self.clock:
            self.clock = target
            self.set_daemon_clock()
        self.after_step(t_begin)

    @rule(mode=st.sampled_from(["accept", "accept", "tempfail", "permfail", "down"]))
    def upstream(self, mode):
        t_begin = time.time()
        if self.mode == "down" and mode != "down":
            self.sink.restart()
        elif mode == "down" and self.mode != "down":
            self.sink.stop()
        self.sink.reject = {p: TEMPFAIL if mode == "tempfail" else PERMFAIL for p in CONTACTS} \
            if mode in ("tempfail", "permfail") else {}
        self.mode = mode
        self.after_step(t_begin)

    def open_msgs(self):
        return [m for m in self.msgs if m.spool_id and not self.settled(m)]

    @precondition(lambda self: self.u and self.open_msgs())
    @rule(i=st.integers(0, 50))
    def held_release(self, i):
        t_begin = time.time()
        m = self.open_msgs()[i % len(self.open_msgs())]
        r = self.u.ctl("held", "release", m.spool_id, "--reason", "model")
        if r.returncode == 0:
            m.hand_released = self.seq + 1     # truthy; windows after it have a larger seq
        self.after_step(t_begin)

    @precondition(lambda self: self.u and self.open_msgs())
    @rule(i=st.integers(0, 50))
    def held_discard(self, i):
        t_begin = time.time()
        m = self.open_msgs()[i % len(self.open_msgs())]
        self.check_sink()
        r = self.u.ctl("held", "discard", m.spool_id)
        if r.returncode == 0:
            m.discarded = True
            self.check_sink()
            for p in m.pending:
                assert not m.deliveries.get(p), "%s: 'discarded', but %s already had it" % (m.mid, p)
        self.after_step(t_begin)

    @rule(kill=st.booleans())
    def restart(self, kill):
        t_begin = time.time()
        if kill:
            self.kills.append(time.time())
            self.u.kill()
        else:
            self.u.stop()
        self.u.start()
        self.set_daemon_clock()
        self.after_step(t_begin)

    # ------------------------------------------------------------ the end
    def drain(self):
        """Upstream accepts, every window ended by hand, the clock jumps:
        everything accepted must be delivered or returned; nothing left."""
        if self.mode != "accept":
            self.upstream("accept")
        for w in self.live_windows():
            t_begin = time.time()
            self.end_window(w)
            self.after_step(t_begin)
        self.clock += 35 * 86400
        t_begin = time.time()
        self.set_daemon_clock()
        self.after_step(t_begin)
        left = [m for m in self.msgs if not self.settled(m)]
        assert not left, "never delivered nor returned: %s" % [(m.mid, m.spool_id, sorted(m.pending)) for m in left]
        self.u.wait_for(lambda: not any(spool_all(self.u).values()) and self.u.held_json() == [], timeout=10,
                        what="an empty spool and held list at the end: %s" % spool_all(self.u))
        self.check_audit()
        if self.dups_after_kill:
            print("model: %d duplicate(s) after kill -9" % self.dups_after_kill)

    def check_audit(self):
        for m in self.msgs:
            if not m.spool_id:
                continue
            rows = audit_rows(self.u, msg_id=m.spool_id)
            events = {r[0] for r in rows}
            assert "held" in events, "%s (%s): no 'held' audit row: %s" % (m.mid, m.spool_id, rows)
            delivered = any(m.deliveries.get(p) for p in m.rcpts if p not in m.relayed)
            if delivered:
                assert "discarded" not in events, "%s delivered but audited 'discarded': %s" % (m.mid, rows)
            if m.discarded:
                assert "discarded" in events, "%s discarded but not audited so: %s" % (m.mid, rows)


def notices_with_env(env, mid):
    return ("<%s>" % mid).encode() in env.data and re.search(rb"^X-Untild: notice", env.data, re.M)


CLEAN = [0]


class CountedMachine(LifecycleMachine):
    def teardown(self):
        super().teardown()
        CLEAN[0] += 1           # reached only when the example passed


CountedMachine.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
    suppress_health_check=list(HealthCheck), print_blob=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if SHRINK else []))


class TestModel(CountedMachine.TestCase):
    @classmethod
    def tearDownClass(cls):
        sys.stderr.write("\nmodel: %d example(s) of up to %d steps ran clean\n" % (CLEAN[0], STEPS))

if __name__ == "__main__":
    unittest.main()
