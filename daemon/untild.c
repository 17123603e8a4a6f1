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
#include <string.h>
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
    /* window_active's limits follow the config in force */
    windows_set_limits(&(struct window_limits){ c->rrule_max_iterations,
                                                c->rrule_max_duration });
}

/* "ended:<id>" rows: file windows ended by hand. One range query for all
 * of them (a lookup per file window made a million-window start 7 s). */
static int drop_ended(const char *key, const char *value, void *arg)
{
    struct windows *ix = arg;
    const struct window *w = windows_get(ix, key + strlen("ended:"));
    (void)value;
    if (w && w->source == WSRC_FILE)
        windows_remove(ix, w->id);
    return 0;
}

int untild_finish_windows(struct untild *u, struct windows *ix,
                          struct config_errors *e)
{
    if (!u->store)
        return 0;
    if (store_kv_foreach_prefix(u->store, "ended:", drop_ended, ix) < 0)
        config_errors_add(e, "state", 0, "cannot read the windows ended by hand from the state database");
    if (store_windows_load(u->store, ix) < 0)
        config_errors_add(e, "state", 0, "cannot load run-time windows from the state database");
    return 0;
}

struct windows *untild_load_windows(struct untild *u, const struct config *c,
                                    struct config_errors *e)
{
    struct windows *ix = config_load_windows(c, untild_now(u), e);
    if (!ix)
        return NULL;
    untild_finish_windows(u, ix, e);
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
