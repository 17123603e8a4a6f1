/* test_store.c - SQLite run-time state: windows round trip and id
 * allocation, audit filtering, seen messages, key/value, retention (prune)
 * and the schema migration that indexes it; batches of writes (one fsync). */
#include "untild/store.h"
#include "untild/store_int.h"
#include "untild/store_wh.h"
#include "untild/when.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static int rm_cb(const char *p, const struct stat *sb, int type, struct FTW *f)
{
    (void)sb; (void)type; (void)f;
    return remove(p);
}

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_store.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void mk_window(struct window *w, char **who, size_t nwho)
{
    memset(w, 0, sizeof *w);
    w->who = who;
    w->nwho = nwho;
    w->from = 1790000000;
    w->until = WHEN_NEVER;
    w->rrule = "FREQ=WEEKLY;BYDAY=MO";
    w->duration = 3600;
    w->tz = "Europe/Berlin";
    w->action = ACTION_FLAG;
    w->reason = "renewal talks, don't push";
    w->owner = "rep@example.com";
    w->source = WSRC_RUNTIME;
    w->created = 1789990000;
}

START_TEST(windows_roundtrip)
{
    struct store *st = store_open(tmpdir);
    struct windows *ix;
    struct window w1, w2;
    char *who1[] = { "bob@acme.com", "robert@acme.com" };
    char *who2[] = { "@globex.example" };
    const struct window *g;
    char id1[WINDOW_ID_MAX], id2[WINDOW_ID_MAX];
    ck_assert_ptr_nonnull(st);
    mk_window(&w1, who1, 2);
    ck_assert_int_eq(store_window_add(st, &w1), 0);
    ck_assert_str_eq(w1.id, "w1");
    mk_window(&w2, who2, 1);
    w2.until = 1800000000;
    w2.rrule = NULL;
    w2.reason = NULL;
    w2.owner = NULL;
    w2.action = ACTION_HOLD;
    w2.source = WSRC_IMAP;
    ck_assert_int_eq(store_window_add(st, &w2), 0);
    ck_assert_str_eq(w2.id, "w2");
    strcpy(id1, w1.id);
    strcpy(id2, w2.id);
    store_close(st);

    st = store_open(tmpdir);
    ck_assert_ptr_nonnull(st);
    ix = windows_new();
    ck_assert_ptr_nonnull(ix);
    ck_assert_int_eq(store_windows_load(st, ix), 0);
    ck_assert_uint_eq(windows_count(ix), 2);
    g = windows_get(ix, id1);
    ck_assert_ptr_nonnull(g);
    ck_assert_uint_eq(g->nwho, 2);
    ck_assert_str_eq(g->who[0], "bob@acme.com");
    ck_assert_str_eq(g->who[1], "robert@acme.com");
    ck_assert_int_eq(g->from, 1790000000);
    ck_assert(g->until == WHEN_NEVER);
    ck_assert_str_eq(g->rrule, "FREQ=WEEKLY;BYDAY=MO");
    ck_assert_int_eq(g->duration, 3600);
    ck_assert_str_eq(g->tz, "Europe/Berlin");
    ck_assert_int_eq(g->action, ACTION_FLAG);
    ck_assert_str_eq(g->reason, "renewal talks, don't push");
    ck_assert_str_eq(g->owner, "rep@example.com");
    ck_assert_int_eq(g->source, WSRC_RUNTIME);
    ck_assert_int_eq(g->created, 1789990000);
    g = windows_get(ix, id2);
    ck_assert_ptr_nonnull(g);
    ck_assert_uint_eq(g->nwho, 1);
    ck_assert_str_eq(g->who[0], "@globex.example");
    ck_assert_int_eq(g->until, 1800000000);
    ck_assert_ptr_null(g->rrule);
    ck_assert_ptr_null(g->reason);
    ck_assert_ptr_null(g->owner);
    ck_assert_int_eq(g->action, ACTION_HOLD);
    ck_assert_int_eq(g->source, WSRC_IMAP);
    windows_free(ix);

    /* a window with its own id is stored under it and replaced in place */
    mk_window(&w1, who2, 1);
    strcpy(w1.id, "imap1");
    ck_assert_int_eq(store_window_add(st, &w1), 0);
    w1.until = 1811111111;
    ck_assert_int_eq(store_window_add(st, &w1), 0);
    ix = windows_new();
    ck_assert_int_eq(store_windows_load(st, ix), 0);
    ck_assert_uint_eq(windows_count(ix), 3);
    g = windows_get(ix, "imap1");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(g->until, 1811111111);
    windows_free(ix);

    /* empty who list is refused */
    mk_window(&w1, who2, 0);
    ck_assert_int_eq(store_window_add(st, &w1), -1);
    ck_assert_int_eq(errno, EINVAL);
    store_close(st);
}
END_TEST

START_TEST(window_ids_not_reused)
{
    struct store *st = store_open(tmpdir);
    struct window w;
    char *who[] = { "a@b.example" };
    struct windows *ix;
    ck_assert_ptr_nonnull(st);
    mk_window(&w, who, 1);
    ck_assert_int_eq(store_window_add(st, &w), 0);
    ck_assert_str_eq(w.id, "w1");
    w.id[0] = '\0';
    ck_assert_int_eq(store_window_add(st, &w), 0);
    ck_assert_str_eq(w.id, "w2");
    ck_assert_int_eq(store_window_delete(st, "w2"), 0);
    ck_assert_int_eq(store_window_delete(st, "w2"), -1);
    ck_assert_int_eq(errno, ENOENT);
    w.id[0] = '\0';
    ck_assert_int_eq(store_window_add(st, &w), 0);
    ck_assert_str_eq(w.id, "w3");
    ck_assert_int_eq(store_window_delete(st, "w3"), 0);
    store_close(st);

    /* not even after a restart */
    st = store_open(tmpdir);
    ck_assert_ptr_nonnull(st);
    w.id[0] = '\0';
    ck_assert_int_eq(store_window_add(st, &w), 0);
    ck_assert_str_eq(w.id, "w4");
    ix = windows_new();
    ck_assert_int_eq(store_windows_load(st, ix), 0);
    ck_assert_uint_eq(windows_count(ix), 2);
    ck_assert_ptr_nonnull(windows_get(ix, "w1"));
    ck_assert_ptr_null(windows_get(ix, "w2"));
    ck_assert_ptr_null(windows_get(ix, "w3"));
    ck_assert_ptr_nonnull(windows_get(ix, "w4"));
    windows_free(ix);
    store_close(st);
}
END_TEST

struct collect {
    int n;
    time_t t[8];
    char ev[8][32];
    char detail[8][64];
    int stop_after;
};

static int collect_fn(const struct audit_rec *r, void *arg)
{
    struct collect *c = arg;
    if (c->n < 8) {
        c->t[c->n] = r->t;
        snprintf(c->ev[c->n], sizeof c->ev[0], "%s", r->event);
        snprintf(c->detail[c->n], sizeof c->detail[0], "%s",
                 r->detail ? r->detail : "(null)");
    }
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

START_TEST(audit_since)
{
    struct store *st = store_open(tmpdir);
    struct audit_rec r;
    struct collect c;
    ck_assert_ptr_nonnull(st);
    memset(&r, 0, sizeof r);
    r.t = 300; r.event = "released"; r.msg_id = "abc"; r.detail = "to bob";
    ck_assert_int_eq(store_audit(st, &r), 0);
    r.t = 100; r.event = "held"; r.rep = "rep@x"; r.contact = "bob@acme.com";
    r.window_id = "w1"; r.detail = NULL;
    ck_assert_int_eq(store_audit(st, &r), 0);
    r.t = 200; r.event = "flagged";
    ck_assert_int_eq(store_audit(st, &r), 0);
    r.event = NULL;
    ck_assert_int_eq(store_audit(st, &r), -1);

    memset(&c, 0, sizeof c);
    ck_assert_int_eq(store_audit_foreach(st, 150, collect_fn, &c), 0);
    ck_assert_int_eq(c.n, 2);
    ck_assert_int_eq(c.t[0], 200);
    ck_assert_str_eq(c.ev[0], "flagged");
    ck_assert_int_eq(c.t[1], 300);
    ck_assert_str_eq(c.ev[1], "released");
    ck_assert_str_eq(c.detail[1], "to bob");

    memset(&c, 0, sizeof c);
    ck_assert_int_eq(store_audit_foreach(st, 0, collect_fn, &c), 0);
    ck_assert_int_eq(c.n, 3);
    ck_assert_str_eq(c.ev[0], "held");
    ck_assert_str_eq(c.detail[0], "(null)");

    memset(&c, 0, sizeof c);
    c.stop_after = 1;
    ck_assert_int_eq(store_audit_foreach(st, 0, collect_fn, &c), 0);
    ck_assert_int_eq(c.n, 1);

    memset(&c, 0, sizeof c);
    ck_assert_int_eq(store_audit_foreach(st, 301, collect_fn, &c), 0);
    ck_assert_int_eq(c.n, 0);
    store_close(st);
}
END_TEST

START_TEST(seen)
{
    struct store *st = store_open(tmpdir);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(store_seen_has(st, "<m1@x>", "bob@acme.com"), 0);
    ck_assert_int_eq(store_seen_add(st, "<m1@x>", "bob@acme.com", "rep@x", 100), 0);
    ck_assert_int_eq(store_seen_add(st, "<m1@x>", "bob@acme.com", "rep@x", 200), 0);
    ck_assert_int_eq(store_seen_has(st, "<m1@x>", "bob@acme.com"), 1);
    ck_assert_int_eq(store_seen_has(st, "<m1@x>", "eve@acme.com"), 0);
    ck_assert_int_eq(store_seen_has(st, "<m2@x>", "bob@acme.com"), 0);
    store_close(st);
    st = store_open(tmpdir);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(store_seen_has(st, "<m1@x>", "bob@acme.com"), 1);
    store_close(st);
}
END_TEST

static int collect_cb(const char *key, const char *value, void *arg)
{
    char *buf = arg;
    strcat(buf, key);
    strcat(buf, "=");
    strcat(buf, value);
    strcat(buf, ";");
    return strlen(buf) > 200;
}

/* The window loader reads every "ended:<id>" row with one range query. */
START_TEST(kv_prefix)
{
    struct store *st = store_open(tmpdir);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(store_kv_set(st, "ended:f0123", "1"), 0);
    ck_assert_int_eq(store_kv_set(st, "ended:f0001", "1"), 0);
    ck_assert_int_eq(store_kv_set(st, "ended", "not me"), 0);
    ck_assert_int_eq(store_kv_set(st, "ended;x", "not me"), 0);
    ck_assert_int_eq(store_kv_set(st, "endeD:x", "not me"), 0);
    ck_assert_int_eq(store_kv_set(st, "imap.uid", "42"), 0);
    char buf[512] = "";
    ck_assert_int_eq(store_kv_foreach_prefix(st, "ended:", collect_cb, buf), 2);
    ck_assert_str_eq(buf, "ended:f0001=1;ended:f0123=1;");
    buf[0] = '\0';
    ck_assert_int_eq(store_kv_foreach_prefix(st, "nothing:", collect_cb, buf), 0);
    ck_assert_str_eq(buf, "");
    store_close(st);
}
END_TEST

START_TEST(kv)
{
    struct store *st = store_open(tmpdir);
    char *v;
    ck_assert_ptr_nonnull(st);
    errno = 0;
    ck_assert_ptr_null(store_kv_get(st, "imap.uid"));
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_int_eq(store_kv_set(st, "imap.uid", "41"), 0);
    ck_assert_int_eq(store_kv_set(st, "imap.uid", "42"), 0);
    ck_assert_int_eq(store_kv_set(st, "caldav.token", "http://x/sync/1"), 0);
    v = store_kv_get(st, "imap.uid");
    ck_assert_str_eq(v, "42");
    free(v);
    store_close(st);

    st = store_open(tmpdir);
    ck_assert_ptr_nonnull(st);
    v = store_kv_get(st, "caldav.token");
    ck_assert_str_eq(v, "http://x/sync/1");
    free(v);
    ck_assert_int_eq(store_kv_del(st, "imap.uid"), 0);
    ck_assert_ptr_null(store_kv_get(st, "imap.uid"));
    store_close(st);
}
END_TEST

/* Open the database file directly (as another process would). */
static sqlite3 *raw_open(void)
{
    char p[512];
    sqlite3 *db = NULL;
    snprintf(p, sizeof p, "%s/untild.db", tmpdir);
    ck_assert_int_eq(sqlite3_open(p, &db), SQLITE_OK);
    return db;
}

static long long raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q;
    long long v;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

/* The plan's detail lines joined: which index a statement uses. */
static void raw_plan(sqlite3 *db, const char *sql, char *out, size_t n)
{
    sqlite3_stmt *q;
    char buf[1024];
    size_t len = 0;
    snprintf(buf, sizeof buf, "EXPLAIN QUERY PLAN %s", sql);
    ck_assert_int_eq(sqlite3_prepare_v2(db, buf, -1, &q, NULL), SQLITE_OK);
    out[0] = '\0';
    while (sqlite3_step(q) == SQLITE_ROW && len < n)
        len += (size_t)snprintf(out + len, n - len, "%s;",
                                (const char *)sqlite3_column_text(q, 3));
    sqlite3_finalize(q);
}

static int count_fn(const struct audit_rec *r, void *arg)
{
    (void)r;
    ++*(int *)arg;
    return 0;
}

START_TEST(prune)
{
    struct store *st = store_open(tmpdir);
    struct audit_rec r;
    struct collect c;
    struct windows *ix;
    struct window w;
    char *who[] = { "bob@acme.com" };
    char *v;
    int n = 0;
    ck_assert_ptr_nonnull(st);
    memset(&r, 0, sizeof r);
    r.event = "held";
    r.t = 100; ck_assert_int_eq(store_audit(st, &r), 0);
    r.t = 199; ck_assert_int_eq(store_audit(st, &r), 0);
    r.t = 200; r.event = "flagged"; ck_assert_int_eq(store_audit(st, &r), 0);
    r.t = 500; r.event = "released"; ck_assert_int_eq(store_audit(st, &r), 0);
    ck_assert_int_eq(store_seen_add(st, "<old@x>", "bob@acme.com", "rep@x", 150), 0);
    ck_assert_int_eq(store_seen_add(st, "<new@x>", "bob@acme.com", "rep@x", 250), 0);
    /* Run-time windows and kv carry times far before the cut: they stay. */
    mk_window(&w, who, 1);
    w.from = 1;
    w.created = 1;
    ck_assert_int_eq(store_window_add(st, &w), 0);
    ck_assert_int_eq(store_kv_set(st, "imap.uid", "7"), 0);

    /* t < 200 goes: two audit rows and one seen row. */
    ck_assert_int_eq(store_prune(st, 200), 3);
    memset(&c, 0, sizeof c);
    ck_assert_int_eq(store_audit_foreach(st, 0, collect_fn, &c), 0);
    ck_assert_int_eq(c.n, 2);
    ck_assert_int_eq(c.t[0], 200);
    ck_assert_str_eq(c.ev[0], "flagged");
    ck_assert_int_eq(c.t[1], 500);
    ck_assert_int_eq(store_seen_has(st, "<old@x>", "bob@acme.com"), 0);
    ck_assert_int_eq(store_seen_has(st, "<new@x>", "bob@acme.com"), 1);
    ix = windows_new();
    ck_assert_ptr_nonnull(ix);
    ck_assert_int_eq(store_windows_load(st, ix), 0);
    ck_assert_uint_eq(windows_count(ix), 1);
    ck_assert_ptr_nonnull(windows_get(ix, w.id));
    windows_free(ix);
    v = store_kv_get(st, "imap.uid");
    ck_assert_str_eq(v, "7");
    free(v);

    /* Nothing left before the cut: 0, and again idempotent. */
    ck_assert_int_eq(store_prune(st, 200), 0);
    ck_assert_int_eq(store_prune(st, 0), 0);
    /* A cut after everything empties both tables, and the store still works. */
    ck_assert_int_eq(store_prune(st, 1000), 3);
    ck_assert_int_eq(store_audit_foreach(st, 0, count_fn, &n), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(store_seen_has(st, "<new@x>", "bob@acme.com"), 0);
    r.t = 1001; ck_assert_int_eq(store_audit(st, &r), 0);
    ck_assert_int_eq(store_audit_foreach(st, 0, count_fn, &n), 0);
    ck_assert_int_eq(n, 1);
    store_close(st);
}
END_TEST

/* A version-2 database (before retention) gains the seen(t) index on open,
 * and both prune deletes are index range scans, not table scans. */
START_TEST(migrate_v3_prune_indexed)
{
    sqlite3 *db;
    struct store *st = store_open(tmpdir);
    char plan[1024];
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(store_seen_add(st, "<m@x>", "bob@acme.com", "rep@x", 10), 0);
    store_close(st);
    db = raw_open();
    ck_assert_int_eq(raw_int(db, "PRAGMA user_version"), 8);
    /* Turn it back into what untild with schema 2 left behind. */
    ck_assert_int_eq(sqlite3_exec(db, "DROP INDEX seen_t; PRAGMA user_version = 2",
                                  NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'seen_t'"), 0);
    sqlite3_close(db);

    st = store_open(tmpdir);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(store_seen_has(st, "<m@x>", "bob@acme.com"), 1);
    store_close(st);
    db = raw_open();
    ck_assert_int_eq(raw_int(db, "PRAGMA user_version"), 8);
    ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'seen_t'"), 1);
    raw_plan(db, "DELETE FROM seen WHERE t < 5", plan, sizeof plan);
    ck_assert_msg(strstr(plan, "INDEX seen_t") != NULL, "plan: %s", plan);
    raw_plan(db, "DELETE FROM audit WHERE t < 5", plan, sizeof plan);
    ck_assert_msg(strstr(plan, "INDEX audit_t") != NULL, "plan: %s", plan);
    sqlite3_close(db);
}
END_TEST

/* Issue 11.13: the invitation index (evidence for calendar replies). */
/* Issue 14: the webhook queue, in order per webhook, read and emptied by
 * a second connection (a delivery thread's); the audit hook sees rows. */
static int audits_seen;
static void count_audit(void *arg, const struct audit_rec *r)
{
    (void)arg;
    if (r->event && !strcmp(r->event, "held"))
        audits_seen++;
}

START_TEST(webhook_queue)
{
    struct store *st = store_open(tmpdir);
    struct store_wh_row row;
    ck_assert_ptr_nonnull(st);
    struct store_wh_new rows[] = {
        { "crm", "evt_1", "{\"n\":1}", 100 },
        { "other", "evt_1", "{\"n\":1}", 100 },
    }, more = { "crm", "evt_2", "{\"n\":2}", 101 };
    ck_assert_int_eq(store_webhook_add(st, rows, 2), 0);       /* one transaction */
    ck_assert_int_eq(store_webhook_add(st, &more, 1), 0);
    ck_assert_int_eq(store_webhook_count(st, "crm"), 2);
    ck_assert_int_eq(store_webhook_count(st, "none"), 0);
    struct store_whq *q = store_whq_open(tmpdir);
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(store_whq_head(q, "crm", &row), 1);
    ck_assert_str_eq(row.event_id, "evt_1");
    ck_assert_str_eq(row.body, "{\"n\":1}");
    ck_assert_int_eq(row.created, 100);
    ck_assert_int_eq(store_whq_delete(q, row.seq), 0);
    store_wh_row_clear(&row);
    ck_assert_int_eq(store_whq_head(q, "crm", &row), 1);
    ck_assert_str_eq(row.event_id, "evt_2");
    ck_assert_int_eq(store_whq_delete(q, row.seq), 0);
    store_wh_row_clear(&row);
    ck_assert_int_eq(store_whq_head(q, "crm", &row), 0);
    ck_assert_int_eq(store_webhook_count(st, "crm"), 0);
    ck_assert_int_eq(store_webhook_count(st, "other"), 1);   /* each webhook its own rows */
    store_whq_close(q);
    store_on_audit(st, count_audit, NULL);
    ck_assert_int_eq(store_audit(st, &(struct audit_rec){ 5, "held", "rep@x", "a@b", NULL, NULL, NULL }), 0);
    ck_assert_int_eq(store_audit(st, &(struct audit_rec){ 6, "denied", "rep@x", NULL, NULL, NULL, NULL }), 0);
    ck_assert_int_eq(audits_seen, 1);
    store_close(st);
    st = store_open(tmpdir);                                  /* rows survive a reopen */
    ck_assert_int_eq(store_webhook_count(st, "other"), 1);
    store_close(st);
}
END_TEST

START_TEST(invitations)
{
    struct store *st = store_open(tmpdir);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(store_invite_has(st, "rep@x", "uid-1", "jane@acme.com"), 0);
    ck_assert_int_eq(store_invite_add(st, "rep@x", "uid-1", "jane@acme.com", 100), 0);
    ck_assert_int_eq(store_invite_add(st, "rep@x", "uid-1", "jane@acme.com", 300), 0);
    ck_assert_int_eq(store_invite_has(st, "REP@X", "uid-1", "Jane@Acme.com"), 1);
    ck_assert_int_eq(store_invite_has(st, "rep@x", "UID-1", "jane@acme.com"), 0);
    ck_assert_int_eq(store_invite_has(st, "other@x", "uid-1", "jane@acme.com"), 0);
    ck_assert_int_eq(store_invite_has(st, "rep@x", "uid-1", "sam@acme.com"), 0);
    ck_assert_int_eq(store_invite_add(st, NULL, "u", "o", 1), -1);
    /* kept by a prune before its (refreshed) time, gone after */
    ck_assert_int_eq(store_prune(st, 200), 0);
    ck_assert_int_eq(store_invite_has(st, "rep@x", "uid-1", "jane@acme.com"), 1);
    ck_assert_int_eq(store_prune(st, 301), 1);
    ck_assert_int_eq(store_invite_has(st, "rep@x", "uid-1", "jane@acme.com"), 0);
    store_close(st);
}
END_TEST

START_TEST(wal_and_schema)
{
    struct store *st = store_open(tmpdir);
    char p[512];
    struct stat sb;
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(store_kv_set(st, "k", "v"), 0);
    snprintf(p, sizeof p, "%s/untild.db-wal", tmpdir);
    ck_assert_int_eq(stat(p, &sb), 0);  /* WAL mode in force */
    store_close(st);
    /* reopening an existing database keeps it */
    st = store_open(tmpdir);
    ck_assert_ptr_nonnull(st);
    store_close(st);
    /* a state dir that cannot be created */
    ck_assert_ptr_null(store_open("/proc/nonexistent/untild"));
}
END_TEST

static int sync_mode(struct store *st)
{
    sqlite3_stmt *q;
    ck_assert_int_eq(sqlite3_prepare_v2(st->db, "PRAGMA synchronous", -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    int v = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    return v;
}

/* A batch (window import): one transaction from the first begin to the
 * last end (the writes inside are savepoints: a failed one is rolled back
 * alone), committed with synchronous=FULL (2): one fsync for all of it. */
static int windows_on_disk(const char *dir)
{
    char path[512];
    sqlite3 *db;
    sqlite3_stmt *q;
    snprintf(path, sizeof path, "%s/untild.db", dir);
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM windows", -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    int n = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

START_TEST(batch)
{
    struct store *st = store_open(tmpdir);
    struct window w, w2;
    char *who[] = { "bob@acme.com" }, *who2[] = { "ann@acme.com" };
    ck_assert_ptr_nonnull(st);
    int before = windows_on_disk(tmpdir);
    ck_assert_int_eq(sync_mode(st), 2);
    ck_assert_int_eq(store_batch_begin(st), 0);
    ck_assert_int_eq(store_batch_begin(st), 0);
    ck_assert_int_eq(sqlite3_get_autocommit(st->db), 0);      /* one transaction */
    mk_window(&w, who, 1);
    ck_assert_int_eq(store_window_add(st, &w), 0);
    ck_assert_int_eq(store_audit(st, &(struct audit_rec){ 1, "window-added", "r", "bob@acme.com", w.id, NULL,
                                                          NULL }), 0);
    mk_window(&w2, who2, 1);
    ck_assert_int_eq(store_window_add(st, &w2), 0);
    ck_assert_int_eq(windows_on_disk(tmpdir), before);         /* not committed yet */
    ck_assert_int_eq(store_batch_end(st), 0);
    ck_assert_int_eq(sqlite3_get_autocommit(st->db), 0);      /* nested end: still open */
    ck_assert_int_eq(store_batch_end(st), 0);
    ck_assert_int_eq(sqlite3_get_autocommit(st->db), 1);
    ck_assert_int_eq(sync_mode(st), 2);
    ck_assert_int_eq(windows_on_disk(tmpdir), before + 2);
    ck_assert_int_eq(store_batch_end(st), 0);      /* unbalanced: nothing */
    ck_assert_int_eq(sync_mode(st), 2);
    store_close(st);
}
END_TEST

/* Issue 13: with sharing on, each change to a shared table is journalled
 * with it; other keys are not; ack forgets what PostgreSQL confirmed. */
static int wakes;
static void count_wake(void *arg) { (void)arg; wakes++; }

START_TEST(shared_journal)
{
    struct store *st = store_open(tmpdir);
    struct window w;
    char *who[] = { "bob@acme.com", "robert@acme.com" };
    struct store_change c[8];
    ck_assert_ptr_nonnull(st);
    wakes = 0;
    store_share(st, "par1", count_wake, NULL);
    mk_window(&w, who, 2);
    ck_assert_int_eq(store_window_add(st, &w), 0);
    ck_assert_str_eq(w.id, "w1-par1");             /* unique across gateways */
    struct audit_rec r = { 100, "held", "rep@x", "bob@acme.com", NULL, "m1", NULL };
    ck_assert_int_eq(store_audit(st, &r), 0);
    ck_assert_int_eq(store_kv_set(st, "ended:fabc", "1"), 0);
    ck_assert_int_eq(store_kv_set(st, "imap:uid", "7"), 0);        /* local */
    ck_assert_int_eq(store_window_delete(st, "w1-par1"), 0);
    ck_assert_int_eq(store_prune(st, 50), 0);
    ck_assert_int_eq(wakes, 5);
    ck_assert_int_eq(store_journal_pending(st), 5);

    struct store_journal *j = store_journal_open(tmpdir);
    ck_assert_ptr_nonnull(j);
    int n = store_journal_read(j, 0, c, 8);
    ck_assert_int_eq(n, 5);
    ck_assert_int_eq(c[0].kind, 'w');
    ck_assert_str_eq(c[0].t[0], "w1-par1");
    ck_assert_str_eq(c[0].t[1], "bob@acme.com,robert@acme.com");
    ck_assert_int_eq(c[0].i[1], (int64_t)WHEN_NEVER);
    ck_assert_int_eq(c[1].kind, 'a');
    ck_assert_str_eq(c[1].t[0], "held");
    ck_assert_str_eq(c[1].t[4], "m1");
    ck_assert_int_eq(c[2].kind, 'e');
    ck_assert_str_eq(c[2].t[0], "fabc");
    ck_assert_int_eq(c[2].i[4], WSRC_FILE);
    ck_assert_int_eq(c[3].kind, 'e');
    ck_assert_int_eq(c[3].i[4], WSRC_RUNTIME);
    ck_assert_int_eq(c[4].kind, 'p');
    ck_assert_int_eq(c[4].i[0], 50);
    ck_assert_int_lt(c[0].seq, c[1].seq);
    for (int k = 1; k < 5; k++)   /* strictly increasing, even within one ms */
        ck_assert_int_lt(c[k - 1].changed_at, c[k].changed_at);
    ck_assert_int_eq(store_journal_read(j, c[2].seq, c + 5, 3), 2);
    int64_t upto = c[2].seq;
    for (int k = 0; k < 7; k++)
        store_change_clear(&c[k]);
    ck_assert_int_eq(store_journal_ack(st, upto), 0);
    ck_assert_int_eq(store_journal_pending(st), 2);
    store_journal_close(j);
    store_close(st);
}
END_TEST

static struct store_change remote(char kind, const char *id, int64_t at)
{
    struct store_change c = { .kind = kind, .changed_at = at };
    c.origin = strdup("b");
    c.t[0] = strdup(id);
    if (kind == 'w') {
        c.t[1] = strdup("carol@hooli.com");
        c.t[5] = strdup("rep@x");
        c.i[1] = 1800000000;
        c.i[2] = 86400;
        c.i[3] = ACTION_HOLD;
        c.i[4] = WSRC_RUNTIME;
    }
    return c;
}

static size_t count_windows(struct store *st)
{
    struct windows *ix = windows_new();
    size_t n;
    ck_assert_int_eq(store_windows_load(st, ix), 0);
    n = windows_count(ix);
    windows_free(ix);
    return n;
}

/* The conflict rule on the local copy: the latest change wins, an end wins
 * a tie, an older change never resurrects an ended window; the feed
 * position is kept with the changes. */
START_TEST(shared_apply_conflict_rule)
{
    struct store *st = store_open(tmpdir);
    struct store_change c;
    ck_assert_ptr_nonnull(st);
    c = remote('w', "w5-b", 100);
    ck_assert_int_eq(store_apply(st, &c, 1, 11), 0);
    ck_assert_int_eq(c.applied, 1);
    ck_assert_int_eq(count_windows(st), 1);
    store_change_clear(&c);
    c = remote('w', "w5-b", 50);                     /* older: ignored */
    ck_assert_int_eq(store_apply(st, &c, 1, 12), 0);
    ck_assert_int_eq(c.applied, 0);
    store_change_clear(&c);
    c = remote('e', "w5-b", 100);                    /* tie: the end wins */
    ck_assert_int_eq(store_apply(st, &c, 1, 13), 0);
    ck_assert_int_eq(c.applied, 1);
    ck_assert_int_eq(count_windows(st), 0);
    store_change_clear(&c);
    c = remote('w', "w5-b", 90);                     /* older than the end */
    ck_assert_int_eq(store_apply(st, &c, 1, 14), 0);
    ck_assert_int_eq(c.applied, 0);
    ck_assert_int_eq(count_windows(st), 0);
    store_change_clear(&c);
    c = remote('w', "w5-b", 200);                    /* later: wins */
    ck_assert_int_eq(store_apply(st, &c, 1, 15), 0);
    ck_assert_int_eq(c.applied, 1);
    ck_assert_int_eq(count_windows(st), 1);
    store_change_clear(&c);
    c = remote('e', "fdeadbeef", 300);
    c.i[4] = WSRC_FILE;
    ck_assert_int_eq(store_apply(st, &c, 1, 16), 0);
    store_change_clear(&c);
    char *v = store_kv_get(st, "ended:fdeadbeef");
    ck_assert_ptr_nonnull(v);
    free(v);
    ck_assert_int_eq(store_feed_seq(st), 16);
    ck_assert_int_eq(store_journal_pending(st), 0);  /* applying never journals */
    store_close(st);
}
END_TEST

/* ---- issue 12: follow-ups sent, reps of a contact, contact history ---- */

static int collect_rep(const char *rep, void *arg)
{
    char *buf = arg;
    strcat(buf, rep);
    strcat(buf, ";");
    return 0;
}

static int collect_row(const struct audit_rec *r, void *arg)
{
    char *buf = arg;
    strcat(buf, r->event);
    strcat(buf, r->msg_id ? r->msg_id : "-");
    strcat(buf, ";");
    return 0;
}

static int collect_contact(const struct store_contact *c, void *arg)
{
    char *buf = arg;
    char one[200];
    snprintf(one, sizeof one, "%ld %s %s %s;", (long)c->t, c->contact, c->rep ? c->rep : "-", c->channel);
    strcat(buf, one);
    return 0;
}

START_TEST(followup_rows)
{
    struct store *st = store_open(tmpdir);
    char buf[1024] = "";
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(store_followup_sent(st, "w1", 1000), 0);
    ck_assert_int_eq(store_followup_mark(st, "w1", 1000, 5000), 0);
    ck_assert_int_eq(store_followup_mark(st, "w1", 1000, 5001), 0);   /* idempotent */
    ck_assert_int_eq(store_followup_sent(st, "w1", 1000), 1);
    ck_assert_int_eq(store_followup_sent(st, "w1", 2000), 0);         /* lengthened: new end */
    /* the window's audit rows within a time range */
    ck_assert_int_eq(store_audit(st, &(struct audit_rec){ 100, "window-added", "alice", "jane@acme.com",
                                 "w1", "m1@x", "r" }), 0);
    ck_assert_int_eq(store_audit(st, &(struct audit_rec){ 300, "window-ended", "alice", "jane@acme.com",
                                 "w1", NULL, NULL }), 0);
    ck_assert_int_eq(store_audit_foreach_window(st, "w1", 99, 101, collect_row, buf), 0);
    ck_assert_str_eq(buf, "window-addedm1@x;");
    /* reps held/flagged/rejected for a contact: address and domain keys */
    store_audit(st, &(struct audit_rec){ 150, "held", "bob", "jane@acme.com", NULL, NULL, NULL });
    store_audit(st, &(struct audit_rec){ 160, "flagged", "carol", "joe@sales.acme.com", NULL, NULL, NULL });
    store_audit(st, &(struct audit_rec){ 170, "released", "dave", "jane@acme.com", NULL, NULL, NULL });
    store_audit(st, &(struct audit_rec){ 180, "rejected", "erin", "x@notacme.com", NULL, NULL, NULL });
    store_audit(st, &(struct audit_rec){ 900, "held", "late", "jane@acme.com", NULL, NULL, NULL });
    buf[0] = '\0';
    ck_assert_int_eq(store_audit_reps(st, "jane@acme.com", 0, 500, collect_rep, buf), 0);
    ck_assert_str_eq(buf, "bob;");
    buf[0] = '\0';
    ck_assert_int_eq(store_audit_reps(st, "@acme.com", 0, 500, collect_rep, buf), 0);
    ck_assert_str_eq(buf, "bob;carol;");
    store_close(st);
}
END_TEST

START_TEST(contacts_history)
{
    struct store *st = store_open(tmpdir);
    char buf[2048] = "";
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(store_contact_add(st, &(struct store_contact){ 100, "jane@acme.com", "bob", "gate", "m1" }), 0);
    ck_assert_int_eq(store_contact_add(st, &(struct store_contact){ 200, "joe@acme.com", "carol", "imap-sent", NULL }), 0);
    ck_assert_int_eq(store_contact_add(st, &(struct store_contact){ 300, "jane@acme.com", NULL, "caldav", NULL }), 0);
    ck_assert_int_eq(store_contact_add(st, &(struct store_contact){ 400, "x@sub.acme.com", "bob", "gate", NULL }), 0);
    ck_assert_int_eq(store_contact_add(st, &(struct store_contact){ 1, "no-domain", "bob", "gate", NULL }), -1);
    ck_assert_int_eq(store_contacts(st, "jane@acme.com", 0, 10, collect_contact, buf), 0);
    ck_assert_str_eq(buf, "300 jane@acme.com - caldav;100 jane@acme.com bob gate;");
    buf[0] = '\0';
    ck_assert_int_eq(store_contacts(st, "@acme.com", 150, 10, collect_contact, buf), 0);
    ck_assert_str_eq(buf, "300 jane@acme.com - caldav;200 joe@acme.com carol imap-sent;");
    buf[0] = '\0';
    ck_assert_int_eq(store_contacts(st, "@acme.com", 0, 1, collect_contact, buf), 0);
    ck_assert_str_eq(buf, "300 jane@acme.com - caldav;");
    /* retention prunes the history; sent follow-ups 31 days later */
    ck_assert_int_eq(store_followup_mark(st, "w9", 1, 250), 0);
    ck_assert_int_gt(store_prune(st, 250), 0);
    buf[0] = '\0';
    store_contacts(st, "@acme.com", 0, 10, collect_contact, buf);
    ck_assert_str_eq(buf, "300 jane@acme.com - caldav;");
    ck_assert_int_eq(store_followup_sent(st, "w9", 1), 1);
    store_prune(st, 250 + 31 * 86400 + 1);
    ck_assert_int_eq(store_followup_sent(st, "w9", 1), 0);
    store_close(st);
}
END_TEST

static int collect_cad(const char *who, const char *opts, const char *by, time_t t, void *arg)
{
    char *buf = arg;
    char one[300];
    snprintf(one, sizeof one, "%s=%s(%s,%ld);", who, opts, by ? by : "-", (long)t);
    strcat(buf, one);
    return 0;
}

START_TEST(inbound_range_overrides)
{
    struct store *st = store_open(tmpdir);
    char buf[1024] = "";
    ck_assert_ptr_nonnull(st);
    /* inbound: what a contact sent the rep (reply exemption) */
    ck_assert_int_eq(store_inbound_add(st, "c1@acme.com", "jane@acme.com", "rep", 100), 0);
    ck_assert_int_eq(store_inbound_add(st, "c1@acme.com", "jane@acme.com", "rep", 100), 0);
    ck_assert_int_eq(store_inbound_has(st, "c1@acme.com", "jane@acme.com"), 1);
    ck_assert_int_eq(store_inbound_has(st, "c1@acme.com", "joe@acme.com"), 0);
    /* contacts in a time range, oldest first, until excluded */
    store_contact_add(st, &(struct store_contact){ 10, "a@x.com", "bob", "gate", NULL });
    store_contact_add(st, &(struct store_contact){ 20, "b@x.com", "bob", "imap-sent", NULL });
    store_contact_add(st, &(struct store_contact){ 30, "c@x.com", "bob", "gate", NULL });
    ck_assert_int_eq(store_contacts_range(st, 10, 30, 10, collect_contact, buf), 0);
    ck_assert_str_eq(buf, "10 a@x.com bob gate;20 b@x.com bob imap-sent;");
    /* forgetting a contact counted at delivery start */
    store_contact_add(st, &(struct store_contact){ 40, "d@x.com", "bob", "release", "spool1" });
    ck_assert_int_eq(store_contact_forget(st, "d@x.com", "spool1", "release"), 0);
    buf[0] = '\0';
    store_contacts(st, "d@x.com", 0, 10, collect_contact, buf);
    ck_assert_str_eq(buf, "");
    /* cadence overrides */
    ck_assert_int_eq(store_cadence_set(st, "@acme.com", "action=flag", "admin", 5), 0);
    ck_assert_int_eq(store_cadence_set(st, "@acme.com", "min_gap=14d", "root", 6), 0);
    ck_assert_int_eq(store_cadence_set(st, "b@x.com", "action=allow", NULL, 7), 0);
    buf[0] = '\0';
    ck_assert_int_eq(store_cadence_foreach(st, collect_cad, buf), 0);
    ck_assert_str_eq(buf, "@acme.com=min_gap=14d(root,6);b@x.com=action=allow(-,7);");
    ck_assert_int_eq(store_cadence_del(st, "b@x.com"), 0);
    ck_assert_int_eq(store_cadence_del(st, "b@x.com"), -1);
    ck_assert_int_eq(errno, ENOENT);
    /* retention prunes inbound too */
    ck_assert_int_gt(store_prune(st, 200), 0);
    ck_assert_int_eq(store_inbound_has(st, "c1@acme.com", "jane@acme.com"), 0);
    store_close(st);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("store");
    TCase *tc = tcase_create("store");
    SRunner *sr;
    int failed;
    setenv("TZ", "UTC", 1);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, windows_roundtrip);
    tcase_add_test(tc, window_ids_not_reused);
    tcase_add_test(tc, audit_since);
    tcase_add_test(tc, seen);
    tcase_add_test(tc, kv);
    tcase_add_test(tc, kv_prefix);
    tcase_add_test(tc, wal_and_schema);
    tcase_add_test(tc, batch);
    tcase_add_test(tc, prune);
    tcase_add_test(tc, migrate_v3_prune_indexed);
    tcase_add_test(tc, invitations);
    tcase_add_test(tc, webhook_queue);
    tcase_add_test(tc, shared_journal);
    tcase_add_test(tc, shared_apply_conflict_rule);
    tcase_add_test(tc, followup_rows);
    tcase_add_test(tc, contacts_history);
    tcase_add_test(tc, inbound_range_overrides);
    suite_add_tcase(su, tc);
    sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
