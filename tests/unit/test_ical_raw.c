/* test_ical_raw.c - content lines as sent: folds, CRLF/LF, quoted
 * parameters, one-line rewrites and the iMIP copy. */
#include "untild/ical_raw.h"
#include "untild/strbuf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const char *const SA[] = { "SCHEDULE-AGENT", NULL };

START_TEST(lines_keep_folds_and_endings)
{
    const char *s = "A:1\r\nATTENDEE;CN=\"Doe, J\r\n ane\":mailto:j@x\nB:2";
    struct icr_line l;
    size_t pos = 0;
    struct strbuf u = { 0 };
    ck_assert_int_eq(icr_next(s, strlen(s), &pos, &l), 1);
    ck_assert_uint_eq(l.len, 5);
    ck_assert_uint_eq(l.eol, 2);
    ck_assert_int_eq(icr_next(s, strlen(s), &pos, &l), 1);
    ck_assert_uint_eq(l.eol, 1);
    icr_unfold(s, &l, &u);
    ck_assert_str_eq(u.p, "ATTENDEE;CN=\"Doe, Jane\":mailto:j@x");
    ck_assert_int_eq(icr_next(s, strlen(s), &pos, &l), 1);
    ck_assert_uint_eq(l.eol, 0);
    ck_assert_uint_eq(l.len, 3);
    ck_assert_int_eq(icr_next(s, strlen(s), &pos, &l), 0);
    sb_free(&u);
}
END_TEST

START_TEST(parse_quoted_and_multi_valued)
{
    const char *s = "ATTENDEE;CN=\"a;b:c\";FEATURE=AUDIO,VIDEO;DELEGATED-FROM=\"mailto:x@y\",\"mailto:z@y\""
                    ":mailto:jane@acme.com";
    struct icr_prop p;
    char buf[64];
    ck_assert_int_eq(icr_parse(s, strlen(s), &p), 0);
    ck_assert_uint_eq(p.nparams, 3);
    ck_assert_int_eq(icr_param_first(&p, "cn", buf, sizeof buf), 5);
    ck_assert_str_eq(buf, "a;b:c");
    ck_assert_int_eq(icr_param_first(&p, "FEATURE", buf, sizeof buf), 5);
    ck_assert_str_eq(buf, "AUDIO");
    ck_assert_int_eq(icr_param_first(&p, "DELEGATED-FROM", buf, sizeof buf), 10);
    ck_assert_int_eq((int)p.vlen, (int)strlen("mailto:jane@acme.com"));
    ck_assert_int_eq(icr_param_first(&p, "EMAIL", buf, sizeof buf), -1);
    ck_assert_int_eq(icr_parse("ATTENDEE;CN=\"open:mailto:x", 26, &p), -1);
    ck_assert_int_eq(icr_parse("no colon", 8, &p), -1);
    ck_assert_int_eq(icr_parse(":x", 2, &p), -1);
}
END_TEST

START_TEST(rewrite_adds_one_parameter_only)
{
    const char *s = "ATTENDEE;CN=\"Jane\";SCHEDULE-AGENT=SERVER;FEATURE=AUDIO,VIDEO:mailto:jane@acme.com";
    struct icr_prop p;
    struct strbuf o = { 0 };
    ck_assert_int_eq(icr_parse(s, strlen(s), &p), 0);
    icr_rewrite(&p, SA, "SCHEDULE-AGENT=CLIENT", "\n", &o);
    ck_assert_str_eq(o.p, "ATTENDEE;SCHEDULE-AGENT=CLIENT;CN=\"Jane\";FEATURE=AUDIO,VIDEO:mailto:jane@ac\n"
                           " me.com\n");
    sb_free(&o);
}
END_TEST

START_TEST(fold_never_splits_utf8)
{
    char s[200];
    strcpy(s, "ATTENDEE;CN=");
    for (int i = 0; i < 40; i++)
        strcat(s, "\xc3\xa4");   /* a-umlaut, two octets */
    strcat(s, ":mailto:a@b");
    struct icr_prop p;
    struct strbuf o = { 0 };
    ck_assert_int_eq(icr_parse(s, strlen(s), &p), 0);
    icr_rewrite(&p, SA, "SCHEDULE-AGENT=CLIENT", "\r\n", &o);
    /* every physical line at most 75 octets and starting on a character */
    const char *q = o.p;
    while (*q) {
        const char *e = strstr(q, "\r\n");
        ck_assert_ptr_nonnull(e);
        ck_assert_int_le((int)(e - q), 75);
        ck_assert((((unsigned char)(q == o.p ? q[0] : q[1])) & 0xC0) != 0x80);
        q = e + 2;
    }
    struct icr_line l;
    size_t pos = 0;
    struct strbuf u = { 0 };
    icr_next(o.p, o.len, &pos, &l);
    ck_assert_uint_eq(l.len, o.len);
    icr_unfold(o.p, &l, &u);
    ck_assert(strstr(u.p, ":mailto:a@b"));
    sb_free(&o);
    sb_free(&u);
}
END_TEST

START_TEST(imip_copy)
{
    const char *s = "BEGIN:VCALENDAR\nMETHOD:PUBLISH\nBEGIN:VEVENT\n"
                    "ATTENDEE;SCHEDULE-AGENT=CLIENT;CN=\"J, D\":mailto:j@x\n"
                    "CATEGORIES:a,b\nEND:VEVENT\nEND:VCALENDAR\n";
    struct strbuf o = { 0 };
    icr_imip_request(s, strlen(s), &o);
    ck_assert_str_eq(o.p, "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
                          "ATTENDEE;CN=\"J, D\":mailto:j@x\r\nCATEGORIES:a,b\r\nEND:VEVENT\r\n"
                          "END:VCALENDAR\r\n");
    sb_free(&o);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ical_raw");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, lines_keep_folds_and_endings);
    tcase_add_test(tc, parse_quoted_and_multi_valued);
    tcase_add_test(tc, rewrite_adds_one_parameter_only);
    tcase_add_test(tc, fold_never_splits_utf8);
    tcase_add_test(tc, imip_copy);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
