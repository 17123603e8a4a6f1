/* window_end.h - ending windows early, one way for every caller (untilctl
 * window end, a customer who wrote with customer_reply_reopens =
 * end-window). Loop thread only. */
#ifndef UNTILD_WINDOW_END_H
#define UNTILD_WINDOW_END_H

#include <time.h>

struct untild;

/* End window id now: a run-time window leaves the store; a file window is
 * remembered as ended ("ended:ID", honoured when the files are loaded
 * again); a watcher's window is only removed (its watcher rebuilds it).
 * Audited "window-ended" (rep, who, id, why; who NULL: the window's first
 * address), then removed from the index. Returns 0, or -1 if there is no
 * such window. Call window_end_kick once after a batch. */
int window_end_one(struct untild *u, const char *id, const char *rep, const char *who,
                   const char *why, time_t now);

/* Windows ended: the release scheduler and the policy service evaluate
 * their held messages again. */
void window_end_kick(struct untild *u);

#endif
