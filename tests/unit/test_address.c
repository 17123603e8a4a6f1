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
    /* a quoted '@' routes on: see routed() */
    NORM("\"a@b\"@acme.com", "+", "a@b");
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
    /* a window written as a routed address names the address it routes to */
    ck_assert_int_eq(address_who_normalize("Jane%Acme.com@relay.example", "+", out,
                                           sizeof out, &why), 0);
    ck_assert_str_eq(out, "jane@acme.com");
    ck_assert_int_eq(address_who_normalize("acme.com!jane@relay.example", "+", out,
                                           sizeof out, &why), 0);
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

/* norm + the facts found */
static unsigned facts_of(const char *in, const char **out)
{
    static char buf[ADDR_MAX];
    unsigned f = 0xffu;
    const char *why = NULL;
    int rc = address_normalize_ex(in, "+", buf, sizeof buf, &f, &why);
    *out = rc == 0 ? buf : NULL;
    if (rc != 0)
        ck_assert_ptr_nonnull(why);
    return f;
}

#define ROUTED(in, want)                                                  \
    do {                                                                  \
        const char *o_;                                                   \
        ck_assert_uint_eq(facts_of(in, &o_) & ADDRESS_ROUTED, ADDRESS_ROUTED); \
        ck_assert_str_eq(o_, want);                                       \
    } while (0)
#define ROUTED_BAD(in)                                                    \
    do {                                                                  \
        const char *o_;                                                   \
        ck_assert_uint_eq(facts_of(in, &o_) & ADDRESS_ROUTED, ADDRESS_ROUTED); \
        ck_assert_ptr_null(o_);                                           \
    } while (0)

/* Forms an upstream rewrites into another address resolve to the address
 * they finally route to (Postfix's order: quoted '@' rightmost, then
 * "site!rest" leftmost '!', then "rest%site" rightmost '%'). The finals
 * here are the ones a real Postfix delivered to (tests/e2e/test_bypass.py). */
START_TEST(routed)
{
    /* percent hack */
    ROUTED("jane%acme.com@relay.example", "jane@acme.com");
    ROUTED("<Jane%ACME.com@Relay.Example>", "jane@acme.com");
    ROUTED("jane%acme.com%hop.example@relay.example", "jane@acme.com");
    ROUTED("a%b.example%c.example%d.example@relay.example", "a@b.example");
    ROUTED("jane%acme.com.@relay.example", "jane@acme.com");
    ROUTED("jane+tag%acme.com@relay.example", "jane@acme.com");
    ROUTED("jane%b\xc3\xbc" "cher.example@relay.example", "jane@xn--bcher-kva.example");
    /* bang paths */
    ROUTED("acme.com!jane@relay.example", "jane@acme.com");
    ROUTED("hop.example!acme.com!jane@relay.example", "jane@acme.com");
    ROUTED("x.example!y.example!jane@relay.example", "jane@y.example");
    /* mixed: the bang goes first (Postfix), whichever side the '%' is */
    ROUTED("hop.example!jane%acme.com@relay.example", "jane@acme.com");
    ROUTED_BAD("jane%acme.com!x@relay.example");   /* site "jane%acme.com" */
    /* quoted local parts are opened (resolve_dequoted_address) */
    ROUTED("\"jane@acme.com\"@relay.example", "jane@acme.com");
    ROUTED("\"jane%acme.com\"@relay.example", "jane@acme.com");
    ROUTED("\"acme.com!jane\"@relay.example", "jane@acme.com");
    ROUTED("\"jane@acme.com\"@relay.example", "jane@acme.com");
    ROUTED("\"jane\\%acme.com\"@relay.example", "jane@acme.com");
    ROUTED("\"john doe%acme.com\"@relay.example", "\"john doe\"@acme.com");
    ROUTED_BAD("\"x@jane%acme.com\"@relay.example");   /* site "jane%acme.com" */
    /* a source route in front changes nothing */
    ROUTED("<@relay.example:jane%acme.com@relay.example>", "jane@acme.com");
    /* routed but resolving to nothing valid: still known as routed */
    ROUTED_BAD("acme.com!jane");
    ROUTED_BAD("jane%acme.com");
    ROUTED_BAD("jane%@relay.example");
    ROUTED_BAD("%acme.com@relay.example");
    ROUTED_BAD("!jane@relay.example");
    ROUTED_BAD("jane!@relay.example");
    ROUTED_BAD("jane%acme..com@relay.example");
    ROUTED_BAD("\"jane@\"@relay.example");
    /* address_normalize gives the same final address */
    NORM("jane%acme.com@relay.example", "+", "jane@acme.com");
    NORM("acme.com!jane@relay.example", "+", "jane@acme.com");
}
END_TEST

/* The spellings that are not routed report no route. */
START_TEST(facts)
{
    const char *o;
    ck_assert_uint_eq(facts_of("jane@acme.com", &o), 0);
    ck_assert_uint_eq(facts_of("\"john doe\"@acme.com", &o), 0);
    ck_assert_uint_eq(facts_of("jane+x@acme.com.", &o), 0);
    ck_assert_uint_eq(facts_of("<@r.example:jane@acme.com>", &o), ADDRESS_SOURCE_ROUTE);
    ck_assert_str_eq(o, "jane@acme.com");
    ck_assert_uint_eq(facts_of("jane@[192.0.2.1]", &o), ADDRESS_LITERAL);
    ck_assert_str_eq(o, "jane@[192.0.2.1]");
    ck_assert_uint_eq(facts_of("jane%[192.0.2.1]@relay.example", &o), 0);  /* '[' is no atext */
    ck_assert_ptr_null(o);
    ck_assert_uint_eq(facts_of("\"jane@[192.0.2.1]\"@relay.example", &o),
                      ADDRESS_ROUTED | ADDRESS_LITERAL);
    ck_assert_str_eq(o, "jane@[192.0.2.1]");
    ck_assert_uint_eq(facts_of("jane", &o), 0);
    ck_assert_ptr_null(o);
    /* facts may be NULL */
    char buf[ADDR_MAX];
    ck_assert_int_eq(address_normalize_ex("a%b.example@c.example", "", buf, sizeof buf, NULL,
                                          NULL), 0);
    ck_assert_str_eq(buf, "a@b.example");
}
END_TEST

static const char *internal(const char *in)
{
    static char buf[ADDR_MAX];
    ck_assert_int_eq(address_from_internal(in, buf, sizeof buf), 0);
    return buf;
}

/* Postfix's policy protocol hands over internal (unquoted) forms. */
START_TEST(from_internal)
{
    ck_assert_str_eq(internal("jane@acme.com"), "jane@acme.com");
    ck_assert_str_eq(internal("<jane@acme.com>"), "<jane@acme.com>");
    ck_assert_str_eq(internal("john doe@acme.com"), "\"john doe\"@acme.com");
    ck_assert_str_eq(internal("jane@acme.com@relay.example"), "\"jane@acme.com\"@relay.example");
    ck_assert_str_eq(internal("jane%acme.com@relay.example"), "jane%acme.com@relay.example");
    ck_assert_str_eq(internal("acme.com!jane"), "acme.com!jane");
    ck_assert_str_eq(internal("postmaster"), "postmaster");
    ck_assert_str_eq(internal("a\"b\\c@x.example"), "\"a\\\"b\\\\c\"@x.example");
    ck_assert_str_eq(internal("@r.example:john doe@acme.com"), "@r.example:\"john doe\"@acme.com");
    char small[8];
    ck_assert_int_eq(address_from_internal("jane@acme.com", small, sizeof small), -1);
    ck_assert_int_eq(address_from_internal("a@b", small, 4), 0);
    ck_assert_int_eq(address_from_internal("a@b", small, 3), -1);
    /* and each normalises to what the envelope meant */
    char out[ADDR_MAX];
    unsigned f;
    ck_assert_int_eq(address_normalize_ex(internal("jane@acme.com@relay.example"), "+", out,
                                          sizeof out, &f, NULL), 0);
    ck_assert_str_eq(out, "jane@acme.com");
    ck_assert_uint_eq(f & ADDRESS_ROUTED, ADDRESS_ROUTED);
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
    tcase_add_test(tc, routed);
    tcase_add_test(tc, facts);
    tcase_add_test(tc, from_internal);
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
