/* test_http_api.c - the HTTP API's pure request layer (http_api_req.c):
 * routes to control socket words, 404/405/400 refusals with the field,
 * the control socket's refusals as HTTP, error JSON, and the held
 * message preview (headers, first text part, valid UTF-8). */
#include "untild/http_api_int.h"
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct api_query noq;

static void joined(const struct api_call *c, char *out, size_t outsz)
{
    out[0] = '\0';
    for (int i = 0; i < c->argc; i++) {
        strncat(out, i ? " " : "", outsz - strlen(out) - 1);
        strncat(out, c->argv[i], outsz - strlen(out) - 1);
    }
}

static void route_ok(const char *m, const char *path, const struct api_query *q, const char *body,
                     const char *want, enum api_op op)
{
    struct api_call c;
    struct api_err e;
    char got[1024];
    ck_assert_msg(api_route(m, path, q, body, strlen(body), &c, &e) == 0, "%s %s: %d %s", m, path, e.status,
                  e.reason);
    joined(&c, got, sizeof got);
    ck_assert_str_eq(got, want);
    ck_assert_int_eq(c.op, op);
    api_call_free(&c);
}

static void route_err(const char *m, const char *path, const struct api_query *q, const char *body, int status,
                      const char *field, const char *reason)
{
    struct api_call c;
    struct api_err e;
    ck_assert_msg(api_route(m, path, q, body, strlen(body), &c, &e) == -1, "%s %s accepted", m, path);
    ck_assert_int_eq(e.status, status);
    ck_assert_str_eq(e.field, field);
    ck_assert_msg(strstr(e.reason, reason) != NULL, "%s %s: reason \"%s\"", m, path, e.reason);
    ck_assert_int_eq(c.argc, 0);
}

START_TEST(test_routes)
{
    route_ok("GET", "/api/v1/status", &noq, "", "status --json", API_STATUS);
    route_ok("GET", "/api/v1/windows", &noq, "", "window list --json --limit 100", API_WINDOWS_LIST);
    struct api_query pg = { .limit = "2", .after = "w7" };
    route_ok("GET", "/api/v1/held", &pg, "", "held list --json --limit 2 --after w7", API_HELD_LIST);
    route_ok("GET", "/api/v1/held/abc123", &noq, "", "held show abc123 --json", API_HELD_SHOW);
    route_ok("POST", "/api/v1/held/abc123/release", &noq, "", "held release abc123", API_HELD_RELEASE);
    route_ok("POST", "/api/v1/held/abc123/release", &noq, "{\"reason\":\"asked\"}",
             "held release abc123 --reason asked", API_HELD_RELEASE);
    route_ok("POST", "/api/v1/held/abc123/discard", &noq, " {} ", "held discard abc123", API_HELD_DISCARD);
    route_ok("DELETE", "/api/v1/windows/w12", &noq, "", "window end w12", API_WINDOWS_END);
    struct api_query ck = { .address = "jane@acme.com", .at = "2027-01-01" };
    route_ok("GET", "/api/v1/check", &ck, "", "check jane@acme.com --json --at 2027-01-01", API_CHECK);
    route_ok("POST", "/api/v1/windows", &noq,
             "{\"who\":\"jane@acme.com\",\"until\":\"2027-06-01\",\"reason\":\"renewal talks\",\"action\":\"flag\"}",
             "window add jane@acme.com --until 2027-06-01 --reason renewal talks --action flag --json",
             API_WINDOWS_ADD);
    /* issue 14, second part */
    route_ok("PATCH", "/api/v1/windows/w12", &noq, "{\"until\":\"2027-09-01\",\"reason\":\"later\"}",
             "window change w12 --until 2027-09-01 --reason later --json", API_WINDOWS_CHANGE);
    struct api_query csv = { .ctype = "text/csv; charset=utf-8" };
    route_ok("POST", "/api/v1/windows/import", &csv, "a@b.com,never,x\n", "window import a@b.com,never,x\n --json",
             API_WINDOWS_IMPORT);
    struct api_query who = { .who = "jane@acme.com" };
    route_ok("DELETE", "/api/v1/windows", &who, "", "window end jane@acme.com", API_WINDOWS_END_WHO);
    route_ok("GET", "/api/v1/check", &who, "", "check jane@acme.com --json", API_CHECK);
    route_ok("POST", "/api/v1/check", &noq, "{\"who\":[\"a@b.com\",\"c@d.com\"],\"at\":\"july\"}",
             "check --json --at july --who a@b.com c@d.com", API_CHECK_MANY);
    struct api_query since = { .since = "7", .days = "30" };
    route_ok("GET", "/api/v1/report", &since, "", "report --json --since 7", API_REPORT);
    route_ok("GET", "/api/v1/followups", &since, "", "followups --json --days 30", API_FOLLOWUPS);
    route_ok("GET", "/api/v1/cadence", &noq, "", "cadence list --json", API_CADENCE);
}
END_TEST

START_TEST(test_refusals_part2)
{
    route_err("PATCH", "/api/v1/windows/w1", &noq, "{}", 400, "", "nothing to change");
    route_err("PATCH", "/api/v1/windows/w1", &noq, "{\"who\":\"a@b.com\"}", 400, "who", "cannot be changed");
    route_err("PATCH", "/api/v1/windows/w1", &noq, "{\"until\":5}", 400, "until", "string");
    route_err("PATCH", "/api/v1/windows", &noq, "{}", 405, "", "POST");
    struct api_query json = { .ctype = "application/json" }, csvx = { .ctype = "text/csvx" },
                     csv = { .ctype = "text/csv" };
    route_err("POST", "/api/v1/windows/import", &json, "a,b,c", 415, "", "text/csv");
    route_err("POST", "/api/v1/windows/import", &csvx, "a,b,c", 415, "", "text/csv");
    route_err("POST", "/api/v1/windows/import", &noq, "a,b,c", 415, "", "text/csv");
    route_err("GET", "/api/v1/windows/import", &csv, "", 405, "", "POST");
    route_err("DELETE", "/api/v1/windows", &noq, "", 400, "who", "one address");
    struct api_query two = { .who = "a@b.com,c@d.com" };
    route_err("DELETE", "/api/v1/windows", &two, "", 400, "who", "one address");
    route_err("POST", "/api/v1/check", &noq, "{\"who\":\"a@b.com\"}", 400, "who", "array");
    route_err("POST", "/api/v1/check", &noq, "{\"who\":[]}", 400, "who", "array");
    route_err("POST", "/api/v1/check", &noq, "{\"who\":[1]}", 400, "who", "item 0");
    route_err("POST", "/api/v1/check", &noq, "{\"who\":[\"--json\"]}", 400, "who", "item 0");
    route_err("POST", "/api/v1/check", &noq, "{\"who\":[\"a@b.com\"],\"at\":\"--x\"}", 400, "at", "--");
    char many[4096] = "{\"who\":[";
    for (int i = 0; i <= API_CHECK_MAX; i++)
        strcat(many, i ? ",\"a@b.c\"" : "\"a@b.c\"");
    strcat(many, "]}");
    route_err("POST", "/api/v1/check", &noq, many, 400, "who", "at most 100");
    struct api_query bad = { .since = "-1" }, bad2 = { .days = "x" };
    route_err("GET", "/api/v1/report", &bad, "", 400, "since", "number");
    route_err("GET", "/api/v1/followups", &bad2, "", 400, "days", "number");
    route_err("POST", "/api/v1/report", &noq, "", 405, "", "GET");
}
END_TEST

START_TEST(test_refusals)
{
    route_err("GET", "/", &noq, "", 404, "", "/api/v1/");
    route_err("GET", "/api/v1/", &noq, "", 404, "", "no such");
    route_err("GET", "/api/v1/windowsx", &noq, "", 404, "", "no such");
    route_err("GET", "/api/v1/held/a b", &noq, "", 404, "", "no such");
    route_err("GET", "/api/v1/held/x/y", &noq, "", 404, "", "no such");
    route_err("DELETE", "/api/v1/status", &noq, "", 405, "", "GET");
    route_err("PUT", "/api/v1/windows", &noq, "", 405, "", "GET, POST");
    route_err("GET", "/api/v1/held/x/release", &noq, "", 405, "", "POST");
    struct api_query big = { .limit = "5000" }, neg = { .limit = "-1" }, cur = { .after = "../x" };
    route_err("GET", "/api/v1/held", &big, "", 400, "limit", "1 to 1000");
    route_err("GET", "/api/v1/windows", &neg, "", 400, "limit", "1 to 1000");
    route_err("GET", "/api/v1/held", &cur, "", 400, "after", "next");
    route_err("GET", "/api/v1/check", &noq, "", 400, "address", "required");
    struct api_query dash = { .address = "--json" };
    route_err("GET", "/api/v1/check", &dash, "", 400, "address", "--");
    route_err("POST", "/api/v1/windows", &noq, "{\"who\":", 400, "", "malformed JSON");
    route_err("POST", "/api/v1/windows", &noq, "{} {}", 400, "", "after the object");
    route_err("POST", "/api/v1/windows", &noq, "\"x\"", 400, "", "JSON object");
    route_err("POST", "/api/v1/windows", &noq, "", 400, "", "required");
    route_err("POST", "/api/v1/windows", &noq, "{\"who\":1,\"until\":\"x\"}", 400, "who", "string");
    route_err("POST", "/api/v1/windows", &noq, "{\"who\":\"a@b\"}", 400, "until", "required");
    route_err("POST", "/api/v1/windows", &noq, "{\"who\":\"a@b\",\"until\":null}", 400, "until", "string");
    route_err("POST", "/api/v1/windows", &noq, "{\"who\":\"a b\",\"until\":\"x\"}", 400, "who", "spaces");
    route_err("POST", "/api/v1/windows", &noq, "{\"who\":\"a@b\",\"until\":\"x\",\"x\":1}", 400, "", "unknown field");
    route_err("POST", "/api/v1/windows", &noq, "{\"who\":\"a@b\",\"until\":\"x\\u0000y\"}", 400, "until", "NUL");
    route_err("POST", "/api/v1/windows", &noq, "{\"who\":\"a@b\",\"until\":\"x\",\"tz\":\"--owner\"}", 400, "tz",
              "--");
    route_err("POST", "/api/v1/held/m1/release", &noq, "{\"reason\":3}", 400, "reason", "string");
    route_err("POST", "/api/v1/held/m1/release", &noq, "{\"why\":\"x\"}", 400, "", "unknown field");
    route_err("POST", "/api/v1/held/m1/discard", &noq, "{\"x\":1}", 400, "", "no fields");
    route_err("DELETE", "/api/v1/windows/w1", &noq, "[", 400, "", "malformed");
}
END_TEST

START_TEST(test_control_refusals)
{
    struct api_err e;
    api_err_from_control(API_WINDOWS_ADD, 2, "window add: --until is in the past\n", &e);
    ck_assert_int_eq(e.status, 400);
    ck_assert_str_eq(e.field, "until");
    ck_assert_str_eq(e.reason, "--until is in the past");
    api_err_from_control(API_HELD_SHOW, 4, "held: m1 is not yours\n", &e);
    ck_assert_int_eq(e.status, 403);
    ck_assert_str_eq(e.error, "forbidden");
    ck_assert_str_eq(e.field, "");
    api_err_from_control(API_HELD_RELEASE, 5, "held: no held message m1\n", &e);
    ck_assert_int_eq(e.status, 404);
    api_err_from_control(API_HELD_DISCARD, 1, "held discard: too late: m1 is being delivered now\n", &e);
    ck_assert_int_eq(e.status, 409);
    api_err_from_control(API_CHECK, 2, "check: x: no @\n", &e);
    ck_assert_str_eq(e.field, "address");
    api_err_from_control(API_STATUS, 1, NULL, &e);
    ck_assert_int_eq(e.status, 500);

    char *j = api_err_json(&(struct api_err){ 400, "bad request", "who", "who: \"quoted\"", NULL });
    json_object *o = json_tokener_parse(j);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "field")), "who");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "reason")), "who: \"quoted\"");
    json_object_put(o);
    free(j);
    j = api_err_json(&(struct api_err){ 404, "not found", "", "no such resource", NULL });
    ck_assert_ptr_nonnull(strstr(j, "\"field\":null"));
    free(j);
}
END_TEST

static json_object *preview(const char *spool)
{
    json_object *o = json_object_new_object();
    api_preview(spool, strlen(spool), o);
    return o;
}

START_TEST(test_preview_plain)
{
    json_object *o = preview("untild-spool 1\nid: m1\nrep: r@x\n\n"
                             "From: rep@example.com\r\nSubject: Renewal\r\n  prices\r\nX-Bad: a\x01\xff" "b\r\n\r\n"
                             "Dear Jane,\r\nthe new prices.\r\n\nend m1\n");
    json_object *h = json_object_object_get(o, "headers");
    ck_assert_int_eq(json_object_array_length(h), 3);
    json_object *s = json_object_array_get_idx(h, 1);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(s, "name")), "Subject");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(s, "value")), "Renewal  prices");
    s = json_object_array_get_idx(h, 2);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(s, "value")), "a??b");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "preview")), "Dear Jane,\nthe new prices.\n");
    json_object_put(o);
    /* a header name cleaned in place: a CR dropped before a multi-byte
     * character (fuzz_httpapi: overlapping memcpy under ASan) */
    o = preview("untild-spool 1\n\nA\r\xc3\xa9\xc3\xa9: v\r\n\r\n");
    s = json_object_array_get_idx(json_object_object_get(o, "headers"), 0);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(s, "name")), "A\xc3\xa9\xc3\xa9");
    json_object_put(o);
}
END_TEST

START_TEST(test_preview_multipart)
{
    json_object *o = preview("untild-spool 1\n\n"
                             "Subject: x\r\nContent-Type: multipart/alternative; boundary=\"BB\"\r\n\r\n"
                             "preamble\r\n--BB\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
                             "--BB\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain caf\xc3\xa9\r\n--BB--\r\n");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "preview")), "plain caf\xc3\xa9\n");
    json_object_put(o);
    /* transfer encodings undone: base64 at the top, quoted-printable in a part */
    o = preview("untild-spool 1\n\nSubject: x\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                "SGVsbG8gSmFuZSwKbmV3IHByaWNlcy4K\r\n\nend m1\n");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "preview")), "Hello Jane,\nnew prices.\n");
    json_object_put(o);
    o = preview("untild-spool 1\n\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n"
                "--BB\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                "caf=C3=A9 au l=\r\nait\r\n--BB--\r\n");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "preview")), "caf\xc3\xa9 au lait\n");
    json_object_put(o);
    /* truncated input: no crash, what there is */
    o = preview("untild-spool 1\n\nSubject: only a header");
    ck_assert_int_eq(json_object_array_length(json_object_object_get(o, "headers")), 1);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "preview")), "");
    json_object_put(o);
}
END_TEST

/* A quoted-printable part cut just after "=" (the preview reads the first
 * 64 KiB of a larger file): libetpan would read past the buffer (found by
 * fuzz_httpapi; valgrind-check and the fuzzer's ASan see it). */
START_TEST(test_preview_qp_cut_after_equals)
{
    static const char text[] = "untild-spool 1\n\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 =C";
    char *exact = malloc(sizeof text - 1);
    ck_assert_ptr_nonnull(exact);
    memcpy(exact, text, sizeof text - 1);
    json_object *o = json_object_new_object();
    api_preview(exact, sizeof text - 1, o);
    /* what libetpan makes of the cut escape does not matter; reading only
     * the buffer does */
    ck_assert_int_eq(strncmp(json_object_get_string(json_object_object_get(o, "preview")), "caf\xc3\xa9 ", 6), 0);
    json_object_put(o);
    free(exact);
}
END_TEST

/* /login, /logout, /me: the login's user and password leave the JSON as
 * the call's own copies, never as words. */
START_TEST(test_login_routes)
{
    struct api_call c;
    struct api_err e;
    const char *body = "{\"user\":\"alice@example.com\",\"password\":\"p w\\u00e9\"}";
    ck_assert_int_eq(api_route("POST", "/api/v1/login", &noq, body, strlen(body), &c, &e), 0);
    ck_assert_int_eq(c.op, API_LOGIN);
    ck_assert_int_eq(c.argc, 1);
    ck_assert_str_eq(c.argv[0], "login");
    ck_assert_str_eq(c.user, "alice@example.com");
    ck_assert_str_eq(c.pass, "p w\xc3\xa9");
    api_call_free(&c);
    ck_assert_ptr_null(c.user);
    ck_assert_ptr_null(c.pass);
    route_ok("GET", "/api/v1/me", &noq, "", "me", API_ME);
    route_ok("POST", "/api/v1/logout", &noq, "", "logout", API_LOGOUT);
    route_err("GET", "/api/v1/login", &noq, "", 405, "", "POST");
    route_err("POST", "/api/v1/me", &noq, "", 405, "", "GET");
    route_err("GET", "/api/v1/logout", &noq, "", 405, "", "POST");
    route_err("POST", "/api/v1/logout", &noq, "{\"all\":true}", 400, "", "no fields");
    route_err("POST", "/api/v1/login", &noq, "", 400, "", "required");
    route_err("POST", "/api/v1/login", &noq, "{\"user\":\"a\"}", 400, "password", "required");
    route_err("POST", "/api/v1/login", &noq, "{\"password\":\"x\"}", 400, "user", "required");
    route_err("POST", "/api/v1/login", &noq, "{\"user\":\"\",\"password\":\"x\"}", 400, "user", "required");
    route_err("POST", "/api/v1/login", &noq, "{\"user\":\"a\",\"password\":\"\"}", 400, "password", "required");
    route_err("POST", "/api/v1/login", &noq, "{\"user\":[],\"password\":\"x\"}", 400, "user", "string");
    route_err("POST", "/api/v1/login", &noq, "{\"user\":\"a\",\"password\":1}", 400, "password", "string");
    route_err("POST", "/api/v1/login", &noq, "{\"user\":\"a\\r\\nb\",\"password\":\"x\"}", 400, "user", "control");
    route_err("POST", "/api/v1/login", &noq, "{\"user\":\"a\\u0000b\",\"password\":\"x\"}", 400, "user", "NUL");
    route_err("POST", "/api/v1/login", &noq, "{\"user\":\"a\",\"password\":\"x\",\"x\":1}", 400, "", "unknown");
    route_err("POST", "/api/v1/login", &noq, "{\"user\":\"a\",", 400, "", "malformed");
    char big[2048];
    snprintf(big, sizeof big, "{\"user\":\"a\",\"password\":\"%01100d\"}", 0);
    route_err("POST", "/api/v1/login", &noq, big, 400, "password", "at most");
    snprintf(big, sizeof big, "{\"user\":\"%0300d\",\"password\":\"x\"}", 0);
    route_err("POST", "/api/v1/login", &noq, big, 400, "user", "at most");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("http_api");
    TCase *t = tcase_create("core");
    tcase_add_test(t, test_routes);
    tcase_add_test(t, test_refusals);
    tcase_add_test(t, test_refusals_part2);
    tcase_add_test(t, test_control_refusals);
    tcase_add_test(t, test_preview_plain);
    tcase_add_test(t, test_preview_multipart);
    tcase_add_test(t, test_login_routes);
    tcase_add_test(t, test_preview_qp_cut_after_equals);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
