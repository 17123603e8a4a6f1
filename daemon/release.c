/* release.c - the held queue's index and its scheduler.
 *
 * Each held message is re-evaluated against the current windows once a
 * second (and at once when windows change): while a held recipient is
 * quiet its release time follows the window (so lengthening keeps it,
 * shortening brings it forward); once none is quiet it goes out at the
 * release time computed while it was quiet (aligned to release_time), or
 * at once when a window was ended by hand. Delivery: held -> active,
 * relay, then remove (all done), or update + back to held with backoff;
 * past max_queue_lifetime the rep gets the message back in a notice. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "untild/release.h"
#include "untild/daemon.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/message.h"
#include "untild/notice.h"
#include "untild/policy.h"
#include "untild/relay.h"
#include "untild/store.h"
#include "untild/strbuf.h"
#include "untild/when.h"
#include "untild/windows.h"

#define MAX_INFLIGHT 32
#define BACKOFF_MIN 60
#define BACKOFF_MAX 3600

struct entry {
    struct spool_meta m;
    time_t release_at;
    time_t next_attempt;
    time_t first_attempt;  /* max_queue_lifetime counts from here, not from
                              `created`: mail held for months must still get
                              its retries once released */
    int inflight;
    int gone;          /* discarded while in flight */
};

struct release {
    struct untild *u;
    struct entry **e;
    size_t n, cap;
    size_t inflight;
    uint64_t timer;
    int changed;       /* windows changed since the last pass */
    uint64_t soon;     /* timer of a pass scheduled right after deliveries */
};

struct delivery {
    struct release *r;
    struct entry *e;
    char *body;
    size_t len;
    const char **rcpts;
    const char **params; /* their RCPT parameters (DSN) */
    size_t *idx;       /* index into e->m.rcpts for each relayed rcpt */
    size_t nrcpts;
    char *by, *reason; /* manual release */
};

static void tick(struct loop *l, uint64_t id, void *arg);

static struct entry *find(const struct release *r, const char *id, size_t *pos)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->e[i]->m.id, id)) {
            if (pos)
                *pos = i;
            return r->e[i];
        }
    return NULL;
}

static int add_entry(struct release *r, const struct spool_meta *m, time_t release_at)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        struct entry **p = realloc(r->e, cap * sizeof *p);
        if (!p)
            return -1;
        r->e = p;
        r->cap = cap;
    }
    struct entry *e = calloc(1, sizeof *e);
    if (!e || spool_meta_copy(&e->m, m) < 0) {
        free(e);
        return -1;
    }
    e->release_at = release_at;
    e->next_attempt = m->next_attempt;
    /* The spool does not record the first attempt; after a restart, count
     * from when the message became due (errs toward retrying longer). */
    if (m->attempts > 0)
        e->first_attempt = release_at > m->hold_until ? release_at : m->hold_until;
    r->e[r->n++] = e;
    return 0;
}

static void drop_entry(struct release *r, struct entry *e)
{
    size_t pos = 0;
    if (find(r, e->m.id, &pos) == e) {
        r->e[pos] = r->e[--r->n];
    }
    spool_meta_free(&e->m);
    free(e);
}

struct release *release_new(struct untild *u)
{
    struct release *r = calloc(1, sizeof *r);
    struct spool_meta *list = NULL;
    size_t n = 0;
    if (!r)
        return NULL;
    r->u = u;
    if (spool_list(u->spool, &list, &n) < 0) {
        log_error("release: cannot list the spool: %s", strerror(errno));
        free(r);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (add_entry(r, &list[i], list[i].quiet_until) < 0)
            log_error("release: cannot track %s", list[i].id);
        spool_meta_free(&list[i]);
    }
    free(list);
    if (n)
        log_info("release: %zu held message(s) in the spool", n);
    r->timer = loop_timer(u->loop, 1000, tick, r);
    return r;
}

void release_free(struct release *r)
{
    if (!r)
        return;
    loop_timer_del(r->u->loop, r->timer);
    loop_timer_del(r->u->loop, r->soon);
    for (size_t i = 0; i < r->n; i++) {
        spool_meta_free(&r->e[i]->m);
        free(r->e[i]);
    }
    free(r->e);
    free(r);
}

int release_track(struct release *r, const struct spool_meta *m, time_t release_at)
{
    return add_entry(r, m, release_at);
}

size_t release_count(const struct release *r) { return r->n; }

const struct spool_meta *release_get(const struct release *r, size_t i, time_t *release_at)
{
    if (i >= r->n)
        return NULL;
    if (release_at)
        *release_at = r->e[i]->release_at > r->e[i]->m.hold_until ? r->e[i]->release_at
                                                                  : r->e[i]->m.hold_until;
    return &r->e[i]->m;
}

const struct spool_meta *release_find(const struct release *r, const char *id, time_t *release_at)
{
    size_t pos = 0;
    if (!find(r, id, &pos))
        return NULL;
    return release_get(r, pos, release_at);
}

size_t release_find_uid(const struct release *r, const char *rep, const char *uid,
                        char (*ids)[SPOOL_ID_MAX], size_t max)
{
    return release_find_occurrence(r, rep, uid, NULL, ids, max);
}

size_t release_find_occurrence(const struct release *r, const char *rep, const char *uid,
                               const char *rid, char (*ids)[SPOOL_ID_MAX], size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n && k < max; i++) {
        const struct spool_meta *m = &r->e[i]->m;
        if (r->e[i]->inflight || !m->ical_uid || strcmp(m->ical_uid, uid))
            continue;
        /* one occurrence replaces or cancels only that occurrence */
        if (rid && (!m->ical_recurrence_id || strcmp(m->ical_recurrence_id, rid)))
            continue;
        if (rep && m->rep && strcasecmp(rep, m->rep))
            continue;
        snprintf(ids[k++], SPOOL_ID_MAX, "%s", m->id);
    }
    return k;
}

static void audit(struct release *r, const char *event, const struct entry *e, const char *by,
                  const char *detail)
{
    struct untild *u = r->u;
    for (size_t i = 0; i < e->m.nrcpts; i++)
        store_audit(u->store, &(struct audit_rec){ untild_now(u), event, e->m.rep, e->m.rcpts[i].norm,
                    e->m.rcpts[i].window_id, e->m.id, detail ? detail : by });
}

static void notify(struct release *r, const struct entry *e, enum notice_kind kind,
                   const char *subject, const char *text, int attach)
{
    struct untild *u = r->u;
    struct strbuf b = { 0 };
    char *body = NULL;
    size_t len = 0;
    sb_printf(&b, "%s\n\nMessage: %s\nHeld ID: %s\nRecipients:", text,
              e->m.subject ? e->m.subject : "(no subject)", e->m.id);
    for (size_t i = 0; i < e->m.nrcpts; i++)
        sb_printf(&b, " %s", e->m.rcpts[i].norm);
    sb_puts(&b, "\n");
    if (attach && spool_read(u->spool, e->m.id, NULL, &body, &len) < 0)
        body = NULL;
    notice_send_kind(u, kind, e->m.rep, subject, b.p ? b.p : text, body, body ? len : 0);
    free(body);
    sb_free(&b);
}

int release_discard(struct release *r, const char *id, const char *by, const char *event)
{
    struct entry *e = find(r, id, NULL);
    if (!e)
        return -1;
    if (spool_remove(r->u->spool, id) < 0 && errno != ENOENT) {
        log_error("release: cannot remove %s: %s", id, strerror(errno));
        return -1;
    }
    audit(r, event ? event : "discarded", e, by, NULL);
    log_info("release: %s %s (by %s)", event ? event : "discarded", id, by ? by : "-");
    if (e->inflight) {
        e->gone = 1;          /* freed when its delivery reports back */
        size_t pos = 0;
        if (find(r, id, &pos) == e)
            r->e[pos] = r->e[--r->n];
        return 0;
    }
    drop_entry(r, e);
    return 0;
}

static int in_list(const char *norm, const char *const *norms, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (!strcmp(norm, norms[j]))
            return 1;
    return 0;
}

int release_drop_rcpts(struct release *r, const char *id, const char *const *norms,
                       size_t n, const char *by, const char *event)
{
    struct entry *e = find(r, id, NULL);
    if (!e || e->inflight)
        return -1;
    size_t dropped = 0, left = 0;
    for (size_t i = 0; i < e->m.nrcpts; i++)
        if (e->m.rcpts[i].state == RCPT_HELD) {
            if (in_list(e->m.rcpts[i].norm, norms, n))
                dropped++;
            else
                left++;
        }
    if (!dropped)
        return 0;
    if (!left)      /* nothing left to send: the whole message goes */
        return release_discard(r, id, by, event) < 0 ? -1 : (int)dropped;
    /* RCPT_DONE: delivery skips it like a recipient already sent; the
     * spool file records it so a restart does not revive it. mark[]
     * remembers which ones changed, to undo exactly those on failure. */
    unsigned char *mark = calloc(e->m.nrcpts, 1);
    if (!mark)
        return -1;
    for (size_t i = 0; i < e->m.nrcpts; i++)
        if (e->m.rcpts[i].state == RCPT_HELD && in_list(e->m.rcpts[i].norm, norms, n)) {
            e->m.rcpts[i].state = RCPT_DONE;
            mark[i] = 1;
        }
    if (spool_update(r->u->spool, &e->m) < 0) {
        int err = errno;
        log_error("release: cannot update %s: %s", id, strerror(err));
        /* Memory must match the disk: those recipients stay held. */
        for (size_t i = 0; i < e->m.nrcpts; i++)
            if (mark[i])
                e->m.rcpts[i].state = RCPT_HELD;
        free(mark);
        errno = err;
        return -1;
    }
    for (size_t i = 0; i < e->m.nrcpts; i++)
        if (mark[i])
            store_audit(r->u->store, &(struct audit_rec){ untild_now(r->u), event ? event : "discarded",
                        e->m.rep, e->m.rcpts[i].norm, e->m.rcpts[i].window_id, e->m.id, by });
    free(mark);
    log_info("release: %s %zu recipient(s) of %s (by %s)", event ? event : "discarded", dropped, id,
             by ? by : "-");
    return (int)dropped;
}

static int64_t backoff(int attempts)
{
    int64_t s = BACKOFF_MIN;
    for (int i = 1; i < attempts && s < BACKOFF_MAX; i++)
        s *= 2;
    return s > BACKOFF_MAX ? BACKOFF_MAX : s;
}

static void delivery_free(struct delivery *d)
{
    free(d->body);
    free(d->rcpts);
    free(d->params);
    free(d->idx);
    free(d->by);
    free(d->reason);
    free(d);
}

static void pass(struct release *r);

/* A delivery finished: its slot is free, so start the next due ones now
 * rather than at the next one-second tick (one pass per loop turn). */
static void pass_soon_cb(struct loop *l, uint64_t id, void *arg)
{
    struct release *r = arg;
    (void)l; (void)id;
    r->soon = 0;
    pass(r);
}

static void pass_soon(struct release *r)
{
    if (!r->soon)
        r->soon = loop_timer(r->u->loop, 0, pass_soon_cb, r);
}

static void delivered(void *arg, struct relay_result *res)
{
    struct delivery *d = arg;
    struct release *r = d->r;
    struct entry *e = d->e;
    struct untild *u = r->u;
    time_t now = untild_now(u);

    r->inflight--;
    e->inflight = 0;
    pass_soon(r);
    if (e->gone) {      /* discarded meanwhile: the spool file is gone */
        spool_meta_free(&e->m);
        free(e);
        delivery_free(d);
        return;
    }
    size_t failed = 0, left = 0;
    for (size_t i = 0; i < d->nrcpts; i++) {
        struct spool_rcpt *rc = &e->m.rcpts[d->idx[i]];
        int code = res->rcpt_codes ? res->rcpt_codes[i] : (res->ok ? 250 : res->code);
        if (!res->ok && code < 400)
            code = res->code;
        if (code >= 200 && code < 300)
            rc->state = RCPT_DONE;
        else if (code >= 500)
            rc->state = RCPT_FAILED;
    }
    for (size_t i = 0; i < e->m.nrcpts; i++) {
        failed += e->m.rcpts[i].state == RCPT_FAILED;
        left += e->m.rcpts[i].state == RCPT_HELD;
    }
    if (!left) {
        char text[700];
        snprintf(text, sizeof text, "%s%s", failed ? "Some recipients were refused: " : "",
                 failed ? res->text : "");
        audit(r, failed ? "failed" : "released", e, d->by, d->reason);
        if (failed)
            notify(r, e, NOTICE_FAILED, "Failed: a held message could not be delivered",
                   "The upstream refused some recipients of your held message. It is attached.", 1);
        else
            notify(r, e, NOTICE_RELEASED, "Released: your held message was sent",
                   d->reason ? d->reason : "The customer's window opened; your message was sent.", 0);
        if (spool_remove(u->spool, e->m.id) < 0)
            log_error("release: cannot remove delivered %s: %s (it may be sent again)",
                      e->m.id, strerror(errno));
        log_info("release: %s delivered (%zu refused)", e->m.id, failed);
        drop_entry(r, e);
        delivery_free(d);
        return;
    }
    e->m.attempts++;
    free(e->m.last_error);
    char err[600];
    snprintf(err, sizeof err, "%d %s", res->code, res->text);
    e->m.last_error = strdup(err);
    if (now - e->first_attempt > u->cfg->max_queue_lifetime) {
        audit(r, "failed", e, d->by, err);
        notify(r, e, NOTICE_FAILED, "Failed: a held message could not be delivered",
               "untild gave up delivering your held message after retrying; it is attached.", 1);
        spool_remove(u->spool, e->m.id);
        log_warn("release: %s expired after %d attempts: %s", e->m.id, e->m.attempts, err);
        drop_entry(r, e);
        delivery_free(d);
        return;
    }
    e->next_attempt = e->m.next_attempt = now + backoff(e->m.attempts);
    if (spool_update(u->spool, &e->m) < 0 || spool_deactivate(u->spool, e->m.id) < 0)
        log_error("release: cannot record retry state for %s: %s", e->m.id, strerror(errno));
    log_info("release: %s deferred (attempt %d): %s", e->m.id, e->m.attempts, err);
    delivery_free(d);
}

static int start(struct release *r, struct entry *e, const char *by, const char *reason)
{
    struct untild *u = r->u;
    struct delivery *d = calloc(1, sizeof *d);
    if (!d)
        return -1;
    d->r = r;
    d->e = e;
    d->by = by ? strdup(by) : NULL;
    d->reason = reason ? strdup(reason) : NULL;
    int activated = spool_activate(u->spool, e->m.id) == 0;
    if (!activated || spool_read(u->spool, e->m.id, NULL, &d->body, &d->len) < 0) {
        log_error("release: cannot read %s: %s", e->m.id, strerror(errno));
        /* back to held/, or every later attempt fails to activate it */
        if (activated)
            spool_deactivate(u->spool, e->m.id);
        delivery_free(d);
        e->next_attempt = untild_now(u) + BACKOFF_MIN;
        return -1;
    }
    d->rcpts = calloc(e->m.nrcpts, sizeof *d->rcpts);
    d->params = calloc(e->m.nrcpts, sizeof *d->params);
    d->idx = calloc(e->m.nrcpts, sizeof *d->idx);
    if (!d->rcpts || !d->params || !d->idx) {
        spool_deactivate(u->spool, e->m.id);
        delivery_free(d);
        return -1;
    }
    for (size_t i = 0; i < e->m.nrcpts; i++)
        if (e->m.rcpts[i].state == RCPT_HELD) {
            d->idx[d->nrcpts] = i;
            d->params[d->nrcpts] = e->m.rcpts[i].params;
            d->rcpts[d->nrcpts++] = e->m.rcpts[i].addr;
        }
    struct relay_job job = { .mail_from = e->m.mail_from ? e->m.mail_from : "", .rcpts = d->rcpts,
                             .nrcpts = d->nrcpts, .data = d->body, .len = d->len,
                             .mail_params = e->m.mail_params, .rcpt_params = d->params };
    if (!e->first_attempt)
        e->first_attempt = untild_now(u);
    e->inflight = 1;
    r->inflight++;
    if (relay_submit(u->relay, &job, delivered, d) < 0) {
        e->inflight = 0;
        r->inflight--;
        spool_deactivate(u->spool, e->m.id);
        delivery_free(d);
        return -1;
    }
    log_info("release: releasing %s to %zu recipient(s)%s%s", e->m.id, d->nrcpts,
             reason ? ": " : "", reason ? reason : "");
    return 0;
}

int release_now(struct release *r, const char *id, const char *by, const char *reason)
{
    struct entry *e = find(r, id, NULL);
    if (!e)
        return -1;
    if (e->inflight)
        return 0;
    return start(r, e, by, reason);
}

/* A held invitation with no occurrence left to start is not sent: tell
 * the rep. ical_last is the start of the last occurrence (-1: a series
 * without end, never stale); files written before it was recorded (0)
 * fall back to the first start. */
static int stale(struct release *r, struct entry *e, time_t now)
{
    time_t last = e->m.ical_last ? e->m.ical_last : e->m.ical_dtstart;
    if (e->m.ical_method != IMIP_REQUEST || last <= 0 || last > now)
        return 0;
    int series = e->m.ical_last > 0 && e->m.ical_last != e->m.ical_dtstart;
    audit(r, "stale-invitation", e, NULL, series ? "every occurrence started before the window opened"
                                                 : "event started before the window opened");
    notify(r, e, NOTICE_STALE, "Reschedule: a held invitation was not sent",
           series ? "Every occurrence of the meeting starts before the customer's window opens, so the "
                    "invitation was not sent. Please reschedule it."
                  : "The meeting starts before the customer's window opens, so the invitation was not sent. "
                    "Please reschedule it.", 1);
    spool_remove(r->u->spool, e->m.id);
    drop_entry(r, e);
    return 1;
}

static void pass(struct release *r)
{
    struct untild *u = r->u;
    time_t now = untild_now(u);
    int changed = r->changed;
    r->changed = 0;
    for (size_t i = 0; i < r->n; i++) {
        struct entry *e = r->e[i];
        if (e->inflight)
            continue;
        int quiet = 0;
        time_t due = 0;
        for (size_t j = 0; j < e->m.nrcpts; j++) {
            struct window_match m;
            if (e->m.rcpts[j].state != RCPT_HELD || !windows_match(u->ix, e->m.rcpts[j].norm, now, &m))
                continue;
            time_t at = policy_release_at(&u->pcfg, &m);
            quiet = 1;
            if (at > due)
                due = at;
        }
        if (quiet)
            e->release_at = due;
        else if (changed && e->release_at > now)
            e->release_at = now;    /* its window was ended or shortened */
        time_t at = e->release_at > e->m.hold_until ? e->release_at : e->m.hold_until;
        log_debug("release: %s quiet=%d release_at=%lld now=%lld", e->m.id, quiet,
                  (long long)at, (long long)now);
        if (quiet || at > now || e->next_attempt > now)
            continue;
        if (stale(r, e, now)) {
            i--;
            continue;
        }
        /* Keep evaluating the rest (their release times must follow the
         * windows too); the ones not started now go in a later pass. */
        if (r->inflight >= MAX_INFLIGHT)
            continue;
        start(r, e, NULL, NULL);
    }
}

static void tick(struct loop *l, uint64_t id, void *arg)
{
    struct release *r = arg;
    (void)id;
    pass(r);
    r->timer = loop_timer(l, 1000, tick, r);
}

void release_kick(struct release *r, int windows_changed)
{
    if (windows_changed)
        r->changed = 1;
    pass(r);
}
