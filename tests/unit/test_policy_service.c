/* test_policy_service.c - the Postfix policy delegation protocol
 * (policy_service.c, pure part): request parsing, the answers at RCPT and
 * END-OF-MESSAGE, the per-instance table and its expiry. Times are passed
 * explicitly (UTC instants), so the machine's clock and zone do not
 * matter. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "untild/policy_service.h"
#include "untild/when.h"

static time_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                     .tm_hour = h, .tm_min = mi, .tm_sec = s };
    return timegm(&tm);
}

static struct policy_cfg base_cfg(void)
{
    struct policy_cfg c = {
        .default_action = ACTION_HOLD, .split_recipients = 0, .release_time = -1,
        .release_on_weekends = 1, .timezone = "UTC",
        .command_domain = "untild.invalid", .delims = "+",
    };
    return c;
}

static void add_win(struct windows *ix, const char *id, const char *who, time_t until,
                    enum action a, const char *reason)
{
    struct window w;
    char whobuf[128], tz[] = "UTC", rs[128];
    char *whos[1] = { whobuf };
    memset(&w, 0, sizeof w);
    snprintf(w.id, sizeof w.id, "%s", id);
    snprintf(whobuf, sizeof whobuf, "%s", who);
    w.who = whos;
    w.nwho = 1;
    w.until = until;
    w.duration = 86400;
    w.tz = tz;
    if (reason) {
        snprintf(rs, sizeof rs, "%s", reason);
        w.reason = rs;
    }
    w.action = a;
    w.source = WSRC_RUNTIME;
    ck_assert_ptr_nonnull(windows_add(ix, &w));
}

/* A fixture: windows for a held, a flagged and a rejected contact. */
static struct windows *ix;
static struct ps_table *tab;
static struct policy_cfg cfg;
static time_t now;

static void setup(void)
{
    cfg = base_cfg();
    now = utc(2027, 1, 10, 10, 0, 0);
    ix = windows_new();
    add_win(ix, "w1", "jane@acme.com", utc(2027, 7, 1, 0, 0, 0), ACTION_HOLD, "Lease ends");
    add_win(ix, "w2", "bob@beta.com", utc(2027, 3, 1, 0, 0, 0), ACTION_FLAG, NULL);
    add_win(ix, "w3", "carl@gamma.com", utc(2027, 2, 1, 0, 0, 0), ACTION_REJECT, "Legal hold");
    add_win(ix, "w4", "dora@acme.com", utc(2027, 8, 1, 0, 0, 0), ACTION_HOLD, NULL);
    tab = policy_service_table_new(8, 1000);
    ck_assert_ptr_nonnull(tab);
}

static void teardown(void)
{
    policy_service_table_free(tab);
    windows_free(ix);
}

static int parse(const char *s, struct ps_request *r)
{
    return policy_service_parse(s, strlen(s), r);
}

/* Build and answer one request. */
static int ask(const char *state, const char *instance, const char *rcpt, const char *qid,
               int64_t ms, char *ans, size_t anssz, struct ps_event *ev)
{
    char buf[2048];
    struct ps_request r;
    snprintf(buf, sizeof buf,
             "request=smtpd_access_policy\nprotocol_state=%s\nprotocol_name=ESMTP\n"
             "instance=%s\nsender=rep@example.com\nrecipient=%s\nqueue_id=%s\n"
             "client_address=127.0.0.1\n", state, instance, rcpt ? rcpt : "", qid ? qid : "");
    ck_assert_int_eq(parse(buf, &r), 0);
    return policy_service_answer(tab, &cfg, ix, "UTC", &r, now, ms, ans, anssz, ev);
}

/* ---- parsing ------------------------------------------------------------ */

START_TEST(test_parse_basic_and_unknown_ignored)
{
    struct ps_request r;
    const char *req = "request=smtpd_access_policy\nprotocol_state=RCPT\n"
                      "some_future_attr=whatever=with=equals\ninstance=1a2b.3c4d.5e6f.0\n"
                      "sender=a@b.c\nrecipient=Jane@ACME.com\nsasl_username=rep\n"
                      "queue_id=\nstress=\n";
    ck_assert_int_eq(parse(req, &r), 0);
    ck_assert_str_eq(r.request, "smtpd_access_policy");
    ck_assert_str_eq(r.protocol_state, "RCPT");
    ck_assert_str_eq(r.instance, "1a2b.3c4d.5e6f.0");
    ck_assert_str_eq(r.sender, "a@b.c");
    ck_assert_str_eq(r.recipient, "Jane@ACME.com");
    ck_assert_str_eq(r.sasl_username, "rep");
    ck_assert_str_eq(r.queue_id, "");
}
END_TEST

START_TEST(test_parse_value_keeps_equals_and_last_line_without_newline)
{
    struct ps_request r;
    ck_assert_int_eq(parse("request=smtpd_access_policy\nsender=a=b@c.d", &r), 0);
    ck_assert_str_eq(r.sender, "a=b@c.d");
}
END_TEST

START_TEST(test_parse_errors)
{
    struct ps_request r;
    ck_assert_int_eq(parse("request=smtpd_access_policy\nno equals sign\n", &r), -1);
    ck_assert_int_eq(parse("=value\n", &r), -1);
    char big[PS_VALUE_MAX + 64];
    memset(big, 'x', sizeof big);
    memcpy(big, "recipient=", 10);
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(parse(big, &r), -1);
    /* An over-long value of an attribute we ignore is fine. */
    memcpy(big, "ccert_xyz=", 10);
    ck_assert_int_eq(parse(big, &r), 0);
    const char nul[] = "request=smtpd_access_policy\nsender=a\0b\n";
    ck_assert_int_eq(policy_service_parse(nul, sizeof nul - 1, &r), -1);
}
END_TEST

START_TEST(test_queue_id_ok)
{
    ck_assert(policy_service_queue_id_ok("4XyZ12abCD"));
    ck_assert(policy_service_queue_id_ok("3F2A11C0E4"));
    ck_assert(!policy_service_queue_id_ok(""));
    ck_assert(!policy_service_queue_id_ok("-"));
    ck_assert(!policy_service_queue_id_ok("ALL x"));
    ck_assert(!policy_service_queue_id_ok("ALL"));
    ck_assert(!policy_service_queue_id_ok("../etc"));
}
END_TEST

/* ---- answers ------------------------------------------------------------ */

START_TEST(test_wrong_request_is_internal_error)
{
    struct ps_request r;
    struct ps_event ev;
    char ans[1200];
    ck_assert_int_eq(parse("request=something_else\nprotocol_state=RCPT\n", &r), 0);
    ck_assert_int_eq(policy_service_answer(tab, &cfg, ix, "UTC", &r, now, 0, ans, sizeof ans,
                                           &ev), -1);
}
END_TEST

START_TEST(test_rcpt_allow_is_dunno)
{
    char ans[1200];
    struct ps_event ev;
    ck_assert_int_eq(ask("RCPT", "i1", "someone@else.com", NULL, 0, ans, sizeof ans, &ev), 0);
    ck_assert_str_eq(ans, "action=DUNNO\n\n");
    ck_assert_int_eq(ev.kind, PS_EV_NONE);
    ck_assert_uint_eq(policy_service_table_count(tab), 0);
    policy_service_event_free(&ev);
}
END_TEST

START_TEST(test_rcpt_reject)
{
    char ans[1200];
    struct ps_event ev;
    ck_assert_int_eq(ask("RCPT", "i1", "<Carl@Gamma.com>", NULL, 0, ans, sizeof ans, &ev), 0);
    ck_assert_str_eq(ans, "action=550 5.7.1 <Carl@Gamma.com> is not to be contacted until "
                          "2027-02-01T00:00:00Z - Legal hold\n\n");
    ck_assert_int_eq(ev.kind, PS_EV_REJECTED);
    ck_assert_str_eq(ev.rcpt, "carl@gamma.com");
    ck_assert_str_eq(ev.window_id, "w3");
    ck_assert_str_eq(ev.reason, "Legal hold");
    policy_service_event_free(&ev);
}
END_TEST

START_TEST(test_rcpt_flag_prepends_header)
{
    char ans[1200];
    struct ps_event ev;
    ck_assert_int_eq(ask("RCPT", "i1", "bob+x@beta.com", NULL, 0, ans, sizeof ans, &ev), 0);
    ck_assert_str_eq(ans, "action=PREPEND X-Untild: flagged; recipient=<bob@beta.com>; "
                          "until=2027-03-01T00:00:00Z; window=w2\n\n");
    ck_assert_int_eq(ev.kind, PS_EV_NONE);
    policy_service_event_free(&ev);
    /* End of message: flagged recipient reported, no HOLD. */
    ck_assert_int_eq(ask("END-OF-MESSAGE", "i1", "bob+x@beta.com", "ABC123", 5, ans, sizeof ans,
                         &ev), 0);
    ck_assert_str_eq(ans, "action=DUNNO\n\n");
    ck_assert_int_eq(ev.kind, PS_EV_MESSAGE);
    ck_assert_int_eq(ev.held, 0);
    ck_assert_uint_eq(ev.nrcpts, 1);
    ck_assert_int_eq(ev.rcpts[0].action, ACTION_FLAG);
    ck_assert_uint_eq(policy_service_table_count(tab), 0);
    policy_service_event_free(&ev);
}
END_TEST

START_TEST(test_hold_dunno_at_rcpt_hold_at_eom)
{
    char ans[1200];
    struct ps_event ev;
    ck_assert_int_eq(ask("RCPT", "i7", "jane@acme.com", NULL, 0, ans, sizeof ans, &ev), 0);
    ck_assert_str_eq(ans, "action=DUNNO\n\n");
    policy_service_event_free(&ev);
    ck_assert_int_eq(ask("RCPT", "i7", "someone@else.com", NULL, 1, ans, sizeof ans, &ev), 0);
    ck_assert_str_eq(ans, "action=DUNNO\n\n");
    policy_service_event_free(&ev);
    ck_assert_int_eq(ask("RCPT", "i7", "Dora@acme.com", NULL, 2, ans, sizeof ans, &ev), 0);
    policy_service_event_free(&ev);
    /* Same recipient twice is recorded once. */
    ck_assert_int_eq(ask("RCPT", "i7", "jane+a@acme.com", NULL, 3, ans, sizeof ans, &ev), 0);
    policy_service_event_free(&ev);
    /* Another message in between does not mix in. */
    ck_assert_int_eq(ask("RCPT", "i8", "bob@beta.com", NULL, 3, ans, sizeof ans, &ev), 0);
    policy_service_event_free(&ev);
    ck_assert_uint_eq(policy_service_table_count(tab), 2);
    /* DATA (recipient absent: several recipients) changes nothing. */
    ck_assert_int_eq(ask("DATA", "i7", NULL, "Q1", 4, ans, sizeof ans, &ev), 0);
    ck_assert_str_eq(ans, "action=DUNNO\n\n");
    ck_assert_int_eq(ev.kind, PS_EV_NONE);
    ck_assert_int_eq(ask("END-OF-MESSAGE", "i7", NULL, "4XyZ12abCD", 5, ans, sizeof ans, &ev), 0);
    /* The message is held until the latest release (dora: August). */
    ck_assert_str_eq(ans, "action=HOLD untild: jane@acme.com is quiet; held until "
                          "2027-08-01T00:00:00Z\n\n");
    ck_assert_int_eq(ev.kind, PS_EV_MESSAGE);
    ck_assert_int_eq(ev.held, 1);
    ck_assert_str_eq(ev.queue_id, "4XyZ12abCD");
    ck_assert_int_eq((long long)ev.release_at, (long long)utc(2027, 8, 1, 0, 0, 0));
    ck_assert_uint_eq(ev.nrcpts, 2);
    ck_assert_str_eq(ev.rcpts[0].norm, "jane@acme.com");
    ck_assert_str_eq(ev.rcpts[0].window_id, "w1");
    ck_assert_str_eq(ev.rcpts[0].reason, "Lease ends");
    ck_assert_str_eq(ev.rcpts[1].norm, "dora@acme.com");
    policy_service_event_free(&ev);
    ck_assert_uint_eq(policy_service_table_count(tab), 1);
    /* A second END-OF-MESSAGE for the same instance knows nothing. */
    ck_assert_int_eq(ask("END-OF-MESSAGE", "i7", NULL, "4XyZ12abCD", 6, ans, sizeof ans, &ev), 0);
    ck_assert_str_eq(ans, "action=DUNNO\n\n");
    ck_assert_int_eq(ev.kind, PS_EV_NONE);
}
END_TEST

START_TEST(test_hold_without_queue_id_passes)
{
    char ans[1200];
    struct ps_event ev;
    ck_assert_int_eq(ask("RCPT", "i9", "jane@acme.com", NULL, 0, ans, sizeof ans, &ev), 0);
    policy_service_event_free(&ev);
    ck_assert_int_eq(ask("END-OF-MESSAGE", "i9", "jane@acme.com", "", 1, ans, sizeof ans, &ev),
                     0);
    ck_assert_str_eq(ans, "action=DUNNO\n\n");
    ck_assert_int_eq(ev.held, 0);
    policy_service_event_free(&ev);
}
END_TEST

START_TEST(test_window_over_means_dunno)
{
    char ans[1200];
    struct ps_event ev;
    now = utc(2027, 7, 1, 0, 0, 1);
    ck_assert_int_eq(ask("RCPT", "i1", "jane@acme.com", NULL, 0, ans, sizeof ans, &ev), 0);
    ck_assert_str_eq(ans, "action=DUNNO\n\n");
    ck_assert_uint_eq(policy_service_table_count(tab), 0);
    ck_assert_int_eq(ask("END-OF-MESSAGE", "i1", "jane@acme.com", "ABC", 0, ans, sizeof ans,
                         &ev), 0);
    ck_assert_str_eq(ans, "action=DUNNO\n\n");
}
END_TEST

START_TEST(test_table_expiry_and_bound)
{
    char ans[1200];
    struct ps_event ev;
    ck_assert_int_eq(ask("RCPT", "old", "jane@acme.com", NULL, 0, ans, sizeof ans, &ev), 0);
    policy_service_table_expire(tab, 999);
    ck_assert_uint_eq(policy_service_table_count(tab), 1);
    policy_service_table_expire(tab, 1000);
    ck_assert_uint_eq(policy_service_table_count(tab), 0);
    /* Bounded: the 9th instance evicts the least recently used. */
    for (int i = 0; i < 9; i++) {
        char id[16];
        snprintf(id, sizeof id, "n%d", i);
        ck_assert_int_eq(ask("RCPT", id, "jane@acme.com", NULL, 2000 + i, ans, sizeof ans, &ev),
                         0);
    }
    ck_assert_uint_eq(policy_service_table_count(tab), 8);
    ck_assert_int_eq(ask("END-OF-MESSAGE", "n0", NULL, "QQ1", 2100, ans, sizeof ans, &ev), 0);
    ck_assert_str_eq(ans, "action=DUNNO\n\n");
    ck_assert_int_eq(ask("END-OF-MESSAGE", "n8", NULL, "QQ2", 2100, ans, sizeof ans, &ev), 0);
    ck_assert_int_eq(ev.held, 1);
    policy_service_event_free(&ev);
}
END_TEST

START_TEST(test_reason_cannot_break_the_answer)
{
    char ans[1200];
    struct ps_event ev;
    add_win(ix, "w9", "eve@evil.com", utc(2027, 2, 1, 0, 0, 0), ACTION_REJECT,
            "line one\nline two");
    ck_assert_int_eq(ask("RCPT", "i1", "eve@evil.com", NULL, 0, ans, sizeof ans, &ev), 0);
    ck_assert_ptr_nonnull(strstr(ans, "line one line two\n\n"));
    ck_assert_ptr_eq(strstr(ans, "\n"), ans + strlen(ans) - 2);
    policy_service_event_free(&ev);
}
END_TEST


/* ---- when a message held in Postfix's hold queue is due ---------------- */

static struct ps_hold_eval eval1(const char *rcpt, time_t at, time_t prev_due, time_t prev_q)
{
    const char *r[1] = { rcpt };
    struct ps_hold_eval e;
    policy_service_evaluate(&cfg, ix, r, 1, at, prev_due, prev_q, &e);
    return e;
}

START_TEST(test_due_follows_the_hold_window)
{
    struct ps_hold_eval e = eval1("jane@acme.com", now, 0, 0);
    ck_assert_int_eq(e.covered, 1);
    ck_assert_int_eq(e.due, utc(2027, 7, 1, 0, 0, 0));
    ck_assert_int_eq(e.quiet_until, utc(2027, 7, 1, 0, 0, 0));
    /* Shortened (still ahead): the new end, not the one at END-OF-MESSAGE. */
    ck_assert_int_eq(windows_remove(ix, "w1"), 0);
    add_win(ix, "w1b", "jane@acme.com", utc(2027, 2, 1, 0, 0, 0), ACTION_HOLD, NULL);
    e = eval1("jane@acme.com", now, e.due, e.quiet_until);
    ck_assert_int_eq(e.covered, 1);
    ck_assert_int_eq(e.due, utc(2027, 2, 1, 0, 0, 0));
    /* Lengthened: later again. */
    add_win(ix, "w1b", "jane@acme.com", utc(2027, 9, 1, 0, 0, 0), ACTION_HOLD, NULL);
    e = eval1("jane@acme.com", now, e.due, e.quiet_until);
    ck_assert_int_eq(e.due, utc(2027, 9, 1, 0, 0, 0));
}
END_TEST

START_TEST(test_ended_by_hand_releases_at_once)
{
    struct ps_hold_eval e = eval1("jane@acme.com", now, 0, 0);
    ck_assert_int_eq(windows_remove(ix, "w1"), 0);
    e = eval1("jane@acme.com", now + 60, e.due, e.quiet_until);
    ck_assert_int_eq(e.covered, 0);
    ck_assert_int_le(e.due, now + 60);
}
END_TEST

START_TEST(test_allow_exception_inside_domain_hold_does_not_keep_it)
{
    add_win(ix, "d1", "@corp.com", utc(2027, 7, 1, 0, 0, 0), ACTION_HOLD, NULL);
    struct ps_hold_eval e = eval1("ceo@corp.com", now, 0, 0);
    ck_assert_int_eq(e.covered, 1);
    add_win(ix, "d2", "ceo@corp.com", WHEN_NEVER, ACTION_ALLOW, NULL);
    e = eval1("ceo@corp.com", now, e.due, e.quiet_until);
    ck_assert_int_eq(e.covered, 0);
    ck_assert_int_le(e.due, now);
    /* Another address of the domain stays held. */
    e = eval1("ann@corp.com", now, 0, 0);
    ck_assert_int_eq(e.covered, 1);
    ck_assert_int_eq(e.due, utc(2027, 7, 1, 0, 0, 0));
}
END_TEST

START_TEST(test_flag_window_does_not_extend_the_hold)
{
    cfg.release_time = 9 * 60;
    cfg.release_on_weekends = 0;
    add_win(ix, "d3", "@acme.com", utc(2030, 1, 1, 0, 0, 0), ACTION_FLAG, NULL);
    /* dora: address hold until 2027-08-01 (a Sunday) inside a domain flag. */
    struct ps_hold_eval e = eval1("dora@acme.com", now, 0, 0);
    ck_assert_int_eq(e.covered, 1);
    ck_assert_int_eq(e.due, utc(2027, 8, 2, 9, 0, 0));
    /* Past its end the flag window matches: not a hold, and no 2030. */
    time_t t = utc(2027, 8, 1, 0, 0, 1);
    e = eval1("dora@acme.com", t, e.due, e.quiet_until);
    ck_assert_int_eq(e.covered, 0);
    ck_assert_int_eq(e.due, utc(2027, 8, 2, 9, 0, 0));
    e = eval1("dora@acme.com", utc(2027, 8, 2, 9, 0, 0), e.due, e.quiet_until);
    ck_assert_int_le(e.due, utc(2027, 8, 2, 9, 0, 0));
}
END_TEST

START_TEST(test_natural_end_waits_for_the_aligned_release)
{
    cfg.release_time = 9 * 60;
    struct ps_hold_eval e = eval1("jane@acme.com", now, 0, 0);
    ck_assert_int_eq(e.due, utc(2027, 7, 1, 9, 0, 0));
    ck_assert_int_eq(e.quiet_until, utc(2027, 7, 1, 0, 0, 0));
    /* Between the end and 09:00, re-evaluated for an unrelated change. */
    time_t t = utc(2027, 7, 1, 3, 0, 0);
    e = eval1("jane@acme.com", t, e.due, e.quiet_until);
    ck_assert_int_eq(e.covered, 0);
    ck_assert_int_eq(e.due, utc(2027, 7, 1, 9, 0, 0));
    /* Even when the ended window is gone from the index (a sync dropped
     * it): it ran out by itself, so its aligned release still stands. */
    ck_assert_int_eq(windows_remove(ix, "w1"), 0);
    e = eval1("jane@acme.com", t + 60, e.due, e.quiet_until);
    ck_assert_int_eq(e.due, utc(2027, 7, 1, 9, 0, 0));
}
END_TEST

START_TEST(test_cut_short_into_the_past_waits_for_its_aligned_release)
{
    cfg.release_time = 9 * 60;
    cfg.release_on_weekends = 0;
    struct ps_hold_eval e = eval1("jane@acme.com", now, 0, 0);
    /* The window file now says it ended at 08:00 today (Sunday 10 Jan):
     * never earlier than the aligned release of that window, Monday 09:00. */
    ck_assert_int_eq(windows_remove(ix, "w1"), 0);
    add_win(ix, "w1c", "jane@acme.com", utc(2027, 1, 10, 8, 0, 0), ACTION_HOLD, NULL);
    e = eval1("jane@acme.com", now, e.due, e.quiet_until);
    ck_assert_int_eq(e.covered, 0);
    ck_assert_int_eq(e.due, utc(2027, 1, 11, 9, 0, 0));
}
END_TEST

START_TEST(test_many_ended_windows_on_one_domain)
{
    cfg.release_time = 9 * 60;
    cfg.release_on_weekends = 0;
    /* 40 ended hold windows on the domain (more than the lookup's first
     * batch); the last one to end, 08:00 today (Sunday), counts. */
    for (int i = 0; i < 40; i++) {
        char id[16];
        snprintf(id, sizeof id, "m%d", i);
        add_win(ix, id, "@many.com", utc(2026, 12, 1, 0, 0, 0) + i * 3600, ACTION_HOLD, NULL);
    }
    add_win(ix, "m40", "@many.com", utc(2027, 1, 10, 8, 0, 0), ACTION_HOLD, NULL);
    for (int i = 41; i < 60; i++) {
        char id[16];
        snprintf(id, sizeof id, "m%d", i);
        add_win(ix, id, "@many.com", utc(2026, 11, 1, 0, 0, 0) + i * 3600, ACTION_HOLD, NULL);
    }
    struct ps_hold_eval e = eval1("x@many.com", now, 0, utc(2027, 7, 1, 0, 0, 0));
    ck_assert_int_eq(e.covered, 0);
    ck_assert_int_eq(e.due, utc(2027, 1, 11, 9, 0, 0));
}
END_TEST

START_TEST(test_window_ended_between_rcpt_and_eom)
{
    char ans[1200];
    struct ps_event ev;
    ck_assert_int_eq(ask("RCPT", "e1", "jane@acme.com", NULL, 0, ans, sizeof ans, &ev), 0);
    policy_service_event_free(&ev);
    ck_assert_int_eq(ask("RCPT", "e2", "jane@acme.com", NULL, 0, ans, sizeof ans, &ev), 0);
    policy_service_event_free(&ev);
    /* e1's message: the window was cut short to February meanwhile. */
    add_win(ix, "w1", "jane@acme.com", utc(2027, 2, 1, 0, 0, 0), ACTION_HOLD, NULL);
    ck_assert_int_eq(ask("END-OF-MESSAGE", "e1", NULL, "QE1", 10, ans, sizeof ans, &ev), 0);
    ck_assert_int_eq(ev.held, 1);
    ck_assert_int_eq(ev.release_at, utc(2027, 2, 1, 0, 0, 0));
    ck_assert_int_eq(ev.quiet_until, utc(2027, 2, 1, 0, 0, 0));
    ck_assert_ptr_nonnull(strstr(ans, "held until 2027-02-01"));
    policy_service_event_free(&ev);
    /* e2's message: the window was ended by hand: not held at all. */
    ck_assert_int_eq(windows_remove(ix, "w1"), 0);
    ck_assert_int_eq(ask("END-OF-MESSAGE", "e2", NULL, "QE2", 20, ans, sizeof ans, &ev), 0);
    ck_assert_int_eq(ev.held, 0);
    ck_assert_str_eq(ans, "action=DUNNO\n\n");
    policy_service_event_free(&ev);
}
END_TEST

START_TEST(test_latest_of_several_recipients)
{
    const char *r[3] = { "jane@acme.com", "dora@acme.com", "someone@else.com" };
    struct ps_hold_eval e;
    policy_service_evaluate(&cfg, ix, r, 3, now, 0, 0, &e);
    ck_assert_int_eq(e.covered, 1);
    ck_assert_int_eq(e.due, utc(2027, 8, 1, 0, 0, 0));
    ck_assert_int_eq(windows_remove(ix, "w4"), 0);       /* dora's ended by hand */
    policy_service_evaluate(&cfg, ix, r, 3, now, e.due, e.quiet_until, &e);
    ck_assert_int_eq(e.covered, 1);
    ck_assert_int_eq(e.due, utc(2027, 7, 1, 0, 0, 0));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("policy_service");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_parse_basic_and_unknown_ignored);
    tcase_add_test(tc, test_parse_value_keeps_equals_and_last_line_without_newline);
    tcase_add_test(tc, test_parse_errors);
    tcase_add_test(tc, test_queue_id_ok);
    tcase_add_test(tc, test_wrong_request_is_internal_error);
    tcase_add_test(tc, test_rcpt_allow_is_dunno);
    tcase_add_test(tc, test_rcpt_reject);
    tcase_add_test(tc, test_rcpt_flag_prepends_header);
    tcase_add_test(tc, test_hold_dunno_at_rcpt_hold_at_eom);
    tcase_add_test(tc, test_hold_without_queue_id_passes);
    tcase_add_test(tc, test_window_over_means_dunno);
    tcase_add_test(tc, test_table_expiry_and_bound);
    tcase_add_test(tc, test_reason_cannot_break_the_answer);
    tcase_add_test(tc, test_due_follows_the_hold_window);
    tcase_add_test(tc, test_ended_by_hand_releases_at_once);
    tcase_add_test(tc, test_allow_exception_inside_domain_hold_does_not_keep_it);
    tcase_add_test(tc, test_flag_window_does_not_extend_the_hold);
    tcase_add_test(tc, test_natural_end_waits_for_the_aligned_release);
    tcase_add_test(tc, test_cut_short_into_the_past_waits_for_its_aligned_release);
    tcase_add_test(tc, test_latest_of_several_recipients);
    tcase_add_test(tc, test_many_ended_windows_on_one_domain);
    tcase_add_test(tc, test_window_ended_between_rcpt_and_eom);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
