"""The held-message lifecycle (issue 11, defects 1-9): one regression test
per defect, against the real daemon with the test clock, asserting the
behaviour DESIGN.md asks for ("Spool and release", "Outbound path").

A held message's due time is derived at every evaluation from its
recipients' current HOLD windows (aligned to release_time), its persisted
overrides (released by hand, FUTURERELEASE) and its persisted retry state;
returned mail stays until the rep has it back; discard either wins before
the delivery starts or says it is too late; nothing is left in active/.

Negative checks ("not released yet") wait for a scheduler pass with a probe
(lifecycle_util.Barrier), never for a guessed time."""
import os
import signal
import threading
import unittest

from harness import Sink, Untild
from lifecycle_util import (REP, Barrier, audit_rows, held_by_mid, make_msg, notices_with,
                            set_clock_retry, smtp_send, spool_all, delivering)

JANE = "jane@acme.com"
CEO = "ceo@acme.com"
BOB = "bob@beta.com"
CARL = "carl@gamma.com"
T0 = "2027-01-10T10:00:00Z"
JANE_WINDOW = 'jane@acme.com 2027-07-01 reason="Lease ends in July"\n'


def upstream(port, timeout=20):
    return "url = smtp://127.0.0.1:%d\ntls = none\nconnections = 4\ntimeout = %d" % (port, timeout)


class Lifecycle(unittest.TestCase):
    windows = JANE_WINDOW
    split = "no"
    release_time = "off"
    weekends = "yes"
    policy_extra = ""

    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self._stop_sink)
        self.u = self.daemon()
        self.barrier = Barrier(self.u, self.sink)

    def _stop_sink(self):
        self.sink.unstall()
        if self.sink.controller._thread:
            self.sink.stop()

    def daemon(self, env=None, **kw):
        args = dict(windows=self.windows, split=self.split, release_time=self.release_time,
                    weekends=self.weekends, policy_extra=self.policy_extra,
                    upstream=upstream(self.sink.port))
        args.update(kw)
        u = Untild(self.sink, **args)
        self.addCleanup(u.cleanup)
        old = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})
        try:
            u.start()
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        set_clock_retry(u, T0)
        return u

    # -- helpers ---------------------------------------------------------
    def send(self, rcpts, subject, params="", u=None):
        u = u or self.u
        data, mid = make_msg(subject, rcpts)
        codes, code, text = smtp_send(u.port, rcpts, data, mail_params=params)
        return code, text, mid

    def hold(self, rcpts, subject, params="", u=None):
        code, text, mid = self.send(rcpts, subject, params, u)
        self.assertEqual(code, 250, text)
        self.assertIn("eld until", text)
        h = held_by_mid(u or self.u, mid)
        self.assertEqual(len(h), 1, "held list: %s" % (u or self.u).held_json())
        return mid, h[0]["id"]

    def got(self, addr, mid):
        return [m for m in self.sink.for_rcpt(addr) if ("<%s>" % mid).encode() in m.data]

    def wait_delivered(self, addr, mid, what=None, n=1, u=None):
        (u or self.u).wait_for(lambda: len(self.got(addr, mid)) >= n, timeout=15,
                               what=what or "delivery of %s to %s" % (mid, addr))

    def wait_spool_empty(self, u=None):
        u = u or self.u
        u.wait_for(lambda: not any(spool_all(u).values()), timeout=15,
                   what="an empty spool (nothing held, active or incoming)")

    def wait_attempts(self, mid, n=1, u=None):
        u = u or self.u
        u.wait_for(lambda: any(h["attempts"] >= n for h in held_by_mid(u, mid)), timeout=15,
                   what="%d recorded delivery attempt(s) of %s" % (n, mid))

    def assert_still_held(self, addr, mid, why):
        self.assertEqual(self.got(addr, mid), [], why)
        self.assertEqual(len(held_by_mid(self.u, mid)), 1, why + " (not in the held list any more)")
        self.assertEqual(self.u.spool_files("active"), [], why + " (its delivery started)")


class Defect1AllowException(Lifecycle):
    """An allow window inside a domain hold is an exception, not a hold:
    the scheduler looks at hold-action windows only."""
    windows = ('@acme.com 2027-07-01 action=hold reason="Acquisition talks"\n'
               'ceo@acme.com never action=allow reason="the CEO is always fine"\n')

    def test_mail_to_the_excepted_contact_alone_is_not_held(self):
        code, text, mid = self.send([CEO], "to the ceo")
        self.assertEqual(code, 250, text)
        self.assertNotIn("eld until", text)
        self.assertEqual(len(self.got(CEO, mid)), 1)
        self.assertEqual(spool_all(self.u)["held"], [])

    def test_whole_message_with_excepted_contact_leaves_at_the_hold_end(self):
        mid, hid = self.hold([JANE, CEO], "jane and the ceo")
        self.assertIn("2027-07-01", self.u.ctl("held", "show", hid, check=0).stdout)
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.wait_delivered(JANE, mid, "the message held for jane@ (and the ceo with it) at the window's end")
        self.wait_delivered(CEO, mid)
        self.wait_spool_empty()

    def test_futurerelease_to_excepted_contact_leaves_at_its_time(self):
        mid, hid = self.hold([CEO], "ceo later", params="HOLDFOR=3600")
        self.barrier()
        self.assert_still_held(CEO, mid, "FUTURERELEASE ignored")
        self.u.set_clock("2027-01-10T11:00:05Z")
        self.wait_delivered(CEO, mid, "FUTURERELEASE mail to an allow-excepted contact at its HOLDFOR time")
        self.wait_spool_empty()


class Defect1RejectIsNotHold(Lifecycle):
    """Found by test_model (shrunk): a reject window that covers a recipient
    of a message already held does not hold the message: only hold-action
    windows decide its release (the rest of the message leaves when its own
    hold is over; the rejected recipient may be dropped or sent)."""

    def test_reject_window_on_held_recipient_does_not_extend_the_hold(self):
        mid, hid = self.hold([JANE, BOB], "jane held, bob with her")
        r = self.u.ctl("window", "add", BOB, "--until", "2027-09-01", "--action", "reject")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.wait_delivered(JANE, mid, "jane's copy at her window's end (bob's reject window is no hold)")
        self.wait_spool_empty()
        self.assertLessEqual(len(self.got(BOB, mid)), 1)


class Defect2FlagDoesNotHold(Lifecycle):
    """A flag window is "send now, tell the rep": it never holds."""
    windows = (JANE_WINDOW + 'bob@beta.com 2030-01-01 action=flag reason="Audit"\n')

    def test_flag_window_on_another_recipient_does_not_extend_the_hold(self):
        code, text, mid = self.send([JANE, BOB], "jane and flagged bob")
        self.assertEqual(code, 250, text)
        self.assertIn("Held until 2027-07-01", text)
        self.assertNotIn("2030", text)
        h = held_by_mid(self.u, mid)
        self.assertTrue(h[0]["release_at"].startswith("2027-07-01"), h)
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.wait_delivered(JANE, mid, "release at the hold window's end, not the flag window's (2030)")
        self.wait_delivered(BOB, mid)
        self.wait_spool_empty()

    def test_futurerelease_to_flagged_contact_leaves_at_its_time(self):
        # Found by test_model (shrunk): FUTURERELEASE holds the message to a
        # flagged contact; at HOLDFOR's end it goes (the flag window is no hold).
        mid, hid = self.hold([BOB], "bob in an hour", params="HOLDFOR=3600")
        self.u.set_clock("2027-01-10T11:00:00Z")
        self.wait_delivered(BOB, mid, "FUTURERELEASE mail to a flagged contact at its HOLDFOR time")
        self.wait_spool_empty()

    def test_flagged_recipient_deferred_by_upstream_is_retried(self):
        self.sink.reject[BOB] = "451 4.2.0 Mailbox busy"
        code, text, mid = self.send([CARL, BOB], "carl and flagged bob")
        self.assertEqual(code, 250, text)
        self.assertIn("deferred", text)
        self.assertEqual(len(self.got(CARL, mid)), 1)
        self.assertEqual(self.got(BOB, mid), [])
        del self.sink.reject[BOB]
        # Past any back-off; the flag window (2030) is still active.
        self.u.set_clock("2027-01-10T12:00:00Z")
        self.wait_delivered(BOB, mid, "the retry of a flagged recipient the upstream deferred")
        self.wait_spool_empty()
        self.assertEqual(len(self.got(BOB, mid)), 1)
        self.assertIn(b"X-Untild: flagged", self.got(BOB, mid)[0].data)
        self.assertEqual(len(self.got(CARL, mid)), 1, "carl got it twice")


class Defect3AlignedRelease(Lifecycle):
    """Between a window's natural end and its aligned release time nothing
    else (an unrelated window change, a reload) releases early."""
    release_time = "09:00"

    def held_past_natural_end(self):
        mid, hid = self.hold([JANE], "aligned")
        self.u.set_clock("2027-07-01T03:00:00Z")     # ended 00:00, releases 09:00
        self.barrier()
        self.assert_still_held(JANE, mid, "released before its aligned release time")
        return mid

    def released_at_nine(self, mid):
        self.u.set_clock("2027-07-01T09:00:00Z")
        self.wait_delivered(JANE, mid, "release at the aligned time 09:00")
        self.wait_spool_empty()
        self.assertEqual(len(self.got(JANE, mid)), 1)

    def test_window_add_does_not_release_early(self):
        mid = self.held_past_natural_end()
        self.u.ctl("window", "add", BOB, "--until", "2028-01-01", "--reason", "unrelated", check=0)
        self.barrier()
        self.assert_still_held(JANE, mid, "an unrelated `window add` released it before 09:00")
        self.released_at_nine(mid)

    def test_sighup_does_not_release_early(self):
        mid = self.held_past_natural_end()
        n = self.u.logtext().count("window(s) loaded")
        self.u.write_windows(JANE_WINDOW + 'bob@beta.com 2028-01-01 reason="unrelated"\n')
        self.u.proc.send_signal(signal.SIGHUP)
        self.u.wait_for(lambda: self.u.logtext().count("window(s) loaded") > n, what="the reload")
        self.barrier()
        self.assert_still_held(JANE, mid, "a SIGHUP reload released it before 09:00")
        self.released_at_nine(mid)


class Defect3HandEndOfAnother(Lifecycle):
    """Found by test_model (shrunk): ending ANOTHER window by hand between
    a window's natural end and its aligned release does not release early,
    neither another contact's message nor one that both held."""
    release_time = "09:00"
    windows = JANE_WINDOW + 'joe@acme.com 2028-01-01 reason="until next year"\n'

    def test_unrelated_window_end_does_not_release_early(self):
        mid, hid = self.hold([JANE], "jane alone")
        self.u.set_clock("2027-07-01T03:00:00Z")
        self.u.ctl("window", "end", "joe@acme.com", check=0)
        self.barrier()
        self.assert_still_held(JANE, mid, "ending joe's window released jane's mail before 09:00")
        self.u.set_clock("2027-07-01T09:00:00Z")
        self.wait_delivered(JANE, mid, "release at the aligned time 09:00")

    def test_hand_end_of_one_recipient_keeps_the_others_aligned_release(self):
        mid, hid = self.hold([JANE, "joe@acme.com"], "jane and joe")
        self.u.set_clock("2027-07-01T03:00:00Z")
        self.u.ctl("window", "end", "joe@acme.com", check=0)
        self.barrier()
        self.assert_still_held(JANE, mid, "joe's hand release sent jane's copy before her aligned release")
        self.u.set_clock("2027-07-01T09:00:00Z")
        self.wait_delivered(JANE, mid, "release at jane's aligned time 09:00")
        self.wait_delivered("joe@acme.com", mid)


class Defect3Weekend(Lifecycle):
    release_time = "09:00"
    weekends = "no"
    windows = 'jane@acme.com 2027-07-03 reason="ends on a Saturday"\n'

    def test_weekend_skip_survives_window_change(self):
        mid, hid = self.hold([JANE], "after the weekend")
        self.u.set_clock("2027-07-03T12:00:00Z")     # Saturday: releases Monday 09:00
        self.barrier()
        self.assert_still_held(JANE, mid, "released on the weekend")
        self.u.ctl("window", "add", BOB, "--until", "2028-01-01", check=0)
        self.barrier()
        self.assert_still_held(JANE, mid, "an unrelated window change released it on the weekend")
        self.u.set_clock("2027-07-05T09:00:00Z")
        self.wait_delivered(JANE, mid, "release on Monday 09:00")


class Defect4HandReleasePersisted(Lifecycle):
    """A hand release (window end, held release) is persisted: after a 4xx
    and a restart the message is still due now, retried with back-off."""

    def restart_and_recover(self, mid):
        # The upstream is fine again before the restart: a daemon that kept
        # the hand release may retry at once (at its real clock) or once the
        # test clock is past the back-off; one that lost it waits for July.
        del self.sink.reject[JANE]
        self.u.restart()
        set_clock_retry(self.u, "2027-01-10T12:00:00Z")     # past the back-off
        self.wait_delivered(JANE, mid, "the retry after a restart (still due now, not at the window's end)")
        self.wait_spool_empty()
        self.assertEqual(len(self.got(JANE, mid)), 1)

    def test_window_end_then_4xx_then_restart(self):
        mid, hid = self.hold([JANE], "ended by hand")
        self.sink.reject[JANE] = "451 4.2.0 Mailbox busy"
        self.u.ctl("window", "end", JANE, check=0)
        self.wait_attempts(mid)
        self.restart_and_recover(mid)

    def test_held_release_then_4xx_then_restart(self):
        mid, hid = self.hold([JANE], "released by hand")
        self.sink.reject[JANE] = "451 4.2.0 Mailbox busy"
        self.u.ctl("held", "release", hid, "--reason", "customer asked", check=0)
        self.wait_attempts(mid)
        self.restart_and_recover(mid)


class Defect5HeldReleaseRetried(Lifecycle):
    def test_held_release_meeting_4xx_is_retried_while_window_active(self):
        mid, hid = self.hold([JANE], "release me")
        self.sink.reject[JANE] = "451 4.2.0 Mailbox busy"
        self.u.ctl("held", "release", hid, "--reason", "customer asked", check=0)
        self.wait_attempts(mid)
        del self.sink.reject[JANE]
        self.u.set_clock("2027-01-10T12:00:00Z")         # window still active until July
        self.wait_delivered(JANE, mid, "the retry of a hand release while the window is active")
        self.wait_spool_empty()
        self.assertEqual(len(self.got(JANE, mid)), 1)


class Defect6WindowEndDuringTransaction(Lifecycle):
    split = "yes"

    def test_window_ended_while_smtp_transaction_in_progress(self):
        self.sink.stall(BOB)
        data, mid = make_msg("jane held, bob now", [JANE, BOB])
        out = {}
        t = threading.Thread(target=lambda: out.update(r=smtp_send(self.u.port, [JANE, BOB], data)))
        t.start()
        self.addCleanup(t.join)
        self.sink.wait_stalled()
        # The held part is on disk, the relayed part in flight: end the window now.
        r = self.u.ctl("window", "end", JANE)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.sink.unstall()
        t.join(30)
        codes, code, text = out["r"]
        self.assertEqual(code, 250, text)
        self.assertEqual(len(self.got(BOB, mid)), 1)
        self.wait_delivered(JANE, mid, "the held part, its window ended during the transaction")
        self.wait_spool_empty()


class Defect7DiscardInFlight(Lifecycle):
    def test_discard_while_delivery_in_flight(self):
        mid, hid = self.hold([JANE], "discard me late")
        self.sink.stall(JANE)
        self.u.ctl("held", "release", hid, "--reason", "go", check=0)
        self.sink.wait_stalled()
        r = self.u.ctl("held", "discard", hid)
        self.sink.unstall()
        self.sink.wait_stall_settled()
        self.u.wait_for(lambda: held_by_mid(self.u, mid) == [], timeout=15, what="the delivery settled")
        self.wait_spool_empty()
        got = self.got(JANE, mid)
        discarded = audit_rows(self.u, "discarded", hid)
        if got:
            # Too late: the answer and the audit must say so.
            self.assertNotEqual(r.returncode, 0, "answered %r but the customer received it" % r.stdout)
            self.assertEqual(discarded, [], "audited 'discarded' but the customer received it")
            self.assertTrue(audit_rows(self.u, "released", hid), audit_rows(self.u, msg_id=hid))
            self.assertEqual(len(got), 1)
        else:
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertTrue(discarded)


class Defect8ReturnedKept(Lifecycle):
    windows = 'jane@acme.com 2027-07-01 reason="Lease"\n'
    policy_extra = "max_queue_lifetime = 1h"

    def test_expired_message_kept_until_rep_has_it(self):
        self.u.set_clock("2027-06-30T23:30:00Z")
        mid, hid = self.hold([JANE], "return me")
        self.u.wait_for(lambda: self.sink.for_rcpt(REP), what="the held notice")
        self.sink.stop()                                  # upstream down, for everything
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.wait_attempts(mid)
        self.u.set_clock("2027-07-01T01:31:00Z")          # lifetime and back-off over

        def returned_or_gone():
            h = held_by_mid(self.u, mid)
            return (h and h[0].get("state") == "returned") or not any(spool_all(self.u).values())
        self.u.wait_for(returned_or_gone, timeout=15, what="the final failure")
        self.assertEqual(len(spool_all(self.u)["held"]), 1,
                         "the message left the spool while its 'returned' notice could not be delivered")
        h = held_by_mid(self.u, mid)
        self.assertEqual(h[0].get("state"), "returned", h)
        self.assertIn("returned", self.u.ctl("held", "show", hid, check=0).stdout)
        # The upstream recovers: the rep gets it back, then it goes.
        self.sink.restart()
        self.u.set_clock("2027-07-01T03:00:00Z")
        self.u.wait_for(lambda: notices_with(self.sink, mid), timeout=20,
                        what="the returned notice with the message attached")
        self.wait_spool_empty()
        self.assertEqual(self.got(JANE, mid), [])
        self.assertEqual(len(notices_with(self.sink, mid)), 1)


class Defect9DiskFullRecordingRetry(Lifecycle):
    """The spool's test seam fails one write after N good ones (a short
    write, then ENOSPC); whichever write that is (the hold, the retry
    record, ...), nothing may get stuck in active/ and the message still
    goes once the upstream takes it. One test per N (run.py reports each)."""

    def disk_full_after(self, n):
        sink = Sink().start()
        self.addCleanup(lambda s=sink: s.controller._thread and s.stop())
        u = self.daemon(env={"UNTILD_TEST_SPOOL_FAIL_AFTER": str(n)}, upstream=upstream(sink.port))
        sink.reject[JANE] = "451 4.2.0 Mailbox busy"
        data, mid = make_msg("disk full %d" % n, [JANE])
        codes, code, text = smtp_send(u.port, [JANE], data)
        if code != 250:     # the disk filled while holding: the client was told
            self.assertEqual(code, 452, text)
            self.assertFalse(any(spool_all(u).values()), spool_all(u))
            return
        u.set_clock("2027-07-01T00:00:01Z")
        u.wait_for(lambda: sink.rcpt_attempts.get(JANE, 0) >= 1, what="the failed attempt")
        u.wait_for(lambda: spool_all(u)["active"] == [] and spool_all(u)["incoming"] == []
                   and spool_all(u)["held"] and not delivering(u), timeout=10,
                   what="the message held again (not stuck delivering, nor in incoming/)")
        del sink.reject[JANE]
        u.set_clock("2027-07-01T03:00:00Z")
        u.wait_for(lambda: [m for m in sink.for_rcpt(JANE) if ("<%s>" % mid).encode() in m.data],
                   timeout=15, what="delivery after the disk-full retry record")
        u.wait_for(lambda: not any(spool_all(u).values()), what="an empty spool")
        self.assertEqual(len(sink.for_rcpt(JANE)), 1)


for _n in range(1, 6):
    setattr(Defect9DiskFullRecordingRetry, "test_disk_full_after_%d_writes_leaves_nothing_stuck" % _n,
            lambda self, n=_n: self.disk_full_after(n))


if __name__ == "__main__":
    unittest.main()
