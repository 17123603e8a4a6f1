/* test_csv_import.c - the CRM CSV parser (csv_import.c): RFC 4180 quoting,
 * line numbers across quoted line breaks, the optional header, blank
 * lines and a byte order mark, per-line errors naming the field, and the
 * file's bounds. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "untild/csv_import.h"

static void parse(const char *s, struct csv_import *c)
{
    ck_assert_int_eq(csv_import_parse(s, strlen(s), c), 0);
}

START_TEST(test_plain_and_header)
{
    struct csv_import c;
    parse("email,until,reason,action\r\na@x.com,2027-01-01,budget,flag\r\nb@y.com,never,left\r\n", &c);
    ck_assert_int_eq(c.header, 1);
    ck_assert_uint_eq(c.nrows, 2);
    ck_assert_uint_eq(c.nerrs_total, 0);
    ck_assert_str_eq(c.rows[0].email, "a@x.com");
    ck_assert_str_eq(c.rows[0].until, "2027-01-01");
    ck_assert_str_eq(c.rows[0].reason, "budget");
    ck_assert_str_eq(c.rows[0].action, "flag");
    ck_assert_int_eq(c.rows[0].line, 2);
    ck_assert_ptr_null(c.rows[1].action);
    ck_assert_int_eq(c.rows[1].line, 3);
    csv_import_free(&c);
    /* no header: the first line is a row */
    parse("a@x.com,2027-01-01,\n", &c);
    ck_assert_int_eq(c.header, 0);
    ck_assert_uint_eq(c.nrows, 1);
    ck_assert_ptr_null(c.rows[0].reason);
    ck_assert_int_eq(c.rows[0].line, 1);
    csv_import_free(&c);
}
END_TEST

START_TEST(test_quotes)
{
    struct csv_import c;
    parse("\xef\xbb\xbf" "Email,Until,Reason\n"
          "\"a@x.com\", 2027-01-01 ,\"said \"\"no\"\", call in Q1, please\"\n"
          "\n"
          "b@y.com,2027-02-01,\"two\nlines\"\n"
          "c@z.com,2027-03-01,x\n", &c);
    ck_assert_int_eq(c.header, 1);
    ck_assert_uint_eq(c.nerrs_total, 0);
    ck_assert_uint_eq(c.nrows, 3);
    ck_assert_str_eq(c.rows[0].until, "2027-01-01");
    ck_assert_str_eq(c.rows[0].reason, "said \"no\", call in Q1, please");
    ck_assert_str_eq(c.rows[1].reason, "two\nlines");
    ck_assert_int_eq(c.rows[1].line, 4);
    ck_assert_int_eq(c.rows[2].line, 6);    /* after the quoted line break */
    csv_import_free(&c);
}
END_TEST

START_TEST(test_line_errors)
{
    struct csv_import c;
    parse("a@x.com,2027-01-01\n"            /* 1: too few fields */
          "b@x.com,2027-01-01,r,hold,5\n"   /* 2: too many */
          ",2027-01-01,r\n"                 /* 3: no email */
          "d@x.com, ,r\n"                   /* 4: no until */
          "e@x.com,2027-01-01,ab\"c\n"      /* 5: bare quote */
          "f@x.com,2027-01-01,\"ab\"c\n"    /* 6: text after closing quote */
          "g@x.com,2027-01-01,fine\n"       /* 7: good */
          "h@x.com,2027-01-01,\"open\n", &c);   /* 8: unterminated */
    ck_assert_uint_eq(c.nrows, 1);
    ck_assert_str_eq(c.rows[0].email, "g@x.com");
    ck_assert_uint_eq(c.nerrs_total, 7);
    int lines[] = { 1, 2, 3, 4, 5, 6, 8 };
    const char *fields[] = { "", "", "email", "until", "reason", "reason", "reason" };
    for (int i = 0; i < 7; i++) {
        ck_assert_int_eq(c.errs[i].line, lines[i]);
        ck_assert_str_eq(c.errs[i].field, fields[i]);
        ck_assert(c.errs[i].reason[0]);
    }
    ck_assert_ptr_nonnull(strstr(c.errs[6].reason, "unterminated"));
    csv_import_free(&c);
}
END_TEST

START_TEST(test_bounds)
{
    struct csv_import c;
    /* a field over CSV_FIELD_MAX is its line's error */
    char *big = malloc(CSV_FIELD_MAX + 64);
    ck_assert_ptr_nonnull(big);
    int n = snprintf(big, 64, "a@x.com,2027-01-01,");
    memset(big + n, 'r', CSV_FIELD_MAX + 1);
    strcpy(big + n + CSV_FIELD_MAX + 1, "\nb@x.com,never,ok\n");
    parse(big, &c);
    ck_assert_uint_eq(c.nrows, 1);
    ck_assert_uint_eq(c.nerrs_total, 1);
    ck_assert_int_eq(c.errs[0].line, 1);
    ck_assert_str_eq(c.errs[0].field, "reason");
    csv_import_free(&c);
    free(big);
    /* too many rows: refused whole */
    size_t sz = (CSV_MAX_ROWS + 1) * 32 + 1, off = 0;
    char *many = malloc(sz);
    ck_assert_ptr_nonnull(many);
    for (int i = 0; i <= CSV_MAX_ROWS; i++)
        off += (size_t)snprintf(many + off, sz - off, "u%d@x.com,never,r\n", i);
    parse(many, &c);
    ck_assert_uint_eq(c.nrows, 0);
    ck_assert_uint_eq(c.nerrs_total, 1);
    ck_assert_int_eq(c.errs[0].line, 0);
    csv_import_free(&c);
    free(many);
    /* more than one row too many: refused whole, each row past the
     * limit counted, not written past the rows' array (ASan:
     * heap-buffer-overflow at the second row over) */
    sz = (CSV_MAX_ROWS + 5) * 32 + 1;
    off = 0;
    ck_assert_ptr_nonnull(many = malloc(sz));
    for (int i = 0; i < CSV_MAX_ROWS + 5; i++)
        off += (size_t)snprintf(many + off, sz - off, "u%d@x.com,never,r\n", i);
    parse(many, &c);
    ck_assert_uint_eq(c.nrows, 0);
    ck_assert_uint_eq(c.nerrs_total, 1);
    ck_assert_msg(strstr(c.errs[0].reason, "1005 rows"), "%s", c.errs[0].reason);
    csv_import_free(&c);
    free(many);
    /* too many bytes: refused whole, unread */
    ck_assert_int_eq(csv_import_parse("x", CSV_MAX_BYTES + 1, &c), 0);
    ck_assert_uint_eq(c.nrows, 0);
    ck_assert_int_eq(c.errs[0].line, 0);
    csv_import_free(&c);
    /* a NUL byte */
    ck_assert_int_eq(csv_import_parse("a@x.com,never,r\0x\n", 18, &c), 0);
    ck_assert_uint_eq(c.nrows, 0);
    ck_assert_uint_eq(c.nerrs_total, 1);
    csv_import_free(&c);
    /* errors beyond CSV_MAX_ERRORS are counted, not kept */
    sz = (CSV_MAX_ERRORS + 10) * 4 + 1;
    char *bad = malloc(sz);
    ck_assert_ptr_nonnull(bad);
    off = 0;
    for (int i = 0; i < CSV_MAX_ERRORS + 10; i++)
        off += (size_t)snprintf(bad + off, sz - off, "x,\n");
    parse(bad, &c);
    ck_assert_uint_eq(c.nerrs, CSV_MAX_ERRORS);
    ck_assert_uint_eq(c.nerrs_total, CSV_MAX_ERRORS + 10);
    csv_import_free(&c);
    free(bad);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("csv_import");
    TCase *t = tcase_create("core");
    tcase_add_test(t, test_plain_and_header);
    tcase_add_test(t, test_quotes);
    tcase_add_test(t, test_line_errors);
    tcase_add_test(t, test_bounds);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
