/* test_http_session.c - the HTTP API's browser sessions (http_session.c):
 * random ids found again and only by their id, idle and absolute expiry,
 * the least recently used session out first when the table is full (a
 * rep's own first when the rep has max_sessions_per_rep),
 * logout; the pure checks of a CSRF token, an Origin and [http] admins. */
#include "untild/http_session.h"
#include <check.h>
#include <string.h>

#define IDLE 1800
#define LIFE 43200

static const struct http_session_limits lim = { IDLE, LIFE, 100 };

START_TEST(test_create_find_end)
{
    struct http_sessions *t = http_session_table_new(10);
    char id[HTTP_SESSION_HEX], csrf[HTTP_SESSION_HEX], id2[HTTP_SESSION_HEX], csrf2[HTTP_SESSION_HEX], ev[64];
    struct http_session_info s;
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(http_session_create(t, "alice@example.com", 1000, &lim, id, csrf, ev, sizeof ev), 0);
    ck_assert_str_eq(ev, "");
    ck_assert_int_eq(strlen(id), 64);
    ck_assert_int_eq(strspn(id, "0123456789abcdef"), 64);
    ck_assert_int_eq(strlen(csrf), 64);
    ck_assert_int_eq(http_session_create(t, "bob@example.com", 1000, &lim, id2, csrf2, ev, sizeof ev), 0);
    ck_assert_str_ne(id, id2);
    ck_assert_str_ne(csrf, csrf2);
    ck_assert_str_ne(id, csrf);
    ck_assert_int_eq(http_session_count(t), 2);
    ck_assert_int_eq(http_session_find(t, id, 1001, IDLE, LIFE, &s), 1);
    ck_assert_str_eq(s.rep, "alice@example.com");
    ck_assert_str_eq(s.csrf, csrf);
    ck_assert_int_eq(http_session_find(t, id2, 1001, IDLE, LIFE, &s), 1);
    ck_assert_str_eq(s.rep, "bob@example.com");
    /* the CSRF token, a changed digit, upper case, junk: no session */
    ck_assert_int_eq(http_session_find(t, csrf, 1001, IDLE, LIFE, &s), 0);
    char near[HTTP_SESSION_HEX];
    memcpy(near, id, sizeof near);
    near[10] = near[10] == '0' ? '1' : '0';
    ck_assert_int_eq(http_session_find(t, near, 1001, IDLE, LIFE, &s), 0);
    for (char *p = near; *p; p++)
        *p = (char)(*p >= 'a' ? *p - 32 : *p);
    ck_assert_int_eq(http_session_find(t, near, 1001, IDLE, LIFE, &s), 0);
    ck_assert_int_eq(http_session_find(t, "", 1001, IDLE, LIFE, &s), 0);
    ck_assert_int_eq(http_session_find(t, NULL, 1001, IDLE, LIFE, &s), 0);
    /* logout ends one session only */
    ck_assert_int_eq(http_session_end(t, id), 1);
    ck_assert_int_eq(http_session_end(t, id), 0);
    ck_assert_int_eq(http_session_find(t, id, 1002, IDLE, LIFE, &s), 0);
    ck_assert_int_eq(http_session_find(t, id2, 1002, IDLE, LIFE, &s), 1);
    ck_assert_int_eq(http_session_count(t), 1);
    /* a rep too long for the table */
    char longrep[400];
    memset(longrep, 'a', sizeof longrep - 1);
    longrep[sizeof longrep - 1] = '\0';
    ck_assert_int_eq(http_session_create(t, longrep, 1000, &lim, id, csrf, ev, sizeof ev), -1);
    http_session_table_free(t);
}
END_TEST

START_TEST(test_expiry)
{
    const struct http_session_limits short_lim = { 100, 250, 10 };
    struct http_sessions *t = http_session_table_new(10);
    char id[HTTP_SESSION_HEX], csrf[HTTP_SESSION_HEX];
    struct http_session_info s;
    ck_assert_int_eq(http_session_create(t, "alice", 0, &short_lim, id, csrf, NULL, 0), 0);
    ck_assert_int_eq(http_session_find(t, id, 99, 100, 250, &s), 1);      /* idle clock restarts at 99 */
    ck_assert_int_eq(http_session_find(t, id, 198, 100, 250, &s), 1);
    ck_assert_int_eq(http_session_find(t, id, 249, 100, 250, &s), 1);
    ck_assert_int_eq(http_session_find(t, id, 250, 100, 250, &s), 0);     /* lifetime, however used */
    ck_assert_int_eq(http_session_count(t), 0);                           /* and gone */
    ck_assert_int_eq(http_session_create(t, "alice", 0, &short_lim, id, csrf, NULL, 0), 0);
    ck_assert_int_eq(http_session_find(t, id, 100, 100, 250, &s), 0);     /* idle */
    /* a shorter idle after a reload applies to open sessions */
    ck_assert_int_eq(http_session_create(t, "alice", 0, &short_lim, id, csrf, NULL, 0), 0);
    ck_assert_int_eq(http_session_find(t, id, 60, 50, 250, &s), 0);
    http_session_table_free(t);
}
END_TEST

START_TEST(test_bounded)
{
    struct http_sessions *t = http_session_table_new(3);
    char id[4][HTTP_SESSION_HEX], csrf[HTTP_SESSION_HEX], ev[64];
    struct http_session_info s;
    const char *reps[] = { "a", "b", "c", "d" };
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(http_session_create(t, reps[i], 10 + i, &lim, id[i], csrf, ev, sizeof ev), 0);
        ck_assert_str_eq(ev, "");
    }
    ck_assert_int_eq(http_session_find(t, id[0], 20, IDLE, LIFE, &s), 1);   /* a used last: b is the oldest */
    ck_assert_int_eq(http_session_create(t, reps[3], 21, &lim, id[3], csrf, ev, sizeof ev), HTTP_SESSION_ENDED_LRU);
    ck_assert_str_eq(ev, "b");
    ck_assert_int_eq(http_session_count(t), 3);
    ck_assert_int_eq(http_session_find(t, id[1], 22, IDLE, LIFE, &s), 0);
    ck_assert_int_eq(http_session_find(t, id[0], 22, IDLE, LIFE, &s), 1);
    ck_assert_int_eq(http_session_find(t, id[2], 22, IDLE, LIFE, &s), 1);
    ck_assert_int_eq(http_session_find(t, id[3], 22, IDLE, LIFE, &s), 1);
    /* expired sessions make room before a live one is ended */
    ck_assert_int_eq(http_session_find(t, id[0], 22 + IDLE - 1, IDLE, LIFE, &s), 1);
    ck_assert_int_eq(http_session_create(t, "e", 22 + IDLE, &lim, id[1], csrf, ev, sizeof ev), 0);
    ck_assert_str_eq(ev, "");
    ck_assert_int_eq(http_session_count(t), 2);
    ck_assert_int_eq(http_session_find(t, id[0], 22 + IDLE, IDLE, LIFE, &s), 1);
    http_session_table_free(t);
    /* a table that grows past its first allocation keeps every session */
    t = http_session_table_new(100);
    char many[100][HTTP_SESSION_HEX];
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(http_session_create(t, "r", 1, &lim, many[i], csrf, ev, sizeof ev), 0);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(http_session_find(t, many[i], 2, IDLE, LIFE, &s), 1);
    http_session_table_free(t);
}
END_TEST

/* One rep's logins end that rep's oldest session, never another rep's. */
START_TEST(test_per_rep)
{
    const struct http_session_limits two = { IDLE, LIFE, 2 };
    struct http_sessions *t = http_session_table_new(3);
    char a1[HTTP_SESSION_HEX], a2[HTTP_SESSION_HEX], a3[HTTP_SESSION_HEX], b[HTTP_SESSION_HEX];
    char csrf[HTTP_SESSION_HEX], ev[64];
    struct http_session_info s;
    ck_assert_int_eq(http_session_create(t, "bob", 1, &two, b, csrf, ev, sizeof ev), 0);
    ck_assert_int_eq(http_session_create(t, "alice", 2, &two, a1, csrf, ev, sizeof ev), 0);
    ck_assert_int_eq(http_session_create(t, "Alice", 3, &two, a2, csrf, ev, sizeof ev), 0);
    /* the table is full and bob's is the oldest, but alice has two */
    ck_assert_int_eq(http_session_create(t, "alice", 4, &two, a3, csrf, ev, sizeof ev), HTTP_SESSION_ENDED_OWN);
    ck_assert_str_eq(ev, "alice");
    ck_assert_int_eq(http_session_find(t, a1, 5, IDLE, LIFE, &s), 0);
    ck_assert_int_eq(http_session_find(t, a2, 5, IDLE, LIFE, &s), 1);
    ck_assert_int_eq(http_session_find(t, a3, 5, IDLE, LIFE, &s), 1);
    ck_assert_int_eq(http_session_find(t, b, 5, IDLE, LIFE, &s), 1);
    ck_assert_int_eq(http_session_count(t), 3);
    http_session_table_free(t);
}
END_TEST

START_TEST(test_csrf_ok)
{
    const char *want = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    ck_assert_int_eq(http_session_csrf_ok(want, want), 1);
    ck_assert_int_eq(http_session_csrf_ok(want, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdee"), 0);
    ck_assert_int_eq(http_session_csrf_ok(want, "0123456789abcdef"), 0);
    ck_assert_int_eq(http_session_csrf_ok(want, ""), 0);
    ck_assert_int_eq(http_session_csrf_ok(want, NULL), 0);
    ck_assert_int_eq(http_session_csrf_ok("", ""), 0);          /* no token is never a match */
    ck_assert_int_eq(http_session_csrf_ok(NULL, NULL), 0);
}
END_TEST

START_TEST(test_is_admin)
{
    ck_assert_int_eq(http_session_is_admin("boss@example.com, ops@example.com", "ops@example.com"), 1);
    ck_assert_int_eq(http_session_is_admin("boss@example.com,ops@example.com", "Boss@Example.com"), 1);
    ck_assert_int_eq(http_session_is_admin("boss@example.com ops@example.com", "ops@example.com"), 1);
    ck_assert_int_eq(http_session_is_admin("boss@example.com", "boss@example.co"), 0);
    ck_assert_int_eq(http_session_is_admin("boss@example.com", "oss@example.com"), 0);
    ck_assert_int_eq(http_session_is_admin("boss@example.com", "boss@example.com.evil"), 0);
    ck_assert_int_eq(http_session_is_admin("boss@example.com", ""), 0);
    ck_assert_int_eq(http_session_is_admin(NULL, "boss@example.com"), 0);
    ck_assert_int_eq(http_session_is_admin(" , ", "boss"), 0);
}
END_TEST

START_TEST(test_origin_ok)
{
    ck_assert_int_eq(http_session_origin_ok(NULL, "127.0.0.1:8025", 0), 1);
    ck_assert_int_eq(http_session_origin_ok("http://127.0.0.1:8025", "127.0.0.1:8025", 0), 1);
    ck_assert_int_eq(http_session_origin_ok("HTTPS://Mail.Example.com", "mail.example.com", 1), 1);
    /* plain HTTP is loopback, maybe behind a TLS proxy: https is ours too;
     * over TLS an http page (no integrity) is not */
    ck_assert_int_eq(http_session_origin_ok("https://127.0.0.1:8025", "127.0.0.1:8025", 0), 1);
    ck_assert_int_eq(http_session_origin_ok("http://127.0.0.1:8025", "127.0.0.1:8025", 1), 0);
    ck_assert_int_eq(http_session_origin_ok("ftp://127.0.0.1:8025", "127.0.0.1:8025", 0), 0);
    ck_assert_int_eq(http_session_origin_ok("127.0.0.1:8025", "127.0.0.1:8025", 0), 0);
    ck_assert_int_eq(http_session_origin_ok("http://evil.example", "127.0.0.1:8025", 0), 0);
    ck_assert_int_eq(http_session_origin_ok("http://127.0.0.1:8026", "127.0.0.1:8025", 0), 0);
    ck_assert_int_eq(http_session_origin_ok("http://127.0.0.1:8025.evil", "127.0.0.1:8025", 0), 0);
    ck_assert_int_eq(http_session_origin_ok("null", "127.0.0.1:8025", 0), 0);
    ck_assert_int_eq(http_session_origin_ok("http://x", NULL, 0), 0);
    ck_assert_int_eq(http_session_origin_ok("http://", "", 0), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("http_session");
    TCase *t = tcase_create("core");
    tcase_add_test(t, test_create_find_end);
    tcase_add_test(t, test_expiry);
    tcase_add_test(t, test_bounded);
    tcase_add_test(t, test_per_rep);
    tcase_add_test(t, test_csrf_ok);
    tcase_add_test(t, test_is_admin);
    tcase_add_test(t, test_origin_ok);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
