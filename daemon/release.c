/* release.c - the held queue in memory and the scheduler that delivers it.
 *
 * The spool is the truth; this is its index plus one timer. Every entry's
 * state and due time are derived by lifecycle_eval() (lifecycle.h) from
 * the windows as they stand and the facts persisted in its spool file, at
 * every evaluation: when it is tracked, when its time comes, and after any
 * window change. Nothing else decides.
 *
 * Scheduling: a binary min-heap of entries by their next evaluation time
 * (due, or next retry), so a pass costs O(log n) per message whose time
 * has come and nothing while idle: one timer waits for the heap's top. A
 * window change re-evaluates every entry, in bounded chunks per loop turn.
 *
 * Delivery: held -> active/ -> relay -> removed (all done), or back to
 * held/ with the retry state recorded (deferred), or returned: the rep
 * gets the message back as a durable notice (a spool entry of its own,
 * retried until delivered) and only then is the original removed.
 * Notices to the rep are spool entries too (release_notice), so they share
 * the durability and retries of held mail. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "untild/release.h"
#include "untild/daemon.h"
#include "untild/contacts.h"
#include "untild/holder.h"
#include "untild/lifecycle.h"
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
#include "untild/workq.h"

#define MAX_INFLIGHT 32
#define STARTS_PER_TURN 8     /* deliveries started per loop turn (each reads a spool file) */
#define EVAL_BUDGET_MS 5      /* re-evaluation after a window change: per loop turn */
#define MAX_SLEEP_S 60        /* look again at least this often (wall clock steps) */
#define NOHEAP SIZE_MAX

struct entry {
    struct spool_meta m;      /* the persisted facts (a copy of the file's header) */
    struct lifecycle lc;      /* the last evaluation */
    size_t slot;              /* index in release.e */
    size_t hpos;              /* index in release.heap, NOHEAP if not queued */
    unsigned gen;             /* last re-evaluation generation seen */
    int busy;                 /* delivery, return or a write of its state in flight */
    /* A hand release or discard asked for while its state is being
     * written (write_state) is done once it is written. */
    int writing;
    enum { LATER_NONE, LATER_RELEASE, LATER_DISCARD } later;
    char *later_by, *later_why;
    int hidden;               /* a plain notice: in release.notes */
};

struct list {
    struct entry **e;
    size_t n, cap;
};

struct release {
    struct untild *u;
    /* Held mail (and messages on their way back to the rep) are listed to
     * users; plain notices to the rep live only in `notes`. */
    struct entry **e;         /* held mail, unordered (listing) */
    size_t n, cap;
    struct list notes;
    struct entry **tab;       /* id -> entry, open addressing */
    size_t tabcap;
    struct entry **heap;      /* by lc.next */
    size_t hn, hcap;
    size_t inflight;
    uint64_t timer;           /* waits for the heap's top */
    time_t timer_at;
    uint64_t soon;            /* a pass on the next loop turn */
    uint64_t scan_timer;      /* chunked re-evaluation after a window change */
    unsigned gen;
    size_t scan;
    struct workq *writer;     /* writes entries' new state (write_state), builds returns */
    int stopping;             /* release_free: no new writer thread */
};

struct delivery {
    struct release *r;
    struct entry *e;
    int dfd;                  /* held/: the relay's thread reads the file */
    char id[SPOOL_ID_MAX];
    const char **rcpts;
    const char **params;      /* their RCPT parameters (DSN) */
    size_t *idx;              /* index into e->m.rcpts of each relayed rcpt */
    size_t nrcpts;
    time_t started;
};

static void run_due(struct release *r);
static void arm(struct release *r);
static void pass_soon(struct release *r);
static void evaluate(struct release *r, struct entry *e, time_t now);
static void heap_remove(struct release *r, struct entry *e);

/* ---------- id table ---------- */

static size_t id_hash(const char *id, size_t cap)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211ULL;
    return (size_t)(h & (cap - 1));
}

static struct entry *tab_get(const struct release *r, const char *id)
{
    if (!r->tabcap)
        return NULL;
    for (size_t i = id_hash(id, r->tabcap);; i = (i + 1) & (r->tabcap - 1)) {
        if (!r->tab[i])
            return NULL;
        if (!strcmp(r->tab[i]->m.id, id))
            return r->tab[i];
    }
}

static void tab_put_nogrow(struct release *r, struct entry *e)
{
    size_t i = id_hash(e->m.id, r->tabcap);
    while (r->tab[i])
        i = (i + 1) & (r->tabcap - 1);
    r->tab[i] = e;
}

static int tab_grow(struct release *r)
{
    size_t cap = r->tabcap ? r->tabcap * 2 : 256;
    struct entry **old = r->tab;
    size_t oldcap = r->tabcap;
    if (!(r->tab = calloc(cap, sizeof *r->tab))) {
        r->tab = old;
        return -1;
    }
    r->tabcap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i])
            tab_put_nogrow(r, old[i]);
    free(old);
    return 0;
}

/* Linear probing with backward-shift deletion: no tombstones. */
static void tab_del(struct release *r, const struct entry *e)
{
    size_t mask = r->tabcap - 1, i = id_hash(e->m.id, r->tabcap);
    while (r->tab[i] && r->tab[i] != e)
        i = (i + 1) & mask;
    if (!r->tab[i])
        return;
    r->tab[i] = NULL;
    for (size_t j = (i + 1) & mask; r->tab[j]; j = (j + 1) & mask) {
        size_t home = id_hash(r->tab[j]->m.id, r->tabcap);
        /* move j back into the hole when its home is not in (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            r->tab[i] = r->tab[j];
            r->tab[j] = NULL;
            i = j;
        }
    }
}

/* ---------- heap by next evaluation time ---------- */

static void heap_set(struct release *r, size_t i, struct entry *e)
{
    r->heap[i] = e;
    e->hpos = i;
}

static void heap_up(struct release *r, size_t i)
{
    struct entry *e = r->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (r->heap[p]->lc.next <= e->lc.next)
            break;
        heap_set(r, i, r->heap[p]);
        i = p;
    }
    heap_set(r, i, e);
}

static void heap_down(struct release *r, size_t i)
{
    struct entry *e = r->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= r->hn)
            break;
        if (c + 1 < r->hn && r->heap[c + 1]->lc.next < r->heap[c]->lc.next)
            c++;
        if (r->heap[c]->lc.next >= e->lc.next)
            break;
        heap_set(r, i, r->heap[c]);
        i = c;
    }
    heap_set(r, i, e);
}

static void heap_remove(struct release *r, struct entry *e)
{
    size_t i = e->hpos;
    if (i == NOHEAP)
        return;
    e->hpos = NOHEAP;
    struct entry *last = r->heap[--r->hn];
    if (i == r->hn)
        return;
    heap_set(r, i, last);
    heap_up(r, i);
    heap_down(r, last->hpos);
}

static int heap_push(struct release *r, struct entry *e)
{
    if (r->hn == r->hcap) {
        size_t cap = r->hcap ? r->hcap * 2 : 64;
        struct entry **p = realloc(r->heap, cap * sizeof *p);
        if (!p)
            return -1;
        r->heap = p;
        r->hcap = cap;
    }
    heap_set(r, r->hn++, e);
    heap_up(r, e->hpos);
    return 0;
}

/* Derive e's state now and queue it by its next evaluation time. An entry
 * only a window change can move (WHEN_NEVER) waits outside the heap. */
static void evaluate(struct release *r, struct entry *e, time_t now)
{
    e->gen = r->gen;
    if (e->busy)
        return;
    lifecycle_eval_ext(&r->u->pcfg, r->u->ix, contacts_lifecycle(r->u), &e->m, now, &e->lc);
    heap_remove(r, e);
    if (e->lc.next != WHEN_NEVER && heap_push(r, e) < 0)
        log_error("release: out of memory queueing %s (a window change or restart retries)", e->m.id);
}

/* ---------- entries ---------- */

/* take: move *m into the entry (m is left empty) instead of copying it. */
static struct entry *entry_add(struct release *r, struct spool_meta *m, int take)
{
    if (tab_get(r, m->id)) {
        errno = EEXIST;
        return NULL;
    }
    if ((r->n + r->notes.n + 1) * 2 > r->tabcap && tab_grow(r) < 0)
        return NULL;
    int hidden = m->kind == SPOOL_KIND_NOTICE;
    struct entry ***v = hidden ? &r->notes.e : &r->e;
    size_t *n = hidden ? &r->notes.n : &r->n, *capp = hidden ? &r->notes.cap : &r->cap;
    if (*n == *capp) {
        size_t cap = *capp ? *capp * 2 : 64;
        struct entry **p = realloc(*v, cap * sizeof *p);
        if (!p)
            return NULL;
        *v = p;
        *capp = cap;
    }
    struct entry *e = calloc(1, sizeof *e);
    if (!e || (!take && spool_meta_copy(&e->m, m) < 0)) {
        free(e);
        return NULL;
    }
    if (take) {
        e->m = *m;
        memset(m, 0, sizeof *m);
    }
    e->hpos = NOHEAP;
    e->hidden = hidden;
    e->slot = *n;
    (*v)[(*n)++] = e;
    tab_put_nogrow(r, e);
    return e;
}

static void entry_drop(struct release *r, struct entry *e)
{
    heap_remove(r, e);
    tab_del(r, e);
    size_t slot = e->slot;
    struct entry **v = e->hidden ? r->notes.e : r->e;
    struct entry *last = v[e->hidden ? --r->notes.n : --r->n];
    v[slot] = last;
    last->slot = slot;
    /* A chunked re-evaluation walks slots upwards: an entry moved below
     * the walk's position would be missed. */
    if (!e->hidden && r->scan_timer && slot < r->scan && last != e && last->gen != r->gen)
        evaluate(r, last, untild_now(r->u));
    spool_meta_free(&e->m);
    free(e->later_by);
    free(e->later_why);
    free(e);
}

struct release *release_new(struct untild *u)
{
    struct spool_meta *list = NULL;
    size_t n = 0;
    if (spool_list(u->spool, &list, &n) < 0) {
        log_error("release: cannot list the spool: %s", strerror(errno));
        return NULL;
    }
    return release_new_from(u, list, n);
}

struct release *release_new_from(struct untild *u, struct spool_meta *list, size_t n)
{
    struct release *r = calloc(1, sizeof *r);
    if (!r) {
        for (size_t i = 0; i < n; i++)
            spool_meta_free(&list[i]);
        free(list);
        return NULL;
    }
    r->u = u;
    time_t now = untild_now(u);
    for (size_t i = 0; i < n; i++) {
        struct entry *e = entry_add(r, &list[i], 1);
        if (!e)
            log_error("release: cannot track %s", list[i].id);
        else
            evaluate(r, e, now);
        spool_meta_free(&list[i]);
    }
    free(list);
    if (n)
        log_info("release: %zu held message(s) in the spool", n);
    arm(r);
    return r;
}

void release_free(struct release *r)
{
    if (!r)
        return;
    r->stopping = 1;
    if (r->writer) {           /* writes in flight finish; their results run */
        workq_free(r->writer);
        r->writer = NULL;
        loop_run_pending(r->u->loop);
    }
    loop_timer_del(r->u->loop, r->timer);
    loop_timer_del(r->u->loop, r->soon);
    loop_timer_del(r->u->loop, r->scan_timer);
    for (size_t i = 0; i < r->n; i++) {
        spool_meta_free(&r->e[i]->m);
        free(r->e[i]->later_by);
        free(r->e[i]->later_why);
        free(r->e[i]);
    }
    for (size_t i = 0; i < r->notes.n; i++) {
        spool_meta_free(&r->notes.e[i]->m);
        free(r->notes.e[i]->later_by);
        free(r->notes.e[i]->later_why);
        free(r->notes.e[i]);
    }
    free(r->e);
    free(r->notes.e);
    free(r->tab);
    free(r->heap);
    free(r);
}

int release_track(struct release *r, const struct spool_meta *m)
{
    struct entry *e = entry_add(r, (struct spool_meta *)m, 0);
    if (!e)
        return -1;
    evaluate(r, e, untild_now(r->u));
    if (e->lc.next <= untild_now(r->u))
        run_due(r);
    else
        arm(r);
    return 0;
}

size_t release_count(const struct release *r) { return r->n; }

static void view(const struct release *r, const struct entry *e, struct release_view *v)
{
    struct lifecycle lc;
    memset(v, 0, sizeof *v);
    v->m = &e->m;
    if (e->busy) {
        v->state = HS_DELIVERING;
        v->release_at = e->lc.due;
        return;
    }
    lifecycle_eval_ext(&r->u->pcfg, r->u->ix, contacts_lifecycle(r->u), &e->m, untild_now(r->u), &lc);
    v->state = lc.state;
    v->release_at = lc.due;
    v->next_attempt = lc.state == HS_DEFERRED || lc.state == HS_RETURNED ? e->m.next_attempt : 0;
}

const struct spool_meta *release_get(const struct release *r, size_t i, time_t *release_at)
{
    struct release_view v;
    if (i >= r->n)
        return NULL;
    view(r, r->e[i], &v);
    if (release_at)
        *release_at = v.release_at;
    return v.m;
}

const struct spool_meta *release_find(const struct release *r, const char *id, time_t *release_at)
{
    struct release_view v;
    const struct entry *e = tab_get(r, id);
    if (!e || e->hidden)
        return NULL;
    view(r, e, &v);
    if (release_at)
        *release_at = v.release_at;
    return v.m;
}

const struct spool_meta *release_meta(const struct release *r, size_t i)
{
    return i < r->n ? &r->e[i]->m : NULL;
}

int release_view(const struct release *r, const char *id, struct release_view *v)
{
    const struct entry *e = tab_get(r, id);
    if (!e || e->hidden)
        return -1;
    view(r, e, v);
    return 0;
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
        if (r->e[i]->busy || !m->ical_uid || strcmp(m->ical_uid, uid))
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

/* ---------- audit and notices ---------- */

static void audit(struct release *r, const char *event, const struct entry *e, const char *by,
                  const char *detail)
{
    struct untild *u = r->u;
    for (size_t i = 0; i < e->m.nrcpts; i++)
        store_audit(u->store, &(struct audit_rec){ untild_now(u), event, e->m.rep, e->m.rcpts[i].norm,
                    e->m.rcpts[i].window_id, e->m.id, detail ? detail : by });
}

static void held_notice_text(struct strbuf *b, const struct entry *e, const char *text)
{
    /* One recipient a line: a message to many must not make a line longer
     * than RFC 5322 allows (the upstream would refuse the notice). */
    sb_printf(b, "%s\n\nMessage: %s\nHeld ID: %s\nRecipients:\n", text,
              e->m.subject ? e->m.subject : "(no subject)", e->m.id);
    for (size_t i = 0; i < e->m.nrcpts; i++)
        sb_printf(b, "  %s\n", e->m.rcpts[i].norm);
}

/* attach: the message itself goes along (message/rfc822). */
static void notify(struct release *r, const struct entry *e, enum notice_kind kind,
                   const char *text, int attach)
{
    struct strbuf b = { 0 };
    char *body = NULL;
    size_t len = 0;
    held_notice_text(&b, e, text);
    if (attach && spool_read(r->u->spool, e->m.id, NULL, &body, &len) < 0)
        body = NULL;
    notice_send(r->u, kind, e->m.rep, b.p ? b.p : text, body, body ? len : 0);
    free(body);
    sb_free(&b);
}

/* ---------- durable notices ---------- */

struct spooling {
    struct release *r;
    struct spool_meta m;
    char *msg;
    size_t len;
};

static void spooled_done(void *arg, int err)
{
    struct spooling *s = arg;
    if (err)
        log_error("release: cannot spool a notice to %s: %s", s->m.rcpts[0].addr, strerror(err));
    else if (release_track(s->r, &s->m) < 0)
        log_error("release: cannot track notice %s (on disk; a restart sends it)", s->m.id);
    spool_meta_free(&s->m);
    free(s->msg);
    free(s);
}

int release_notice(struct release *r, const char *rep, const char *to, const char *subject,
                   char *msg, size_t len)
{
    struct spooling *s = r->u->holder ? calloc(1, sizeof *s) : NULL;  /* none while stopping */
    if (!s) {
        free(msg);
        return -1;
    }
    s->r = r;
    s->msg = msg;
    s->len = len;
    s->m.kind = SPOOL_KIND_NOTICE;
    s->m.created = untild_now(r->u);
    s->m.rep = rep ? strdup(rep) : NULL;
    s->m.mail_from = strdup("");
    s->m.subject = strdup(subject);
    s->m.rcpts = calloc(1, sizeof *s->m.rcpts);
    if (s->m.rcpts) {
        s->m.nrcpts = 1;
        s->m.rcpts[0].addr = strdup(to);
        s->m.rcpts[0].norm = strdup(to);
    }
    if (!s->m.mail_from || !s->m.subject || !s->m.rcpts || !s->m.rcpts[0].addr || !s->m.rcpts[0].norm
        || holder_submit(r->u->holder, &s->m, s->msg, s->len, spooled_done, s) < 0) {
        spool_meta_free(&s->m);
        free(s->msg);
        free(s);
        return -1;
    }
    return 0;
}

/* ---------- returned mail ---------- */

/* The notice that gives a returned message back to the rep, with the
 * message attached. NULL (logged) if it cannot be built now. */
/* ---------- writing an entry's state ---------- */

/* A held message's new state is a new file: its body copied, then fsync
 * (spool_update), a cost that grows with the message. After a delivery
 * attempt that is done on a writer thread, never on the loop: the entry
 * stays busy (to users: still being delivered) until it is written, then
 * `then` runs on the loop. Memory keeps the new state even if the disk
 * refuses it: the file then says "due", which after a restart only means
 * an earlier try. */
struct swrite {
    struct release *r;
    struct entry *e;
    struct spool_meta m;      /* the copy the writer writes */
    int rc, err;
    const char *what;
    void (*then)(struct release *, struct entry *);
};

/* The writer thread, started on first use (none while stopping). */
static struct workq *writer(struct release *r)
{
    if (!r->writer && !r->stopping)
        r->writer = workq_new(r->u->loop, 1, "spool writer");
    return r->writer;
}

static void swrite_work(void *arg)
{
    struct swrite *w = arg;
    w->rc = spool_update_io(w->r->u->spool, &w->m);
    w->err = errno;
}

static void swrite_done(void *arg)
{
    struct swrite *w = arg;
    if (w->rc < 0)
        log_error("release: cannot record %s for %s: %s", w->what, w->e->m.id, strerror(w->err));
    struct release *r = w->r;
    struct entry *e = w->e;
    e->busy = e->writing = 0;
    w->then(r, e);
    spool_meta_free(&w->m);
    free(w);
    if (e->later != LATER_NONE) {
        char *by = e->later_by, *why = e->later_why, id[SPOOL_ID_MAX];
        int op = e->later;
        e->later = LATER_NONE;
        e->later_by = e->later_why = NULL;
        snprintf(id, sizeof id, "%s", e->m.id);      /* a discard frees e */
        if (op == LATER_RELEASE)
            release_now(r, id, by, why);
        else
            release_discard(r, id, by, why);
        free(by);
        free(why);
    }
}

/* Asked while e's state is being written: done when it is (one at a time;
 * a discard wins over a release). */
static int ask_later(struct entry *e, int op, const char *by, const char *why)
{
    if (e->later == LATER_DISCARD)
        return 0;
    char *b = by ? strdup(by) : NULL, *y = why ? strdup(why) : NULL;
    if ((by && !b) || (why && !y)) {
        free(b);
        free(y);
        errno = ENOMEM;
        return -1;
    }
    free(e->later_by);
    free(e->later_why);
    e->later = op;
    e->later_by = b;
    e->later_why = y;
    return 0;
}

static void write_state(struct release *r, struct entry *e, const char *what,
                        void (*then)(struct release *, struct entry *))
{
    struct swrite *w = calloc(1, sizeof *w);
    if (w && writer(r) && spool_meta_copy(&w->m, &e->m) == 0) {
        w->r = r;
        w->e = e;
        w->what = what;
        w->then = then;
        e->busy = e->writing = 1;
        heap_remove(r, e);
        if (workq_submit(r->writer, swrite_work, swrite_done, w) == 0)
            return;
        e->busy = e->writing = 0;
        spool_meta_free(&w->m);
    }
    free(w);
    if (spool_update(r->u->spool, &e->m) < 0)    /* no thread or no memory: here */
        log_error("release: cannot record %s for %s: %s", what, e->m.id, strerror(errno));
    then(r, e);
}

static void after_write_arm(struct release *r, struct entry *e)
{
    evaluate(r, e, untild_now(r->u));
    arm(r);
}

static void after_write_soon(struct release *r, struct entry *e)
{
    evaluate(r, e, untild_now(r->u));
    pass_soon(r);
}

/* The rep must get it back. Recorded first (a restart keeps returning it
 * and never delivers it to the customer again); the message stays in the
 * spool, state returned, until the notice carrying it is delivered (or put
 * into the rep's mailbox). The recipients already served are marked done
 * in the same write. */
static void mark_returned(struct release *r, struct entry *e, const char *why)
{
    e->m.returned = 1;
    e->m.next_attempt = 0;       /* the first try to return it: now */
    free(e->m.last_error);
    e->m.last_error = strdup(why);
    audit(r, "returned", e, NULL, why);
    log_warn("release: %s returned to %s: %s", e->m.id, e->m.rep ? e->m.rep : "-", why);
    write_state(r, e, "that it is returned", after_write_soon);
}

struct giveback {
    struct release *r;
    struct entry *e;
    char *to, *msg;
    size_t len;
    /* for the writer thread: what it needs, copied on the loop */
    struct strbuf text;
    char *from, id[SPOOL_ID_MAX];
    int dfd, by_mail;         /* by_mail: to the notice address, else the rep's mailbox */
    time_t now;
};

static void giveback_free(struct giveback *g)
{
    free(g->to);
    free(g->msg);
    free(g->from);
    sb_free(&g->text);
    free(g);
}

/* The writer thread: the notice carrying the returned message (reading it
 * and encoding it cost as much as it is large: never on the loop). */
static void giveback_build(void *arg)
{
    struct giveback *g = arg;
    char *body = NULL;
    size_t blen = 0;
    if (spool_read_body_at(g->dfd, g->id, &body, &blen) == 0)
        g->msg = notice_build(g->from, g->to, notice_kind_subject(NOTICE_RETURNED),
                              g->text.p ? g->text.p : "", body, blen, g->now, &g->len);
    else
        log_error("release: cannot read returned %s: %s", g->id, strerror(errno));
    free(body);
}

/* The rep has it back: only now does the message go. */
static void given_back(struct release *r, struct entry *e, const char *how)
{
    audit(r, "returned-delivered", e, NULL, how);
    log_info("release: %s is back with %s (%s); removed", e->m.id, e->m.rep ? e->m.rep : "-", how);
    if (spool_remove_lazy(r->u->spool, e->m.id) < 0)
        log_error("release: cannot remove returned %s: %s (the rep may get it twice)", e->m.id,
                  strerror(errno));
    entry_drop(r, e);
}

static void return_retry(struct release *r, struct entry *e, const char *why)
{
    e->m.attempts++;
    e->m.next_attempt = untild_now(r->u) + lifecycle_backoff(e->m.attempts);
    log_warn("release: returned %s not yet back with %s (%s); kept, next try in %lld s", e->m.id,
             e->m.rep ? e->m.rep : "-", why, (long long)lifecycle_backoff(e->m.attempts));
    write_state(r, e, "the retry state", after_write_arm);
}

static void return_done(void *arg, struct relay_result *res)
{
    struct giveback *g = arg;
    struct release *r = g->r;
    r->inflight--;
    g->e->busy = 0;
    pass_soon(r);
    if (res->ok)
        given_back(r, g->e, g->to);
    else
        return_retry(r, g->e, res->text);
    giveback_free(g);
}

/* Send a returned message back to the rep: by mail to the notice address,
 * else into the rep's mailbox (IMAP). Never expires. The notice is built
 * on the writer thread (giveback_build); e is busy meanwhile. */
static void giveback_go(void *arg);

static int start_return(struct release *r, struct entry *e)
{
    struct untild *u = r->u;
    const char *to = notice_address(u, e->m.rep);
    const char *from = u->cfg->notify_from ? u->cfg->notify_from : "untild@localhost";
    struct giveback *g = calloc(1, sizeof *g);
    if (!g || !writer(r) || !(g->to = strdup(to ? to : (e->m.rep ? e->m.rep : "rep")))
        || !(g->from = strdup(from))) {
        if (g)
            giveback_free(g);
        return_retry(r, e, "cannot build the notice");
        return -1;
    }
    g->r = r;
    g->e = e;
    g->by_mail = to != NULL;
    held_notice_text(&g->text, e, "untild could not deliver your held message; it is attached. Reason:");
    sb_printf(&g->text, "\n%s\n", e->m.last_error ? e->m.last_error : "undeliverable");
    snprintf(g->id, sizeof g->id, "%s", e->m.id);
    g->dfd = spool_held_dir(u->spool);
    g->now = untild_now(u);
    e->busy = 1;
    heap_remove(r, e);
    r->inflight++;
    if (workq_submit(r->writer, giveback_build, giveback_go, g) < 0) {
        e->busy = 0;
        r->inflight--;
        giveback_free(g);
        return_retry(r, e, "cannot build the notice");
        return -1;
    }
    return 0;
}

/* The loop, once the notice is built: hand it to the relay or put it into
 * the rep's mailbox. */
static void giveback_go(void *arg)
{
    struct giveback *g = arg;
    struct release *r = g->r;
    struct entry *e = g->e;
    struct untild *u = r->u;
    if (g->msg && g->by_mail) {
        struct relay_job job = { .mail_from = "", .rcpts = (const char *const *)&g->to, .nrcpts = 1,
                                 .data = g->msg, .len = g->len };
        if (relay_submit(u->relay, &job, return_done, g) == 0) {   /* still busy: return_done */
            log_info("release: returning %s to %s", e->m.id, g->to);
            return;
        }
    }
    e->busy = 0;
    r->inflight--;
    if (!g->msg)
        return_retry(r, e, "cannot build the notice");
    else if (g->by_mail)
        return_retry(r, e, "cannot queue for the relay");   /* no relay (stopping) or no memory */
    else if (u->notice_append && e->m.rep && u->notice_append(u->notice_append_arg, e->m.rep, g->msg, g->len) == 0)
        given_back(r, e, "the rep's mailbox");
    else
        return_retry(r, e, "no address for the rep and no mailbox to put it in");
    giveback_free(g);
}

/* ---------- delivery ---------- */

static void delivery_free(struct delivery *d)
{
    free(d->rcpts);
    free(d->params);
    free(d->idx);
    free(d);
}

static void pass_soon_cb(struct loop *l, uint64_t id, void *arg)
{
    struct release *r = arg;
    (void)l; (void)id;
    r->soon = 0;
    run_due(r);
}

/* A delivery finished: its slot is free, so start the next due ones on the
 * next loop turn rather than at the next timer. */
static void pass_soon(struct release *r)
{
    if (!r->soon)
        r->soon = loop_timer(r->u->loop, 0, pass_soon_cb, r);
}

static void record_results(struct delivery *d, const struct relay_result *res)
{
    struct spool_meta *m = &d->e->m;
    for (size_t i = 0; i < d->nrcpts; i++) {
        struct spool_rcpt *rc = &m->rcpts[d->idx[i]];
        int code = res->rcpt_codes ? res->rcpt_codes[i] : (res->ok ? 250 : res->code);
        if (!res->ok && code < 400)
            code = res->code;
        if (code >= 200 && code < 300)
            rc->state = RCPT_DONE;
        else if (code >= 500)
            rc->state = RCPT_FAILED;
    }
}

static void delivered_all(struct release *r, struct entry *e, size_t failed, const struct relay_result *res)
{
    struct untild *u = r->u;
    if (e->m.kind == SPOOL_KIND_NOTICE) {
        if (failed)
            log_error("release: notice %s to %s refused for good: %d %s", e->m.id, e->m.rcpts[0].addr,
                      res->code, res->text);
        else
            log_info("release: notice %s delivered to %s", e->m.id, e->m.rcpts[0].addr);
    } else if (failed) {
        char why[700];
        snprintf(why, sizeof why, "the upstream refused some recipients: %d %s", res->code, res->text);
        mark_returned(r, e, why);
        return;
    } else {
        audit(r, "released", e, e->m.released_by, e->m.released_reason);
        notify(r, e, NOTICE_RELEASED, e->m.released_reason ? e->m.released_reason
                                    : "The customer's window opened; your message was sent.", 0);
        log_info("release: %s delivered", e->m.id);
    }
    /* One directory sync per loop turn for every removal (run_due). */
    if (spool_remove_lazy(u->spool, e->m.id) < 0)
        log_error("release: cannot remove delivered %s: %s (it may be sent again)", e->m.id,
                  strerror(errno));
    entry_drop(r, e);
}

static void delivered(void *arg, struct relay_result *res)
{
    struct delivery *d = arg;
    struct release *r = d->r;
    struct entry *e = d->e;
    struct untild *u = r->u;
    time_t now = untild_now(u);
    size_t failed = 0, left = 0;

    r->inflight--;
    e->busy = 0;
    pass_soon(r);
    record_results(d, res);
    contacts_delivery_ended(u, &e->m);     /* cadence: only who was reached counts */
    for (size_t i = 0; i < e->m.nrcpts; i++) {
        failed += e->m.rcpts[i].state == RCPT_FAILED;
        left += e->m.rcpts[i].state == RCPT_HELD;
    }
    if (!left && !failed) {
        delivered_all(r, e, failed, res);
        delivery_free(d);
        return;
    }
    /* Back to held/ first, whatever happens next: a file left in active/
     * could be neither retried nor released until a restart. */
    if (spool_deactivate(u->spool, e->m.id) < 0)
        log_error("release: cannot move %s back to held/: %s", e->m.id, strerror(errno));
    if (!left) {
        delivered_all(r, e, failed, res);
        delivery_free(d);
        return;
    }
    char err[600];
    snprintf(err, sizeof err, "%d %s", res->code, res->text);
    e->m.attempts++;
    if (!e->m.first_attempt)
        e->m.first_attempt = d->started;
    free(e->m.last_error);
    e->m.last_error = strdup(err);
    e->m.next_attempt = now + lifecycle_backoff(e->m.attempts);
    int expired = now - e->m.first_attempt > u->cfg->max_queue_lifetime;
    if (expired && e->m.kind == SPOOL_KIND_NOTICE) {
        log_error("release: notice %s to %s given up after %d attempts: %s", e->m.id,
                  e->m.rcpts[0].addr, e->m.attempts, err);
        if (spool_remove(u->spool, e->m.id) < 0 && errno != ENOENT)
            log_error("release: cannot remove notice %s: %s", e->m.id, strerror(errno));
        entry_drop(r, e);
    } else if (expired) {
        char why[700];
        snprintf(why, sizeof why, "still undeliverable after %d attempts; last answer: %s", e->m.attempts, err);
        mark_returned(r, e, why);
    } else {
        log_info("release: %s deferred (attempt %d): %s", e->m.id, e->m.attempts, err);
        write_state(r, e, "the retry state", after_write_arm);
    }
    delivery_free(d);
}

/* A held recipient a reject window covers now is not sent to: the
 * customer refuses any contact (recorded, and in the rep's notice). */
static void refuse_rejected(struct release *r, struct entry *e)
{
    struct untild *u = r->u;
    int changed = 0;
    if (e->m.kind == SPOOL_KIND_NOTICE)
        return;
    for (size_t i = 0; i < e->m.nrcpts; i++) {
        struct verdict v;
        struct spool_rcpt *rc = &e->m.rcpts[i];
        if (rc->state != RCPT_HELD
            || policy_rcpt(&u->pcfg, u->ix, rc->norm, untild_now(u), &v) != ACTION_REJECT)
            continue;
        rc->state = RCPT_FAILED;
        changed = 1;
        store_audit(u->store, &(struct audit_rec){ untild_now(u), "rejected", e->m.rep, rc->norm,
                    v.w ? v.w->id : NULL, e->m.id, "reject window at release" });
        log_info("release: %s: %s has a reject window now; not sent to", e->m.id, rc->norm);
    }
    if (changed && spool_update(u->spool, &e->m) < 0)
        log_error("release: cannot record refused recipients of %s: %s", e->m.id, strerror(errno));
}

/* The relay's thread: read the message it is about to send (the loop
 * never waits for a cold page cache). d is the loop's until delivered
 * runs; dfd and id do not change meanwhile. */
static int load_body(void *arg, char **data, size_t *len)
{
    struct delivery *d = arg;
    if (spool_read_body_at(d->dfd, d->id, data, len) == 0)
        return 0;
    log_error("release: cannot read %s: %s", d->id, strerror(errno));
    return -1;
}

static int start_delivery(struct release *r, struct entry *e)
{
    struct untild *u = r->u;
    struct delivery *d = calloc(1, sizeof *d);
    if (!d)
        return -1;
    d->r = r;
    d->e = e;
    d->started = untild_now(u);
    if (spool_activate(u->spool, e->m.id) < 0) {
        log_error("release: cannot activate %s: %s", e->m.id, strerror(errno));
        goto fail;
    }
    d->dfd = spool_held_dir(u->spool);
    snprintf(d->id, sizeof d->id, "%s", e->m.id);
    d->rcpts = calloc(e->m.nrcpts, sizeof *d->rcpts);
    d->params = calloc(e->m.nrcpts, sizeof *d->params);
    d->idx = calloc(e->m.nrcpts, sizeof *d->idx);
    if (!d->rcpts || !d->params || !d->idx) {
        if (spool_deactivate(u->spool, e->m.id) < 0)
            log_error("release: cannot move %s back to held/: %s", e->m.id, strerror(errno));
        goto fail;
    }
    for (size_t i = 0; i < e->m.nrcpts; i++)
        if (e->m.rcpts[i].state == RCPT_HELD) {
            d->idx[d->nrcpts] = i;
            d->params[d->nrcpts] = e->m.rcpts[i].params;
            d->rcpts[d->nrcpts++] = e->m.rcpts[i].addr;
        }
    struct relay_job job = { .mail_from = e->m.mail_from ? e->m.mail_from : "", .rcpts = d->rcpts,
                             .nrcpts = d->nrcpts, .load = load_body, .load_arg = d,
                             .mail_params = e->m.mail_params, .rcpt_params = d->params };
    contacts_delivery_started(u, &e->m, d->started);   /* cadence: a second due message waits */
    e->busy = 1;
    heap_remove(r, e);
    r->inflight++;
    if (relay_submit(u->relay, &job, delivered, d) < 0) {
        e->busy = 0;
        r->inflight--;
        contacts_delivery_ended(u, &e->m);
        if (spool_deactivate(u->spool, e->m.id) < 0)
            log_error("release: cannot move %s back to held/: %s", e->m.id, strerror(errno));
        goto fail;
    }
    log_info("release: %s %s to %zu recipient(s)%s%s", e->m.kind == SPOOL_KIND_NOTICE ? "sending notice"
             : "releasing", e->m.id, d->nrcpts, e->m.released_reason ? ": " : "",
             e->m.released_reason ? e->m.released_reason : "");
    return 0;
fail:
    delivery_free(d);
    /* Try again later, like a deferral (not persisted: nothing was sent). */
    e->m.next_attempt = untild_now(u) + lifecycle_backoff(1);
    if (!e->m.attempts)
        e->m.attempts = 1;
    evaluate(r, e, untild_now(u));
    return -1;
}

/* A held invitation with no occurrence left after now is not sent: the
 * rep gets it back with a request to reschedule. ical_last: start of the
 * last occurrence (IMIP_OPEN_ENDED: never stale; 0: not recorded, use
 * DTSTART). */
static int stale(struct release *r, struct entry *e, time_t now)
{
    time_t last = e->m.ical_last ? e->m.ical_last : e->m.ical_dtstart;
    if (e->m.kind == SPOOL_KIND_NOTICE || e->m.ical_method != IMIP_REQUEST || last <= 0 || last > now)
        return 0;
    int series = e->m.ical_last > 0 && e->m.ical_last != e->m.ical_dtstart;
    audit(r, "stale-invitation", e, NULL, series ? "every occurrence started before the window opened"
                                                 : "event started before the window opened");
    notify(r, e, NOTICE_STALE, series ? "Every occurrence of the meeting starts before the customer's window opens, so the "
                    "invitation was not sent. Please reschedule it."
                  : "The meeting starts before the customer's window opens, so the invitation was not sent. "
                    "Please reschedule it.", 1);
    if (spool_remove(r->u->spool, e->m.id) < 0 && errno != ENOENT)
        log_error("release: cannot remove stale %s: %s", e->m.id, strerror(errno));
    entry_drop(r, e);
    return 1;
}

static size_t held_left(const struct entry *e)
{
    size_t n = 0;
    for (size_t i = 0; i < e->m.nrcpts; i++)
        n += e->m.rcpts[i].state == RCPT_HELD;
    return n;
}

/* Start what is due, up to the in-flight cap; re-queue what is not. */
static void run_due(struct release *r)
{
    time_t now = untild_now(r->u);
    int started = 0;
    if (spool_sync_removals(r->u->spool) < 0)
        log_error("release: cannot sync the spool after removals: %s (delivered mail may be sent "
                  "again after a crash)", strerror(errno));
    while (r->hn && r->heap[0]->lc.next <= now && r->inflight < MAX_INFLIGHT) {
        if (started++ == STARTS_PER_TURN) {
            pass_soon(r);              /* the rest on the next loop turn */
            break;
        }
        struct entry *e = r->heap[0];
        evaluate(r, e, now);              /* derive again: windows may have moved */
        if (e->lc.next > now)
            continue;
        if (e->m.returned) {
            start_return(r, e);
            continue;
        }
        if (stale(r, e, now))
            continue;
        refuse_rejected(r, e);
        if (!held_left(e)) {
            mark_returned(r, e, "every recipient left has a reject window now");
            continue;
        }
        if (start_delivery(r, e) < 0)
            continue;
    }
    arm(r);
}

static void on_timer(struct loop *l, uint64_t id, void *arg)
{
    struct release *r = arg;
    (void)l; (void)id;
    r->timer = 0;
    run_due(r);
}

/* One timer for the heap's top (at most MAX_SLEEP_S away, so a wall-clock
 * step is noticed); nothing runs while nothing is due. */
static void arm(struct release *r)
{
    time_t now = untild_now(r->u);
    time_t at = r->hn ? r->heap[0]->lc.next : now + MAX_SLEEP_S;
    if (at > now + MAX_SLEEP_S)
        at = now + MAX_SLEEP_S;
    if (r->inflight >= MAX_INFLIGHT && at <= now)
        return;                            /* a finished delivery calls pass_soon */
    if (r->timer && r->timer_at <= at)
        return;
    loop_timer_del(r->u->loop, r->timer);
    r->timer_at = at;
    r->timer = loop_timer(r->u->loop, at > now ? (int64_t)(at - now) * 1000 : 0, on_timer, r);
}

/* ---------- acting on one message ---------- */

int release_now(struct release *r, const char *id, const char *by, const char *reason)
{
    struct entry *e = tab_get(r, id);
    if (!e)
        return -1;
    if (e->writing)
        return ask_later(e, LATER_RELEASE, by, reason);
    if (e->busy)
        return 0;
    /* Persisted first: a restart after a failed attempt must still know it
     * was released by hand (not wait for the window again). */
    struct spool_meta m;
    if (spool_meta_copy(&m, &e->m) < 0)
        return -1;
    m.released_at = untild_now(r->u);
    m.next_attempt = 0;
    free(m.released_by);
    free(m.released_reason);
    m.released_by = by ? strdup(by) : NULL;
    m.released_reason = reason ? strdup(reason) : NULL;
    if (spool_update(r->u->spool, &m) < 0) {
        int err = errno;
        log_error("release: cannot record the release of %s: %s", id, strerror(err));
        spool_meta_free(&m);
        errno = err;
        return -1;
    }
    spool_meta_free(&e->m);
    e->m = m;
    evaluate(r, e, untild_now(r->u));
    run_due(r);
    return 0;
}

int release_discard(struct release *r, const char *id, const char *by, const char *event)
{
    struct entry *e = tab_get(r, id);
    if (!e)
        return -1;
    if (e->writing)
        return ask_later(e, LATER_DISCARD, by, event);
    if (e->busy) {
        /* The relay has it: it may already be at the customer's server.
         * Say so rather than pretend (the audit tells the truth too). */
        audit(r, "discard-too-late", e, by, "delivery already in progress");
        errno = EBUSY;
        return -2;
    }
    if (spool_remove(r->u->spool, id) < 0 && errno != ENOENT) {
        log_error("release: cannot remove %s: %s", id, strerror(errno));
        return -1;
    }
    audit(r, event ? event : "discarded", e, by, NULL);
    log_info("release: %s %s (by %s)", event ? event : "discarded", id, by ? by : "-");
    entry_drop(r, e);
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
    struct entry *e = tab_get(r, id);
    if (!e || e->busy)
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
    evaluate(r, e, untild_now(r->u));
    arm(r);
    return (int)dropped;
}

/* ---------- window changes and clock moves ---------- */

static void scan_chunk(struct loop *l, uint64_t id, void *arg)
{
    struct release *r = arg;
    (void)l; (void)id;
    r->scan_timer = 0;
    time_t now = untild_now(r->u);
    int64_t start = loop_now_ms();
    /* As many as fit in the turn's budget (the clock is read every 64: an
     * evaluation costs microseconds, the clock read about as much). */
    for (size_t k = 0; r->scan < r->n; r->scan++, k++) {
        if ((k & 63) == 63 && loop_now_ms() - start >= EVAL_BUDGET_MS)
            break;
        if (r->e[r->scan]->gen != r->gen)
            evaluate(r, r->e[r->scan], now);
    }
    if (r->scan < r->n)
        r->scan_timer = loop_timer(r->u->loop, 0, scan_chunk, r);
    run_due(r);
}

void release_kick(struct release *r, int windows_changed)
{
    if (windows_changed) {
        /* Every derived due time may have moved: evaluate all again, a
         * chunk per loop turn so a big queue does not stall the loop. */
        r->gen++;
        r->scan = 0;
        if (!r->scan_timer)   /* on the next turn: the caller answers first */
            r->scan_timer = loop_timer(r->u->loop, 0, scan_chunk, r);
        return;
    }
    /* The clock moved (test clock): the timer may now be too late. */
    loop_timer_del(r->u->loop, r->timer);
    r->timer = 0;
    run_due(r);
}
