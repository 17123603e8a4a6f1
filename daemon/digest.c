/* digest.c - the weekly digest (see digest.h).
 *
 * Synopsis: digest_new() at start-up; a timer at the next [digest] day and
 * time (looked at again at least hourly and on digest_kick, so a wall-
 * clock or test-clock step is noticed). When a digest is due and the store
 * does not say it was sent ("digest:last"), the week's audit rows (at most
 * [digest] max_rows; logged when that bites) and contact history are
 * tallied per rep and per contact, and one message per rep (and one per
 * manager) is queued as a durable notice.
 *
 * Why: the figures come from the audit log and the contact history that
 * are kept anyway; nothing is counted twice at run time.
 *
 * Diagnostics: "digest: week to <date> sent to N rep(s), M manager(s)"
 * (info); "digest: read max_rows audit rows; figures are partial" (warn). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "untild/digest.h"
#include "untild/daemon.h"
#include "untild/followup.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/release.h"
#include "untild/notice.h"
#include "untild/store.h"
#include "untild/strbuf.h"
#include "untild/when.h"

#define WEEK (7 * 86400)
#define CATCH_UP 86400        /* a digest missed by less than this is sent late */
#define RESCAN_S 3600
#define MAX_REPS 256          /* reps in one digest (more: logged, left out) */
#define MAX_CONTACTS 4096     /* distinct contacts tallied */
#define TOP 10

struct digest {
    struct untild *u;
    uint64_t timer, soon;
};

/* ---------- pure ---------- */

static int local_wday(time_t t, const char *tz)
{
    char buf[64];
    struct tm tm = { 0 };
    when_format(t, tz, buf, sizeof buf);
    if (sscanf(buf, "%d-%d-%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday) != 3)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_hour = 12;
    time_t noon = timegm(&tm);
    gmtime_r(&noon, &tm);
    return tm.tm_wday;
}

time_t digest_next(time_t t, const char *tz, int wday, int minutes)
{
    time_t c = when_align_release(t, tz, minutes, 1);
    for (int i = 0; i < 8 && local_wday(c, tz) != wday; i++)
        c = when_add_days(c, 1, tz);
    return c;
}

char *digest_message(const char *from, const char *to, const char *subject, const char *text,
                     const char *html, time_t now, size_t *len)
{
    struct strbuf b = { 0 };
    char date[64], bd[64];
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    snprintf(bd, sizeof bd, "untild-digest-%llx", (unsigned long long)now);
    sb_printf(&b, "From: untild <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\n"
              "Message-ID: <untild.digest.%lld.%s>\r\nAuto-Submitted: auto-generated\r\n"
              "X-Untild: notice\r\nMIME-Version: 1.0\r\n"
              "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n",
              from, to, subject, date, (long long)now, to, bd);
    const char *parts[2] = { text, html }, *types[2] = { "text/plain", "text/html" };
    for (int i = 0; i < 2; i++) {
        sb_printf(&b, "--%s\r\nContent-Type: %s; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
                  bd, types[i]);
        for (const char *p = parts[i]; *p; p++) {
            if (*p == '\n' && (p == parts[i] || p[-1] != '\r'))
                sb_puts(&b, "\r\n");
            else
                sb_add(&b, p, 1);
        }
        sb_puts(&b, "\r\n");
    }
    sb_printf(&b, "--%s--\r\n", bd);
    if (b.oom) {
        sb_free(&b);
        return NULL;
    }
    return sb_take(&b, len);
}

/* ---------- tallies ---------- */

enum { C_HELD, C_FLAGGED, C_REJECTED, C_RELEASED, C_GATE, C_AROUND, C_N };
static const char *const COL[C_N] = { "held", "flagged", "rejected", "released", "via gate",
                                      "around gate" };

struct row {
    char key[256];
    unsigned n[C_N];
    unsigned pressed;     /* contacts: contacts + held/flagged/rejected */
};

/* Rows by key: an array filled in order, and an open-addressing index
 * (twice the capacity) so a week of rows costs O(rows), not O(rows x keys). */
struct rows {
    struct row *v;
    int *ix;                  /* slot -> 1 + index into v, 0 empty */
    size_t n, max;
};

struct tally {
    struct rows reps, contacts;
    size_t rows, max_rows, dropped;
    time_t until;
};

static size_t key_hash(const char *s)
{
    size_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s)) * 1099511628211ULL;
    return h;
}

static struct row *find(struct rows *t, const char *key, size_t *dropped)
{
    size_t cap = t->max * 2, i = key_hash(key) & (cap - 1);
    for (; t->ix[i]; i = (i + 1) & (cap - 1))
        if (!strcasecmp(t->v[t->ix[i] - 1].key, key))
            return &t->v[t->ix[i] - 1];
    if (t->n == t->max) {
        (*dropped)++;
        return NULL;
    }
    struct row *r = &t->v[t->n++];
    t->ix[i] = (int)t->n;
    memset(r, 0, sizeof *r);
    snprintf(r->key, sizeof r->key, "%s", key);
    return r;
}

static int rows_init(struct rows *t, size_t max)
{
    t->max = max;
    t->n = 0;
    t->v = calloc(max, sizeof *t->v);
    t->ix = calloc(max * 2, sizeof *t->ix);
    return t->v && t->ix ? 0 : -1;
}

static void rows_free(struct rows *t)
{
    free(t->v);
    free(t->ix);
}

static int audit_row(const struct audit_rec *a, void *arg)
{
    struct tally *t = arg;
    if (a->t >= t->until)
        return 1;
    if (++t->rows > t->max_rows)
        return 1;
    static const char *const ev[] = { "held", "flagged", "rejected", "released" };
    for (int k = 0; k < 4; k++) {
        if (!a->event || strcmp(a->event, ev[k]))
            continue;
        struct row *r = a->rep ? find(&t->reps, a->rep, &t->dropped) : NULL;
        if (r)
            r->n[k]++;
        struct row *c = a->contact && k < 3 ? find(&t->contacts, a->contact, &t->dropped) : NULL;
        if (c)
            c->pressed++;
    }
    return 0;
}

static int contact_row(const struct store_contact *sc, void *arg)
{
    struct tally *t = arg;
    struct row *r = sc->rep ? find(&t->reps, sc->rep, &t->dropped) : NULL;
    if (r)
        r->n[sc->channel && !strcmp(sc->channel, "imap-sent") ? C_AROUND : C_GATE]++;
    struct row *c = sc->contact ? find(&t->contacts, sc->contact, &t->dropped) : NULL;
    if (c)
        c->pressed++;
    return 0;
}

static int by_pressed(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    return x->pressed != y->pressed ? (x->pressed < y->pressed ? 1 : -1) : strcmp(x->key, y->key);
}

/* ---------- the messages ---------- */

static void html_esc(struct strbuf *b, const char *s)
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

static void table(struct strbuf *tx, struct strbuf *ht, const char *first, const struct row *v, size_t n)
{
    sb_printf(tx, "%-30s", first);
    sb_puts(ht, "<table border=\"1\" cellpadding=\"4\"><tr><th>");
    html_esc(ht, first);
    sb_puts(ht, "</th>");
    for (int k = 0; k < C_N; k++) {
        sb_printf(tx, " %11s", COL[k]);
        sb_printf(ht, "<th>%s</th>", COL[k]);
    }
    sb_puts(tx, "\n");
    sb_puts(ht, "</tr>\n");
    for (size_t i = 0; i < n; i++) {
        sb_printf(tx, "%-30s", v[i].key);
        sb_puts(ht, "<tr><td>");
        html_esc(ht, v[i].key);
        sb_puts(ht, "</td>");
        for (int k = 0; k < C_N; k++) {
            sb_printf(tx, " %11u", v[i].n[k]);
            sb_printf(ht, "<td>%u</td>", v[i].n[k]);
        }
        sb_puts(tx, "\n");
        sb_puts(ht, "</tr>\n");
    }
    sb_puts(ht, "</table>\n");
}

static void send_one(struct untild *u, const char *rep, const char *to, const char *subject,
                     struct strbuf *tx, struct strbuf *ht, time_t now)
{
    size_t len = 0;
    char *msg = digest_message(u->cfg->notify_from ? u->cfg->notify_from : "untild@localhost", to,
                               subject, tx->p ? tx->p : "", ht->p ? ht->p : "", now, &len);
    if (!msg || release_notice(u->release, rep, to, subject, msg, len) < 0)
        log_error("digest: cannot queue the digest for %s", to);
}

static void rep_digest(struct untild *u, const struct row *r, const char *week, time_t now)
{
    const char *to = notice_address(u, r->key);
    struct strbuf tx = { 0 }, ht = { 0 }, fu = { 0 };
    char subject[300];
    if (!to && !u->imap)
        return;         /* no address and no mailbox for this rep */
    snprintf(subject, sizeof subject, "Your week with untild: %u held, %u flagged, %u rejected, %u released",
             r->n[C_HELD], r->n[C_FLAGGED], r->n[C_REJECTED], r->n[C_RELEASED]);
    sb_printf(&tx, "Your week to %s.\n\n", week);
    sb_printf(&ht, "<html><body><p>Your week to %s.</p>\n", week);
    table(&tx, &ht, "you", r, 1);
    followup_list_into(u, r->key, 7, 0, &fu);
    sb_printf(&tx, "\nFollow-ups due in the coming week:\n%s", fu.p ? fu.p : "");
    sb_puts(&ht, "<p>Follow-ups due in the coming week:</p><pre>");
    html_esc(&ht, fu.p ? fu.p : "");
    sb_puts(&ht, "</pre></body></html>\n");
    if (to)
        send_one(u, r->key, to, subject, &tx, &ht, now);
    else    /* the rep's mailbox (IMAP APPEND): the text part only */
        notice_send_subject(u, NOTICE_DIGEST, r->key, subject, tx.p ? tx.p : "", NULL, 0);
    sb_free(&tx);
    sb_free(&ht);
    sb_free(&fu);
}

static void manager_digest(struct untild *u, const char *to, struct tally *t, const char *week,
                           time_t now)
{
    struct strbuf tx = { 0 }, ht = { 0 };
    sb_printf(&tx, "The team's week to %s.\n\n", week);
    sb_printf(&ht, "<html><body><p>The team's week to %s.</p>\n", week);
    table(&tx, &ht, "rep", t->reps.v, t->reps.n);
    sb_puts(&tx, "\nContacts pressed most (contacts, held, flagged, rejected):\n");
    sb_puts(&ht, "<p>Contacts pressed most:</p><table border=\"1\" cellpadding=\"4\">"
                 "<tr><th>contact</th><th>times</th></tr>\n");
    for (size_t i = 0; i < t->contacts.n && i < TOP; i++) {
        const struct row *c = &t->contacts.v[i];
        sb_printf(&tx, "  %-40s %u\n", c->key, c->pressed);
        sb_puts(&ht, "<tr><td>");
        html_esc(&ht, c->key);
        sb_printf(&ht, "</td><td>%u</td></tr>\n", c->pressed);
    }
    sb_puts(&ht, "</table></body></html>\n");
    send_one(u, NULL, to, "untild: the team's week", &tx, &ht, now);
    sb_free(&tx);
    sb_free(&ht);
}

/* The digest of the week ending at `at`. */
static void run(struct untild *u, time_t at, time_t now)
{
    struct tally t = { .max_rows = (size_t)u->cfg->digest_max_rows, .until = at };
    char week[64];
    if (rows_init(&t.reps, MAX_REPS) < 0 || rows_init(&t.contacts, MAX_CONTACTS) < 0) {
        log_error("digest: out of memory");
        goto out;
    }
    store_audit_foreach(u->store, at - WEEK, audit_row, &t);
    if (t.rows > t.max_rows)
        log_warn("digest: read %zu audit rows ([digest] max_rows); figures are partial", t.max_rows);
    store_contacts_range(u->store, at - WEEK, at, u->cfg->digest_max_rows, contact_row, &t);
    if (t.dropped)
        log_warn("digest: more than %d reps or %d contacts; %zu row(s) left out", MAX_REPS, MAX_CONTACTS,
                 t.dropped);
    when_format(at, u->cfg->timezone, week, sizeof week);
    week[10] = '\0';
    for (size_t i = 0; i < t.reps.n; i++)
        rep_digest(u, &t.reps.v[i], week, now);
    qsort(t.contacts.v, t.contacts.n, sizeof *t.contacts.v, by_pressed);   /* the index is done with */
    size_t nm = 0;
    if (u->cfg->digest_managers) {
        char *list = strdup(u->cfg->digest_managers), *save = NULL;
        for (char *m = list ? strtok_r(list, ", ", &save) : NULL; m; m = strtok_r(NULL, ", ", &save), nm++)
            manager_digest(u, m, &t, week, now);
        free(list);
    }
    log_info("digest: week to %s sent to %zu rep(s), %zu manager(s)", week, t.reps.n, nm);
out:
    rows_free(&t.reps);
    rows_free(&t.contacts);
}

/* ---------- scheduling ---------- */

static void on_timer(struct loop *l, uint64_t id, void *arg);

static void scan(struct digest *d)
{
    struct untild *u = d->u;
    const struct config *c = u->cfg;
    time_t now = untild_now(u), next = now + RESCAN_S;
    if (c->digest_enabled) {
        /* the latest scheduled time at or before now */
        time_t at = digest_next(now - WEEK + 1, c->timezone, c->digest_day, c->digest_time);
        char *last = store_kv_get(u->store, "digest:last");
        time_t done = last ? (time_t)strtoll(last, NULL, 10) : 0;
        free(last);
        if (at <= now && at > done && now - at < CATCH_UP) {
            char v[32];
            snprintf(v, sizeof v, "%lld", (long long)at);
            run(u, at, now);
            if (store_kv_set(u->store, "digest:last", v) < 0)
                log_error("digest: cannot record the digest sent (a restart may send it again)");
        }
        time_t n = digest_next(now + 1, c->timezone, c->digest_day, c->digest_time);
        if (n < next)
            next = n;
    }
    loop_timer_del(u->loop, d->timer);
    d->timer = loop_timer(u->loop, (int64_t)(next - now) * 1000, on_timer, d);
}

static void on_timer(struct loop *l, uint64_t id, void *arg)
{
    struct digest *d = arg;
    (void)l; (void)id;
    d->timer = 0;
    scan(d);
}

static void on_soon(struct loop *l, uint64_t id, void *arg)
{
    struct digest *d = arg;
    (void)l; (void)id;
    d->soon = 0;
    scan(d);
}

struct digest *digest_new(struct untild *u)
{
    struct digest *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->u = u;
    digest_kick(d);
    return d;
}

void digest_free(struct digest *d)
{
    if (!d)
        return;
    loop_timer_del(d->u->loop, d->timer);
    loop_timer_del(d->u->loop, d->soon);
    free(d);
}

void digest_kick(struct digest *d)
{
    if (d && !d->soon)
        d->soon = loop_timer(d->u->loop, 0, on_soon, d);
}
