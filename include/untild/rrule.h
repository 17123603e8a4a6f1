/* rrule.h - the recurrence rules a window may have (checked before
 * libical ever walks them) and the limits on walking them. */
#ifndef UNTILD_RRULE_H
#define UNTILD_RRULE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <libical/ical.h>

/* Limits on recurring windows ([windows] in untild.conf). A rule is walked
 * at most rrule_max_iterations FREQ periods per evaluation (hours, days,
 * weeks, months or years; times INTERVAL), so a rule must have an
 * occurrence within that many periods of its start to be accepted, and an
 * evaluation that finds none within them answers "not quiet until the end
 * of that search" (decided, and evaluated again then). */
struct window_limits {
    int rrule_max_iterations;    /* default 2000 */
    int64_t rrule_max_duration;  /* seconds per occurrence; default 366d */
};
#define WINDOW_RRULE_MAX_ITERATIONS 2000
#define WINDOW_RRULE_MAX_DURATION ((int64_t)366 * 86400)

/* The limits window_active and window_parse_line use (main thread; the
 * defaults until set). */
void windows_set_limits(const struct window_limits *l);
void windows_get_limits(struct window_limits *l);

/* Is rrule acceptable for a window starting at `from` (0: none, anchored
 * at 2000-01-03 00:00) in tz, with occurrences of `duration` seconds?
 * Refused, with the reason in err: FREQ=SECONDLY/MINUTELY, BYSECOND,
 * BYYEARDAY, BYWEEKNO, RSCALE, BYSETPOS but with MONTHLY and one time of
 * day, BYDAY positions outside
 * MONTHLY/YEARLY or beyond +-5 or with BYMONTHDAY, YEARLY day rules
 * without BYMONTH, COUNT above the iteration limit, a duration that is not
 * positive or above the limit, dates that never exist (BYMONTH=2;
 * BYMONTHDAY=30), and rules without an occurrence within the iteration
 * limit. Cost: bounded (a few ms at most). Thread-safe (no zone lookup by
 * libical; tz must be resolved already, see when.h). lim NULL: the
 * current limits. Returns 0 or -1. */
int window_rrule_check(const char *rrule, time_t from, const char *tz,
                       int64_t duration, const struct window_limits *lim,
                       char *err, size_t errsz);

/* How far past its starting point one evaluation of rule r may walk
 * (rrule_max_iterations FREQ periods, at most a 400-year cycle). */
int64_t rrule_search_span(const struct icalrecurrencetype *r,
                          const struct window_limits *lim);

#endif
