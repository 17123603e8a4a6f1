/* events.h - the one way an event reaches the webhooks (issue 14).
 *
 * events_start hooks the audit (store_on_audit): every audit row whose
 * event has a webhook type (event_kind.h: held, flagged, rejected,
 * released, returned, window-added, window-changed, window-ended) becomes
 * an event, whoever wrote it. Other events are emitted with events_emit.
 * Loop thread only; cheap when no webhook wants the kind (a bit test). */
#ifndef UNTILD_EVENTS_H
#define UNTILD_EVENTS_H

#include <time.h>
#include "untild/event_kind.h"

struct untild;
struct window;
struct json_object;

/* After webhook_start (u->webhooks); nothing to do without webhooks. */
void events_start(struct untild *u);
/* 1 if some webhook wants kind. */
int events_wanted(const struct untild *u, enum event_kind kind);
/* Queue {"id", "type", "time", "data"} for every webhook that wants kind.
 * Takes data (a JSON object; NULL: {}). Nothing on the network, no fsync. */
void events_emit(struct untild *u, enum event_kind kind, struct json_object *data);
/* An event about window w as it stands: data {"window_id", "contact" (its
 * first address), "rep" (its owner), "due" (when due is not 0: the
 * follow-up time), "window": {who, until, from, action, reason, owner,
 * rrule}}. */
void events_window(struct untild *u, enum event_kind kind, const struct window *w, time_t due);

#endif
