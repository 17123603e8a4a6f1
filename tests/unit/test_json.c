/* test_json.c - the json module: invalid UTF-8 becomes U+FFFD (counted as
 * Python's decode(errors="replace") counts), controls and terminal
 * escapes come out escaped, a window and a held entry survive a round trip
 * through text, streamed lists, and bounded strict parsing. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include "untild/json.h"
#include "untild/strbuf.h"

#define FFFD "\xef\xbf\xbd"

static char *clean(const char *s, size_t len)
{
    size_t n;
    char *c = ujson_utf8_clean(s, len, &n);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(n, memchr(s, 0, len) ? len : strlen(c));
    return c;
}

START_TEST(test_utf8_clean)
{
    static const struct { const char *in; size_t len; const char *out; } t[] = {
        { "caf\xc3\xa9 \xf0\x9f\x98\x80", 10, "caf\xc3\xa9 \xf0\x9f\x98\x80" },  /* valid stays */
        { "\xef\xbf\xbf", 3, "\xef\xbf\xbf" },                  /* a noncharacter is valid UTF-8 */
        { "\xff", 1, FFFD },
        { "\x80\x80", 2, FFFD FFFD },                           /* stray continuations */
        { "\xc0\xaf", 2, FFFD FFFD },                           /* overlong '/' */
        { "\xe0\x80\xaf", 3, FFFD FFFD FFFD },                  /* overlong, 3 bytes */
        { "\xed\xa0\x80", 3, FFFD FFFD FFFD },                  /* surrogate U+D800 */
        { "\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD },         /* above U+10FFFF */
        { "\xf8\x88\x80\x80\x80", 5, FFFD FFFD FFFD FFFD FFFD },/* 5-byte form */
        { "a\xe2\x82", 3, "a" FFFD },                           /* truncated at the end */
        { "\xc2", 1, FFFD },
        { "\xe2\x82x", 3, FFFD "x" },                           /* truncated: one error */
        { "\xf0\x9f\x98" "A", 4, FFFD "A" },
        { "a\0b", 3, "a" },                                     /* NUL is valid; C string ends */
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char *c = clean(t[i].in, t[i].len);
        ck_assert_msg(!strcmp(c, t[i].out), "case %zu", i);
        ck_assert_int_eq(ujson_utf8_valid(t[i].in, t[i].len), i <= 1 || i == 13);
        ck_assert(ujson_utf8_valid(c, strlen(c)));
        free(c);
    }
}
END_TEST

/* Serialized text of one string value (without the quotes' object). */
static char *text_of(struct json_object *o)
{
    struct strbuf b = { 0 };
    ck_assert_int_eq(ujson_append(&b, o, UJSON_PLAIN), 0);
    json_object_put(o);
    return sb_take(&b, NULL);
}

static void assert_terminal_safe(const char *s)
{
    ck_assert(ujson_utf8_valid(s, strlen(s)));
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        ck_assert_msg(*p >= 0x20 && *p != 0x7f, "raw 0x%02x in %s", *p, s);
        ck_assert_msg(!(p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f), "raw C1 in %s", s);
        ck_assert_msg(!(p[0] == 0xe2 && p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae), "raw bidi in %s", s);
        ck_assert_msg(!(p[0] == 0xe2 && p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9), "raw isolate in %s", s);
    }
}

START_TEST(test_controls_escaped)
{
    char *s = text_of(ujson_str("Hi\x1b]0;pwned\x07\x1b[2J\r\nFAKE\tROW\xc2\x9b" "31m\x7f\xe2\x80\xae"
                                "\xe2\x81\xa6\xff caf\xc3\xa9 \"q\" a\\b 1/2"));
    ck_assert_str_eq(s, "\"Hi\\u001b]0;pwned\\u0007\\u001b[2J\\r\\nFAKE\\tROW\\u009b31m\\u007f\\u202e"
                        "\\u2066" FFFD " caf\xc3\xa9 \\\"q\\\" a\\\\b 1/2\"");
    assert_terminal_safe(s);
    free(s);
    s = text_of(ujson_str("\x1b"));
    ck_assert_str_eq(s, "\"\\u001b\"");
    free(s);
    /* A key nobody cleaned is made valid at the end. */
    struct json_object *o = json_object_new_object();
    ck_assert_int_eq(ujson_add_str(o, "k\xff\x1b", "v"), 0);
    s = text_of(o);
    ck_assert_str_eq(s, "{\"k" FFFD "\\u001b\":\"v\"}");
    free(s);
    /* Pretty keeps its own line breaks. */
    struct strbuf b = { 0 };
    o = json_object_new_object();
    ck_assert_int_eq(ujson_add_str(o, "a", "x\ny") | ujson_add_str(o, "b", NULL), 0);
    ck_assert_int_eq(ujson_append(&b, o, UJSON_PRETTY), 0);
    ck_assert_str_eq(b.p, "{\n  \"a\":\"x\\ny\",\n  \"b\":null\n}");
    json_object_put(o);
    sb_free(&b);
}
END_TEST

/* What control.c writes for a window and a held entry (same keys and
 * types), with hostile values: text, then parsed back. */
#define EVIL "Re: \x1b[31mcheap\xff\xfe \xc0\xaf\xed\xa0\x80\xe2\x82 \xc2\x9b\r\n"
#define EVIL_CLEAN "Re: \x1b[31mcheap" FFFD FFFD " " FFFD FFFD FFFD FFFD FFFD FFFD " \xc2\x9b\r\n"

static struct json_object *window_like(void)
{
    struct json_object *o = json_object_new_object(), *who = json_object_new_array();
    int e = ujson_push_str(who, "jane@acme.com") | ujson_push_str(who, "J\xe4ne <j@acme.com>");
    e |= ujson_add_str(o, "id", "w1-a") | ujson_add(o, "who", who) | ujson_add_str(o, "from", NULL);
    e |= ujson_add_str(o, "until", "2027-07-01T00:00:00+02:00") | ujson_add_str(o, "rrule", NULL);
    e |= ujson_add_str(o, "tz", "Europe/Berlin") | ujson_add_str(o, "action", "hold");
    e |= ujson_add_str(o, "reason", EVIL) | ujson_add_str(o, "owner", "rep@example.com");
    e |= ujson_add_str(o, "source", "file") | ujson_add_str(o, "file", "/etc/untild/windows")
         | ujson_add_int(o, "line", 12);
    ck_assert_int_eq(e, 0);
    return o;
}

static struct json_object *held_like(void)
{
    struct json_object *o = json_object_new_object(), *rcpts = json_object_new_array();
    struct json_object *r = json_object_new_object();
    int e = ujson_add_str(r, "address", "jane@acme.com") | ujson_add_str(r, "state", "held")
            | ujson_add_str(r, "window", "w1-a") | ujson_add_str(r, "reason", EVIL) | ujson_push(rcpts, r);
    e |= ujson_add_str(o, "id", "h000001") | ujson_add_str(o, "rep", "rep@example.com")
         | ujson_add_str(o, "from", "rep@example.com") | ujson_add(o, "recipients", rcpts)
         | ujson_add_str(o, "subject", EVIL) | ujson_add_str(o, "message_id", "<a@b>")
         | ujson_add_str(o, "created", "2026-07-02T10:00:00Z") | ujson_add_str(o, "release_at", "2027-01-01T09:00:00Z")
         | ujson_add_str(o, "state", "held") | ujson_add_str(o, "next_attempt", NULL)
         | ujson_add_str(o, "released_by", NULL) | ujson_add_int(o, "size", 123456)
         | ujson_add_int(o, "attempts", 0) | ujson_add_str(o, "last_error", "550 5.7.1 \x1b[0m\x80");
    ck_assert_int_eq(e, 0);
    return o;
}

static struct json_object *round_trip(struct json_object *o)
{
    char err[128];
    struct json_object *back = NULL;
    char *s = text_of(o);
    assert_terminal_safe(s);
    ck_assert_msg(ujson_parse(s, strlen(s), 1 << 20, 8, &back, err, sizeof err) == 0, "%s: %s", err, s);
    free(s);
    ck_assert_ptr_nonnull(back);
    return back;
}

static void assert_str(struct json_object *o, const char *key, const char *want)
{
    struct json_object *v;
    ck_assert_msg(json_object_object_get_ex(o, key, &v), "no %s", key);
    if (!want)
        ck_assert_msg(v == NULL, "%s not null", key);
    else
        ck_assert_str_eq(ujson_get_str(o, key), want);
}

START_TEST(test_round_trip)
{
    struct json_object *w = round_trip(window_like()), *v;
    static const char *const keys[] = { "id", "who", "from", "until", "rrule", "tz", "action", "reason",
                                        "owner", "source", "file", "line" };
    size_t k = 0;
    json_object_object_foreach(w, key, val) {       /* the order is kept */
        (void)val;
        ck_assert_uint_lt(k, 12);
        ck_assert_str_eq(key, keys[k++]);
    }
    ck_assert_uint_eq(k, 12);
    assert_str(w, "id", "w1-a");
    assert_str(w, "from", NULL);
    assert_str(w, "tz", "Europe/Berlin");
    assert_str(w, "reason", EVIL_CLEAN);
    ck_assert(json_object_object_get_ex(w, "who", &v) && json_object_is_type(v, json_type_array));
    ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(v, 1)), "J" FFFD "ne <j@acme.com>");
    ck_assert(json_object_object_get_ex(w, "line", &v) && json_object_is_type(v, json_type_int));
    ck_assert_int_eq(json_object_get_int64(v), 12);
    json_object_put(w);

    struct json_object *h = round_trip(held_like());
    assert_str(h, "subject", EVIL_CLEAN);
    assert_str(h, "next_attempt", NULL);
    assert_str(h, "last_error", "550 5.7.1 \x1b[0m" FFFD);
    ck_assert(json_object_object_get_ex(h, "size", &v) && json_object_get_int64(v) == 123456);
    ck_assert(json_object_object_get_ex(h, "recipients", &v) && json_object_array_length(v) == 1);
    ck_assert_str_eq(ujson_get_str(json_object_array_get_idx(v, 0), "reason"), EVIL_CLEAN);
    json_object_put(h);
}
END_TEST

START_TEST(test_lists)
{
    struct strbuf b = { 0 };
    struct ujson_list l;
    ujson_list_open(&l, &b, NULL);
    ujson_list_add(&l, ujson_str("a"));
    ujson_list_add(&l, json_object_new_int(2));
    ujson_list_close(&l, NULL);
    ck_assert_str_eq(b.p, "[\"a\",\n2]");
    sb_free(&b);

    struct json_object *tail = json_object_new_object();
    ck_assert_int_eq(ujson_add_str(tail, "next", "h0\x1b"), 0);
    ujson_list_open(&l, &b, "items");
    ujson_list_add(&l, ujson_str("x"));
    ujson_list_close(&l, tail);
    ck_assert_str_eq(b.p, "{\"items\":[\"x\"],\"next\":\"h0\\u001b\"}");
    sb_free(&b);

    tail = json_object_new_object();
    ck_assert_int_eq(ujson_add_str(tail, "next", NULL), 0);
    ujson_list_open(&l, &b, "items");
    ujson_list_close(&l, tail);
    ck_assert_str_eq(b.p, "{\"items\":[],\"next\":null}");
    sb_free(&b);

    ujson_list_open(&l, &b, "items");
    ujson_list_close(&l, NULL);
    ck_assert_str_eq(b.p, "{\"items\":[]}");
    sb_free(&b);

    /* A failed build is an allocation failure, not a null. */
    ujson_list_open(&l, &b, NULL);
    ujson_list_add(&l, NULL);
    ck_assert_int_eq(b.oom, 1);
    sb_free(&b);
    ck_assert_int_eq(ujson_append(&b, NULL, UJSON_PLAIN), -1);
    ck_assert_int_eq(b.oom, 1);
    sb_free(&b);
    struct json_object *o = json_object_new_object();
    ck_assert_int_eq(ujson_add(o, "x", NULL), -1);
    json_object_put(o);
    o = json_object_new_array();
    ck_assert_int_eq(ujson_push(o, NULL), -1);
    ck_assert_uint_eq(json_object_array_length(o), 0);
    json_object_put(o);
}
END_TEST

static int parse(const char *s, size_t max_size, int depth, struct json_object **out)
{
    char err[128];
    return ujson_parse(s, strlen(s), max_size, depth, out, err, sizeof err);
}

START_TEST(test_parse_limits)
{
    struct json_object *o = NULL;
    char err[128];
    ck_assert_int_eq(parse("[[1]]", 100, 3, &o), 0);       /* json-c's count: 2 containers + a value */
    json_object_put(o);
    ck_assert_int_eq(parse("{\"a\":[1,{\"b\":2}]}", 100, 4, &o), 0);
    json_object_put(o);
    ck_assert_int_eq(parse("{\"a\":[1,{\"b\":2}]}", 100, 3, &o), -1);     /* one level too deep */
    ck_assert_ptr_null(o);
    ck_assert_int_eq(parse("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1", 100, 64, &o),
                     -1);
    ck_assert_int_eq(ujson_parse("[1,2,3]", 7, 6, 4, &o, err, sizeof err), -1);   /* too long */
    ck_assert_ptr_nonnull(strstr(err, "limit"));
    ck_assert_int_eq(ujson_parse("[1,2,3]", 7, 7, 4, &o, err, sizeof err), 0);
    json_object_put(o);
    ck_assert_int_eq(parse(" 42 ", 100, 4, &o), 0);                         /* a bare number ends */
    ck_assert_int_eq(json_object_get_int(o), 42);
    json_object_put(o);
    ck_assert_int_eq(parse("null", 100, 4, &o), 0);
    ck_assert_ptr_null(o);
    static const char *const bad[] = { "", " ", "[1,", "tru", "[1,]", "{\"a\":1}x", "[1] [2]",
                                       "\"\xff\"", "\"\xed\xa0\x80\"", "\"\xc0\xaf\"", "\"\xf4\x90\x80\x80\"", "{\"a\":01}", "[.5]" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(ujson_parse(bad[i], strlen(bad[i]), 100, 4, &o, err, sizeof err) == -1, "accepted %s", bad[i]);
        ck_assert_ptr_null(o);
        ck_assert(err[0]);
    }
    /* Not NUL-terminated, and a NUL inside is not an end. */
    ck_assert_int_eq(ujson_parse("[1]\0[2]", 7, 100, 4, &o, err, sizeof err), -1);
    ck_assert_int_eq(ujson_parse("[1]xyz", 3, 100, 4, &o, err, sizeof err), 0);
    json_object_put(o);
    /* "\u0000" parses, but is no C string. */
    ck_assert_int_eq(parse("{\"a\":\"x\\u0000y\",\"b\":\"ok\",\"c\":1}", 100, 4, &o), 0);
    ck_assert_ptr_null(ujson_get_str(o, "a"));
    ck_assert_str_eq(ujson_get_str(o, "b"), "ok");
    ck_assert_ptr_null(ujson_get_str(o, "c"));
    ck_assert_ptr_null(ujson_get_str(o, "d"));
    json_object_put(o);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("json");
    TCase *t = tcase_create("json");
    tcase_add_test(t, test_utf8_clean);
    tcase_add_test(t, test_controls_escaped);
    tcase_add_test(t, test_round_trip);
    tcase_add_test(t, test_lists);
    tcase_add_test(t, test_parse_limits);
    suite_add_tcase(s, t);
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
