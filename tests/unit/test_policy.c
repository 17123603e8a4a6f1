/* test_policy.c - the pure decision (policy.c): verdicts at RCPT and after
 * DATA, release alignment, the message plan and command addresses.
 * Every time is passed explicitly (UTC instants built with timegm), so
 * the machine's clock and zone do not matter. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "untild/policy.h"
#include "untild/when.h"
#include "untild/windows.h"
#include "untild/message.h"

static time_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                     .tm_hour = h, .tm_min = mi, .tm_sec = s };
    return timegm(&tm);
}

static struct policy_cfg base_cfg(void)
{
    struct policy_cfg c = {
        .default_action = ACTION_HOLD,
        .split_recipients = 0,
        .release_time = 9 * 60,
        .release_on_weekends = 0,
        .timezone = "Europe/Berlin",
        .command_domain = "untild.invalid",
        .delims = "+",
    };
    return c;
}

/* Add a window covering one who-key, quiet [from, until). */
static const struct window *add_win(struct windows *ix, const char *id,
                                    const char *who, time_t from,
                                    time_t until, const char *tz,
                                    enum action a, const char *rrule,
                                    int64_t duration)
{
    struct window w;
    char whobuf[128];
    char tzbuf[64];
    char rrbuf[128];
    char *whos[1];

    memset(&w, 0, sizeof w);
    snprintf(w.id, sizeof w.id, "%s", id);
    snprintf(whobuf, sizeof whobuf, "%s", who);
    whos[0] = whobuf;
    w.who = whos;
    w.nwho = 1;
    w.from = from;
    w.until = until;
    if (rrule) {
        snprintf(rrbuf, sizeof rrbuf, "%s", rrule);
        w.rrule = rrbuf;
    }
    w.duration = duration ? duration : 86400;
    if (tz) {
        snprintf(tzbuf, sizeof tzbuf, "%s", tz);
        w.tz = tzbuf;
    }
    w.action = a;
    w.source = WSRC_RUNTIME;
    w.created = utc(2026, 1, 1, 0, 0, 0);
    const struct window *stored = windows_add(ix, &w);
    ck_assert_ptr_nonnull(stored);
    return stored;
}

/* ---- boundaries and alignment ------------------------------------------ */

START_TEST(test_until_boundary)
{
    struct policy_cfg cfg = base_cfg();
    struct windows *ix = windows_new();
    struct verdict v;
    /* 2027-07-01 00:00 Europe/Berlin (CEST) = 2027-06-30T22:00Z */
    time_t until = utc(2027, 6, 30, 22, 0, 0);
    const struct window *w = add_win(ix, "w1", "jane@acme.com", 0, until,
                                     "Europe/Berlin", ACTION_HOLD, NULL, 0);

    ck_assert_int_eq(policy_rcpt(&cfg, ix, "jane@acme.com", until - 1, &v),
                     ACTION_HOLD);
    ck_assert_int_eq(v.action, ACTION_HOLD);
    ck_assert_ptr_eq(v.w, w);
    ck_assert_int_eq(v.quiet_until, until);
    /* aligned to 09:00 Berlin that Thursday = 07:00Z */
    ck_assert_int_eq(v.release_at, utc(2027, 7, 1, 7, 0, 0));
    ck_assert_ptr_null(v.why);

    ck_assert_int_eq(policy_rcpt(&cfg, ix, "jane@acme.com", until + 1, &v),
                     ACTION_ALLOW);
    ck_assert_ptr_null(v.w);
    ck_assert_int_eq(v.release_at, 0);

    /* someone else is never quiet */
    ck_assert_int_eq(policy_rcpt(&cfg, ix, "john@acme.com", until - 1, &v),
                     ACTION_ALLOW);
    windows_free(ix);
}
END_TEST

START_TEST(test_window_tz_differs_from_daemon)
{
    struct policy_cfg cfg = base_cfg();   /* daemon in Europe/Berlin */
    struct windows *ix = windows_new();
    struct verdict v;
    /* 2027-07-01 00:00 America/New_York (EDT) = 04:00Z */
    time_t until = utc(2027, 7, 1, 4, 0, 0);
    add_win(ix, "w1", "jane@acme.com", 0, until, "America/New_York",
            ACTION_HOLD, NULL, 0);
    policy_rcpt(&cfg, ix, "jane@acme.com", utc(2027, 6, 1, 0, 0, 0), &v);
    ck_assert_int_eq(v.action, ACTION_HOLD);
    /* 09:00 in the WINDOW's zone, not Berlin's (which would be 07:00Z) */
    ck_assert_int_eq(v.release_at, utc(2027, 7, 1, 13, 0, 0));

    /* a window without tz falls back to the daemon's zone */
    struct window_match m = { .w = NULL, .quiet_until = until,
                              .recurring = 0 };
    ck_assert_int_eq(policy_release_at(&cfg, &m), utc(2027, 7, 1, 7, 0, 0));
    windows_free(ix);
}
END_TEST

START_TEST(test_dst_week)
{
    struct policy_cfg cfg = base_cfg();
    struct window_match m = { 0 };
    struct window w;
    memset(&w, 0, sizeof w);
    w.tz = "Europe/Berlin";
    w.until = WHEN_NEVER;
    m.w = &w;
    /* Friday 2027-03-26 00:00 CET (+1) -> 09:00 CET = 08:00Z */
    m.quiet_until = utc(2027, 3, 25, 23, 0, 0);
    ck_assert_int_eq(policy_release_at(&cfg, &m), utc(2027, 3, 26, 8, 0, 0));
    /* Saturday 2027-03-27 00:00 CET; weekend skipped; clocks go forward on
     * Sunday 28th: Monday 09:00 CEST (+2) = 07:00Z */
    m.quiet_until = utc(2027, 3, 26, 23, 0, 0);
    ck_assert_int_eq(policy_release_at(&cfg, &m), utc(2027, 3, 29, 7, 0, 0));
    /* Monday 2027-03-29 00:00 CEST = Sunday 22:00Z -> 07:00Z */
    m.quiet_until = utc(2027, 3, 28, 22, 0, 0);
    ck_assert_int_eq(policy_release_at(&cfg, &m), utc(2027, 3, 29, 7, 0, 0));
    /* with weekends: Sunday (DST day) 09:00 CEST = 07:00Z */
    cfg.release_on_weekends = 1;
    m.quiet_until = utc(2027, 3, 27, 23, 0, 0);   /* Sun 00:00 CET */
    ck_assert_int_eq(policy_release_at(&cfg, &m), utc(2027, 3, 28, 7, 0, 0));
}
END_TEST

START_TEST(test_weekends)
{
    struct policy_cfg cfg = base_cfg();
    struct windows *ix = windows_new();
    struct verdict v;
    /* Saturday 2027-07-03 00:00 Berlin = 2027-07-02T22:00Z */
    time_t until = utc(2027, 7, 2, 22, 0, 0);
    add_win(ix, "w1", "jane@acme.com", 0, until, "Europe/Berlin",
            ACTION_HOLD, NULL, 0);
    time_t now = utc(2027, 6, 1, 0, 0, 0);

    policy_rcpt(&cfg, ix, "jane@acme.com", now, &v);
    /* Monday 2027-07-05 09:00 CEST */
    ck_assert_int_eq(v.release_at, utc(2027, 7, 5, 7, 0, 0));

    cfg.release_on_weekends = 1;
    policy_rcpt(&cfg, ix, "jane@acme.com", now, &v);
    ck_assert_int_eq(v.release_at, utc(2027, 7, 3, 7, 0, 0));
    windows_free(ix);
}
END_TEST

START_TEST(test_release_time_off)
{
    struct policy_cfg cfg = base_cfg();
    struct windows *ix = windows_new();
    struct verdict v;
    time_t until = utc(2027, 7, 2, 22, 0, 0);   /* a Saturday in Berlin */
    add_win(ix, "w1", "jane@acme.com", 0, until, "Europe/Berlin",
            ACTION_HOLD, NULL, 0);
    cfg.release_time = -1;
    policy_rcpt(&cfg, ix, "jane@acme.com", until - 3600, &v);
    ck_assert_int_eq(v.action, ACTION_HOLD);
    ck_assert_int_eq(v.release_at, until);
    windows_free(ix);
}
END_TEST

START_TEST(test_never)
{
    struct policy_cfg cfg = base_cfg();
    struct windows *ix = windows_new();
    struct verdict v;
    add_win(ix, "w1", "jane@acme.com", 0, WHEN_NEVER, "Europe/Berlin",
            ACTION_HOLD, NULL, 0);
    policy_rcpt(&cfg, ix, "jane@acme.com", utc(2027, 1, 1, 0, 0, 0), &v);
    ck_assert_int_eq(v.action, ACTION_HOLD);
    ck_assert_int_eq(v.quiet_until, WHEN_NEVER);
    ck_assert_int_eq(v.release_at, WHEN_NEVER);
    windows_free(ix);
}
END_TEST

START_TEST(test_recurring_weekend)
{
    struct policy_cfg cfg = base_cfg();
    struct windows *ix = windows_new();
    struct verdict v;
    /* weekends in UTC, starting Saturday 2027-01-02 */
    add_win(ix, "w1", "@acme.com", utc(2027, 1, 2, 0, 0, 0), WHEN_NEVER,
            "UTC", ACTION_HOLD, "FREQ=WEEKLY;BYDAY=SA,SU", 86400);
    /* Sunday 2027-07-04 12:00Z: released Monday 00:00 exactly, not 09:00 */
    policy_rcpt(&cfg, ix, "jane@acme.com", utc(2027, 7, 4, 12, 0, 0), &v);
    ck_assert_int_eq(v.action, ACTION_HOLD);
    ck_assert_int_eq(v.quiet_until, utc(2027, 7, 5, 0, 0, 0));
    ck_assert_int_eq(v.release_at, utc(2027, 7, 5, 0, 0, 0));
    /* Tuesday: not quiet */
    policy_rcpt(&cfg, ix, "jane@acme.com", utc(2027, 7, 6, 12, 0, 0), &v);
    ck_assert_int_eq(v.action, ACTION_ALLOW);

    /* the rule itself, on a hand-made match */
    struct window_match m = { .w = NULL, .recurring = 1,
                              .quiet_until = utc(2027, 7, 3, 22, 0, 0) };
    ck_assert_int_eq(policy_release_at(&cfg, &m), utc(2027, 7, 3, 22, 0, 0));
    m.recurring = 0;
    ck_assert_int_ne(policy_release_at(&cfg, &m), utc(2027, 7, 3, 22, 0, 0));
    windows_free(ix);
}
END_TEST

/* ---- actions and specificity ------------------------------------------- */

START_TEST(test_default_action)
{
    struct policy_cfg cfg = base_cfg();
    struct windows *ix = windows_new();
    struct verdict v;
    time_t until = utc(2027, 7, 1, 0, 0, 0);
    time_t now = utc(2027, 1, 1, 0, 0, 0);
    const struct window *w = add_win(ix, "w1", "jane@acme.com", 0, until,
                                     "UTC", ACTION_DEFAULT, NULL, 0);

    ck_assert_int_eq(policy_window_action(&cfg, w), ACTION_HOLD);
    cfg.default_action = ACTION_FLAG;
    ck_assert_int_eq(policy_window_action(&cfg, w), ACTION_FLAG);
    ck_assert_int_eq(policy_rcpt(&cfg, ix, "jane@acme.com", now, &v),
                     ACTION_FLAG);
    ck_assert_ptr_eq(v.w, w);
    cfg.default_action = ACTION_REJECT;
    ck_assert_int_eq(policy_rcpt(&cfg, ix, "jane@acme.com", now, &v),
                     ACTION_REJECT);
    /* a window's own action wins over the default */
    struct window own = *w;
    own.action = ACTION_FLAG;
    ck_assert_int_eq(policy_window_action(&cfg, &own), ACTION_FLAG);
    /* a config that says "default" falls back to hold */
    cfg.default_action = ACTION_DEFAULT;
    ck_assert_int_eq(policy_window_action(&cfg, w), ACTION_HOLD);
    windows_free(ix);
}
END_TEST

START_TEST(test_flag_reject_windows)
{
    struct policy_cfg cfg = base_cfg();
    struct windows *ix = windows_new();
    struct verdict v;
    time_t until = utc(2027, 7, 1, 0, 0, 0);
    time_t now = utc(2027, 1, 1, 0, 0, 0);
    const struct window *wf = add_win(ix, "wf", "bob@initech.com", 0, until,
                                      "UTC", ACTION_FLAG, NULL, 0);
    const struct window *wr = add_win(ix, "wr", "@globex.com", 0, until,
                                      "UTC", ACTION_REJECT, NULL, 0);
    ck_assert_int_eq(policy_rcpt(&cfg, ix, "bob@initech.com", now, &v),
                     ACTION_FLAG);
    ck_assert_ptr_eq(v.w, wf);
    ck_assert_int_eq(v.quiet_until, until);
    ck_assert_int_eq(policy_rcpt(&cfg, ix, "ceo@globex.com", now, &v),
                     ACTION_REJECT);
    ck_assert_ptr_eq(v.w, wr);
    /* subdomains are covered by the domain window */
    ck_assert_int_eq(policy_rcpt(&cfg, ix, "x@mail.globex.com", now, &v),
                     ACTION_REJECT);
    /* an explicit allow window allows, with no deciding window reported */
    add_win(ix, "wa", "ok@initech.com", 0, until, "UTC", ACTION_ALLOW,
            NULL, 0);
    ck_assert_int_eq(policy_rcpt(&cfg, ix, "ok@initech.com", now, &v),
                     ACTION_ALLOW);
    ck_assert_ptr_null(v.w);
    windows_free(ix);
}
END_TEST

START_TEST(test_address_over_domain)
{
    struct policy_cfg cfg = base_cfg();
    struct windows *ix = windows_new();
    struct verdict v;
    time_t now = utc(2027, 1, 1, 0, 0, 0);
    const struct window *wd = add_win(ix, "wd", "@acme.com", 0,
                                      utc(2028, 1, 1, 0, 0, 0), "UTC",
                                      ACTION_REJECT, NULL, 0);
    const struct window *wa = add_win(ix, "wa", "jane@acme.com", 0,
                                      utc(2027, 7, 1, 0, 0, 0), "UTC",
                                      ACTION_FLAG, NULL, 0);
    ck_assert_int_eq(policy_rcpt(&cfg, ix, "jane@acme.com", now, &v),
                     ACTION_FLAG);
    ck_assert_ptr_eq(v.w, wa);
    ck_assert_int_eq(v.quiet_until, utc(2027, 7, 1, 0, 0, 0));
    ck_assert_int_eq(policy_rcpt(&cfg, ix, "bob@acme.com", now, &v),
                     ACTION_REJECT);
    ck_assert_ptr_eq(v.w, wd);
    windows_free(ix);
}
END_TEST

START_TEST(test_command_rcpt_not_a_window)
{
    struct policy_cfg cfg = base_cfg();
    struct windows *ix = windows_new();
    struct verdict v;
    time_t now = utc(2027, 1, 1, 0, 0, 0);
    add_win(ix, "wd", "@untild.invalid", 0, WHEN_NEVER, "UTC",
            ACTION_REJECT, NULL, 0);
    ck_assert_int_eq(policy_rcpt(&cfg, ix, "status@untild.invalid", now, &v),
                     ACTION_ALLOW);
    ck_assert_ptr_null(v.w);
    /* the same domain is only exempt while it is the command domain */
    cfg.command_domain = "cmd.example";
    ck_assert_int_eq(policy_rcpt(&cfg, ix, "status@untild.invalid", now, &v),
                     ACTION_REJECT);
    windows_free(ix);
}
END_TEST

/* ---- after DATA: overrides --------------------------------------------- */

struct seen_db {
    const char *id;
    const char *contact;
    int calls;
};

static int seen_fn(void *arg, const char *message_id, const char *contact)
{
    struct seen_db *db = arg;
    db->calls++;
    return strcmp(message_id, db->id) == 0 &&
           strcmp(contact, db->contact) == 0;
}

static struct windows *two_quiet(void)
{
    struct windows *ix = windows_new();
    add_win(ix, "wj", "jane@acme.com", 0, utc(2027, 7, 1, 0, 0, 0), "UTC",
            ACTION_HOLD, NULL, 0);
    add_win(ix, "wb", "bob@acme.com", 0, utc(2027, 7, 1, 0, 0, 0), "UTC",
            ACTION_FLAG, NULL, 0);
    add_win(ix, "wr", "rex@acme.com", 0, utc(2027, 7, 1, 0, 0, 0), "UTC",
            ACTION_REJECT, NULL, 0);
    return ix;
}

START_TEST(test_imip_reply_organizer_only)
{
    struct policy_cfg cfg = base_cfg();
    struct windows *ix = two_quiet();
    struct message_facts f;
    struct verdict out[4];
    const char *rcpts[] = { "jane@acme.com", "bob@acme.com", "amy@ok.com",
                            "status@untild.invalid" };
    time_t now = utc(2027, 1, 1, 0, 0, 0);
    char org[] = "jane@acme.com";

    memset(&f, 0, sizeof f);
    f.method = IMIP_REPLY;
    f.organizer = org;
    policy_message(&cfg, ix, "rep@example.com", rcpts, 4, &f, NULL, NULL,
                   now, out);
    ck_assert_int_eq(out[0].action, ACTION_ALLOW);
    ck_assert_ptr_nonnull(out[0].why);
    ck_assert_str_eq(out[0].why, "reply to the contact's own invitation");
    ck_assert_ptr_null(out[0].w);
    ck_assert_int_eq(out[1].action, ACTION_FLAG);   /* not the organizer */
    ck_assert_ptr_null(out[1].why);
    ck_assert_int_eq(out[2].action, ACTION_ALLOW);
    ck_assert_ptr_null(out[2].why);
    ck_assert_int_eq(out[3].action, ACTION_ALLOW);
    ck_assert_ptr_null(out[3].w);

    /* a REQUEST from the same organizer is contact: no override */
    f.method = IMIP_REQUEST;
    f.attendees[0] = org;
    f.nattendees = 1;
    policy_message(&cfg, ix, "rep@example.com", rcpts, 2, &f, NULL, NULL,
                   now, out);
    ck_assert_int_eq(out[0].action, ACTION_HOLD);
    ck_assert_ptr_null(out[0].why);
    ck_assert_int_eq(out[1].action, ACTION_FLAG);
    /* a CANCEL is not a reply either */
    f.method = IMIP_CANCEL;
    policy_message(&cfg, ix, NULL, rcpts, 1, &f, NULL, NULL, now, out);
    ck_assert_int_eq(out[0].action, ACTION_HOLD);
    windows_free(ix);
}
END_TEST

START_TEST(test_seen_in_reply_to)
{
    struct policy_cfg cfg = base_cfg();
    struct windows *ix = two_quiet();
    struct message_facts f;
    struct verdict out[3];
    const char *rcpts[] = { "jane@acme.com", "bob@acme.com", "rex@acme.com" };
    time_t now = utc(2027, 1, 1, 0, 0, 0);
    char irt[] = "m1@acme.com";
    struct seen_db db = { "m1@acme.com", "jane@acme.com", 0 };

    memset(&f, 0, sizeof f);
    f.in_reply_to = irt;
    policy_message(&cfg, ix, "rep@example.com", rcpts, 3, &f, seen_fn, &db,
                   now, out);
    ck_assert_int_eq(out[0].action, ACTION_ALLOW);
    ck_assert_str_eq(out[0].why, "customer re-opened the conversation");
    /* bob did not send m1: still flagged */
    ck_assert_int_eq(out[1].action, ACTION_FLAG);
    ck_assert_ptr_null(out[1].why);
    /* a reject was final at RCPT time */
    ck_assert_int_eq(out[2].action, ACTION_REJECT);
    ck_assert_int_gt(db.calls, 0);

    /* no oracle: no override */
    policy_message(&cfg, ix, "rep@example.com", rcpts, 1, &f, NULL, NULL,
                   now, out);
    ck_assert_int_eq(out[0].action, ACTION_HOLD);
    /* unknown id: no override */
    db.id = "other@acme.com";
    policy_message(&cfg, ix, "rep@example.com", rcpts, 1, &f, seen_fn, &db,
                   now, out);
    ck_assert_int_eq(out[0].action, ACTION_HOLD);
    windows_free(ix);
}
END_TEST

START_TEST(test_seen_references)
{
    struct policy_cfg cfg = base_cfg();
    struct windows *ix = two_quiet();
    struct message_facts f;
    struct verdict out[2];
    const char *rcpts[] = { "jane@acme.com", "bob@acme.com" };
    time_t now = utc(2027, 1, 1, 0, 0, 0);
    char refs[] = "<root@rep.example>\r\n <m7@globex.com> <m9@bob.example>";
    char irt[] = "unrelated@rep.example";
    struct seen_db db = { "m9@bob.example", "bob@acme.com", 0 };

    memset(&f, 0, sizeof f);
    f.in_reply_to = irt;
    f.references = refs;
    policy_message(&cfg, ix, "rep@example.com", rcpts, 2, &f, seen_fn, &db,
                   now, out);
    ck_assert_int_eq(out[0].action, ACTION_HOLD);
    ck_assert_int_eq(out[1].action, ACTION_ALLOW);
    ck_assert_str_eq(out[1].why, "customer re-opened the conversation");

    /* ids are passed without the angle brackets: an id only matching
     * with them must not match */
    db.id = "<m9@bob.example>";
    policy_message(&cfg, ix, "rep@example.com", rcpts, 2, &f, seen_fn, &db,
                   now, out);
    ck_assert_int_eq(out[1].action, ACTION_FLAG);

    /* a first id also works */
    db.id = "root@rep.example";
    db.contact = "jane@acme.com";
    policy_message(&cfg, ix, "rep@example.com", rcpts, 2, &f, seen_fn, &db,
                   now, out);
    ck_assert_int_eq(out[0].action, ACTION_ALLOW);
    ck_assert_int_eq(out[1].action, ACTION_FLAG);

    /* an unterminated reference is ignored, not misread */
    char bad[] = "<root@rep.example";
    f.in_reply_to = NULL;
    f.references = bad;
    policy_message(&cfg, ix, "rep@example.com", rcpts, 1, &f, seen_fn, &db,
                   now, out);
    ck_assert_int_eq(out[0].action, ACTION_HOLD);
    windows_free(ix);
}
END_TEST

/* ---- the plan ------------------------------------------------------------ */

START_TEST(test_plan)
{
    struct policy_cfg cfg = base_cfg();
    struct verdict v[5];
    struct plan p;

    memset(v, 0, sizeof v);
    v[0].action = ACTION_ALLOW;
    v[1].action = ACTION_FLAG;
    v[1].release_at = utc(2029, 1, 1, 0, 0, 0);  /* not held: ignored */
    v[2].action = ACTION_HOLD;
    v[2].release_at = utc(2027, 7, 1, 7, 0, 0);
    v[3].action = ACTION_HOLD;
    v[3].release_at = utc(2027, 8, 2, 7, 0, 0);
    v[4].action = ACTION_REJECT;

    policy_plan(&cfg, v, 5, &p);
    ck_assert_uint_eq(p.nallow, 1);
    ck_assert_uint_eq(p.nflag, 1);
    ck_assert_uint_eq(p.nhold, 2);
    ck_assert_uint_eq(p.nreject, 1);
    ck_assert_int_eq(p.hold_whole, 1);
    ck_assert_int_eq(p.release_at, utc(2027, 8, 2, 7, 0, 0));

    cfg.split_recipients = 1;
    policy_plan(&cfg, v, 5, &p);
    ck_assert_int_eq(p.hold_whole, 0);
    ck_assert_uint_eq(p.nhold, 2);
    ck_assert_int_eq(p.release_at, utc(2027, 8, 2, 7, 0, 0));

    /* nothing held */
    cfg.split_recipients = 0;
    policy_plan(&cfg, v, 2, &p);
    ck_assert_int_eq(p.hold_whole, 0);
    ck_assert_uint_eq(p.nhold, 0);
    ck_assert_int_eq(p.release_at, 0);

    /* one hold without end keeps the whole message */
    v[0].action = ACTION_HOLD;
    v[0].release_at = WHEN_NEVER;
    policy_plan(&cfg, v, 5, &p);
    ck_assert_uint_eq(p.nhold, 3);
    ck_assert_uint_eq(p.nallow, 0);
    ck_assert_int_eq(p.release_at, WHEN_NEVER);

    policy_plan(&cfg, v, 0, &p);
    ck_assert_uint_eq(p.nallow + p.nflag + p.nhold + p.nreject, 0);
    ck_assert_int_eq(p.hold_whole, 0);
}
END_TEST

START_TEST(test_plan_from_message)
{
    struct policy_cfg cfg = base_cfg();
    struct windows *ix = windows_new();
    struct verdict out[3];
    struct plan p;
    const char *rcpts[] = { "amy@ok.com", "jane@acme.com", "bob@acme.com" };
    time_t now = utc(2027, 1, 1, 0, 0, 0);
    struct message_facts f;

    memset(&f, 0, sizeof f);
    add_win(ix, "wj", "jane@acme.com", 0, utc(2027, 6, 30, 22, 0, 0),
            "Europe/Berlin", ACTION_HOLD, NULL, 0);
    add_win(ix, "wb", "bob@acme.com", 0, utc(2027, 7, 2, 22, 0, 0),
            "Europe/Berlin", ACTION_HOLD, NULL, 0);
    policy_message(&cfg, ix, "rep@example.com", rcpts, 3, &f, NULL, NULL,
                   now, out);
    policy_plan(&cfg, out, 3, &p);
    ck_assert_uint_eq(p.nallow, 1);
    ck_assert_uint_eq(p.nhold, 2);
    ck_assert_int_eq(p.hold_whole, 1);
    /* bob's Saturday end is released Monday 09:00 Berlin */
    ck_assert_int_eq(p.release_at, utc(2027, 7, 5, 7, 0, 0));
    windows_free(ix);
}
END_TEST

/* ---- command addresses --------------------------------------------------- */

/* Wednesday 2027-03-10 12:00Z (13:00 CET) */
#define CMD_NOW utc(2027, 3, 10, 12, 0, 0)

static enum cmd_kind cmd(const struct policy_cfg *cfg, const char *rcpt,
                         struct command *c)
{
    return policy_command(cfg, rcpt, CMD_NOW, c);
}

START_TEST(test_command_until)
{
    struct policy_cfg cfg = base_cfg();
    struct command c;

    ck_assert_int_eq(cmd(&cfg, "until-2027-07-01@untild.invalid", &c),
                     CMD_UNTIL);
    ck_assert_int_eq(c.kind, CMD_UNTIL);
    ck_assert_int_eq(c.until, utc(2027, 6, 30, 22, 0, 0)); /* Berlin */
    ck_assert_str_eq(c.arg, "");

    /* 1st of next July, Berlin */
    ck_assert_int_eq(cmd(&cfg, "july@untild.invalid", &c), CMD_UNTIL);
    ck_assert_int_eq(c.until, utc(2027, 6, 30, 22, 0, 0));
    ck_assert_int_eq(cmd(&cfg, "until-july@untild.invalid", &c), CMD_UNTIL);
    ck_assert_int_eq(c.until, utc(2027, 6, 30, 22, 0, 0));
    /* Thursday 00:00 CET */
    ck_assert_int_eq(cmd(&cfg, "tomorrow@untild.invalid", &c), CMD_UNTIL);
    ck_assert_int_eq(c.until, utc(2027, 3, 10, 23, 0, 0));
    /* Monday 15th 00:00 CET */
    ck_assert_int_eq(cmd(&cfg, "next-monday@untild.invalid", &c), CMD_UNTIL);
    ck_assert_int_eq(c.until, utc(2027, 3, 14, 23, 0, 0));
    /* 24th 00:00 CET */
    ck_assert_int_eq(cmd(&cfg, "2weeks@untild.invalid", &c), CMD_UNTIL);
    ck_assert_int_eq(c.until, utc(2027, 3, 23, 23, 0, 0));
    /* June 10th 00:00 CEST */
    ck_assert_int_eq(cmd(&cfg, "3months@untild.invalid", &c), CMD_UNTIL);
    ck_assert_int_eq(c.until, utc(2027, 6, 9, 22, 0, 0));

    /* the command domain is compared case-insensitively */
    ck_assert_int_eq(cmd(&cfg, "july@UNTILD.Invalid", &c), CMD_UNTIL);
    cfg.command_domain = "Untild.INVALID";
    ck_assert_int_eq(cmd(&cfg, "status@untild.invalid", &c), CMD_STATUS);
    ck_assert_int_eq(cmd(&cfg, "followups@untild.invalid", &c), CMD_FOLLOWUPS);   /* issue 12 */
}
END_TEST

START_TEST(test_command_until_bad)
{
    struct policy_cfg cfg = base_cfg();
    struct command c;

    /* past, and exactly now (00:00 CET of "today" is in the past too) */
    ck_assert_int_eq(cmd(&cfg, "until-2020-01-01@untild.invalid", &c),
                     CMD_BAD);
    ck_assert_int_eq(c.until, 0);
    ck_assert_int_eq(cmd(&cfg, "until-2027-03-10@untild.invalid", &c),
                     CMD_BAD);
    ck_assert_int_eq(policy_command(&cfg, "until-2027-03-10@untild.invalid",
                                    utc(2027, 3, 9, 23, 0, 0), &c), CMD_BAD);
    ck_assert_int_eq(policy_command(&cfg, "until-2027-03-10@untild.invalid",
                                    utc(2027, 3, 9, 22, 59, 59), &c),
                     CMD_UNTIL);
    ck_assert_int_eq(cmd(&cfg, "until-@untild.invalid", &c), CMD_BAD);
    ck_assert_int_eq(cmd(&cfg, "until-someday@untild.invalid", &c), CMD_BAD);
    ck_assert_int_eq(cmd(&cfg, "until-2027-13-01@untild.invalid", &c),
                     CMD_BAD);
    ck_assert_int_eq(cmd(&cfg, "until-never@untild.invalid", &c), CMD_BAD);
    ck_assert_int_eq(cmd(&cfg, "never@untild.invalid", &c), CMD_BAD);
}
END_TEST

START_TEST(test_command_ids)
{
    struct policy_cfg cfg = base_cfg();
    struct command c;
    char id63[64], buf[128];

    ck_assert_int_eq(cmd(&cfg, "release-h1a2b3@untild.invalid", &c),
                     CMD_RELEASE);
    ck_assert_str_eq(c.arg, "h1a2b3");
    ck_assert_int_eq(cmd(&cfg, "discard-0zz9@untild.invalid", &c),
                     CMD_DISCARD);
    ck_assert_str_eq(c.arg, "0zz9");
    ck_assert_int_eq(cmd(&cfg, "status@untild.invalid", &c), CMD_STATUS);
    ck_assert_str_eq(c.arg, "");

    memset(id63, 'a', 63);
    id63[63] = '\0';
    snprintf(buf, sizeof buf, "release-%s@untild.invalid", id63);
    ck_assert_int_eq(cmd(&cfg, buf, &c), CMD_RELEASE);
    ck_assert_str_eq(c.arg, id63);
    snprintf(buf, sizeof buf, "discard-%sb@untild.invalid", id63);
    ck_assert_int_eq(cmd(&cfg, buf, &c), CMD_BAD);
    ck_assert_str_eq(c.arg, "");

    ck_assert_int_eq(cmd(&cfg, "release-@untild.invalid", &c), CMD_BAD);
    ck_assert_int_eq(cmd(&cfg, "release-ab_c@untild.invalid", &c), CMD_BAD);
    ck_assert_int_eq(cmd(&cfg, "release-ab.c@untild.invalid", &c), CMD_BAD);
    ck_assert_int_eq(cmd(&cfg, "release@untild.invalid", &c), CMD_BAD);
    ck_assert_int_eq(cmd(&cfg, "statuses@untild.invalid", &c), CMD_BAD);
    ck_assert_int_eq(cmd(&cfg, "hello@untild.invalid", &c), CMD_BAD);
    ck_assert_int_eq(cmd(&cfg, "@untild.invalid", &c), CMD_BAD);
}
END_TEST

START_TEST(test_command_none)
{
    struct policy_cfg cfg = base_cfg();
    struct command c;

    ck_assert_int_eq(cmd(&cfg, "status@example.com", &c), CMD_NONE);
    ck_assert_int_eq(c.kind, CMD_NONE);
    ck_assert_int_eq(cmd(&cfg, "status@untild.invalid.example.com", &c),
                     CMD_NONE);
    ck_assert_int_eq(cmd(&cfg, "status@sub.untild.invalid", &c), CMD_NONE);
    ck_assert_int_eq(cmd(&cfg, "no-at-sign", &c), CMD_NONE);
    ck_assert_int_eq(cmd(&cfg, "release-abc@example.com", &c), CMD_NONE);
    ck_assert_int_eq(policy_command(&cfg, NULL, CMD_NOW, &c), CMD_NONE);
    cfg.command_domain = NULL;
    ck_assert_int_eq(cmd(&cfg, "status@untild.invalid", &c), CMD_NONE);
}
END_TEST

static Suite *policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_until_boundary);
    tcase_add_test(tc, test_window_tz_differs_from_daemon);
    tcase_add_test(tc, test_dst_week);
    tcase_add_test(tc, test_weekends);
    tcase_add_test(tc, test_release_time_off);
    tcase_add_test(tc, test_never);
    tcase_add_test(tc, test_recurring_weekend);
    tcase_add_test(tc, test_default_action);
    tcase_add_test(tc, test_flag_reject_windows);
    tcase_add_test(tc, test_address_over_domain);
    tcase_add_test(tc, test_command_rcpt_not_a_window);
    tcase_add_test(tc, test_imip_reply_organizer_only);
    tcase_add_test(tc, test_seen_in_reply_to);
    tcase_add_test(tc, test_seen_references);
    tcase_add_test(tc, test_plan);
    tcase_add_test(tc, test_plan_from_message);
    tcase_add_test(tc, test_command_until);
    tcase_add_test(tc, test_command_until_bad);
    tcase_add_test(tc, test_command_ids);
    tcase_add_test(tc, test_command_none);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* Nothing here depends on it, but make sure the host zone cannot leak
     * into anything that might consult it. */
    setenv("TZ", "UTC", 1);
    tzset();
    SRunner *sr = srunner_create(policy_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
