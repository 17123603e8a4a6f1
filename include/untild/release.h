/* release.h - the held queue in memory, and the scheduler that releases
 * held messages when their windows open: retries with backoff up to
 * max_queue_lifetime, stale invitations, notices. The spool is the truth;
 * this is its index plus timers. */
#ifndef UNTILD_RELEASE_H
#define UNTILD_RELEASE_H

#include <stddef.h>
#include <time.h>
#include "untild/spool.h"

struct untild;
struct release;

struct release *release_new(struct untild *u);  /* loads spool_list */
void release_free(struct release *r);

/* A message just held (meta copied). release_at: aligned release time. */
int release_track(struct release *r, const struct spool_meta *m, time_t release_at);

/* Windows changed (reload, add, end) or the clock moved: re-evaluate every
 * held message now; ones whose recipients are no longer quiet go out. */
void release_kick(struct release *r, int windows_changed);

/* Held entries (read-only view). */
size_t release_count(const struct release *r);
const struct spool_meta *release_get(const struct release *r, size_t i, time_t *release_at);
const struct spool_meta *release_find(const struct release *r, const char *id, time_t *release_at);

/* Act on one held message: send now (reason audited) or drop it. by: who
 * asked (rep or admin name). Returns 0, or -1 if no such message. */
int release_now(struct release *r, const char *id, const char *by, const char *reason);
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

#endif
