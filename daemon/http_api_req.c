/* http_api_req.c - the HTTP API's requests as the control socket's words,
 * its errors as JSON, and a held message's preview (see http_api_int.h).
 * Pure: no daemon state, any thread; JSON in and out through json-c. */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <json-c/json.h>
#include <libetpan/libetpan.h>
#include "untild/http_api_int.h"
#include "untild/csv_import.h"
#include "untild/json.h"

static int fail(struct api_err *e, int status, const char *error, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail(struct api_err *e, int status, const char *error, const char *field, const char *fmt, ...)
{
    va_list ap;
    e->status = status;
    snprintf(e->error, sizeof e->error, "%s", error);
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    va_start(ap, fmt);
    vsnprintf(e->reason, sizeof e->reason, fmt, ap);
    va_end(ap);
    return -1;
}

static int word(struct api_call *c, const char *s)
{
    if (c->argc >= API_MAX_WORDS - 1 || !(c->argv[c->argc] = strdup(s)))
        return -1;
    c->argc++;
    return 0;
}

static void wipe_free(char *p)
{
    if (p) {
        explicit_bzero(p, strlen(p));
        free(p);
    }
}

void api_call_free(struct api_call *c)
{
    for (int i = 0; i < c->argc; i++)
        free(c->argv[i]);
    c->argc = 0;
    wipe_free(c->user);
    wipe_free(c->pass);
    c->user = c->pass = NULL;
}

/* An id in a path or a cursor: what window and spool ids are made of. */
static int id_ok(const char *s, size_t n)
{
    if (n == 0 || n >= API_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
            return 0;
    return 1;
}

static int paging(struct api_call *c, const struct api_query *q, struct api_err *e)
{
    const char *lim = q->limit ? q->limit : API_PAGE_DEFAULT;
    size_t n = strlen(lim);
    if (n == 0 || n > 4 || strspn(lim, "0123456789") != n || atoi(lim) < 1 || atoi(lim) > API_PAGE_MAX)
        return fail(e, 400, "bad request", "limit", "limit: a number from 1 to %d", API_PAGE_MAX);
    if (q->after && !id_ok(q->after, strlen(q->after)))
        return fail(e, 400, "bad request", "after", "after: an id from a previous page's next");
    if (word(c, "--limit") || word(c, lim) || (q->after && (word(c, "--after") || word(c, q->after))))
        return fail(e, 500, "out of memory", NULL, "out of memory");
    return 0;
}

/* A string value that becomes one word: no NUL inside (json-c keeps
 * them), and no leading "--" (it would read as an option). */
static int string_field(json_object *v, const char *name, const char **out, struct api_err *e)
{
    if (!json_object_is_type(v, json_type_string))
        return fail(e, 400, "bad request", name, "%s: must be a string", name);
    const char *s = json_object_get_string(v);
    if ((size_t)json_object_get_string_len(v) != strlen(s))
        return fail(e, 400, "bad request", name, "%s: must not contain NUL", name);
    if (!strncmp(s, "--", 2))
        return fail(e, 400, "bad request", name, "%s: must not start with --", name);
    *out = s;
    return 0;
}

/* The body as a JSON object (an empty body is {} when allow_empty). */
static json_object *body_object(const char *body, size_t len, int allow_empty, struct api_err *e)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)body[i]))
        i++;
    if (i == len) {
        if (allow_empty)
            return json_object_new_object();
        fail(e, 400, "bad request", NULL, "a JSON object is required");
        return NULL;
    }
    json_tokener *tok = json_tokener_new();
    if (!tok) {
        fail(e, 500, "out of memory", NULL, "out of memory");
        return NULL;
    }
    json_object *o = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!o || jerr != json_tokener_success) {
        json_object_put(o);
        fail(e, 400, "bad JSON", NULL, "malformed JSON: %s",
             jerr == json_tokener_continue ? "unexpected end of input" : json_tokener_error_desc(jerr));
        return NULL;
    }
    while (used < len && isspace((unsigned char)body[used]))
        used++;
    if (used < len) {
        json_object_put(o);
        fail(e, 400, "bad JSON", NULL, "malformed JSON: text after the object");
        return NULL;
    }
    if (!json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        fail(e, 400, "bad request", NULL, "the body must be a JSON object");
        return NULL;
    }
    return o;
}

/* POST /windows: the fields of `untilctl window add`; PATCH /windows/{id}
 * (id set): the same but who and owner, which a change cannot move. */
static int window_fields(struct api_call *c, const char *id, const char *body, size_t len, struct api_err *e)
{
    static const char *const opts[] = { "until", "from", "reason", "action", "rrule", "tz", "duration",
                                        "owner", NULL };
    json_object *o = body_object(body, len, 0, e);
    const char *who = NULL, *val[8] = { 0 };
    if (!o)
        return -1;
    int rc = 0, n = 0;
    json_object_object_foreach(o, k, v) {
        size_t i;
        for (i = 0; opts[i] && strcmp(opts[i], k); i++)
            ;
        if (id && (!strcmp(k, "who") || !strcmp(k, "owner")))
            rc = fail(e, 400, "bad request", k, "%s: cannot be changed (end the window and add a new one)", k);
        else if (!strcmp(k, "who"))
            rc = string_field(v, "who", &who, e);
        else if (opts[i])
            rc = string_field(v, opts[i], &val[i], e);
        else
            rc = fail(e, 400, "bad request", "", "unknown field \"%.64s\" (%suntil, from, reason, action, "
                      "rrule, tz, duration%s)", k, id ? "" : "who, ", id ? "" : ", owner");
        if (rc)
            break;
        n++;
    }
    if (!rc && id && !n)
        rc = fail(e, 400, "bad request", "", "nothing to change (until, from, reason, action, rrule, tz, duration)");
    else if (!rc && !id && (!who || !*who))
        rc = fail(e, 400, "bad request", "who", "who: required (an address, @domain, or several joined by commas)");
    else if (!rc && !id && strpbrk(who, " \t\r\n\""))
        rc = fail(e, 400, "bad request", "who", "who: no spaces or quotes (join addresses with commas)");
    else if (!rc && !id && !val[0])
        rc = fail(e, 400, "bad request", "until", "until: required (a date, or never)");
    if (!rc && (word(c, "window") || word(c, id ? "change" : "add") || word(c, id ? id : who)))
        rc = fail(e, 500, "out of memory", NULL, "out of memory");
    for (size_t i = 0; !rc && opts[i]; i++) {
        char opt[32];
        snprintf(opt, sizeof opt, "--%s", opts[i]);
        if (val[i] && (word(c, opt) || word(c, val[i])))
            rc = fail(e, 500, "out of memory", NULL, "out of memory");
    }
    json_object_put(o);
    return rc;
}

/* POST /held/{id}/release: {"reason": TEXT} (optional). */
static int held_release(struct api_call *c, const char *body, size_t len, struct api_err *e)
{
    json_object *o = body_object(body, len, 1, e);
    const char *reason = NULL;
    int rc = 0;
    if (!o)
        return -1;
    json_object_object_foreach(o, k, v) {
        if (!strcmp(k, "reason"))
            rc = string_field(v, "reason", &reason, e);
        else
            rc = fail(e, 400, "bad request", "", "unknown field \"%.64s\" (reason)", k);
        if (rc)
            break;
    }
    if (!rc && reason && (word(c, "--reason") || word(c, reason)))
        rc = fail(e, 500, "out of memory", NULL, "out of memory");
    json_object_put(o);
    return rc;
}

/* Empty body or {} only. */
static int no_fields(const char *body, size_t len, struct api_err *e)
{
    json_object *o = body_object(body, len, 1, e);
    if (!o)
        return -1;
    int n = json_object_object_length(o);
    json_object_put(o);
    return n ? fail(e, 400, "bad request", "", "this request takes no fields") : 0;
}

static int method_is(const char *m, const char *want, const char *allow, struct api_err *e)
{
    if (!strcmp(m, want))
        return 1;
    fail(e, 405, "method not allowed", NULL, "%s takes %s", want, allow);
    e->allow = allow;
    return 0;
}

/* POST /login: {"user": NAME, "password": TEXT}, both required. The
 * values are copied out of the JSON and the JSON's copies wiped. */
static int login_body(struct api_call *c, const char *body, size_t len, struct api_err *e)
{
    json_object *o = body_object(body, len, 0, e);
    const char *user = NULL, *pass = NULL;
    int rc = 0;
    if (!o)
        return -1;
    json_object_object_foreach(o, k, v) {
        if (!strcmp(k, "user") || !strcmp(k, "password")) {
            const char **slot = k[0] == 'u' ? &user : &pass;
            if (!json_object_is_type(v, json_type_string))
                rc = fail(e, 400, "bad request", k, "%s: must be a string", k);
            else if ((size_t)json_object_get_string_len(v) != strlen(*slot = json_object_get_string(v)))
                rc = fail(e, 400, "bad request", k, "%s: must not contain NUL", k);
        } else {
            rc = fail(e, 400, "bad request", "", "unknown field \"%.64s\" (user, password)", k);
        }
        if (rc)
            break;
    }
    if (!rc && (!user || !*user || strlen(user) >= API_LOGIN_USER_MAX))
        rc = fail(e, 400, "bad request", "user", "user: required, at most %d bytes", API_LOGIN_USER_MAX - 1);
    for (const char *p = user; !rc && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            rc = fail(e, 400, "bad request", "user", "user: no control characters");
    if (!rc && (!pass || !*pass || strlen(pass) >= API_LOGIN_PASS_MAX))
        rc = fail(e, 400, "bad request", "password", "password: required, at most %d bytes",
                  API_LOGIN_PASS_MAX - 1);
    if (!rc && (!(c->user = strdup(user)) || !(c->pass = strdup(pass))))
        rc = fail(e, 500, "out of memory", NULL, "out of memory");
    if (pass)
        explicit_bzero((char *)(uintptr_t)pass, strlen(pass));
    json_object_put(o);
    return rc;
}

/* /login, /logout, /me: who the caller is. */
static int route_self(const char *m, const char *p, const char *body, size_t len, struct api_call *c,
                      struct api_err *e)
{
    int me = !strcmp(p, "me");
    if (!method_is(m, me ? "GET" : "POST", me ? "GET" : "POST", e))
        return -1;
    c->op = me ? API_ME : !strcmp(p, "login") ? API_LOGIN : API_LOGOUT;
    c->changes = c->op == API_LOGOUT;
    if (word(c, p))
        return fail(e, 500, "out of memory", NULL, "out of memory");
    return c->op == API_LOGIN ? login_body(c, body, len, e) : c->op == API_LOGOUT ? no_fields(body, len, e) : 0;
}

static int route_held(const char *m, const char *rest, const struct api_query *q, const char *body, size_t len,
                      struct api_call *c, struct api_err *e)
{
    if (!*rest) {
        if (!method_is(m, "GET", "GET", e))
            return -1;
        c->op = API_HELD_LIST;
        return word(c, "held") || word(c, "list") || word(c, "--json") ? fail(e, 500, "out of memory", NULL, "out of memory")
                                                                     : paging(c, q, e);
    }
    const char *id = rest + 1, *slash = strchr(id, '/');
    size_t n = slash ? (size_t)(slash - id) : strlen(id);
    if (*rest != '/' || !id_ok(id, n))
        return fail(e, 404, "not found", NULL, "no such resource");
    snprintf(c->id, sizeof c->id, "%.*s", (int)n, id);
    const char *sub = slash ? slash + 1 : NULL;
    if (!sub) {
        if (!method_is(m, "GET", "GET", e))
            return -1;
        c->op = API_HELD_SHOW;
        return word(c, "held") || word(c, "show") || word(c, c->id) || word(c, "--json")
                   ? fail(e, 500, "out of memory", NULL, "out of memory") : 0;
    }
    int rel = !strcmp(sub, "release"), dis = !strcmp(sub, "discard");
    if (!rel && !dis)
        return fail(e, 404, "not found", NULL, "no such resource");
    if (!method_is(m, "POST", "POST", e))
        return -1;
    c->op = rel ? API_HELD_RELEASE : API_HELD_DISCARD;
    c->changes = 1;
    if (word(c, "held") || word(c, sub) || word(c, c->id))
        return fail(e, 500, "out of memory", NULL, "out of memory");
    return rel ? held_release(c, body, len, e) : no_fields(body, len, e);
}

#define OOM(e) fail(e, 500, "out of memory", NULL, "out of memory")

/* DELETE /windows?who=ADDRESS: end that address's windows (none: done
 * already). */
static int windows_end_who(const struct api_query *q, const char *body, size_t len, struct api_call *c,
                           struct api_err *e)
{
    if (!q->who || !*q->who || strpbrk(q->who, " \t\r\n,\""))
        return fail(e, 400, "bad request", "who", "who: one address or @domain");
    if (!strncmp(q->who, "--", 2))
        return fail(e, 400, "bad request", "who", "who: must not start with --");
    c->op = API_WINDOWS_END_WHO;
    c->changes = 1;
    if (word(c, "window") || word(c, "end") || word(c, q->who))
        return OOM(e);
    return no_fields(body, len, e);
}

/* POST /windows/import: a text/csv body, as `untilctl window import`. */
static int windows_import(const struct api_query *q, const char *body, size_t len, struct api_call *c,
                          struct api_err *e)
{
    const char *ct = q->ctype ? q->ctype : "";
    c->op = API_WINDOWS_IMPORT;
    c->changes = 1;
    if (strncasecmp(ct, "text/csv", 8) || (ct[8] && ct[8] != ';' && ct[8] != ' '))
        return fail(e, 415, "unsupported media type", NULL, "the body must be text/csv "
                    "(email,until,reason[,action])");
    if (len > CSV_MAX_BYTES)
        return fail(e, 413, "payload too large", NULL, "the CSV is over %u bytes (the import's limit): split it",
                    CSV_MAX_BYTES);
    if (memchr(body, '\0', len))
        return fail(e, 400, "bad request", "body", "the CSV contains a NUL byte");
    char *csv = strndup(body, len);
    int rc = !csv || word(c, "window") || word(c, "import") || word(c, csv) || word(c, "--json") ? OOM(e) : 0;
    free(csv);
    return rc;
}

static int route_windows(const char *m, const char *rest, const struct api_query *q, const char *body,
                         size_t len, struct api_call *c, struct api_err *e)
{
    if (!*rest) {
        if (!strcmp(m, "GET")) {
            c->op = API_WINDOWS_LIST;
            return word(c, "window") || word(c, "list") || word(c, "--json") ? OOM(e) : paging(c, q, e);
        }
        if (!strcmp(m, "DELETE"))
            return windows_end_who(q, body, len, c, e);
        if (!method_is(m, "POST", "GET, POST, DELETE", e))
            return -1;
        c->op = API_WINDOWS_ADD;
        c->changes = 1;
        if (window_fields(c, NULL, body, len, e))
            return -1;
        return word(c, "--json") ? OOM(e) : 0;
    }
    if (!strcmp(rest, "/import")) {
        if (!method_is(m, "POST", "POST", e))
            return -1;
        return windows_import(q, body, len, c, e);
    }
    if (*rest != '/' || !id_ok(rest + 1, strlen(rest + 1)))
        return fail(e, 404, "not found", NULL, "no such resource");
    snprintf(c->id, sizeof c->id, "%s", rest + 1);
    if (!strcmp(m, "PATCH")) {
        c->op = API_WINDOWS_CHANGE;
        c->changes = 1;
        if (window_fields(c, c->id, body, len, e))
            return -1;
        return word(c, "--json") ? OOM(e) : 0;
    }
    if (!method_is(m, "DELETE", "PATCH, DELETE", e))
        return -1;
    c->op = API_WINDOWS_END;
    c->changes = 1;
    if (word(c, "window") || word(c, "end") || word(c, c->id))
        return OOM(e);
    return no_fields(body, len, e);
}

/* --at and --from, shared by both checks. */
static int check_opts(const char *at, const char *from, struct api_call *c, struct api_err *e)
{
    const char *v[] = { at, from }, *names[] = { "at", "from" };
    for (int i = 0; i < 2; i++)
        if (v[i] && !strncmp(v[i], "--", 2))
            return fail(e, 400, "bad request", names[i], "%s: must not start with --", names[i]);
    if ((at && (word(c, "--at") || word(c, at))) || (from && (word(c, "--from") || word(c, from))))
        return OOM(e);
    return 0;
}

/* POST /check: {"who": [ADDRESS...], "at": WHEN, "from": REP}. */
static int check_many(const char *body, size_t len, struct api_call *c, struct api_err *e)
{
    json_object *o = body_object(body, len, 0, e), *who = NULL;
    const char *at = NULL, *from = NULL;
    int rc = 0;
    if (!o)
        return -1;
    json_object_object_foreach(o, k, v) {
        if (!strcmp(k, "who"))
            who = v;
        else if (!strcmp(k, "at"))
            rc = string_field(v, "at", &at, e);
        else if (!strcmp(k, "from"))
            rc = string_field(v, "from", &from, e);
        else
            rc = fail(e, 400, "bad request", "", "unknown field \"%.64s\" (who, at, from)", k);
        if (rc)
            break;
    }
    size_t n = who && json_object_is_type(who, json_type_array) ? json_object_array_length(who) : 0;
    if (!rc && (!who || !json_object_is_type(who, json_type_array) || !n))
        rc = fail(e, 400, "bad request", "who", "who: an array of addresses (1 to %d)", API_CHECK_MAX);
    else if (!rc && n > API_CHECK_MAX)
        rc = fail(e, 400, "bad request", "who", "who: at most %d addresses in one request", API_CHECK_MAX);
    if (!rc && (word(c, "check") || word(c, "--json")))
        rc = OOM(e);
    if (!rc)
        rc = check_opts(at, from, c, e);
    if (!rc && word(c, "--who"))
        rc = OOM(e);
    for (size_t i = 0; !rc && i < n; i++) {
        const char *a;
        if (string_field(json_object_array_get_idx(who, i), "who", &a, e))
            rc = fail(e, 400, "bad request", "who", "who: item %zu must be a string not starting with --", i);
        else if (word(c, a))
            rc = OOM(e);
    }
    json_object_put(o);
    return rc;
}

static int route_check(const char *m, const struct api_query *q, const char *body, size_t len,
                       struct api_call *c, struct api_err *e)
{
    if (!strcmp(m, "POST")) {
        c->op = API_CHECK_MANY;
        return check_many(body, len, c, e);
    }
    if (!method_is(m, "GET", "GET, POST", e))
        return -1;
    c->op = API_CHECK;
    const char *addr = q->address ? q->address : q->who;    /* ?who= is the same */
    if (!addr || !*addr)
        return fail(e, 400, "bad request", "address", "address: required");
    if (!strncmp(addr, "--", 2))
        return fail(e, 400, "bad request", "address", "address: must not start with --");
    if (word(c, "check") || word(c, addr) || word(c, "--json"))
        return OOM(e);
    return check_opts(q->at, q->from, c, e);
}

/* A number parameter: 1 to 5 digits. */
static int number(const char *v, const char *name, struct api_err *e)
{
    size_t n = v ? strlen(v) : 0;
    if (v && (!n || n > 5 || strspn(v, "0123456789") != n))
        return fail(e, 400, "bad request", name, "%s: a number of days", name);
    return 0;
}

/* GET /report?since=DAYS, /followups?days=N, /cadence: reading verbs. */
static int route_read(const char *m, const char *p, const struct api_query *q, struct api_call *c,
                      struct api_err *e)
{
    if (!method_is(m, "GET", "GET", e))
        return -1;
    if (!strcmp(p, "report")) {
        c->op = API_REPORT;
        if (number(q->since, "since", e))
            return -1;
        return word(c, "report") || word(c, "--json") || (q->since && (word(c, "--since") || word(c, q->since)))
                   ? OOM(e) : 0;
    }
    if (!strcmp(p, "followups")) {
        c->op = API_FOLLOWUPS;
        if (number(q->days, "days", e))
            return -1;
        return word(c, "followups") || word(c, "--json") || (q->days && (word(c, "--days") || word(c, q->days)))
                   ? OOM(e) : 0;
    }
    c->op = API_CADENCE;
    return word(c, "cadence") || word(c, "list") || word(c, "--json") ? OOM(e) : 0;
}

int api_route(const char *method, const char *path, const struct api_query *q, const char *body,
              size_t len, struct api_call *c, struct api_err *e)
{
    static const char prefix[] = "/api/v1/";
    memset(c, 0, sizeof *c);
    memset(e, 0, sizeof *e);
    if (strncmp(path, prefix, sizeof prefix - 1))
        return fail(e, 404, "not found", NULL, "no such resource (the API is under /api/v1/)");
    const char *p = path + sizeof prefix - 1;
    int rc;
    if (!strcmp(p, "status")) {
        c->op = API_STATUS;
        rc = !method_is(method, "GET", "GET", e) ? -1
             : word(c, "status") || word(c, "--json") ? fail(e, 500, "out of memory", NULL, "out of memory") : 0;
    } else if (!strncmp(p, "windows", 7) && (p[7] == '\0' || p[7] == '/')) {
        rc = route_windows(method, p + 7, q, body, len, c, e);
    } else if (!strncmp(p, "held", 4) && (p[4] == '\0' || p[4] == '/')) {
        rc = route_held(method, p + 4, q, body, len, c, e);
    } else if (!strcmp(p, "check")) {
        rc = route_check(method, q, body, len, c, e);
    } else if (!strcmp(p, "report") || !strcmp(p, "followups") || !strcmp(p, "cadence")) {
        rc = route_read(method, p, q, c, e);
    } else if (!strcmp(p, "login") || !strcmp(p, "logout") || !strcmp(p, "me")) {
        rc = route_self(method, p, body, len, c, e);
    } else {
        rc = fail(e, 404, "not found", NULL, "no such resource");
    }
    if (rc)
        api_call_free(c);
    return rc;
}

/* ---- answers ---- */

void api_err_from_control(enum api_op op, int rc, const char *text, struct api_err *e)
{
    int held_act = op == API_HELD_RELEASE || op == API_HELD_DISCARD || op == API_WINDOWS_END ||
                   op == API_WINDOWS_CHANGE;
    int status = rc == 2 ? 400 : rc == 4 ? 403 : rc == 5 ? 404 : held_act ? 409 : 500;
    const char *error = status == 400 ? "bad request" : status == 403 ? "forbidden" : status == 404 ? "not found"
                      : status == 409 ? "conflict" : "internal error";
    char field[32] = "";
    const char *dash = text ? strstr(text, "--") : NULL;
    if (dash && status == 400) {
        size_t n = strspn(dash + 2, "abcdefghijklmnopqrstuvwxyz");
        if (n && n < sizeof field)
            snprintf(field, sizeof field, "%.*s", (int)n, dash + 2);
    }
    if (!field[0] && status == 400 && op == API_CHECK)
        snprintf(field, sizeof field, "address");
    if (!field[0] && status == 400 && op == API_WINDOWS_END_WHO)
        snprintf(field, sizeof field, "who");
    /* the first line, without the verb's "window add: " prefix */
    char reason[300];
    const char *t = text ? text : "";
    size_t n = strcspn(t, "\n");
    snprintf(reason, sizeof reason, "%.*s", (int)n, t);
    const char *colon = strstr(reason, ": ");
    const char *r = colon && (size_t)(colon - reason) < 16 && !strchr(reason, '@') ? colon + 2 : reason;
    fail(e, status, error, field, "%s", *r ? r : error);
}

char *api_err_json(const struct api_err *e)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    ujson_add_str(o, "error", e->error);
    ujson_add_str(o, "field", e->field[0] ? e->field : NULL);
    ujson_add_str(o, "reason", e->reason);
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    char *out = s ? strdup(s) : NULL;
    json_object_put(o);
    return out;
}

/* ---- preview ---- */

/* Copy s[0..n) into out as valid UTF-8 (json.c's decoder decides what is
 * valid; invalid bytes and C0 controls but tab and newline become '?'; CR
 * dropped). out may be s (in place: memmove, the output never runs ahead
 * of the input). */
static void utf8_clean(const char *s, size_t n, char *out, size_t outsz)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0, k; i < n && o + 5 < outsz; i += k) {
        long c = ujson_utf8_next(p + i, n - i, &k);
        if (c == '\r')
            continue;
        if (c < 0 || (c < 0x20 && c != '\t' && c != '\n') || c == 0x7f) {
            out[o++] = '?';
            continue;
        }
        memmove(out + o, p + i, k);
        o += k;
    }
    out[o] = '\0';
}

/* The end of the header block starting at s (the blank line), or NULL. */
static const char *headers_end(const char *s, const char *e, const char **body)
{
    for (const char *p = s; p < e; p++) {
        if (*p != '\n')
            continue;
        const char *q = p + 1;
        if (q < e && *q == '\r')
            q++;
        if (q < e && *q == '\n') {
            *body = q + 1;
            return p + 1;
        }
    }
    *body = e;
    return e;
}

/* Visit the headers in [s, e): unfolded name and value. */
static void add_headers(const char *s, const char *e, json_object *arr, char *ctype, char *cte, size_t sz)
{
    char name[128], value[1000];
    size_t n = 0;
    for (const char *p = s; p < e && n < 100;) {
        const char *line_end = memchr(p, '\n', (size_t)(e - p));
        const char *end = line_end ? line_end : e;
        /* folded continuation lines belong to this header */
        while (end < e && end + 1 < e && (end[1] == ' ' || end[1] == '\t')) {
            const char *nx = memchr(end + 1, '\n', (size_t)(e - end - 1));
            end = nx ? nx : e;
        }
        const char *colon = memchr(p, ':', (size_t)(end - p));
        if (colon && colon > p && (size_t)(colon - p) < sizeof name) {
            snprintf(name, sizeof name, "%.*s", (int)(colon - p), p);
            const char *v = colon + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            char raw[2000];
            size_t rn = 0;
            for (const char *x = v; x < end && rn < sizeof raw - 1; x++)
                if (*x != '\r' && *x != '\n')
                    raw[rn++] = *x == '\t' ? ' ' : *x;
            utf8_clean(raw, rn, value, sizeof value);
            utf8_clean(name, strlen(name), name, sizeof name);
            json_object *h = json_object_new_object();
            ujson_add_str(h, "name", name);
            ujson_add_str(h, "value", value);
            json_object_array_add(arr, h);
            if (!strcasecmp(name, "Content-Type"))
                snprintf(ctype, sz, "%.*s", (int)sz - 1, value);
            if (!strcasecmp(name, "Content-Transfer-Encoding"))
                snprintf(cte, sz, "%.*s", (int)sz - 1, value);
            n++;
        }
        p = end < e ? end + 1 : e;
    }
}

/* A Content-Transfer-Encoding value as libetpan's mechanism (0: none
 * to undo). */
static int mechanism_of(const char *v)
{
    v += strspn(v, " \t");
    return !strncasecmp(v, "base64", 6) ? MAILMIME_MECHANISM_BASE64
         : !strncasecmp(v, "quoted-printable", 16) ? MAILMIME_MECHANISM_QUOTED_PRINTABLE : 0;
}

/* The same for the header in a block of headers. */
static int mechanism(const char *hdrs)
{
    const char *v = strcasestr(hdrs, "content-transfer-encoding:");
    return v ? mechanism_of(v + 26) : 0;
}

/* In a multipart body, the first part that is text/plain (or has no
 * Content-Type): [*s, *e) narrowed to its body, *mech its encoding. */
static void first_text_part(const char *ctype, const char **s, const char **e, int *mech)
{
    const char *b = strcasestr(ctype, "boundary=");
    char bnd[200];
    if (!b)
        return;
    b += 9;
    size_t n = *b == '"' ? strcspn(b + 1, "\"") : strcspn(b, "; \t");
    if (*b == '"')
        b++;
    if (!n || n + 3 >= sizeof bnd)
        return;
    snprintf(bnd, sizeof bnd, "--%.*s", (int)n, b);
    for (const char *p = memmem(*s, (size_t)(*e - *s), bnd, strlen(bnd)); p;
         p = memmem(p + 1, (size_t)(*e - p - 1), bnd, strlen(bnd))) {
        const char *ph = memchr(p, '\n', (size_t)(*e - p));
        if (!ph)
            return;
        ph++;
        const char *pb, *he = headers_end(ph, *e, &pb);
        char hdrs[2000];
        snprintf(hdrs, sizeof hdrs, "%.*s", (int)(he - ph), ph);
        const char *ct = strcasestr(hdrs, "content-type:");
        if (!ct || strcasestr(ct, "text/plain") == ct + 13 + strspn(ct + 13, " \t")) {
            const char *next = memmem(pb, (size_t)(*e - pb), bnd, strlen(bnd));
            *s = pb;
            *e = next ? next : *e;
            *mech = mechanism(hdrs);
            return;
        }
    }
}

void api_preview(const char *buf, size_t len, json_object *o)
{
    const char *e = buf + len, *msg, *body;
    headers_end(buf, e, &msg);            /* the spool's own header */
    const char *he = headers_end(msg, e, &body);
    json_object *arr = json_object_new_array();
    char ctype[1000] = "", cte[1000] = "";
    add_headers(msg, he, arr, ctype, cte, sizeof ctype);
    json_object_object_add(o, "headers", arr);
    const char *ps = body, *pe = e;
    int mech = mechanism_of(cte);
    if (strncasecmp(ctype, "multipart/", 10) == 0) {
        mech = 0;
        first_text_part(ctype, &ps, &pe, &mech);
    }
    static char const trailer[] = "\nend ";
    const char *t = memmem(ps, (size_t)(pe - ps), trailer, sizeof trailer - 1);
    if (t && pe == e)
        pe = t;     /* the spool's end record */
    /* base64 and quoted-printable undone by libetpan (the part is at
     * most PREVIEW_READ bytes: bounded work). Its quoted-printable decoder
     * reads the two characters after a '=' without looking at the length
     * (fuzz_httpapi: a part cut after "=" read past the buffer), so it
     * gets a copy with two NULs after the end. */
    char *dec = NULL, *copy = mech ? malloc((size_t)(pe - ps) + 2) : NULL;
    size_t idx = 0, dlen = 0;
    if (copy) {
        memcpy(copy, ps, (size_t)(pe - ps));
        copy[pe - ps] = copy[pe - ps + 1] = '\0';
    }
    if (copy && mailmime_part_parse(copy, (size_t)(pe - ps), &idx, mech, &dec, &dlen) == MAILIMF_NO_ERROR && dec) {
        ps = dec;
        pe = dec + dlen;
    }
    free(copy);
    char text[2000 * 4 + 8];
    size_t n = (size_t)(pe - ps) < 2000 ? (size_t)(pe - ps) : 2000;
    utf8_clean(ps, n, text, sizeof text);
    if (dec)
        mailmime_decoded_part_free(dec);
    ujson_add_str(o, "preview", text);
}
