/* windows.c - do-not-contact windows: the window-file line parser, the
 * "is this window quiet at T" test (libical for RRULE and zones), and the
 * in-memory index that answers "is this recipient quiet at T?".
 *
 * Synopsis: window_parse_line() turns one window-file line into a struct
 * window (strings malloc'd); windows_add() deep-copies it into the index;
 * windows_match() looks up the exact address, then "@domain" and every
 * parent domain, and the most specific level with an active window wins.
 *
 * Why this shape: a team install may carry a million windows, so the index
 * keeps windows in fixed pages (stable pointers), their strings in an arena
 * (no per-string malloc), zone/owner/file names interned, and two open-
 * addressing hash tables of 32-bit indices (id -> window, who -> chain of
 * windows). Removed strings are garbage in the arena until it is compacted
 * (when garbage outweighs live data), which is why callers copy what they
 * keep beyond the next mutation.
 *
 * Recurring windows: a rule is checked when its line is parsed (refused
 * with the reason: see window_rrule_check and "rules" below), and evaluated
 * with libical on the loop thread (libical's zone lookup is not
 * thread-safe) by walks of at most [windows] rrule_max_iterations periods,
 * starting just before the occurrence that could cover the time asked
 * about. A window in the index keeps its last answer, with how long it
 * holds, in front of its rrule string in the arena (struct recur_cache), so
 * asking again before the next transition is a comparison. The checks need
 * no zone lookup by name, so the window loader thread may parse lines.
 *
 * Diagnostics: parse errors are returned as text naming the token and why. */
#include "untild/windows.h"
#include "untild/strbuf.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libical/ical.h>

#include "untild/address.h"
#include "untild/fnv.h"
#include "untild/log.h"
#include "untild/when.h"

/* ---------------------------------------------------------------- actions */

static const char *const ACTION_NAMES[] = {
    [ACTION_ALLOW] = "allow", [ACTION_HOLD] = "hold", [ACTION_FLAG] = "flag",
    [ACTION_REJECT] = "reject", [ACTION_DEFAULT] = "default",
};

const char *action_name(enum action a)
{
    if ((unsigned)a < sizeof ACTION_NAMES / sizeof ACTION_NAMES[0])
        return ACTION_NAMES[a];
    return "unknown";
}

int action_parse(const char *s, enum action *out)
{
    if (!s)
        return -1;
    for (size_t i = 0; i < sizeof ACTION_NAMES / sizeof ACTION_NAMES[0]; i++) {
        if (strcasecmp(s, ACTION_NAMES[i]) == 0) {
            *out = (enum action)i;
            return 0;
        }
    }
    return -1;
}

/* ---------------------------------------------------------------- hashing */

/* Hash for the tables: FNV-1a finished with a mixer (FNV's low bits are
 * weak for keys that differ only at the end, like "user1@", "user2@"). */
static uint32_t key_hash(const char *s)
{
    uint64_t h = FNV_OFFSET;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= FNV_PRIME;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (uint32_t)h;
}

/* ---------------------------------------------------------------- activity */

/* Following touching occurrences to the end of a quiet run stops after
 * this many (the run then ends there; the next evaluation continues it). */
#define RECUR_RUN_MAX 400
/* A window whose state the iteration cap kept us from deciding is quiet
 * for this long, then evaluated again. */
#define UNDECIDED_QUIET 3600

/* Kept in the index's arena just before a recurring window's rrule string
 * (WF_RCACHE): the last answer and how long it holds. */
#define WF_RCACHE 1u   /* struct window.flags: a recur_cache precedes rrule */
static_assert(sizeof(struct window) <= 120, "a million windows: keep it small");

struct recur_cache {
    time_t lo, hi;   /* the answer holds for lo <= t < hi */
    time_t qu;       /* quiet until, when active */
    int active;
    int warned;      /* the cap was logged for this window */
    int checked;     /* 1: rule accepted; -1: refused (logged) */
};

struct recur_answer {
    int active;
    time_t qu;       /* when active */
    time_t hi;       /* the answer holds from t until hi */
};

static struct recur_cache *rcache_of(const struct window *w)
{
    if (!(w->flags & WF_RCACHE) || !w->rrule)
        return NULL;
    return (struct recur_cache *)(void *)(w->rrule -
                                          sizeof(struct recur_cache));
}

/* End of the occurrence starting at local time s: the duration is added on
 * the wall clock, so "20:00 for 12h" ends at 08:00 local also on the night
 * the clocks change, as a person reading the window expects. */
static time_t occurrence_end(struct icaltimetype s, int64_t duration,
                             icaltimezone *zone)
{
    icaltime_adjust(&s, (int)(duration / 86400), 0, 0, (int)(duration % 86400));
    return icaltime_as_timet_with_zone(s, zone);
}

/* Length of one FREQ period in seconds, for moving DTSTART forward by whole
 * periods; 0 for MONTHLY/YEARLY (moved by icalrecur_iterator_set_start,
 * which keeps INTERVAL's alignment with the real start). */
static int64_t period_seconds(const struct icalrecurrencetype *r)
{
    int64_t iv = r->interval > 0 ? r->interval : 1;
    switch (r->freq) {
    case ICAL_SECONDLY_RECURRENCE: return iv;
    case ICAL_MINUTELY_RECURRENCE: return 60 * iv;
    case ICAL_HOURLY_RECURRENCE: return 3600 * iv;
    case ICAL_DAILY_RECURRENCE: return 86400 * iv;
    case ICAL_WEEKLY_RECURRENCE: return 7 * 86400 * iv;
    default: return 0;
    }
}

/* Occurrences that touch or overlap make one quiet run (a weekend of SA
 * and SU, a daily 24 h window): the end of the run that `end` is in. */
static time_t run_end(icalrecur_iterator *it, time_t end, time_t until,
                      int64_t dur, icaltimezone *zone)
{
    for (int i = 0; i < RECUR_RUN_MAX && end < until; i++) {
        struct icaltimetype n = icalrecur_iterator_next(it);
        if (icaltime_is_null_time(n))
            break;
        if (icaltime_as_timet_with_zone(n, zone) > end)
            break;
        time_t e = occurrence_end(n, dur, zone);
        if (e > end)
            end = e;
    }
    return end;
}

/* The iterator for evaluating at t: DTSTART moved forward to just before
 * the occurrence that could contain t (not with COUNT, which counts from
 * the real start), and an UNTIL of our own one search span past t, so no
 * libical walk is unbounded. NULL: no occurrence can matter (*hi set). */
static icalrecur_iterator *eval_iterator(const struct window *w, time_t t,
                                         const struct window_limits *lim,
                                         icaltimezone *zone, int64_t dur,
                                         time_t *hi)
{
    struct icalrecurrencetype r = icalrecurrencetype_from_string(w->rrule);
    if (r.freq == ICAL_NO_RECURRENCE)
        return NULL;
    struct icaltimetype dt;
    time_t start;
    if (w->from) {
        dt = icaltime_from_timet_with_zone(w->from, 0, zone);
        start = w->from;
    } else {
        /* No from: a fixed Monday midnight in the window's zone, so weekly
         * rules line up with calendar weeks. */
        dt = icaltime_from_string("20000103T000000");
        dt = icaltime_set_timezone(&dt, zone);
        start = icaltime_as_timet_with_zone(dt, zone);
    }
    if (t < start) {
        *hi = start;
        return NULL;
    }
    time_t lo = t - (time_t)dur - 7200;   /* 2 h slack for DST */
    int64_t per = period_seconds(&r);
    int forward = r.count == 0 && lo > start;
    if (forward && per > 0) {
        int64_t k = (int64_t)(lo - start - per) / per;
        if (k > 0) {
            int64_t shift = k * per;
            icaltime_adjust(&dt, (int)(shift / 86400), 0, 0,
                            (int)(shift % 86400));
        }
    }
    time_t cut = t + (time_t)rrule_search_span(&r, lim);
    time_t ru = icaltime_is_null_time(r.until)
                    ? WHEN_NEVER
                    : icaltime_as_timet_with_zone(
                          r.until, icaltime_is_utc(r.until) ? NULL : zone);
    if (ru > cut) {
        r.until = icaltime_from_timet_with_zone(cut, 0, zone);
        *hi = cut;
    } else {
        *hi = WHEN_NEVER;   /* the series ends by itself */
    }
    icalrecur_iterator *it = icalrecur_iterator_new(r, dt);
    if (it && forward && per == 0)
        (void)icalrecur_iterator_set_start(
            it, icaltime_from_timet_with_zone(lo, 0, zone));
    return it;
}

/* Is w quiet at t, and until when does that answer hold? Returns 0 when
 * decided, 1 when the iteration cap bit (then: quiet for a while). */
static int recurring_eval(const struct window *w, time_t t,
                          const struct window_limits *lim,
                          struct recur_answer *a)
{
    icaltimezone *zone = NULL;
    if (w->tz && *w->tz)
        zone = icaltimezone_get_builtin_timezone(w->tz);
    if (!zone)
        zone = icaltimezone_get_utc_timezone();
    int64_t dur = w->duration > 0 ? w->duration : 86400;
    a->active = 0;
    a->qu = 0;
    a->hi = WHEN_NEVER;
    icalrecur_iterator *it = eval_iterator(w, t, lim, zone, dur, &a->hi);
    if (!it) {
        icalerror_clear_errno();
        return 0;
    }
    int found = 0, capped = 1;
    time_t end = 0;
    for (int i = 0; i <= lim->rrule_max_iterations; i++) {
        struct icaltimetype n = icalrecur_iterator_next(it);
        if (icaltime_is_null_time(n)) {
            capped = 0;
            break;
        }
        time_t s = icaltime_as_timet_with_zone(n, zone);
        if (s > t) {
            a->hi = s;
            capped = 0;
            break;
        }
        time_t e = occurrence_end(n, dur, zone);
        if (e > t) {
            found = 1;
            capped = 0;
            end = run_end(it, e, w->until, dur, zone);
            break;
        }
    }
    icalrecur_iterator_free(it);
    icalerror_clear_errno();
    if (capped)
        end = t + UNDECIDED_QUIET;
    if (found || capped) {
        a->active = 1;
        a->qu = end < w->until ? end : w->until;
        a->hi = a->qu;
    }
    return capped;
}

/* Windows that were never checked (stored before the checks existed, or
 * built by hand) are checked once; a refused rule cannot be evaluated at a
 * bounded cost, so it counts as undecided: quiet, an hour at a time. */
static int rule_usable(const struct window *w, struct recur_cache *c)
{
    if (c && c->checked)
        return c->checked > 0;
    char why[256];
    int ok = window_rrule_check(w->rrule, w->from, w->tz,
                                w->duration > 0 ? w->duration : 86400, NULL,
                                why, sizeof why) == 0;
    if (!ok && !(c && c->warned))
        log_error("window %s: rrule '%s' refused (%s): the window counts as "
                  "quiet an hour at a time until it is ended", w->id,
                  w->rrule, why);
    if (c) {
        c->checked = ok ? 1 : -1;
        c->warned |= !ok;
    }
    return ok;
}

static int recurring_active(const struct window *w, time_t t, time_t *qu)
{
    struct recur_cache *c = rcache_of(w);
    if (c && t >= c->lo && t < c->hi) {
        *qu = c->qu;
        return c->active;
    }
    struct recur_answer a;
    struct window_limits lim;
    windows_get_limits(&lim);
    if (!rule_usable(w, c)) {
        a.active = 1;
        a.qu = t + UNDECIDED_QUIET < w->until ? t + UNDECIDED_QUIET : w->until;
        a.hi = a.qu;
    } else if (recurring_eval(w, t, &lim, &a) && !(c && c->warned)) {
        char at[64];
        log_warn("window %s: rrule '%s' not decided within [windows] "
                 "rrule_max_iterations (%d): quiet until %s", w->id, w->rrule,
                 lim.rrule_max_iterations, when_format(a.qu, "UTC", at,
                                                         sizeof at));
        if (c)
            c->warned = 1;
    }
    if (c) {
        c->lo = t;
        c->hi = a.hi;
        c->active = a.active;
        c->qu = a.qu;
    }
    *qu = a.qu;
    return a.active;
}

int window_active(const struct window *w, time_t t, time_t *quiet_until)
{
    time_t qu;
    if (t >= w->until)
        return 0;
    if (!w->rrule) {
        if (w->from && t < w->from)
            return 0;
        qu = w->until;
    } else if (!recurring_active(w, t, &qu)) {
        return 0;
    }
    if (quiet_until)
        *quiet_until = qu;
    return 1;
}

/* ---------------------------------------------------------------- arena */

/* Chunks fill from both ends: strings upward from the bottom, pointer
 * arrays downward from the (aligned) top, so mixing them wastes nothing on
 * alignment. */
#define ARENA_CHUNK (1u << 20)

struct arena_chunk {
    struct arena_chunk *next;
    size_t lo, hi, cap;         /* free space is [lo, hi) */
    _Alignas(max_align_t) char data[];
};

static struct arena_chunk *arena_chunk_for(struct arena_chunk **head,
                                           size_t n)
{
    struct arena_chunk *c = *head;
    if (c && c->hi - c->lo >= n + sizeof(void *))
        return c;
    /* Big items get a chunk of their own behind the current one, so the
     * current chunk's free middle is not wasted. */
    size_t cap = n > ARENA_CHUNK / 4 ? (n + 15) & ~(size_t)7 : ARENA_CHUNK;
    struct arena_chunk *nc = malloc(sizeof *nc + cap);
    if (!nc)
        return NULL;
    nc->cap = cap;
    nc->lo = 0;
    nc->hi = cap;
    if (c && cap != ARENA_CHUNK) {
        nc->next = c->next;
        c->next = nc;
    } else {
        nc->next = c;
        *head = nc;
    }
    return nc;
}

static char *arena_str(struct arena_chunk **head, size_t *total, size_t n)
{
    struct arena_chunk *c = arena_chunk_for(head, n);
    if (!c)
        return NULL;
    char *p = c->data + c->lo;
    c->lo += n;
    *total += n;
    return p;
}

static char **arena_ptrs(struct arena_chunk **head, size_t *total, size_t n)
{
    size_t bytes = n * sizeof(char *);
    struct arena_chunk *c = arena_chunk_for(head, bytes);
    if (!c)
        return NULL;
    c->hi = (c->hi - bytes) & ~(sizeof(char *) - 1);
    *total += bytes;
    return (char **)(void *)(c->data + c->hi);
}

static void arena_free_all(struct arena_chunk *c)
{
    while (c) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
}

/* ---------------------------------------------------------------- index */

/* Windows live in pages of PAGE_SIZE_W (stable addresses); each page also
 * holds, per window, the chain link for its first who entry. */
#define PAGE_SHIFT 12
#define PAGE_SIZE_W (1u << PAGE_SHIFT)

struct page {
    struct window w[PAGE_SIZE_W];
    uint32_t next0[PAGE_SIZE_W];
};

/* id table values: window index + 1 in the low bits, 6 bits of the id's
 * hash above them, so most probes that miss need not read the window. */
#define IDX_BITS 26
#define IDX_MASK ((1u << IDX_BITS) - 1)
#define MAX_WINDOWS (IDX_MASK - 1)

/* A chain reference (who table head, next0[], link.next): 0 ends the
 * chain; REF_LINK set: links[ref & ~REF_LINK] (a who entry after the
 * first); else window ref - 1's first who entry. */
#define REF_LINK 0x80000000u
#define NONE UINT32_MAX

struct who_slot {
    uint32_t hash;
    uint32_t head;  /* chain ref; 0: empty slot */
};

struct link {
    uint32_t win;
    uint32_t next;  /* chain ref; for free links: next free, NONE at end */
};

struct windows {
    struct page **pages;
    size_t npages;
    uint32_t nslots;            /* slots handed out so far */
    uint32_t freehead;          /* removed slots to reuse, linked through
                                   their nwho field; NONE: none */
    size_t count;

    uint32_t *idtab;            /* tag | window index + 1; 0: empty */
    size_t idcap;

    struct who_slot *whotab;
    size_t whocap, whoused;
    struct link *links;
    size_t nlinks, linkcap;
    uint32_t linkfree;

    struct arena_chunk *arena;
    size_t arena_bytes;         /* bytes handed out */
    size_t garbage;             /* of which belong to removed windows */

    const char **intern;        /* tz, owner, file names (in the arena) */
    size_t interncap, internused;

    unsigned long long next_id;
};

static struct window *slot_window(const struct windows *ix, uint32_t i)
{
    return &ix->pages[i >> PAGE_SHIFT]->w[i & (PAGE_SIZE_W - 1)];
}

static uint32_t *slot_next0(const struct windows *ix, uint32_t i)
{
    return &ix->pages[i >> PAGE_SHIFT]->next0[i & (PAGE_SIZE_W - 1)];
}

/* The window a chain ref names, and where its next ref is stored. */
static uint32_t ref_win(const struct windows *ix, uint32_t ref)
{
    return ref & REF_LINK ? ix->links[ref & ~REF_LINK].win : ref - 1;
}

static uint32_t *ref_next(const struct windows *ix, uint32_t ref)
{
    return ref & REF_LINK ? &ix->links[ref & ~REF_LINK].next
                          : slot_next0(ix, ref - 1);
}

struct windows *windows_new(void)
{
    struct windows *ix = calloc(1, sizeof *ix);
    if (!ix)
        return NULL;
    ix->idcap = 64;
    ix->whocap = 64;
    ix->interncap = 16;
    ix->idtab = calloc(ix->idcap, sizeof *ix->idtab);
    ix->whotab = calloc(ix->whocap, sizeof *ix->whotab);
    ix->intern = calloc(ix->interncap, sizeof *ix->intern);
    ix->linkfree = NONE;
    ix->freehead = NONE;
    ix->next_id = 1;
    if (!ix->idtab || !ix->whotab || !ix->intern) {
        windows_free(ix);
        return NULL;
    }
    return ix;
}

void windows_free(struct windows *ix)
{
    if (!ix)
        return;
    for (size_t i = 0; i < ix->npages; i++)
        free(ix->pages[i]);
    free(ix->pages);
    free(ix->idtab);
    free(ix->whotab);
    free(ix->links);
    free(ix->intern);
    arena_free_all(ix->arena);
    free(ix);
}

size_t windows_count(const struct windows *ix)
{
    return ix ? ix->count : 0;
}

/* --- strings */

static char *arena_strdup(struct windows *ix, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = arena_str(&ix->arena, &ix->arena_bytes, n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int intern_grow(struct windows *ix)
{
    size_t cap = ix->interncap * 2;
    const char **t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    for (size_t i = 0; i < ix->interncap; i++) {
        const char *s = ix->intern[i];
        if (!s)
            continue;
        size_t j = key_hash(s) & (cap - 1);
        while (t[j])
            j = (j + 1) & (cap - 1);
        t[j] = s;
    }
    free(ix->intern);
    ix->intern = t;
    ix->interncap = cap;
    return 0;
}

/* One shared copy of names many windows repeat (zones, owners, files).
 * Interned strings are never garbage: they are few. */
static const char *intern(struct windows *ix, const char *s)
{
    if (!s)
        return NULL;
    if ((ix->internused + 1) * 2 > ix->interncap && intern_grow(ix) != 0)
        return NULL;
    size_t mask = ix->interncap - 1, j = key_hash(s) & mask;
    while (ix->intern[j]) {
        if (strcmp(ix->intern[j], s) == 0)
            return ix->intern[j];
        j = (j + 1) & mask;
    }
    char *d = arena_strdup(ix, s);
    if (!d)
        return NULL;
    ix->intern[j] = d;
    ix->internused++;
    return d;
}

/* A recurring window's rrule lives in the arena behind its answer cache. */
static size_t rrule_block_bytes(const char *rrule)
{
    size_t n = sizeof(struct recur_cache) + strlen(rrule) + 1;
    return (n + sizeof(char *) - 1) & ~(sizeof(char *) - 1);
}

static char *arena_rrule(struct windows *ix, const struct window *src)
{
    size_t n = rrule_block_bytes(src->rrule);
    char *block = (char *)arena_ptrs(&ix->arena, &ix->arena_bytes,
                                     n / sizeof(char *));
    if (!block)
        return NULL;
    struct recur_cache *c = (struct recur_cache *)(void *)block;
    const struct recur_cache *old = rcache_of(src);
    if (old)
        *c = *old;
    else
        memset(c, 0, sizeof *c);
    char *s = block + sizeof *c;
    memcpy(s, src->rrule, strlen(src->rrule) + 1);
    return s;
}

/* Bytes a window's own (not interned) strings take in the arena. */
static size_t window_bytes(const struct window *w)
{
    size_t n = w->nwho * sizeof(char *);
    for (size_t i = 0; i < w->nwho; i++)
        n += strlen(w->who[i]) + 1;
    if (w->rrule)
        n += rrule_block_bytes(w->rrule);
    if (w->reason)
        n += strlen(w->reason) + 1;
    return n;
}

/* Copy src's strings into the arena as dst's (scalars already copied). */
static int copy_strings(struct windows *ix, struct window *dst,
                        const struct window *src)
{
    dst->who = NULL;
    if (src->nwho) {
        dst->who = arena_ptrs(&ix->arena, &ix->arena_bytes, src->nwho);
        if (!dst->who)
            return -1;
        for (size_t i = 0; i < src->nwho; i++)
            if (!(dst->who[i] = arena_strdup(ix, src->who[i])))
                return -1;
    }
    dst->flags = 0;
    dst->rrule = src->rrule ? arena_rrule(ix, src) : NULL;
    if (dst->rrule)
        dst->flags |= WF_RCACHE;
    dst->reason = src->reason ? arena_strdup(ix, src->reason) : NULL;
    dst->tz = (char *)intern(ix, src->tz);
    dst->owner = (char *)intern(ix, src->owner);
    dst->file = intern(ix, src->file);
    if ((src->rrule && !dst->rrule) || (src->reason && !dst->reason) ||
        (src->tz && !dst->tz) || (src->owner && !dst->owner) ||
        (src->file && !dst->file))
        return -1;
    return 0;
}

/* --- id table (linear probing, backward-shift deletion) */

static size_t id_find_slot(const struct windows *ix, const char *id, uint32_t h)
{
    size_t mask = ix->idcap - 1, j = h & mask;
    uint32_t tag = h & ~IDX_MASK, v;
    while ((v = ix->idtab[j]) != 0) {
        if ((v & ~IDX_MASK) == tag &&
            strcmp(slot_window(ix, (v & IDX_MASK) - 1)->id, id) == 0)
            return j;
        j = (j + 1) & mask;
    }
    return j;   /* empty slot where id would go */
}

static void id_put(uint32_t *t, size_t cap, uint32_t h, uint32_t win)
{
    size_t j = h & (cap - 1);
    while (t[j])
        j = (j + 1) & (cap - 1);
    t[j] = (h & ~IDX_MASK) | (win + 1);
}

/* Rehash by walking the window pages in order (the ids are inside the
 * windows): sequential reads instead of one cache miss per entry. */
static int id_grow(struct windows *ix)
{
    size_t cap = ix->idcap * 2;
    uint32_t *t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    for (uint32_t i = 0; i < ix->nslots; i++) {
        const struct window *w = slot_window(ix, i);
        if (w->id[0])
            id_put(t, cap, key_hash(w->id), i);
    }
    free(ix->idtab);
    ix->idtab = t;
    ix->idcap = cap;
    return 0;
}

static void id_delete_slot(struct windows *ix, size_t hole)
{
    size_t mask = ix->idcap - 1, j = hole;
    ix->idtab[hole] = 0;
    for (;;) {
        j = (j + 1) & mask;
        uint32_t v = ix->idtab[j];
        if (!v)
            return;
        size_t home = key_hash(slot_window(ix, (v & IDX_MASK) - 1)->id) & mask;
        /* Move v into the hole unless its home lies cyclically in
         * (hole, j]: then the hole does not break its probe chain. */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            ix->idtab[hole] = v;
            ix->idtab[j] = 0;
            hole = j;
        }
    }
}

/* --- who table */

/* Does the chain at slot s belong to key? (Its first window names it.) */
static int who_slot_is(const struct windows *ix, const struct who_slot *s,
                       uint32_t h, const char *key)
{
    if (s->hash != h)
        return 0;
    const struct window *w = slot_window(ix, ref_win(ix, s->head));
    for (size_t i = 0; i < w->nwho; i++)
        if (strcmp(w->who[i], key) == 0)
            return 1;
    return 0;
}

static size_t who_find_slot(const struct windows *ix, const char *key,
                            uint32_t h)
{
    size_t mask = ix->whocap - 1, j = h & mask;
    while (ix->whotab[j].head) {
        if (who_slot_is(ix, &ix->whotab[j], h, key))
            return j;
        j = (j + 1) & mask;
    }
    return j;
}

static int who_grow(struct windows *ix)
{
    size_t cap = ix->whocap * 2;
    struct who_slot *t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    for (size_t i = 0; i < ix->whocap; i++) {
        if (!ix->whotab[i].head)
            continue;
        size_t j = ix->whotab[i].hash & (cap - 1);
        while (t[j].head)
            j = (j + 1) & (cap - 1);
        t[j] = ix->whotab[i];
    }
    free(ix->whotab);
    ix->whotab = t;
    ix->whocap = cap;
    return 0;
}

static void who_delete_slot(struct windows *ix, size_t hole)
{
    size_t mask = ix->whocap - 1, j = hole;
    ix->whotab[hole].head = 0;
    ix->whoused--;
    for (;;) {
        j = (j + 1) & mask;
        if (!ix->whotab[j].head)
            return;
        size_t home = ix->whotab[j].hash & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            ix->whotab[hole] = ix->whotab[j];
            ix->whotab[j].head = 0;
            hole = j;
        }
    }
}

/* The chain ref for who entry `nth` of window win: the first entry uses
 * the window's own next0 slot, later ones a link. */
static uint32_t ref_new(struct windows *ix, uint32_t win, size_t nth)
{
    if (nth == 0)
        return win + 1;
    uint32_t l;
    if (ix->linkfree != NONE) {
        l = ix->linkfree;
        ix->linkfree = ix->links[l].next;
    } else {
        if (ix->nlinks == ix->linkcap) {
            size_t cap = ix->linkcap ? ix->linkcap * 2 : 64;
            if (cap > REF_LINK)
                return 0;
            struct link *n = realloc(ix->links, cap * sizeof *n);
            if (!n)
                return 0;
            ix->links = n;
            ix->linkcap = cap;
        }
        l = (uint32_t)ix->nlinks++;
    }
    ix->links[l].win = win;
    return REF_LINK | l;
}

static void ref_free(struct windows *ix, uint32_t ref)
{
    if (ref & REF_LINK) {
        uint32_t l = ref & ~REF_LINK;
        ix->links[l].next = ix->linkfree;
        ix->linkfree = l;
    }
}

static int who_link(struct windows *ix, const char *key, uint32_t win,
                    size_t nth)
{
    if ((ix->whoused + 1) * 4 > ix->whocap * 3 && who_grow(ix) != 0)
        return -1;
    uint32_t h = key_hash(key);
    size_t j = who_find_slot(ix, key, h);
    struct who_slot *s = &ix->whotab[j];
    uint32_t ref = ref_new(ix, win, nth);
    if (!ref)
        return -1;
    *ref_next(ix, ref) = s->head;   /* 0 if the slot is new */
    if (!s->head) {
        s->hash = h;
        ix->whoused++;
    }
    s->head = ref;
    return 0;
}

static void who_unlink(struct windows *ix, const char *key, uint32_t win)
{
    size_t j = who_find_slot(ix, key, key_hash(key));
    struct who_slot *s = &ix->whotab[j];
    uint32_t *pp = &s->head;
    while (*pp && ref_win(ix, *pp) != win)
        pp = ref_next(ix, *pp);
    if (!*pp)
        return;
    uint32_t ref = *pp;
    *pp = *ref_next(ix, ref);
    ref_free(ix, ref);
    if (!s->head)
        who_delete_slot(ix, j);
}

/* Is who entry i a repeat of an earlier one? (Callers building windows by
 * hand may name the same key twice; it is linked once.) */
static int who_is_dup(const struct window *w, size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (strcmp(w->who[k], w->who[i]) == 0)
            return 1;
    return 0;
}

/* --- add / remove */

static int same_content(const struct window *a, const struct window *b)
{
    if (a->nwho != b->nwho || a->from != b->from || a->until != b->until ||
        a->duration != b->duration || a->action != b->action ||
        !str_same(a->rrule, b->rrule) || !str_same(a->tz, b->tz) ||
        !str_same(a->reason, b->reason) || !str_same(a->owner, b->owner))
        return 0;
    for (size_t i = 0; i < a->nwho; i++)
        if (strcmp(a->who[i], b->who[i]) != 0)
            return 0;
    return 1;
}

/* A free slot is all zero (id[0] == 0 marks it free) except nwho, which
 * links it to the next free slot, so removing never allocates. */
static void slot_release(struct windows *ix, uint32_t win)
{
    struct window *w = slot_window(ix, win);
    memset(w, 0, sizeof *w);
    w->nwho = ix->freehead;
    ix->freehead = win;
}

static void remove_slot(struct windows *ix, size_t idslot)
{
    uint32_t win = (ix->idtab[idslot] & IDX_MASK) - 1;
    struct window *w = slot_window(ix, win);
    for (size_t i = 0; i < w->nwho; i++)
        if (!who_is_dup(w, i))
            who_unlink(ix, w->who[i], win);
    id_delete_slot(ix, idslot);
    ix->garbage += window_bytes(w);
    slot_release(ix, win);
    ix->count--;
}

static int compact(struct windows *ix);

int windows_remove(struct windows *ix, const char *id)
{
    if (!ix || !id || !*id)
        return -1;
    size_t j = id_find_slot(ix, id, key_hash(id));
    if (!ix->idtab[j])
        return -1;
    remove_slot(ix, j);
    /* Give removed strings back once they outweigh the live ones. */
    if (ix->garbage > (1u << 20) && ix->garbage * 2 > ix->arena_bytes)
        (void)compact(ix);   /* on ENOMEM keep the garbage: still correct */
    return 0;
}

static int slot_reserve(struct windows *ix, uint32_t *out)
{
    if (ix->freehead != NONE) {
        *out = ix->freehead;
        ix->freehead = (uint32_t)slot_window(ix, *out)->nwho;
        slot_window(ix, *out)->nwho = 0;
        return 0;
    }
    if (ix->nslots >= MAX_WINDOWS)
        return -1;
    if ((ix->nslots >> PAGE_SHIFT) >= ix->npages) {
        struct page **pages = realloc(ix->pages,
                                      (ix->npages + 1) * sizeof *pages);
        if (!pages)
            return -1;
        ix->pages = pages;
        pages[ix->npages] = calloc(1, sizeof **pages);
        if (!pages[ix->npages])
            return -1;
        ix->npages++;
    }
    *out = ix->nslots++;
    return 0;
}

const struct window *windows_add(struct windows *ix, const struct window *w)
{
    if (!ix || !w) {
        errno = EINVAL;
        return NULL;
    }
    if (w->id[0]) {
        size_t j = id_find_slot(ix, w->id, key_hash(w->id));
        if (ix->idtab[j]) {
            struct window *old = slot_window(ix, (ix->idtab[j] & IDX_MASK) - 1);
            /* A reload of an unchanged line: keep the stored strings. */
            if (same_content(old, w)) {
                const char *file = intern(ix, w->file);
                if (w->file && !file)
                    return NULL;
                old->file = file;
                old->line = w->line;
                old->source = w->source;
                old->created = w->created;
                return old;
            }
            remove_slot(ix, j);
        }
    }
    if ((ix->count + 1) * 2 > ix->idcap && id_grow(ix) != 0)
        return NULL;
    uint32_t win;
    if (slot_reserve(ix, &win) != 0) {
        errno = ENOMEM;
        return NULL;
    }
    struct window *d = slot_window(ix, win);
    *d = *w;
    d->id[WINDOW_ID_MAX - 1] = '\0';
    uint32_t h;
    size_t idslot;
    if (d->id[0]) {
        h = key_hash(d->id);
        idslot = id_find_slot(ix, d->id, h);
    } else {
        do {
            snprintf(d->id, sizeof d->id, "w%llu", ix->next_id++);
            h = key_hash(d->id);
            idslot = id_find_slot(ix, d->id, h);
        } while (ix->idtab[idslot]);
    }
    size_t mark = ix->arena_bytes, nth = 0;
    if (copy_strings(ix, d, w) != 0)
        goto fail;
    for (size_t i = 0; i < d->nwho; i++) {
        if (who_is_dup(d, i))
            continue;
        if (who_link(ix, d->who[i], win, nth++) != 0) {
            for (size_t k = 0; k < i; k++)
                if (!who_is_dup(d, k))
                    who_unlink(ix, d->who[k], win);
            goto fail;
        }
    }
    ix->idtab[idslot] = (h & ~IDX_MASK) | (win + 1);
    ix->count++;
    return d;
fail:
    ix->garbage += ix->arena_bytes - mark;
    slot_release(ix, win);
    errno = ENOMEM;
    return NULL;
}

/* Copy every live window's strings into a fresh arena and drop the old one.
 * Table entries hold indices, not string pointers, so only the intern table
 * is rebuilt. */
static int compact(struct windows *ix)
{
    struct windows tmp = {0};
    tmp.interncap = 16;
    tmp.intern = calloc(tmp.interncap, sizeof *tmp.intern);
    if (!tmp.intern)
        return -1;
    for (uint32_t i = 0; i < ix->nslots; i++) {
        struct window *w = slot_window(ix, i);
        if (!w->id[0])
            continue;
        struct window c = *w;
        if (copy_strings(&tmp, &c, w) != 0) {
            /* Windows moved so far point into the new chunks: keep both
             * arenas (and the old intern table, still valid). */
            struct arena_chunk **tail = &ix->arena;
            while (*tail)
                tail = &(*tail)->next;
            *tail = tmp.arena;
            ix->arena_bytes += tmp.arena_bytes;
            free(tmp.intern);
            return -1;
        }
        w->who = c.who;
        w->rrule = c.rrule;
        w->flags = c.flags;
        w->reason = c.reason;
        w->tz = c.tz;
        w->owner = c.owner;
        w->file = c.file;
    }
    arena_free_all(ix->arena);
    free(ix->intern);
    ix->arena = tmp.arena;
    ix->arena_bytes = tmp.arena_bytes;
    ix->garbage = 0;
    ix->intern = tmp.intern;
    ix->interncap = tmp.interncap;
    ix->internused = tmp.internused;
    return 0;
}

const struct window *windows_get(const struct windows *ix, const char *id)
{
    if (!ix || !id || !*id)
        return NULL;
    uint32_t v = ix->idtab[id_find_slot(ix, id, key_hash(id))];
    return v ? slot_window(ix, (v & IDX_MASK) - 1) : NULL;
}

void windows_foreach(const struct windows *ix,
                     int (*fn)(const struct window *w, void *arg), void *arg)
{
    if (!ix)
        return;
    for (uint32_t i = 0; i < ix->nslots; i++) {
        const struct window *w = slot_window(ix, i);
        if (w->id[0] && fn(w, arg))
            return;
    }
}

size_t windows_find_who(const struct windows *ix, const char *key,
                        const struct window **out, size_t max)
{
    if (!ix || !key)
        return 0;
    size_t j = who_find_slot(ix, key, key_hash(key)), n = 0;
    for (uint32_t r = ix->whotab[j].head; r; r = *ref_next(ix, r)) {
        if (n < max && out)
            out[n] = slot_window(ix, ref_win(ix, r));
        n++;
    }
    return n;
}

/* The active window for one key with the latest quiet-until. */
static int match_key(const struct windows *ix, const char *key, time_t t,
                     struct window_match *m)
{
    size_t j = who_find_slot(ix, key, key_hash(key));
    int found = 0;
    for (uint32_t r = ix->whotab[j].head; r; r = *ref_next(ix, r)) {
        const struct window *w = slot_window(ix, ref_win(ix, r));
        time_t qu;
        if (window_active(w, t, &qu) && (!found || qu > m->quiet_until)) {
            m->w = w;
            m->quiet_until = qu;
            m->recurring = w->rrule != NULL;
            found = 1;
        }
    }
    return found;
}

int windows_match(const struct windows *ix, const char *addr, time_t t,
                  struct window_match *m)
{
    m->w = NULL;
    m->quiet_until = 0;
    m->recurring = 0;
    if (!ix || !addr || !*addr)
        return 0;
    const char *at = strrchr(addr, '@');
    if (!at)
        return 0;
    if (at != addr && match_key(ix, addr, t, m))
        return 1;
    /* "@sub.acme.com", then "@acme.com", "@com": each parent key is a
     * suffix of the buffer with its leading '.' turned into '@'. */
    char buf[ADDR_MAX + 2];
    size_t n = strlen(at);
    if (n >= sizeof buf)
        return 0;
    memcpy(buf, at, n + 1);
    char *k = buf;
    while (k && k[1]) {
        if (match_key(ix, k, t, m))
            return 1;
        k = strchr(k + 1, '.');
        if (k)
            *k = '@';
    }
    return 0;
}
