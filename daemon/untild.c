/* untild.c - small helpers on the daemon context. */
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
#include "untild/store.h"
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
