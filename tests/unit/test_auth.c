/* test_auth.c - passwd checks (known and unknown users cost the same),
 * the worker pool reporting on the loop thread, and failure counting. */
#include <check.h>
#include <crypt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "untild/auth.h"
#include "untild/log.h"
#include "untild/loop.h"

static char file[64];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A passwd file with a deliberately slow hash (sha512-crypt, many rounds). */
static void setup(void)
{
    struct crypt_data cd = { 0 };
    const char *h = crypt_r("s3cret", "$6$rounds=200000$abcdefgh12345678$", &cd);
    ck_assert_ptr_nonnull(h);
    snprintf(file, sizeof file, "/tmp/test_auth.XXXXXX");
    int fd = mkstemp(file);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# reps\nalice@example.com:%s\n", h);
    fclose(f);
}

static void teardown(void)
{
    unlink(file);
}

START_TEST(test_check)
{
    ck_assert_int_eq(auth_passwd_check(file, "alice@example.com", "s3cret"), 1);
    ck_assert_int_eq(auth_passwd_check(file, "alice@example.com", "wrong"), 0);
    ck_assert_int_eq(auth_passwd_check(file, "bob@example.com", "s3cret"), 0);
    ck_assert_int_eq(auth_passwd_check(file, "alice", "s3cret"), 0);    /* a prefix is not a user */
    ck_assert_int_eq(auth_passwd_check("/nonexistent/passwd", "alice@example.com", "s3cret"), -1);
}
END_TEST

/* An unknown user takes as long as a known one with a wrong password
 * (it returned at once: timing told which users exist). */
START_TEST(test_unknown_user_costs_a_hash)
{
    double best_known = 1e9, best_unknown = 1e9;
    for (int i = 0; i < 3; i++) {
        double t = now_s();
        auth_passwd_check(file, "alice@example.com", "wrong");
        double k = now_s() - t;
        t = now_s();
        auth_passwd_check(file, "nobody@example.com", "wrong");
        double un = now_s() - t;
        if (k < best_known)
            best_known = k;
        if (un < best_unknown)
            best_unknown = un;
    }
    ck_assert_msg(best_known > 0.01, "the test hash is too fast to compare (%.4f s)", best_known);
    ck_assert_msg(best_unknown > best_known * 0.5 && best_unknown < best_known * 2,
                  "unknown user %.4f s, known user %.4f s", best_unknown, best_known);
}
END_TEST

struct result {
    pthread_t loop_thread;
    int verdict[4];
    int n;
    int on_loop;
    struct loop *l;
};

static void done(void *arg, int verdict)
{
    struct result *r = arg;
    r->on_loop += pthread_equal(pthread_self(), r->loop_thread) != 0;
    r->verdict[r->n++] = verdict;
    if (r->n == 3)
        loop_stop(r->l);
}

/* Checks run on the workers; verdicts arrive on the loop thread. */
START_TEST(test_pool)
{
    struct result r = { 0 };
    r.l = loop_new();
    r.loop_thread = pthread_self();
    struct auth_pool *p = auth_pool_new(r.l, 2);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(auth_pool_submit(p, file, "alice@example.com", "s3cret", done, &r), 0);
    ck_assert_int_eq(auth_pool_submit(p, file, "alice@example.com", "nope", done, &r), 0);
    ck_assert_int_eq(auth_pool_submit(p, file, "x@example.com", "nope", done, &r), 0);
    loop_run(r.l, NULL, NULL);
    auth_pool_free(p);
    loop_run_pending(r.l);
    ck_assert_int_eq(r.n, 3);
    ck_assert_int_eq(r.on_loop, 3);
    ck_assert_int_eq(r.verdict[0] + r.verdict[1] + r.verdict[2], 1);
    loop_free(r.l);
}
END_TEST

START_TEST(test_limit)
{
    struct auth_limit *a = auth_limit_new(4);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(auth_limit_over(a, "addr:192.0.2.1", 1000, 3, 600000), 0);
        auth_limit_fail(a, "addr:192.0.2.1", 1000 + i, 600000);
    }
    ck_assert_int_eq(auth_limit_over(a, "addr:192.0.2.1", 2000, 3, 600000), 1);
    ck_assert_int_eq(auth_limit_over(a, "addr:192.0.2.2", 2000, 3, 600000), 0);
    ck_assert_int_eq(auth_limit_over(a, "addr:192.0.2.1", 2000, 0, 600000), 0); /* 0: no limit */
    /* the window passes */
    ck_assert_int_eq(auth_limit_over(a, "addr:192.0.2.1", 1000 + 600000, 3, 600000), 0);
    /* the table stays at 4 keys: the oldest goes, the newest are kept */
    char key[32];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "user:u%d", i);
        for (int k = 0; k < 3; k++)
            auth_limit_fail(a, key, 5000 + i, 600000);
    }
    ck_assert_int_eq(auth_limit_over(a, "user:u99", 6000, 3, 600000), 1);
    ck_assert_int_eq(auth_limit_over(a, "user:u96", 6000, 3, 600000), 1);
    ck_assert_int_eq(auth_limit_over(a, "user:u0", 6000, 3, 600000), 0);
    auth_limit_free(a);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("auth");
    TCase *t = tcase_create("core");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_check);
    tcase_add_test(t, test_unknown_user_costs_a_hash);
    tcase_add_test(t, test_pool);
    tcase_add_test(t, test_limit);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    log_set_level(ULOG_FATAL);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
