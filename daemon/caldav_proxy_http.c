/* caldav_proxy_http.c - the CalDAV proxy's HTTP side (the iCalendar
 * decisions are caldav_proxy.c).
 *
 * Thread: libmicrohttpd runs on_request on a thread per connection; start
 * and stop run on the loop thread. The rep's calendar client talks plain
 * HTTP to 127.0.0.1:PORT; every request is forwarded to the real server
 * with libcurl, method, path, body and headers unchanged (Authorization
 * passes through: the proxy has no credentials of its own; a MOVE/COPY
 * Destination naming the proxy is made to name the server), and the
 * server's status, headers and body come back unchanged, streamed through a
 * bounded ring (any size). Request bodies are taken up to 32 MiB (413
 * beyond, logged). A PUT or DELETE to inspect goes to the loop
 * (on_loop_wait: loop_post, then a condition variable); a connection
 * thread never touches libical, windows, spool or store. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <curl/curl.h>
#include <libical/ical.h>
#include <microhttpd.h>
#include "untild/caldav_proxy_int.h"
#include "untild/daemon.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/strbuf.h"

/* ---- connection threads ------------------------------------------------- */

static void work_free_v(void *w)
{
    caldav_proxy_pwork_free(w);
}

/* Run w on the loop and wait (loop_post_wait). Returns 0 when done; -1 if
 * stopping (w then belongs to the loop); -2 if it could not be posted (w is
 * still ours). */
static int on_loop_wait(struct pwork *w)
{
    struct caldav_proxy *o = w->p;
    return loop_post_wait(o->loop, caldav_proxy_on_loop, w, &o->mu, &o->cv, &o->pending, &o->stopping,
                          &w->refs, &w->done, work_free_v);
}

struct hdrs { char *k[MAX_HDRS], *v[MAX_HDRS]; size_t n; };

static void hdrs_clear(struct hdrs *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->k[i]);
        free(h->v[i]);
    }
    h->n = 0;
}

static int hop_by_hop(const char *k)
{
    static const char *const skip[] = { "Host", "Content-Length", "Connection", "Keep-Alive",
        "Transfer-Encoding", "Expect", "Proxy-Connection", "TE", "Upgrade", "Trailer", "Date", NULL };
    for (size_t i = 0; skip[i]; i++)
        if (!strcasecmp(k, skip[i]))
            return 1;
    return 0;
}

/* ---- the answer, streamed ------------------------------------------------
 *
 * The server's answer goes to the client as it arrives, through a ring of
 * STREAM_RING bytes per connection: a transfer thread runs libcurl and
 * fills the ring (waiting while it is full), the connection thread waits
 * for the status and headers, then hands libmicrohttpd a reader that
 * drains the ring. Memory per answer is bounded whatever its size. */
#define STREAM_RING (256u << 10)

struct stream {
    struct caldav_proxy *p;
    CURL *cu;
    struct curl_slist *l;
    char *url, *reqbody;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *ring;
    size_t head, len;
    long status;            /* of the final (non-1xx) answer */
    long long clen;         /* its Content-Length, -1 if none */
    int hdrs_done, finished, abort;
    CURLcode cr;
    struct hdrs h;
};

static int stream_stopping(struct stream *st)
{
    pthread_mutex_lock(&st->p->mu);
    int stop = st->p->stopping;
    pthread_mutex_unlock(&st->p->mu);
    return stop;
}

static int on_xfer(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    struct stream *st = arg;
    (void)a; (void)b; (void)c; (void)d;
    pthread_mutex_lock(&st->mu);
    int ab = st->abort;
    pthread_mutex_unlock(&st->mu);
    return ab || stream_stopping(st);
}

static void headers_done(struct stream *st)
{
    pthread_mutex_lock(&st->mu);
    st->hdrs_done = 1;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

static size_t on_resp_header(char *b, size_t sz, size_t n, void *arg)
{
    struct stream *st = arg;
    struct hdrs *h = &st->h;
    size_t len = sz * n;
    if (len >= 5 && !memcmp(b, "HTTP/", 5)) {   /* a new answer (after 100 Continue) */
        const char *sp = memchr(b, ' ', len);
        hdrs_clear(h);
        st->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        st->clen = -1;
        return len;
    }
    if ((len == 2 && b[0] == '\r') || (len == 1 && b[0] == '\n')) {   /* end of the headers */
        if (st->status >= 200)
            headers_done(st);
        return len;
    }
    const char *colon = memchr(b, ':', len);
    if (!colon || h->n >= MAX_HDRS)
        return len;
    const char *v = colon + 1, *e = b + len;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
        e--;
    char *k = strndup(b, (size_t)(colon - b));
    if (!k)
        return 0;
    if (!strcasecmp(k, "Content-Length"))
        st->clen = strtoll(v, NULL, 10);
    if (hop_by_hop(k)) {
        free(k);
        return len;
    }
    h->k[h->n] = k;
    h->v[h->n++] = strndup(v, (size_t)(e - v));
    return len;
}

static size_t on_resp_body(char *b, size_t sz, size_t n, void *arg)
{
    struct stream *st = arg;
    size_t len = sz * n, done = 0;
    pthread_mutex_lock(&st->mu);
    st->hdrs_done = 1;
    while (done < len) {
        while (st->len == STREAM_RING && !st->abort) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_broadcast(&st->cv);
            pthread_cond_timedwait(&st->cv, &st->mu, &ts);
            if (st->len == STREAM_RING && stream_stopping(st))
                st->abort = 1;
        }
        if (st->abort)
            break;
        size_t tail = (st->head + st->len) % STREAM_RING;
        size_t room = STREAM_RING - st->len, k = len - done;
        if (k > room)
            k = room;
        if (k > STREAM_RING - tail)
            k = STREAM_RING - tail;
        memcpy(st->ring + tail, b + done, k);
        st->len += k;
        done += k;
        pthread_cond_broadcast(&st->cv);
    }
    pthread_mutex_unlock(&st->mu);
    return done == len ? len : 0;
}

static void *stream_run(void *arg)
{
    struct stream *st = arg;
    CURLcode cr = curl_easy_perform(st->cu);
    pthread_mutex_lock(&st->mu);
    st->cr = cr;
    st->finished = 1;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* libmicrohttpd asks for more of the answer. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *st = cls;
    (void)pos;
    pthread_mutex_lock(&st->mu);
    while (!st->len && !st->finished)
        pthread_cond_wait(&st->cv, &st->mu);
    size_t k = 0;
    if (st->len) {
        k = st->len < max ? st->len : max;
        if (k > STREAM_RING - st->head)
            k = STREAM_RING - st->head;
        memcpy(buf, st->ring + st->head, k);
        st->head = (st->head + k) % STREAM_RING;
        st->len -= k;
        pthread_cond_broadcast(&st->cv);
    }
    CURLcode cr = st->cr;
    pthread_mutex_unlock(&st->mu);
    if (k)
        return (ssize_t)k;
    if (cr != CURLE_OK)
        log_warn("caldav proxy: %s: answer cut short: %s", st->url, curl_easy_strerror(cr));
    return cr == CURLE_OK ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

/* Stop the transfer (if it still runs) and free everything. */
static void stream_free(void *cls)
{
    struct stream *st = cls;
    if (!st)
        return;
    if (st->cu) {
        pthread_mutex_lock(&st->mu);
        st->abort = 1;
        pthread_cond_broadcast(&st->cv);
        pthread_mutex_unlock(&st->mu);
        pthread_join(st->th, NULL);
        curl_easy_cleanup(st->cu);
    }
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    curl_slist_free_all(st->l);
    hdrs_clear(&st->h);
    free(st->ring);
    free(st->url);
    free(st->reqbody);
    free(st);
}

/* Start the transfer; wait for the answer's status and headers. Returns
 * 0, or -1 if the server did not answer (the transfer is over). */
static int stream_start(struct stream *st, const char *method, size_t reqlen, int put)
{
    CURL *cu = curl_easy_init();
    if (!cu || !(st->ring = malloc(STREAM_RING))) {
        curl_easy_cleanup(cu);
        return -1;
    }
    curl_easy_setopt(cu, CURLOPT_URL, st->url);
    curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(cu, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(cu, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT, 10L);
    /* no total limit on a large answer; a stalled one ends */
    curl_easy_setopt(cu, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(cu, CURLOPT_LOW_SPEED_TIME, 300L);
    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, st->l);
    curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, on_resp_header);
    curl_easy_setopt(cu, CURLOPT_HEADERDATA, st);
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_resp_body);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, st);
    curl_easy_setopt(cu, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(cu, CURLOPT_XFERINFOFUNCTION, on_xfer);
    curl_easy_setopt(cu, CURLOPT_XFERINFODATA, st);
    curl_easy_setopt(cu, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(cu, CURLOPT_SSL_VERIFYHOST, 2L);
    if (st->p->tls_ca)
        curl_easy_setopt(cu, CURLOPT_CAINFO, st->p->tls_ca);
    if (!strcasecmp(method, "HEAD"))
        curl_easy_setopt(cu, CURLOPT_NOBODY, 1L);
    else if (reqlen || put || !strcasecmp(method, "POST")) {
        curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)reqlen);
        curl_easy_setopt(cu, CURLOPT_POSTFIELDS, st->reqbody ? st->reqbody : "");
    }
    st->cu = cu;   /* before the thread reads it */
    if (pthread_create(&st->th, NULL, stream_run, st) != 0) {
        st->cu = NULL;
        curl_easy_cleanup(cu);
        return -1;
    }
    pthread_mutex_lock(&st->mu);
    while (!st->hdrs_done && !st->finished)
        pthread_cond_wait(&st->cv, &st->mu);
    int ok = st->hdrs_done && st->status >= 100;
    CURLcode cr = st->cr;
    pthread_mutex_unlock(&st->mu);
    if (!ok)
        log_warn("caldav proxy: %s %s: %s", method, st->url, cr != CURLE_OK ? curl_easy_strerror(cr) : "no answer");
    return ok ? 0 : -1;
}

struct req_hdrs {
    struct curl_slist *l;
    int has_ct, has_ce, ical;
    const struct caldav_proxy *p;
    char *dest;     /* the Destination path (MOVE, COPY) */
};

/* Destination names the proxy (the client knows no other host): name the
 * server instead, so a MOVE or COPY works. Returns the path part. */
static const char *dest_path(const char *v)
{
    if (!strncasecmp(v, "http://", 7) || !strncasecmp(v, "https://", 8)) {
        const char *s = strchr(strstr(v, "//") + 2, '/');
        return s ? s : "/";
    }
    return *v == '/' ? v : NULL;
}

static enum MHD_Result on_req_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct req_hdrs *r = cls;
    struct strbuf b = { 0 };
    (void)kind;
    if (!key || hop_by_hop(key))
        return MHD_YES;
    if (!strcasecmp(key, "Content-Type")) {
        r->has_ct = 1;
        r->ical = value && strcasestr(value, "text/calendar");
    }
    if (!strcasecmp(key, "Content-Encoding"))
        r->has_ce = 1;
    if (!strcasecmp(key, "Destination") && value && dest_path(value)) {
        const char *dp = dest_path(value);
        free(r->dest);
        r->dest = strdup(dp);
        sb_printf(&b, "Destination: %s%s", r->p->origin, dp);
        if (b.p)
            r->l = curl_slist_append(r->l, b.p);
        sb_free(&b);
        return MHD_YES;
    }
    if (value && *value)
        sb_printf(&b, "%s: %s", key, value);
    else
        sb_printf(&b, "%s;", key);
    if (b.p)
        r->l = curl_slist_append(r->l, b.p);
    sb_free(&b);
    return MHD_YES;
}

static enum MHD_Result on_query_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct strbuf *b = cls;
    (void)kind;
    sb_printf(b, "%s%s%s%s", b->len ? "&" : "?", key, value ? "=" : "", value ? value : "");
    return MHD_YES;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *text)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    enum MHD_Result rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

/* CalDAV precondition (RFC 4791 5.3.2.1) with the reason in words. */
static enum MHD_Result reply_refused(struct MHD_Connection *c, const char *why)
{
    struct strbuf b = { 0 };
    sb_puts(&b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:error xmlns:D=\"DAV:\" "
            "xmlns:C=\"urn:ietf:params:xml:ns:caldav\" xmlns:U=\"urn:untild\"><C:valid-calendar-data/>"
            "<U:message>untild: ");
    for (const char *s = why; *s; s++)
        sb_puts(&b, *s == '<' ? "&lt;" : *s == '&' ? "&amp;" : (char[2]){ *s, 0 });
    sb_puts(&b, "</U:message></D:error>\n");
    if (b.oom) {
        sb_free(&b);
        return reply(c, MHD_HTTP_FORBIDDEN, "untild: calendar data refused\n");
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(b.len, b.p, MHD_RESPMEM_MUST_COPY);
    sb_free(&b);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/xml; charset=utf-8");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_FORBIDDEN, r);
    MHD_destroy_response(r);
    return rc;
}

/* The user name of "Authorization: Basic ..." (malloc'd), or NULL. */
static char *basic_user(const char *auth)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char out[256];
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    if (!auth || strncasecmp(auth, "Basic ", 6))
        return NULL;
    for (const char *s = auth + 6; *s && *s != '=' && n < sizeof out - 1; s++) {
        const char *q = strchr(tab, *s);
        if (!q || !*s)
            return NULL;
        acc = (acc << 6) | (unsigned)(q - tab);
        if ((bits += 6) >= 8) {
            bits -= 8;
            out[n++] = (char)((acc >> bits) & 0xFF);
        }
    }
    out[n] = '\0';
    char *colon = strchr(out, ':');
    return colon ? strndup(out, (size_t)(colon - out)) : NULL;
}

/* The loop's part after the server took a PUT, DELETE or MOVE. Returns
 * 0, or -1 when shutting down (w then belongs to the loop). */
static int after_success(struct caldav_proxy *p, struct pwork *w, const char *path, const char *method,
                         const char *dest)
{
    int del = !strcasecmp(method, "DELETE"), move = !strcasecmp(method, "MOVE");
    if (w && w->uid) {
        w->kind = P_COMMIT;
        return on_loop_wait(w) == -1 ? -1 : 0;
    }
    if (!del && !(move && dest))
        return 0;
    struct pwork *dw = calloc(1, sizeof *dw);
    if (dw && (dw->path = strdup(path)) && (del || (dw->dest = strdup(dest)))) {
        dw->p = p;
        dw->kind = del ? P_DELETE : P_MOVE;
        if (on_loop_wait(dw) != -1)
            caldav_proxy_pwork_free(dw);
    } else if (dw) {
        caldav_proxy_pwork_free(dw);
    }
    return 0;
}

/* A calendar PUT: quiet attendees marked on the loop thread. Returns 0
 * (go on), or 1 with *rc when the client was answered already; *w is
 * NULL if it now belongs to the loop. */
static int put_prepare(struct caldav_proxy *p, struct MHD_Connection *c, const char *path, struct stream *st,
                       size_t *len, struct pwork **wp, enum MHD_Result *rc)
{
    struct pwork *w = calloc(1, sizeof *w);
    *wp = w;
    if (!w || !(w->path = strdup(path))) {
        *rc = reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "untild: out of memory\n");
        return 1;
    }
    w->p = p;
    w->kind = P_PREPARE;
    w->body = st->reqbody ? st->reqbody : "";
    w->len = *len;
    w->authuser = basic_user(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"));
    caldav_proxy_parse(w, p->max_calendar);
    int lr = on_loop_wait(w);
    if (lr < 0) {
        if (lr == -1)
            *wp = NULL;
        *rc = reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "untild: shutting down\n");
        return 1;
    }
    w->body = NULL;
    if (w->refused[0]) {
        *rc = reply_refused(c, w->refused);
        return 1;
    }
    if (w->newbody) {   /* the stream owns the body it sends */
        free(st->reqbody);
        st->reqbody = w->newbody;
        *len = w->newlen;
        w->newbody = NULL;
        w->changed = 1;
    }
    return 0;
}

static enum MHD_Result forward(struct caldav_proxy *p, struct MHD_Connection *c, const char *path,
                               const char *method, struct conn *cc)
{
    struct req_hdrs rh = { .p = p };
    struct strbuf url = { 0 }, q = { 0 };
    struct pwork *w = NULL;
    enum MHD_Result rc = MHD_NO;
    struct stream *st = calloc(1, sizeof *st);
    size_t len = cc->body.len;
    int put = !strcasecmp(method, "PUT");
    if (!st) {
        reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "untild: out of memory\n");
        return MHD_YES;
    }
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    st->p = p;
    st->reqbody = cc->body.p;   /* the stream owns the request body now */
    memset(&cc->body, 0, sizeof cc->body);

    MHD_get_connection_values(c, MHD_HEADER_KIND, on_req_header, &rh);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, on_query_arg, &q);
    sb_printf(&url, "%s%s%s", p->origin, path, q.p ? q.p : "");
    st->url = sb_take(&url, NULL);

    if (put && !rh.has_ce
        && (rh.ical || (len > 15 && !memcmp(st->reqbody, "BEGIN:VCALENDAR", 15)))
        && put_prepare(p, c, path, st, &len, &w, &rc))
        goto out;
    rh.l = curl_slist_append(rh.l, "Expect:");
    if (!rh.has_ct)
        rh.l = curl_slist_append(rh.l, "Content-Type:");   /* no curl default */
    st->l = rh.l;
    rh.l = NULL;
    if (!st->url || stream_start(st, method, len, put) < 0) {
        rc = reply(c, MHD_HTTP_BAD_GATEWAY, "untild: the calendar server did not answer\n");
        goto out;
    }
    long status = st->status;
    if (status / 100 == 2 && after_success(p, w, path, method, rh.dest) < 0) {
        w = NULL;
        rc = reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "untild: shutting down\n");
        goto out;
    }
    /* no body: HEAD, 204, 304 (never chunked) */
    int nobody = !strcasecmp(method, "HEAD") || status == 204 || status == 304;
    struct MHD_Response *r = nobody
        ? MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT)
        : MHD_create_response_from_callback(st->clen >= 0 ? (uint64_t)st->clen : MHD_SIZE_UNKNOWN,
                                            32 << 10, stream_read, st, stream_free);
    if (!r)
        goto out;
    /* RFC 7231 4.3.4: the stored body is not the client's, so no ETag:
     * the client must fetch it again. */
    int changed = w && w->changed && status / 100 == 2;
    for (size_t i = 0; i < st->h.n; i++)
        if (st->h.v[i] && !(changed && !strcasecmp(st->h.k[i], "ETag")))
            MHD_add_response_header(r, st->h.k[i], st->h.v[i]);
    rc = MHD_queue_response(c, (unsigned)status, r);
    if (!nobody)
        st = NULL;   /* the response frees it (stream_free) */
    MHD_destroy_response(r);
out:
    if (w)
        caldav_proxy_pwork_free(w);
    curl_slist_free_all(rh.l);
    free(rh.dest);
    sb_free(&url);
    sb_free(&q);
    stream_free(st);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **ptr)
{
    struct caldav_proxy *p = cls;
    struct conn *cc = *ptr;
    (void)version;
    if (!cc) {
        if (!(cc = calloc(1, sizeof *cc)))
            return MHD_NO;
        *ptr = cc;
        return MHD_YES;
    }
    if (*upload_size) {
        if (cc->body.len + *upload_size > p->max_body)
            cc->too_big = 1;
        else
            sb_add(&cc->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (cc->too_big || cc->body.oom) {
        log_warn("caldav proxy: %s %s: request body over [caldav] proxy_max_body (%zu bytes) refused", method,
                 url, p->max_body);
        return reply(c, 413, "untild: request body too large (over the CalDAV proxy's proxy_max_body)\n");
    }
    return forward(p, c, url, method, cc);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **ptr, enum MHD_RequestTerminationCode t)
{
    struct conn *cc = *ptr;
    (void)cls; (void)c; (void)t;
    if (cc) {
        sb_free(&cc->body);
        free(cc);
        *ptr = NULL;
    }
}

/* Keep the request path as the client sent it (percent-encoded): it goes
 * to the server unchanged. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls; (void)c;
    return strlen(s);
}

/* ---- start / stop ------------------------------------------------------- */

struct caldav_proxy *caldav_proxy_start(struct untild *u, const char *rep, const char *listen,
                                        const char *url, const char *tls_ca, size_t max_body)
{
    struct caldav_proxy *p = calloc(1, sizeof *p);
    struct sockaddr_in sin = { 0 };
    char host[256];
    const char *colon = strrchr(listen, ':');
    CURLU *h = curl_url();
    char *scheme = NULL, *uhost = NULL, *port = NULL;
    if (!p || !h)
        goto fail;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->u = u;
    p->loop = u->loop;
    p->max_calendar = u->cfg->max_calendar_part;
    p->max_body = max_body;
    if (!colon || (size_t)(colon - listen) >= sizeof host) {
        log_error("caldav proxy: bad proxy_listen %s", listen);
        goto fail;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        log_error("caldav proxy: proxy_listen %s: an IPv4 address is needed", listen);
        goto fail;
    }
    if (curl_url_set(h, CURLUPART_URL, url, 0) || curl_url_get(h, CURLUPART_SCHEME, &scheme, 0)
        || curl_url_get(h, CURLUPART_HOST, &uhost, 0))
        goto fail;
    curl_url_get(h, CURLUPART_PORT, &port, 0);
    struct strbuf o = { 0 };
    sb_printf(&o, "%s://%s%s%s", scheme, uhost, port ? ":" : "", port ? port : "");
    p->origin = sb_take(&o, NULL);
    p->rep = strdup(rep);
    p->listen = strdup(listen);
    p->tls_ca = tls_ca ? strdup(tls_ca) : NULL;
    if (!p->origin || !p->rep || !p->listen)
        goto fail;
    p->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD
                            | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, p,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, p,
                            MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, p,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                            MHD_OPTION_END);
    if (!p->d) {
        log_error("caldav proxy: cannot listen on %s: %s", listen, strerror(errno));
        goto fail;
    }
    curl_free(scheme);
    curl_free(uhost);
    curl_free(port);
    curl_url_cleanup(h);
    log_info("caldav proxy: %s on %s -> %s", rep, listen, p->origin);
    return p;
fail:
    curl_free(scheme);
    curl_free(uhost);
    curl_free(port);
    curl_url_cleanup(h);
    if (p) {
        p->d = NULL;
        caldav_proxy_stop(p);
    }
    return NULL;
}

void caldav_proxy_stop(struct caldav_proxy *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->d)
        MHD_stop_daemon(p->d);   /* joins the connection threads */
    p->d = NULL;
    if (p->pending) {   /* posted work still queued: it frees us when run */
        p->dead = 1;
        return;
    }
    caldav_proxy_free(p);
}

void caldav_proxy_free(struct caldav_proxy *p)
{
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->rep);
    free(p->origin);
    free(p->tls_ca);
    free(p->listen);
    free(p->principal);
    free(p);
}
