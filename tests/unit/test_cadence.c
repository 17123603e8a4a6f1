/* test_cadence.c - the contact-frequency rule arithmetic (cadence.c):
 * spans and caps as written, gap and cap together, scope keys, exempt
 * lists, and days across zone (DST) boundaries. Times UTC (timegm). */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "untild/cadence.h"
#include "untild/when.h"

static time_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi };
    return timegm(&tm);
}

static struct cadence_rule rule(const char *gap, const char *max)
{
    struct cadence_rule r;
    memset(&r, 0, sizeof r);
    r.action = ACTION_HOLD;
    if (gap)
        ck_assert_int_eq(cadence_span_parse(gap, &r.min_gap), 0);
    if (max)
        ck_assert_int_eq(cadence_max_parse(max, &r.max, &r.per), 0);
    return r;
}

START_TEST(spans_and_caps)
{
    struct cadence_span s;
    int n;
    ck_assert_int_eq(cadence_span_parse("7d", &s), 0);
    ck_assert_int_eq(s.days, 7);
    ck_assert_int_eq(s.secs, 0);
    ck_assert_int_eq(cadence_span_parse("2w", &s), 0);
    ck_assert_int_eq(s.days, 14);
    ck_assert_int_eq(cadence_span_parse("P3D", &s), 0);
    ck_assert_int_eq(s.days, 3);
    ck_assert_int_eq(cadence_span_parse("12h", &s), 0);
    ck_assert_int_eq(s.secs, 12 * 3600);
    ck_assert_int_eq(cadence_span_parse("PT90M", &s), 0);
    ck_assert_int_eq(s.secs, 90 * 60);
    ck_assert_int_eq(cadence_span_parse("P1DT2H", &s), -1);
    ck_assert_int_eq(cadence_span_parse("0d", &s), -1);
    ck_assert_int_eq(cadence_span_parse("-1d", &s), -1);
    ck_assert_int_eq(cadence_span_parse("7x", &s), -1);
    ck_assert_int_eq(cadence_span_parse("", &s), -1);
    ck_assert_int_eq(cadence_span_parse("99999d", &s), -1);
    ck_assert_int_eq(cadence_max_parse("3 per 30d", &n, &s), 0);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(s.days, 30);
    ck_assert_int_eq(cadence_max_parse("2/1w", &n, &s), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(s.days, 7);
    ck_assert_int_eq(cadence_max_parse("3 per", &n, &s), -1);
    ck_assert_int_eq(cadence_max_parse("per 30d", &n, &s), -1);
    ck_assert_int_eq(cadence_max_parse("0/30d", &n, &s), -1);
    ck_assert_int_eq(cadence_max_parse("3 each 30d", &n, &s), -1);
}
END_TEST

START_TEST(gap_alone)
{
    struct cadence_rule r = rule("7d", NULL);
    struct cadence_contact h[] = { { utc(2026, 12, 2, 10, 0), "jane@acme.com", "bob", "gate" },
                                   { utc(2026, 11, 20, 10, 0), "jane@acme.com", "alice", "gate" } };
    struct cadence_result res;
    cadence_next_allowed(&r, "UTC", h, 2, utc(2026, 12, 3, 0, 0), &res);
    ck_assert_int_eq(res.limit, CADENCE_GAP);
    ck_assert_int_eq(res.next, utc(2026, 12, 9, 10, 0));
    ck_assert_uint_eq(res.by, 0);
    /* at the gap's end: allowed */
    cadence_next_allowed(&r, "UTC", h, 2, utc(2026, 12, 9, 10, 0), &res);
    ck_assert_int_eq(res.limit, CADENCE_OK);
    ck_assert_int_eq(res.next, utc(2026, 12, 9, 10, 0));
    /* no history: allowed */
    cadence_next_allowed(&r, "UTC", h, 0, utc(2026, 12, 3, 0, 0), &res);
    ck_assert_int_eq(res.limit, CADENCE_OK);
}
END_TEST

START_TEST(gap_and_cap_together)
{
    /* at most 3 per 30 days, and 2 days between two contacts */
    struct cadence_rule r = rule("2d", "3 per 30d");
    struct cadence_contact h[] = { { utc(2026, 12, 1, 9, 0), "a@x.com", "bob", "gate" },
                                   { utc(2026, 11, 10, 9, 0), "a@x.com", "carol", "imap-sent" },
                                   { utc(2026, 11, 20, 9, 0), "a@x.com", "bob", "gate" } };
    struct cadence_result res;
    /* Dec 2: the gap says Dec 3 09:00; the cap says Nov 10 + 30d = Dec 10 09:00 */
    cadence_next_allowed(&r, "UTC", h, 3, utc(2026, 12, 2, 9, 0), &res);
    ck_assert_int_eq(res.limit, CADENCE_CAP);
    ck_assert_int_eq(res.next, utc(2026, 12, 10, 9, 0));
    ck_assert_uint_eq(res.by, 1);
    ck_assert_uint_eq(res.in_period, 3);
    /* two contacts only: the cap is not reached, the gap decides */
    cadence_next_allowed(&r, "UTC", h, 2, utc(2026, 12, 2, 9, 0), &res);
    ck_assert_int_eq(res.limit, CADENCE_GAP);
    ck_assert_int_eq(res.next, utc(2026, 12, 3, 9, 0));
    /* the gap later than the cap: a fresh contact Dec 9 with the cap free Dec 10 */
    struct cadence_contact h2[] = { h[0], h[1], h[2], { utc(2026, 12, 9, 12, 0), "a@x.com", "dan", "gate" } };
    cadence_next_allowed(&r, "UTC", h2, 4, utc(2026, 12, 10, 10, 0), &res);
    /* 4 contacts: the 3rd newest is Nov 20 -> cap Dec 20 09:00; gap Dec 11 12:00 */
    ck_assert_int_eq(res.limit, CADENCE_CAP);
    ck_assert_int_eq(res.next, utc(2026, 12, 20, 9, 0));
    char why[200];
    cadence_why(&r, "UTC", h2, &res, why, sizeof why);
    ck_assert_str_eq(why, "contacted 3 times, last by bob on 2026-11-20; at most 3 per 30 days");
    /* only the gap after the cap has freed up */
    r = rule("5d", "3 per 30d");
    cadence_next_allowed(&r, "UTC", h, 3, utc(2026, 12, 2, 9, 0), &res);
    ck_assert_int_eq(res.next, utc(2026, 12, 10, 9, 0));   /* cap Dec 10 > gap Dec 6 */
    r = rule("14d", "3 per 30d");
    cadence_next_allowed(&r, "UTC", h, 3, utc(2026, 12, 2, 9, 0), &res);
    ck_assert_int_eq(res.limit, CADENCE_GAP);
    ck_assert_int_eq(res.next, utc(2026, 12, 15, 9, 0));   /* gap Dec 15 > cap Dec 10 */
    cadence_why(&r, "UTC", h, &res, why, sizeof why);
    ck_assert_str_eq(why, "contacted by bob on 2026-12-01 (gate); at most one contact per 2 weeks");
}
END_TEST

START_TEST(scope_keys_and_lists)
{
    struct cadence_rule r = rule("7d", NULL);
    char k[64];
    ck_assert_str_eq(cadence_key(&r, "jane@acme.com", k, sizeof k), "jane@acme.com");
    r.scope = CADENCE_DOMAIN;
    ck_assert_str_eq(cadence_key(&r, "jane@acme.com", k, sizeof k), "@acme.com");
    ck_assert_ptr_null(cadence_key(&r, "nodomain", k, sizeof k));
    ck_assert_ptr_null(cadence_key(&r, "jane@", k, sizeof k));
    ck_assert_ptr_null(cadence_key(&r, "jane@acme.com", k, 5));
    const char *list = "billing@acme.com, @notify.example.com  @Bank.example";
    ck_assert_int_eq(cadence_listed(list, "billing@acme.com"), 1);
    ck_assert_int_eq(cadence_listed(list, "BILLING@acme.com"), 1);
    ck_assert_int_eq(cadence_listed(list, "jane@acme.com"), 0);
    ck_assert_int_eq(cadence_listed(list, "x@notify.example.com"), 1);
    ck_assert_int_eq(cadence_listed(list, "x@eu.notify.example.com"), 1);
    ck_assert_int_eq(cadence_listed(list, "x@xnotify.example.com"), 0);
    ck_assert_int_eq(cadence_listed(list, "x@bank.example"), 1);
    ck_assert_int_eq(cadence_listed(NULL, "x@bank.example"), 0);
    ck_assert_int_eq(cadence_listed("", "x@bank.example"), 0);
}
END_TEST

START_TEST(zone_boundaries)
{
    /* Europe/Berlin goes to summer time on 2027-03-28 02:00 local. A
     * contact on Saturday 27 March 10:00 CET (09:00Z): one day later is
     * Sunday 10:00 CEST (08:00Z, 23 hours); 7 days later Saturday 3 April
     * 10:00 CEST (08:00Z). In UTC the same rule is exact 24 h days. */
    struct cadence_rule r = rule("1d", NULL);
    struct cadence_contact h[] = { { utc(2027, 3, 27, 9, 0), "a@x.de", "bob", "gate" } };
    struct cadence_result res;
    cadence_next_allowed(&r, "Europe/Berlin", h, 1, utc(2027, 3, 27, 12, 0), &res);
    ck_assert_int_eq(res.next, utc(2027, 3, 28, 8, 0));
    cadence_next_allowed(&r, "UTC", h, 1, utc(2027, 3, 27, 12, 0), &res);
    ck_assert_int_eq(res.next, utc(2027, 3, 28, 9, 0));
    r = rule("1w", NULL);
    cadence_next_allowed(&r, "Europe/Berlin", h, 1, utc(2027, 3, 27, 12, 0), &res);
    ck_assert_int_eq(res.next, utc(2027, 4, 3, 8, 0));
    /* hours stay exact across the change */
    r = rule("24h", NULL);
    cadence_next_allowed(&r, "Europe/Berlin", h, 1, utc(2027, 3, 27, 12, 0), &res);
    ck_assert_int_eq(res.next, utc(2027, 3, 28, 9, 0));
    /* autumn: 31 Oct 2027, a day is 25 hours */
    struct cadence_contact a[] = { { utc(2027, 10, 30, 8, 0), "a@x.de", "bob", "gate" } };  /* 10:00 CEST */
    r = rule("1d", "1 per 1d");
    cadence_next_allowed(&r, "Europe/Berlin", a, 1, utc(2027, 10, 30, 9, 0), &res);
    ck_assert_int_eq(res.next, utc(2027, 10, 31, 9, 0));   /* 10:00 CET */
    /* a local time in the spring gap maps to the later valid instant */
    struct cadence_contact g[] = { { utc(2027, 3, 27, 1, 30), "a@x.de", "bob", "gate" } };  /* 02:30 CET */
    r = rule("1d", NULL);
    cadence_next_allowed(&r, "Europe/Berlin", g, 1, utc(2027, 3, 27, 2, 0), &res);
    ck_assert_int_eq(res.next, utc(2027, 3, 28, 1, 30));   /* 03:30 CEST */
}
END_TEST

START_TEST(options)
{
    struct cadence_rule r = rule("7d", NULL);
    char err[200];
    ck_assert_int_eq(cadence_option("max", "2 per 30d", &r, err, sizeof err), 0);
    ck_assert_int_eq(r.max, 2);
    ck_assert_int_eq(cadence_option("scope", "domain", &r, err, sizeof err), 0);
    ck_assert_int_eq(r.scope, CADENCE_DOMAIN);
    ck_assert_int_eq(cadence_option("action", "flag", &r, err, sizeof err), 0);
    ck_assert_int_eq(r.action, ACTION_FLAG);
    ck_assert_int_eq(cadence_option("min_gap", "none", &r, err, sizeof err), 0);
    ck_assert(cadence_span_zero(&r.min_gap));
    ck_assert_int_eq(cadence_rule_active(&r), 1);
    ck_assert_int_eq(cadence_option("max", "0", &r, err, sizeof err), 0);
    ck_assert_int_eq(cadence_rule_active(&r), 0);
    ck_assert_int_eq(cadence_option("scope", "planet", &r, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "scope"));
    ck_assert_int_eq(cadence_option("colour", "red", &r, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "unknown cadence option"));
    /* allow switches a rule off for one address */
    r = rule("7d", NULL);
    ck_assert_int_eq(cadence_option("action", "allow", &r, err, sizeof err), 0);
    ck_assert_int_eq(cadence_rule_active(&r), 0);
}
END_TEST

START_TEST(overrides)
{
    struct cadence_overrides o = { 0 };
    char err[200];
    ck_assert_int_eq(cadence_is_line("jane@acme.com cadence min_gap=14d"), 1);
    ck_assert_int_eq(cadence_is_line("  @acme.com\tCADENCE action=flag"), 1);
    ck_assert_int_eq(cadence_is_line("jane@acme.com 2027-07-01 reason=\"cadence\""), 0);
    ck_assert_int_eq(cadence_is_line("# jane@acme.com cadence"), 0);
    ck_assert_int_eq(cadence_is_line(""), 0);
    ck_assert_int_eq(cadence_override_parse("Jane+x@ACME.com,jane@gmail.com cadence min_gap=14d action=flag",
                                            "+", &o, err, sizeof err), 0);
    ck_assert_int_eq(cadence_override_parse("@acme.com cadence max=\"2 per 30d\" scope=domain",
                                            "+", &o, err, sizeof err), 0);
    ck_assert_int_eq(cadence_override_parse("billing@acme.com cadence action=allow", "+", &o, err, sizeof err), 0);
    ck_assert_uint_eq(o.n, 4);
    ck_assert_str_eq(o.v[0].who, "jane@acme.com");
    /* errors: nothing added */
    ck_assert_int_eq(cadence_override_parse("x@y.com cadence", "+", &o, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "at least one"));
    ck_assert_int_eq(cadence_override_parse("x@y.com cadence min_gap=soon", "+", &o, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "min_gap"));
    ck_assert_int_eq(cadence_override_parse("x@y.com,not an address cadence action=flag", "+", &o, err, sizeof err), -1);
    ck_assert_int_eq(cadence_override_parse("x@y.com cadence max=\"2 per 30d", "+", &o, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "unterminated"));
    ck_assert_int_eq(cadence_override_parse("x@y.com cadence colour=red", "+", &o, err, sizeof err), -1);
    ck_assert_uint_eq(o.n, 4);

    /* the most specific wins, applied onto the defaults */
    struct cadence_rule def = rule("7d", NULL), r;
    r = def;
    ck_assert_int_eq(cadence_override_apply(&o, "jane@acme.com", &r), 1);
    ck_assert_int_eq(r.min_gap.days, 14);
    ck_assert_int_eq(r.action, ACTION_FLAG);
    ck_assert_int_eq(r.max, 0);
    r = def;
    ck_assert_int_eq(cadence_override_apply(&o, "joe@sales.acme.com", &r), 1);
    ck_assert_int_eq(r.min_gap.days, 7);              /* kept from the defaults */
    ck_assert_int_eq(r.max, 2);
    ck_assert_int_eq(r.scope, CADENCE_DOMAIN);
    r = def;
    ck_assert_int_eq(cadence_override_apply(&o, "billing@acme.com", &r), 1);
    ck_assert_int_eq(cadence_rule_active(&r), 0);     /* action=allow: exempt */
    r = def;
    ck_assert_int_eq(cadence_override_apply(&o, "x@globex.com", &r), 0);
    ck_assert_int_eq(r.min_gap.days, 7);
    /* an override can switch cadence on where the defaults are off */
    struct cadence_rule off;
    memset(&off, 0, sizeof off);
    off.action = ACTION_HOLD;
    ck_assert_int_eq(cadence_override_apply(&o, "ann@acme.com", &off), 1);
    ck_assert_int_eq(cadence_rule_active(&off), 1);
    cadence_overrides_clear(&o);
    ck_assert_uint_eq(o.n, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cadence");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, spans_and_caps);
    tcase_add_test(tc, gap_alone);
    tcase_add_test(tc, gap_and_cap_together);
    tcase_add_test(tc, scope_keys_and_lists);
    tcase_add_test(tc, zone_boundaries);
    tcase_add_test(tc, options);
    tcase_add_test(tc, overrides);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
