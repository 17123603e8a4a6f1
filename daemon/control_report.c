/* control_report.c - `untilctl report`: who was held, flagged, rejected,
 * by rep, by contact, and by ISO week, rep and channel (for a manager's
 * chart), from the audit rows of the last DAYS days; refused requests by
 * who tried (admins only). A rep's report counts their own mail only.
 *
 * The channel is read from what the audit row records (report_channel):
 * docs/DECISIONS.md "Report channels" says how and where it guesses.
 *
 * Thread: loop thread (the store). Diagnostics: none beyond the answer. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "untild/control_int.h"
#include "untild/daemon.h"
#include "untild/fnv.h"
#include "untild/json.h"
#include "untild/policy_service.h"
#include "untild/store.h"
#include "untild/strbuf.h"
#include "untild/when.h"

struct tally { char key[320]; unsigned long held, flagged, rejected, denied; };

/* Tallies by key (case-insensitive), found through a hash of the key: a
 * report over a big audit table does work in proportion to its rows (a
 * linear search per row, and a realloc per new key, took minutes for
 * 30,000 contacts, on the loop thread). */
struct tally_set {
    struct tally *t;
    size_t n, cap;
    size_t *slot;           /* index + 1 into t; 0: empty */
    size_t nslot;           /* a power of two, over twice n */
};

struct report_ctx {
    struct tally_set reps, contacts, denied, weeks;
    const char *tz;
    int admin;
    const char *rep;
};

static size_t key_hash(const char *k)
{
    return (size_t)fnv_key_ci(k);
}

/* Room for one more key: the array and the index (rebuilt when it is half
 * full). -1: out of memory. */
static int tally_grow(struct tally_set *s)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct tally *t = realloc(s->t, cap * sizeof *t);
        if (!t)
            return -1;
        s->t = t;
        s->cap = cap;
    }
    if (2 * (s->n + 1) <= s->nslot)
        return 0;
    size_t nslot = s->nslot ? s->nslot * 2 : 128, *slot = calloc(nslot, sizeof *slot);
    if (!slot)
        return -1;
    for (size_t i = 0; i < s->n; i++) {
        size_t j = key_hash(s->t[i].key) & (nslot - 1);
        while (slot[j])
            j = (j + 1) & (nslot - 1);
        slot[j] = i + 1;
    }
    free(s->slot);
    s->slot = slot;
    s->nslot = nslot;
    return 0;
}

static void tally_add(struct tally_set *s, const char *key, const char *event)
{
    char k[sizeof s->t->key];
    snprintf(k, sizeof k, "%s", key);     /* the key as kept (cut to its size) */
    size_t j = s->nslot ? key_hash(k) & (s->nslot - 1) : 0;
    while (s->nslot && s->slot[j] && strcasecmp(s->t[s->slot[j] - 1].key, k))
        j = (j + 1) & (s->nslot - 1);
    struct tally *t;
    if (s->nslot && s->slot[j]) {
        t = &s->t[s->slot[j] - 1];
    } else {
        if (tally_grow(s) < 0)
            return;
        j = key_hash(k) & (s->nslot - 1);
        while (s->slot[j])
            j = (j + 1) & (s->nslot - 1);
        t = &s->t[s->n];
        memset(t, 0, sizeof *t);
        memcpy(t->key, k, sizeof k);
        s->slot[j] = ++s->n;
    }
    if (!strcmp(event, "held"))
        t->held++;
    else if (!strcmp(event, "flagged"))
        t->flagged++;
    else if (!strcmp(event, "denied"))
        t->denied++;
    else
        t->rejected++;
}

static void tally_free(struct tally_set *s)
{
    free(s->t);
    free(s->slot);
}

/* Where the contact was caught, from what the audit row records: the
 * IMAP watcher's rows say "imap:", the CalDAV watcher's name an
 * invitation (or carry its href); the policy service's carry a Postfix
 * queue id where untild's own carry a spool id (18 of [0-9a-z]); the
 * rest came through untild's SMTP gate. */
static const char *report_channel(const struct audit_rec *r)
{
    const char *d = r->detail ? r->detail : "", *m = r->msg_id;
    if (!strncmp(d, "imap:", 5))
        return "imap";
    if (!strncmp(d, "calendar invitation", 19) || (m && m[0] == '/'))
        return "caldav";
    if (m && policy_service_queue_id_ok(m) && !(strlen(m) == 18 && strspn(m, "0123456789abcdefghijklmnopqrstuvwxyz") == 18))
        return "policy";
    return "smtp";
}

/* "2026-W48": the ISO week of t's local day in tz. */
static void iso_week(time_t t, const char *tz, char *out, size_t outsz)
{
    int y, mo, d, sod;
    struct tm tm = { 0 };
    if (when_local_fields(t, tz, &y, &mo, &d, &sod) < 0) {
        gmtime_r(&t, &tm);
    } else {
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        time_t day = timegm(&tm);
        gmtime_r(&day, &tm);
    }
    strftime(out, outsz, "%G-W%V", &tm);
}

static int report_row(const struct audit_rec *r, void *arg)
{
    struct report_ctx *c = arg;
    /* Refused control requests: who tried, for admins only (a rep's
     * report is about their own mail). */
    if (r->event && !strcmp(r->event, "denied")) {
        if (c->admin)
            tally_add(&c->denied, r->rep ? r->rep : "-", r->event);
        return 0;
    }
    if (!r->event || (strcmp(r->event, "held") && strcmp(r->event, "flagged") && strcmp(r->event, "rejected")))
        return 0;
    if (!c->admin && !control_rep_owns(c->rep, r->rep))
        return 0;
    tally_add(&c->reps, r->rep ? r->rep : "-", r->event);
    tally_add(&c->contacts, r->contact ? r->contact : "-", r->event);
    char week[16], key[sizeof c->weeks.t->key];
    iso_week(r->t, c->tz, week, sizeof week);
    /* week, channel, rep: the week and channel have no '\t', so the rep is all after the second */
    snprintf(key, sizeof key, "%s\t%s\t%s", week, report_channel(r), r->rep ? r->rep : "-");
    tally_add(&c->weeks, key, r->event);
    return 0;
}

static void report_table(struct strbuf *b, const char *title, const struct tally *t, size_t n)
{
    char key[320];
    sb_printf(b, "%-40s %8s %8s %8s\n", title, "HELD", "FLAGGED", "REJECTED");
    for (size_t i = 0; i < n; i++)
        sb_printf(b, "%-40s %8lu %8lu %8lu\n", control_clean(t[i].key, key, sizeof key), t[i].held, t[i].flagged,
                  t[i].rejected);
}

/* [{"id":KEY,"held":N,"flagged":N,"rejected":N}...], or with denied
 * [{"id":KEY,"denied":N}...]. */
static struct json_object *tally_json(const struct tally *t, size_t n, int denied)
{
    struct json_object *a = json_object_new_array();
    int e = !a;
    for (size_t i = 0; !e && i < n; i++) {
        struct json_object *o = json_object_new_object();
        e |= !o || ujson_add_str(o, "id", t[i].key);
        if (!e && denied)
            e |= ujson_add_int(o, "denied", (int64_t)t[i].denied);
        else if (!e)
            e |= ujson_add_int(o, "held", (int64_t)t[i].held) | ujson_add_int(o, "flagged", (int64_t)t[i].flagged)
                 | ujson_add_int(o, "rejected", (int64_t)t[i].rejected);
        e |= ujson_push(a, o);
    }
    if (e) {
        json_object_put(a);
        return NULL;
    }
    return a;
}

static int week_cmp(const void *a, const void *b)
{
    return strcmp(((const struct tally *)a)->key, ((const struct tally *)b)->key);
}

/* The weeks' rows: [{"week","rep","channel","held","flagged","rejected"}],
 * oldest week first. */
static struct json_object *weeks_json(const struct tally *t, size_t n)
{
    struct json_object *a = json_object_new_array();
    int e = !a;
    for (size_t i = 0; !e && i < n; i++) {
        char k[sizeof t->key];
        snprintf(k, sizeof k, "%s", t[i].key);
        char *ch = strchr(k, '\t'), *rp = ch ? strchr(ch + 1, '\t') : NULL;
        if (!rp)
            continue;
        *ch++ = '\0';
        *rp++ = '\0';
        struct json_object *o = json_object_new_object();
        e |= !o || ujson_add_str(o, "week", k) | ujson_add_str(o, "rep", rp) | ujson_add_str(o, "channel", ch)
             | ujson_add_int(o, "held", (int64_t)t[i].held) | ujson_add_int(o, "flagged", (int64_t)t[i].flagged)
             | ujson_add_int(o, "rejected", (int64_t)t[i].rejected);
        e |= ujson_push(a, o);
    }
    if (e) {
        json_object_put(a);
        return NULL;
    }
    return a;
}

static void weeks_table(struct strbuf *b, const struct tally *t, size_t n)
{
    sb_printf(b, "\n%-9s %-7s %-30s %8s %8s %8s\n", "WEEK", "CHANNEL", "REP", "HELD", "FLAGGED", "REJECTED");
    for (size_t i = 0; i < n; i++) {
        char k[sizeof t->key], rc[256];
        snprintf(k, sizeof k, "%s", t[i].key);
        char *ch = strchr(k, '\t'), *rp = ch ? strchr(ch + 1, '\t') : NULL;
        if (!rp)
            continue;
        *ch++ = '\0';
        *rp++ = '\0';
        sb_printf(b, "%-9s %-7s %-30s %8lu %8lu %8lu\n", k, ch, control_clean(rp, rc, sizeof rc), t[i].held,
                  t[i].flagged, t[i].rejected);
    }
}

int control_report(struct untild *u, int argc, char **argv, int admin, const char *rep, int json,
                   struct strbuf *b)
{
    long days = 30;
    const char *s = control_opt(argc, argv, "--since");
    if (s) {
        char *end;
        days = strtol(s, &end, 10);
        if (*end || days < 0 || days > 36500) {
            sb_puts(b, "report: --since takes a number of days\n");
            return EX_USAGE;
        }
    }
    struct report_ctx c = { 0 };
    c.admin = admin;
    c.rep = rep;
    c.tz = u->cfg->timezone;
    store_audit_foreach(u->store, untild_now(u) - days * 86400, report_row, &c);
    if (c.weeks.n)
        qsort(c.weeks.t, c.weeks.n, sizeof *c.weeks.t, week_cmp);
    if (json) {
        struct json_object *o = json_object_new_object();
        if (o && (ujson_add_int(o, "since_days", days) | ujson_add(o, "by_rep", tally_json(c.reps.t, c.reps.n, 0))
                  | ujson_add(o, "by_contact", tally_json(c.contacts.t, c.contacts.n, 0))
                  | ujson_add(o, "denied", tally_json(c.denied.t, c.denied.n, 1))
                  | ujson_add(o, "weeks", weeks_json(c.weeks.t, c.weeks.n)))) {
            json_object_put(o);
            o = NULL;
        }
        control_append_json(b, o);
    } else {
        sb_printf(b, "untild report, last %ld days\n\n", days);
        report_table(b, "REP", c.reps.t, c.reps.n);
        sb_puts(b, "\n");
        report_table(b, "CONTACT", c.contacts.t, c.contacts.n);
        weeks_table(b, c.weeks.t, c.weeks.n);
        if (c.denied.n) {
            sb_printf(b, "\n%-40s %8s\n", "DENIED REQUESTS BY", "COUNT");
            for (size_t i = 0; i < c.denied.n; i++)
            {
                char key[320];
                sb_printf(b, "%-40s %8lu\n", control_clean(c.denied.t[i].key, key, sizeof key), c.denied.t[i].denied);
            }
        }
    }
    tally_free(&c.reps);
    tally_free(&c.contacts);
    tally_free(&c.denied);
    tally_free(&c.weeks);
    return EX_OK;
}

