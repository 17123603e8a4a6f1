/* caldav_worker.c - the CalDAV watcher's worker thread: HTTP and WebDAV
 * (docs/DESIGN.md "Calendar path"; the loop side is caldav.c).
 *
 * Thread: everything here runs on the per-[caldav] worker thread
 * (caldav_worker_main), with libcurl easy, blocking: discovery (RFC 6764
 * /.well-known/caldav for a bare server URL, one same-origin redirect
 * followed by hand; current-user-principal, calendar-home-set), RFC 6578
 * sync-collection with the persisted token (507: ask again with the
 * returned token; rejected token: full resync), a getetag listing when the
 * server has no sync, calendar-multiget of what changed, and a
 * calendar-query of the windows calendar; the multistatus answers are
 * read by dav_xml.c (libxml2). It hands plain strings to the
 * loop thread (loop_post of the cw's on_result); it never touches struct
 * untild, the store, the windows or libical.
 *
 * With the proxy, each sync also repairs up to 16 server copies whose
 * released attendees still carry untild's SCHEDULE-AGENT=CLIENT (GET, PUT
 * with If-Match; see caldav_proxy.c "marks").
 *
 * Diagnostics: HTTP errors and timeouts end the sync with an error text
 * in the result; the loop side logs it and retries with backoff. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include "untild/sysutil.h"
#include "untild/caldav_int.h"
#include "untild/dav_xml.h"
#include "untild/ical_raw.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/strbuf.h"

#define MAX_RESP        DAV_XML_MAX_BODY   /* bytes of one HTTP response */
#define MAX_SYNC_ROUNDS 256           /* 507 continuations per sync */
#define MULTIGET_BATCH  100

static void xml_escape(struct strbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': sb_puts(b, "&lt;"); break;
        case '>': sb_puts(b, "&gt;"); break;
        case '&': sb_puts(b, "&amp;"); break;
        case '"': sb_puts(b, "&quot;"); break;
        default: sb_add(b, s, 1);
        }
    }
}

/* A value safe for the tab/newline separated state blob. */
static int clean(const char *s)
{
    return s && *s && !strpbrk(s, "\t\r\n");
}

/* ---- results handed to the loop ----------------------------------------- */

static void objs_free(struct objs *v)
{
    for (size_t i = 0; i < v->n; i++) {
        free(v->o[i].href);
        free(v->o[i].etag);
        free(v->o[i].data);
    }
    free(v->o);
    memset(v, 0, sizeof *v);
}

static int objs_add(struct objs *v, const char *href, const char *etag, char *data)
{
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 16;
        struct obj *o = realloc(v->o, nc * sizeof *o);
        if (!o)
            return -1;
        v->o = o;
        v->cap = nc;
    }
    struct obj *o = &v->o[v->n++];
    o->href = href ? strdup(href) : NULL;
    o->etag = etag ? strdup(etag) : NULL;
    o->data = data;
    return 0;
}

void caldav_job_free(struct job *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->num; i++) {
        free(j->um[i].path);
        free(j->um[i].value);
    }
    free(j->state);
    free(j->wins_tag);
    free(j);
}

void caldav_result_free(struct result *r)
{
    if (!r)
        return;
    free(r->state);
    free(r->principal);
    caldav_job_free(r->job);
    free(r->wins_tag);
    objs_free(&r->changed);
    objs_free(&r->wobj);
    free(r);
}

/* ---- HTTP (worker thread) ---------------------------------------------- */

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    struct strbuf *b = arg;
    size_t len = sz * n;
    if (b->len + len > MAX_RESP)
        return 0;
    sb_add(b, p, len);
    return b->oom ? 0 : len;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    struct cw *w = arg;
    (void)a; (void)b; (void)c; (void)d;
    return atomic_load(&w->quit) ? 1 : 0;
}

/* One WebDAV request. Returns 0 with *status, or -1 (transport error) with
 * err filled. */
static int dav(struct cw *w, const char *method, const char *url, const char *depth,
               const char *body, struct strbuf *out, long *status, char *err, size_t errsz)
{
    CURL *c = w->curl;
    struct curl_slist *h = NULL;
    char dh[32];
    curl_easy_reset(c);
    sb_free(out);
    *status = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);   /* never send credentials elsewhere */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "untild");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, w);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (w->tls_ca)
        curl_easy_setopt(c, CURLOPT_CAINFO, w->tls_ca);
    if (w->user) {
        curl_easy_setopt(c, CURLOPT_USERNAME, w->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, w->pass ? w->pass : "");
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    }
    snprintf(dh, sizeof dh, "Depth: %s", depth);
    h = curl_slist_append(h, "Content-Type: application/xml; charset=utf-8");
    h = curl_slist_append(h, dh);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        snprintf(err, errsz, "%s %s: %s", method, url, curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

static char *resolve(const char *base, const char *href)
{
    CURLU *h = curl_url();
    char *tmp = NULL, *out = NULL;
    if (h && !curl_url_set(h, CURLUPART_URL, base, 0) && !curl_url_set(h, CURLUPART_URL, href, 0)
        && !curl_url_get(h, CURLUPART_URL, &tmp, 0))
        out = strdup(tmp);
    curl_free(tmp);
    curl_url_cleanup(h);
    return out;
}

/* The path of a URL (to compare with hrefs). */
static char *url_path(const char *url)
{
    CURLU *h = curl_url();
    char *tmp = NULL, *out = NULL;
    if (h && !curl_url_set(h, CURLUPART_URL, url, 0) && !curl_url_get(h, CURLUPART_PATH, &tmp, 0))
        out = strdup(tmp);
    curl_free(tmp);
    curl_url_cleanup(h);
    return out;
}

/* Multistatus: parse a 207 body into *ms. -1 (logged, with err) if it is
 * not one. */
static int multistatus(const struct strbuf *b, struct dav_multistatus *ms, char *err, size_t errsz,
                       const char *url)
{
    char why[256];
    if (dav_xml_parse(b->p, b->len, ms, why, sizeof why) == 0)
        return 0;
    log_warn("caldav: malformed XML from %s: %s", url, why);
    snprintf(err, errsz, "malformed XML from %s: %.120s", url, why);   /* the log line has it whole */
    return -1;
}

#define NS "xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\" xmlns:CS=\"http://calendarserver.org/ns/\""

struct cal { char *href, *url, *name, *tag; int windows; };

static void cals_free(struct cal *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(c[i].href);
        free(c[i].url);
        free(c[i].name);
        free(c[i].tag);
    }
    free(c);
}

static int name_listed(const char *list, const char *name, const char *seg)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*t))
            t++;
        size_t l = strlen(t);
        while (l && isspace((unsigned char)t[l - 1]))
            t[--l] = '\0';
        if (!strcmp(t, "*") || (name && !strcasecmp(t, name)) || (seg && !strcasecmp(t, seg)))
            return 1;
    }
    return 0;
}

/* Same scheme, host and port (default ports filled in)? Credentials only
 * ever go to the origin of the configured url. */
static int same_origin(const char *a, const char *b)
{
    CURLU *ha = curl_url(), *hb = curl_url();
    int same = 0;
    if (ha && hb && !curl_url_set(ha, CURLUPART_URL, a, 0) && !curl_url_set(hb, CURLUPART_URL, b, 0)) {
        static const CURLUPart parts[] = { CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT };
        same = 1;
        for (size_t i = 0; i < sizeof parts / sizeof parts[0] && same; i++) {
            char *x = NULL, *y = NULL;
            unsigned flags = parts[i] == CURLUPART_PORT ? CURLU_DEFAULT_PORT : 0;
            same = !curl_url_get(ha, parts[i], &x, flags) && !curl_url_get(hb, parts[i], &y, flags)
                   && !strcasecmp(x, y);
            curl_free(x);
            curl_free(y);
        }
    }
    curl_url_cleanup(ha);
    curl_url_cleanup(hb);
    return same;
}

/* url without user, password and login options (malloc'd), or NULL. */
static char *strip_userinfo(const char *url)
{
    CURLU *h = curl_url();
    char *out = NULL, *s = NULL;
    if (h && !curl_url_set(h, CURLUPART_URL, url, 0) && !curl_url_set(h, CURLUPART_USER, NULL, 0)
        && !curl_url_set(h, CURLUPART_PASSWORD, NULL, 0) && !curl_url_set(h, CURLUPART_OPTIONS, NULL, 0)
        && !curl_url_get(h, CURLUPART_URL, &s, 0))
        out = strdup(s);
    curl_free(s);
    curl_url_cleanup(h);
    return out;
}

static int is_redirect(long st)
{
    return st == 301 || st == 302 || st == 303 || st == 307 || st == 308;
}

/* PROPFIND url (Depth 0); a 3xx answer is followed by hand, ONE hop, and
 * only to the same origin (libcurl's FOLLOWLOCATION stays off so that the
 * password never reaches another host). Returns 0 with *st and *final (the
 * URL that answered, malloc'd), -1 on error (err filled). */
static int propfind_follow(struct cw *w, const char *url, const char *body, struct strbuf *b,
                           long *st, char **final, char *err, size_t errsz)
{
    *final = NULL;
    if (dav(w, "PROPFIND", url, "0", body, b, st, err, errsz) < 0)
        return -1;
    if (!is_redirect(*st)) {
        *final = strdup(url);
        return *final ? 0 : -1;
    }
    char *loc = NULL;
    curl_easy_getinfo(w->curl, CURLINFO_REDIRECT_URL, &loc);
    if (!loc) {
        snprintf(err, errsz, "PROPFIND %s: HTTP %ld without Location", url, *st);
        return -1;
    }
    /* owned by the handle until the next request; libcurl may have put the
     * credentials into it: they must not travel on into later URLs and
     * log lines */
    char *to = strip_userinfo(loc);
    if (!to)
        return -1;
    if (!same_origin(url, to)) {
        log_warn("caldav: %s: redirect from %s to %s refused: not the same scheme, host and port",
                 w->rep, url, to);
        snprintf(err, errsz, "redirect from %s to %s refused (other host)", url, to);
        free(to);
        return -1;
    }
    if (dav(w, "PROPFIND", to, "0", body, b, st, err, errsz) < 0) {
        free(to);
        return -1;
    }
    if (is_redirect(*st)) {
        snprintf(err, errsz, "PROPFIND %s: redirected again (one redirect is followed)", to);
        free(to);
        return -1;
    }
    *final = to;
    return 0;
}

/* The URL's path is "/" (a bare server URL)? */
static int bare_url(const char *url)
{
    char *p = url_path(url);
    int bare = !p || !*p || !strcmp(p, "/");
    free(p);
    return bare;
}

/* The first response of a discovery answer (NULL if none). */
static const struct dav_response *first(const struct dav_multistatus *ms)
{
    return ms->n ? &ms->r[0] : NULL;
}

/* Does a discovery answer lead anywhere (a calendar, a home or a
 * principal)? */
static int useful(const struct dav_multistatus *ms)
{
    const struct dav_response *r = first(ms);
    return r && r->ok && ((r->restype & DAV_RT_CALENDAR) || r->home || r->principal);
}

/* The context URL (RFC 6764): a bare server URL tries /.well-known/caldav
 * first, any other URL tries itself first; the other one is the fallback
 * when the first has no principal. Returns 0 with the parsed answer *xo and
 * the URL that gave it *ctx; -1 with err. */
static int context(struct cw *w, const char *body, struct dav_multistatus *xo, char **ctx, char *err,
                   size_t errsz)
{
    char *wk = resolve(w->url, "/.well-known/caldav");
    const char *order[2];
    int bare = bare_url(w->url);
    order[0] = bare ? wk : w->url;
    order[1] = bare ? w->url : wk;
    struct dav_multistatus keep = { 0 };   /* the configured URL's answer, as a last resort */
    char *keep_url = NULL;
    struct strbuf b = { 0 };
    int rc = -1;
    memset(xo, 0, sizeof *xo);
    *ctx = NULL;
    for (size_t i = 0; i < 2; i++) {
        long st;
        char *fin = NULL;
        struct dav_multistatus x;
        if (!order[i] || (i == 1 && order[0] && !strcmp(order[0], order[1])))
            continue;
        if (propfind_follow(w, order[i], body, &b, &st, &fin, err, errsz) < 0)
            continue;
        if (st != 207) {
            snprintf(err, errsz, "PROPFIND %s: HTTP %ld", fin, st);
            free(fin);
            continue;
        }
        if (multistatus(&b, &x, err, errsz, fin) < 0) {
            free(fin);
            continue;
        }
        if (useful(&x)) {
            *xo = x;
            *ctx = fin;
            rc = 0;
            break;
        }
        if (order[i] == w->url && !keep_url) {
            keep = x;
            keep_url = fin;
            continue;
        }
        dav_xml_free(&x);
        free(fin);
    }
    if (rc < 0 && keep_url) {
        *xo = keep;
        *ctx = keep_url;
        memset(&keep, 0, sizeof keep);
        keep_url = NULL;
        rc = 0;
    }
    dav_xml_free(&keep);
    free(keep_url);
    free(wk);
    sb_free(&b);
    return rc;
}

/* Find the calendars: the context URL itself, its calendar-home-set, or
 * the home of its current-user-principal. */
static int discover(struct cw *w, struct cal **out, size_t *nout, char **principal, char *err, size_t errsz)
{
    struct strbuf b = { 0 };
    long st;
    struct dav_multistatus x = { 0 };
    char *home = NULL, *list_url = NULL, *ctx = NULL;
    const char *depth = "1";
    struct cal *cals = NULL;
    size_t n = 0;
    int rc = -1;
    static const char disc[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?><D:propfind " NS "><D:prop>"
        "<D:current-user-principal/><C:calendar-home-set/><D:resourcetype/></D:prop></D:propfind>";
    static const char lst[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?><D:propfind " NS "><D:prop>"
        "<D:resourcetype/><D:displayname/><D:sync-token/><CS:getctag/></D:prop></D:propfind>";

    if (context(w, disc, &x, &ctx, err, errsz) < 0)
        goto out;
    const struct dav_response *p = first(&x);
    if (p && p->ok && (p->restype & DAV_RT_CALENDAR)) {
        list_url = strdup(ctx);
        depth = "0";
    } else {
        char *h = p && p->home ? strdup(p->home) : NULL;
        char *pr = p && p->principal ? strdup(p->principal) : NULL;
        if (!h && pr) {
            char *pu = resolve(ctx, pr);
            dav_xml_free(&x);
            if (pu && same_origin(ctx, pu) && dav(w, "PROPFIND", pu, "0", disc, &b, &st, err, errsz) == 0
                && st == 207 && multistatus(&b, &x, err, errsz, pu) == 0 && first(&x) && first(&x)->home)
                h = strdup(first(&x)->home);
            free(pu);
        }
        if (pr && !*principal)
            *principal = pr;
        else
            free(pr);
        home = h;
        list_url = home ? resolve(ctx, home) : strdup(ctx);
    }
    dav_xml_free(&x);
    if (!list_url)
        goto out;
    if (!same_origin(ctx, list_url)) {
        snprintf(err, errsz, "calendar home %s refused: not on the server of %s", list_url, ctx);
        goto out;
    }
    if (dav(w, "PROPFIND", list_url, depth, lst, &b, &st, err, errsz) < 0)
        goto out;
    if (st != 207) {
        snprintf(err, errsz, "PROPFIND %s: HTTP %ld", list_url, st);
        goto out;
    }
    if (multistatus(&b, &x, err, errsz, list_url) < 0)
        goto out;
    for (size_t i = 0; i < x.n; i++) {
        struct dav_response *r = &x.r[i];
        if (!r->ok || !(r->restype & DAV_RT_CALENDAR) || !clean(r->href))
            continue;
        struct cal *nc = realloc(cals, (n + 1) * sizeof *nc);
        if (!nc)
            goto out;
        cals = nc;
        struct cal *c = &cals[n++];
        memset(c, 0, sizeof *c);
        c->href = r->href;   /* taken from the parse */
        r->href = NULL;
        c->url = resolve(list_url, c->href);
        if (c->url && !same_origin(list_url, c->url)) {   /* never send the password elsewhere */
            free(c->url);
            c->url = NULL;
        }
        c->name = r->displayname ? strdup(r->displayname) : NULL;
        c->tag = r->ctag ? strdup(r->ctag) : r->sync_token ? strdup(r->sync_token) : NULL;
        if (!c->url) {
            snprintf(err, errsz, "bad calendar href %s", c->href);
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        char seg[512];
        const char *h = cals[i].href;
        size_t l = strlen(h);
        while (l && h[l - 1] == '/')
            l--;
        size_t s = l;
        while (s && h[s - 1] != '/')
            s--;
        snprintf(seg, sizeof seg, "%.*s", (int)(l - s), h + s);
        cals[i].windows = w->wincal && *w->wincal && ((cals[i].name && !strcasecmp(cals[i].name, w->wincal))
                                                       || !strcasecmp(seg, w->wincal));
        if (!cals[i].windows && !name_listed(w->calendars, cals[i].name, seg)) {
            free(cals[i].href);   /* not watched: mark by dropping the href */
            cals[i].href = NULL;
        }
    }
    *out = cals;
    *nout = n;
    cals = NULL;
    n = 0;
    rc = 0;
out:
    cals_free(cals, n);
    dav_xml_free(&x);
    sb_free(&b);
    free(home);
    free(list_url);
    free(ctx);
    return rc;
}

/* calendar-multiget (hrefs) or calendar-query (hrefs NULL: every event). */
static int fetch(struct cw *w, const char *calurl, char **hrefs, size_t n, struct objs *out,
                 char *err, size_t errsz)
{
    struct strbuf q = { 0 }, b = { 0 };
    long st;
    int rc = -1;
    if (hrefs) {
        sb_puts(&q, "<?xml version=\"1.0\" encoding=\"utf-8\"?><C:calendar-multiget " NS "><D:prop>"
                "<D:getetag/><C:calendar-data/></D:prop>");
        for (size_t i = 0; i < n; i++) {
            sb_puts(&q, "<D:href>");
            xml_escape(&q, hrefs[i]);
            sb_puts(&q, "</D:href>");
        }
        sb_puts(&q, "</C:calendar-multiget>");
    } else {
        sb_puts(&q, "<?xml version=\"1.0\" encoding=\"utf-8\"?><C:calendar-query " NS "><D:prop>"
                "<D:getetag/><C:calendar-data/></D:prop><C:filter><C:comp-filter name=\"VCALENDAR\">"
                "<C:comp-filter name=\"VEVENT\"/></C:comp-filter></C:filter></C:calendar-query>");
    }
    if (q.oom || dav(w, "REPORT", calurl, "1", q.p, &b, &st, err, errsz) < 0)
        goto out;
    if (st != 207) {
        snprintf(err, errsz, "REPORT %s: HTTP %ld", calurl, st);
        goto out;
    }
    struct dav_multistatus x;
    if (multistatus(&b, &x, err, errsz, calurl) < 0)
        goto out;
    for (size_t i = 0; i < x.n; i++) {
        struct dav_response *r = &x.r[i];
        if (r->href && r->calendar_data && objs_add(out, r->href, r->etag, r->calendar_data) == 0)
            r->calendar_data = NULL;   /* taken by out */
    }
    dav_xml_free(&x);
    rc = 0;
out:
    sb_free(&q);
    sb_free(&b);
    return rc;
}

static int fetch_batched(struct cw *w, const char *calurl, char **hrefs, size_t n, struct objs *out,
                         char *err, size_t errsz)
{
    for (size_t i = 0; i < n; i += MULTIGET_BATCH)
        if (fetch(w, calurl, hrefs + i, n - i < MULTIGET_BATCH ? n - i : MULTIGET_BATCH, out, err, errsz) < 0)
            return -1;
    return 0;
}

struct hrefs { char **v; size_t n, cap; };

static int hrefs_add(struct hrefs *h, const char *s)
{
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 32;
        char **v = realloc(h->v, nc * sizeof *v);
        if (!v)
            return -1;
        h->v = v;
        h->cap = nc;
    }
    if (!(h->v[h->n] = strdup(s)))
        return -1;
    h->n++;
    return 0;
}

static void hrefs_free(struct hrefs *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->v[i]);
    free(h->v);
    memset(h, 0, sizeof *h);
}

/* Look up "K\tcal\t..." lines of the state blob: the token of a calendar. */
static char *state_token(const char *state, const char *cal)
{
    size_t cl = strlen(cal);
    for (const char *l = state; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t ll = nl ? (size_t)(nl - l) : strlen(l);
        if (ll > cl + 3 && l[0] == 'S' && l[1] == '\t' && !strncmp(l + 2, cal, cl) && l[2 + cl] == '\t')
            return strndup(l + 3 + cl, ll - 3 - cl);
        l = nl ? nl + 1 : l + ll;
    }
    return NULL;
}

/* The etag we recorded for href in calendar cal (fallback mode). */
static int state_has_etag(const char *state, const char *cal, const char *href, const char *etag)
{
    struct strbuf k = { 0 };
    int found = 0;
    sb_printf(&k, "E\t%s\t%s\t%s\n", cal, href, etag ? etag : "");
    if (state && k.p && strstr(state, k.p) && (strstr(state, k.p) == state || strstr(state, k.p)[-1] == '\n'))
        found = 1;
    sb_free(&k);
    return found;
}

/* Copy every line of the old state for calendar cal (a failed calendar
 * keeps its state). */
static void state_keep(struct strbuf *nb, const char *state, const char *cal)
{
    size_t cl = strlen(cal);
    for (const char *l = state; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t ll = nl ? (size_t)(nl - l) + 1 : strlen(l);
        if (ll > cl + 2 && l[1] == '\t' && !strncmp(l + 2, cal, cl) && l[2 + cl] == '\t')
            sb_add(nb, l, ll);
        l += ll;
    }
}

/* RFC 6578 sync of one calendar: changed objects into out, new token into
 * nb. Returns 0, 1 if the server has no sync-collection (use fallback), -1
 * on error. */
static int sync_cal(struct cw *w, const struct cal *c, const char *state, struct strbuf *nb,
                    struct objs *out, char *err, size_t errsz)
{
    char *token = state_token(state, c->href);
    struct hrefs changed = { 0 };
    struct strbuf q = { 0 }, b = { 0 };
    int rc = -1, reset = 0;
    char *mypath = url_path(c->url);
    for (int round = 0; round < MAX_SYNC_ROUNDS; round++) {
        long st;
        sb_free(&q);
        sb_puts(&q, "<?xml version=\"1.0\" encoding=\"utf-8\"?><D:sync-collection xmlns:D=\"DAV:\"><D:sync-token>");
        xml_escape(&q, token ? token : "");
        sb_puts(&q, "</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>");
        if (dav(w, "REPORT", c->url, "0", q.p, &b, &st, err, errsz) < 0)
            goto out;
        if (st != 207) {
            if (token && *token && !reset && (st == 403 || st == 409 || st == 400)) {
                /* The server forgot our token: start again from nothing. */
                log_info("caldav: %s: sync token for %s rejected (HTTP %ld): full resync", w->rep, c->href, st);
                free(token);
                token = NULL;
                reset = 1;
                hrefs_free(&changed);
                continue;
            }
            snprintf(err, errsz, "sync-collection %s: HTTP %ld", c->url, st);
            rc = (st == 501 || st == 403 || st == 405 || st == 400 || st == 415) ? 1 : -1;
            goto out;
        }
        struct dav_multistatus x;
        if (multistatus(&b, &x, err, errsz, c->url) < 0)
            goto out;
        int truncated = 0;
        for (size_t i = 0; i < x.n; i++) {
            const char *href = x.r[i].href;
            int rst = x.r[i].status;
            if (rst == 507 || (href && (!strcmp(href, c->href) || (mypath && !strcmp(href, mypath))))) {
                truncated |= rst == 507;
            } else if (href && clean(href) && rst != 404 && x.r[i].ok) {
                if (hrefs_add(&changed, href) < 0) {
                    dav_xml_free(&x);
                    goto out;
                }
            }
        }
        char *nt = x.sync_token;   /* taken from the parse */
        x.sync_token = NULL;
        dav_xml_free(&x);
        if (!nt && truncated)
            continue;   /* an empty token in a truncated answer: ask again from where we were */
        if (!nt) {
            snprintf(err, errsz, "sync-collection %s: no sync-token", c->url);
            goto out;
        }
        free(token);
        token = nt;
        if (!truncated)
            break;
    }
    if (fetch_batched(w, c->url, changed.v, changed.n, out, err, errsz) < 0)
        goto out;
    if (clean(token))
        sb_printf(nb, "S\t%s\t%s\n", c->href, token);
    rc = 0;
out:
    free(token);
    free(mypath);
    hrefs_free(&changed);
    sb_free(&q);
    sb_free(&b);
    return rc;
}

/* No sync-collection: list etags, fetch those that differ from the state. */
static int etag_cal(struct cw *w, const struct cal *c, const char *state, struct strbuf *nb,
                    struct objs *out, char *err, size_t errsz)
{
    static const char q[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?><D:propfind xmlns:D=\"DAV:\"><D:prop>"
        "<D:getetag/><D:resourcetype/></D:prop></D:propfind>";
    struct strbuf b = { 0 }, ctagline = { 0 };
    struct hrefs changed = { 0 };
    long st;
    int rc = -1;
    if (c->tag) {
        sb_printf(&ctagline, "C\t%s\t%s\n", c->href, c->tag);
        if (state && ctagline.p && strstr(state, ctagline.p)) {   /* ctag unchanged: nothing to do */
            state_keep(nb, state, c->href);
            rc = 0;
            goto out;
        }
    }
    if (dav(w, "PROPFIND", c->url, "1", q, &b, &st, err, errsz) < 0)
        goto out;
    if (st != 207) {
        snprintf(err, errsz, "PROPFIND %s: HTTP %ld", c->url, st);
        goto out;
    }
    struct dav_multistatus x;
    if (multistatus(&b, &x, err, errsz, c->url) < 0)
        goto out;
    for (size_t i = 0; i < x.n; i++) {
        const struct dav_response *r = &x.r[i];
        if (r->ok && clean(r->href) && clean(r->etag) && !(r->restype & DAV_RT_COLLECTION)) {
            sb_printf(nb, "E\t%s\t%s\t%s\n", c->href, r->href, r->etag);
            if (!state_has_etag(state, c->href, r->href, r->etag))
                hrefs_add(&changed, r->href);
        }
    }
    dav_xml_free(&x);
    if (fetch_batched(w, c->url, changed.v, changed.n, out, err, errsz) < 0)
        goto out;
    if (ctagline.p)
        sb_puts(nb, ctagline.p);
    rc = 0;
out:
    hrefs_free(&changed);
    sb_free(&b);
    sb_free(&ctagline);
    return rc;
}

/* A calendar's ctag (or sync-token) now; NULL if none or on error. */
static char *cal_tag(struct cw *w, const char *url)
{
    static const char q[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?><D:propfind " NS "><D:prop>"
        "<D:sync-token/><CS:getctag/></D:prop></D:propfind>";
    struct strbuf b = { 0 };
    char err[256];
    long st;
    char *tag = NULL;
    if (dav(w, "PROPFIND", url, "0", q, &b, &st, err, sizeof err) == 0 && st == 207) {
        struct dav_multistatus x;
        const struct dav_response *p = multistatus(&b, &x, err, sizeof err, url) == 0 ? first(&x) : NULL;
        if (p && (p->ctag || p->sync_token))
            tag = strdup(p->ctag ? p->ctag : p->sync_token);
        dav_xml_free(&x);
    }
    sb_free(&b);
    return tag;
}

/* ---- released attendees: the server's copy without SCHEDULE-AGENT=CLIENT */

struct etag_cap { char etag[256]; };

static size_t on_obj_header(char *b, size_t sz, size_t n, void *arg)
{
    struct etag_cap *e = arg;
    size_t len = sz * n;
    if (len > 5 && !strncasecmp(b, "ETag:", 5)) {
        const char *v = b + 5, *end = b + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            end--;
        if ((size_t)(end - v) < sizeof e->etag) {
            memcpy(e->etag, v, (size_t)(end - v));
            e->etag[end - v] = '\0';
        }
    }
    return len;
}

/* GET or PUT (If-Match) one calendar object. Returns 0 with *status, or -1. */
static int obj_req(struct cw *w, const char *method, const char *url, const struct strbuf *body,
                   const char *ifmatch, struct strbuf *out, long *status, struct etag_cap *ec)
{
    CURL *c = w->curl;
    struct curl_slist *h = NULL;
    struct strbuf im = { 0 };
    curl_easy_reset(c);
    sb_free(out);
    *status = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "untild");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_obj_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, ec);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, w);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (w->tls_ca)
        curl_easy_setopt(c, CURLOPT_CAINFO, w->tls_ca);
    if (w->user) {
        curl_easy_setopt(c, CURLOPT_USERNAME, w->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, w->pass ? w->pass : "");
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    }
    h = curl_slist_append(h, "Expect:");
    if (body) {
        h = curl_slist_append(h, "Content-Type: text/calendar; charset=utf-8");
        sb_printf(&im, "If-Match: %s", ifmatch);
        if (im.p)
            h = curl_slist_append(h, im.p);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->p);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    sb_free(&im);
    return rc == CURLE_OK ? 0 : -1;
}

/* The object's text without SCHEDULE-AGENT=CLIENT on value's ATTENDEE
 * lines; every other byte kept. Returns the number of lines changed. */
static int unmark_text(const char *s, size_t n, const char *value, struct strbuf *out)
{
    static const char *const drop[] = { "SCHEDULE-AGENT", NULL };
    struct strbuf u = { 0 };
    struct icr_line l;
    size_t pos = 0;
    int changed = 0;
    while (icr_next(s, n, &pos, &l)) {
        struct icr_prop p;
        char sa[32];
        icr_unfold(s, &l, &u);
        if (u.len && icr_parse(u.p, u.len, &p) == 0 && icr_name_is(p.name, p.nlen, "ATTENDEE")
            && p.vlen == strlen(value) && !strncasecmp(p.value, value, p.vlen)
            && icr_param_first(&p, "SCHEDULE-AGENT", sa, sizeof sa) > 0 && !strcasecmp(sa, "CLIENT")) {
            icr_rewrite(&p, drop, NULL, l.eol == 1 ? "\n" : "\r\n", out);
            if (!l.eol)
                out->len -= 2, out->p[out->len] = '\0';
            changed++;
            continue;
        }
        sb_add(out, s + l.off, l.len);
    }
    sb_free(&u);
    return changed;
}

/* One released attendee: GET the object, drop the parameter, PUT it back
 * with If-Match (a concurrent edit wins; the next sync tries again).
 * Returns 1 when done (or the object is gone), 0 to try again. */
static int unmark_one(struct cw *w, const struct caldav_unmark *um)
{
    char *url = resolve(w->url, um->path);
    struct strbuf b = { 0 }, nb = { 0 }, out = { 0 };
    struct etag_cap ec = { "" };
    long st = 0;
    int done = 0;
    if (!url || !same_origin(w->url, url))
        goto out;
    if (obj_req(w, "GET", url, NULL, NULL, &b, &st, &ec) < 0)
        goto out;
    if (st == 404 || st == 410) {
        done = 1;
        goto out;
    }
    if (st != 200 || !b.p || !ec.etag[0]) {
        log_warn("caldav: %s: GET %s: HTTP %ld%s; will try again", w->rep, url, st,
                 st == 200 ? " without an ETag" : "");
        goto out;
    }
    if (!unmark_text(b.p, b.len, um->value, &nb)) {
        done = 1;   /* already without the parameter */
        goto out;
    }
    if (nb.oom || obj_req(w, "PUT", url, &nb, ec.etag, &out, &st, &ec) < 0)
        goto out;
    done = st / 100 == 2;
    if (!done)
        log_info("caldav: %s: PUT %s (If-Match %s): HTTP %ld; will try again", w->rep, url, ec.etag, st);
out:
    free(url);
    sb_free(&b);
    sb_free(&nb);
    sb_free(&out);
    return done;
}

static void unmark_all(struct cw *w, struct job *j)
{
    for (size_t i = 0; i < j->num && !atomic_load(&w->quit); i++)
        j->um_done[i] = unmark_one(w, &j->um[i]);
}

static void run_job(struct cw *w, const struct job *j, struct result *r)
{
    struct cal *cals = NULL;
    size_t n = 0;
    struct strbuf nb = { 0 };
    if (discover(w, &cals, &n, &r->principal, r->err, sizeof r->err) < 0)
        return;
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        struct cal *c = &cals[i];
        if (c->windows) {
            r->wins_found = 1;
            r->wins_tag = c->tag ? strdup(c->tag) : NULL;
            if (c->tag && j->wins_tag && !strcmp(c->tag, j->wins_tag))
                continue;   /* unchanged since we built the windows */
            if (fetch(w, c->url, NULL, 0, &r->wobj, r->err, sizeof r->err) < 0) {
                failed = 1;
                break;
            }
            r->wins_fetched = 1;
            /* An edit between the listing and the fetch: the content is
             * newer than the tag, and a later tag may equal the old one
             * (Radicale's ctag of an emptied calendar): keep no tag, so the
             * next sync fetches again. */
            char *now_tag = cal_tag(w, c->url);
            if (!now_tag || !c->tag || strcmp(now_tag, c->tag)) {
                free(r->wins_tag);
                r->wins_tag = NULL;
            }
            free(now_tag);
            continue;
        }
        if (!c->href)
            continue;
        /* sync = etag forces the fallback (servers whose sync-collection
         * is broken, and the tests of the fallback itself). */
        int s = w->sync_etag ? 1 : sync_cal(w, c, j->state, &nb, &r->changed, r->err, sizeof r->err);
        if (s == 1)
            s = etag_cal(w, c, j->state, &nb, &r->changed, r->err, sizeof r->err);
        if (s < 0) {
            failed = 1;
            break;
        }
    }
    cals_free(cals, n);
    if (failed || nb.oom) {
        sb_free(&nb);
        return;
    }
    r->state = nb.p ? sb_take(&nb, NULL) : strdup("");
    r->ok = r->state != NULL;
}

void *caldav_worker_main(void *arg)
{
    struct cw *w = arg;
    sysutil_below_loop();
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->job && !atomic_load(&w->quit))
            pthread_cond_wait(&w->cv, &w->mu);
        struct job *j = w->job;
        w->job = NULL;
        pthread_mutex_unlock(&w->mu);
        if (!j)
            break;
        struct result *r = calloc(1, sizeof *r);
        if (r) {
            r->w = w;
            unmark_all(w, j);
            run_job(w, j, r);
            r->job = j;   /* the loop records the unmarks done */
        } else {
            caldav_job_free(j);
        }
        if (atomic_load(&w->quit)) {
            caldav_result_free(r);
            break;
        }
        if (r) {
            atomic_store(&w->posted, 1);
            if (loop_post(w->loop, w->on_result, r) < 0) {
                atomic_store(&w->posted, 0);
                caldav_result_free(r);
            }
        }
    }
    return NULL;
}
