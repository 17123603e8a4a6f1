/* test_windows.c - window-file lines, recurring activity, and the index
 * (most specific level wins, latest until among equals, boundaries,
 * removal, replace by id). All times are passed explicitly. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libical/ical.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif

#include "untild/when.h"
#include "untild/windows.h"

#define NOW ((time_t)1767225600) /* 2026-01-01T00:00:00Z */
#define BERLIN "Europe/Berlin"

static struct window W;
static char err[256];

static int parse(const char *line)
{
    window_free_fields(&W);
    return window_parse_line(line, BERLIN, "+", NOW, &W, err, sizeof err);
}

static void teardown(void)
{
    window_free_fields(&W);
}

START_TEST(test_action_names)
{
    enum action a;
    ck_assert_str_eq(action_name(ACTION_HOLD), "hold");
    ck_assert_str_eq(action_name(ACTION_FLAG), "flag");
    ck_assert_str_eq(action_name(ACTION_REJECT), "reject");
    ck_assert_str_eq(action_name(ACTION_ALLOW), "allow");
    ck_assert_int_eq(action_parse("Reject", &a), 0);
    ck_assert_int_eq(a, ACTION_REJECT);
    ck_assert_int_eq(action_parse("hold", &a), 0);
    ck_assert_int_eq(a, ACTION_HOLD);
    ck_assert_int_eq(action_parse("bounce", &a), -1);
    ck_assert_int_eq(action_parse("", &a), -1);
}
END_TEST

START_TEST(test_blank_and_comments)
{
    ck_assert_int_eq(parse(""), 1);
    ck_assert_int_eq(parse("   \t\n"), 1);
    ck_assert_int_eq(parse("# who                until                       options"), 1);
    ck_assert_int_eq(parse("   # indented comment"), 1);
}
END_TEST

START_TEST(test_design_line_1)
{
    ck_assert_int_eq(parse("jane@acme.com        2027-07-01                  reason=\"Lease ends in July\" action=hold"), 0);
    ck_assert_uint_eq(W.nwho, 1);
    ck_assert_str_eq(W.who[0], "jane@acme.com");
    ck_assert_int_eq(W.until, 1814392800);   /* 00:00 Berlin */
    ck_assert_int_eq(W.from, 0);
    ck_assert_str_eq(W.reason, "Lease ends in July");
    ck_assert_int_eq(W.action, ACTION_HOLD);
    ck_assert_ptr_null(W.rrule);
    ck_assert_str_eq(W.tz, BERLIN);
    ck_assert_int_eq(W.source, WSRC_FILE);
    ck_assert_int_eq(W.id[0], 'f');
    ck_assert_uint_eq(strlen(W.id), 13);
}
END_TEST

START_TEST(test_design_line_2)
{
    ck_assert_int_eq(parse("@globex.com          2027-01-15T17:00-05:00      reason=\"RFP quiet period\" action=reject"), 0);
    ck_assert_str_eq(W.who[0], "@globex.com");
    ck_assert_int_eq(W.until, 1800050400);
    ck_assert_int_eq(W.action, ACTION_REJECT);
    ck_assert_str_eq(W.reason, "RFP quiet period");
}
END_TEST

START_TEST(test_design_line_3)
{
    ck_assert_int_eq(parse("bob@initech.com      2026-12-31  from=2026-12-01 action=flag"), 0);
    ck_assert_str_eq(W.who[0], "bob@initech.com");
    ck_assert_int_eq(W.until, 1798671600);
    ck_assert_int_eq(W.from, 1796079600);
    ck_assert_int_eq(W.action, ACTION_FLAG);
    ck_assert_ptr_null(W.reason);
}
END_TEST

START_TEST(test_design_line_4)
{
    ck_assert_int_eq(parse("@acme.com            never       rrule=\"FREQ=WEEKLY;BYDAY=SA,SU\" reason=\"no weekend mail\""), 0);
    ck_assert_str_eq(W.who[0], "@acme.com");
    ck_assert(W.until == WHEN_NEVER);
    ck_assert_str_eq(W.rrule, "FREQ=WEEKLY;BYDAY=SA,SU");
    ck_assert_int_eq(W.duration, 86400);
    ck_assert_int_eq(W.action, ACTION_DEFAULT);
}
END_TEST

START_TEST(test_design_line_5)
{
    ck_assert_int_eq(parse("@initech.com         never       from=2026-01-01T20:00 rrule=\"FREQ=DAILY\" duration=PT12H tz=America/New_York reason=\"not at night, their time\""), 0);
    ck_assert_int_eq(W.from, 1767315600);   /* 20:00 New York, not Berlin */
    ck_assert_int_eq(W.duration, 43200);
    ck_assert_str_eq(W.tz, "America/New_York");
    ck_assert_str_eq(W.rrule, "FREQ=DAILY");
    ck_assert_str_eq(W.reason, "not at night, their time");
}
END_TEST

START_TEST(test_design_line_6)
{
    ck_assert_int_eq(parse("jane@acme.com,jane.doe@gmail.com  2027-07-01     reason=\"one person, two addresses\""), 0);
    ck_assert_uint_eq(W.nwho, 2);
    ck_assert_str_eq(W.who[0], "jane@acme.com");
    ck_assert_str_eq(W.who[1], "jane.doe@gmail.com");
}
END_TEST

START_TEST(test_normalised_and_quotes)
{
    ck_assert_int_eq(parse("Jane+News@ACME.com. 2027-07-01 reason=\"say \\\"hi\\\"\" owner=Rep@Example.com # trailing"), 0);
    ck_assert_str_eq(W.who[0], "jane@acme.com");
    ck_assert_str_eq(W.reason, "say \"hi\"");
    ck_assert_str_eq(W.owner, "rep@example.com");
}
END_TEST

START_TEST(test_id_stable)
{
    char id1[WINDOW_ID_MAX], id2[WINDOW_ID_MAX];
    ck_assert_int_eq(parse("jane@acme.com 2027-07-01 reason=x"), 0);
    strcpy(id1, W.id);
    /* Same content written differently: same id. */
    ck_assert_int_eq(parse("  JANE@acme.com   2027-07-01   reason=\"x\""), 0);
    ck_assert_str_eq(W.id, id1);
    ck_assert_int_eq(parse("jane@acme.com 2027-07-01 reason=y"), 0);
    strcpy(id2, W.id);
    ck_assert_str_ne(id1, id2);
    ck_assert_int_eq(parse("jane@acme.com 2027-07-02 reason=x"), 0);
    ck_assert_str_ne(W.id, id1);
}
END_TEST

static void expect_error(const char *line, const char *needle1,
                         const char *needle2)
{
    ck_assert_int_eq(parse(line), -1);
    ck_assert_msg(strstr(err, needle1) != NULL, "'%s' lacks '%s'", err, needle1);
    if (needle2)
        ck_assert_msg(strstr(err, needle2) != NULL, "'%s' lacks '%s'", err,
                      needle2);
    ck_assert_ptr_null(W.who);
}

START_TEST(test_errors)
{
    expect_error("not-an-address 2027-07-01", "bad address", "not-an-address");
    expect_error("jane@acme.com,,bob@x.com 2027-07-01", "bad address", NULL);
    expect_error("jane@acme.com 2027-13-45", "bad date", "2027-13-45");
    expect_error("jane@acme.com", "missing until", NULL);
    expect_error("jane@acme.com 2027-07-01 colour=red", "unknown key", "colour");
    expect_error("jane@acme.com never rrule=FREQ=SOMETIMES", "bad rrule",
                 "FREQ=SOMETIMES");
    expect_error("jane@acme.com never rrule=BYDAY=SA", "bad rrule", NULL);
    expect_error("jane@acme.com 2027-07-01 tz=Mars/Olympus", "bad tz",
                 "Mars/Olympus");
    expect_error("jane@acme.com 2027-07-01 action=bounce", "bad action",
                 "bounce");
    expect_error("jane@acme.com 2027-07-01 reason=a reason=b", "duplicate key",
                 "reason");
    expect_error("jane@acme.com 2027-07-01 reason=\"unfinished", "unterminated",
                 "reason");
    expect_error("jane@acme.com 2027-07-01 duration=PT12H", "without rrule",
                 NULL);
    expect_error("jane@acme.com never rrule=FREQ=DAILY duration=soon",
                 "bad duration", "soon");
    expect_error("jane@acme.com 2027-07-01 from=2027-08-01", "after until",
                 NULL);
    expect_error("jane@acme.com 2027-07-01 from=tomorrow-ish", "bad date",
                 "from");
    expect_error("jane@acme.com 2027-07-01 justaword", "key=value",
                 "justaword");
    expect_error("jane@acme.com 2027-07-01 owner=nobody", "bad owner", NULL);
}
END_TEST

/* --- recurring activity */

START_TEST(test_weekends)
{
    struct window w = {0};
    char *who[] = {"@acme.com"};
    w.who = who;
    w.nwho = 1;
    w.until = WHEN_NEVER;
    w.rrule = "FREQ=WEEKLY;BYDAY=SA,SU";
    w.duration = 86400;
    w.tz = "UTC";
    time_t qu = 0;
    /* 2027-03-06 is a Saturday. */
    ck_assert_int_eq(window_active(&w, 1804327200, &qu), 1);   /* Sat 10:00 */
    ck_assert_int_eq(qu, 1804464000);   /* Monday 00:00: SA and SU touch */
    ck_assert_int_eq(window_active(&w, 1804463999, &qu), 1);   /* Sun 23:59:59 */
    ck_assert_int_eq(qu, 1804464000);
    ck_assert_int_eq(window_active(&w, 1804464000, &qu), 0);   /* Mon 00:00 */
    ck_assert_int_eq(window_active(&w, 1804327200 - 86400 - 36000, &qu), 0); /* Fri */
    /* capped by until */
    w.until = 1804400000;
    ck_assert_int_eq(window_active(&w, 1804327200, &qu), 1);
    ck_assert_int_eq(qu, 1804400000);
    ck_assert_int_eq(window_active(&w, 1804400000, &qu), 0);
}
END_TEST

START_TEST(test_nightly_dst)
{
    ck_assert_int_eq(parse("@initech.com never from=2026-01-01T20:00 rrule=\"FREQ=DAILY\" duration=PT12H tz=America/New_York"), 0);
    time_t qu = 0;
    /* Night of 2027-03-13/14: US clocks spring forward at 02:00. */
    ck_assert_int_eq(window_active(&W, 1804986000 - 60, &qu), 0); /* 19:59 EST */
    ck_assert_int_eq(window_active(&W, 1804986000, &qu), 1);      /* 20:00 EST */
    ck_assert_int_eq(window_active(&W, 1804996800, &qu), 1);      /* 23:00 EST */
    ck_assert_int_eq(qu, 1805025600);                             /* 08:00 EDT */
    ck_assert_int_eq(window_active(&W, 1805025540, &qu), 1);      /* 07:59 EDT */
    ck_assert_int_eq(window_active(&W, 1805025600, &qu), 0);      /* 08:00 EDT */
    ck_assert_int_eq(window_active(&W, 1805040000, &qu), 0);      /* 12:00 EDT */
    /* The next night starts at 20:00 EDT, i.e. one hour earlier in UTC. */
    ck_assert_int_eq(window_active(&W, 1805068800 - 1, &qu), 0);
    ck_assert_int_eq(window_active(&W, 1805068800, &qu), 1);
    ck_assert_int_eq(qu, 1805112000);
    ck_assert_int_eq(window_active(&W, 1805111940, &qu), 1);      /* 07:59 */
    ck_assert_int_eq(window_active(&W, 1805112000, &qu), 0);      /* 08:00 */
    /* Before from: never quiet. */
    ck_assert_int_eq(window_active(&W, 1767315600 - 3600, &qu), 0);
    ck_assert_int_eq(window_active(&W, 1767315600, &qu), 1);
}
END_TEST

START_TEST(test_daily_24h_run)
{
    ck_assert_int_eq(parse("x@y.com 2027-01-10T00:00Z from=2027-01-01T00:00Z rrule=FREQ=DAILY duration=P1D tz=UTC"), 0);
    time_t qu = 0;
    ck_assert_int_eq(window_active(&W, 1798761600 + 3600, &qu), 1); /* 01-01 01:00 */
    ck_assert_int_eq(qu, W.until);   /* the run of touching days ends at until */
}
END_TEST

/* --- index */

static struct windows *ix;

static void ix_setup(void)
{
    ix = windows_new();
    ck_assert_ptr_nonnull(ix);
}

static void ix_teardown(void)
{
    windows_free(ix);
    window_free_fields(&W);
}

static const struct window *add(const char *line)
{
    ck_assert_int_eq(parse(line), 0);
    const struct window *s = windows_add(ix, &W);
    ck_assert_ptr_nonnull(s);
    return s;
}

static const char *match_reason(const char *addr, time_t t)
{
    struct window_match m;
    if (!windows_match(ix, addr, t, &m))
        return NULL;
    ck_assert_ptr_nonnull(m.w);
    return m.w->reason;
}

#define T0 ((time_t)1800000000)
#define N_CHURN 20000

START_TEST(test_specificity)
{
    add("@acme.com 2028-01-01 reason=parent");
    add("@sales.acme.com 2027-09-01 reason=domain");
    add("jane@sales.acme.com 2027-02-01 reason=address");
    ck_assert_uint_eq(windows_count(ix), 3);
    /* Address over domain even though the domain's until is later. */
    ck_assert_str_eq(match_reason("jane@sales.acme.com", T0), "address");
    ck_assert_str_eq(match_reason("bob@sales.acme.com", T0), "domain");
    ck_assert_str_eq(match_reason("bob@acme.com", T0), "parent");
    ck_assert_str_eq(match_reason("bob@x.y.sales.acme.com", T0), "domain");
    ck_assert_ptr_null(match_reason("bob@notacme.com", T0));
    ck_assert_ptr_null(match_reason("bob@acme.com.evil", T0));
    /* Once the address window is over, the domain window decides. */
    ck_assert_str_eq(match_reason("jane@sales.acme.com", 1801000000 + 86400 * 20), "domain");
    add("@com 2029-01-01 reason=tld");
    ck_assert_str_eq(match_reason("anyone@example.com", T0), "tld");
}
END_TEST

START_TEST(test_latest_until)
{
    add("jane@acme.com 2027-03-01 reason=early");
    add("jane@acme.com 2027-05-01 reason=late");
    add("jane@acme.com 2027-04-01 reason=middle");
    struct window_match m;
    ck_assert_int_eq(windows_match(ix, "jane@acme.com", T0, &m), 1);
    ck_assert_str_eq(m.w->reason, "late");
    ck_assert_int_eq(m.quiet_until, m.w->until);
    ck_assert_int_eq(m.recurring, 0);
    const struct window *found[4];
    ck_assert_uint_eq(windows_find_who(ix, "jane@acme.com", found, 4), 3);
    ck_assert_uint_eq(windows_find_who(ix, "@acme.com", found, 4), 0);
}
END_TEST

START_TEST(test_boundaries)
{
    const struct window *w = add("bob@initech.com 2026-12-31 from=2026-12-01 action=flag");
    time_t from = w->from, until = w->until;
    struct window_match m;
    ck_assert_int_eq(windows_match(ix, "bob@initech.com", from - 1, &m), 0);
    ck_assert_ptr_null(m.w);
    ck_assert_int_eq(windows_match(ix, "bob@initech.com", from, &m), 1);
    ck_assert_int_eq(windows_match(ix, "bob@initech.com", until - 1, &m), 1);
    ck_assert_int_eq(m.quiet_until, until);
    ck_assert_int_eq(windows_match(ix, "bob@initech.com", until, &m), 0);
    ck_assert_int_eq(windows_match(ix, "bob@initech.com", until + 1, &m), 0);
}
END_TEST

START_TEST(test_remove_and_replace)
{
    const struct window *a = add("jane@acme.com 2027-07-01 reason=first");
    char id[WINDOW_ID_MAX];
    strcpy(id, a->id);
    ck_assert_ptr_eq(windows_get(ix, id), a);
    /* Replace by id: same id, other content. */
    ck_assert_int_eq(parse("jane@acme.com,bob@acme.com 2027-09-01 reason=second"), 0);
    strcpy(W.id, id);
    const struct window *b = windows_add(ix, &W);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(windows_count(ix), 1);
    ck_assert_str_eq(windows_get(ix, id)->reason, "second");
    ck_assert_str_eq(match_reason("jane@acme.com", T0), "second");
    ck_assert_str_eq(match_reason("bob@acme.com", T0), "second");
    ck_assert_int_eq(windows_remove(ix, id), 0);
    ck_assert_int_eq(windows_remove(ix, id), -1);
    ck_assert_uint_eq(windows_count(ix), 0);
    ck_assert_ptr_null(windows_get(ix, id));
    ck_assert_ptr_null(match_reason("jane@acme.com", T0));
    ck_assert_ptr_null(match_reason("bob@acme.com", T0));
}
END_TEST

START_TEST(test_multi_address)
{
    add("jane@acme.com,jane.doe@gmail.com 2027-07-01 reason=\"one person\"");
    ck_assert_str_eq(match_reason("jane@acme.com", T0), "one person");
    ck_assert_str_eq(match_reason("jane.doe@gmail.com", T0), "one person");
    ck_assert_ptr_null(match_reason("doe@gmail.com", T0));
}
END_TEST

static int count_cb(const struct window *w, void *arg)
{
    (void)w;
    (*(int *)arg)++;
    return 0;
}

START_TEST(test_assigned_ids_and_foreach)
{
    struct window w = {0};
    char *who[] = {"a@b.c"};
    w.who = who;
    w.nwho = 1;
    w.until = WHEN_NEVER;
    w.source = WSRC_RUNTIME;
    const struct window *s1 = windows_add(ix, &w);
    const struct window *s2 = windows_add(ix, &w);
    ck_assert_ptr_nonnull(s1);
    ck_assert_ptr_nonnull(s2);
    ck_assert_str_eq(s1->id, "w1");
    ck_assert_str_eq(s2->id, "w2");
    ck_assert_ptr_null(s1->reason);
    /* The index holds its own copy. */
    ck_assert_ptr_ne(s1->who, who);
    int n = 0;
    windows_foreach(ix, count_cb, &n);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(windows_remove(ix, "w1"), 0);
    n = 0;
    windows_foreach(ix, count_cb, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(windows_get(ix, "w2")->who[0], "a@b.c");
}
END_TEST

START_TEST(test_recurring_in_index)
{
    add("@acme.com never rrule=\"FREQ=WEEKLY;BYDAY=SA,SU\" tz=UTC reason=weekend");
    struct window_match m;
    ck_assert_int_eq(windows_match(ix, "jane@acme.com", 1804327200, &m), 1);
    ck_assert_int_eq(m.recurring, 1);
    ck_assert_int_eq(m.quiet_until, 1804464000);
    ck_assert_int_eq(windows_match(ix, "jane@acme.com", 1804464000, &m), 0);
}
END_TEST

/* Many adds and removes: tables grow, slots and arena get reused and
 * compacted, and every surviving window still matches. */
START_TEST(test_churn)
{
    char line[128], addr[64];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N_CHURN; i++) {
            snprintf(line, sizeof line,
                     "user%d@d%d.example 2027-07-01 reason=\"round %d %d\"", i,
                     i % 997, round, i);
            add(line);
        }
        struct ids { char id[WINDOW_ID_MAX]; } *ids = calloc(N_CHURN, sizeof *ids);
        ck_assert_ptr_nonnull(ids);
        const struct window *f[2];
        for (int i = 0; i < N_CHURN; i++) {
            snprintf(addr, sizeof addr, "user%d@d%d.example", i, i % 997);
            ck_assert_uint_eq(windows_find_who(ix, addr, f, 2), 1);
            strcpy(ids[i].id, f[0]->id);
        }
        for (int i = 0; i < N_CHURN; i += 2)
            ck_assert_int_eq(windows_remove(ix, ids[i].id), 0);
        for (int i = 0; i < N_CHURN; i++) {
            snprintf(addr, sizeof addr, "user%d@d%d.example", i, i % 997);
            const char *r = match_reason(addr, T0);
            if (i % 2 == 0) {
                ck_assert_ptr_null(r);
            } else {
                ck_assert_ptr_nonnull(r);
                snprintf(line, sizeof line, "round %d %d", round, i);
                ck_assert_str_eq(r, line);
                ck_assert_int_eq(windows_remove(ix, ids[i].id), 0);
            }
        }
        free(ids);
        ck_assert_uint_eq(windows_count(ix), 0);
    }
}
END_TEST

/* --- rule checks and bounded evaluation (issue 18, item 3) */

/* CPU budgets below are for a plain -O2 build; sanitizers and valgrind
 * (make asan-check, make valgrind-check) run the same code much slower. */
static double slow(void)
{
    double f = 1;
#if defined(__SANITIZE_ADDRESS__)
    f = 5;
#endif
#if defined(__SANITIZE_THREAD__)
    f = 10;
#endif
#if defined(RUNNING_ON_VALGRIND)
    if (RUNNING_ON_VALGRIND)
        f *= 80;
#endif
    return f;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Each refused rule is refused with its reason, and quickly: libical alone
 * would walk some of these for seconds (BYMONTH=2;BYMONTHDAY=30 HOURLY:
 * 21 s; MONTHLY;BYDAY=MO;BYSETPOS=6: 2 s). */
START_TEST(test_rrule_refused)
{
    static const struct { const char *opts, *why; } cases[] = {
        {"rrule=\"FREQ=SECONDLY;BYMONTH=2\"", "FREQ=SECONDLY is too frequent"},
        {"rrule=\"FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=29\"", "too frequent"},
        {"rrule=FREQ=MINUTELY", "FREQ=MINUTELY is too frequent"},
        {"rrule=\"FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30\"", "no occurrence within 2000 hours"},
        {"rrule=\"FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30\"", "no occurrence within 2000 days"},
        {"rrule=\"FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30\"", "no date ever matches"},
        {"rrule=\"FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=31\"", "no date ever matches"},
        {"rrule=\"FREQ=MONTHLY;INTERVAL=12;BYMONTH=3\" from=2026-01-15", "no date ever matches"},
        {"rrule=\"FREQ=MONTHLY;BYDAY=MO;BYSETPOS=6\"", "no date ever matches"},
        {"rrule=\"FREQ=YEARLY;BYMONTH=1;BYDAY=MO;BYSETPOS=1\"", "BYSETPOS is supported with FREQ=MONTHLY only"},
        {"rrule=\"FREQ=MONTHLY;BYDAY=MO;BYHOUR=9,10;BYSETPOS=-1\"", "several BYHOUR"},
        {"rrule=\"FREQ=YEARLY;BYWEEKNO=53;BYDAY=MO\"", "BYWEEKNO is not supported"},
        {"rrule=\"FREQ=YEARLY;BYYEARDAY=366\"", "BYYEARDAY is not supported"},
        {"rrule=\"FREQ=DAILY;BYSECOND=5\"", "BYSECOND is not supported"},
        {"rrule=\"FREQ=DAILY;BYDAY=2MO\"", "needs FREQ=MONTHLY or YEARLY"},
        {"rrule=\"FREQ=MONTHLY;BYDAY=6MO\"", "at most 5"},
        {"rrule=\"FREQ=MONTHLY;BYDAY=2MO;BYMONTHDAY=1\"", "together with BYMONTHDAY"},
        {"rrule=\"FREQ=YEARLY;BYDAY=MO\"", "needs BYMONTH"},
        {"rrule=\"FREQ=DAILY;COUNT=100000\"", "COUNT=100000 is above"},
        {"rrule=\"FREQ=DAILY;COUNT=3;BYMONTH=2;BYMONTHDAY=29\" from=2026-01-01", "COUNT=3: its occurrences spread"},
        {"rrule=\"FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29\" from=2026-01-01", "no date ever matches"},
        {"rrule=FREQ=DAILY duration=P400D", "rrule_max_duration"},
        {"rrule=FREQ=HOURLY duration=P100D", "longer than 2000 hours"},
        {"rrule=\"FREQ=DAILY;UNTIL=20000101T000000Z\" from=2026-01-01", "no occurrence before its UNTIL"},
        {"rrule=nonsense", "not an iCalendar RRULE"},
    };
    char line[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(line, sizeof line, "jane@acme.com never %s tz=UTC", cases[i].opts);
        double t0 = cpu_now();
        int rc = parse(line);
        double dt = cpu_now() - t0;
        ck_assert_msg(rc == -1, "accepted: %s", line);
        ck_assert_msg(strstr(err, "bad rrule") && strstr(err, cases[i].why),
                      "%s: got '%s', want '%s'", line, err, cases[i].why);
        ck_assert_msg(dt < 0.2 * slow(), "%s: checking took %.3f s", line, dt);
    }
    /* What windows are for is accepted. */
    static const char *const ok[] = {
        "FREQ=WEEKLY;BYDAY=SA,SU", "FREQ=DAILY;BYHOUR=18", "FREQ=MONTHLY;BYDAY=-1FR",
        "FREQ=MONTHLY;BYMONTHDAY=31", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
        "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24,25,26", "FREQ=HOURLY;INTERVAL=6",
        "FREQ=WEEKLY;COUNT=4;BYDAY=FR", "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=5",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        snprintf(line, sizeof line, "jane@acme.com never rrule=\"%s\" duration=1h tz=UTC", ok[i]);
        ck_assert_msg(parse(line) == 0, "%s: %s", line, err);
        ck_assert_int_eq(window_rrule_check(ok[i], 0, "UTC", 3600, NULL, err, sizeof err), 0);
    }
}
END_TEST

/* The 47 s case: a rule that hits only on February 29. Answers are fast,
 * right, and the 8-year gap around 2100 is decided, not guessed. */
START_TEST(test_rrule_feb29_fast)
{
    ck_assert_int_eq(parse("jane@acme.com never rrule=\"FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29\" tz=UTC"), 0);
    time_t qu = 0;
    double t0 = cpu_now();
    ck_assert_int_eq(window_active(&W, 1811808000, &qu), 0);   /* 2027-06-01 */
    ck_assert_int_eq(window_active(&W, 1835395200 - 1, &qu), 0);
    ck_assert_int_eq(window_active(&W, 1835438400, &qu), 1);   /* 2028-02-29 12:00 */
    ck_assert_int_eq(qu, 1835481600);                          /* 2028-03-01 */
    ck_assert_int_eq(window_active(&W, 1835481600, &qu), 0);
    ck_assert_int_eq(window_active(&W, 4076006400, &qu), 0);   /* 2099-03-01 */
    ck_assert_int_eq(window_active(&W, 4233729600, &qu), 1);   /* 2104-02-29 12:00 */
    ck_assert_int_eq(qu, 4233772800);
    ck_assert_msg(cpu_now() - t0 < 0.2 * slow(), "took %.3f s", cpu_now() - t0);

    /* A rule stored before the checks (built by hand here) is never
     * walked: it counts as quiet an hour at a time, at once. */
    struct window w = {0};
    char *who[] = {"x@y.com"};
    w.who = who;
    w.nwho = 1;
    w.until = WHEN_NEVER;
    w.rrule = "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=29";
    w.duration = 1;
    w.tz = "UTC";
    strcpy(w.id, "w1");
    t0 = cpu_now();
    ck_assert_int_eq(window_active(&w, 1811808000, &qu), 1);
    ck_assert_int_eq(qu, 1811808000 + 3600);
    ck_assert_msg(cpu_now() - t0 < 0.1 * slow(), "took %.3f s", cpu_now() - t0);
}
END_TEST

/* A walk the iteration cap cuts before it could decide (here: a rule
 * accepted under the default limit, evaluated under a tiny one) counts as
 * quiet for the next hour, never silently as not quiet. */
START_TEST(test_cap_bites_counts_as_quiet)
{
    ck_assert_int_eq(parse("x@y.com never rrule=\"FREQ=HOURLY;BYMINUTE=0,5,10,15,20,25,30,35,40,45,50,55\" "
                           "duration=1h tz=UTC"), 0);
    struct window_limits saved, tiny = {10, 86400};
    windows_get_limits(&saved);
    windows_set_limits(&tiny);
    time_t qu = 0, t = 1811808000 + 1234;
    ck_assert_int_eq(window_active(&W, t, &qu), 1);
    ck_assert_int_eq(qu, t + 3600);
    windows_set_limits(&saved);
    /* decided again under the normal limit: quiet, runs for good */
    ck_assert_int_eq(window_active(&W, t, &qu), 1);
    ck_assert_int_gt(qu, t + 3600);
}
END_TEST

/* libical's own walk from DTSTART, unbounded (cheap rules only): the
 * reference the fast-forwarded evaluation must agree with. */
static int reference_active(const char *rule, time_t from, int64_t dur, time_t t)
{
    icaltimezone *utc = icaltimezone_get_utc_timezone();
    struct icalrecurrencetype r = icalrecurrencetype_from_string(rule);
    icalrecur_iterator *it = icalrecur_iterator_new(r, icaltime_from_timet_with_zone(from, 0, utc));
    int active = 0;
    for (;;) {
        struct icaltimetype n = icalrecur_iterator_next(it);
        if (icaltime_is_null_time(n))
            break;
        time_t s = icaltime_as_timet_with_zone(n, utc);
        if (s > t)
            break;
        if (s + dur > t)
            active = 1;
    }
    icalrecur_iterator_free(it);
    return active;
}

/* MONTHLY and YEARLY are fast-forwarded (they used to walk from the start
 * and could hit the cap silently); centuries ahead they agree with the
 * plain walk and stay cheap. */
START_TEST(test_monthly_yearly_far_future)
{
    static const char *const rules[] = {
        "FREQ=MONTHLY;BYDAY=-1FR", "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=15",
        "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24,25,26", "FREQ=YEARLY;INTERVAL=2;BYMONTH=8",
        "FREQ=MONTHLY;BYMONTHDAY=31", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
        "FREQ=MONTHLY;BYDAY=2TU;BYMONTH=1,4,7,10",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=5",
    };
    const time_t from = 1769817600;   /* 2026-01-31T00:00Z */
    char line[256];
    unsigned seed = 7;
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        snprintf(line, sizeof line, "x@y.com never from=@%lld rrule=\"%s\" duration=P2D tz=UTC",
                 (long long)from, rules[i]);
        ck_assert_msg(parse(line) == 0, "%s: %s", line, err);
        const int far = 10400, samples = slow() > 10 ? 4 : 40;   /* valgrind */
        for (int k = 0; k < samples; k++) {
            seed = seed * 1103515245u + 12345u;
            /* up to ~330 years ahead (libical stops at 2582) */
            time_t t = from + (time_t)(seed % far) * 1000000 + (seed % 86400);
            time_t qu;
            int got = window_active(&W, t, &qu);
            ck_assert_msg(got == reference_active(rules[i], from, 2 * 86400, t),
                          "%s at @%lld: got %d", rules[i], (long long)t, got);
        }
    }
    /* A rule with 176 occurrences a month, 400 years on: found at once. */
    ck_assert_int_eq(parse("x@y.com never rrule=\"FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;"
                           "BYHOUR=9,10,11,12,13,14,15,16\" duration=1h tz=UTC"), 0);
    time_t qu;
    double t0 = cpu_now();
    ck_assert_int_eq(window_active(&W, 13574687400, &qu), 1);   /* Wed 2400-03-01 10:30 */
    ck_assert_int_eq(qu, 13574687400 - 1800 + 7 * 3600);        /* the run ends at 17:00 */
    ck_assert_int_eq(window_active(&W, 13574946600, &qu), 0);   /* Saturday */
    ck_assert_int_eq(window_active(&W, 13574712600, &qu), 0);   /* 17:30 */
    ck_assert_msg(cpu_now() - t0 < 0.1 * slow(), "took %.3f s", cpu_now() - t0);
}
END_TEST

/* In an index the answer is kept until the next transition: a million
 * lookups cost a comparison each, and every transition is still right,
 * also when the clock goes back. */
START_TEST(test_next_transition_cache)
{
    add("@acme.com never rrule=\"FREQ=WEEKLY;BYDAY=SA,SU\" tz=UTC");
    struct window_match m;
    double t0 = cpu_now();
    int hits = 0;
    for (int i = 0; i < 1000000; i++)
        hits += windows_match(ix, "jane@acme.com", 1804327200 + i % 3600, &m);
    double dt = cpu_now() - t0;
    ck_assert_int_eq(hits, 1000000);
    ck_assert_msg(dt < 1.0 * slow(), "1,000,000 cached lookups took %.3f s", dt);
    ck_assert_int_eq(m.quiet_until, 1804464000);
    /* Friday: not quiet until Saturday 00:00, then quiet, then Monday. */
    ck_assert_int_eq(windows_match(ix, "jane@acme.com", 1804327200 - 86400, &m), 0);
    ck_assert_int_eq(windows_match(ix, "jane@acme.com", 1804291200 - 1, &m), 0);
    ck_assert_int_eq(windows_match(ix, "jane@acme.com", 1804291200, &m), 1);
    ck_assert_int_eq(windows_match(ix, "jane@acme.com", 1804463999, &m), 1);
    ck_assert_int_eq(windows_match(ix, "jane@acme.com", 1804464000, &m), 0);
    /* back in time (the test clock can do that) */
    ck_assert_int_eq(windows_match(ix, "jane@acme.com", 1804327200, &m), 1);
    ck_assert_int_eq(windows_match(ix, "jane@acme.com", 1804464000 - 7 * 86400, &m), 0);
    ck_assert_int_eq(windows_match(ix, "jane@acme.com", 1804464000 + 5 * 86400, &m), 1);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("windows");
    TCase *p = tcase_create("parse");
    tcase_add_checked_fixture(p, NULL, teardown);
    tcase_add_test(p, test_action_names);
    tcase_add_test(p, test_blank_and_comments);
    tcase_add_test(p, test_design_line_1);
    tcase_add_test(p, test_design_line_2);
    tcase_add_test(p, test_design_line_3);
    tcase_add_test(p, test_design_line_4);
    tcase_add_test(p, test_design_line_5);
    tcase_add_test(p, test_design_line_6);
    tcase_add_test(p, test_normalised_and_quotes);
    tcase_add_test(p, test_id_stable);
    tcase_add_test(p, test_errors);
    suite_add_tcase(s, p);

    TCase *r = tcase_create("active");
    tcase_add_checked_fixture(r, NULL, teardown);
    tcase_set_timeout(r, 60);   /* the reference walks cover centuries */
    tcase_add_test(r, test_weekends);
    tcase_add_test(r, test_nightly_dst);
    tcase_add_test(r, test_daily_24h_run);
    tcase_add_test(r, test_rrule_refused);
    tcase_add_test(r, test_rrule_feb29_fast);
    tcase_add_test(r, test_cap_bites_counts_as_quiet);
    tcase_add_test(r, test_monthly_yearly_far_future);
    suite_add_tcase(s, r);

    TCase *x = tcase_create("index");
    tcase_add_checked_fixture(x, ix_setup, ix_teardown);
    tcase_set_timeout(x, 60);
    tcase_add_test(x, test_specificity);
    tcase_add_test(x, test_latest_until);
    tcase_add_test(x, test_boundaries);
    tcase_add_test(x, test_remove_and_replace);
    tcase_add_test(x, test_multi_address);
    tcase_add_test(x, test_assigned_ids_and_foreach);
    tcase_add_test(x, test_recurring_in_index);
    tcase_add_test(x, test_churn);
    tcase_add_test(x, test_next_transition_cache);
    suite_add_tcase(s, x);
    return s;
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
