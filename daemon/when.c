/* when.c - times as users write them, in their time zones.
 *
 * Windows end "2027-07-01" or "july" or "3months"; held mail is released at
 * the first release time at or after a window's end, in the window's zone.
 * This module turns those words into instants, aligns release times and
 * formats instants back (RFC 3339 with the zone's offset).
 *
 * Calendar arithmetic is done here on day numbers (proleptic Gregorian);
 * libical is asked one thing only: the UTC offset of a zone at a UTC
 * instant. Local -> UTC is built on that, with untild's (RFC 5545's) rules,
 * not libical's: a local time in a spring-forward gap is read with the
 * offset before the gap (02:30 -> 03:30 summer time, the later instant), an
 * ambiguous autumn time is the first occurrence (summer time). libical
 * itself maps them the other way (docs/HACKING.md), which is why we don't use
 * icaltime_as_timet_with_zone.
 *
 * Wall-clock time is never read here: "now" is passed in.
 * libical's zone lookup is not thread-safe: names are resolved on the loop
 * thread into a shared table; other threads only read it (see zone_lookup).
 */
#include "untild/when.h"

#include <ctype.h>
#include <libical/ical.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define DAY 86400
#define YEAR_MIN 1970
#define YEAR_MAX 9999
/* 400 Gregorian years are exactly 20871 weeks: rules repeat with them. */
#define ERA_DAYS 146097LL
/* libical's rule expansion is good well past 2037 but not to 9999:
 * instants after 2400 are folded back by whole eras. */
#define FOLD_AFTER ((time_t)13569465600LL)   /* 2400-01-01T00:00:00Z */

/* ---- calendar arithmetic (H. Hinnant's algorithms) ---- */

static long long days_from_civil(long long y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * ERA_DAYS + doe - 719468;
}

static void civil_from_days(long long z, long long *y, int *m, int *d)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / ERA_DAYS;
    long long doe = z - era * ERA_DAYS;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static long long floor_div(long long a, long long b)
{
    long long q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* 0 = Sunday .. 6 = Saturday; day 0 (1970-01-01) was a Thursday. */
static int weekday(long long days)
{
    return (int)(((days % 7) + 11) % 7);
}

static int is_leap(long long y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(long long y, int m)
{
    static const int md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : md[m - 1];
}

/* ---- zones ---- */

/* Zones already resolved, shared by every thread. libical's lookup by name
 * is not thread-safe (it walks the zone array while another thread's load
 * may free a zone's location string, and appends zones missing from
 * zone.tab), but a zone that is loaded can be used from any thread (its
 * changes array has libical's own mutex). So only the libical thread (the
 * loop) resolves names; it loads each zone before publishing it here, and
 * threads marked with when_thread_offloop() only read this table. */
/* Room for every name under /usr/share/zoneinfo (about 1,800 with the
 * posix/ and right/ copies): known names are all a user can add. */
#define ZTAB_SIZE 4096
struct zslot {
    char name[64];
    icaltimezone *zone;     /* NULL: UTC */
    int state;              /* 0 empty, 1 valid, -1 unknown name */
};
static struct zslot ztab[ZTAB_SIZE];
static pthread_mutex_t ztab_mu = PTHREAD_MUTEX_INITIALIZER;

static _Thread_local int offloop;
static _Thread_local char missing[WHEN_MISSING_MAX][64];
static _Thread_local size_t nmissing;

static size_t zhash(const char *s)
{
    size_t h = 5381;
    for (; *s; s++)
        h = h * 33 + (unsigned char)*s;
    return h & (ZTAB_SIZE - 1);
}

/* The slot holding name, or the empty slot where it would go (NULL: full). */
static struct zslot *zslot_find(const char *name)
{
    for (size_t i = 0, j = zhash(name); i < ZTAB_SIZE;
         i++, j = (j + 1) & (ZTAB_SIZE - 1))
        if (!ztab[j].state || strcmp(ztab[j].name, name) == 0)
            return &ztab[j];
    return NULL;
}

/* Publish name (state 1: zone z; -1: unknown). Unknown names are kept
 * only for when_zone_prepare (names from the admin's window files), so
 * users looking up made-up names cannot fill the table. */
static void zslot_put(const char *name, icaltimezone *z, int state)
{
    pthread_mutex_lock(&ztab_mu);
    struct zslot *s = zslot_find(name);
    if (s && !s->state) {
        snprintf(s->name, sizeof s->name, "%s", name);
        s->zone = z;
        s->state = state;
    }
    pthread_mutex_unlock(&ztab_mu);
}

static void note_missing(const char *name)
{
    for (size_t i = 0; i < nmissing; i++)
        if (strcmp(missing[i], name) == 0)
            return;
    if (nmissing < WHEN_MISSING_MAX)
        snprintf(missing[nmissing++], sizeof missing[0], "%s", name);
}

/* libical's lookup, then a first conversion so the zone is loaded before
 * another thread can see it (loop thread only). */
static int zone_resolve_ical(const char *tz, icaltimezone **zone)
{
    icaltimezone *z = icaltimezone_get_builtin_timezone(tz);
    if (!z)
        return -1;
    if (z == icaltimezone_get_utc_timezone()) {
        *zone = NULL;
        return 0;
    }
    struct icaltimetype tt = icaltime_from_timet_with_zone(1893456000, 0, NULL);
    int dst = 0;
    (void)icaltimezone_get_utc_offset_of_utc_time(z, &tt, &dst);
    *zone = z;
    return 0;
}

/* Resolve a zone name. *zone = NULL means UTC (no libical call needed).
 * Names are checked before libical sees them: they become file names.
 * Returns 0, -1 (unknown), or -2 off the loop for a name not resolved yet
 * (noted for when_offloop_missing). */
static int zone_lookup(const char *tz, icaltimezone **zone)
{
    *zone = NULL;
    if (!tz || !*tz)
        return 0;
    size_t n = strlen(tz);
    if (n >= sizeof ((struct when_cache *)0)->tz || tz[0] == '/' ||
        strstr(tz, ".."))
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = tz[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '/' || c == '_' || c == '-' ||
              c == '+'))
            return -1;
    }
    pthread_mutex_lock(&ztab_mu);
    struct zslot *s = zslot_find(tz);
    int state = s ? s->state : 0;
    icaltimezone *z = s ? s->zone : NULL;
    pthread_mutex_unlock(&ztab_mu);
    if (state) {
        *zone = z;
        return state > 0 ? 0 : -1;
    }
    if (offloop) {
        note_missing(tz);
        return -2;
    }
    int rc = zone_resolve_ical(tz, &z);
    if (rc == 0)
        zslot_put(tz, z, 1);
    *zone = rc == 0 ? z : NULL;
    return rc;
}

void when_thread_offloop(void)
{
    offloop = 1;
    nmissing = 0;
}

size_t when_offloop_missing(char names[][64], size_t max)
{
    size_t n = nmissing < max ? nmissing : max;
    for (size_t i = 0; i < n; i++)
        memcpy(names[i], missing[i], sizeof missing[i]);
    return nmissing;
}

int when_zone_prepare(const char *tz)
{
    icaltimezone *z;
    if (zone_lookup(tz, &z) == 0)
        return 0;
    if (tz && strlen(tz) < sizeof ztab[0].name)
        zslot_put(tz, NULL, -1);
    return -1;
}

static int zone_get(struct when_cache *c, const char *tz, icaltimezone **zone)
{
    const char *name = tz ? tz : "";
    if (c && c->valid && strcmp(c->tz, name) == 0) {
        *zone = c->zone;
        return 0;
    }
    int rc = zone_lookup(tz, zone);
    if (rc < 0)
        return rc;
    if (c) {
        /* zone_lookup refused anything that does not fit */
        snprintf(c->tz, sizeof c->tz, "%s", name);
        c->zone = *zone;
        c->valid = 1;
    }
    return 0;
}

/* UTC offset (seconds east) of zone at instant t. */
static int zone_offset(icaltimezone *zone, time_t t)
{
    if (!zone)
        return 0;
    if (t > FOLD_AFTER) {
        long long eras = (t - FOLD_AFTER) / (ERA_DAYS * DAY) + 1;
        t -= (time_t)(eras * ERA_DAYS * DAY);
    }
    long long days = floor_div(t, DAY), secs = t - days * DAY;
    long long y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    struct icaltimetype tt = icaltime_null_time();
    tt.year = (int)y;
    tt.month = m;
    tt.day = d;
    tt.hour = (int)(secs / 3600);
    tt.minute = (int)(secs / 60 % 60);
    tt.second = (int)(secs % 60);
    int is_dst = 0;
    return icaltimezone_get_utc_offset_of_utc_time(zone, &tt, &is_dst);
}

/* Local wall time L (seconds since the epoch, as if it were UTC) to UTC.
 * Returns the number of instants that show L (1 or 2; 2 in the autumn
 * overlap, first earlier); for a gap (0) *first is L read with the offset
 * before the gap, i.e. the later instant. Assumes zones change offset at
 * most once within two days, true of every real zone. */
static int local_to_utc(icaltimezone *zone, long long L, time_t *first,
                        time_t *second)
{
    int oa = zone_offset(zone, (time_t)(L - DAY));
    int ob = zone_offset(zone, (time_t)(L + DAY));
    if (oa == ob) {
        *first = *second = (time_t)(L - oa);
        return 1;
    }
    time_t ta = (time_t)(L - oa), tb = (time_t)(L - ob);
    int va = zone_offset(zone, ta) == oa;
    int vb = zone_offset(zone, tb) == ob;
    if (va && vb) {
        *first = ta < tb ? ta : tb;
        *second = ta < tb ? tb : ta;
        return 2;
    }
    if (va || vb) {
        *first = *second = va ? ta : tb;
        return 1;
    }
    *first = *second = ta;
    return 0;
}

static time_t local_instant(icaltimezone *zone, long long days, long long sod)
{
    time_t first, second;
    (void)local_to_utc(zone, days * DAY + sod, &first, &second);
    return first;
}

/* Local day number and second of day of instant t. */
static void local_day(icaltimezone *zone, time_t t, long long *days,
                      long long *sod)
{
    long long l = (long long)t + zone_offset(zone, t);
    *days = floor_div(l, DAY);
    *sod = l - *days * DAY;
}

int when_local_to_utc(int y, int mo, int d, int sod, const char *tz, time_t *out)
{
    icaltimezone *zone;
    int rc = zone_lookup(tz, &zone);
    if (rc < 0)
        return rc;
    *out = local_instant(zone, days_from_civil(y, mo, d), sod);
    return 0;
}

int when_local_fields(time_t t, const char *tz, int *y, int *mo, int *d,
                      int *sod)
{
    icaltimezone *zone;
    if (zone_lookup(tz, &zone) < 0)
        return -1;
    long long days, s, yy;
    local_day(zone, t, &days, &s);
    civil_from_days(days, &yy, mo, d);
    *y = (int)yy;
    *sod = (int)s;
    return 0;
}

int when_tz_valid(const char *tz)
{
    icaltimezone *z;
    return zone_lookup(tz, &z) == 0;
}

/* ---- parsing ---- */

/* Exactly n digits at s -> *v. */
static int digits(const char *s, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return 0;
}

/* Explicit offset "z", "+HH:MM", "+HHMM", "+HH" -> seconds east. */
static int parse_offset(const char *s, int *off)
{
    if (s[0] == 'z' && s[1] == '\0') {
        *off = 0;
        return 0;
    }
    if (s[0] != '+' && s[0] != '-')
        return -1;
    int h, m = 0;
    if (digits(s + 1, 2, &h) < 0)
        return -1;
    const char *p = s + 3;
    if (*p == ':')
        p++;
    if (*p) {
        if (digits(p, 2, &m) < 0 || p[2] != '\0')
            return -1;
    } else if (p != s + 3) {
        return -1;   /* "+02:" */
    }
    if (h > 23 || m > 59)
        return -1;
    *off = (h * 3600 + m * 60) * (s[0] == '-' ? -1 : 1);
    return 0;
}

static const char *const month_names[12][3] = {
    {"january", "jan", NULL},   {"february", "feb", NULL},
    {"march", "mar", NULL},     {"april", "apr", NULL},
    {"may", NULL, NULL},        {"june", "jun", NULL},
    {"july", "jul", NULL},      {"august", "aug", NULL},
    {"september", "sep", "sept"}, {"october", "oct", NULL},
    {"november", "nov", NULL},  {"december", "dec", NULL},
};

/* index 0 = Sunday, matching weekday() */
static const char *const day_names[7][3] = {
    {"sunday", "sun", NULL},      {"monday", "mon", NULL},
    {"tuesday", "tue", "tues"},   {"wednesday", "wed", NULL},
    {"thursday", "thu", "thurs"}, {"friday", "fri", NULL},
    {"saturday", "sat", NULL},
};

static int name_index(const char *s, const char *const (*tab)[3], int n)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 3 && tab[i][j]; j++)
            if (strcmp(s, tab[i][j]) == 0)
                return i;
    return -1;
}

int when_weekday_name(const char *s)
{
    char low[16];
    size_t n = strlen(s);
    if (n >= sizeof low)
        return -1;
    for (size_t i = 0; i <= n; i++)
        low[i] = (char)tolower((unsigned char)s[i]);
    return name_index(low, day_names, 7);
}

enum unit { U_DAY, U_WEEK, U_MONTH, U_YEAR };

/* "3months", "10d", "2w", "1y" -> count and unit. */
static int parse_relative(const char *s, long long *n, enum unit *u)
{
    static const struct {
        const char *name;
        enum unit u;
    } units[] = {
        {"d", U_DAY},     {"day", U_DAY},       {"days", U_DAY},
        {"w", U_WEEK},    {"week", U_WEEK},     {"weeks", U_WEEK},
        {"month", U_MONTH}, {"months", U_MONTH},
        {"y", U_YEAR},    {"year", U_YEAR},     {"years", U_YEAR},
    };
    long long v = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        if (v > 10000000)
            return -1;
        p++;
    }
    if (p == s || v < 1)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(p, units[i].name) == 0) {
            *n = v;
            *u = units[i].u;
            return 0;
        }
    return -1;
}

/* Natural forms -> a local day number (00:00 of it is the answer). */
static int parse_natural(const char *s, long long today, long long *day)
{
    long long y;
    int m, d;
    civil_from_days(today, &y, &m, &d);
    int wd = weekday(today);
    long long n;
    enum unit u;
    int i;

    if (strcmp(s, "tomorrow") == 0) {
        *day = today + 1;
        return 0;
    }
    if (strcmp(s, "next-week") == 0) {
        *day = today + ((1 - wd + 6) % 7 + 1);   /* next Monday, 1..7 */
        return 0;
    }
    if (strcmp(s, "next-month") == 0) {
        *day = m == 12 ? days_from_civil(y + 1, 1, 1)
                       : days_from_civil(y, m + 1, 1);
        return 0;
    }
    if (strncmp(s, "next-", 5) == 0 &&
        (i = name_index(s + 5, day_names, 7)) >= 0) {
        *day = today + ((i - wd + 6) % 7 + 1);   /* strictly after today */
        return 0;
    }
    if ((i = name_index(s, month_names, 12)) >= 0) {
        /* the first such 1st strictly after today */
        long long cand = days_from_civil(y, i + 1, 1);
        *day = cand > today ? cand : days_from_civil(y + 1, i + 1, 1);
        return 0;
    }
    if (parse_relative(s, &n, &u) == 0) {
        if (u == U_DAY || u == U_WEEK) {
            long long add = u == U_WEEK ? n * 7 : n;
            if (add > 3700000)
                return -1;
            *day = today + add;
            return 0;
        }
        long long months = u == U_YEAR ? n * 12 : n;
        long long total = y * 12 + (m - 1) + months;
        long long ny = total / 12;
        int nm = (int)(total % 12) + 1;
        if (ny > YEAR_MAX)
            return -1;
        int md = month_days(ny, nm);
        *day = days_from_civil(ny, nm, d < md ? d : md);
        return 0;
    }
    return -1;
}

static int fail(char *err, size_t errsz, const char *msg, const char *s)
{
    if (err && errsz)
        snprintf(err, errsz, "%s: \"%.40s\"", msg, s);
    return -1;
}

int when_parse_cached(struct when_cache *c, const char *s, const char *tz,
                      time_t now, time_t *out, char *err, size_t errsz)
{
    char buf[48];
    size_t n;

    if (!s || !out)
        return fail(err, errsz, "no time", "");
    n = strlen(s);
    if (n == 0 || n >= sizeof buf)
        return fail(err, errsz, "bad time", s);
    for (size_t i = 0; i <= n; i++)
        buf[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);

    icaltimezone *zone;
    int zr = zone_get(c, tz, &zone);
    if (zr == -2)
        return fail(err, errsz, "time zone not resolved yet", tz);
    if (zr < 0)
        return fail(err, errsz, "unknown time zone", tz);

    /* YYYY-MM-DD[Thh:mm[:ss][offset]] */
    int y, mo, d;
    if (n >= 10 && digits(buf, 4, &y) == 0 && buf[4] == '-' &&
        digits(buf + 5, 2, &mo) == 0 && buf[7] == '-' &&
        digits(buf + 8, 2, &d) == 0) {
        if (y < YEAR_MIN || y > YEAR_MAX || mo < 1 || mo > 12 || d < 1 ||
            d > month_days(y, mo))
            return fail(err, errsz, "no such date", s);
        long long days = days_from_civil(y, mo, d);
        if (n == 10) {
            *out = local_instant(zone, days, 0);
            return 0;
        }
        int h, mi, sec = 0;
        const char *p = buf + 11;
        if (buf[10] != 't' || digits(p, 2, &h) < 0 || p[2] != ':' ||
            digits(p + 3, 2, &mi) < 0)
            return fail(err, errsz, "bad time", s);
        p += 5;
        if (*p == ':') {
            if (digits(p + 1, 2, &sec) < 0)
                return fail(err, errsz, "bad time", s);
            p += 3;
        }
        if (h > 23 || mi > 59 || sec > 59)
            return fail(err, errsz, "no such time of day", s);
        long long sod = h * 3600LL + mi * 60 + sec;
        if (*p == '\0') {
            *out = local_instant(zone, days, sod);
            return 0;
        }
        int off;
        if (parse_offset(p, &off) < 0)
            return fail(err, errsz, "bad UTC offset", s);
        *out = (time_t)(days * DAY + sod - off);
        return 0;
    }

    if (strcmp(buf, "never") == 0) {
        *out = WHEN_NEVER;
        return 0;
    }
    if (buf[0] == '@') {
        long long v = 0;
        const char *p = buf + 1;
        if (!*p)
            return fail(err, errsz, "bad Unix time", s);
        for (; *p; p++) {
            if (*p < '0' || *p > '9' || v > 253402300799LL / 10)
                return fail(err, errsz, "bad Unix time", s);
            v = v * 10 + (*p - '0');
        }
        if (v > 253402300799LL)   /* 9999-12-31T23:59:59Z */
            return fail(err, errsz, "bad Unix time", s);
        *out = (time_t)v;
        return 0;
    }

    long long today, sod, day;
    local_day(zone, now, &today, &sod);
    if (parse_natural(buf, today, &day) < 0)
        return fail(err, errsz, "unknown time", s);
    long long yy;
    int mm, dd;
    civil_from_days(day, &yy, &mm, &dd);
    if (yy > YEAR_MAX)
        return fail(err, errsz, "time too far ahead", s);
    *out = local_instant(zone, day, 0);
    return 0;
}

int when_parse(const char *s, const char *tz, time_t now, time_t *out,
               char *err, size_t errsz)
{
    return when_parse_cached(NULL, s, tz, now, out, err, errsz);
}

/* ---- durations and clock times ---- */

static int add_part(int64_t *acc, int64_t v, int64_t unit)
{
    int64_t x;
    if (__builtin_mul_overflow(v, unit, &x) ||
        __builtin_add_overflow(*acc, x, acc))
        return -1;
    return 0;
}

/* Number at *p (at least one digit). */
static int number(const char **p, int64_t *v)
{
    const char *s = *p;
    int64_t x = 0;
    while (*s >= '0' && *s <= '9') {
        if (x > (INT64_MAX - 9) / 10)
            return -1;
        x = x * 10 + (*s - '0');
        s++;
    }
    if (s == *p)
        return -1;
    *p = s;
    *v = x;
    return 0;
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

int when_duration_parse(const char *s, int64_t *secs)
{
    int64_t acc = 0, v;
    const char *p = s;
    if (!s || !secs || !*s)
        return -1;

    if (lower(*p) == 'p') {
        /* ISO 8601 / RFC 5545: P[nW][nD][T[nH][nM][nS]]; no Y or M (their
         * length depends on the calendar). */
        static const struct { char c; int64_t unit; } date_u[] = {
            {'w', 7 * DAY}, {'d', DAY}}, time_u[] = {
            {'h', 3600}, {'m', 60}, {'s', 1}};
        int parts = 0;
        size_t k = 0;
        p++;
        while (*p && lower(*p) != 't') {
            if (number(&p, &v) < 0)
                return -1;
            while (k < 2 && date_u[k].c != lower(*p))
                k++;
            if (k == 2 || add_part(&acc, v, date_u[k].unit) < 0)
                return -1;
            k++;
            p++;
            parts++;
        }
        if (lower(*p) == 't') {
            int tparts = 0;
            p++;
            k = 0;
            while (*p) {
                if (number(&p, &v) < 0)
                    return -1;
                while (k < 3 && time_u[k].c != lower(*p))
                    k++;
                if (k == 3 || add_part(&acc, v, time_u[k].unit) < 0)
                    return -1;
                k++;
                p++;
                tparts++;
            }
            if (tparts == 0)
                return -1;
            parts += tparts;
        }
        if (parts == 0)
            return -1;
        *secs = acc;
        return 0;
    }

    /* Short forms, largest unit first, each at most once: 90s, 1h30m. */
    static const struct { char c; int64_t unit; } short_u[] = {
        {'w', 7 * DAY}, {'d', DAY}, {'h', 3600}, {'m', 60}, {'s', 1}};
    size_t k = 0;
    while (*p) {
        if (number(&p, &v) < 0)
            return -1;
        while (k < 5 && short_u[k].c != lower(*p))
            k++;
        if (k == 5 || add_part(&acc, v, short_u[k].unit) < 0)
            return -1;
        k++;
        p++;
    }
    *secs = acc;
    return 0;
}

int when_clock_parse(const char *s, int *minutes)
{
    if (!s || !minutes)
        return -1;
    if (strcasecmp(s, "off") == 0) {
        *minutes = -1;
        return 0;
    }
    int h, m;
    const char *p = s;
    if (digits(p, 2, &h) == 0 && p[2] == ':')
        p += 3;
    else if (digits(p, 1, &h) == 0 && p[1] == ':')
        p += 2;
    else
        return -1;
    if (digits(p, 2, &m) < 0 || p[2] != '\0' || h > 23 || m > 59)
        return -1;
    *minutes = h * 60 + m;
    return 0;
}

/* ---- release alignment and formatting ---- */

time_t when_align_release_cached(struct when_cache *c, time_t t,
                                 const char *tz, int release_min,
                                 int weekends)
{
    if (t == WHEN_NEVER || release_min < 0 || release_min >= 24 * 60)
        return t;
    icaltimezone *zone;
    if (zone_get(c, tz, &zone) < 0)
        zone = NULL;   /* an unknown zone was refused at load; be safe */
    long long day, sod;
    local_day(zone, t, &day, &sod);
    if (day > days_from_civil(YEAR_MAX, 12, 31))
        return t;
    /* The release on t's own local day may already have passed; in the
     * autumn overlap either occurrence that is not before t counts. */
    for (long long dd = day; dd < day + 10; dd++) {
        int wd = weekday(dd);
        if (!weekends && (wd == 0 || wd == 6))
            continue;
        time_t first, second;
        (void)local_to_utc(zone, dd * DAY + release_min * 60LL, &first,
                           &second);
        if (first >= t)
            return first;
        if (second >= t)
            return second;
    }
    return t;   /* not reached: some weekday within 10 days is after t */
}

time_t when_align_release(time_t t, const char *tz, int release_min,
                          int weekends)
{
    return when_align_release_cached(NULL, t, tz, release_min, weekends);
}

time_t when_add_days(time_t t, long days, const char *tz)
{
    if (t == WHEN_NEVER)
        return t;
    icaltimezone *zone;
    if (zone_lookup(tz, &zone) < 0)
        zone = NULL;
    long long day, sod;
    local_day(zone, t, &day, &sod);
    if (day + days > days_from_civil(YEAR_MAX, 12, 31))
        return WHEN_NEVER;
    /* the same wall-clock time; in a spring gap, the later valid instant */
    return local_instant(zone, day + days, sod);
}

char *when_format(time_t t, const char *tz, char *buf, size_t bufsz)
{
    if (!buf || bufsz == 0)
        return buf;
    if (t == WHEN_NEVER) {
        snprintf(buf, bufsz, "never");
        return buf;
    }
    icaltimezone *zone;
    if (zone_lookup(tz, &zone) < 0)
        zone = NULL;
    int off = zone_offset(zone, t);
    long long l = (long long)t + off;
    long long days = floor_div(l, DAY), sod = l - days * DAY, y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    char zbuf[8];
    if (!zone) {
        snprintf(zbuf, sizeof zbuf, "Z");
    } else {
        int a = off < 0 ? -off : off;
        snprintf(zbuf, sizeof zbuf, "%c%02d:%02d", off < 0 ? '-' : '+',
                 a / 3600 % 100, a / 60 % 60);
    }
    snprintf(buf, bufsz, "%04lld-%02d-%02dT%02lld:%02lld:%02lld%s", y, m, d,
             sod / 3600, sod / 60 % 60, sod % 60, zbuf);
    return buf;
}
