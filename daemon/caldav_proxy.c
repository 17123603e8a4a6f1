/* caldav_proxy.c - the opt-in CalDAV proxy: the only way to hold an
 * invitation that a server with RFC 6638 scheduling would send at once.
 *
 * The rep's calendar client talks plain HTTP to 127.0.0.1:PORT; every
 * request is forwarded unchanged (caldav_proxy_http.c: the connection
 * threads, forwarding and streaming). The exception: a PUT of an event the rep organizes (ORGANIZER by mailto,
 * EMAIL parameter or principal URL) with quiet attendees gets
 * SCHEDULE-AGENT=CLIENT on those attendees, so the server does not invite
 * them. Only those ATTENDEE lines are rewritten (ical_raw.c), every other
 * byte is the client's, and the answer loses its ETag (RFC 7231 4.3.4).
 * Fail closed: an object whose attendees cannot be read is refused (403),
 * never forwarded with a quiet attendee unmarked. Once the server took the
 * PUT (2xx), an iMIP REQUEST for them is spooled and tracked by release.c
 * like a held SMTP invitation (sent at the window's end; a series while an
 * occurrence is left, a single event only if it has not begun).
 *
 * Held invitations follow the event's UID: an edit keeps the held id (the
 * rep's links keep working), a move (PUT then DELETE, or MOVE) keeps the
 * invitation, a DELETE of the last copy, of its calendar, or a CANCELLED
 * event drops it. After release the marked attendee is scheduled by the
 * server again: the watcher (caldav.c) removes the parameter from the
 * server copy, and this proxy from stale client copies (the "marks").
 *
 * Thread: everything in this file runs on the loop thread (libical,
 * windows, spool, store): a connection thread hands the body over with
 * loop_post (caldav_proxy_on_loop) and waits on a condition variable for
 * the answer. */
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
#include "untild/caldav_proxy.h"
#include "untild/caldav_proxy_int.h"
#include "untild/address.h"
#include "untild/daemon.h"
#include "untild/ical_raw.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/message.h"
#include "untild/notice.h"
#include "untild/policy.h"
#include "untild/release.h"
#include "untild/spool.h"
#include "untild/store.h"
#include "untild/strbuf.h"
#include "untild/when.h"
#include "untild/windows.h"

void caldav_proxy_pwork_free(struct pwork *w)
{
    if (w->cal)
        icalcomponent_free(w->cal);
    free(w->path);
    free(w->newbody);
    free(w->authuser);
    free(w->dest);
    free(w->uid);
    spool_meta_free(&w->meta);
    free(w->msg);
    sb_free(&w->heldtxt);
    sb_free(&w->marked);
    free(w);
}

/* ---- loop thread -------------------------------------------------------- */

/* One held recipient more (the caller gives each address once): -1 when
 * out of memory. */
static int add_rcpt(struct pwork *w, const char *norm, const struct window_match *m, time_t at)
{
    struct spool_meta *mt = &w->meta;
    struct spool_rcpt *r = realloc(mt->rcpts, (mt->nrcpts + 1) * sizeof *r);
    if (!r)
        return -1;
    mt->rcpts = r;
    r = &mt->rcpts[mt->nrcpts++];
    memset(r, 0, sizeof *r);
    r->addr = strdup(norm);
    r->norm = strdup(norm);
    r->state = RCPT_HELD;
    r->window_id = strdup(m->w->id);
    r->reason = m->w->reason ? strdup(m->w->reason) : NULL;
    if (!r->addr || !r->norm || !r->window_id || (m->w->reason && !r->reason))
        return -1;
    if (at > w->release_at)
        w->release_at = at;
    sb_printf(&w->heldtxt, "%s%s%s%s%s", w->heldtxt.len ? ", " : "", norm, m->w->reason ? " (" : "",
              m->w->reason ? m->w->reason : "", m->w->reason ? ")" : "");
    return w->heldtxt.oom ? -1 : 0;
}

/* The iMIP REQUEST for the held attendees: the event as the client saved
 * it (from its own text, not re-serialised), METHOD:REQUEST, without any
 * SCHEDULE-AGENT parameter. */
static int build_imip(struct pwork *w, const char *ics, size_t icslen, const char *summary, time_t now)
{
    struct untild *u = w->p->u;
    struct strbuf b = { 0 };
    char date[64], id[SPOOL_ID_MAX];
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    spool_new_id(u->spool, id);
    sb_printf(&b, "From: <%s>\r\nTo: ", w->p->rep);
    for (size_t i = 0; i < w->meta.nrcpts; i++)
        sb_printf(&b, "%s<%s>", i ? ",\r\n " : "", w->meta.rcpts[i].addr);
    sb_puts(&b, "\r\n");
    /* The summary is the client's text: folded or encoded (RFC 2047). */
    struct strbuf subj = { 0 };
    sb_printf(&subj, "Invitation: %s", summary ? summary : "");
    notice_header(&b, "Subject", subj.p ? subj.p : "Invitation");
    sb_free(&subj);
    sb_printf(&b, "Date: %s\r\nMessage-ID: <%s.caldav@%s>\r\n"
              "MIME-Version: 1.0\r\nContent-Type: text/calendar; method=REQUEST; charset=UTF-8\r\n"
              "Content-Transfer-Encoding: 8bit\r\n\r\n", date, id,
              u->cfg->command_domain ? u->cfg->command_domain : "untild.invalid");
    icr_imip_request(ics, icslen, &b);   /* CRLF throughout, for SMTP */
    if (b.oom) {
        sb_free(&b);
        return -1;
    }
    char mid[SPOOL_ID_MAX + 64];
    snprintf(mid, sizeof mid, "%s.caldav@%s", id, u->cfg->command_domain ? u->cfg->command_domain : "untild.invalid");
    w->meta.message_id = strdup(mid);
    w->msg = sb_take(&b, &w->msglen);
    return w->msg ? 0 : -1;
}

/* ---- the client's text: who is invited, who organizes ------------------- */

/* One ATTENDEE line of a top-level VEVENT. */
struct ratt {
    struct icr_line l;
    size_t ev;              /* index of its VEVENT */
    int client;             /* already SCHEDULE-AGENT=CLIENT */
    int mark;               /* quiet: must carry SCHEDULE-AGENT=CLIENT */
    int unmark;             /* released: must lose untild's SCHEDULE-AGENT=CLIENT */
    char norm[ADDR_MAX];    /* "" when it has no e-mail address */
    char val[320];          /* the value as written ("mailto:Jane@Acme.com") */
};

struct rscan {
    struct ratt *a;
    size_t na;
    int *ev_rep;            /* per top-level VEVENT: the rep organizes it */
    size_t nev;
    int bad;                /* unbalanced components or an unreadable ATTENDEE/ORGANIZER */
    size_t nattendees;      /* ATTENDEE lines anywhere */
};

static void rscan_free(struct rscan *r)
{
    free(r->a);
    free(r->ev_rep);
    memset(r, 0, sizeof *r);
}

/* The path of a calendar user address that is a URL ("/principals/rep/",
 * "https://host/principals/rep/"), without trailing slashes. */
static size_t url_path_of(const char *v, const char **path)
{
    const char *s = v;
    if (!strncasecmp(s, "http://", 7) || !strncasecmp(s, "https://", 8)) {
        s = strchr(strstr(s, "//") + 2, '/');
        if (!s)
            return 0;
    }
    if (*s != '/')
        return 0;
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/')
        n--;
    *path = s;
    return n;
}

int caldav_is_principal(const char *value, const char *principal, const char *user)
{
    const char *a, *b;
    size_t an = value ? url_path_of(value, &a) : 0;
    if (!an)
        return 0;
    size_t bn = principal ? url_path_of(principal, &b) : 0;
    if (bn && an == bn && !memcmp(a, b, an))
        return 1;
    if (!user || !*user)
        return 0;
    /* ".../<user>" is the authenticated user's own principal on the
     * servers we know (Radicale "/rep/", "/principals/rep/", iCloud-like
     * "/principals/users/rep/"). */
    size_t s = an;
    while (s && a[s - 1] != '/')
        s--;
    return an - s == strlen(user) && !strncmp(a + s, user, an - s);
}

int caldav_address_norm(const char *value, const char *email, const char *delims, char *out, size_t outsz)
{
    if (caldav_mailto_norm(value, delims, out, outsz) == 0)
        return 0;
    if (email && *email && address_normalize(email, delims, out, outsz, NULL) == 0)
        return 0;
    return -1;
}

/* Value of a property as a C string (bounded) plus its EMAIL parameter. */
static void prop_strings(const struct icr_prop *pr, char *val, size_t valsz, char *email, size_t emailsz)
{
    snprintf(val, valsz, "%.*s", (int)pr->vlen, pr->value);
    if (icr_param_first(pr, "EMAIL", email, emailsz) < 0)
        email[0] = '\0';
}

static void scan_prop(struct pwork *w, struct rscan *r, const struct icr_prop *pr, const struct icr_line *l,
                      size_t ev, const char *rep)
{
    const char *delims = w->p->u->pcfg.delims;
    char val[1024], email[ADDR_MAX], sa[32];
    prop_strings(pr, val, sizeof val, email, sizeof email);
    if (icr_name_is(pr->name, pr->nlen, "ORGANIZER")) {
        char org[ADDR_MAX];
        if ((caldav_address_norm(val, email, delims, org, sizeof org) == 0 && !strcmp(org, rep))
            || caldav_is_principal(val, w->p->principal, w->authuser))
            r->ev_rep[ev] = 1;
        return;
    }
    struct ratt *a = realloc(r->a, (r->na + 1) * sizeof *a);
    if (!a) {
        r->bad = 1;
        return;
    }
    r->a = a;
    a = &r->a[r->na++];
    memset(a, 0, sizeof *a);
    a->l = *l;
    a->ev = ev;
    a->client = icr_param_first(pr, "SCHEDULE-AGENT", sa, sizeof sa) > 0 && !strcasecmp(sa, "CLIENT");
    snprintf(a->val, sizeof a->val, "%.*s", (int)sizeof a->val - 1, val);
    if (caldav_address_norm(val, email, delims, a->norm, sizeof a->norm) < 0)
        a->norm[0] = '\0';
}

/* Read the ATTENDEE and ORGANIZER lines of every top-level VEVENT; with
 * no w, only count the ATTENDEE lines (any thread). */
static void scan_text(struct pwork *w, const char *s, size_t n, const char *rep, struct rscan *r)
{
    struct strbuf u = { 0 };
    struct icr_line l;
    size_t pos = 0;
    int depth = 0;
    long ev = -1;
    while (icr_next(s, n, &pos, &l) && !r->bad) {
        struct icr_prop pr;
        icr_unfold(s, &l, &u);
        if (!u.len)
            continue;
        int ok = icr_parse(u.p, u.len, &pr) == 0;
        int is_att = !strncasecmp(u.p, "ATTENDEE", 8), is_org = !strncasecmp(u.p, "ORGANIZER", 9);
        r->nattendees += is_att;
        if (!ok) {
            if (is_att || is_org)
                r->bad = 1;   /* cannot tell who this is: fail closed */
            continue;
        }
        if (icr_name_is(pr.name, pr.nlen, "BEGIN")) {
            if (depth == 1 && pr.vlen == 6 && !strncasecmp(pr.value, "VEVENT", 6)) {
                int *e = realloc(r->ev_rep, (r->nev + 1) * sizeof *e);
                if (!e) {
                    r->bad = 1;
                    break;
                }
                r->ev_rep = e;
                e[r->nev] = 0;
                ev = (long)r->nev++;
            }
            depth++;
        } else if (icr_name_is(pr.name, pr.nlen, "END")) {
            if (--depth < 0)
                r->bad = 1;
            if (depth < 2)
                ev = -1;
        } else if (w && ev >= 0 && depth == 2 && (icr_name_is(pr.name, pr.nlen, "ATTENDEE")
                                             || icr_name_is(pr.name, pr.nlen, "ORGANIZER"))) {
            scan_prop(w, r, &pr, &l, (size_t)ev, rep);
        }
    }
    if (depth != 0 || u.oom)
        r->bad = 1;
    sb_free(&u);
}

/* Connection thread: parse the PUT body with libical here, not on the
 * loop (its cost is about 30 times the size, in time and memory); bodies
 * over [smtp] max_calendar_part are not parsed at all, only their
 * ATTENDEE lines counted, here too (prepare decides). */
void caldav_proxy_parse(struct pwork *w, size_t max)
{
    if (w->len > max) {
        struct rscan r = { 0 };
        w->too_big = 1;
        scan_text(NULL, w->body, w->len, "", &r);
        w->nattendees = r.nattendees;
        rscan_free(&r);
        return;
    }
    char *text = strndup(w->body, w->len);
    w->cal = text ? icalparser_parse_string(text) : NULL;
    free(text);
}

/* The client's text with SCHEDULE-AGENT=CLIENT on the marked ATTENDEE
 * lines; every other byte as sent. */
static char *patch_text(const char *s, size_t n, const struct rscan *r, size_t *outlen)
{
    static const char *const drop[] = { "SCHEDULE-AGENT", NULL };
    struct strbuf o = { 0 }, u = { 0 };
    const char *deol = memmem(s, n, "\r\n", 2) ? "\r\n" : "\n";
    size_t at = 0;
    for (size_t i = 0; i < r->na; i++) {
        const struct ratt *a = &r->a[i];
        struct icr_prop pr;
        if (!(a->mark && !a->client) && !a->unmark)
            continue;
        icr_unfold(s, &a->l, &u);
        if (icr_parse(u.p, u.len, &pr) < 0)
            continue;   /* scan_text read it: cannot happen */
        sb_add(&o, s + at, a->l.off - at);
        size_t before = o.len;
        icr_rewrite(&pr, drop, a->unmark ? NULL : "SCHEDULE-AGENT=CLIENT",
                    a->l.eol == 2 ? "\r\n" : a->l.eol ? "\n" : deol, &o);
        if (!a->l.eol && o.len > before)   /* the last line had no ending: keep it so */
            o.len -= strlen(deol), o.p[o.len] = '\0';
        at = a->l.off + a->l.len;
    }
    sb_add(&o, s + at, n - at);
    sb_free(&u);
    if (o.oom) {
        sb_free(&o);
        return NULL;
    }
    return sb_take(&o, outlen);
}

/* ---- attendees untild marked: scheduled by the server again once released
 *
 * SCHEDULE-AGENT=CLIENT stays in the stored event after the held
 * invitation went out, and clients send it back with every save: later
 * edits and the final DELETE would reach the released attendee from
 * nobody. So untild remembers each attendee it marked ("marks", one kv
 * value per rep: UID, href, address, the value as written, held id);
 * once that attendee's invitation was released (audit "released") and
 * they are not quiet any more, the watcher removes the parameter from the
 * server's copy (If-Match), and a PUT through the proxy loses it too. A
 * mark whose invitation was discarded, cancelled or went stale is
 * forgotten (the rep did not invite them). */
#define MARKS_MAX 4096

#define MARK_F 6
struct mark { char *f[MARK_F]; };   /* uid, path, norm, val, held id, "r" when repaired */
struct marks { struct mark m[MARKS_MAX]; size_t n; };

static void marks_key(struct strbuf *k, const char *rep)
{
    sb_printf(k, "caldav:proxy-marks:%s", rep);
}

static void marks_free(struct marks *x)
{
    for (size_t i = 0; i < x->n; i++)
        for (int k = 0; k < MARK_F; k++)
            free(x->m[i].f[k]);
    x->n = 0;
}

static void marks_del(struct marks *x, size_t i)
{
    for (int k = 0; k < MARK_F; k++)
        free(x->m[i].f[k]);
    x->m[i] = x->m[--x->n];
}

static void marks_add(struct marks *x, const char *const f[MARK_F])
{
    for (int k = 0; k < MARK_F; k++)
        if (!f[k] || !*f[k] || strpbrk(f[k], "\t\n"))
            return;
    if (x->n == MARKS_MAX) {
        log_warn("caldav proxy: more than %d marked attendees remembered; the oldest is forgotten", MARKS_MAX);
        marks_del(x, 0);
    }
    struct mark *m = &x->m[x->n];
    for (int k = 0; k < MARK_F; k++)
        m->f[k] = strdup(f[k]);
    x->n++;
}

static struct marks *marks_load(struct untild *u, const char *rep)
{
    struct strbuf k = { 0 };
    struct marks *x = calloc(1, sizeof *x);
    marks_key(&k, rep);
    char *v = x && k.p ? store_kv_get(u->store, k.p) : NULL;
    sb_free(&k);
    for (char *save = NULL, *l = v ? strtok_r(v, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
        const char *f[MARK_F];
        char *s2 = NULL;
        int n = 0;
        for (char *t = strtok_r(l, "\t", &s2); t && n < MARK_F; t = strtok_r(NULL, "\t", &s2))
            f[n++] = t;
        if (n == MARK_F)
            marks_add(x, f);
    }
    free(v);
    return x;
}

static void marks_save(struct untild *u, const char *rep, struct marks *x)
{
    struct strbuf k = { 0 }, v = { 0 };
    for (size_t i = 0; i < x->n; i++)
        sb_printf(&v, "%s\t%s\t%s\t%s\t%s\t%s\n", x->m[i].f[0], x->m[i].f[1], x->m[i].f[2], x->m[i].f[3],
                  x->m[i].f[4], x->m[i].f[5]);
    marks_key(&k, rep);
    int rc = !k.p || v.oom ? -1 : v.len ? store_kv_set(u->store, k.p, v.p) : store_kv_del(u->store, k.p);
    if (rc < 0)
        log_error("caldav proxy: %s: cannot store the marked attendees", rep);
    sb_free(&k);
    sb_free(&v);
    marks_free(x);
    free(x);
}

struct released_find { const char *norm; int found; };

static int released_fn(const struct audit_rec *a, void *arg)
{
    struct released_find *f = arg;
    if (a->event && !strcmp(a->event, "released") && a->contact && !strcmp(a->contact, f->norm))
        f->found = 1;
    return f->found;
}

enum mark_state { MARK_HELD, MARK_RELEASED, MARK_GONE };

static enum mark_state mark_state(struct untild *u, const struct mark *m)
{
    if (release_find(u->release, m->f[4], NULL))
        return MARK_HELD;
    struct released_find f = { m->f[2], 0 };
    store_audit_foreach_msg(u->store, m->f[4], 0, released_fn, &f);
    return f.found ? MARK_RELEASED : MARK_GONE;
}

/* Released and no longer quiet: schedule them normally again. */
static int mark_due(struct untild *u, const struct mark *m, time_t now)
{
    struct window_match wm;
    return mark_state(u, m) == MARK_RELEASED
           && (!windows_match(u->ix, m->f[2], now, &wm) || policy_window_action(&u->pcfg, wm.w) == ACTION_ALLOW);
}

size_t caldav_proxy_unmarks_due(struct untild *u, const char *rep, struct caldav_unmark *out, size_t max)
{
    struct marks *x = marks_load(u, rep);
    time_t now = untild_now(u);
    size_t n = 0;
    int changed = 0;
    if (!x)
        return 0;
    for (size_t i = 0; i < x->n;) {
        if (!strcmp(x->m[i].f[5], "r")) {   /* repaired: nothing to do */
            i++;
            continue;
        }
        enum mark_state st = mark_state(u, &x->m[i]);
        if (st == MARK_GONE) {   /* discarded, cancelled, stale: forget */
            marks_del(x, i);
            changed = 1;
            continue;
        }
        if (n < max && mark_due(u, &x->m[i], now)) {
            out[n].path = strdup(x->m[i].f[1]);
            out[n].value = strdup(x->m[i].f[3]);
            if (out[n].path && out[n].value)
                n++;
            else
                free(out[n].path), free(out[n].value);
        }
        i++;
    }
    if (changed)
        marks_save(u, rep, x);
    else
        marks_free(x), free(x);
    return n;
}

void caldav_proxy_unmark_done(struct untild *u, const char *rep, const char *path, const char *value)
{
    struct marks *x = marks_load(u, rep);
    if (!x)
        return;
    /* kept (repaired), so that a client's stale copy sent back through
     * the proxy loses the parameter too */
    for (size_t i = 0; i < x->n; i++)
        if (!strcmp(x->m[i].f[1], path) && !strcasecmp(x->m[i].f[3], value)) {
            char *r = strdup("r");
            if (r) {
                free(x->m[i].f[5]);
                x->m[i].f[5] = r;
            }
        }
    marks_save(u, rep, x);
}

/* A PUT of uid: which attendees lose untild's parameter (released), and
 * what to remember for the ones marked now (at commit). */
static void marks_prepare(struct pwork *w, struct rscan *r)
{
    struct untild *u = w->p->u;
    struct marks *x = w->uid ? marks_load(u, w->p->rep) : NULL;
    time_t now = untild_now(u);
    for (size_t i = 0; i < r->na; i++) {
        struct ratt *a = &r->a[i];
        if (a->mark)
            sb_printf(&w->marked, "%s\t%s\n", a->norm, a->val);
        if (!x || a->mark || !a->client || !a->norm[0])
            continue;
        for (size_t k = 0; k < x->n && !a->unmark; k++)
            a->unmark = !strcmp(x->m[k].f[0], w->uid) && !strcmp(x->m[k].f[2], a->norm)
                        && mark_due(u, &x->m[k], now);
    }
    if (x) {
        marks_free(x);
        free(x);
    }
}

/* Is norm among the "norm<TAB>value" lines of list? */
static int marked_now(const char *list, const char *norm)
{
    size_t l = strlen(norm);
    for (const char *s = list; s && *s;) {
        if (!strncmp(s, norm, l) && s[l] == '\t')
            return 1;
        if ((s = strchr(s, '\n')))
            s++;
    }
    return 0;
}

/* Commit: this PUT's marks replace the held ones of the same UID and
 * href; released ones stay (until the event is deleted) unless the
 * attendee is marked again. */
static void marks_commit(struct pwork *w)
{
    struct untild *u = w->p->u;
    struct marks *x = marks_load(u, w->p->rep);
    if (!x)
        return;
    for (size_t i = 0; i < x->n;) {
        struct mark *m = &x->m[i];
        int again = marked_now(w->marked.p, m->f[2]);
        if (!strcmp(m->f[0], w->uid) && !strcmp(m->f[1], w->path)
            && (again || mark_state(u, m) != MARK_RELEASED))
            marks_del(x, i);
        else
            i++;
    }
    if (w->has_hold && w->meta.id[0])
        for (char *save = NULL, *l = w->marked.p ? strtok_r(w->marked.p, "\n", &save) : NULL; l;
             l = strtok_r(NULL, "\n", &save)) {
            char *tab = strchr(l, '\t');
            if (!tab)
                continue;
            *tab = '\0';
            const char *f[MARK_F] = { w->uid, w->path, l, tab + 1, w->meta.id, "-" };
            marks_add(x, f);
        }
    marks_save(u, w->p->rep, x);
}

#define MAX_SERIES_COUNT 10000   /* COUNT occurrences counted; more: no end */

/* A time from libical read as if it were UTC (differences only). */
static time_t naive_t(struct icaltimetype t)
{
    t.zone = NULL;
    if (t.is_date) {
        t.is_date = 0;
        t.hour = t.minute = t.second = 0;
    }
    return icaltime_as_timet_with_zone(t, icaltimezone_get_utc_timezone());
}

/* The start of a recurring event's last occurrence, so that a series
 * already running when the window opens is still sent while anything of
 * it is left (release.c sends nothing for an event that has begun): UNTIL
 * bounds it, COUNT is counted (bounded), RDATEs count too. Returns 0 when
 * the series has no end, st when the event does not recur. DST shifts may
 * move the result by an hour: it only decides "anything left?". */
static time_t series_last(icalcomponent *ev, time_t st)
{
    time_t last = st;
    icalproperty *rp = icalcomponent_get_first_property(ev, ICAL_RRULE_PROPERTY);
    if (rp) {
        struct icalrecurrencetype rr = icalproperty_get_rrule(rp);
        struct icaltimetype ds = icalcomponent_get_dtstart(ev);
        if (!icaltime_is_null_time(rr.until)) {
            time_t u = naive_t(rr.until) + (rr.until.is_date ? 86399 : 0);
            if (!icaltime_is_utc(rr.until) && !icaltime_is_null_time(ds))
                u = st + (u - naive_t(ds));   /* local like DTSTART */
            last = u > last ? u : last;
        } else if (rr.count > 0 && rr.count <= MAX_SERIES_COUNT && !icaltime_is_null_time(ds)) {
            icalrecur_iterator *it = icalrecur_iterator_new(rr, ds);
            struct icaltimetype t, lt = ds;
            for (int k = 0; it && k < rr.count && !icaltime_is_null_time(t = icalrecur_iterator_next(it)); k++)
                lt = t;
            if (it)
                icalrecur_iterator_free(it);
            time_t l = st + (naive_t(lt) - naive_t(ds));
            last = l > last ? l : last;
        } else {
            return 0;
        }
    }
    for (icalproperty *p = icalcomponent_get_first_property(ev, ICAL_RDATE_PROPERTY); p;
         p = icalcomponent_get_next_property(ev, ICAL_RDATE_PROPERTY)) {
        time_t t = caldav_prop_time(p, NULL);
        last = t > last ? t : last;
    }
    return last;
}

/* Facts of the rep's events from libical: UID, status, summary, start
 * (of the last occurrence, for a series). */
static void event_facts(struct pwork *w, icalcomponent *cal, const struct rscan *r, char *summary, size_t sumsz)
{
    struct untild *u = w->p->u;
    int first = 1;
    size_t k = 0;
    for (icalcomponent *ev = icalcomponent_get_first_component(cal, ICAL_VEVENT_COMPONENT); ev;
         ev = icalcomponent_get_next_component(cal, ICAL_VEVENT_COMPONENT), k++) {
        if (k >= r->nev || !r->ev_rep[k])
            continue;
        int is_master = !icalcomponent_get_first_property(ev, ICAL_RECURRENCEID_PROPERTY);
        if (!w->uid && icalcomponent_get_uid(ev))
            w->uid = strdup(icalcomponent_get_uid(ev));
        if (!first && !is_master)
            continue;
        if (is_master && icalcomponent_get_status(ev) == ICAL_STATUS_CANCELLED)
            w->cancelled = 1;
        if (icalcomponent_get_first_property(ev, ICAL_SUMMARY_PROPERTY) && icalcomponent_get_summary(ev))
            snprintf(summary, sumsz, "%s", icalcomponent_get_summary(ev));
        time_t st = caldav_prop_time(icalcomponent_get_first_property(ev, ICAL_DTSTART_PROPERTY),
                                     u->cfg->timezone);
        if (st)
            w->meta.ical_dtstart = is_master ? series_last(ev, st) : st;
        first = 0;
    }
}

static size_t count_vevents(icalcomponent *cal)
{
    size_t k = 0;
    for (icalcomponent *ev = icalcomponent_get_first_component(cal, ICAL_VEVENT_COMPONENT); ev;
         ev = icalcomponent_get_next_component(cal, ICAL_VEVENT_COMPONENT))
        k++;
    return k;
}

static void refuse(struct pwork *w, const char *why)
{
    log_warn("caldav proxy: %s: PUT %s refused: %s", w->p->rep, w->path, why);
    snprintf(w->refused, sizeof w->refused, "%s", why);
}

struct quiet { const char *norm; struct window_match m; size_t idx; int keep; };

static int by_norm(const void *a, const void *b)
{
    const struct quiet *x = a, *y = b;
    int c = strcmp(x->norm, y->norm);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static int by_idx(const void *a, const void *b)
{
    const struct quiet *x = a, *y = b;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Mark the quiet attendees of the rep's events and hold each address
 * once, however many there are (sorted, not compared pairwise: the body
 * is up to max_calendar_part). Returns how many lines were marked; on no
 * memory the PUT is refused. */
static size_t mark_quiet(struct pwork *w, struct rscan *r, const char *rep, time_t now)
{
    struct untild *u = w->p->u;
    struct quiet *q = r->na ? calloc(r->na, sizeof *q) : NULL;
    size_t n = 0, nq = 0;
    if (r->na && !q) {
        refuse(w, "out of memory");
        return 0;
    }
    for (size_t i = 0; i < r->na; i++) {
        struct ratt *a = &r->a[i];
        if (!r->ev_rep[a->ev] || !a->norm[0] || !strcmp(a->norm, rep))
            continue;
        if (!windows_match(u->ix, a->norm, now, &q[nq].m)
            || policy_window_action(&u->pcfg, q[nq].m.w) == ACTION_ALLOW)
            continue;
        a->mark = 1;
        n++;
        q[nq].idx = nq;
        q[nq++].norm = a->norm;
    }
    if (nq) {   /* each address once, in the order the event lists them */
        qsort(q, nq, sizeof *q, by_norm);
        for (size_t i = 0; i < nq; i++)
            q[i].keep = i == 0 || strcmp(q[i].norm, q[i - 1].norm);
        qsort(q, nq, sizeof *q, by_idx);
    }
    for (size_t i = 0; i < nq; i++)
        if (q[i].keep && add_rcpt(w, q[i].norm, &q[i].m, policy_release_at(&u->pcfg, &q[i].m)) < 0) {
            refuse(w, "out of memory");
            n = 0;
            break;
        }
    free(q);
    return n;
}

static void prepare(struct pwork *w)
{
    struct untild *u = w->p->u;
    time_t now = untild_now(u);
    char rep[ADDR_MAX], summary[256] = "(no title)";
    struct rscan r = { 0 };
    if (!w->body || address_normalize(w->p->rep, u->pcfg.delims, rep, sizeof rep, NULL) < 0)
        return;
    if (w->too_big) {
        /* Not parsed (caldav_proxy_parse): nobody to protect is the
         * server's business; else fail closed, never "allowed because
         * unparsed". */
        if (w->nattendees) {
            log_warn("caldav proxy: %s: PUT %s: %zu bytes of calendar data with attendees, over "
                     "[smtp] max_calendar_part (%zu): refused", w->p->rep, w->path, w->len,
                     (size_t)u->cfg->max_calendar_part);
            refuse(w, "the calendar data is over the size untild checks (max_calendar_part) and "
                      "invites attendees; it was not stored");
        }
        return;
    }
    scan_text(w, w->body, w->len, rep, &r);   /* up to max_calendar_part */
    size_t quiet = r.bad ? 0 : mark_quiet(w, &r, rep, now);
    icalcomponent *cal = w->cal;     /* parsed on the connection thread */
    w->cal = NULL;
    if (w->refused[0])
        goto out;
    int unreadable = r.bad || !cal || icalcomponent_isa(cal) != ICAL_VCALENDAR_COMPONENT
                     || count_vevents(cal) != r.nev;
    if (unreadable) {
        /* Nobody to protect: the server's business. Else fail closed. */
        if (r.nattendees)
            refuse(w, "the calendar data cannot be read (malformed iCalendar); it was not stored");
        goto out;
    }
    int errs = icalcomponent_count_errors(cal);
    if (errs && quiet)
        log_info("caldav proxy: %s: PUT %s: %d iCalendar error(s) (unknown or malformed properties); "
                 "quiet attendees marked all the same", w->p->rep, w->path, errs);
    event_facts(w, cal, &r, summary, sizeof summary);
    for (char *s = summary; *s; s++)   /* for a header line */
        if (*s == '\r' || *s == '\n')
            *s = ' ';
    const char *ics = w->body;
    size_t icslen = w->len;
    marks_prepare(w, &r);
    int patch = 0;
    for (size_t i = 0; i < r.na; i++) {
        patch |= (r.a[i].mark && !r.a[i].client) || r.a[i].unmark;
        if (r.a[i].unmark)
            log_info("caldav proxy: %s: PUT %s: %s was released: scheduled by the server again", w->p->rep,
                     w->path, r.a[i].norm);
    }
    if (patch) {
        if (!(w->newbody = patch_text(w->body, w->len, &r, &w->newlen))) {
            refuse(w, "out of memory");
            goto out;
        }
        ics = w->newbody;
        icslen = w->newlen;
    }
    if (w->meta.nrcpts && !w->cancelled && w->uid) {
        w->meta.rep = strdup(w->p->rep);
        w->meta.mail_from = strdup(w->p->rep);
        w->meta.created = now;
        w->meta.quiet_until = w->release_at;
        w->meta.subject = strdup(summary);
        w->meta.ical_uid = strdup(w->uid);
        w->meta.ical_method = IMIP_REQUEST;
        if (build_imip(w, ics, icslen, summary, now) == 0)
            w->has_hold = 1;
        else
            log_error("caldav proxy: %s: cannot build the invitation for %s", w->p->rep, w->uid);
    }
out:
    if (cal)
        icalcomponent_free(cal);
    rscan_free(&r);
}

static void pathkey(struct strbuf *k, const struct caldav_proxy *p, const char *path)
{
    sb_printf(k, "caldav:proxy:%s|%s", p->rep, path);
}

static void drop_uid(struct caldav_proxy *p, const char *uid, const char *event)
{
    char ids[16][SPOOL_ID_MAX];
    size_t k = release_find_uid(p->u->release, p->rep, uid, ids, 16);
    for (size_t i = 0; i < k; i++) {
        log_info("caldav proxy: %s: held invitation %s %s", p->rep, ids[i], event);
        release_discard(p->u->release, ids[i], p->rep, event);
    }
}

/* ---- where the events with held invitations are ------------------------ */

/* Held invitations follow the event (its UID), not one href: a client
 * moves an event as PUT-to-new then DELETE-from-old, or with MOVE, and
 * a whole calendar can be deleted. The index, one kv value per rep, has a
 * "UID<TAB>path" line for each href of a UID that has a held invitation;
 * lines of UIDs with nothing held are pruned at each change, so it stays
 * as small as the held queue. */
#define IDX_MAX_LINES 4096

struct idx { char *uid[IDX_MAX_LINES], *path[IDX_MAX_LINES]; size_t n; };

static void idxkey(struct strbuf *k, const struct caldav_proxy *p)
{
    sb_printf(k, "caldav:proxy-held:%s", p->rep);
}

static void idx_free(struct idx *x)
{
    for (size_t i = 0; i < x->n; i++) {
        free(x->uid[i]);
        free(x->path[i]);
    }
    x->n = 0;
}

static void idx_add(struct idx *x, const char *uid, const char *path)
{
    if (x->n >= IDX_MAX_LINES || strpbrk(uid, "\t\n") || strpbrk(path, "\t\n"))
        return;
    for (size_t i = 0; i < x->n; i++)
        if (!strcmp(x->uid[i], uid) && !strcmp(x->path[i], path))
            return;
    if ((x->uid[x->n] = strdup(uid)) && (x->path[x->n] = strdup(path))) {
        x->n++;
        return;
    }
    free(x->uid[x->n]);
}

static void idx_del(struct idx *x, size_t i)
{
    free(x->uid[i]);
    free(x->path[i]);
    x->uid[i] = x->uid[--x->n];
    x->path[i] = x->path[x->n];
}

static void idx_load(struct caldav_proxy *p, struct idx *x)
{
    struct strbuf k = { 0 };
    idxkey(&k, p);
    char *v = k.p ? store_kv_get(p->u->store, k.p) : NULL;
    sb_free(&k);
    for (char *save = NULL, *l = v ? strtok_r(v, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
        char *tab = strchr(l, '\t');
        if (tab) {
            *tab = '\0';
            idx_add(x, l, tab + 1);
        }
    }
    free(v);
}

static int held_uid(struct caldav_proxy *p, const char *uid)
{
    char ids[1][SPOOL_ID_MAX];
    return release_find_uid(p->u->release, p->rep, uid, ids, 1) > 0;
}

/* Prune the UIDs with nothing held, then store. */
static void idx_save(struct caldav_proxy *p, struct idx *x)
{
    struct strbuf k = { 0 }, v = { 0 };
    for (size_t i = 0; i < x->n;) {
        if (!held_uid(p, x->uid[i]))
            idx_del(x, i);
        else
            sb_printf(&v, "%s\t%s\n", x->uid[i], x->path[i]), i++;
    }
    idxkey(&k, p);
    int rc = !k.p || v.oom ? -1 : v.len ? store_kv_set(p->u->store, k.p, v.p) : store_kv_del(p->u->store, k.p);
    if (rc < 0)
        log_error("caldav proxy: %s: cannot store where the held invitations' events are", p->rep);
    sb_free(&k);
    sb_free(&v);
    idx_free(x);
}

/* path is the collection dir or equal to it? ("/rep/work/" holds
 * "/rep/work/a.ics") */
static int path_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (!strcmp(path, dir))
        return 1;
    if (!n || strncmp(path, dir, n))
        return 0;
    return dir[n - 1] == '/' || path[n] == '/';
}

/* What the rep was told about a held invitation: its attendees and when. */
static int same_hold(const struct spool_meta *a, time_t a_at, const struct spool_meta *b, time_t b_at)
{
    if (a->nrcpts != b->nrcpts || a_at != b_at)
        return 0;
    for (size_t i = 0; i < a->nrcpts; i++) {
        size_t j = 0;
        while (j < b->nrcpts && strcmp(a->rcpts[i].norm, b->rcpts[j].norm))
            j++;
        if (j == b->nrcpts)
            return 0;
    }
    return 1;
}

/* Store the new version of a held invitation. An edit keeps the id of
 * the invitation it replaces, so the release/discard addresses in the
 * rep's notice keep working: the new version is first held under a fresh
 * id (durable), the old one is discarded, the new one is held again under
 * the old id and the fresh copy removed (a crash in between leaves a
 * duplicate, never nothing). Returns 1 if the old id was kept, 0 if the
 * id is new, -1 if nothing could be stored (the old versions stay). */
static int hold_version(struct pwork *w, char (*old)[SPOOL_ID_MAX], size_t nold)
{
    struct caldav_proxy *p = w->p;
    struct untild *u = p->u;
    w->meta.size = w->msglen;
    spool_new_id(u->spool, w->meta.id);
    if (spool_hold(u->spool, &w->meta, w->msg, w->msglen) < 0)
        return -1;
    for (size_t i = 0; i < nold; i++)
        release_discard(u->release, old[i], p->rep, "superseded");
    if (!nold)
        return 0;
    char fresh[SPOOL_ID_MAX];
    snprintf(fresh, sizeof fresh, "%s", w->meta.id);
    memcpy(w->meta.id, old[0], sizeof w->meta.id);
    w->meta.id[sizeof w->meta.id - 1] = '\0';
    if (spool_hold(u->spool, &w->meta, w->msg, w->msglen) < 0) {
        log_warn("caldav proxy: %s: cannot keep id %s for the edited invitation %s: %s; it is %s now",
                 p->rep, old[0], w->uid, strerror(errno), fresh);
        snprintf(w->meta.id, sizeof w->meta.id, "%s", fresh);
        return 0;
    }
    if (spool_remove(u->spool, fresh) < 0)
        log_error("caldav proxy: %s: cannot remove %s (a copy of %s): %s", p->rep, fresh, old[0], strerror(errno));
    return 1;
}

static void hold_notice(struct pwork *w, int updated)
{
    struct untild *u = w->p->u;
    char when[64];
    struct strbuf nb = { 0 };
    const char *dom = u->cfg->command_domain;
    sb_printf(&nb, "untild is holding the invitation to \"%s\" until %s.%s\n\nAttendees held: %s\n\n"
              "Send it now:  mailto:release-%s@%s\nDiscard it:   mailto:discard-%s@%s\n",
              w->meta.subject ? w->meta.subject : "(no title)",
              when_format(w->release_at, u->cfg->timezone, when, sizeof when),
              updated ? " You changed the event: the held invitation is the new version, and the "
                        "addresses of the earlier notice still work." : "",
              w->heldtxt.p ? w->heldtxt.p : "", w->meta.id, dom, w->meta.id, dom);
    notice_send(u, updated ? NOTICE_HELD_UPDATED : NOTICE_HELD_INVITATION, w->p->rep,
                nb.p ? nb.p : "", NULL, 0);
    sb_free(&nb);
}

static void commit(struct pwork *w)
{
    struct caldav_proxy *p = w->p;
    struct untild *u = p->u;
    time_t now = untild_now(u);
    struct strbuf k = { 0 };
    struct idx x = { 0 };
    char old[16][SPOOL_ID_MAX];
    if (!w->uid)
        return;
    pathkey(&k, p, w->path);
    if (k.p && store_kv_set(u->store, k.p, w->uid) < 0)
        log_error("caldav proxy: %s: cannot remember %s", p->rep, w->path);
    sb_free(&k);
    idx_load(p, &x);
    for (size_t i = 0; i < x.n;)   /* this href holds this UID now */
        if (!strcmp(x.path[i], w->path))
            idx_del(&x, i);
        else
            i++;
    if (!w->has_hold) {
        drop_uid(p, w->uid, w->cancelled ? "cancelled" : "superseded");
        idx_save(p, &x);
        marks_commit(w);
        return;
    }
    size_t nold = release_find_uid(u->release, p->rep, w->uid, old, 16);
    struct spool_meta prev = { 0 };
    time_t prev_at = 0;
    const struct spool_meta *pm = nold ? release_find(u->release, old[0], &prev_at) : NULL;
    if (pm && spool_meta_copy(&prev, pm) < 0)
        pm = NULL;
    int kept = hold_version(w, old, nold);
    if (kept < 0) {
        log_error("caldav proxy: %s: cannot spool the invitation %s: %s (it was not sent by the server "
                  "either)", p->rep, w->uid, strerror(errno));
        notice_send(u, NOTICE_HOLD_FAILED, p->rep,
                    "untild could not store a held calendar invitation; the attendees were not invited.\n",
                    NULL, 0);
        spool_meta_free(&prev);
        idx_save(p, &x);
        return;
    }
    if (release_track(u->release, &w->meta) < 0)
        log_error("caldav proxy: cannot track held invitation %s (restart picks it up)", w->meta.id);
    idx_add(&x, w->uid, w->path);
    idx_save(p, &x);
    marks_commit(w);
    for (size_t i = 0; i < w->meta.nrcpts; i++)
        store_audit(u->store, &(struct audit_rec){ now, "held", p->rep, w->meta.rcpts[i].norm,
                    w->meta.rcpts[i].window_id, w->meta.id, w->meta.rcpts[i].reason });
    if (!kept || !pm)
        hold_notice(w, 0);
    else if (!same_hold(&prev, prev_at, &w->meta, w->release_at))
        hold_notice(w, 1);   /* what the rep was told changed */
    spool_meta_free(&prev);
    log_info("caldav proxy: %s: holding invitation %s (%s) as %s%s", p->rep, w->uid, w->path, w->meta.id,
             kept ? " (same id, new version)" : "");
}

/* A DELETE of an event or of a whole calendar: the held invitations of
 * the UIDs that are nowhere else any more are cancelled. */
static void deleted(struct pwork *w)
{
    struct caldav_proxy *p = w->p;
    struct strbuf k = { 0 };
    struct idx x = { 0 }, gone = { 0 };
    pathkey(&k, p, w->path);
    char *uid = k.p ? store_kv_get(p->u->store, k.p) : NULL;
    if (uid)
        store_kv_del(p->u->store, k.p);
    sb_free(&k);
    idx_load(p, &x);
    if (uid)
        idx_add(&gone, uid, w->path);
    for (size_t i = 0; i < x.n;) {
        if (path_under(x.path[i], w->path)) {
            idx_add(&gone, x.uid[i], x.path[i]);
            idx_del(&x, i);
        } else {
            i++;
        }
    }
    for (size_t g = 0; g < gone.n; g++) {
        const char *still = NULL;
        for (size_t i = 0; i < x.n && !still; i++)
            if (!strcmp(x.uid[i], gone.uid[g]))
                still = x.path[i];
        if (still)
            log_info("caldav proxy: %s: %s deleted; event %s is still at %s: its held invitation stays",
                     p->rep, gone.path[g], gone.uid[g], still);
        else
            drop_uid(p, gone.uid[g], "cancelled");
    }
    idx_free(&gone);
    idx_save(p, &x);
    free(uid);
    struct marks *mk = marks_load(p->u, p->rep);
    if (mk) {
        for (size_t i = 0; i < mk->n;)
            if (path_under(mk->m[i].f[1], w->path))
                marks_del(mk, i);
            else
                i++;
        marks_save(p->u, p->rep, mk);
    }
}

/* A MOVE (of an event or a calendar): the held invitations follow. */
static void moved(struct pwork *w)
{
    struct caldav_proxy *p = w->p;
    struct strbuf k = { 0 }, nk = { 0 }, np = { 0 };
    struct idx x = { 0 };
    pathkey(&k, p, w->path);
    char *uid = k.p ? store_kv_get(p->u->store, k.p) : NULL;
    if (uid) {
        store_kv_del(p->u->store, k.p);
        pathkey(&nk, p, w->dest);
        if (nk.p)
            store_kv_set(p->u->store, nk.p, uid);
    }
    idx_load(p, &x);
    size_t n = x.n;
    for (size_t i = 0; i < n; i++) {
        if (!path_under(x.path[i], w->path))
            continue;
        np.len = 0;
        sb_printf(&np, "%s%s", w->dest, x.path[i] + strlen(w->path));
        if (np.p && !np.oom) {
            log_info("caldav proxy: %s: event %s moved from %s to %s", p->rep, x.uid[i], x.path[i], np.p);
            free(x.path[i]);
            x.path[i] = strdup(np.p);
        }
    }
    for (size_t i = 0; i < x.n;)
        if (!x.path[i])
            idx_del(&x, i);
        else
            i++;
    idx_save(p, &x);
    free(uid);
    sb_free(&k);
    sb_free(&nk);
    sb_free(&np);
}

void caldav_proxy_on_loop(void *arg)
{
    struct pwork *w = arg;
    struct caldav_proxy *p = w->p;
    /* dead is set only after every connection thread was joined. */
    if (!p->dead) {
        switch (w->kind) {
        case P_PREPARE: prepare(w); break;
        case P_COMMIT: commit(w); break;
        case P_DELETE: deleted(w); break;
        case P_MOVE: moved(w); break;
        }
    }
    pthread_mutex_lock(&p->mu);
    w->done = 1;
    pthread_cond_broadcast(&p->cv);
    int last = --w->refs == 0;
    int free_p = --p->pending == 0 && p->dead;
    pthread_mutex_unlock(&p->mu);
    if (last)
        caldav_proxy_pwork_free(w);
    if (free_p)
        caldav_proxy_free(p);
}

void caldav_proxy_set_principal(struct caldav_proxy *p, const char *principal)
{
    if (!p || !principal || (p->principal && !strcmp(p->principal, principal)))
        return;
    char *c = strdup(principal);
    if (!c)
        return;
    free(p->principal);
    p->principal = c;
}
