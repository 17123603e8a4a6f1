/* followup_cal.c - follow-up items in the rep's calendar (see
 * followup_cal.h).
 *
 * Synopsis: followup_cal_start() once the windows are loaded; the
 * follow-up scan calls followup_cal_sync() after every window change.
 * sync walks the window index once, compares each of the reps' follow-ups
 * with what the store says was put (followup_items: rep, date and
 * title, mirrored in memory), and queues at most MAX_JOBS puts or removals; the worker does
 * them and posts each result back, which is recorded only on success (a
 * failure is retried at the next sync).
 *
 * Why a worker of its own: the CalDAV watcher's worker syncs on its own
 * schedule; these are a few writes, and sharing its queue would couple
 * the two. Discovery is cached per rep for the worker's life.
 *
 * Diagnostics: "followup: calendar item for WINDOW put/removed (REP)"
 * (info); HTTP failures (warn, retried at the next sync). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include "untild/sysutil.h"
#include "untild/followup_cal.h"
#include "untild/daemon.h"
#include "untild/dav_xml.h"
#include "untild/policy.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/secret.h"
#include "untild/store.h"
#include "untild/strbuf.h"
#include "untild/when.h"
#include "untild/windows.h"

#define MAX_JOBS 64            /* puts/removals queued per sync */
#define MAX_RESP (1u << 20)

/* What was put, per window: the store's followup_items, mirrored in an
 * open-addressing map so a sync compares without a query per window. */
struct item {
    char wid[WINDOW_ID_MAX];
    char *state;               /* NULL: free slot; "": deleted (a tombstone) */
};

struct job {
    struct job *next;
    struct followup_cal *f;
    int rep;                   /* index into cfg->caldav */
    char wid[WINDOW_ID_MAX];
    char *state;               /* what to record on success; NULL: a removal */
    char *ics;                 /* NULL: DELETE */
    int ok;
    char err[256];
};

struct rep_cal {
    char *url, *user, *pass, *tls_ca, *calurl;
};

struct followup_cal {
    struct untild *u;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
    int quit, inflight;
    int again;                 /* a sync was asked for while jobs were out */
    struct rep_cal reps[CONFIG_MAX_REPS];
    size_t nreps;
    char *calname;
    struct item *map;
    size_t cap, used;          /* slots, slots ever filled (tombstones count) */
};

/* ---------- pure: the item ---------- */

static void ical_text(struct strbuf *b, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\\' || *s == ';' || *s == ',')
            sb_printf(b, "\\%c", *s);
        else if (*s == '\n')
            sb_puts(b, "\\n");
        else if ((unsigned char)*s >= 0x20)
            sb_add(b, s, 1);
    }
}

char *followup_cal_ics(const char *uid, const char *date, const char *summary,
                       const char *description, int todo, int done, time_t now)
{
    struct strbuf b = { 0 };
    struct tm tm;
    char stamp[32], next[16];
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    struct tm d = { 0 };
    if (strlen(date) != 8 || sscanf(date, "%4d%2d%2d", &d.tm_year, &d.tm_mon, &d.tm_mday) != 3)
        return NULL;
    d.tm_year -= 1900;
    d.tm_mon -= 1;
    d.tm_hour = 12;
    time_t t = timegm(&d) + 86400;
    gmtime_r(&t, &d);
    strftime(next, sizeof next, "%Y%m%d", &d);
    sb_printf(&b, "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//untild//follow-up//EN\r\n"
              "BEGIN:%s\r\nUID:%s\r\nDTSTAMP:%s\r\n", todo ? "VTODO" : "VEVENT", uid, stamp);
    if (todo)
        sb_printf(&b, "DUE;VALUE=DATE:%s\r\nSTATUS:%s\r\n", date, done ? "COMPLETED" : "NEEDS-ACTION");
    else
        sb_printf(&b, "DTSTART;VALUE=DATE:%s\r\nDTEND;VALUE=DATE:%s\r\nTRANSP:TRANSPARENT\r\n", date, next);
    sb_puts(&b, "SUMMARY:");
    ical_text(&b, summary);
    sb_puts(&b, "\r\nDESCRIPTION:");
    ical_text(&b, description);
    sb_printf(&b, "\r\nEND:%s\r\nEND:VCALENDAR\r\n", todo ? "VTODO" : "VEVENT");
    if (b.oom) {
        sb_free(&b);
        return NULL;
    }
    return sb_take(&b, NULL);
}

/* ---------- the worker: HTTP ---------- */

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    struct strbuf *b = arg;
    if (b->len + sz * n > MAX_RESP)
        return 0;
    sb_add(b, p, sz * n);
    return b->oom ? 0 : sz * n;
}

static long http(CURL *c, const struct rep_cal *r, const char *method, const char *url,
                 const char *depth, const char *ctype, const char *body, struct strbuf *out)
{
    struct curl_slist *h = NULL;
    char line[64];
    long status = 0;
    curl_easy_reset(c);
    sb_free(out);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "untild");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    if (r->tls_ca)
        curl_easy_setopt(c, CURLOPT_CAINFO, r->tls_ca);
    if (r->user) {
        curl_easy_setopt(c, CURLOPT_USERNAME, r->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, r->pass ? r->pass : "");
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    }
    if (depth) {
        snprintf(line, sizeof line, "Depth: %s", depth);
        h = curl_slist_append(h, line);
    }
    snprintf(line, sizeof line, "Content-Type: %s", ctype ? ctype : "application/xml; charset=utf-8");
    h = curl_slist_append(h, line);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    return status;
}

/* PROPFIND url and parse its multistatus into *ms. 0, or -1 with err
 * (a malformed body is also logged). */
static int propfind(CURL *c, const struct rep_cal *r, const char *url, const char *depth, const char *body,
                    const char *what, struct dav_multistatus *ms, char *err, size_t errsz)
{
    struct strbuf b = { 0 };
    char why[256];
    int rc = -1;
    long st = http(c, r, "PROPFIND", url, depth, NULL, body, &b);
    if (st != 207 || !b.p) {
        snprintf(err, errsz, "PROPFIND %s (%s): %ld", url, what, st);
    } else if (dav_xml_parse(b.p, b.len, ms, why, sizeof why) < 0) {
        log_warn("followup: malformed XML from %s: %s", url, why);
        snprintf(err, errsz, "PROPFIND %s (%s): malformed XML: %.120s", url, what, why);
    } else {
        rc = 0;
    }
    sb_free(&b);
    return rc;
}

/* An href property of the first response (NULL if none). */
static const char *first_href(const struct dav_multistatus *ms, int home)
{
    if (!ms->n || !ms->r[0].ok)
        return NULL;
    return home ? ms->r[0].home : ms->r[0].principal;
}

static char *absolute(const char *base, const char *href)
{
    char *out = NULL;
    if (strstr(href, "://"))
        return strdup(href);
    const char *host = strstr(base, "://");
    const char *path = host ? strchr(host + 3, '/') : NULL;
    int hl = path ? (int)(path - base) : (int)strlen(base);
    if (asprintf(&out, "%.*s%s", hl, base, href) < 0)
        return NULL;
    return out;
}

static const char PROP_PRINCIPAL[] =
    "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><D:current-user-principal/>"
    "</D:prop></D:propfind>";
static const char PROP_HOME[] =
    "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\">"
    "<D:prop><C:calendar-home-set/></D:prop></D:propfind>";
static const char PROP_NAMES[] =
    "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><D:displayname/><D:resourcetype/>"
    "</D:prop></D:propfind>";

/* The calendar URL of rep r named name: found or made. 0 or -1. */
static int find_calendar(CURL *c, struct rep_cal *r, const char *name, char *err, size_t errsz)
{
    struct strbuf b = { 0 };
    struct dav_multistatus ms = { 0 };
    char *principal = NULL, *home = NULL;
    int rc = -1;
    long st;
    if (propfind(c, r, r->url, "0", PROP_PRINCIPAL, "current-user-principal", &ms, err, errsz) < 0)
        goto out;
    if (!first_href(&ms, 0)) {
        snprintf(err, errsz, "PROPFIND %s: no current-user-principal", r->url);
        goto out;
    }
    principal = absolute(r->url, first_href(&ms, 0));
    dav_xml_free(&ms);
    if (!principal || propfind(c, r, principal, "0", PROP_HOME, "calendar-home-set", &ms, err, errsz) < 0)
        goto out;
    if (!first_href(&ms, 1)) {
        snprintf(err, errsz, "PROPFIND %s: no calendar-home-set", principal);
        goto out;
    }
    home = absolute(r->url, first_href(&ms, 1));
    dav_xml_free(&ms);
    if (!home || propfind(c, r, home, "1", PROP_NAMES, "calendars", &ms, err, errsz) < 0)
        goto out;
    for (size_t i = 0; i < ms.n; i++) {   /* a calendar of that name */
        const struct dav_response *cal = &ms.r[i];
        if (cal->ok && (cal->restype & DAV_RT_CALENDAR) && cal->href && cal->displayname
            && !strcmp(cal->displayname, name)) {
            r->calurl = absolute(r->url, cal->href);
            rc = r->calurl ? 0 : -1;
            goto out;
        }
    }
    /* not there: make it (a slug of the name under the home) */
    char slug[64], *url = NULL;
    size_t k = 0;
    for (const char *s = name; *s && k + 1 < sizeof slug; s++)
        slug[k++] = ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')) ? *s
                    : (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : '-';
    slug[k] = '\0';
    struct strbuf mk = { 0 };
    sb_puts(&mk, "<?xml version=\"1.0\"?><C:mkcalendar xmlns:D=\"DAV:\" "
                 "xmlns:C=\"urn:ietf:params:xml:ns:caldav\"><D:set><D:prop><D:displayname>");
    for (const char *s = name; *s; s++)
        *s == '<' ? sb_puts(&mk, "&lt;") : *s == '&' ? sb_puts(&mk, "&amp;") : sb_add(&mk, s, 1);
    sb_puts(&mk, "</D:displayname></D:prop></D:set></C:mkcalendar>");
    if (asprintf(&url, "%s%s%s/", home, home[strlen(home) - 1] == '/' ? "" : "/", slug) < 0)
        url = NULL;
    st = url && mk.p ? http(c, r, "MKCALENDAR", url, NULL, NULL, mk.p, &b) : 0;
    sb_free(&mk);
    if (st != 201) {
        snprintf(err, errsz, "MKCALENDAR %s: %ld", url ? url : "?", st);
        free(url);
        goto out;
    }
    log_info("followup: created the calendar \"%s\" at %s", name, url);
    r->calurl = url;
    rc = 0;
out:
    dav_xml_free(&ms);
    free(principal);
    free(home);
    sb_free(&b);
    return rc;
}

static void job_done(void *arg);

static void run_job(CURL *c, struct followup_cal *f, struct job *j)
{
    struct rep_cal *r = &f->reps[j->rep];
    struct strbuf b = { 0 };
    char url[2048];
    if (!r->calurl && find_calendar(c, r, f->calname, j->err, sizeof j->err) < 0)
        return;
    snprintf(url, sizeof url, "%suntild-followup-%s.ics", r->calurl, j->wid);
    long st = j->ics ? http(c, r, "PUT", url, NULL, "text/calendar; charset=utf-8", j->ics, &b)
                     : http(c, r, "DELETE", url, NULL, NULL, NULL, &b);
    j->ok = (st >= 200 && st < 300) || (!j->ics && st == 404);
    if (!j->ok)
        snprintf(j->err, sizeof j->err, "%s %.200s: %ld", j->ics ? "PUT" : "DELETE", url, st);
    sb_free(&b);
}

static void *worker(void *arg)
{
    struct followup_cal *f = arg;
    sysutil_below_loop();
    CURL *c = curl_easy_init();
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->head && !f->quit)
            pthread_cond_wait(&f->cv, &f->mu);
        if (f->quit)
            break;
        struct job *j = f->head;
        f->head = j->next;
        if (!f->head)
            f->tail = NULL;
        pthread_mutex_unlock(&f->mu);
        if (c)
            run_job(c, f, j);
        else
            snprintf(j->err, sizeof j->err, "no curl handle");
        if (loop_post(f->u->loop, job_done, j) < 0)
            log_error("followup: cannot report a calendar result");
        pthread_mutex_lock(&f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    if (c)
        curl_easy_cleanup(c);
    return NULL;
}

/* ---------- the loop: what should be in the calendars ---------- */

/* As followup_due_at (followup.h, which includes this module). */
static time_t due_at(const struct policy_cfg *cfg, const struct window *w)
{
    if (!w || w->rrule || w->until == WHEN_NEVER || w->until <= 0 ||
        policy_window_action(cfg, w) == ACTION_ALLOW)
        return 0;
    struct window_match m = { .w = w, .quiet_until = w->until, .recurring = 0 };
    return policy_release_at(cfg, &m);
}

static int rep_index(const struct untild *u, const char *owner)
{
    const struct config *c = u->cfg;
    for (size_t i = 0; owner && i < c->ncaldav; i++) {
        const char *rep = c->caldav[i].rep ? c->caldav[i].rep : c->owner;
        if (rep && !strcasecmp(rep, owner))
            return (int)i;
    }
    return -1;
}

static size_t wid_hash(const char *s)
{
    size_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static struct item *map_find(const struct followup_cal *f, const char *wid)
{
    if (!f->cap)
        return NULL;
    for (size_t i = wid_hash(wid) & (f->cap - 1);; i = (i + 1) & (f->cap - 1)) {
        if (!f->map[i].state)
            return NULL;
        if (f->map[i].state[0] && !strcmp(f->map[i].wid, wid))
            return &f->map[i];
    }
}

static int map_put(struct followup_cal *f, const char *wid, const char *state);

static int map_grow(struct followup_cal *f)
{
    struct item *old = f->map;
    size_t oldcap = f->cap;
    f->cap = f->cap ? f->cap * 2 : 256;
    f->used = 0;
    if (!(f->map = calloc(f->cap, sizeof *f->map))) {
        f->map = old;
        f->cap = oldcap;
        return -1;
    }
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].state && old[i].state[0])
            map_put(f, old[i].wid, old[i].state);
        free(old[i].state);
    }
    free(old);
    return 0;
}

static int map_put(struct followup_cal *f, const char *wid, const char *state)
{
    struct item *it = map_find(f, wid);
    char *v = strdup(state);
    if (!v)
        return -1;
    if (it) {
        free(it->state);
        it->state = v;
        return 0;
    }
    if ((f->used + 1) * 2 > f->cap && map_grow(f) < 0) {
        free(v);
        return -1;
    }
    size_t i = wid_hash(wid) & (f->cap - 1);
    while (f->map[i].state)
        i = (i + 1) & (f->cap - 1);
    snprintf(f->map[i].wid, sizeof f->map[i].wid, "%s", wid);
    f->map[i].state = v;
    f->used++;
    return 0;
}

static void map_del(struct followup_cal *f, const char *wid)
{
    struct item *it = map_find(f, wid);
    if (it) {
        char *t = strdup("");       /* a tombstone keeps the probe chains intact */
        if (t) {
            free(it->state);
            it->state = t;
        }
    }
}

static int load_item(const char *wid, const char *state, void *arg)
{
    if (wid && state && state[0])
        map_put(arg, wid, state);
    return 0;
}

static void job_done(void *arg)
{
    struct job *j = arg;
    struct followup_cal *f = j->f;
    f->inflight--;
    if (!j->ok) {
        log_warn("followup: calendar item for %s not %s: %s (retried)", j->wid, j->ics ? "put" : "removed",
                 j->err);
    } else if (j->state) {
        if (store_fuitem_set(f->u->store, j->wid, j->state) < 0 || map_put(f, j->wid, j->state) < 0)
            log_error("followup: cannot record the calendar item for %s (it may be put again)", j->wid);
        log_info("followup: calendar item for %s put (%s)", j->wid, f->u->cfg->caldav[j->rep].rep
                 ? f->u->cfg->caldav[j->rep].rep : "owner");
    } else {
        store_fuitem_del(f->u->store, j->wid);
        map_del(f, j->wid);
        log_info("followup: calendar item for %s removed", j->wid);
    }
    free(j->state);
    free(j->ics);
    free(j);
    if (!f->inflight && f->again) {
        f->again = 0;
        followup_cal_sync(f);
    }
}

static void submit(struct followup_cal *f, int rep, const char *wid, char *state, char *ics)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        free(state);
        free(ics);
        return;
    }
    j->f = f;
    j->rep = rep;
    snprintf(j->wid, sizeof j->wid, "%s", wid);
    j->state = state;
    j->ics = ics;
    f->inflight++;
    pthread_mutex_lock(&f->mu);
    if (f->tail)
        f->tail->next = j;
    else
        f->head = j;
    f->tail = j;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

struct walk {
    struct followup_cal *f;
    time_t now;
    int queued;
};

static int walk_one(const struct window *w, void *arg)
{
    struct walk *k = arg;
    struct untild *u = k->f->u;
    int rep = rep_index(u, w->owner);
    time_t at = rep >= 0 ? due_at(&u->pcfg, w) : 0;
    if (!at || k->queued >= MAX_JOBS)
        return 0;
    char date[64], state[600], summary[512];
    when_format(at, w->tz ? w->tz : u->cfg->timezone, date, sizeof date);
    char ymd[9] = { date[0], date[1], date[2], date[3], date[5], date[6], date[8], date[9], 0 };
    snprintf(summary, sizeof summary, "Follow up with %s%s%s", w->who[0], w->reason ? ": " : "",
             w->reason ? w->reason : "");
    snprintf(state, sizeof state, "%d %s %s", rep, ymd, summary);
    const struct item *old = map_find(k->f, w->id);
    if (old && !strcmp(old->state, state))
        return 0;
    char uid[64], desc[300];
    snprintf(uid, sizeof uid, "untild-followup-%s@untild", w->id);
    snprintf(desc, sizeof desc, "untild: the window %s for %s ends; follow up today.", w->id, w->who[0]);
    char *ics = followup_cal_ics(uid, ymd, summary, desc, u->cfg->followup_item_todo, 0, k->now);
    char *st = strdup(state);
    if (ics && st) {
        submit(k->f, rep, w->id, st, ics);
        k->queued++;
    } else {
        free(ics);
        free(st);
    }
    return 0;
}

/* Items whose window is gone before its date: removed (event) or done
 * (todo). Past ones stay as they are. */
static void gone(struct followup_cal *f, struct walk *k)
{
    struct untild *u = f->u;
    char today[64];
    when_format(k->now, u->cfg->timezone, today, sizeof today);
    char ymd[9] = { today[0], today[1], today[2], today[3], today[5], today[6], today[8], today[9], 0 };
    for (size_t i = 0; i < f->cap && k->queued < MAX_JOBS; i++) {
        struct item *it = &f->map[i];
        if (!it->state || !it->state[0] || windows_get(u->ix, it->wid))
            continue;
        int rep = atoi(it->state);
        char date[9] = "", summary[512] = "", wid[WINDOW_ID_MAX];
        snprintf(wid, sizeof wid, "%s", it->wid);
        sscanf(it->state, "%*d %8s %511[^\n]", date, summary);
        if (strcmp(date, ymd) < 0 || rep < 0 || (size_t)rep >= u->cfg->ncaldav) {
            store_fuitem_del(u->store, wid);    /* its day is past: leave the calendar alone */
            map_del(f, wid);
            continue;
        }
        char *ics = NULL, uid[64];
        if (u->cfg->followup_item_todo) {
            snprintf(uid, sizeof uid, "untild-followup-%s@untild", wid);
            ics = followup_cal_ics(uid, date, summary, "untild: the window was ended by hand.", 1, 1, k->now);
            if (!ics)
                continue;
        }
        submit(f, rep, wid, NULL, ics);
        k->queued++;
    }
}

void followup_cal_sync(struct followup_cal *f)
{
    if (!f)
        return;
    if (f->inflight) {          /* one round at a time: results first */
        f->again = 1;
        return;
    }
    struct walk k = { f, untild_now(f->u), 0 };
    windows_foreach(f->u->ix, walk_one, &k);
    gone(f, &k);
}

struct followup_cal *followup_cal_start(struct untild *u)
{
    const struct config *c = u->cfg;
    if (!c->ncaldav || !c->followup_calendar || !strcasecmp(c->followup_calendar, "off"))
        return NULL;
    struct followup_cal *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->u = u;
    f->calname = strdup(c->followup_calendar);
    if (store_fuitem_foreach(u->store, load_item, f) < 0)
        log_error("followup: cannot read the calendar items put before (they may be put again)");
    for (size_t i = 0; i < c->ncaldav; i++) {
        const struct caldav_cfg *d = &c->caldav[i];
        char who[300];
        snprintf(who, sizeof who, "followup[%s]", d->rep ? d->rep : "owner");
        f->reps[i].url = strdup(d->url ? d->url : "");
        f->reps[i].user = d->username ? strdup(d->username) : NULL;
        f->reps[i].tls_ca = d->tls_ca ? strdup(d->tls_ca) : NULL;
        if (d->password_file || d->password_command)
            f->reps[i].pass = secret_load(d->password_file, d->password_command, who);
    }
    f->nreps = c->ncaldav;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    if (pthread_create(&f->th, NULL, worker, f) != 0) {
        log_error("followup: cannot start the calendar worker");
        f->quit = 2;
    }
    return f;
}

void followup_cal_stop(struct followup_cal *f)
{
    if (!f)
        return;
    if (f->quit != 2) {
        pthread_mutex_lock(&f->mu);
        f->quit = 1;
        pthread_cond_signal(&f->cv);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->th, NULL);
    }
    loop_run_pending(f->u->loop);   /* results posted before the join */
    for (struct job *j = f->head, *n; j; j = n) {
        n = j->next;
        free(j->state);
        free(j->ics);
        free(j);
    }
    for (size_t i = 0; i < f->nreps; i++) {
        free(f->reps[i].url);
        free(f->reps[i].user);
        free(f->reps[i].tls_ca);
        free(f->reps[i].calurl);
        secret_free(f->reps[i].pass);
    }
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    for (size_t i = 0; i < f->cap; i++)
        free(f->map[i].state);
    free(f->map);
    free(f->calname);
    free(f);
}
