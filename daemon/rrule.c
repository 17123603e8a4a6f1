/* rrule.c - which recurrence rules a window may have, checked before
 * libical walks them, and the limits on walking them ([windows]
 * rrule_max_iterations, rrule_max_duration). Pure apart from the limits
 * (set on the main thread) and a per-thread memo of accepted rules. */
#include "untild/rrule.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "untild/fnv.h"
#include "untild/when.h"

static int fail(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errsz, const char *fmt, ...)
{
    if (err && errsz) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---------------------------------------------------------------- limits */

static struct window_limits g_lim = {WINDOW_RRULE_MAX_ITERATIONS,
                                     WINDOW_RRULE_MAX_DURATION};

void windows_set_limits(const struct window_limits *l)
{
    struct window_limits d = {WINDOW_RRULE_MAX_ITERATIONS,
                              WINDOW_RRULE_MAX_DURATION};
    if (l && l->rrule_max_iterations > 0)
        d.rrule_max_iterations = l->rrule_max_iterations;
    if (l && l->rrule_max_duration > 0)
        d.rrule_max_duration = l->rrule_max_duration;
    g_lim = d;
}

void windows_get_limits(struct window_limits *l)
{
    *l = g_lim;
}

/* ---------------------------------------------------------------- rules */

/* Why the checks below: libical 3.0.16 walks a rule period by period with
 * no bound of its own. A rule whose dates never exist (BYMONTH=2;
 * BYMONTHDAY=30) makes one icalrecur_iterator_next() walk to the year 2582
 * (21 s for HOURLY), and one icalrecur_iterator_new() of a MONTHLY/YEARLY
 * rule with no date in its first period walks to the year 20000 (2 s). So:
 * frequent FREQs and the BY parts we cannot reason about are refused; the
 * dates of MONTHLY/YEARLY rules are checked over a whole 400-year
 * Gregorian cycle here, in C, before libical sees them; and every walk is
 * cut by an UNTIL we set (rrule_max_iterations periods ahead). */

#define RMAX ICAL_RECURRENCE_ARRAY_MAX
#define CYCLE_YEARS 400            /* the Gregorian calendar repeats */

static int by_has(const short *a) { return a[0] != RMAX; }

static int civ_leap(long long y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int civ_mdays(long long y, int m)
{
    static const int md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && civ_leap(y) ? 29 : md[m - 1];
}

/* 0 = Sunday (Sakamoto). */
static int civ_wday(long long y, int m, int d)
{
    static const int t[12] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
    if (m < 3)
        y--;
    return (int)((y + y / 4 - y / 100 + y / 400 + t[m - 1] + d) % 7);
}

/* Does day d of month (y, m) match the rule's day parts? (Month-scoped:
 * MONTHLY, or YEARLY with BYMONTH; positions checked by the caller.) */
static int day_matches(const struct icalrecurrencetype *r, long long y, int m,
                       int d, int d0)
{
    int md = civ_mdays(y, m), wd = civ_wday(y, m, d);
    if (by_has(r->by_month_day)) {
        int ok = 0;
        for (int i = 0; r->by_month_day[i] != RMAX; i++) {
            int v = r->by_month_day[i];
            ok |= v > 0 ? v == d : md + 1 + v == d;
        }
        if (!ok || !by_has(r->by_day))
            return ok;
        for (int i = 0; r->by_day[i] != RMAX; i++)
            if ((int)icalrecurrencetype_day_day_of_week(r->by_day[i]) - 1 == wd)
                return 1;
        return 0;
    }
    if (by_has(r->by_day)) {
        for (int i = 0; r->by_day[i] != RMAX; i++) {
            int pos = icalrecurrencetype_day_position(r->by_day[i]);
            if ((int)icalrecurrencetype_day_day_of_week(r->by_day[i]) - 1 != wd)
                continue;
            if (pos == 0 || pos == (d - 1) / 7 + 1 ||
                pos == -((md - d) / 7 + 1))
                return 1;
        }
        return 0;
    }
    return d == d0;
}

static int month_in(const struct icalrecurrencetype *r, int m, int m0)
{
    if (!by_has(r->by_month))
        return r->freq == ICAL_MONTHLY_RECURRENCE || m == m0;
    for (int i = 0; r->by_month[i] != RMAX; i++)
        if (icalrecurrencetype_month_month(r->by_month[i]) == m)
            return 1;
    return 0;
}

/* With BYSETPOS (MONTHLY, one time of day: checked by rule_shape_ok) a
 * month has a date when some position fits in its set of matching days. */
static int month_has_date(const struct icalrecurrencetype *r, long long y,
                          int m, int d0)
{
    int n = 0;
    for (int d = 1, md = civ_mdays(y, m); d <= md; d++)
        n += day_matches(r, y, m, d, d0);
    if (!by_has(r->by_set_pos))
        return n > 0;
    for (int i = 0; r->by_set_pos[i] != RMAX; i++) {
        int p = r->by_set_pos[i] < 0 ? -r->by_set_pos[i] : r->by_set_pos[i];
        if (p >= 1 && p <= n)
            return 1;
    }
    return 0;
}

static int by_count(const short *a, int max)
{
    int n = 0;
    while (n < max && a[n] != RMAX)
        n++;
    return n;
}

/* Is there a date in any period of a MONTHLY/YEARLY rule starting at
 * (y0, m0, d0)? Periods repeat with the 400-year cycle, so checking the
 * periods of one cycle (4800 months or 400 years) is exact. ~150,000 cheap
 * tests at most. */
static int periods_have_date(const struct icalrecurrencetype *r, int y0,
                             int m0, int d0)
{
    long long iv = r->interval > 0 ? r->interval : 1;
    if (r->freq == ICAL_MONTHLY_RECURRENCE) {
        long long base = (long long)y0 * 12 + (m0 - 1);
        for (long long k = 0; k < CYCLE_YEARS * 12; k++) {
            long long mi = base + k * iv;
            long long y = mi / 12;
            int m = (int)(mi % 12) + 1;
            if (month_in(r, m, m0) && month_has_date(r, y, m, d0))
                return 1;
        }
        return 0;
    }
    for (long long k = 0; k < CYCLE_YEARS; k++) {
        long long y = y0 + k * iv;
        for (int m = 1; m <= 12; m++)
            if (month_in(r, m, m0) && month_has_date(r, y, m, d0))
                return 1;
    }
    return 0;
}

static const char *freq_unit(icalrecurrencetype_frequency f)
{
    switch (f) {
    case ICAL_HOURLY_RECURRENCE: return "hour";
    case ICAL_DAILY_RECURRENCE: return "day";
    case ICAL_WEEKLY_RECURRENCE: return "week";
    case ICAL_MONTHLY_RECURRENCE: return "month";
    default: return "year";
    }
}

/* Seconds in one FREQ period (an upper bound for months and years). */
static int64_t freq_seconds(icalrecurrencetype_frequency f)
{
    switch (f) {
    case ICAL_SECONDLY_RECURRENCE: return 1;
    case ICAL_MINUTELY_RECURRENCE: return 60;
    case ICAL_HOURLY_RECURRENCE: return 3600;
    case ICAL_DAILY_RECURRENCE: return 86400;
    case ICAL_WEEKLY_RECURRENCE: return 7 * 86400;
    case ICAL_MONTHLY_RECURRENCE: return 31 * 86400;
    default: return 366 * 86400;
    }
}

int64_t rrule_search_span(const struct icalrecurrencetype *r,
                          const struct window_limits *lim)
{
    int64_t iv = r->interval > 0 ? r->interval : 1;
    int64_t span = (int64_t)lim->rrule_max_iterations * iv *
                   freq_seconds(r->freq);
    int64_t cap = (int64_t)CYCLE_YEARS * 366 * 86400;
    return span < cap ? span : cap;
}

/* The shape checks (no iteration). */
static int rule_shape_ok(const struct icalrecurrencetype *r,
                         const struct window_limits *lim, char *err,
                         size_t errsz)
{
    if (r->freq == ICAL_NO_RECURRENCE || r->freq > ICAL_YEARLY_RECURRENCE)
        return fail(err, errsz, "not an iCalendar RRULE with FREQ");
    if (r->freq == ICAL_SECONDLY_RECURRENCE ||
        r->freq == ICAL_MINUTELY_RECURRENCE)
        return fail(err, errsz, "FREQ=%s is too frequent for a window (use "
                    "HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY)",
                    r->freq == ICAL_SECONDLY_RECURRENCE ? "SECONDLY"
                                                        : "MINUTELY");
    if (r->rscale)
        return fail(err, errsz, "RSCALE is not supported in windows");
    static const struct { size_t off; const char *name; } unsup[] = {
        {offsetof(struct icalrecurrencetype, by_second), "BYSECOND"},
        {offsetof(struct icalrecurrencetype, by_year_day), "BYYEARDAY"},
        {offsetof(struct icalrecurrencetype, by_week_no), "BYWEEKNO"},
    };
    for (size_t i = 0; i < sizeof unsup / sizeof unsup[0]; i++)
        if (by_has((const short *)(const void *)((const char *)r +
                                                 unsup[i].off)))
            return fail(err, errsz, "%s is not supported in windows (use "
                        "BYMONTH, BYMONTHDAY, BYDAY, BYHOUR, BYMINUTE)",
                        unsup[i].name);
    /* BYSETPOS picks from each month's set of dates ("the last weekday"):
     * with one time of day, libical's reading and ours are the same. */
    if (by_has(r->by_set_pos)) {
        if (r->freq != ICAL_MONTHLY_RECURRENCE)
            return fail(err, errsz, "BYSETPOS is supported with "
                        "FREQ=MONTHLY only");
        if (by_count(r->by_hour, ICAL_BY_HOUR_SIZE) > 1 ||
            by_count(r->by_minute, ICAL_BY_MINUTE_SIZE) > 1)
            return fail(err, errsz, "BYSETPOS with several BYHOUR or "
                        "BYMINUTE values is not supported");
    }
    int monthly = r->freq == ICAL_MONTHLY_RECURRENCE ||
                  r->freq == ICAL_YEARLY_RECURRENCE;
    for (int i = 0; r->by_day[i] != RMAX; i++) {
        int pos = icalrecurrencetype_day_position(r->by_day[i]);
        if (!pos)
            continue;
        if (!monthly)
            return fail(err, errsz, "a BYDAY position (like 2MO) needs "
                        "FREQ=MONTHLY or YEARLY");
        if (pos > 5 || pos < -5)
            return fail(err, errsz, "BYDAY position %d: a month has at most "
                        "5 of each weekday", pos);
        if (by_has(r->by_month_day))
            return fail(err, errsz, "a BYDAY position (like 2MO) together "
                        "with BYMONTHDAY is not supported");
    }
    if (r->freq == ICAL_YEARLY_RECURRENCE && !by_has(r->by_month) &&
        (by_has(r->by_day) || by_has(r->by_month_day)))
        return fail(err, errsz, "FREQ=YEARLY with BYDAY or BYMONTHDAY needs "
                    "BYMONTH");
    if (r->count < 0 || r->count > lim->rrule_max_iterations)
        return fail(err, errsz, "COUNT=%d is above [windows] "
                    "rrule_max_iterations (%d)", r->count,
                    lim->rrule_max_iterations);
    return 0;
}

/* A floating (zone-less) DTSTART for the window's start: libical then
 * needs no zone, so the check is safe off the loop thread. */
static int anchor_fields(time_t from, const char *tz, int *y, int *m, int *d,
                         int *sod)
{
    if (!from) {
        *y = 2000, *m = 1, *d = 3, *sod = 0;   /* see recurring_eval */
        return 0;
    }
    return when_local_fields(from, tz, y, m, d, sod);
}

/* Walk the rule with libical from the anchor, cut at the search span: an
 * occurrence must exist, and a COUNT series must end, inside it. */
static int rule_probe(struct icalrecurrencetype r, int y, int m, int d,
                      int sod, const struct window_limits *lim, char *err,
                      size_t errsz)
{
    struct icaltimetype dt = icaltime_null_time();
    dt.year = y, dt.month = m, dt.day = d;
    dt.hour = sod / 3600, dt.minute = sod / 60 % 60, dt.second = sod % 60;
    struct icaltimetype cut = dt;
    int64_t span = rrule_search_span(&r, lim);
    icaltime_adjust(&cut, (int)(span / 86400), 0, 0, (int)(span % 86400));
    int has_until = !icaltime_is_null_time(r.until);
    int cut_bites = !has_until || icaltime_compare(r.until, cut) > 0;
    if (cut_bites)
        r.until = cut;
    icalrecur_iterator *it = icalrecur_iterator_new(r, dt);
    int n = 0;
    while (it && n <= lim->rrule_max_iterations) {
        struct icaltimetype o = icalrecur_iterator_next(it);
        if (icaltime_is_null_time(o))
            break;
        n++;
        if (!r.count || n >= r.count)
            break;
    }
    if (it)
        icalrecur_iterator_free(it);
    icalerror_clear_errno();
    if (!n && !cut_bites)
        return fail(err, errsz, "no occurrence before its UNTIL");
    if (!n)
        return fail(err, errsz, "no occurrence within %d %ss of its start "
                    "([windows] rrule_max_iterations)",
                    lim->rrule_max_iterations, freq_unit(r.freq));
    if (r.count && n < r.count && cut_bites)
        return fail(err, errsz, "COUNT=%d: its occurrences spread over more "
                    "than %d %ss ([windows] rrule_max_iterations)", r.count,
                    lim->rrule_max_iterations, freq_unit(r.freq));
    return 0;
}

int window_rrule_check(const char *rrule, time_t from, const char *tz,
                       int64_t duration, const struct window_limits *lim,
                       char *err, size_t errsz)
{
    const struct window_limits *l = lim ? lim : &g_lim;
    if (!rrule || !*rrule)
        return fail(err, errsz, "empty rule");
    struct icalrecurrencetype r = icalrecurrencetype_from_string(rrule);
    icalerror_clear_errno();
    if (rule_shape_ok(&r, l, err, errsz) != 0)
        return -1;
    if (duration <= 0 || duration > l->rrule_max_duration)
        return fail(err, errsz, "duration of %lld s: must be positive and at "
                    "most %lld s ([windows] rrule_max_duration)",
                    (long long)duration, (long long)l->rrule_max_duration);
    if (duration > rrule_search_span(&r, l))
        return fail(err, errsz, "duration of %lld s is longer than %d %ss "
                    "([windows] rrule_max_iterations)", (long long)duration,
                    l->rrule_max_iterations, freq_unit(r.freq));
    int y, m, d, sod;
    if (anchor_fields(from, tz, &y, &m, &d, &sod) != 0)
        return fail(err, errsz, "unknown time zone");
    /* Files repeat rules (and starts): a rule accepted once for the same
     * start, duration and limits is accepted again without the walk. */
    uint64_t key = fnv_str(FNV_OFFSET, rrule);
    int64_t parts[] = {y, m, d, sod, duration, l->rrule_max_iterations,
                       l->rrule_max_duration};
    key = fnv_bytes(key, parts, sizeof parts);
    static _Thread_local uint64_t accepted[256];
    if (accepted[key & 255] == key)
        return 0;
    if ((r.freq == ICAL_MONTHLY_RECURRENCE ||
         r.freq == ICAL_YEARLY_RECURRENCE) &&
        !periods_have_date(&r, y, m, d))
        return fail(err, errsz, "no date ever matches its BYMONTH, "
                    "BYMONTHDAY and BYDAY (like February 30)");
    if (rule_probe(r, y, m, d, sod, l, err, errsz) != 0)
        return -1;
    accepted[key & 255] = key;
    return 0;
}

