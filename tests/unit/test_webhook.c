/* test_webhook.c - outgoing webhooks: the signature (against Python's
 * hmac), the backoff schedule, the event names, and the [webhook NAME]
 * sections of untild.conf with their FILE:LINE errors. */
#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "untild/config.h"
#include "untild/event_kind.h"
#include "untild/webhook.h"

/* ---------- signing ---------- */

START_TEST(test_sign_known_vector)
{
    /* python3: hmac.new(b"whsec_test", b"1700000000." + body, hashlib.sha256).hexdigest() */
    char out[WEBHOOK_SIG_MAX];
    const char *body = "{\"id\":\"evt_1\"}";
    ck_assert_int_eq(webhook_sign("whsec_test", 10, 1700000000, body, strlen(body), out, sizeof out), 0);
    ck_assert_str_eq(out, "t=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925");
    ck_assert_int_eq(webhook_sign("whsec_test", 10, 1700000000, "", 0, out, sizeof out), 0);
    ck_assert_str_eq(out, "t=1700000000,v1=5967f3c560522fa40cf2876ebc3c3a08551dd6959aaade3b413460591895bdcc");
}
END_TEST

START_TEST(test_sign_depends_on_everything)
{
    char a[WEBHOOK_SIG_MAX], b[WEBHOOK_SIG_MAX];
    ck_assert_int_eq(webhook_sign("k", 1, 100, "{}", 2, a, sizeof a), 0);
    ck_assert_int_eq(webhook_sign("k", 1, 101, "{}", 2, b, sizeof b), 0);
    ck_assert_str_ne(strchr(a, ','), strchr(b, ','));      /* the time is signed */
    ck_assert_int_eq(webhook_sign("k", 1, 100, "{ }", 3, b, sizeof b), 0);
    ck_assert_str_ne(a, b);                                  /* the body */
    ck_assert_int_eq(webhook_sign("K", 1, 100, "{}", 2, b, sizeof b), 0);
    ck_assert_str_ne(a, b);                                  /* the key */
    ck_assert_int_eq(webhook_sign("k", 1, 100, "{}", 2, b, 40), -1);   /* too small: refused */
    /* "t=1700000000,v1=" and 64 digits need 81 bytes: one short is
     * refused, not answered with a signature cut by a digit */
    ck_assert_int_eq(webhook_sign("k", 1, 1700000000, "{}", 2, b, 80), -1);
    ck_assert_int_eq(webhook_sign("k", 1, 1700000000, "{}", 2, b, 81), 0);
    ck_assert_uint_eq(strlen(b), 80);
}
END_TEST

/* ---------- backoff ---------- */

START_TEST(test_backoff_schedule)
{
    const int64_t cap = 3600 * 1000;
    /* without jitter's random part (rnd 0) the lower bound d/2, with the
     * largest it can be, d: 1 s doubling per attempt, capped */
    int64_t d = 1000;
    for (int n = 1; n <= 40; n++) {
        ck_assert_int_eq(webhook_backoff_ms(n, cap, 0), d / 2);
        ck_assert_int_eq(webhook_backoff_ms(n, cap, (uint32_t)(d / 2)), d);
        if (d < cap)
            d = d * 2 > cap ? cap : d * 2;
    }
    ck_assert_int_eq(webhook_backoff_ms(1, cap, 0), 500);
    ck_assert_int_eq(webhook_backoff_ms(2, cap, 0), 1000);
    ck_assert_int_eq(webhook_backoff_ms(5, cap, 0), 8000);
    ck_assert_int_eq(webhook_backoff_ms(13, cap, 0), 1800000);     /* 4096 s > 1 h: capped */
    ck_assert_int_eq(webhook_backoff_ms(1000, cap, 0), 1800000);   /* no overflow */
    ck_assert_int_eq(webhook_backoff_ms(3, 2000, 0), 1000);        /* retry_max = 2s */
}
END_TEST

START_TEST(test_backoff_jitter_in_range)
{
    for (uint32_t r = 0; r < 100000; r += 997) {
        int64_t v = webhook_backoff_ms(4, 3600000, r * 2654435761u);
        ck_assert(v >= 4000 && v <= 8000);
    }
}
END_TEST

/* ---------- event names ---------- */

START_TEST(test_event_names)
{
    uint32_t set = 0;
    char bad[64] = "", names[256];
    ck_assert_int_eq(event_kind_list("window.opened, message.held,message.released", &set, bad, sizeof bad), 0);
    ck_assert_uint_eq(set, (1u << EV_WINDOW_OPENED) | (1u << EV_MESSAGE_HELD) | (1u << EV_MESSAGE_RELEASED));
    ck_assert_int_eq(event_kind_list("all", &set, bad, sizeof bad), 0);
    ck_assert_uint_eq(set, EVENT_ALL);
    ck_assert_int_eq(event_kind_list("message.held, message.bounced", &set, bad, sizeof bad), -1);
    ck_assert_str_eq(bad, "message.bounced");
    ck_assert_int_eq(event_kind_of_audit("held"), EV_MESSAGE_HELD);
    ck_assert_int_eq(event_kind_of_audit("window-added"), EV_WINDOW_CREATED);
    ck_assert_int_eq(event_kind_of_audit("held-msgid"), -1);
    ck_assert_int_eq(event_kind_of_audit("denied"), -1);
    event_kind_names(names, sizeof names);
    for (int k = 0; k < EV_COUNT; k++) {
        ck_assert_ptr_nonnull(strstr(names, event_kind_name((enum event_kind)k)));
        ck_assert_int_eq(event_kind_parse(event_kind_name((enum event_kind)k)), k);
    }
}
END_TEST

/* ---------- [webhook NAME] ---------- */

static char tmp[PATH_MAX];

static void setup(void)
{
    char t[] = "/tmp/test_webhook.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(t));
    ck_assert_ptr_nonnull(realpath(t, tmp));
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st; (void)flag; (void)f;
    return remove(p);
}

static void teardown(void)
{
    nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *write_file(const char *name, const char *text, mode_t mode)
{
    static char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", tmp, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(p, mode), 0);
    return p;
}

static struct config *load(const char *text, struct config_errors *e)
{
    char conf[PATH_MAX + 64];
    snprintf(conf, sizeof conf, "%s", write_file("untild.conf", text, 0644));
    return config_load(conf, e);
}

/* An error "untild.conf:LINE: ...keyword..."? */
static int has_error(const struct config_errors *e, int line, const char *keyword)
{
    char prefix[PATH_MAX + 64];
    snprintf(prefix, sizeof prefix, "%s/untild.conf:%d: ", tmp, line);
    for (size_t i = 0; i < e->n; i++)
        if (!strncmp(e->lines[i], prefix, strlen(prefix)) && strstr(e->lines[i], keyword))
            return 1;
    for (size_t i = 0; i < e->n; i++)
        fprintf(stderr, "  error: %s\n", e->lines[i]);
    return 0;
}

START_TEST(test_config_sections)
{
    write_file("crm.secret", "s3cret\n", 0600);
    struct config_errors e = { 0 };
    struct config *c = load("[webhook crm]\n"
                            "url = https://crm.example.com/hooks/untild\n"
                            "events = window.opened, message.held, message.released\n"
                            "secret_file = crm.secret\n"
                            "[webhook local]\n"
                            "url = http://127.0.0.1:8080/x\n"
                            "secret_file = crm.secret\n"
                            "timeout = 3\n"
                            "max_age = 2h\n"
                            "retry_max = 30s\n"
                            "max_queue = 50\n", &e);
    ck_assert_uint_eq(e.n, 0);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->nwebhook, 2);
    ck_assert_str_eq(c->webhook[0].name, "crm");
    ck_assert_uint_eq(c->webhook[0].events,
                      (1u << EV_WINDOW_OPENED) | (1u << EV_MESSAGE_HELD) | (1u << EV_MESSAGE_RELEASED));
    ck_assert_ptr_nonnull(strstr(c->webhook[0].secret_file, "/crm.secret"));
    ck_assert_int_eq(c->webhook[0].secret_file[0], '/');         /* relative to the config */
    ck_assert_int_eq(c->webhook[0].timeout, 10);                 /* defaults */
    ck_assert_int_eq(c->webhook[0].max_age, 3 * 86400);
    ck_assert_int_eq(c->webhook[0].retry_max, 3600);
    ck_assert_int_eq(c->webhook[0].max_queue, 100000);
    ck_assert_uint_eq(c->webhook[1].events, EVENT_ALL);          /* no events: all */
    ck_assert_int_eq(c->webhook[1].timeout, 3);
    ck_assert_int_eq(c->webhook[1].max_age, 7200);
    ck_assert_int_eq(c->webhook[1].retry_max, 30);
    ck_assert_int_eq(c->webhook[1].max_queue, 50);
    config_free(c);
}
END_TEST

START_TEST(test_config_errors)
{
    write_file("ok.secret", "s3cret\n", 0600);
    write_file("open.secret", "s3cret\n", 0644);
    write_file("empty.secret", "\n", 0600);
    struct config_errors e = { 0 };
    struct config *c = load("[webhook a]\n"                                   /* 1 */
                            "url = https://a.example/\n"
                            "events = message.held, message.bounced\n"       /* 3 */
                            "secret_file = ok.secret\n"
                            "[webhook b]\n"                                   /* 5: no url */
                            "secret_file = nothere.secret\n"                 /* 6 */
                            "[webhook c]\n"                                   /* 7: no secret_file */
                            "url = http://crm.example.com/hook\n"            /* 8 */
                            "colour = blue\n"                                 /* 9 */
                            "[webhook a]\n"                                   /* 10 */
                            "url = ftp://a.example/\n"                        /* 11: checked */
                            "[webhook]\n"                                     /* 12 */
                            "[webhook d]\n"
                            "url = https://d.example/\n"
                            "secret_file = open.secret\n"                     /* 15 */
                            "timeout = 0\n"                                   /* 16 */
                            "max_age = soon\n"                                /* 17 */
                            "[webhook e]\n"
                            "url = https://e.example/\n"
                            "secret_file = empty.secret\n"                    /* 20 */
                            "url = https://e2.example/\n", &e);              /* 21 */
    ck_assert_ptr_null(c);
    ck_assert(has_error(&e, 3, "unknown event \"message.bounced\""));
    ck_assert(has_error(&e, 5, "[webhook b] needs url"));
    ck_assert(has_error(&e, 6, "nothere.secret"));
    ck_assert(has_error(&e, 7, "[webhook c] needs secret_file"));
    ck_assert(has_error(&e, 8, "http:// is allowed only to a loopback host"));
    ck_assert(has_error(&e, 9, "unknown key 'colour'"));
    ck_assert(has_error(&e, 10, "duplicate section [webhook a]"));
    ck_assert(has_error(&e, 12, "needs a name"));
    ck_assert(has_error(&e, 15, "chmod 600"));
    ck_assert(has_error(&e, 16, "timeout"));
    ck_assert(has_error(&e, 17, "max_age"));
    ck_assert(has_error(&e, 20, "first line is empty"));
    ck_assert(has_error(&e, 21, "duplicate key 'url'"));
    ck_assert_uint_eq(e.n, 13);   /* line 11 is in a duplicate section: its url is not checked */
    config_errors_free(&e);
}
END_TEST

START_TEST(test_config_loopback_http)
{
    write_file("ok.secret", "s3cret\n", 0600);
    struct config_errors e = { 0 };
    struct config *c = load("[webhook a]\nurl = http://localhost:9000/h\nsecret_file = ok.secret\n"
                            "[webhook b]\nurl = http://[::1]:9000/h\nsecret_file = ok.secret\n"
                            "[webhook c]\nurl = HTTPS://crm.example.com\nsecret_file = ok.secret\n", &e);
    ck_assert_uint_eq(e.n, 0);
    ck_assert_ptr_nonnull(c);
    config_free(c);
}
END_TEST

static Suite *webhook_suite(void)
{
    Suite *s = suite_create("webhook");
    TCase *t = tcase_create("pure");
    tcase_add_test(t, test_sign_known_vector);
    tcase_add_test(t, test_sign_depends_on_everything);
    tcase_add_test(t, test_backoff_schedule);
    tcase_add_test(t, test_backoff_jitter_in_range);
    tcase_add_test(t, test_event_names);
    suite_add_tcase(s, t);
    t = tcase_create("config");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_config_sections);
    tcase_add_test(t, test_config_errors);
    tcase_add_test(t, test_config_loopback_http);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(webhook_suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
