/* test_tokens.c - API tokens (issue 14): names, scopes, the hash, the
 * constant-time compare, and the store's api_tokens table (schema v7,
 * also when a v6 database is opened). */
#include "untild/store.h"
#include "untild/store_tok.h"
#include "untild/tokens.h"
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char tmpdir[256];

static int rm_cb(const char *p, const struct stat *sb, int type, struct FTW *f)
{
    (void)sb; (void)type; (void)f;
    return remove(p);
}

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_tokens.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

START_TEST(test_names)
{
    ck_assert(tokens_name_ok("crm"));
    ck_assert(tokens_name_ok("hubspot.prod_2-a"));
    ck_assert(!tokens_name_ok(""));
    ck_assert(!tokens_name_ok(NULL));
    ck_assert(!tokens_name_ok("a b"));
    ck_assert(!tokens_name_ok("a\"b"));
    char long_name[80];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    ck_assert(!tokens_name_ok(long_name));
}
END_TEST

START_TEST(test_scopes)
{
    char out[300], err[256];
    ck_assert_int_eq(tokens_scope_parse("admin", "+", out, sizeof out, err, sizeof err), 0);
    ck_assert_str_eq(out, "admin");
    ck_assert_int_eq(tokens_scope_parse("rep:Alice@Example.COM", "+", out, sizeof out, err, sizeof err), 0);
    ck_assert_str_eq(out, "rep:alice@example.com");
    ck_assert_int_eq(tokens_scope_parse("rep:alice", "+", out, sizeof out, err, sizeof err), 0);
    ck_assert_str_eq(out, "rep:alice");
    ck_assert_int_eq(tokens_scope_parse("rep:", "+", out, sizeof out, err, sizeof err), -1);
    ck_assert_int_eq(tokens_scope_parse("root", "+", out, sizeof out, err, sizeof err), -1);
    ck_assert(strstr(err, "admin or rep:WHO") != NULL);
    ck_assert_int_eq(tokens_scope_parse(NULL, "+", out, sizeof out, err, sizeof err), -1);
    ck_assert_int_eq(tokens_scope_parse("rep:a b", "+", out, sizeof out, err, sizeof err), -1);
    ck_assert_int_eq(tokens_scope_parse("rep:@@x", "+", out, sizeof out, err, sizeof err), -1);
}
END_TEST

START_TEST(test_hash_and_compare)
{
    char h[TOKEN_HASH_HEX];
    ck_assert_int_eq(tokens_hash("abc", h), 0);
    ck_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ck_assert(tokens_equal("abcdef", "abcdef", 6));
    ck_assert(!tokens_equal("abcdef", "abcdeX", 6));
    ck_assert(!tokens_equal("Xbcdef", "abcdef", 6));
    ck_assert(tokens_equal("abcX", "abcY", 3));
}
END_TEST

static int collect(const struct store_token *t, void *arg)
{
    char *out = arg;
    strcat(out, t->name);
    strcat(out, "=");
    strcat(out, t->scope);
    strcat(out, ";");
    return 0;
}

START_TEST(test_store_tokens)
{
    struct store *st = store_open(tmpdir);
    char got[512] = "";
    ck_assert_ptr_nonnull(st);
    struct store_token a = { "crm", "00", "admin", "admin", 100 };
    struct store_token b = { "alice", "11", "rep:alice@example.com", "admin", 101 };
    ck_assert_int_eq(store_token_add(st, &a), 0);
    ck_assert_int_eq(store_token_add(st, &b), 0);
    errno = 0;
    ck_assert_int_eq(store_token_add(st, &a), -1);
    ck_assert_int_eq(errno, EEXIST);
    ck_assert_int_eq(store_token_foreach(st, collect, got), 0);
    ck_assert_str_eq(got, "alice=rep:alice@example.com;crm=admin;");
    ck_assert_int_eq(store_token_del(st, "crm"), 0);
    errno = 0;
    ck_assert_int_eq(store_token_del(st, "crm"), -1);
    ck_assert_int_eq(errno, ENOENT);
    got[0] = '\0';
    ck_assert_int_eq(store_token_foreach(st, collect, got), 0);
    ck_assert_str_eq(got, "alice=rep:alice@example.com;");
    store_close(st);
}
END_TEST

/* A database left by a version-6 untild gains the table on open. */
START_TEST(test_migrate_v6)
{
    struct store *st = store_open(tmpdir);
    char path[300];
    sqlite3 *db;
    ck_assert_ptr_nonnull(st);
    store_close(st);
    snprintf(path, sizeof path, "%s/untild.db", tmpdir);
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "DROP TABLE api_tokens; PRAGMA user_version = 6", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    st = store_open(tmpdir);
    ck_assert_ptr_nonnull(st);
    struct store_token a = { "crm", "00", "admin", "admin", 100 };
    ck_assert_int_eq(store_token_add(st, &a), 0);
    store_close(st);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tokens");
    TCase *t = tcase_create("core");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_names);
    tcase_add_test(t, test_scopes);
    tcase_add_test(t, test_hash_and_compare);
    tcase_add_test(t, test_store_tokens);
    tcase_add_test(t, test_migrate_v6);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
