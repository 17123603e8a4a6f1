/* lifecycle.c - the derived state of a held message (see lifecycle.h).
 *
 * Pure: windows, policy settings, the message's persisted facts and `now`
 * in; the state and due time out. release.c (the spool) and the unit tests
 * call it; nothing here keeps state between calls. */
#include <stdlib.h>
#include <string.h>
#include "untild/address.h"
#include "untild/lifecycle.h"
#include "untild/when.h"
#include "untild/windows.h"

#define BACKOFF_MIN 60
#define BACKOFF_MAX 3600

const char *held_state_name(enum held_state s)
{
    static const char *const names[] = { "held", "due", "delivering", "deferred", "returned" };
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

time_t lifecycle_backoff(int attempts)
{
    time_t s = BACKOFF_MIN;
    for (int i = 1; i < attempts && s < BACKOFF_MAX; i++)
        s *= 2;
    return s > BACKOFF_MAX ? BACKOFF_MAX : s;
}

/* Only hold windows hold. (A reject window that covers a held recipient
 * at delivery time drops that recipient: release.c, refuse_rejected.) */
static int holds(const struct policy_cfg *cfg, const struct window *w)
{
    return policy_window_action(cfg, w) == ACTION_HOLD;
}

/* The latest aligned release among the hold windows naming key that ended
 * by themselves before now but whose aligned release is still ahead.
 * *until gets that window's end. */
static time_t ended_grace(const struct policy_cfg *cfg, const struct windows *ix,
                          const char *key, time_t now, const struct window **wout, time_t *until)
{
    const struct window *one[16], **found = one;
    size_t n = windows_find_who(ix, key, one, 16);
    if (n > 16) {                /* many windows name this key: look at all */
        if (!(found = malloc(n * sizeof *found)))
            return now + 60;     /* cannot tell: hold a minute, then look again */
        n = windows_find_who(ix, key, found, n);
    }
    time_t best = 0;
    for (size_t i = 0; i < n; i++) {
        const struct window *w = found[i];
        if (w->rrule || w->until == WHEN_NEVER || w->until > now || !holds(cfg, w))
            continue;
        struct window_match m = { .w = w, .quiet_until = w->until, .recurring = 0 };
        time_t at = policy_release_at(cfg, &m);
        if (at > now && at > best) {
            best = at;
            if (wout)
                *wout = w;
            if (until)
                *until = w->until;
        }
    }
    if (found != one)
        free(found);
    return best;
}

time_t lifecycle_rcpt_release(const struct policy_cfg *cfg,
                              const struct windows *ix, const char *rcpt,
                              time_t now, const struct window **w, time_t *quiet_until)
{
    struct window_match m;
    if (w)
        *w = NULL;
    if (quiet_until)
        *quiet_until = 0;
    if (!ix || !rcpt)
        return 0;
    if (windows_match(ix, rcpt, now, &m) && m.w) {
        /* The active window decides, as at RCPT time: an allow exception
         * or a flag window holds nothing. */
        if (!holds(cfg, m.w))
            return 0;
        if (w)
            *w = m.w;
        if (quiet_until)
            *quiet_until = m.quiet_until;
        return policy_release_at(cfg, &m);
    }
    /* Nothing active: a window that ended by itself still holds until its
     * aligned release time; the latest over the address and its domains. */
    const char *at = strrchr(rcpt, '@');
    if (!at)
        return 0;
    time_t best = at != rcpt ? ended_grace(cfg, ix, rcpt, now, w, quiet_until) : 0;
    char buf[ADDR_MAX + 2];
    size_t len = strlen(at);
    if (len >= sizeof buf)
        return best;
    memcpy(buf, at, len + 1);
    for (char *k = buf; k && k[1];) {
        const struct window *kw = NULL;
        time_t ku = 0, t = ended_grace(cfg, ix, k, now, &kw, &ku);
        if (t > best) {
            best = t;
            if (w)
                *w = kw;
            if (quiet_until)
                *quiet_until = ku;
        }
        k = strchr(k + 1, '.');
        if (k)
            *k = '@';
    }
    return best;
}

static time_t later(time_t a, time_t b) { return a > b ? a : b; }

void lifecycle_eval(const struct policy_cfg *cfg, const struct windows *ix,
                    const struct spool_meta *m, time_t now, struct lifecycle *out)
{
    lifecycle_eval_ext(cfg, ix, NULL, m, now, out);
}

void lifecycle_eval_ext(const struct policy_cfg *cfg, const struct windows *ix,
                        const struct lifecycle_ext *ext, const struct spool_meta *m,
                        time_t now, struct lifecycle *out)
{
    time_t due = 0;
    if (m->returned || m->kind == SPOOL_KIND_NOTICE) {
        due = m->created;          /* notices go at once; only retries wait */
    } else if (m->released_at) {
        due = m->released_at;      /* by hand: windows and FUTURERELEASE yield */
    } else {
        for (size_t i = 0; i < m->nrcpts; i++) {
            if (m->rcpts[i].state != RCPT_HELD)
                continue;
            due = later(due, lifecycle_rcpt_release(cfg, ix, m->rcpts[i].norm, now, NULL, NULL));
            if (ext && ext->fn)
                due = later(due, ext->fn(ext->arg, m, &m->rcpts[i], now));
        }
        due = later(due, m->hold_until);
    }
    out->due = due;
    out->next = m->attempts > 0 ? later(due, m->next_attempt) : due;
    if (m->returned)
        out->state = HS_RETURNED;
    else if (due > now)
        out->state = HS_HELD;
    else if (out->next > now)
        out->state = HS_DEFERRED;
    else
        out->state = HS_DUE;
}
