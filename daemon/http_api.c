/* http_api.c - the HTTP API's libmicrohttpd side (see http_api.h):
 * connection threads take the request (body up to [http] max_body, 413
 * beyond, logged), route it (http_api_req.c), hand it to the loop
 * (http_api_run.c) with loop_post and wait on a condition variable, as
 * the CalDAV proxy does, then write the JSON answer. A connection thread
 * never touches the daemon's state; it only reads a held message's first
 * bytes for GET /held/{id}'s preview (a file the loop named), sets and
 * clears the session cookie the loop decided on, and holds a refused
 * login's answer back for [smtp] auth_failure_delay (its own time, as an
 * SMTP session waits on a timer, not the loop's); for paths outside /api/
 * it serves the web console's files (http_console.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include "untild/http_api.h"
#include "untild/http_api_int.h"
#include "untild/http_console.h"
#include "untild/daemon.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/strbuf.h"
#include "untild/sysutil.h"
#include "untild/json.h"

#define PREVIEW_READ (64u << 10)

struct conn {
    struct strbuf body;
    int too_big;
};

static void work_free_v(void *w)
{
    http_api_work_free(w);
}

/* Run w on the loop and wait (loop_post_wait). Returns 0 when done; -1 if
 * stopping (w then belongs to the loop); -2 if it could not be posted (w is
 * still ours). */
static int on_loop_wait(struct api_work *w)
{
    struct http_api *o = w->a;
    return loop_post_wait(o->loop, http_api_on_loop, w, &o->mu, &o->cv, &o->pending, &o->stopping,
                          &w->refs, &w->done, work_free_v);
}

#define COOKIE_ATTRS "HttpOnly; SameSite=Strict; Path=/"

/* The session cookie a login sets or a logout (or an ended session)
 * clears; Retry-After of a 429. */
static void add_session_headers(struct MHD_Response *r, const struct api_work *w)
{
    char h[256];
    const char *secure = w->a->tls ? "; Secure" : "";
    if (w->new_session[0]) {
        snprintf(h, sizeof h, "untild_session=%s; " COOKIE_ATTRS "%s", w->new_session, secure);
        MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, h);
        explicit_bzero(h, sizeof h);
    } else if (w->clear_cookie) {
        snprintf(h, sizeof h, "untild_session=; " COOKIE_ATTRS "; Max-Age=0%s", secure);
        MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, h);
    }
    if (w->retry_after > 0) {
        snprintf(h, sizeof h, "%d", w->retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, h);
    }
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, const char *json, const char *allow,
                                 const struct api_work *w)
{
    struct strbuf b = { 0 };
    sb_printf(&b, "%s\n", json ? json : "{\"error\":\"out of memory\",\"field\":null,\"reason\":\"out of memory\"}");
    struct MHD_Response *r = b.p ? MHD_create_response_from_buffer(b.len, b.p, MHD_RESPMEM_MUST_COPY) : NULL;
    sb_free(&b);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (allow)
        MHD_add_response_header(r, "Allow", allow);
    if (status == 401)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"untild\"");
    if (w)
        add_session_headers(r, w);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result send_err(struct MHD_Connection *c, const struct api_err *e, const struct api_work *w)
{
    char *j = api_err_json(e);
    enum MHD_Result rc = send_json(c, (unsigned)e->status, j, e->allow, w);
    free(j);
    return rc;
}

static enum MHD_Result send_obj(struct MHD_Connection *c, unsigned status, json_object *o,
                                const struct api_work *w)
{
    enum MHD_Result rc = send_json(c, status, o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : NULL,
                                   NULL, w);
    json_object_put(o);
    return rc;
}

/* The first PREVIEW_READ bytes of a held message's spool file (held/,
 * or active/ while it is being delivered) into o's preview. */
static void add_preview(const char *path, json_object *o)
{
    char alt[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    const char *h = strstr(path, "/spool/held/");
    if (fd < 0 && h) {
        snprintf(alt, sizeof alt, "%.*s/spool/active/%s", (int)(h - path), path, h + 12);
        fd = open(alt, O_RDONLY | O_CLOEXEC);
    }
    char *buf = fd >= 0 ? malloc(PREVIEW_READ) : NULL;
    size_t n = 0;
    while (buf && n < PREVIEW_READ) {
        ssize_t k = read(fd, buf + n, PREVIEW_READ - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    if (buf)
        api_preview(buf, n, o);
    free(buf);
    if (fd >= 0)
        close(fd);
}

/* DELETE /windows?who=: the ids `window end` said it ended ("ended ID"
 * lines), as {"who": WHO, "ended": [ID...]}; none is an empty list. */
static json_object *ended_json(const struct api_work *w)
{
    json_object *o = json_object_new_object(), *a = json_object_new_array();
    const char *p = w->rc == 0 && w->out ? w->out : "";
    while ((p = strstr(p, "ended ")) != NULL) {
        p += 6;
        size_t n = strcspn(p, "\n");
        json_object_array_add(a, json_object_new_string_len(p, (int)n));
        p += n;
    }
    ujson_add_str(o, "who", w->call.argv[2]);
    json_object_object_add(o, "ended", a);
    return o;
}

/* A refused import: its JSON (added, unchanged, errors) with the error's
 * fields, 400. */
static enum MHD_Result import_refused(struct MHD_Connection *c, const struct api_work *w)
{
    json_object *o = w->out && w->rc == 2 ? json_tokener_parse(w->out) : NULL;
    if (!o || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return 0;
    }
    json_object *n = NULL;
    int64_t total = json_object_object_get_ex(o, "errors_total", &n) ? json_object_get_int64(n) : 0;
    char reason[128];
    snprintf(reason, sizeof reason, "%lld line%s with errors: nothing was imported", (long long)total,
             total == 1 ? "" : "s");
    ujson_add_str(o, "error", "bad request");
    ujson_add_str(o, "field", "body");
    ujson_add_str(o, "reason", reason);
    return send_obj(c, 400, o, w);
}

/* The verb's answer as the API's: its JSON, or an object saying what was
 * done; a refusal as an error. */
static enum MHD_Result answer(struct MHD_Connection *c, struct api_work *w)
{
    const char *id = w->call.id;
    enum api_op op = w->call.op;
    if (w->status)
        return send_err(c, &w->err, w);
    if (op == API_WINDOWS_END_WHO && (w->rc == 0 || w->rc == 5))
        return send_obj(c, 200, ended_json(w), w);
    if (op == API_WINDOWS_IMPORT && w->rc == 2) {
        enum MHD_Result r = import_refused(c, w);
        if (r)
            return r;
    }
    if (!(w->rc == 0 || (w->rc == 3 && op == API_CHECK))) {
        struct api_err e = { 0 };    /* allow: NULL (api_err_from_control leaves it) */
        api_err_from_control(op, w->rc, w->out, &e);
        return send_err(c, &e, w);
    }
    json_object *o = NULL, *created = NULL;
    switch (op) {
    case API_WINDOWS_END:
        o = json_object_new_object();
        ujson_add_str(o, "id", id);
        json_object_object_add(o, "ended", json_object_new_boolean(1));
        break;
    case API_HELD_RELEASE:
    case API_HELD_DISCARD:
        o = json_object_new_object();
        ujson_add_str(o, "id", id);
        ujson_add_str(o, "state", op == API_HELD_RELEASE ? "releasing"
                                                                                        : "discarded");
        break;
    default:
        o = json_tokener_parse(w->out ? w->out : "");
        if (!o) {
            log_error("api: %s: the verb's JSON does not parse", w->call.argv[0]);
            return send_json(c, 500, "{\"error\":\"internal error\",\"field\":null,\"reason\":\"bad answer\"}", NULL,
                             w);
        }
        if (op == API_HELD_SHOW && w->spool_path[0])
            add_preview(w->spool_path, o);
    }
    /* a window added again is answered, not added: 200, not 201 */
    int fresh = op == API_WINDOWS_ADD && !(json_object_object_get_ex(o, "created", &created) &&
                                           !json_object_get_boolean(created));
    return send_obj(c, fresh ? 201 : 200, o, w);
}

/* The client's address as text; 1 if it is a loopback address. */
static int client_addr(struct MHD_Connection *c, char *out, size_t outsz)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    struct sockaddr_storage ss = { 0 };
    snprintf(out, outsz, "?");
    if (!ci || !ci->client_addr)
        return 0;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, (socklen_t)outsz);
        memcpy(&ss, sa, sizeof(struct sockaddr_in));
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out, (socklen_t)outsz);
        memcpy(&ss, sa, sizeof(struct sockaddr_in6));
    } else {
        return 0;
    }
    return sysutil_loopback_addr(&ss);
}

/* What the loop needs to know of a request's credentials: a token, or a
 * session cookie with its CSRF token, Origin and transport. Values of
 * the wrong length are not copied (they cannot match). */
static void credentials(struct http_api *a, struct MHD_Connection *c, struct api_work *w)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *cookie = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, "untild_session");
    const char *csrf = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-CSRF-Token");
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
    w->has_auth = auth != NULL;
    if (auth && !strncasecmp(auth, "Bearer ", 7))
        snprintf(w->token, sizeof w->token, "%s", auth + 7);
    w->has_cookie = cookie != NULL;
    if (cookie && strlen(cookie) == HTTP_SESSION_HEX - 1)
        memcpy(w->cookie, cookie, HTTP_SESSION_HEX);
    if (csrf && strlen(csrf) == HTTP_SESSION_HEX - 1)
        memcpy(w->csrf, csrf, HTTP_SESSION_HEX);
    w->cross_site = !http_session_origin_ok(origin, host, a->tls) || (site && !strcasecmp(site, "cross-site"));
    w->local = client_addr(c, w->client, sizeof w->client) || a->tls;
}

/* A refused login is answered after w->delay_s (guessing costs the
 * guesser time); a stopping daemon answers at once. */
static void login_delay(struct http_api *a, const struct api_work *w)
{
    struct timespec end;
    if (w->delay_s <= 0)
        return;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += w->delay_s;
    pthread_mutex_lock(&a->mu);
    while (!a->stopping && pthread_cond_timedwait(&a->cv, &a->mu, &end) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&a->mu);
}

static enum MHD_Result handle(struct http_api *a, struct MHD_Connection *c, const char *url, const char *method,
                              struct conn *cc)
{
    struct api_query q = {
        MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit"),
        MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after"),
        MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "address"),
        MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "at"),
        MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "from"),
        MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "who"),
        MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since"),
        MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "days"),
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type"),
    };
    if (strncmp(url, "/api/", 5))   /* the web console's files, read on this thread */
        return http_console_answer(a->console, c, url, method) == MHD_YES ? MHD_YES : MHD_NO;
    struct api_work *w = calloc(1, sizeof *w);
    struct api_err e;
    if (!w)
        return MHD_NO;
    w->a = a;
    int routed = api_route(method, url, &q, cc->body.p ? cc->body.p : "", cc->body.len, &w->call, &e);
    if (cc->body.p)     /* a login's password is in it */
        explicit_bzero(cc->body.p, cc->body.len);
    if (routed < 0) {
        http_api_work_free(w);
        return send_err(c, &e, NULL);
    }
    credentials(a, c, w);
    snprintf(w->method, sizeof w->method, "%s", method);
    int lr = on_loop_wait(w);
    if (lr < 0) {
        if (lr == -2)
            http_api_work_free(w);
        return send_json(c, 503, "{\"error\":\"unavailable\",\"field\":null,\"reason\":\"shutting down\"}", NULL,
                         NULL);
    }
    login_delay(a, w);
    enum MHD_Result rc = answer(c, w);
    http_api_work_free(w);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **ptr)
{
    struct http_api *a = cls;
    struct conn *cc = *ptr;
    size_t max = a->max_body;
    (void)version;
    if (!cc) {
        if (!(cc = calloc(1, sizeof *cc)))
            return MHD_NO;
        *ptr = cc;
        /* a declared length over the limit is refused before it is sent */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > max)
            cc->too_big = 1;
        else
            return MHD_YES;
    }
    if (*upload_size) {
        if (cc->body.len + *upload_size > max)
            cc->too_big = 1;
        else if (!cc->too_big)
            sb_add(&cc->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (cc->too_big || cc->body.oom) {
        log_warn("api: %s %s: request body over max_body (%zu bytes) refused", method, url, max);
        struct api_err e = { .status = 413 };
        snprintf(e.error, sizeof e.error, "payload too large");
        snprintf(e.reason, sizeof e.reason, "the request body is over %zu bytes ([http] max_body)", max);
        return send_err(c, &e, NULL);
    }
    return handle(a, c, url, method, cc);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **ptr, enum MHD_RequestTerminationCode t)
{
    struct conn *cc = *ptr;
    (void)cls; (void)c; (void)t;
    if (cc) {
        if (cc->body.p)
            explicit_bzero(cc->body.p, cc->body.len);
        sb_free(&cc->body);
        free(cc);
        *ptr = NULL;
    }
}

/* ---- start / stop ------------------------------------------------------- */

/* At max_connections libmicrohttpd stops accepting (new clients wait in
 * the listen queue) without a word: say so when the limit is reached. */
static void on_connection(void *cls, struct MHD_Connection *c, void **sctx, enum MHD_ConnectionNotificationCode t)
{
    struct http_api *a = cls;
    (void)c;
    (void)sctx;
    pthread_mutex_lock(&a->mu);
    int full = t == MHD_CONNECTION_NOTIFY_STARTED && ++a->nconns == a->max_conns;
    if (t == MHD_CONNECTION_NOTIFY_CLOSED)
        a->nconns--;
    pthread_mutex_unlock(&a->mu);
    if (full)
        log_warn("api: %d connections open: [http] max_connections reached, new ones wait", a->max_conns);
}

/* libmicrohttpd's own complaints (connection limit reached, TLS
 * handshakes that fail) as our log lines. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char m[512];
    (void)cls;
    vsnprintf(m, sizeof m, fmt, ap);
    m[strcspn(m, "\n")] = '\0';
    log_warn("api: %s", m);
}

static char *read_pem(const char *path)
{
    FILE *f = fopen(path, "re");
    struct strbuf b = { 0 };
    char buf[4096];
    size_t n;
    if (!f) {
        log_error("api: cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    while ((n = fread(buf, 1, sizeof buf, f)) > 0 && b.len < (1u << 20))
        sb_add(&b, buf, n);
    fclose(f);
    return sb_take(&b, NULL);
}

/* [http] listen -> a socket address (host: a literal or localhost). */
static int listen_addr(const char *listen, struct sockaddr_storage *ss)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host)
        return -1;
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    char *h = host;
    if (*h == '[' && h[strlen(h) - 1] == ']') {
        h[strlen(h) - 1] = '\0';
        h++;
    }
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *res = NULL;
    if (getaddrinfo(h, colon + 1, &hints, &res) != 0 || !res)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

struct http_api *http_api_start(struct untild *u)
{
    const struct config *cf = u->cfg;
    struct sockaddr_storage ss = { 0 };
    struct http_api *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->u = u;
    a->loop = u->loop;
    a->max_body = cf->http_max_body;
    a->max_conns = cf->http_max_connections;
    if (!(a->console = http_console_open(cf->http_console_dir)))
        goto fail;
    a->tls = cf->http_tls_cert != NULL;
    if (!(a->sessions = http_session_table_new((size_t)cf->http_max_sessions)))
        goto fail;
    if (listen_addr(cf->http_listen, &ss) < 0) {
        log_error("api: [http] listen %s: not an address to listen on", cf->http_listen);
        goto fail;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    int tls = cf->http_tls_cert != NULL;
    if (tls) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            log_error("api: this libmicrohttpd has no TLS: cannot serve [http] tls_cert");
            goto fail;
        }
        if (!(a->cert = read_pem(cf->http_tls_cert)) || !(a->key = read_pem(cf->http_tls_key)))
            goto fail;
        flags |= MHD_USE_TLS;
    }
    a->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, a,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,   /* first, or MHD warns */
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, a,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cf->http_timeout,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)cf->http_max_connections,
                            tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, a->cert,
                            MHD_OPTION_HTTPS_MEM_KEY, a->key,
                            MHD_OPTION_END);
    if (!a->d) {
        log_error("api: cannot listen on %s: %s", cf->http_listen, strerror(errno));
        goto fail;
    }
    log_info("api: listening on %s (%s)", cf->http_listen, tls ? "HTTPS" : "plain HTTP, loopback");
    return a;
fail:
    http_api_stop(a);
    return NULL;
}

int http_api_config_changed(const struct config *a, const struct config *b)
{
    return !str_same(a->http_listen, b->http_listen) || !str_same(a->http_tls_cert, b->http_tls_cert) ||
           !str_same(a->http_tls_key, b->http_tls_key) || a->http_max_body != b->http_max_body ||
           a->http_max_connections != b->http_max_connections || a->http_timeout != b->http_timeout ||
           a->http_max_sessions != b->http_max_sessions ||
           !str_same(a->http_console_dir, b->http_console_dir);
}

void http_api_stop(struct http_api *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stopping = 1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    if (a->d)
        MHD_stop_daemon(a->d);   /* joins the connection threads */
    a->d = NULL;
    pthread_mutex_lock(&a->mu);
    int pending = a->pending;
    a->dead = 1;
    pthread_mutex_unlock(&a->mu);
    if (!pending)   /* else posted work still queued: the last one frees us */
        http_api_free(a);
}

void http_api_free(struct http_api *a)
{
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    if (a->key)
        explicit_bzero(a->key, strlen(a->key));
    free(a->cert);
    free(a->key);
    http_console_close(a->console);
    http_session_table_free(a->sessions);
    free(a);
}
