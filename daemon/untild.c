/* untild.c - small helpers on the daemon context: the injectable clock,
 * derived policy settings, the window index, and the daily retention prune
 * that keeps the state database from growing forever. */
#include <time.h>
#include "untild/daemon.h"

time_t untild_now(const struct untild *u)
{
    if (u->clock_fixed)
        return u->clock_fixed;
    return time(NULL) + u->clock_offset;
}

#include <stdio.h>
#include <stdlib.h>
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/store.h"
#include "untild/when.h"
#include "untild/windows.h"

void untild_policy_cfg(const struct config *c, struct policy_cfg *p)
{
    p->default_action = c->default_action;
    p->split_recipients = c->split_recipients;
    p->release_time = c->release_time;
    p->release_on_weekends = c->release_on_weekends;
    p->timezone = c->timezone;
    p->command_domain = c->command_domain;
    p->delims = c->subaddress_delimiter;
}

struct ended_ctx { struct untild *u; char (*ids)[WINDOW_ID_MAX]; size_t n, cap; };

static int collect_ended(const struct window *w, void *arg)
{
    struct ended_ctx *c = arg;
    char key[64], *v;
    if (w->source != WSRC_FILE)
        return 0;
    snprintf(key, sizeof key, "ended:%s", w->id);
    if (!(v = store_kv_get(c->u->store, key)))
        return 0;
    free(v);
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        char (*p)[WINDOW_ID_MAX] = realloc(c->ids, cap * sizeof *p);
        if (!p)
            return 1;
        c->ids = p;
        c->cap = cap;
    }
    snprintf(c->ids[c->n++], WINDOW_ID_MAX, "%s", w->id);
    return 0;
}

struct windows *untild_load_windows(struct untild *u, const struct config *c,
                                    struct config_errors *e)
{
    struct windows *ix = config_load_windows(c, untild_now(u), e);
    if (!ix)
        return NULL;
    if (u->store) {
        struct ended_ctx ec = { u, NULL, 0, 0 };
        windows_foreach(ix, collect_ended, &ec);
        for (size_t i = 0; i < ec.n; i++)
            windows_remove(ix, ec.ids[i]);
        free(ec.ids);
        if (store_windows_load(u->store, ix) < 0)
            config_errors_add(e, "state", 0, "cannot load run-time windows from the state database");
    }
    return ix;
}

int untild_prune(struct untild *u)
{
    int64_t keep = u->cfg->audit_retention;
    time_t cut;
    char t[64];
    int n;
    if (!u->store || keep <= 0)
        return 0;
    cut = untild_now(u) - (time_t)keep;
    n = store_prune(u->store, cut);
    if (n < 0) {
        log_error("retention: cannot prune the state database");
        return -1;
    }
    log_info("retention: pruned %d audit/seen row(s) older than %s", n,
             when_format(cut, "UTC", t, sizeof t));
    return n;
}

static void prune_tick(struct loop *l, uint64_t id, void *arg)
{
    struct untild *u = arg;
    (void)id;
    untild_prune(u);
    /* Monotonic, so a wall-clock jump neither skips nor repeats a day. */
    loop_timer(l, 86400 * 1000LL, prune_tick, u);
}

void untild_prune_start(struct untild *u)
{
    prune_tick(u->loop, 0, u);
}
