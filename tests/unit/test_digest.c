/* test_digest.c - the pure parts of the weekly digest (digest.c): the
 * next digest time (weekday and time of day in a zone, across DST), and
 * the multipart/alternative message. */
#include <check.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "untild/digest.h"

static time_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi };
    return timegm(&tm);
}

START_TEST(next_time)
{
    /* Wednesday 2 Dec 2026 -> Monday 7 Dec 08:00 UTC */
    ck_assert_int_eq(digest_next(utc(2026, 12, 2, 10, 0), "UTC", 1, 480), utc(2026, 12, 7, 8, 0));
    /* at the time itself: that time */
    ck_assert_int_eq(digest_next(utc(2026, 12, 7, 8, 0), "UTC", 1, 480), utc(2026, 12, 7, 8, 0));
    /* a second later: next week */
    ck_assert_int_eq(digest_next(utc(2026, 12, 7, 8, 0) + 1, "UTC", 1, 480), utc(2026, 12, 14, 8, 0));
    /* Sunday (0) */
    ck_assert_int_eq(digest_next(utc(2026, 12, 2, 10, 0), "UTC", 0, 0), utc(2026, 12, 6, 0, 0));
    /* in a zone: Monday 08:00 Berlin is 07:00 UTC in winter, 06:00 in summer */
    ck_assert_int_eq(digest_next(utc(2026, 12, 2, 10, 0), "Europe/Berlin", 1, 480), utc(2026, 12, 7, 7, 0));
    ck_assert_int_eq(digest_next(utc(2027, 3, 24, 10, 0), "Europe/Berlin", 1, 480), utc(2027, 3, 29, 6, 0));
    /* late on Sunday in New York is already Monday in UTC: the local day counts */
    ck_assert_int_eq(digest_next(utc(2026, 12, 7, 3, 0), "America/New_York", 1, 480), utc(2026, 12, 7, 13, 0));
}
END_TEST

START_TEST(message_shape)
{
    size_t len = 0;
    char *m = digest_message("untild@x.invalid", "rep@example.com", "Your week",
                             "line one\nline two\n", "<table><tr><td>1</td></tr></table>\n",
                             utc(2026, 12, 7, 8, 0), &len);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(strlen(m), len);
    ck_assert_ptr_nonnull(strstr(m, "Content-Type: multipart/alternative; boundary="));
    ck_assert_ptr_nonnull(strstr(m, "Content-Type: text/plain; charset=utf-8\r\n"));
    ck_assert_ptr_nonnull(strstr(m, "Content-Type: text/html; charset=utf-8\r\n"));
    ck_assert_ptr_nonnull(strstr(m, "line one\r\nline two\r\n"));
    ck_assert_ptr_nonnull(strstr(m, "X-Untild: notice\r\n"));
    ck_assert_ptr_nonnull(strstr(m, "Auto-Submitted: auto-generated\r\n"));
    /* plain before HTML (the last alternative is the preferred one) */
    ck_assert(strstr(m, "text/plain") < strstr(m, "text/html"));
    /* no bare LF */
    for (size_t i = 0; i < len; i++)
        if (m[i] == '\n')
            ck_assert(i > 0 && m[i - 1] == '\r');
    free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("digest");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, next_time);
    tcase_add_test(tc, message_shape);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
