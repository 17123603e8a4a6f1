/* window_end.c - ending windows early: the store (run-time windows), the
 * "ended:" mark (file windows), the audit row, the index, and the kicks
 * that make held mail re-evaluate. One function, so untilctl's `window
 * end` and the IMAP watcher's end-window cannot drift apart.
 *
 * Thread: loop thread only (store, index).
 *
 * Diagnostics: a store that cannot record the end is logged; the window
 * still ends now (a file window may then come back at the next reload). */
#include <stdio.h>
#include "untild/window_end.h"
#include "untild/daemon.h"
#include "untild/log.h"
#include "untild/policy_service.h"
#include "untild/release.h"
#include "untild/store.h"
#include "untild/windows.h"

int window_end_one(struct untild *u, const char *id, const char *rep, const char *who,
                   const char *why, time_t now)
{
    const struct window *w = windows_get(u->ix, id);
    if (!w)
        return -1;
    if (w->source == WSRC_RUNTIME) {
        if (store_window_delete(u->store, id) < 0)
            log_error("window end: cannot delete run-time window %s from the store", id);
    } else if (w->source == WSRC_FILE) {
        char key[WINDOW_ID_MAX + 8];
        snprintf(key, sizeof key, "ended:%.*s", WINDOW_ID_MAX - 1, id);
        if (store_kv_set(u->store, key, "1") < 0)
            log_error("window end: cannot remember that %s ended", id);
    }
    store_audit(u->store, &(struct audit_rec){ now, "window-ended", rep, who ? who : w->who[0], id,
                NULL, why });
    windows_remove(u->ix, id);
    return 0;
}

void window_end_kick(struct untild *u)
{
    release_kick(u->release, 1);
    policy_service_kick(u->psvc, 1);
    untild_windows_changed(u);      /* follow-ups */
}
