/* test_when.c - parsing, zones, DST rules, release alignment, formatting.
 * Every instant is given explicitly (local time + offset, computed with
 * timegm, which ignores TZ); the machine's clock and zone are never read. */
#include "untild/when.h"

#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BER "Europe/Berlin"
#define NYC "America/New_York"

/* Local civil time with a UTC offset in hours (+2 = CEST) -> instant. */
static time_t at(int y, int mo, int d, int h, int mi, int s, int off_h)
{
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return timegm(&tm) - (time_t)off_h * 3600;
}

static time_t parse(const char *s, const char *tz, time_t now)
{
    time_t t = 0;
    char err[128] = "";
    int rc = when_parse(s, tz, now, &t, err, sizeof err);
    ck_assert_msg(rc == 0, "when_parse(%s, %s): %s", s, tz ? tz : "-", err);
    return t;
}

static void parse_bad(const char *s, const char *tz)
{
    time_t t = 12345;
    char err[128] = "";
    ck_assert_msg(when_parse(s, tz, at(2027, 6, 15, 12, 0, 0, 0), &t, err,
                             sizeof err) == -1,
                  "accepted \"%s\"", s);
    ck_assert_msg(err[0] != '\0', "no message for \"%s\"", s);
    ck_assert_int_eq(t, 12345);
}

#define PARSE_EQ(s, tz, now, want) \
    ck_assert_int_eq(parse(s, tz, now), (want))

START_TEST(tz_valid)
{
    ck_assert(when_tz_valid(BER));
    ck_assert(when_tz_valid(NYC));
    ck_assert(when_tz_valid("UTC"));
    ck_assert(when_tz_valid(NULL));
    ck_assert(when_tz_valid(""));
    ck_assert(!when_tz_valid("Nope/Zone"));
    ck_assert(!when_tz_valid("../../etc/passwd"));
    ck_assert(!when_tz_valid("/usr/share/zoneinfo/Europe/Berlin"));
    ck_assert(!when_tz_valid("Europe/Berlin "));
    parse_bad("2027-07-01", "Nope/Zone");
}
END_TEST

START_TEST(absolute)
{
    time_t now = at(2027, 6, 15, 12, 0, 0, 0);
    PARSE_EQ("2027-07-01", BER, now, at(2027, 7, 1, 0, 0, 0, 2));
    PARSE_EQ("2027-01-15", BER, now, at(2027, 1, 15, 0, 0, 0, 1));
    PARSE_EQ("2027-07-01", NULL, now, at(2027, 7, 1, 0, 0, 0, 0));
    PARSE_EQ("2027-07-01", "", now, at(2027, 7, 1, 0, 0, 0, 0));
    PARSE_EQ("2027-07-01", "UTC", now, at(2027, 7, 1, 0, 0, 0, 0));
    PARSE_EQ("2027-07-01", NYC, now, at(2027, 7, 1, 0, 0, 0, -4));
    PARSE_EQ("2027-12-01", NYC, now, at(2027, 12, 1, 0, 0, 0, -5));
    PARSE_EQ("2027-07-01T17:00", BER, now, at(2027, 7, 1, 17, 0, 0, 2));
    PARSE_EQ("2027-07-01T17:00:59", BER, now, at(2027, 7, 1, 17, 0, 59, 2));
    PARSE_EQ("2027-07-01t17:00z", BER, now, at(2027, 7, 1, 17, 0, 0, 0));
    PARSE_EQ("2027-07-01T17:00Z", BER, now, at(2027, 7, 1, 17, 0, 0, 0));
    PARSE_EQ("2027-07-01T17:00-05:00", BER, now, at(2027, 7, 1, 17, 0, 0, -5));
    PARSE_EQ("2027-07-01T17:00:30+05:30", BER, now,
             at(2027, 7, 1, 17, 0, 30, 0) - 5 * 3600 - 1800);
    PARSE_EQ("2027-07-01T17:00+0200", NULL, now, at(2027, 7, 1, 17, 0, 0, 2));
    PARSE_EQ("2028-02-29", BER, now, at(2028, 2, 29, 0, 0, 0, 1));
    PARSE_EQ("@1790000000", BER, now, 1790000000);
    PARSE_EQ("@0", BER, now, 0);
    PARSE_EQ("never", BER, now, WHEN_NEVER);
    PARSE_EQ("NEVER", BER, now, WHEN_NEVER);
    /* far future: past libical's comfortable range, still right */
    PARSE_EQ("2999-07-01", BER, now, at(2999, 7, 1, 0, 0, 0, 2));
    PARSE_EQ("9999-07-01", BER, now, at(9999, 7, 1, 0, 0, 0, 2));
    /* one second apart across midnight */
    ck_assert_int_eq(parse("2027-07-02", BER, now) -
                         parse("2027-07-01T23:59:59", BER, now), 1);
}
END_TEST

START_TEST(absolute_bad)
{
    parse_bad("", BER);
    parse_bad("2027-02-29", BER);
    parse_bad("2027-13-01", BER);
    parse_bad("2027-00-10", BER);
    parse_bad("2027-04-31", BER);
    parse_bad("1969-12-31", BER);
    parse_bad("2027-7-1", BER);
    parse_bad("2027-07-01T24:00", BER);
    parse_bad("2027-07-01T12:60", BER);
    parse_bad("2027-07-01T12:00:60", BER);
    parse_bad("2027-07-01T17", BER);
    parse_bad("2027-07-01 17:00", BER);
    parse_bad("2027-07-01T17:00+25:00", BER);
    parse_bad("2027-07-01T17:00+02:", BER);
    parse_bad("2027-07-01T17:00x", BER);
    parse_bad("2027-07-01x", BER);
    parse_bad("@", BER);
    parse_bad("@-5", BER);
    parse_bad("@99999999999999999999", BER);
    parse_bad("nevermore", BER);
    parse_bad("soon", BER);
    parse_bad("0d", BER);
    parse_bad("3m", BER);
    parse_bad("d", BER);
    parse_bad("next-", BER);
    parse_bad("next-foo", BER);
    parse_bad("12", BER);
    parse_bad("99999999999days", BER);
    parse_bad("100000years", BER);
    parse_bad("a-very-long-string-that-is-no-time-at-all-anywhere", BER);
}
END_TEST

START_TEST(dst)
{
    time_t now = at(2027, 1, 1, 0, 0, 0, 0);
    /* spring forward 2027-03-28 02:00 CET -> 03:00 CEST: 02:30 does not
     * exist and becomes 03:30 CEST (the later instant, RFC 5545) */
    PARSE_EQ("2027-03-28T02:30", BER, now, at(2027, 3, 28, 3, 30, 0, 2));
    PARSE_EQ("2027-03-28T02:00", BER, now, at(2027, 3, 28, 3, 0, 0, 2));
    PARSE_EQ("2027-03-28T01:59:59", BER, now, at(2027, 3, 28, 1, 59, 59, 1));
    PARSE_EQ("2027-03-28T03:00", BER, now, at(2027, 3, 28, 3, 0, 0, 2));
    /* fall back 2027-10-31 03:00 CEST -> 02:00 CET: 02:30 happens twice,
     * the first (summer) one is meant */
    PARSE_EQ("2027-10-31T02:30", BER, now, at(2027, 10, 31, 2, 30, 0, 2));
    PARSE_EQ("2027-10-31T01:59:59", BER, now, at(2027, 10, 31, 1, 59, 59, 2));
    PARSE_EQ("2027-10-31T03:00", BER, now, at(2027, 10, 31, 3, 0, 0, 1));
    /* New York: 2027-03-14 02:30 gap, 2027-11-07 01:30 ambiguous */
    PARSE_EQ("2027-03-14T02:30", NYC, now, at(2027, 3, 14, 3, 30, 0, -4));
    PARSE_EQ("2027-11-07T01:30", NYC, now, at(2027, 11, 7, 1, 30, 0, -4));
    /* the dates around the changes are plain midnights */
    PARSE_EQ("2027-03-28", BER, now, at(2027, 3, 28, 0, 0, 0, 1));
    PARSE_EQ("2027-03-29", BER, now, at(2027, 3, 29, 0, 0, 0, 2));
    PARSE_EQ("2027-10-31", BER, now, at(2027, 10, 31, 0, 0, 0, 2));
    PARSE_EQ("2027-11-01", BER, now, at(2027, 11, 1, 0, 0, 0, 1));
}
END_TEST

START_TEST(natural_months)
{
    /* Tuesday 2027-06-15 14:00 in Berlin */
    time_t now = at(2027, 6, 15, 14, 0, 0, 2);
    PARSE_EQ("july", BER, now, at(2027, 7, 1, 0, 0, 0, 2));
    PARSE_EQ("JULY", BER, now, at(2027, 7, 1, 0, 0, 0, 2));
    PARSE_EQ("jul", BER, now, at(2027, 7, 1, 0, 0, 0, 2));
    PARSE_EQ("june", BER, now, at(2028, 6, 1, 0, 0, 0, 2));
    PARSE_EQ("january", BER, now, at(2028, 1, 1, 0, 0, 0, 1));
    PARSE_EQ("dec", BER, now, at(2027, 12, 1, 0, 0, 0, 1));
    PARSE_EQ("sept", BER, now, at(2027, 9, 1, 0, 0, 0, 2));
    PARSE_EQ("may", BER, now, at(2028, 5, 1, 0, 0, 0, 2));
    /* on July 1st itself, "july" is next year's */
    PARSE_EQ("july", BER, at(2027, 7, 1, 10, 0, 0, 2),
             at(2028, 7, 1, 0, 0, 0, 2));
    /* the day before, this year's */
    PARSE_EQ("july", BER, at(2027, 6, 30, 23, 59, 59, 2),
             at(2027, 7, 1, 0, 0, 0, 2));
    /* "today" is taken in tz: 2027-06-30T23:30Z is July 1st in Berlin */
    PARSE_EQ("july", BER, at(2027, 6, 30, 23, 30, 0, 0),
             at(2028, 7, 1, 0, 0, 0, 2));
    PARSE_EQ("july", "UTC", at(2027, 6, 30, 23, 30, 0, 0),
             at(2027, 7, 1, 0, 0, 0, 0));
}
END_TEST

START_TEST(natural_relative)
{
    time_t now = at(2027, 6, 15, 14, 0, 0, 2);   /* Tuesday */
    PARSE_EQ("tomorrow", BER, now, at(2027, 6, 16, 0, 0, 0, 2));
    PARSE_EQ("Tomorrow", BER, now, at(2027, 6, 16, 0, 0, 0, 2));
    PARSE_EQ("10d", BER, now, at(2027, 6, 25, 0, 0, 0, 2));
    PARSE_EQ("10days", BER, now, at(2027, 6, 25, 0, 0, 0, 2));
    PARSE_EQ("1day", BER, now, at(2027, 6, 16, 0, 0, 0, 2));
    PARSE_EQ("2w", BER, now, at(2027, 6, 29, 0, 0, 0, 2));
    PARSE_EQ("2weeks", BER, now, at(2027, 6, 29, 0, 0, 0, 2));
    PARSE_EQ("1week", BER, now, at(2027, 6, 22, 0, 0, 0, 2));
    PARSE_EQ("3months", BER, now, at(2027, 9, 15, 0, 0, 0, 2));
    PARSE_EQ("1month", BER, now, at(2027, 7, 15, 0, 0, 0, 2));
    PARSE_EQ("6months", BER, now, at(2027, 12, 15, 0, 0, 0, 1));
    PARSE_EQ("7months", BER, now, at(2028, 1, 15, 0, 0, 0, 1));
    PARSE_EQ("1y", BER, now, at(2028, 6, 15, 0, 0, 0, 2));
    PARSE_EQ("2years", BER, now, at(2029, 6, 15, 0, 0, 0, 2));
    /* clamped to the end of the month */
    PARSE_EQ("3months", BER, at(2027, 11, 30, 12, 0, 0, 1),
             at(2028, 2, 29, 0, 0, 0, 1));
    PARSE_EQ("1month", BER, at(2027, 1, 31, 12, 0, 0, 1),
             at(2027, 2, 28, 0, 0, 0, 1));
    PARSE_EQ("1year", BER, at(2028, 2, 29, 12, 0, 0, 1),
             at(2029, 2, 28, 0, 0, 0, 1));
    /* days across the DST change stay midnights */
    PARSE_EQ("2d", BER, at(2027, 3, 27, 12, 0, 0, 1),
             at(2027, 3, 29, 0, 0, 0, 2));
    /* late evening in New York is already tomorrow in UTC */
    PARSE_EQ("tomorrow", NYC, at(2027, 6, 15, 22, 0, 0, -4),
             at(2027, 6, 16, 0, 0, 0, -4));
    PARSE_EQ("tomorrow", "UTC", at(2027, 6, 15, 22, 0, 0, -4),
             at(2027, 6, 17, 0, 0, 0, 0));
}
END_TEST

START_TEST(natural_next)
{
    time_t tue = at(2027, 6, 15, 14, 0, 0, 2);
    time_t mon = at(2027, 6, 14, 8, 0, 0, 2);
    time_t sun = at(2027, 6, 20, 23, 59, 59, 2);
    PARSE_EQ("next-monday", BER, tue, at(2027, 6, 21, 0, 0, 0, 2));
    PARSE_EQ("next-mon", BER, tue, at(2027, 6, 21, 0, 0, 0, 2));
    PARSE_EQ("Next-Monday", BER, tue, at(2027, 6, 21, 0, 0, 0, 2));
    PARSE_EQ("next-tuesday", BER, tue, at(2027, 6, 22, 0, 0, 0, 2));
    PARSE_EQ("next-wed", BER, tue, at(2027, 6, 16, 0, 0, 0, 2));
    PARSE_EQ("next-thu", BER, tue, at(2027, 6, 17, 0, 0, 0, 2));
    PARSE_EQ("next-friday", BER, tue, at(2027, 6, 18, 0, 0, 0, 2));
    PARSE_EQ("next-sat", BER, tue, at(2027, 6, 19, 0, 0, 0, 2));
    PARSE_EQ("next-sunday", BER, tue, at(2027, 6, 20, 0, 0, 0, 2));
    PARSE_EQ("next-monday", BER, mon, at(2027, 6, 21, 0, 0, 0, 2));
    PARSE_EQ("next-monday", BER, sun, at(2027, 6, 21, 0, 0, 0, 2));
    PARSE_EQ("next-sunday", BER, sun, at(2027, 6, 27, 0, 0, 0, 2));
    PARSE_EQ("next-week", BER, tue, at(2027, 6, 21, 0, 0, 0, 2));
    PARSE_EQ("next-week", BER, mon, at(2027, 6, 21, 0, 0, 0, 2));
    PARSE_EQ("next-week", BER, sun, at(2027, 6, 21, 0, 0, 0, 2));
    /* one second later it is Monday in Berlin */
    PARSE_EQ("next-week", BER, sun + 1, at(2027, 6, 28, 0, 0, 0, 2));
    PARSE_EQ("next-month", BER, tue, at(2027, 7, 1, 0, 0, 0, 2));
    PARSE_EQ("next-month", BER, at(2027, 12, 31, 12, 0, 0, 1),
             at(2028, 1, 1, 0, 0, 0, 1));
}
END_TEST

START_TEST(release)
{
    time_t t0701 = parse("2027-07-01", BER, 0);   /* a Thursday */
    ck_assert_int_eq(when_align_release(t0701, BER, 9 * 60, 0),
                     at(2027, 7, 1, 9, 0, 0, 2));
    /* until Saturday -> Monday 09:00; with weekends: Saturday 09:00 */
    time_t sat = parse("2027-07-03", BER, 0);
    ck_assert_int_eq(when_align_release(sat, BER, 9 * 60, 0),
                     at(2027, 7, 5, 9, 0, 0, 2));
    ck_assert_int_eq(when_align_release(sat, BER, 9 * 60, 1),
                     at(2027, 7, 3, 9, 0, 0, 2));
    /* Friday after 09:00 -> Monday */
    ck_assert_int_eq(when_align_release(at(2027, 7, 2, 12, 0, 0, 2), BER,
                                        9 * 60, 0),
                     at(2027, 7, 5, 9, 0, 0, 2));
    /* boundaries: one second before, exactly, one second after */
    time_t nine = at(2027, 7, 1, 9, 0, 0, 2);
    ck_assert_int_eq(when_align_release(nine - 1, BER, 540, 0), nine);
    ck_assert_int_eq(when_align_release(nine, BER, 540, 0), nine);
    ck_assert_int_eq(when_align_release(nine + 1, BER, 540, 0),
                     at(2027, 7, 2, 9, 0, 0, 2));
    /* off, never */
    ck_assert_int_eq(when_align_release(nine + 1, BER, -1, 0), nine + 1);
    ck_assert_int_eq(when_align_release(WHEN_NEVER, BER, 540, 0), WHEN_NEVER);
    /* across DST: window until 2027-03-27 evening (Sat) -> Mon 09:00 CEST;
     * with weekends, Sunday 09:00 is already summer time */
    time_t sat_eve = at(2027, 3, 27, 20, 0, 0, 1);
    ck_assert_int_eq(when_align_release(sat_eve, BER, 540, 0),
                     at(2027, 3, 29, 9, 0, 0, 2));
    ck_assert_int_eq(when_align_release(sat_eve, BER, 540, 1),
                     at(2027, 3, 28, 9, 0, 0, 2));
    ck_assert_int_eq(when_align_release(at(2027, 10, 30, 20, 0, 0, 2), BER,
                                        540, 1),
                     at(2027, 10, 31, 9, 0, 0, 1));
    /* release time in the gap: 02:30 -> 03:30 CEST */
    ck_assert_int_eq(when_align_release(sat_eve, BER, 150, 1),
                     at(2027, 3, 28, 3, 30, 0, 2));
    /* release time in the overlap: first 02:30 (summer) if not before t,
     * else the second (winter) one, else the next day */
    time_t first = at(2027, 10, 31, 2, 30, 0, 2);
    time_t second = at(2027, 10, 31, 2, 30, 0, 1);
    ck_assert_int_eq(when_align_release(first - 60, BER, 150, 1), first);
    ck_assert_int_eq(when_align_release(first + 60, BER, 150, 1), second);
    ck_assert_int_eq(when_align_release(second + 1, BER, 150, 1),
                     at(2027, 11, 1, 2, 30, 0, 1));
    /* another zone: New York, and the same instant in UTC */
    time_t ny = parse("2027-07-01", NYC, 0);
    ck_assert_int_eq(when_align_release(ny, NYC, 540, 0),
                     at(2027, 7, 1, 9, 0, 0, -4));
    ck_assert_int_eq(when_align_release(ny, "UTC", 540, 0),
                     at(2027, 7, 1, 9, 0, 0, 0));
    ck_assert_int_eq(when_align_release(ny, NULL, 540, 0),
                     at(2027, 7, 1, 9, 0, 0, 0));
    /* New York Friday 20:00 = Saturday in UTC */
    ck_assert_int_eq(when_align_release(at(2027, 7, 2, 20, 0, 0, -4), NYC,
                                        540, 0),
                     at(2027, 7, 5, 9, 0, 0, -4));
    /* the cached variant agrees */
    struct when_cache c = {0};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(when_align_release_cached(&c, sat, BER, 540, 0),
                         at(2027, 7, 5, 9, 0, 0, 2));
    ck_assert_int_eq(when_align_release_cached(&c, ny, NYC, 540, 0),
                     at(2027, 7, 1, 9, 0, 0, -4));
}
END_TEST

START_TEST(format)
{
    char buf[64];
    ck_assert_str_eq(when_format(at(2027, 7, 1, 9, 0, 0, 2), BER, buf,
                                 sizeof buf),
                     "2027-07-01T09:00:00+02:00");
    ck_assert_str_eq(when_format(at(2027, 1, 1, 9, 0, 5, 1), BER, buf,
                                 sizeof buf),
                     "2027-01-01T09:00:05+01:00");
    ck_assert_str_eq(when_format(at(2027, 7, 1, 9, 0, 0, -4), NYC, buf,
                                 sizeof buf),
                     "2027-07-01T09:00:00-04:00");
    ck_assert_str_eq(when_format(at(2027, 7, 1, 9, 0, 0, 0), NULL, buf,
                                 sizeof buf),
                     "2027-07-01T09:00:00Z");
    ck_assert_str_eq(when_format(at(2027, 7, 1, 9, 0, 0, 0), "UTC", buf,
                                 sizeof buf),
                     "2027-07-01T09:00:00Z");
    ck_assert_str_eq(when_format(at(2027, 7, 1, 9, 0, 0, 0), "Asia/Kolkata",
                                 buf, sizeof buf),
                     "2027-07-01T14:30:00+05:30");
    ck_assert_str_eq(when_format(WHEN_NEVER, BER, buf, sizeof buf), "never");
    /* both sides of the autumn change */
    time_t t = parse("2027-10-31T02:30", BER, 0);
    ck_assert_str_eq(when_format(t, BER, buf, sizeof buf),
                     "2027-10-31T02:30:00+02:00");
    ck_assert_str_eq(when_format(t + 3600, BER, buf, sizeof buf),
                     "2027-10-31T02:30:00+01:00");
    ck_assert_str_eq(when_format(t - 1, BER, buf, sizeof buf),
                     "2027-10-31T02:29:59+02:00");
    /* round trip */
    time_t back = 0;
    ck_assert_int_eq(when_parse("2027-10-31T02:30:00+01:00", BER, 0, &back,
                                NULL, 0), 0);
    ck_assert_int_eq(back, t + 3600);
    /* truncation stays terminated */
    char small[8];
    ck_assert_str_eq(when_format(t, BER, small, sizeof small), "2027-10");
}
END_TEST

START_TEST(duration)
{
    int64_t s = -1;
    struct { const char *in; int64_t want; } ok[] = {
        {"P1D", 86400},        {"PT12H", 43200},     {"P1DT2H30M", 95400},
        {"P2W", 1209600},      {"PT90S", 90},        {"pt1h", 3600},
        {"PT1H30M15S", 5415},  {"P0D", 0},           {"90s", 90},
        {"30m", 1800},         {"12h", 43200},       {"5d", 432000},
        {"2w", 1209600},       {"1h30m", 5400},      {"1D", 86400},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ck_assert_msg(when_duration_parse(ok[i].in, &s) == 0, "%s", ok[i].in);
        ck_assert_int_eq(s, ok[i].want);
    }
    const char *bad[] = {"", "P", "PT", "P1", "P1M", "P1Y", "PT1D", "P1H",
                         "90", "s", "1x", "1m1h", "1h1h", "-1h", "P1DT",
                         "P99999999999999999999D", "9999999999999999w",
                         "1h ", " 1h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(when_duration_parse(bad[i], &s) == -1, "accepted %s",
                      bad[i]);
}
END_TEST

START_TEST(clock_times)
{
    int m = 0;
    ck_assert_int_eq(when_clock_parse("09:00", &m), 0);
    ck_assert_int_eq(m, 540);
    ck_assert_int_eq(when_clock_parse("9:05", &m), 0);
    ck_assert_int_eq(m, 545);
    ck_assert_int_eq(when_clock_parse("00:00", &m), 0);
    ck_assert_int_eq(m, 0);
    ck_assert_int_eq(when_clock_parse("23:59", &m), 0);
    ck_assert_int_eq(m, 1439);
    ck_assert_int_eq(when_clock_parse("off", &m), 0);
    ck_assert_int_eq(m, -1);
    ck_assert_int_eq(when_clock_parse("OFF", &m), 0);
    ck_assert_int_eq(m, -1);
    const char *bad[] = {"", "24:00", "12:60", "9", "09:0", "09:000",
                         "0900", "ab:cd", "-1:00", "on"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(when_clock_parse(bad[i], &m) == -1, "accepted %s",
                      bad[i]);
}
END_TEST

START_TEST(cached)
{
    struct when_cache c = {0};
    time_t now = at(2027, 6, 15, 14, 0, 0, 2), t = 0;
    const char *zones[] = {BER, BER, NYC, NULL, "", BER, "UTC"};
    for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++) {
        ck_assert_int_eq(when_parse_cached(&c, "2027-07-01", zones[i], now,
                                           &t, NULL, 0), 0);
        ck_assert_int_eq(t, parse("2027-07-01", zones[i], now));
        ck_assert_int_eq(when_parse_cached(&c, "july", zones[i], now, &t,
                                           NULL, 0), 0);
        ck_assert_int_eq(t, parse("july", zones[i], now));
    }
    char err[64];
    ck_assert_int_eq(when_parse_cached(&c, "2027-07-01", "Nope/Zone", now,
                                       &t, err, sizeof err), -1);
    ck_assert_int_eq(when_parse_cached(&c, "2027-07-01", BER, now, &t, err,
                                       sizeof err), 0);
    ck_assert_int_eq(t, at(2027, 7, 1, 0, 0, 0, 2));
}
END_TEST

/* Off the loop thread, zone names come only from the shared table: a name
 * the loop has not resolved fails and is noted; once the loop resolved it,
 * the thread's answers equal the loop's. */
struct offloop_run {
    const char *tz;
    int rc;
    time_t t;
    char err[96];
    char missing[4][64];
    size_t nmissing;
};

static void *offloop_thread(void *arg)
{
    struct offloop_run *r = arg;
    when_thread_offloop();
    r->rc = when_parse("2027-07-01T09:00", r->tz, 0, &r->t, r->err, sizeof r->err);
    r->nmissing = when_offloop_missing(r->missing, 4);
    return NULL;
}

static void run_offloop(struct offloop_run *r)
{
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, offloop_thread, r), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
}

START_TEST(offloop_zones)
{
    struct offloop_run r = {.tz = "Pacific/Chatham"};
    run_offloop(&r);
    ck_assert_int_eq(r.rc, -1);
    ck_assert_ptr_nonnull(strstr(r.err, "not resolved yet"));
    ck_assert_uint_eq(r.nmissing, 1);
    ck_assert_str_eq(r.missing[0], "Pacific/Chatham");
    /* the loop resolves it; the thread's answer is the loop's */
    ck_assert_int_eq(when_zone_prepare("Pacific/Chatham"), 0);
    struct offloop_run r2 = {.tz = "Pacific/Chatham"};
    run_offloop(&r2);
    ck_assert_int_eq(r2.rc, 0);
    ck_assert_uint_eq(r2.nmissing, 0);
    ck_assert_int_eq(r2.t, parse("2027-07-01T09:00", "Pacific/Chatham", 0));
    /* an unknown name, once the loop looked it up, is plainly unknown */
    ck_assert_int_eq(when_zone_prepare("Nope/Zone2"), -1);
    struct offloop_run r3 = {.tz = "Nope/Zone2"};
    run_offloop(&r3);
    ck_assert_int_eq(r3.rc, -1);
    ck_assert_ptr_nonnull(strstr(r3.err, "unknown time zone"));
    ck_assert_uint_eq(r3.nmissing, 0);
    /* UTC needs no table */
    struct offloop_run r4 = {.tz = NULL};
    run_offloop(&r4);
    ck_assert_int_eq(r4.rc, 0);
    ck_assert_int_eq(r4.t, 1814432400);
}
END_TEST

static Suite *when_suite(void)
{
    Suite *s = suite_create("when");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, tz_valid);
    tcase_add_test(tc, absolute);
    tcase_add_test(tc, absolute_bad);
    tcase_add_test(tc, dst);
    tcase_add_test(tc, natural_months);
    tcase_add_test(tc, natural_relative);
    tcase_add_test(tc, natural_next);
    tcase_add_test(tc, release);
    tcase_add_test(tc, format);
    tcase_add_test(tc, duration);
    tcase_add_test(tc, clock_times);
    tcase_add_test(tc, cached);
    tcase_add_test(tc, offloop_zones);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* Nothing here may depend on the machine's zone; make sure of it. */
    setenv("TZ", "Pacific/Chatham", 1);
    tzset();
    SRunner *sr = srunner_create(when_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
