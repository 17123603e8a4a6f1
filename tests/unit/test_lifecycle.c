/* test_lifecycle.c - the derived state and due time of a held message
 * (lifecycle.c), table-driven: windows as they stand + persisted facts +
 * now -> state and due. Each row is one of the sequences that once went
 * wrong (issue 11) or a rule of lifecycle.h. All times UTC (timegm). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "untild/lifecycle.h"
#include "untild/when.h"
#include "untild/windows.h"

static time_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi };
    return timegm(&tm);
}

static struct policy_cfg cfg(void)
{
    struct policy_cfg c = { .default_action = ACTION_HOLD, .release_time = 9 * 60,
                            .release_on_weekends = 0, .timezone = "UTC",
                            .command_domain = "untild.invalid", .delims = "+" };
    return c;
}

static void win(struct windows *ix, const char *id, const char *who, time_t from, time_t until,
                enum action a, const char *rrule, int64_t dur)
{
    struct window w;
    char whobuf[128], rr[128], tz[] = "UTC";
    char *whos[1] = { whobuf };
    memset(&w, 0, sizeof w);
    snprintf(w.id, sizeof w.id, "%s", id);
    snprintf(whobuf, sizeof whobuf, "%s", who);
    w.who = whos;
    w.nwho = 1;
    w.from = from;
    w.until = until;
    if (rrule) {
        snprintf(rr, sizeof rr, "%s", rrule);
        w.rrule = rr;
    }
    w.duration = dur ? dur : 86400;
    w.tz = tz;
    w.action = a;
    w.source = WSRC_RUNTIME;
    w.created = utc(2026, 1, 1, 0, 0);
    ck_assert_ptr_nonnull(windows_add(ix, &w));
}

/* One message to the given held recipients. */
struct msg {
    struct spool_meta m;
    struct spool_rcpt r[4];
    char norm[4][64];
};

static void msg_init(struct msg *x, const char *a, const char *b)
{
    memset(x, 0, sizeof *x);
    const char *who[2] = { a, b };
    for (size_t i = 0; i < 2 && who[i]; i++) {
        snprintf(x->norm[i], sizeof x->norm[i], "%s", who[i]);
        x->r[i].norm = x->r[i].addr = x->norm[i];
        x->r[i].state = RCPT_HELD;
        x->m.nrcpts++;
    }
    x->m.rcpts = x->r;
    x->m.created = utc(2027, 3, 1, 12, 0);
}

static struct windows *ix;
static struct policy_cfg pc;

static void setup(void)
{
    ix = windows_new();
    pc = cfg();
}

static void teardown(void)
{
    windows_free(ix);
}

/* 2027-07-01 is a Thursday: a window until then releases at 09:00. */
#define JUL1 utc(2027, 7, 1, 0, 0)
#define JUL1_9 utc(2027, 7, 1, 9, 0)
#define NOW utc(2027, 3, 1, 12, 0)

START_TEST(hold_window_holds_to_aligned_release)
{
    struct msg x;
    struct lifecycle lc;
    win(ix, "w1", "jane@acme.com", 0, JUL1, ACTION_HOLD, NULL, 0);
    msg_init(&x, "jane@acme.com", NULL);
    lifecycle_eval(&pc, ix, &x.m, NOW, &lc);
    ck_assert_int_eq(lc.state, HS_HELD);
    ck_assert_int_eq(lc.due, JUL1_9);
    ck_assert_int_eq(lc.next, JUL1_9);
}
END_TEST

/* Defect 1: an allow exception inside a domain hold window. */
START_TEST(allow_exception_is_not_held)
{
    struct msg x;
    struct lifecycle lc;
    win(ix, "w1", "@acme.com", 0, JUL1, ACTION_HOLD, NULL, 0);
    win(ix, "w2", "ceo@acme.com", 0, WHEN_NEVER, ACTION_ALLOW, NULL, 0);
    msg_init(&x, "ceo@acme.com", NULL);
    lifecycle_eval(&pc, ix, &x.m, NOW, &lc);
    ck_assert_int_eq(lc.state, HS_DUE);
    ck_assert_int_eq(lc.due, 0);
}
END_TEST

/* Defect 2: a flag window on another recipient does not extend the hold. */
START_TEST(flag_window_does_not_extend)
{
    struct msg x;
    struct lifecycle lc;
    win(ix, "w1", "jane@acme.com", 0, JUL1, ACTION_HOLD, NULL, 0);
    win(ix, "w2", "bob@globex.com", 0, utc(2030, 1, 1, 0, 0), ACTION_FLAG, NULL, 0);
    msg_init(&x, "jane@acme.com", "bob@globex.com");
    lifecycle_eval(&pc, ix, &x.m, NOW, &lc);
    ck_assert_int_eq(lc.due, JUL1_9);
    /* a flagged recipient deferred by the upstream is retried on time */
    msg_init(&x, "bob@globex.com", NULL);
    x.m.attempts = 1;
    x.m.next_attempt = NOW + 60;
    lifecycle_eval(&pc, ix, &x.m, NOW, &lc);
    ck_assert_int_eq(lc.state, HS_DEFERRED);
    ck_assert_int_eq(lc.next, NOW + 60);
}
END_TEST

/* Defect 3: between the natural end and the aligned release, the window
 * still holds, whatever else happens. */
START_TEST(ended_by_itself_holds_until_aligned)
{
    struct msg x;
    struct lifecycle lc;
    win(ix, "w1", "jane@acme.com", 0, JUL1, ACTION_HOLD, NULL, 0);
    win(ix, "w9", "other@x.com", 0, JUL1 + 86400 * 30, ACTION_HOLD, NULL, 0);   /* unrelated */
    msg_init(&x, "jane@acme.com", NULL);
    lifecycle_eval(&pc, ix, &x.m, JUL1 + 3600, &lc);
    ck_assert_int_eq(lc.state, HS_HELD);
    ck_assert_int_eq(lc.due, JUL1_9);
    lifecycle_eval(&pc, ix, &x.m, JUL1_9, &lc);
    ck_assert_int_eq(lc.state, HS_DUE);
    /* a domain window that ended by itself holds the same way */
    msg_init(&x, "bob@sub.globex.com", NULL);
    win(ix, "w3", "@globex.com", 0, JUL1, ACTION_HOLD, NULL, 0);
    lifecycle_eval(&pc, ix, &x.m, JUL1 + 60, &lc);
    ck_assert_int_eq(lc.state, HS_HELD);
    ck_assert_int_eq(lc.due, JUL1_9);
}
END_TEST

/* Ending by hand removes the window: due at once. */
START_TEST(ended_by_hand_is_due)
{
    struct msg x;
    struct lifecycle lc;
    win(ix, "w1", "jane@acme.com", 0, JUL1, ACTION_HOLD, NULL, 0);
    msg_init(&x, "jane@acme.com", NULL);
    ck_assert_int_eq(windows_remove(ix, "w1"), 0);
    lifecycle_eval(&pc, ix, &x.m, NOW, &lc);
    ck_assert_int_eq(lc.state, HS_DUE);
}
END_TEST

/* Defects 4 and 5: a hand release is a persisted fact; a failed attempt
 * waits for its retry, not for the window. */
START_TEST(hand_release_overrides_window_and_retries)
{
    struct msg x;
    struct lifecycle lc;
    win(ix, "w1", "jane@acme.com", 0, JUL1, ACTION_HOLD, NULL, 0);
    msg_init(&x, "jane@acme.com", NULL);
    x.m.released_at = NOW;
    x.m.hold_until = JUL1;       /* FUTURERELEASE yields to the hand too */
    lifecycle_eval(&pc, ix, &x.m, NOW, &lc);
    ck_assert_int_eq(lc.state, HS_DUE);
    x.m.attempts = 1;
    x.m.next_attempt = NOW + 60;
    lifecycle_eval(&pc, ix, &x.m, NOW + 1, &lc);
    ck_assert_int_eq(lc.state, HS_DEFERRED);
    ck_assert_int_eq(lc.next, NOW + 60);
    lifecycle_eval(&pc, ix, &x.m, NOW + 60, &lc);
    ck_assert_int_eq(lc.state, HS_DUE);
}
END_TEST

START_TEST(futurerelease_and_windows_take_the_later)
{
    struct msg x;
    struct lifecycle lc;
    win(ix, "w1", "jane@acme.com", 0, JUL1, ACTION_HOLD, NULL, 0);
    msg_init(&x, "jane@acme.com", "bob@free.com");
    x.m.hold_until = JUL1 + 86400 * 2;
    lifecycle_eval(&pc, ix, &x.m, NOW, &lc);
    ck_assert_int_eq(lc.due, JUL1 + 86400 * 2);
    x.m.hold_until = NOW + 10;
    lifecycle_eval(&pc, ix, &x.m, NOW, &lc);
    ck_assert_int_eq(lc.due, JUL1_9);
}
END_TEST

/* Lengthen keeps holding, shorten brings it forward (aligned). */
START_TEST(lengthen_and_shorten)
{
    struct msg x;
    struct lifecycle lc;
    win(ix, "w1", "jane@acme.com", 0, JUL1, ACTION_HOLD, NULL, 0);
    msg_init(&x, "jane@acme.com", NULL);
    win(ix, "w1", "jane@acme.com", 0, utc(2027, 8, 2, 0, 0), ACTION_HOLD, NULL, 0);  /* replace */
    lifecycle_eval(&pc, ix, &x.m, NOW, &lc);
    ck_assert_int_eq(lc.due, utc(2027, 8, 2, 9, 0));
    win(ix, "w1", "jane@acme.com", 0, utc(2027, 4, 1, 0, 0), ACTION_HOLD, NULL, 0);
    lifecycle_eval(&pc, ix, &x.m, NOW, &lc);
    ck_assert_int_eq(lc.due, utc(2027, 4, 1, 9, 0));
}
END_TEST

/* A reject window holds nothing (the delivery drops that recipient); a
 * never-ending hold window has no due time. */
START_TEST(reject_and_never)
{
    struct msg x;
    struct lifecycle lc;
    win(ix, "w1", "jane@acme.com", 0, WHEN_NEVER, ACTION_REJECT, NULL, 0);
    msg_init(&x, "jane@acme.com", NULL);
    lifecycle_eval(&pc, ix, &x.m, NOW, &lc);
    ck_assert_int_eq(lc.state, HS_DUE);
    win(ix, "w2", "bob@beta.com", 0, WHEN_NEVER, ACTION_HOLD, NULL, 0);
    msg_init(&x, "jane@acme.com", "bob@beta.com");
    lifecycle_eval(&pc, ix, &x.m, NOW, &lc);
    ck_assert_int_eq(lc.state, HS_HELD);
    ck_assert_int_eq(lc.next, WHEN_NEVER);
}
END_TEST

/* A recurring occurrence releases at its end exactly (no alignment). */
START_TEST(recurring_occurrence)
{
    struct msg x;
    struct lifecycle lc;
    /* weekends: 2027-03-06 is a Saturday */
    win(ix, "w1", "@acme.com", utc(2027, 1, 2, 0, 0), WHEN_NEVER, ACTION_HOLD,
        "FREQ=WEEKLY;BYDAY=SA", 2 * 86400);
    msg_init(&x, "jane@acme.com", NULL);
    lifecycle_eval(&pc, ix, &x.m, utc(2027, 3, 6, 10, 0), &lc);
    ck_assert_int_eq(lc.state, HS_HELD);
    ck_assert_int_eq(lc.due, utc(2027, 3, 8, 0, 0));
}
END_TEST

/* Recipients already delivered or refused hold nothing; notices and
 * returned messages go at once (only their retries wait). */
START_TEST(done_recipients_and_notices)
{
    struct msg x;
    struct lifecycle lc;
    win(ix, "w1", "jane@acme.com", 0, JUL1, ACTION_HOLD, NULL, 0);
    msg_init(&x, "jane@acme.com", "bob@free.com");
    x.r[0].state = RCPT_DONE;
    lifecycle_eval(&pc, ix, &x.m, NOW, &lc);
    ck_assert_int_eq(lc.state, HS_DUE);
    msg_init(&x, "rep@example.com", NULL);
    x.m.kind = SPOOL_KIND_NOTICE;
    x.m.returned = 1;
    x.m.attempts = 2;
    x.m.next_attempt = NOW + 120;
    lifecycle_eval(&pc, ix, &x.m, NOW, &lc);
    ck_assert_int_eq(lc.state, HS_RETURNED);
    ck_assert_int_eq(lc.next, NOW + 120);
}
END_TEST

START_TEST(backoff_doubles_to_an_hour)
{
    ck_assert_int_eq(lifecycle_backoff(1), 60);
    ck_assert_int_eq(lifecycle_backoff(2), 120);
    ck_assert_int_eq(lifecycle_backoff(7), 3600);
    ck_assert_int_eq(lifecycle_backoff(1000), 3600);
}
END_TEST

/* Issue 12: a cadence rule is one more input, through lifecycle_ext: the
 * later of it and the windows; it yields to a hand release; done
 * recipients are not asked. The fake rule: "cadence"-marked recipients may
 * be contacted from APR1 on, and it is a function of (m, r, now) only. */
#define APR1 utc(2027, 4, 1, 10, 0)
static int asked;
static time_t fake_cadence(void *arg, const struct spool_meta *m, const struct spool_rcpt *r, time_t now)
{
    (void)arg; (void)m; (void)now;
    asked++;
    return r->window_id && !strcmp(r->window_id, "cadence") ? APR1 : 0;
}

START_TEST(cadence_is_one_more_input)
{
    struct msg x;
    struct lifecycle lc;
    struct lifecycle_ext ext = { fake_cadence, NULL };
    char cad[] = "cadence";
    msg_init(&x, "jane@acme.com", "bob@initech.com");
    x.r[0].window_id = cad;
    lifecycle_eval_ext(&pc, ix, &ext, &x.m, NOW, &lc);
    ck_assert_int_eq(lc.state, HS_HELD);
    ck_assert_int_eq(lc.due, APR1);
    lifecycle_eval_ext(&pc, ix, &ext, &x.m, APR1, &lc);
    ck_assert_int_eq(lc.state, HS_DUE);
    /* a window on the other recipient ends later: the window decides */
    win(ix, "w1", "bob@initech.com", 0, JUL1, ACTION_HOLD, NULL, 0);
    lifecycle_eval_ext(&pc, ix, &ext, &x.m, NOW, &lc);
    ck_assert_int_eq(lc.due, JUL1_9);
    /* without the extension, as before */
    lifecycle_eval(&pc, ix, &x.m, APR1 - 1, &lc);
    ck_assert_int_eq(lc.due, JUL1_9);
    windows_remove(ix, "w1");
    lifecycle_eval(&pc, ix, &x.m, NOW, &lc);
    ck_assert_int_eq(lc.state, HS_DUE);
    /* a hand release wins over the rule */
    x.m.released_at = NOW;
    lifecycle_eval_ext(&pc, ix, &ext, &x.m, NOW, &lc);
    ck_assert_int_eq(lc.state, HS_DUE);
    x.m.released_at = 0;
    /* a delivered recipient is not asked */
    x.r[0].state = RCPT_DONE;
    x.r[1].state = RCPT_DONE;
    asked = 0;
    lifecycle_eval_ext(&pc, ix, &ext, &x.m, NOW, &lc);
    ck_assert_int_eq(asked, 0);
}
END_TEST

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    Suite *s = suite_create("lifecycle");
    TCase *tc = tcase_create("derive");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, hold_window_holds_to_aligned_release);
    tcase_add_test(tc, allow_exception_is_not_held);
    tcase_add_test(tc, flag_window_does_not_extend);
    tcase_add_test(tc, ended_by_itself_holds_until_aligned);
    tcase_add_test(tc, ended_by_hand_is_due);
    tcase_add_test(tc, hand_release_overrides_window_and_retries);
    tcase_add_test(tc, futurerelease_and_windows_take_the_later);
    tcase_add_test(tc, lengthen_and_shorten);
    tcase_add_test(tc, reject_and_never);
    tcase_add_test(tc, recurring_occurrence);
    tcase_add_test(tc, done_recipients_and_notices);
    tcase_add_test(tc, backoff_doubles_to_an_hour);
    tcase_add_test(tc, cadence_is_one_more_input);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
