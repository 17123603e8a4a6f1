/* test_address.c - address normalisation: every spelling the envelope may
 * use for one mailbox meets in one form; invalid forms are refused. */
#include "untild/address.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const char *norm(const char *in, const char *delims)
{
    static char buf[ADDR_MAX];
    const char *why = NULL;
    if (address_normalize(in, delims, buf, sizeof buf, &why) != 0) {
        ck_assert_ptr_nonnull(why);
        return NULL;
    }
    return buf;
}

#define NORM(in, delims, want) ck_assert_str_eq(norm(in, delims), want)
#define BAD(in, delims) ck_assert_ptr_null(norm(in, delims))

static const char *why_of(const char *in)
{
    char buf[ADDR_MAX];
    const char *why = NULL;
    ck_assert_int_eq(address_normalize(in, "+", buf, sizeof buf, &why), -1);
    ck_assert_ptr_nonnull(why);
    return why;
}

START_TEST(plain_and_case)
{
    NORM("jane@acme.com", "+", "jane@acme.com");
    NORM("Jane.Doe@ACME.Com", "+", "jane.doe@acme.com");
    NORM("  jane@acme.com", NULL, "jane@acme.com");
}
END_TEST

START_TEST(brackets_and_params)
{
    NORM("<jane@acme.com>", "+", "jane@acme.com");
    NORM("<Jane@Acme.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y", "+",
         "jane@acme.com");
    NORM("jane@acme.com SIZE=100", "+", "jane@acme.com");
    BAD("<jane@acme.com", "+");
    BAD("<>", "+");
    ck_assert_str_eq(why_of("<>"), "empty reverse path");
}
END_TEST

START_TEST(source_route)
{
    NORM("<@a.example,@b.example:jane@acme.com>", "+", "jane@acme.com");
    NORM("<@a.example:Jane@Acme.com>", "+", "jane@acme.com");
    BAD("<@a.example jane@acme.com>", "+");
}
END_TEST

START_TEST(trailing_dot)
{
    NORM("jane@acme.com.", "+", "jane@acme.com");
    BAD("jane@.", "+");
    BAD("jane@acme..com", "+");
    BAD("jane@.acme.com", "+");
}
END_TEST

START_TEST(idna)
{
    NORM("jane@bücher.example", "+", "jane@xn--bcher-kva.example");
    NORM("jane@BÜCHER.example", "+", "jane@xn--bcher-kva.example");
    NORM("jane@xn--bcher-kva.example", "+", "jane@xn--bcher-kva.example");
    NORM("jane@XN--BCHER-KVA.EXAMPLE", "+", "jane@xn--bcher-kva.example");
    /* decomposed u + combining diaeresis meets the composed form */
    NORM("jane@bu\xcc\x88" "cher.example", "+", "jane@xn--bcher-kva.example");
    /* non-transitional: sharp s is kept, not mapped to "ss" */
    NORM("jane@straße.example", "+", "jane@xn--strae-oqa.example");
    BAD("jane@\xff\xfe.example", "+");
}
END_TEST

START_TEST(quoted_local)
{
    NORM("\"jane\"@acme.com", "+", "jane@acme.com");
    NORM("\"Jane.Doe\"@acme.com", "+", "jane.doe@acme.com");
    NORM("\"John Doe\"@acme.com", "+", "\"john doe\"@acme.com");
    NORM("<\"john doe\"@acme.com>", "+", "\"john doe\"@acme.com");
    NORM("\"a@b\"@acme.com", "+", "\"a@b\"@acme.com");
    NORM("\"a\\\"b\"@acme.com", "+", "\"a\\\"b\"@acme.com");
    NORM("\"j\\ane\"@acme.com", "+", "jane@acme.com");
    BAD("\"jane@acme.com", "+");
    BAD("\"jane\"x@acme.com", "+");
    BAD("\"\"@acme.com", "+");
}
END_TEST

START_TEST(subaddress)
{
    NORM("jane+x@acme.com", "+", "jane@acme.com");
    NORM("jane+x+y@acme.com", "+", "jane@acme.com");
    NORM("jane+x@acme.com", "", "jane+x@acme.com");
    NORM("jane+x@acme.com", NULL, "jane+x@acme.com");
    NORM("jane-x@acme.com", "+", "jane-x@acme.com");
    NORM("jane-x@acme.com", "+-", "jane@acme.com");
    NORM("jane-x+y@acme.com", "+-", "jane@acme.com");
    NORM("Jane+News@acme.com", "+", "jane@acme.com");
    /* starting with the delimiter: a name, not cut to empty */
    NORM("+jane@acme.com", "+", "+jane@acme.com");
    NORM("+@acme.com", "+", "+@acme.com");
    /* a quoted local part is cut too; what remains may become an atom */
    NORM("\"jane+x y\"@acme.com", "+", "jane@acme.com");
}
END_TEST

START_TEST(literal)
{
    NORM("jane@[127.0.0.1]", "+", "jane@[127.0.0.1]");
    NORM("<postmaster@[IPv6:::1]>", "+", "postmaster@[IPv6:::1]");
    BAD("jane@[127.0.0.1", "+");
    BAD("jane@[]", "+");
    BAD("jane@[1 2]", "+");
}
END_TEST

START_TEST(invalid)
{
    BAD("", "+");
    BAD("jane", "+");
    ck_assert_str_eq(why_of("jane"), "no '@'");
    BAD("@acme.com", "+");
    ck_assert_str_eq(why_of("@acme.com"), "empty local part");
    BAD("jane@", "+");
    BAD("jane@acme.com@x", "+");
    BAD("ja ne@acme.com", "+");
    BAD("ja<ne@acme.com", "+");
    BAD("<jane@ac me.com>", "+");
    BAD("jane@acme!.com", "+");
    BAD("jane@acme,com", "+");
    ck_assert_str_eq(why_of("jane@acme!.com"), "bad domain");
}
END_TEST

START_TEST(lengths)
{
    char in[600], out[ADDR_MAX];
    const char *why;
    /* local part: 64 octets ok, 65 refused */
    memset(in, 'a', 64);
    strcpy(in + 64, "@acme.com");
    ck_assert_int_eq(address_normalize(in, "+", out, sizeof out, &why), 0);
    memset(in, 'a', 65);
    strcpy(in + 65, "@acme.com");
    ck_assert_int_eq(address_normalize(in, "+", out, sizeof out, &why), -1);
    ck_assert_str_eq(why, "local part too long");
    /* label: 63 ok, 64 refused */
    strcpy(in, "j@");
    memset(in + 2, 'b', 63);
    strcpy(in + 65, ".com");
    ck_assert_int_eq(address_normalize(in, "+", out, sizeof out, &why), 0);
    memset(in + 2, 'b', 64);
    strcpy(in + 66, ".com");
    ck_assert_int_eq(address_normalize(in, "+", out, sizeof out, &why), -1);
    /* domain: 255 ok, 256 refused (labels of 63 + dots) */
    strcpy(in, "j@");
    size_t n = 2;
    for (int i = 0; i < 4; i++) {
        memset(in + n, 'c', 63);
        n += 63;
        in[n++] = '.';
    }
    n--;                  /* 4*63 + 3 = 255 */
    in[n] = '\0';
    ck_assert_int_eq(address_normalize(in, "+", out, sizeof out, &why), 0);
    ck_assert_uint_eq(strlen(address_domain(out)), 255);
    in[n++] = 'x';        /* "c...c" + "x": last label 64 -> label error;  */
    in[n] = '\0';         /* any way past 255 is refused */
    ck_assert_int_eq(address_normalize(in, "+", out, sizeof out, &why), -1);
    strcpy(in, "j@x.");
    n = 4;
    for (int i = 0; i < 4; i++) {
        memset(in + n, 'c', 62);
        n += 62;
        in[n++] = '.';
    }
    memcpy(in + n, "cc", 3);   /* 2 + 4*63 + 2 = 256 */
    ck_assert_uint_eq(strlen(in) - 2, 256);
    ck_assert_int_eq(address_normalize(in, "+", out, sizeof out, &why), -1);
    ck_assert_str_eq(why, "domain too long");
    /* output buffer too small */
    ck_assert_int_eq(address_normalize("jane@acme.com", "+", out, 13, &why),
                     -1);
    ck_assert_int_eq(address_normalize("jane@acme.com", "+", out, 14, &why),
                     0);
    /* why may be NULL */
    ck_assert_int_eq(address_normalize("jane", "+", out, sizeof out, NULL),
                     -1);
}
END_TEST

START_TEST(domain_and_who)
{
    char out[ADDR_MAX];
    const char *why;
    ck_assert_int_eq(address_domain_normalize("Bücher.Example.", out,
                                              sizeof out, &why), 0);
    ck_assert_str_eq(out, "xn--bcher-kva.example");
    ck_assert_int_eq(address_domain_normalize("@ACME.com", out, sizeof out,
                                              &why), 0);
    ck_assert_str_eq(out, "acme.com");
    ck_assert_int_eq(address_domain_normalize("", out, sizeof out, &why), -1);
    ck_assert_int_eq(address_domain_normalize("@", out, sizeof out, &why), -1);

    ck_assert_int_eq(address_who_normalize("@BÜCHER.example.", "+", out,
                                           sizeof out, &why), 0);
    ck_assert_str_eq(out, "@xn--bcher-kva.example");
    ck_assert_int_eq(address_who_normalize("Jane+x@Acme.COM", "+", out,
                                           sizeof out, &why), 0);
    ck_assert_str_eq(out, "jane@acme.com");
    ck_assert_int_eq(address_who_normalize("<@r.example:jane@acme.com>", "+",
                                           out, sizeof out, &why), 0);
    ck_assert_str_eq(out, "jane@acme.com");
    ck_assert_int_eq(address_who_normalize("@", "+", out, sizeof out, &why),
                     -1);
    ck_assert_int_eq(address_who_normalize("@bad!.com", "+", out, sizeof out,
                                           &why), -1);
    ck_assert_int_eq(address_who_normalize("jane", "+", out, sizeof out,
                                           &why), -1);

    ck_assert_str_eq(address_domain("jane@acme.com"), "acme.com");
    ck_assert_str_eq(address_domain("\"a@b\"@acme.com"), "acme.com");
    ck_assert_str_eq(address_domain("@acme.com"), "acme.com");
}
END_TEST

static Suite *address_suite(void)
{
    Suite *s = suite_create("address");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, plain_and_case);
    tcase_add_test(tc, brackets_and_params);
    tcase_add_test(tc, source_route);
    tcase_add_test(tc, trailing_dot);
    tcase_add_test(tc, idna);
    tcase_add_test(tc, quoted_local);
    tcase_add_test(tc, subaddress);
    tcase_add_test(tc, literal);
    tcase_add_test(tc, invalid);
    tcase_add_test(tc, lengths);
    tcase_add_test(tc, domain_and_who);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(address_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
