/* test_followup.c - the pure parts of follow-up (issue 12): which windows
 * get a follow-up and when (the aligned release: release_time, weekends,
 * the window's zone), and the contact's display name from To/Cc. */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "untild/followup.h"
#include "untild/followup_cal.h"
#include <stdlib.h>
#include "untild/when.h"

static time_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi };
    return timegm(&tm);
}

static struct policy_cfg cfg(int weekends)
{
    struct policy_cfg c = { .default_action = ACTION_HOLD, .release_time = 9 * 60,
                            .release_on_weekends = weekends, .timezone = "UTC",
                            .command_domain = "untild.invalid", .delims = "+" };
    return c;
}

static struct window one(time_t until, const char *tz, enum action a, char *rrule)
{
    static char *who[1] = { "jane@acme.com" };
    struct window w;
    memset(&w, 0, sizeof w);
    snprintf(w.id, sizeof w.id, "w1");
    w.who = who;
    w.nwho = 1;
    w.until = until;
    w.tz = (char *)tz;
    w.action = a;
    w.rrule = rrule;
    w.duration = 86400;
    return w;
}

START_TEST(due_is_aligned_release)
{
    struct policy_cfg c = cfg(0);
    /* Thursday 10 Dec 2026 00:00 UTC -> 09:00 that day */
    struct window w = one(utc(2026, 12, 10, 0, 0), "UTC", ACTION_DEFAULT, NULL);
    ck_assert_int_eq(followup_due_at(&c, &w), utc(2026, 12, 10, 9, 0));
    /* ends 10:00 -> next day 09:00 */
    w.until = utc(2026, 12, 10, 10, 0);
    ck_assert_int_eq(followup_due_at(&c, &w), utc(2026, 12, 11, 9, 0));
    /* Saturday -> Monday 09:00 unless weekends */
    w.until = utc(2026, 12, 12, 0, 0);
    ck_assert_int_eq(followup_due_at(&c, &w), utc(2026, 12, 14, 9, 0));
    c = cfg(1);
    ck_assert_int_eq(followup_due_at(&c, &w), utc(2026, 12, 12, 9, 0));
    /* release_time = off: the end itself */
    c.release_time = -1;
    ck_assert_int_eq(followup_due_at(&c, &w), utc(2026, 12, 12, 0, 0));
}
END_TEST

START_TEST(due_in_window_zone)
{
    struct policy_cfg c = cfg(1);
    /* 09:00 in New York (EST, UTC-5) is 14:00 UTC */
    struct window w = one(utc(2026, 12, 10, 5, 0), "America/New_York", ACTION_HOLD, NULL);
    ck_assert_int_eq(followup_due_at(&c, &w), utc(2026, 12, 10, 14, 0));
}
END_TEST

START_TEST(no_followup)
{
    struct policy_cfg c = cfg(1);
    char rr[] = "FREQ=WEEKLY;BYDAY=SA,SU";
    struct window w = one(WHEN_NEVER, "UTC", ACTION_HOLD, NULL);
    ck_assert_int_eq(followup_due_at(&c, &w), 0);          /* no end */
    w = one(utc(2026, 12, 10, 0, 0), "UTC", ACTION_HOLD, rr);
    ck_assert_int_eq(followup_due_at(&c, &w), 0);          /* recurring */
    w = one(utc(2026, 12, 10, 0, 0), "UTC", ACTION_ALLOW, NULL);
    ck_assert_int_eq(followup_due_at(&c, &w), 0);          /* an exception */
    ck_assert_int_eq(followup_due_at(&c, NULL), 0);
    /* flag and reject windows are promises too */
    w = one(utc(2026, 12, 10, 0, 0), "UTC", ACTION_FLAG, NULL);
    ck_assert_int_eq(followup_due_at(&c, &w), utc(2026, 12, 10, 9, 0));
    w = one(utc(2026, 12, 10, 0, 0), "UTC", ACTION_REJECT, NULL);
    ck_assert_int_eq(followup_due_at(&c, &w), utc(2026, 12, 10, 9, 0));
}
END_TEST

START_TEST(display_names)
{
    char n[64];
    ck_assert_int_eq(followup_display_name("Jane Doe <jane@acme.com>", "jane@acme.com", n, sizeof n), 1);
    ck_assert_str_eq(n, "Jane Doe");
    ck_assert_int_eq(followup_display_name("\"Doe, Jane\" <Jane@Acme.com>, bob@x.org", "jane@acme.com",
                                           n, sizeof n), 1);
    ck_assert_str_eq(n, "Doe, Jane");
    ck_assert_int_eq(followup_display_name("bob@x.org, \"Q \\\"J\\\" R\" <jane@acme.com>", "jane@acme.com",
                                           n, sizeof n), 1);
    ck_assert_str_eq(n, "Q \"J\" R");
    /* no name, another address, nothing */
    ck_assert_int_eq(followup_display_name("jane@acme.com", "jane@acme.com", n, sizeof n), 0);
    ck_assert_str_eq(n, "");
    ck_assert_int_eq(followup_display_name("Bob <bob@acme.com>", "jane@acme.com", n, sizeof n), 0);
    ck_assert_int_eq(followup_display_name("<jane@acme.com>", "jane@acme.com", n, sizeof n), 0);
    ck_assert_int_eq(followup_display_name(NULL, "jane@acme.com", n, sizeof n), 0);
    /* a long name is cut to the buffer, never overrun */
    char small[6];
    ck_assert_int_eq(followup_display_name("Jane Doe <jane@acme.com>", "jane@acme.com", small, sizeof small), 1);
    ck_assert_str_eq(small, "Jane ");
    /* unterminated quote or bracket: no crash, no name */
    ck_assert_int_eq(followup_display_name("\"Jane <jane@acme.com>", "jane@acme.com", n, sizeof n), 0);
    ck_assert_int_eq(followup_display_name("Jane <jane@acme.com", "jane@acme.com", n, sizeof n), 0);
}
END_TEST

START_TEST(calendar_items)
{
    char *e = followup_cal_ics("u1@untild", "20261231", "Follow up with a@b.c: call, then; write\\",
                               "line", 0, 0, utc(2026, 12, 2, 10, 0));
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_nonnull(strstr(e, "BEGIN:VEVENT\r\nUID:u1@untild\r\nDTSTAMP:20261202T100000Z\r\n"));
    ck_assert_ptr_nonnull(strstr(e, "DTSTART;VALUE=DATE:20261231\r\nDTEND;VALUE=DATE:20270101\r\n"));
    ck_assert_ptr_nonnull(strstr(e, "SUMMARY:Follow up with a@b.c: call\\, then\\; write\\\\\r\n"));
    free(e);
    char *t = followup_cal_ics("u2", "20261210", "s", "d", 1, 1, utc(2026, 12, 2, 10, 0));
    ck_assert_ptr_nonnull(strstr(t, "BEGIN:VTODO"));
    ck_assert_ptr_nonnull(strstr(t, "DUE;VALUE=DATE:20261210\r\nSTATUS:COMPLETED\r\n"));
    ck_assert_ptr_null(strstr(t, "DTSTART"));
    free(t);
    ck_assert_ptr_null(followup_cal_ics("u3", "2026-12-10", "s", "d", 0, 0, 0));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("followup");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, due_is_aligned_release);
    tcase_add_test(tc, due_in_window_zone);
    tcase_add_test(tc, no_followup);
    tcase_add_test(tc, display_names);
    tcase_add_test(tc, calendar_items);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
