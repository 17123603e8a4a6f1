/* test_imap_watch.c - the pure part of the IMAP watcher: "Contact later"
 * subfolder names to dates. The protocol side is tested end to end against
 * a real Dovecot (tests/e2e/test_imap.py). Times are explicit; the machine's
 * clock and zone are never read. */
#include "untild/imap_watch.h"

#include <check.h>
#include <stdlib.h>
#include <time.h>

static time_t utc(int y, int mo, int d, int h)
{
    struct tm tm = { 0 };
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    return timegm(&tm);
}

/* 2026-03-15 12:00 UTC: the reference "now" for natural forms */
#define NOW utc(2026, 3, 15, 12)

START_TEST(iso_date)
{
    time_t t = 0;
    ck_assert_int_eq(imap_watch_folder_date("2027-07-01", "UTC", NOW, &t), 0);
    ck_assert_int_eq((long long)t, (long long)utc(2027, 7, 1, 0));
    ck_assert_int_eq(imap_watch_folder_date("2027-07-01", "Europe/Berlin", NOW, &t), 0);
    ck_assert_int_eq((long long)t, (long long)utc(2027, 6, 30, 22));   /* CEST midnight */
}
END_TEST

START_TEST(month_year)
{
    time_t t = 0;
    ck_assert_int_eq(imap_watch_folder_date("July 2027", "UTC", NOW, &t), 0);
    ck_assert_int_eq((long long)t, (long long)utc(2027, 7, 1, 0));
    ck_assert_int_eq(imap_watch_folder_date("jan 2028", "UTC", NOW, &t), 0);
    ck_assert_int_eq((long long)t, (long long)utc(2028, 1, 1, 0));
    ck_assert_int_eq(imap_watch_folder_date("December 2026", "UTC", NOW, &t), 0);
    ck_assert_int_eq((long long)t, (long long)utc(2026, 12, 1, 0));
}
END_TEST

START_TEST(natural_month)
{
    time_t t = 0;
    /* when_parse's natural form: the next 1st of July after now */
    ck_assert_int_eq(imap_watch_folder_date("july", "UTC", NOW, &t), 0);
    ck_assert_int_eq((long long)t, (long long)utc(2026, 7, 1, 0));
}
END_TEST

START_TEST(not_dates)
{
    time_t t = 0;
    ck_assert_int_eq(imap_watch_folder_date("Customers", "UTC", NOW, &t), -1);
    ck_assert_int_eq(imap_watch_folder_date("Foo 2027", "UTC", NOW, &t), -1);
    ck_assert_int_eq(imap_watch_folder_date("never", "UTC", NOW, &t), -1);
    ck_assert_int_eq(imap_watch_folder_date("", "UTC", NOW, &t), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("imap_watch");
    TCase *tc = tcase_create("folder_date");
    tcase_add_test(tc, iso_date);
    tcase_add_test(tc, month_year);
    tcase_add_test(tc, natural_month);
    tcase_add_test(tc, not_dates);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
