/* when.h - times: parsing the forms users write, time zones, release
 * alignment, formatting. Wall-clock time is always passed in (never read
 * here), so everything is testable with injected time.
 *
 * Time zones are IANA names ("Europe/Berlin") resolved with libical's
 * built-in zoneinfo; NULL or "" means UTC. libical's lookup by name is not
 * thread-safe: names are resolved on the main (loop) thread and kept in a
 * shared table; a thread that called when_thread_offloop() only reads that
 * table, and a name not in it fails there ("time zone not resolved yet")
 * and is noted for when_offloop_missing(): resolve those names on the main
 * thread with when_zone_prepare() and run the work again. */
#ifndef UNTILD_WHEN_H
#define UNTILD_WHEN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define WHEN_NEVER ((time_t)INT64_MAX)   /* a window without an end */

/* Off-loop threads (see above). */
#define WHEN_MISSING_MAX 64
void when_thread_offloop(void);
/* Names this thread failed to resolve since when_thread_offloop(); copies
 * up to max of them, returns how many there were. */
size_t when_offloop_missing(char names[][64], size_t max);
/* Main thread: resolve and load tz, publish it (or its being unknown) to
 * the shared table. 0, or -1 for an unknown name. */
int when_zone_prepare(const char *tz);

/* Local calendar fields of instant t in tz (sod: second of the day).
 * 0, or -1 if tz is unknown. */
int when_local_fields(time_t t, const char *tz, int *y, int *mo, int *d,
                      int *sod);

/* The instant of local wall time y-mo-d + sod seconds in tz (a DST gap
 * maps to the later valid instant, an ambiguous time to the first). Safe
 * on any thread: 0, -1 for an unknown zone, -2 off the loop for a name not
 * resolved yet (noted for when_offloop_missing). */
int when_local_to_utc(int y, int mo, int d, int sod, const char *tz, time_t *out);

/* Is tz a known zone name? */
int when_tz_valid(const char *tz);

/* Parse an absolute or natural time:
 *   2027-07-01                  00:00 of that day in tz
 *   2027-07-01T17:00[:SS]       local time in tz
 *   2027-07-01T17:00-05:00 / Z  explicit offset
 *   @1790000000                 Unix seconds
 *   never                       WHEN_NEVER
 *   natural: january..december (00:00 on the 1st of the next such month),
 *   jan..dec, Nd / Nday(s), Nw / Nweek(s), Nmonth(s) / Nmonths, Ny / Nyear(s)
 *   (from now, rounded to 00:00 of that day), tomorrow,
 *   next-monday..next-sunday (also next-mon..), next-week (next Monday),
 *   next-month (the 1st of next month).
 * Case-insensitive. now is the reference time for natural forms.
 * Local times in a DST gap map to the later valid instant; ambiguous
 * autumn times map to the first (summer) instant.
 * Returns 0, or -1 with a message in err. */
int when_parse(const char *s, const char *tz, time_t now, time_t *out,
               char *err, size_t errsz);

/* ISO 8601 duration (P1D, PT12H, P1DT2H30M, P2W) or a short form
 * (90s, 30m, 12h, 5d, 2w). Returns 0 and seconds, or -1.
 * (Days are 86400 s here; DST-aware occurrence lengths are computed by
 * windows.c with libical.) */
int when_duration_parse(const char *s, int64_t *secs);

/* "HH:MM" -> minutes after midnight; "off" -> -1. Returns 0 or -1 on error. */
int when_clock_parse(const char *s, int *minutes);

/* Optional zone cache for callers that convert many times (the window-file
 * loader): libical's zone lookup by name costs about a microsecond, the rest
 * of a parse a tenth of that. Zero-initialise (= {0}); one per thread; the
 * plain functions are the _cached ones with c == NULL. Invalid after
 * icaltimezone_free_builtin_timezones(). */
struct when_cache {
    char tz[64];     /* name last resolved */
    void *zone;      /* its icaltimezone, NULL for UTC */
    int valid;
};

int when_parse_cached(struct when_cache *c, const char *s, const char *tz,
                      time_t now, time_t *out, char *err, size_t errsz);

/* Release alignment (docs/DESIGN.md "Spool and release"): the first release_min
 * (minutes after local midnight in tz) at or after t; if !weekends, skip to
 * the first Monday..Friday at that time. release_min < 0: t itself.
 * WHEN_NEVER stays WHEN_NEVER. */
time_t when_align_release(time_t t, const char *tz, int release_min,
                          int weekends);
time_t when_align_release_cached(struct when_cache *c, time_t t,
                                 const char *tz, int release_min,
                                 int weekends);

/* The same wall-clock time `days` calendar days after t, in tz (across a
 * DST change that is 23 or 25 hours per day crossed); a time in a spring
 * gap maps to the later valid instant. WHEN_NEVER stays WHEN_NEVER. */
time_t when_add_days(time_t t, long days, const char *tz);

/* RFC 3339 in tz ("2027-07-01T09:00:00+02:00"); "never" for WHEN_NEVER.
 * Returns buf. */
char *when_format(time_t t, const char *tz, char *buf, size_t bufsz);
/* "monday", "Mon", "tues"...: 0 (Sunday) to 6, or -1. */
int when_weekday_name(const char *s);

#endif
