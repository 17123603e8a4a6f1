/* test_http_console.c - the web console's file names and types (issue 14):
 * what may be asked for, and what it is served as. Serving itself (CSP,
 * symlinks out of the directory, the size bound) is in
 * tests/e2e/test_console.py against the real daemon. */
#include "untild/http_console.h"
#include <check.h>
#include <string.h>

START_TEST(test_names)
{
    ck_assert(http_console_name_ok("index.html"));
    ck_assert(http_console_name_ok("console.js"));
    ck_assert(http_console_name_ok("img/logo-2_x.svg"));
    ck_assert(!http_console_name_ok(""));
    ck_assert(!http_console_name_ok(".."));
    ck_assert(!http_console_name_ok("../secret.txt"));
    ck_assert(!http_console_name_ok("img/../../x.js"));
    ck_assert(!http_console_name_ok("./index.html"));
    ck_assert(!http_console_name_ok(".hidden.js"));
    ck_assert(!http_console_name_ok("img/.git/x.js"));
    ck_assert(!http_console_name_ok("/etc/passwd"));
    ck_assert(!http_console_name_ok("a//b.js"));
    ck_assert(!http_console_name_ok("img/"));
    ck_assert(!http_console_name_ok("a b.js"));
    ck_assert(!http_console_name_ok("a%2e.js"));
    ck_assert(!http_console_name_ok("a\\b.js"));
    ck_assert(!http_console_name_ok("caf\xc3\xa9.js"));
    char longname[300];
    memset(longname, 'a', sizeof longname);
    strcpy(longname + 260, ".html");   /* 265 bytes: over 255 */
    ck_assert(!http_console_name_ok(longname));
    longname[200] = '\0';
    ck_assert(http_console_name_ok(longname));   /* 200 a's, no extension: a name, not a type */
}
END_TEST

START_TEST(test_types)
{
    ck_assert_str_eq(http_console_type("index.html"), "text/html; charset=utf-8");
    ck_assert_str_eq(http_console_type("console.js"), "text/javascript; charset=utf-8");
    ck_assert_str_eq(http_console_type("console.css"), "text/css; charset=utf-8");
    ck_assert_str_eq(http_console_type("a/b.svg"), "image/svg+xml");
    ck_assert_ptr_null(http_console_type("untild.conf"));
    ck_assert_ptr_null(http_console_type("x.c"));
    ck_assert_ptr_null(http_console_type("README"));
    ck_assert_ptr_null(http_console_type("a.js/b"));
    ck_assert_ptr_null(http_console_type("x.HTML"));
    ck_assert_ptr_null(http_console_type("x.html.bak"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("http_console");
    TCase *t = tcase_create("core");
    tcase_add_test(t, test_names);
    tcase_add_test(t, test_types);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
