/* release.h - the held queue in memory, and the scheduler that delivers
 * it: when a message is due is derived by lifecycle_eval() (lifecycle.h)
 * at every evaluation; retries with backoff up to max_queue_lifetime; the
 * rep gets back what cannot be delivered; notices to the rep are kept and
 * retried like held mail. The spool is the truth; this is its index plus
 * one timer (a heap by due time: nothing runs while nothing is due). */
#ifndef UNTILD_RELEASE_H
#define UNTILD_RELEASE_H

#include <stddef.h>
#include <time.h>
#include "untild/lifecycle.h"
#include "untild/spool.h"

struct untild;
struct release;

struct release *release_new(struct untild *u);  /* loads spool_list */
/* The same from a list already read (spool_open_ex's); takes list and its
 * entries. */
struct spool_meta;
struct release *release_new_from(struct untild *u, struct spool_meta *list, size_t n);
void release_free(struct release *r);

/* A message just written to the spool (meta copied): from now on the
 * scheduler derives when it goes. Returns 0 or -1 (ENOMEM, EEXIST). */
int release_track(struct release *r, const struct spool_meta *m);

/* Windows changed (reload, add, end, a watcher's sync): every held message
 * is evaluated again (in bounded chunks per loop turn). windows_changed 0:
 * only the clock moved (test clock). */
void release_kick(struct release *r, int windows_changed);

/* A held message as the user sees it. */
struct release_view {
    const struct spool_meta *m;  /* valid until the next release_* call */
    enum held_state state;
    time_t release_at;           /* when its holds end (derived now) */
    time_t next_attempt;         /* deferred or returned: the next try */
};
size_t release_count(const struct release *r);
/* The i-th held message (any order) or the one with this id: NULL if none.
 * *release_at (may be NULL) gets when its holds end, derived now. */
const struct spool_meta *release_get(const struct release *r, size_t i, time_t *release_at);
const struct spool_meta *release_find(const struct release *r, const char *id, time_t *release_at);
/* The i-th held message without deriving anything (cheap: for scans that
 * look at the facts only, e.g. paging by id). NULL past the end. */
const struct spool_meta *release_meta(const struct release *r, size_t i);
/* The same with the derived state. Returns 0 or -1. */
int release_view(const struct release *r, const char *id, struct release_view *v);

/* Send now, by hand (recorded in the spool file: by, reason, when; a
 * failed attempt is retried, also after a restart, without waiting for
 * the window again). Returns 0 (started, or already being delivered), -1
 * (no such message, or the spool could not record it). */
int release_now(struct release *r, const char *id, const char *by, const char *reason);
/* Drop it for good. Returns 0, -1 (no such message or spool error), or -2
 * with errno EBUSY when its delivery is already in progress (too late:
 * audited as "discard-too-late"). */
int release_discard(struct release *r, const char *id, const char *by, const char *event);

/* Drop some recipients (normalised) of one held message, keep the rest
 * held: an iMIP CANCEL addressed to only some of a held invitation's
 * attendees. When no held recipient is left the message is discarded.
 * Returns the number of recipients dropped, or -1 (no such message, in
 * flight, or the spool could not be updated). */
int release_drop_rcpts(struct release *r, const char *id, const char *const *norms,
                       size_t n, const char *by, const char *event);

/* Held invitations of rep with this iCalendar UID (for CANCEL). Fills ids
 * (each SPOOL_ID_MAX) up to max; returns the count. */
size_t release_find_uid(const struct release *r, const char *rep, const char *uid,
                        char (*ids)[SPOOL_ID_MAX], size_t max);
/* The same for a message about one occurrence (rid = its RECURRENCE-ID
 * key, message_facts.ical_recurrence_id): only held messages about that
 * same occurrence. rid NULL (a series) is release_find_uid: the series
 * and every held occurrence of it. */
size_t release_find_occurrence(const struct release *r, const char *rep, const char *uid,
                               const char *rid, char (*ids)[SPOOL_ID_MAX], size_t max);

/* A notice to the rep (msg: a whole message, taken over), kept in the
 * spool and retried like held mail. Written off the loop; returns 0 when
 * queued, -1 (msg freed) otherwise. */
int release_notice(struct release *r, const char *rep, const char *to, const char *subject,
                   char *msg, size_t len);

#endif
