/* followup_cal.h - follow-up items in the rep's calendar (issue 12).
 *
 * For a rep with a [caldav] section, every one-off window the rep owns has
 * an item in the calendar named [followup] calendar (created if missing)
 * on its follow-up date: an all-day event, or a VTODO ([followup] item),
 * titled "Follow up with CONTACT: REASON". A changed window moves it; a
 * window ended by hand (gone from the index before its date) removes the
 * event or marks the VTODO done. What was put is remembered in the store
 * (table followup_items), so a restart puts nothing twice.
 *
 * Threads: one worker thread does the HTTP (libcurl, blocking; discovery:
 * current-user-principal, calendar-home-set, the calendar by display
 * name, MKCALENDAR); the loop decides what to put and records results
 * (loop_post). Loop-thread functions: followup_cal_*. */
#ifndef UNTILD_FOLLOWUP_CAL_H
#define UNTILD_FOLLOWUP_CAL_H

#include <stddef.h>
#include <time.h>

struct untild;
struct followup_cal;

/* Pure: the iCalendar text of one item (CRLF). date: "YYYYMMDD"; todo:
 * VTODO (done: STATUS:COMPLETED) else an all-day VEVENT. Returns
 * malloc'd text or NULL. */
char *followup_cal_ics(const char *uid, const char *date, const char *summary,
                       const char *description, int todo, int done, time_t now);

/* NULL (and nothing to do) when no rep has [caldav] or calendar = off. */
struct followup_cal *followup_cal_start(struct untild *u);
void followup_cal_stop(struct followup_cal *f);
/* Windows changed: bring the calendars in line (bounded work per call;
 * the rest on the next). f may be NULL. */
void followup_cal_sync(struct followup_cal *f);

#endif
