/* store_pg.c - several gateways share windows, ends, audit, seen messages
 * and invitations through PostgreSQL ([store] url).
 *
 * Synopsis: store_pg_start after store_open; store_pg_stop at shutdown;
 * store_pg_status for untilctl status; store_pg_check for untild -t.
 *
 * Shape: the local SQLite store stays the one the loop reads and writes.
 * With sharing on (store_share), each change to a shared table commits
 * together with a journal row; one database thread (libpq blocks, the
 * loop must not) replays the journal to PostgreSQL in batches, each in a
 * transaction serialised by an advisory lock, so the feed's sequence
 * numbers become visible in order; the loop then forgets the confirmed
 * rows (store_journal_ack). The thread LISTENs on "untild" and, on a
 * notification (or every retry_interval), reads the feed: every row of
 * the shared tables with a sequence number above its cursor. Rows from
 * other gateways go to the loop (loop_post), which applies them to the
 * local copy (store_apply: the latest window change wins, an end wins a
 * tie) and to the window index one window at a time (windows_remove /
 * windows_add, then release_kick): never a full reload.
 *
 * Outage: the thread reconnects every retry_interval; meanwhile the loop
 * keeps deciding from the index and the local copy, and the journal grows.
 * Nothing is decided from PostgreSQL directly, so nothing known is allowed
 * because the database is away. The status says "degraded since".
 *
 * Schema: untild_schema holds the version; migrations run under a session
 * advisory lock, so one gateway migrates and the others wait; a database
 * newer than this untild is refused (degraded, with the reason).
 *
 * Diagnostics: info on connect and recovery, warn "store degraded since"
 * once per outage, info per applied window change with its propagation
 * latency (ms from the change at its origin to the index here). */
#include "untild/store_pg.h"
#include "untild/config.h"
#include "untild/daemon.h"
#include "untild/json.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/release.h"
#include "untild/secret.h"
#include "untild/store.h"
#include "untild/strbuf.h"
#include "untild/when.h"
#include "untild/windows.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define PG_SCHEMA_VERSION 1
#define PG_LOCK_MIGRATE 0x756e74696c0001LL   /* "until" + 1 */
#define PG_LOCK_WRITE   0x756e74696c0002LL
#define LAT_RING 1024
#define FEED_INFLIGHT 4        /* feed batches posted, not yet applied: bounds memory */
#define LIVE_MS 60000          /* older changes are catch-up, not propagation */

struct store_pg {
    struct untild *u;
    struct loop *loop;
    pthread_t th;
    int efd;
    atomic_int stop;
    atomic_llong rewind;        /* >= 0: the loop asks to refetch from here */
    atomic_int inflight;        /* feed batches posted and not yet applied */
    /* read-only copies for the thread */
    char *url, *pwfile, *pwcmd, *node, *state_dir;
    int batch, retry;
    /* the thread's own */
    PGconn *pg;
    struct store_journal *j;
    int64_t jdone, cursor;
    int tstate;                 /* 0 never connected, 1 ok, 2 degraded */
    /* the loop's own */
    int connected;
    time_t degraded_since;
    char error[256];
    unsigned long applied, replayed, caught_up;
    int64_t lat[LAT_RING];
    size_t nlat;
};

static const char *const migrations[PG_SCHEMA_VERSION + 1] = {
    NULL,
    "CREATE SEQUENCE untild_seq;"
    "CREATE TABLE untild_windows (id text PRIMARY KEY, ended boolean NOT NULL,"
    " changed_at bigint NOT NULL, origin text NOT NULL, seq bigint NOT NULL,"
    " who text, rrule text, tz text, reason text, owner text, from_t bigint,"
    " until_t bigint, duration bigint, action int, source int, created bigint);"
    "CREATE INDEX untild_windows_seq ON untild_windows (seq);"
    "CREATE TABLE untild_audit (seq bigint PRIMARY KEY, origin text NOT NULL,"
    " jseq bigint NOT NULL, changed_at bigint NOT NULL, t bigint NOT NULL,"
    " event text NOT NULL, rep text, contact text, window_id text, msg_id text,"
    " detail text, UNIQUE (origin, jseq, changed_at));"
    "CREATE INDEX untild_audit_t ON untild_audit (t);"
    "CREATE TABLE untild_seen (message_id text NOT NULL, contact text NOT NULL,"
    " rep text, t bigint NOT NULL, origin text NOT NULL, seq bigint NOT NULL,"
    " PRIMARY KEY (message_id, contact));"
    "CREATE INDEX untild_seen_seq ON untild_seen (seq);"
    "CREATE INDEX untild_seen_t ON untild_seen (t);"
    "CREATE TABLE untild_invitations (rep text NOT NULL, uid text NOT NULL,"
    " organizer text NOT NULL, t bigint NOT NULL, origin text NOT NULL,"
    " seq bigint NOT NULL);"
    "CREATE UNIQUE INDEX untild_invitations_key ON untild_invitations"
    " (lower(rep), uid, lower(organizer));"
    "CREATE INDEX untild_invitations_seq ON untild_invitations (seq);"
    "CREATE INDEX untild_invitations_t ON untild_invitations (t);",
};

/* Windows: the latest change wins; an end wins a tie (the same rule as
 * store.c apply_window, so every gateway converges). */
static const char sql_window[] =
    "INSERT INTO untild_windows AS w (id, ended, changed_at, origin, seq, who, rrule,"
    " tz, reason, owner, from_t, until_t, duration, action, source, created)"
    " VALUES ($3, false, $2, $1, nextval('untild_seq'), $4, $5, $6, $7, $8, $9, $10,"
    " $11, $12, $13, $14)"
    " ON CONFLICT (id) DO UPDATE SET ended = false, changed_at = excluded.changed_at,"
    " origin = excluded.origin, seq = excluded.seq, who = excluded.who,"
    " rrule = excluded.rrule, tz = excluded.tz, reason = excluded.reason,"
    " owner = excluded.owner, from_t = excluded.from_t, until_t = excluded.until_t,"
    " duration = excluded.duration, action = excluded.action,"
    " source = excluded.source, created = excluded.created"
    " WHERE w.changed_at < excluded.changed_at";
static const char sql_end[] =
    "INSERT INTO untild_windows AS w (id, ended, changed_at, origin, seq, source)"
    " VALUES ($3, true, $2, $1, nextval('untild_seq'), $4)"
    " ON CONFLICT (id) DO UPDATE SET ended = true, changed_at = excluded.changed_at,"
    " origin = excluded.origin, seq = excluded.seq"
    " WHERE w.changed_at < excluded.changed_at"
    " OR (w.changed_at = excluded.changed_at AND NOT w.ended)";
/* A journal row replayed twice (crash between commit and ack) is one row. */
static const char sql_audit[] =
    "INSERT INTO untild_audit (seq, origin, jseq, changed_at, t, event, rep, contact,"
    " window_id, msg_id, detail) VALUES (nextval('untild_seq'), $1, $2, $3, $4, $5,"
    " $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING";
static const char sql_seen[] =
    "INSERT INTO untild_seen (origin, message_id, contact, rep, t, seq)"
    " VALUES ($1, $2, $3, $4, $5, nextval('untild_seq')) ON CONFLICT DO NOTHING";
static const char sql_invite[] =
    "INSERT INTO untild_invitations AS v (origin, rep, uid, organizer, t, seq)"
    " VALUES ($1, $2, $3, $4, $5, nextval('untild_seq'))"
    " ON CONFLICT (lower(rep), uid, lower(organizer)) DO UPDATE SET t = excluded.t,"
    " origin = excluded.origin, seq = excluded.seq WHERE v.t < excluded.t";
/* The feed: every shared row above the cursor, in commit order. Each
 * table's first $2 rows (an index range scan) contain the first $2 of the
 * union, so the final sort sees at most 4 * $2 rows, however far behind
 * the cursor is (one statement: one snapshot). */
static const char sql_feed[] =
    "(SELECT seq, CASE WHEN ended THEN 'e' ELSE 'w' END AS kind, changed_at,"
    " origin, id AS t0, who AS t1, rrule AS t2, tz AS t3, reason AS t4, owner AS t5,"
    " from_t AS i0, until_t AS i1, duration AS i2, action::bigint AS i3,"
    " source::bigint AS i4, created AS i5 FROM untild_windows WHERE seq > $1"
    " ORDER BY seq LIMIT $2)"
    " UNION ALL (SELECT seq, 'a', changed_at, origin, event, rep, contact, window_id,"
    " msg_id, detail, t, NULL, NULL, NULL, NULL, NULL FROM untild_audit WHERE seq > $1"
    " ORDER BY seq LIMIT $2)"
    " UNION ALL (SELECT seq, 's', 0, origin, message_id, contact, rep, NULL, NULL, NULL,"
    " t, NULL, NULL, NULL, NULL, NULL FROM untild_seen WHERE seq > $1 ORDER BY seq LIMIT $2)"
    " UNION ALL (SELECT seq, 'i', 0, origin, rep, uid, organizer, NULL, NULL, NULL,"
    " t, NULL, NULL, NULL, NULL, NULL FROM untild_invitations WHERE seq > $1"
    " ORDER BY seq LIMIT $2)"
    " ORDER BY seq LIMIT $2";

/* ---------- the database thread ---------- */

static int64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int exec_ok(PGconn *pg, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(pg, sql);
    int st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, errlen, "%s", PQerrorMessage(pg));
    PQclear(r);
    return ok ? 0 : -1;
}

/* The schema version (0: none yet), or -1. */
static int schema_version(PGconn *pg, char *err, size_t errlen)
{
    PGresult *r = PQexec(pg, "SELECT coalesce(max(version), 0) FROM untild_schema");
    int v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        v = atoi(PQgetvalue(r, 0, 0));
    else if (strstr(PQerrorMessage(pg), "does not exist"))
        v = 0;
    else
        snprintf(err, errlen, "%s", PQerrorMessage(pg));
    PQclear(r);
    return v;
}

/* One gateway migrates; the others wait on the advisory lock, then find
 * the work done. */
static int migrate(PGconn *pg, char *err, size_t errlen)
{
    char sql[96];
    int v, rc = -1;
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%lld)", PG_LOCK_MIGRATE);
    if (exec_ok(pg, sql, err, errlen) < 0)
        return -1;
    if (exec_ok(pg, "CREATE TABLE IF NOT EXISTS untild_schema (version int NOT NULL)",
                err, errlen) < 0 || (v = schema_version(pg, err, errlen)) < 0)
        goto out;
    if (v > PG_SCHEMA_VERSION) {
        snprintf(err, errlen, "database schema version %d is newer than this untild (%d):"
                 " upgrade untild", v, PG_SCHEMA_VERSION);
        goto out;
    }
    for (int to = v + 1; to <= PG_SCHEMA_VERSION; to++) {
        char bump[64];
        snprintf(bump, sizeof bump, "INSERT INTO untild_schema VALUES (%d)", to);
        if (exec_ok(pg, "BEGIN", err, errlen) < 0 ||
            exec_ok(pg, migrations[to], err, errlen) < 0 ||
            exec_ok(pg, bump, err, errlen) < 0 || exec_ok(pg, "COMMIT", err, errlen) < 0) {
            char e2[8];
            exec_ok(pg, "ROLLBACK", e2, sizeof e2);
            goto out;
        }
        log_info("store: PostgreSQL schema migrated to version %d", to);
    }
    rc = 0;
out:
    snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%lld)", PG_LOCK_MIGRATE);
    {
        char e2[8];
        exec_ok(pg, sql, e2, sizeof e2);
    }
    return rc;
}

static PGconn *pg_open(const char *url, const char *pwfile, const char *pwcmd,
                       char *err, size_t errlen)
{
    char *pw = NULL;
    if ((pwfile || pwcmd) && !(pw = secret_load(pwfile, pwcmd, "store"))) {
        snprintf(err, errlen, "cannot read the password");
        return NULL;
    }
    /* NULL values are skipped: without a password libpq's own password and
     * service files apply. */
    const char *k[] = { "dbname", "fallback_application_name", "connect_timeout",
                        "keepalives_idle", "password", NULL };
    const char *v[] = { url, "untild", "5", "30", pw, NULL };
    PGconn *pg = PQconnectdbParams(k, v, 1);
    secret_free(pw);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", pg ? PQerrorMessage(pg) : "out of memory");
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

static void post_status(struct store_pg *p, int ok, const char *err);

static int pg_setup(struct store_pg *p, char *err, size_t errlen)
{
    if (!(p->pg = pg_open(p->url, p->pwfile, p->pwcmd, err, errlen)))
        return -1;
    /* Nothing may hang the thread for good (stop joins it). */
    if (exec_ok(p->pg, "SET statement_timeout = '60s'", err, errlen) < 0 ||
        migrate(p->pg, err, errlen) < 0 || exec_ok(p->pg, "LISTEN untild", err, errlen) < 0) {
        PQfinish(p->pg);
        p->pg = NULL;
        return -1;
    }
    return 0;
}

/* A byte PostgreSQL would refuse as UTF-8 (8-bit header text that made
 * it into a reason or an audit detail) becomes '?', in place. */
static void utf8_fix(char *s)
{
    unsigned char *u = (unsigned char *)s;
    while (*u) {
        int len = *u < 0x80 ? 1 : (*u & 0xe0) == 0xc0 && *u >= 0xc2 ? 2
                : (*u & 0xf0) == 0xe0 ? 3 : (*u & 0xf8) == 0xf0 && *u <= 0xf4 ? 4 : 0;
        int ok = len > 0;
        for (int k = 1; ok && k < len; k++)
            ok = (u[k] & 0xc0) == 0x80;
        if (ok && len == 3)
            ok = !(u[0] == 0xe0 && u[1] < 0xa0) && !(u[0] == 0xed && u[1] >= 0xa0);
        if (ok && len == 4)
            ok = !(u[0] == 0xf0 && u[1] < 0x90) && !(u[0] == 0xf4 && u[1] >= 0x90);
        if (!ok) {
            *u++ = '?';
            continue;
        }
        u += len;
    }
}

/* Retention: the cut a gateway made locally, made in PostgreSQL too. */
static int replay_prune(struct store_pg *p, const char *before, char *err, size_t errlen)
{
    static const char *const sql[] = {
        "DELETE FROM untild_audit WHERE t < $1",
        "DELETE FROM untild_seen WHERE t < $1",
        "DELETE FROM untild_invitations WHERE t < $1",
    };
    const char *v[1] = { before };
    for (size_t k = 0; k < sizeof sql / sizeof sql[0]; k++) {
        PGresult *r = PQexecParams(p->pg, sql[k], 1, NULL, v, NULL, NULL, 0);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            snprintf(err, errlen, "prune: %s", PQerrorMessage(p->pg));
        PQclear(r);
        if (!ok)
            return -1;
    }
    return 0;
}

/* Text parameters of one journal row, by kind. */
static int replay_one(struct store_pg *p, const struct store_change *c, char *err, size_t errlen)
{
    char num[9][24];
    const char *v[14];
    const char *sql;
    int n;
    snprintf(num[0], sizeof num[0], "%" PRId64, c->changed_at);
    v[0] = p->node;
    v[1] = num[0];
    for (int k = 0; k < 6; k++)
        snprintf(num[1 + k], sizeof num[1], "%" PRId64, c->i[k]);
    snprintf(num[7], sizeof num[7], "%" PRId64, c->seq);
    switch (c->kind) {
    case 'w':
        for (int k = 0; k < 6; k++) {
            v[2 + k] = c->t[k];
            v[8 + k] = num[1 + k];
        }
        sql = sql_window, n = 14;
        break;
    case 'e':
        v[2] = c->t[0], v[3] = num[5], sql = sql_end, n = 4;
        break;
    case 'a':
        v[1] = num[7], v[2] = num[0], v[3] = num[1];
        for (int k = 0; k < 6; k++)
            v[4 + k] = c->t[k];
        sql = sql_audit, n = 10;
        break;
    case 'p':
        return replay_prune(p, num[1], err, errlen);
    case 's':
    case 'i':
        v[1] = c->t[0], v[2] = c->t[1], v[3] = c->t[2], v[4] = num[1];
        sql = c->kind == 's' ? sql_seen : sql_invite, n = 5;
        break;
    default:
        return 0;
    }
    for (int k = 0; k < n; k++)
        if (v[k])
            utf8_fix((char *)v[k]);
    PGresult *r = PQexecParams(p->pg, sql, n, NULL, v, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(err, errlen, "replay: %s", PQerrorMessage(p->pg));
    PQclear(r);
    return ok ? 0 : -1;
}

struct ack_msg { struct store_pg *p; int64_t upto; int n; };
struct feed_msg { struct store_pg *p; int64_t seq; size_t n; struct store_change c[]; };
struct status_msg { struct store_pg *p; int ok; time_t at; char err[256]; };

static void on_ack(void *arg);
static void on_feed(void *arg);
static void on_status(void *arg);
static void wake(void *arg);

/* Send the journal in batches, one transaction each. -1: PostgreSQL
 * failed (err set); the rows stay in the journal. */
/* A row PostgreSQL refuses while the connection is fine (a value it
 * cannot take) must not block the journal behind it for ever: careful
 * mode gives each row a savepoint and skips (and logs) the refused. */
static int replay_rows(struct store_pg *p, struct store_change *c, int n, int careful,
                       char *err, size_t errlen)
{
    char e2[256];
    for (int k = 0; k < n; k++) {
        if (!careful) {
            if (replay_one(p, &c[k], err, errlen) < 0)
                return -1;
            continue;
        }
        if (exec_ok(p->pg, "SAVEPOINT r", err, errlen) < 0)
            return -1;
        if (replay_one(p, &c[k], e2, sizeof e2) == 0) {
            if (exec_ok(p->pg, "RELEASE SAVEPOINT r", err, errlen) < 0)
                return -1;
            continue;
        }
        if (PQstatus(p->pg) != CONNECTION_OK ||
            exec_ok(p->pg, "ROLLBACK TO SAVEPOINT r", err, errlen) < 0) {
            snprintf(err, errlen, "%s", e2);
            return -1;
        }
        e2[strcspn(e2, "\r\n")] = '\0';
        log_error("store: journal row %" PRId64 " ('%c') refused by PostgreSQL, skipped: %s",
                  c[k].seq, c[k].kind, e2);
    }
    return 0;
}

/* One batch in one transaction, serialised with every other writer so
 * feed numbers become visible in order. */
static int replay_batch(struct store_pg *p, struct store_change *c, int n, int careful,
                        char *err, size_t errlen)
{
    char lock[80], e2[8];
    const char *v[1] = { p->node };
    snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%lld)", PG_LOCK_WRITE);
    if (exec_ok(p->pg, "BEGIN", err, errlen) == 0 && exec_ok(p->pg, lock, err, errlen) == 0 &&
        replay_rows(p, c, n, careful, err, errlen) == 0) {
        PGresult *r = PQexecParams(p->pg, "SELECT pg_notify('untild', $1)", 1, NULL, v, NULL, NULL, 0);
        PQclear(r);
        if (exec_ok(p->pg, "COMMIT", err, errlen) == 0)
            return 0;
    }
    exec_ok(p->pg, "ROLLBACK", e2, sizeof e2);
    return -1;
}

static int replay(struct store_pg *p, struct store_change *c, char *err, size_t errlen)
{
    for (;;) {
        int n = store_journal_read(p->j, p->jdone, c, (size_t)p->batch), rc;
        if (n <= 0)
            return 0;   /* a local read error is retried next round */
        rc = replay_batch(p, c, n, 0, err, errlen);
        if (rc < 0 && PQstatus(p->pg) == CONNECTION_OK)
            rc = replay_batch(p, c, n, 1, err, errlen);
        int64_t last = c[n - 1].seq;
        for (int k = 0; k < n; k++)
            store_change_clear(&c[k]);
        if (rc < 0)
            return -1;
        p->jdone = last;
        struct ack_msg *m = malloc(sizeof *m);
        if (m) {
            *m = (struct ack_msg){ p, last, n };
            if (loop_post(p->loop, on_ack, m) < 0)
                free(m);
        }
        if (n < p->batch)
            return 0;
    }
}

static char *col(PGresult *r, int row, int i)
{
    return PQgetisnull(r, row, i) ? NULL : strdup(PQgetvalue(r, row, i));
}

/* Move one feed page into a message for the loop (other gateways' rows
 * only; the cursor passes ours too). Returns rows read. */
static int feed_page(struct store_pg *p, PGresult *r)
{
    int rows = PQntuples(r);
    struct feed_msg *m = calloc(1, sizeof *m + (size_t)rows * sizeof m->c[0]);
    if (!m)
        return -1;
    m->p = p;
    for (int row = 0; row < rows; row++) {
        p->cursor = strtoll(PQgetvalue(r, row, 0), NULL, 10);
        if (!strcmp(PQgetvalue(r, row, 3), p->node))
            continue;
        struct store_change *c = &m->c[m->n++];
        c->seq = p->cursor;
        c->kind = PQgetvalue(r, row, 1)[0];
        c->changed_at = strtoll(PQgetvalue(r, row, 2), NULL, 10);
        c->origin = col(r, row, 3);
        for (int k = 0; k < 6; k++) {
            c->t[k] = col(r, row, 4 + k);
            c->i[k] = strtoll(PQgetvalue(r, row, 10 + k), NULL, 10);
        }
    }
    m->seq = p->cursor;
    if (rows > 0)
        atomic_fetch_add(&p->inflight, 1);
    if (rows == 0 || loop_post(p->loop, on_feed, m) < 0) {
        if (rows > 0)
            atomic_fetch_sub(&p->inflight, 1);
        for (size_t k = 0; k < m->n; k++)
            store_change_clear(&m->c[k]);
        free(m);
    }
    return rows;
}

static int fetch(struct store_pg *p, char *err, size_t errlen)
{
    for (;;) {
        char cur[24], lim[16];
        long long rw = atomic_exchange(&p->rewind, -1);
        if (rw >= 0)
            p->cursor = rw;
        snprintf(cur, sizeof cur, "%" PRId64, p->cursor);
        snprintf(lim, sizeof lim, "%d", p->batch);
        const char *v[2] = { cur, lim };
        PGresult *r = PQexecParams(p->pg, sql_feed, 2, NULL, v, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            snprintf(err, errlen, "feed: %s", PQerrorMessage(p->pg));
            PQclear(r);
            return -1;
        }
        int rows = feed_page(p, r);
        PQclear(r);
        /* A long catch-up goes at the loop's pace: on_feed wakes us. */
        if (rows < p->batch || atomic_load(&p->inflight) >= FEED_INFLIGHT)
            return 0;
    }
}

/* Sleep until woken (journal), notified (feed) or ms passed. -1: the
 * connection broke. */
static int wait_event(struct store_pg *p, int ms, char *err, size_t errlen)
{
    struct pollfd f[2] = { { p->efd, POLLIN, 0 }, { p->pg ? PQsocket(p->pg) : -1, POLLIN, 0 } };
    /* A notification that came in while a query ran is already in libpq's
     * queue, not on the socket: do not sleep on it. */
    if (p->pg) {
        PGnotify *n;
        int others = 0;
        while ((n = PQnotifies(p->pg))) {
            others |= strcmp(n->extra, p->node) != 0;   /* ours: nothing new */
            PQfreemem(n);
        }
        if (others)
            return 0;
    }
    if (poll(f, p->pg ? 2 : 1, ms) < 0 && errno != EINTR)
        return 0;
    if (f[0].revents & POLLIN) {
        uint64_t x;
        if (read(p->efd, &x, sizeof x) < 0 && errno != EAGAIN)
            log_debug("store: eventfd: %s", strerror(errno));
    }
    if (p->pg && (f[1].revents & (POLLIN | POLLHUP | POLLERR))) {
        PGnotify *n;
        if (!PQconsumeInput(p->pg)) {
            snprintf(err, errlen, "%s", PQerrorMessage(p->pg));
            return -1;
        }
        while ((n = PQnotifies(p->pg)))
            PQfreemem(n);
    }
    return 0;
}

static void drop(struct store_pg *p, const char *err)
{
    PQfinish(p->pg);
    p->pg = NULL;
    post_status(p, 0, err);
}

static void *db_thread(void *arg)
{
    struct store_pg *p = arg;
    struct store_change *c = calloc((size_t)p->batch, sizeof *c);
    char err[256];
    if (!c || !(p->j = store_journal_open(p->state_dir))) {
        post_status(p, 0, "cannot read the local journal");
        free(c);
        return NULL;
    }
    while (!atomic_load(&p->stop)) {
        err[0] = '\0';
        if (!p->pg) {
            if (pg_setup(p, err, sizeof err) < 0) {
                post_status(p, 0, err);
                wait_event(p, p->retry * 1000, err, sizeof err);
                continue;
            }
            post_status(p, 1, NULL);
        }
        if (replay(p, c, err, sizeof err) < 0 || fetch(p, err, sizeof err) < 0 ||
            wait_event(p, p->retry * 1000, err, sizeof err) < 0)
            drop(p, err);
    }
    PQfinish(p->pg);
    p->pg = NULL;
    store_journal_close(p->j);
    free(c);
    return NULL;
}

/* Runs on the database thread: tell the loop once per transition. */
static void post_status(struct store_pg *p, int ok, const char *err)
{
    int st = ok ? 1 : 2;
    if (st == p->tstate)
        return;
    p->tstate = st;
    struct status_msg *m = calloc(1, sizeof *m);
    if (!m)
        return;
    m->p = p;
    m->ok = ok;
    m->at = time(NULL);
    snprintf(m->err, sizeof m->err, "%s", err ? err : "");
    m->err[strcspn(m->err, "\r\n")] = '\0';
    if (loop_post(p->loop, on_status, m) < 0)
        free(m);
}

/* ---------- the loop side ---------- */

static void on_status(void *arg)
{
    struct status_msg *m = arg;
    struct store_pg *p = m->p;
    char t[64];
    snprintf(p->error, sizeof p->error, "%s", m->err);
    if (!m->ok) {
        if (!p->degraded_since)
            p->degraded_since = m->at;
        p->connected = 0;
        log_warn("store degraded since %s: %s; deciding from the local copy, %" PRId64
                 " change(s) kept in the journal", when_format(p->degraded_since, "UTC", t, sizeof t),
                 m->err, store_journal_pending(p->u->store));
    } else {
        if (p->degraded_since)
            log_info("store: PostgreSQL is back (degraded since %s); replaying %" PRId64
                     " journalled change(s)", when_format(p->degraded_since, "UTC", t, sizeof t),
                     store_journal_pending(p->u->store));
        else
            log_info("store: connected to PostgreSQL as node %s", p->node);
        p->degraded_since = 0;
        p->connected = 1;
    }
    free(m);
}

static void on_ack(void *arg)
{
    struct ack_msg *m = arg;
    if (store_journal_ack(m->p->u->store, m->upto) < 0)
        log_error("store: cannot forget replayed journal rows (they will be sent again, harmlessly)");
    m->p->replayed += (unsigned long)m->n;
    log_debug("store: %d change(s) written to PostgreSQL", m->n);
    free(m);
}

/* One window change from elsewhere into the index (never a reload). */
static void index_apply(struct store_pg *p, const struct store_change *c, int quiet)
{
    struct untild *u = p->u;
    int64_t lat = realtime_ms() - c->changed_at;
    if (c->kind == 'w') {
        struct window w;
        char *whobuf;
        if (store_change_window(c, &w, &whobuf) < 0) {
            log_error("store: window %s from %s: %s", c->t[0], c->origin, strerror(errno));
            return;
        }
        windows_remove(u->ix, w.id);
        if (!windows_add(u->ix, &w))
            log_error("store: cannot index window %s from %s: %s", w.id, c->origin, strerror(errno));
        free(w.who);
        free(whobuf);
    } else {
        windows_remove(u->ix, c->t[0]);
    }
    if (lat < LIVE_MS)
        p->lat[p->nlat++ % LAT_RING] = lat < 0 ? 0 : lat;
    else
        p->caught_up++;
    if (!quiet)
        log_info("store: window %s %s at %s applied (propagation %" PRId64 " ms)", c->t[0],
             c->kind == 'w' ? "changed" : "ended", c->origin ? c->origin : "?", lat);
}

static void on_feed(void *arg)
{
    struct feed_msg *m = arg;
    struct store_pg *p = m->p;
    int kick = 0;
    size_t nw = 0, done = 0;
    for (size_t k = 0; k < m->n; k++)
        nw += m->c[k].kind == 'w' || m->c[k].kind == 'e';
    if (store_apply(p->u->store, m->c, m->n, m->seq) < 0) {
        log_error("store: cannot apply %zu change(s) from PostgreSQL; fetching them again", m->n);
        atomic_store(&p->rewind, (long long)store_feed_seq(p->u->store));
        uint64_t one = 1;
        if (write(p->efd, &one, sizeof one) < 0)
            log_debug("store: eventfd: %s", strerror(errno));
    } else {
        for (size_t k = 0; k < m->n; k++) {
            if (!m->c[k].applied)
                continue;
            p->applied++;
            if ((m->c[k].kind == 'w' || m->c[k].kind == 'e') && p->u->ix) {
                /* a line per window, but not a million at a first start */
                index_apply(p, &m->c[k], nw > 16);
                kick = 1;
                done++;
            }
        }
    }
    if (done && nw > 16)
        log_info("store: %zu window change(s) from other gateways applied", done);
    atomic_fetch_sub(&p->inflight, 1);
    wake(p);                    /* the thread may be waiting for us */
    if (kick && p->u->release)
        release_kick(p->u->release, 1);
    for (size_t k = 0; k < m->n; k++)
        store_change_clear(&m->c[k]);
    free(m);
}

/* store.c calls this after a journalled commit (loop thread). */
static void wake(void *arg)
{
    struct store_pg *p = arg;
    uint64_t one = 1;
    if (write(p->efd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_error("store: cannot wake the database thread: %s", strerror(errno));
}

static void pg_free(struct store_pg *p)
{
    if (p->efd >= 0)
        close(p->efd);
    free(p->url); free(p->pwfile); free(p->pwcmd); free(p->node); free(p->state_dir);
    free(p);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

struct store_pg *store_pg_start(struct untild *u)
{
    const struct config *c = u->cfg;
    struct store_pg *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->u = u;
    p->loop = u->loop;
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->url = strdup(c->store_url);
    p->pwfile = dup_or_null(c->store_password_file);
    p->pwcmd = dup_or_null(c->store_password_command);
    p->node = strdup(c->store_node);
    p->state_dir = strdup(c->state_dir);
    p->batch = c->store_batch > 0 ? c->store_batch : 500;
    p->retry = c->store_retry_interval > 0 ? c->store_retry_interval : 5;
    p->cursor = store_feed_seq(u->store);
    atomic_init(&p->rewind, -1);
    atomic_init(&p->stop, 0);
    if (p->efd < 0 || !p->url || !p->node || !p->state_dir) {
        log_error("store: cannot start the database thread: %s", strerror(errno ? errno : ENOMEM));
        pg_free(p);
        return NULL;
    }
    store_share(u->store, p->node, wake, p);
    int e = pthread_create(&p->th, NULL, db_thread, p);
    if (e) {
        log_error("store: cannot start the database thread: %s", strerror(e));
        store_share(u->store, "", NULL, NULL);
        pg_free(p);
        return NULL;
    }
    log_info("store: shared state on PostgreSQL as node %s (%" PRId64 " journalled change(s) to send)",
             p->node, store_journal_pending(u->store));
    return p;
}

void store_pg_stop(struct store_pg *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, 1);
    wake(p);
    pthread_join(p->th, NULL);
    loop_run_pending(p->loop);   /* what it posted points at p */
    store_share(p->u->store, "", NULL, NULL);
    pg_free(p);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Propagation latency: samples, last, p50, p99 (-1 while none). */
struct pg_lat { size_t n; int64_t last, p50, p99; };

static struct pg_lat pg_latency(const struct store_pg *p)
{
    int64_t s[LAT_RING];
    struct pg_lat l = { p->nlat < LAT_RING ? p->nlat : LAT_RING, -1, -1, -1 };
    if (l.n) {
        memcpy(s, p->lat, l.n * sizeof s[0]);
        l.last = p->lat[(p->nlat - 1) % LAT_RING];
        qsort(s, l.n, sizeof s[0], cmp_i64);
        l.p50 = s[l.n / 2];
        l.p99 = s[l.n * 99 / 100 < l.n ? l.n * 99 / 100 : l.n - 1];
    }
    return l;
}

static const char *pg_state(const struct store_pg *p)
{
    return p->degraded_since ? "degraded" : p->connected ? "connected" : "connecting";
}

struct json_object *store_pg_status_json(const struct store_pg *p)
{
    char since[64];
    struct pg_lat l = pg_latency(p);
    struct json_object *o = json_object_new_object(), *lat = json_object_new_object();
    int e = !o || !lat;
    if (!e)
        e |= ujson_add_int(lat, "samples", (int64_t)l.n) | ujson_add_int(lat, "last", l.last)
             | ujson_add_int(lat, "p50", l.p50) | ujson_add_int(lat, "p99", l.p99);
    if (e) {
        json_object_put(lat);
        json_object_put(o);
        return NULL;
    }
    e |= ujson_add_str(o, "backend", "postgresql") | ujson_add_str(o, "node", p->node)
         | ujson_add_str(o, "state", pg_state(p))
         | ujson_add_str(o, "degraded_since",
                         p->degraded_since ? when_format(p->degraded_since, "UTC", since, sizeof since) : NULL)
         | ujson_add_str(o, "error", p->error)
         | ujson_add_int(o, "journal", store_journal_pending(p->u->store))
         | ujson_add_int(o, "replayed", (int64_t)p->replayed) | ujson_add_int(o, "applied", (int64_t)p->applied)
         | ujson_add_int(o, "caught_up", (int64_t)p->caught_up) | ujson_add(o, "latency_ms", lat);
    if (e) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

void store_pg_status(const struct store_pg *p, struct strbuf *b)
{
    char since[64] = "";
    struct pg_lat l = pg_latency(p);
    size_t n = l.n;
    int64_t p50 = l.p50, p99 = l.p99, last = l.last;
    const char *state = pg_state(p);
    if (p->degraded_since)
        when_format(p->degraded_since, "UTC", since, sizeof since);
    int64_t pending = store_journal_pending(p->u->store);
    if (p->degraded_since)
        sb_printf(b, "store:   postgresql (node %s): degraded since %s: %s\n", p->node, since, p->error);
    else
        sb_printf(b, "store:   postgresql (node %s): %s\n", p->node, state);
    sb_printf(b, "journal: %" PRId64 " change(s) waiting, %lu sent, %lu applied from others\n",
              pending, p->replayed, p->applied);
    if (n)
        sb_printf(b, "propagation: last %" PRId64 " ms, p50 %" PRId64 " ms, p99 %" PRId64
                  " ms (%zu samples; %lu older change(s) caught up)\n", last, p50, p99, n, p->caught_up);
}

int store_pg_check(const struct config *c, FILE *out)
{
    char err[256];
    PGconn *pg = pg_open(c->store_url, c->store_password_file, c->store_password_command,
                         err, sizeof err);
    if (!pg) {
        err[strcspn(err, "\r\n")] = '\0';
        fprintf(out, "[store] url: cannot connect: %s\n", err);
        return -1;
    }
    int v = schema_version(pg, err, sizeof err), rc = 0;
    PQfinish(pg);
    err[strcspn(err, "\r\n")] = '\0';
    if (v < 0) {
        fprintf(out, "[store] url: %s\n", err);
        rc = -1;
    } else if (v > PG_SCHEMA_VERSION) {
        fprintf(out, "[store] url: database schema version %d is newer than this untild (%d)\n",
                v, PG_SCHEMA_VERSION);
        rc = -1;
    } else if (v < PG_SCHEMA_VERSION) {
        fprintf(out, "[store] url: connected; schema version %d, untild migrates it to %d at start\n",
                v, PG_SCHEMA_VERSION);
    } else {
        fprintf(out, "[store] url: connected; schema version %d\n", v);
    }
    return rc;
}
