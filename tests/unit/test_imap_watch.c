/* test_imap_watch.c - the pure part of the IMAP watcher: "Contact later"
 * subfolder names to dates. The protocol side is tested end to end against
 * a real Dovecot (tests/e2e/test_imap.py). Times are explicit; the machine's
 * clock and zone are never read. */
#include "untild/imap_watch.h"

#include <check.h>
#include <stdio.h>
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

static time_t utc_day(const char *ymd)
{
    int y, m, d;
    if (sscanf(ymd, "%d-%d-%d", &y, &m, &d) != 3)
        return -1;
    return utc(y, m, d, 0);
}

/* Issue 17 item 11: ISO months, month names in the notice languages
 * (English, German, French, Spanish), quarters. */
START_TEST(months_and_quarters)
{
    static const struct { const char *leaf, *day; } ok[] = {
        { "2027-07", "2027-07-01" }, { "07/2027", "2027-07-01" }, { "2027.7", "2027-07-01" },
        { "März 2027", "2027-03-01" }, { "MÄRZ 2027", "2027-03-01" }, { "Maerz 2027", "2027-03-01" },
        { "Mai 2027", "2027-05-01" }, { "mayo 2027", "2027-05-01" }, { "juillet 2027", "2027-07-01" },
        { "Juli 2027", "2027-07-01" }, { "julio 2027", "2027-07-01" }, { "août 2027", "2027-08-01" },
        { "AOÛT 2027", "2027-08-01" }, { "Okt. 2027", "2027-10-01" }, { "décembre 2027", "2027-12-01" },
        { "diciembre 2027", "2027-12-01" }, { "févr. 2028", "2028-02-01" }, { "enero 2028", "2028-01-01" },
        { "2027 September", "2027-09-01" }, { "Q3 2027", "2027-07-01" }, { "q1 2028", "2028-01-01" },
        { "2027-Q4", "2027-10-01" }, { "Q2/2027", "2027-04-01" },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        time_t t = 0;
        ck_assert_msg(imap_watch_folder_date(ok[i].leaf, "UTC", NOW, &t) == 0, "%s", ok[i].leaf);
        ck_assert_msg(t == utc_day(ok[i].day), "%s: %lld", ok[i].leaf, (long long)t);
    }
    time_t t;
    ck_assert_int_eq(imap_watch_folder_date("2027-13", "UTC", NOW, &t), -1);
    ck_assert_int_eq(imap_watch_folder_date("Q5 2027", "UTC", NOW, &t), -1);
    ck_assert_int_eq(imap_watch_folder_date("Someday", "UTC", NOW, &t), -1);
    ck_assert_int_eq(imap_watch_folder_date("Marzipan 2027", "UTC", NOW, &t), -1);
}
END_TEST

/* Issue 17 item 10: folder names in any language. */
START_TEST(modified_utf7)
{
    static const struct { const char *utf8, *wire; } v[] = {
        { "INBOX", "INBOX" },
        { "Später", "Sp&AOQ-ter" },
        { "Éléments envoyés", "&AMk-l&AOk-ments envoy&AOk-s" },
        { "Tom & Jerry", "Tom &- Jerry" },
        { "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
          "~peter/mail/&U,BTFw-/&ZeVnLIqe-" },   /* RFC 3501 5.1.3 */
        { "Contact later/März 2027", "Contact later/M&AOQ-rz 2027" },
        { "\xf0\x9f\x93\x85 later", "&2D3cxQ- later" },   /* a surrogate pair */
        { "Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-" },
    };
    char out[256];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        ck_assert_int_eq(imap_watch_utf8_to_mutf7(v[i].utf8, out, sizeof out), 0);
        ck_assert_str_eq(out, v[i].wire);
        ck_assert_int_eq(imap_watch_mutf7_to_utf8(v[i].wire, out, sizeof out), 0);
        ck_assert_str_eq(out, v[i].utf8);
    }
    ck_assert_int_eq(imap_watch_utf8_to_mutf7("bad \xc3", out, sizeof out), -1);
    ck_assert_int_eq(imap_watch_utf8_to_mutf7("Sp\xc3\xa4ter", out, 8), -1);   /* too small */
    ck_assert_int_eq(imap_watch_mutf7_to_utf8("Sp&AOQ", out, sizeof out), -1);  /* unterminated */
    ck_assert_int_eq(imap_watch_mutf7_to_utf8("&AGE-", out, sizeof out), -1);   /* "a" encoded */
    ck_assert_int_eq(imap_watch_mutf7_to_utf8("Sp\xc3\xa4ter", out, sizeof out), -1);
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
    tcase_add_test(tc, months_and_quarters);
    tcase_add_test(tc, modified_utf7);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
