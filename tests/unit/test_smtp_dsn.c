/* test_smtp_dsn.c - which parameters go to the upstream. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include "untild/smtp_dsn.h"

START_TEST(test_wanted)
{
    ck_assert_int_eq(smtp_dsn_wanted(NULL), 0);
    ck_assert_int_eq(smtp_dsn_wanted("SIZE=100 BODY=8BITMIME"), 0);
    ck_assert_int_eq(smtp_dsn_wanted("SIZE=100 ret=hdrs"), 1);
    ck_assert_int_eq(smtp_dsn_wanted("NOTIFY=NEVER"), 1);
    ck_assert_int_eq(smtp_dsn_wanted("ORCPT=rfc822;a@b"), 1);
    ck_assert_int_eq(smtp_dsn_wanted("HOLDFOR=60"), 0);
}
END_TEST

START_TEST(test_filter_mail)
{
    char out[256];
    smtp_dsn_filter("SIZE=100 RET=HDRS BODY=8BITMIME ENVID=abc+2Bd HOLDFOR=60", 0, out, sizeof out);
    ck_assert_str_eq(out, " RET=HDRS ENVID=abc+2Bd");
    smtp_dsn_filter("NOTIFY=SUCCESS", 0, out, sizeof out);   /* RCPT-only keyword on MAIL */
    ck_assert_str_eq(out, "");
    smtp_dsn_filter(NULL, 0, out, sizeof out);
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_filter_rcpt)
{
    char out[256];
    smtp_dsn_filter("NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;jane@acme.com RET=FULL", 1, out, sizeof out);
    ck_assert_str_eq(out, " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;jane@acme.com");
}
END_TEST

START_TEST(test_filter_refuses_control_and_8bit)
{
    char out[256];
    smtp_dsn_filter("ENVID=a\rRSET RET=HDRS", 0, out, sizeof out);
    ck_assert_str_eq(out, " RET=HDRS");
    smtp_dsn_filter("ORCPT=rfc822;j\xc3\xa9@x NOTIFY=NEVER", 1, out, sizeof out);
    ck_assert_str_eq(out, " NOTIFY=NEVER");
}
END_TEST

START_TEST(test_filter_bounded)
{
    char out[16];
    smtp_dsn_filter("RET=HDRS ENVID=aaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0, out, sizeof out);
    ck_assert_str_eq(out, " RET=HDRS");
}
END_TEST

#define LAST(s) smtp_dsn_last_line(s, strlen(s))

/* A reply code alone ends a reply (RFC 5321 4.2): "250" CRLF, or LF. */
START_TEST(test_last_line)
{
    ck_assert_int_eq(LAST("250 2.0.0 Ok\r\n"), 1);
    ck_assert_int_eq(LAST("250\r\n"), 1);
    ck_assert_int_eq(LAST("250\n"), 1);
    ck_assert_int_eq(LAST("354 \r\n"), 1);
    ck_assert_int_eq(LAST("250-DSN\r\n"), 0);
    ck_assert_int_eq(LAST("250-\r\n"), 0);
    ck_assert_int_eq(LAST("25\r\n"), 0);
    ck_assert_int_eq(LAST("2x0 Ok\r\n"), 0);
    ck_assert_int_eq(LAST("Ok 250\r\n"), 0);
    ck_assert_int_eq(LAST(""), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("smtp_dsn");
    TCase *tc = tcase_create("params");
    tcase_add_test(tc, test_wanted);
    tcase_add_test(tc, test_filter_mail);
    tcase_add_test(tc, test_filter_rcpt);
    tcase_add_test(tc, test_filter_refuses_control_and_8bit);
    tcase_add_test(tc, test_filter_bounded);
    tcase_add_test(tc, test_last_line);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
