/* store.c - durable run-time state in SQLite (<state_dir>/untild.db).
 *
 * Holds what is not a message: windows added at run time, the audit log,
 * inbound messages seen from quiet contacts, and small key/value state.
 * WAL with synchronous=FULL, so a call that returned 0 survives a crash;
 * busy_timeout because untilctl-side readers may hold the file briefly.
 * The schema carries a user_version; migrations go in migrate().
 * Statements are prepared once at open and kept in the struct.
 *
 * Window ids are "w" + an AUTOINCREMENT integer, so a deleted window's id
 * is never handed out again (stale release-/window- references stay dead).
 *
 * Diagnostics: log_error with SQLite's message; calls return -1 with errno
 * (EIO for database errors, ENOENT for absent rows). Main thread only. */
#include "untild/store.h"
#include "untild/store_int.h"
#include "untild/log.h"
#include "untild/when.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STORE_SCHEMA_VERSION 8


static const char *const queries[Q_COUNT] = {
    [Q_WIN_INSERT] =
        "INSERT INTO windows (id, who, from_t, until_t, rrule, duration, tz,"
        " action, reason, owner, source, created, changed_at)"
        " VALUES (NULL, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    /* ?2: "" alone, "-<node>" with shared state (ids unique across gateways) */
    [Q_WIN_SET_ID] = "UPDATE windows SET id = 'w' || n || ?2 WHERE n = ?1",
    [Q_WIN_UPSERT] =
        "INSERT INTO windows (id, who, from_t, until_t, rrule, duration, tz,"
        " action, reason, owner, source, created, changed_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        " ON CONFLICT(id) DO UPDATE SET who = excluded.who,"
        " from_t = excluded.from_t, until_t = excluded.until_t,"
        " rrule = excluded.rrule, duration = excluded.duration,"
        " tz = excluded.tz, action = excluded.action,"
        " reason = excluded.reason, owner = excluded.owner,"
        " source = excluded.source, created = excluded.created,"
        " changed_at = excluded.changed_at",
    [Q_WIN_DELETE] = "DELETE FROM windows WHERE id = ?1",
    [Q_WIN_ALL] =
        "SELECT id, who, from_t, until_t, rrule, duration, tz, action, reason,"
        " owner, source, created FROM windows ORDER BY n",
    [Q_AUDIT_ADD] =
        "INSERT INTO audit (t, event, rep, contact, window_id, msg_id, detail)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [Q_AUDIT_SINCE] =
        "SELECT t, event, rep, contact, window_id, msg_id, detail FROM audit"
        " WHERE t >= ?1 ORDER BY t, rowid",
    /* Both use the audit_msg index (schema v2). */
    [Q_AUDIT_HAS_MSG] =
        "SELECT 1 FROM audit WHERE msg_id = ?1 AND t >= ?2 LIMIT 1",
    [Q_AUDIT_MSG] =
        "SELECT t, event, rep, contact, window_id, msg_id, detail FROM audit"
        " WHERE msg_id = ?1 AND t >= ?2 ORDER BY t, rowid",
    [Q_SEEN_ADD] =
        "INSERT OR IGNORE INTO seen (message_id, contact, rep, t)"
        " VALUES (?1, ?2, ?3, ?4)",
    [Q_SEEN_HAS] = "SELECT 1 FROM seen WHERE message_id = ?1 AND contact = ?2",
    [Q_KV_SET] =
        "INSERT INTO kv (key, value) VALUES (?1, ?2)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [Q_KV_GET] = "SELECT value FROM kv WHERE key = ?1",
    [Q_KV_DEL] = "DELETE FROM kv WHERE key = ?1",
    /* A range on the primary key: ?2 is ?1 with its last byte + 1. */
    [Q_KV_PREFIX] = "SELECT key, value FROM kv WHERE key >= ?1 AND key < ?2"
                    " ORDER BY key",
    /* Retention: audit_t (v1) and seen_t (v3) make these range deletes. */
    [Q_PRUNE_AUDIT] = "DELETE FROM audit WHERE t < ?1",
    [Q_PRUNE_SEEN] = "DELETE FROM seen WHERE t < ?1",
    [Q_INVITE_ADD] =
        "INSERT INTO invitations (rep, uid, organizer, t) VALUES (?1, ?2, ?3, ?4)"
        " ON CONFLICT(rep, uid, organizer) DO UPDATE SET t = excluded.t",
    [Q_INVITE_HAS] =
        "SELECT 1 FROM invitations WHERE rep = ?1 AND uid = ?2 AND organizer = ?3",
    [Q_PRUNE_INVITE] = "DELETE FROM invitations WHERE t < ?1",
    /* Follow-up (issue 12): a time range on audit_t, then the window. */
    [Q_AUDIT_WINDOW] =
        "SELECT t, event, rep, contact, window_id, msg_id, detail FROM audit"
        " WHERE t >= ?2 AND t <= ?3 AND window_id = ?1 ORDER BY t, rowid",
    [Q_AUDIT_REPS] =
        "SELECT DISTINCT rep FROM audit WHERE t >= ?3 AND t <= ?4"
        " AND event IN ('held', 'flagged', 'rejected') AND rep IS NOT NULL"
        " AND (contact = ?1 OR contact LIKE ?2 OR contact LIKE ?5) ORDER BY rep LIMIT 32",
    [Q_FU_SENT] = "SELECT 1 FROM followups_sent WHERE window_id = ?1 AND until_t = ?2",
    [Q_FU_MARK] =
        "INSERT OR IGNORE INTO followups_sent (window_id, until_t, t) VALUES (?1, ?2, ?3)",
    [Q_PRUNE_FU] = "DELETE FROM followups_sent WHERE t < ?1",
    [Q_CONTACT_ADD] =
        "INSERT INTO contacts (t, contact, domain, rep, channel, msg_id)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_CONTACT_ADDR] =
        "SELECT t, contact, rep, channel, msg_id FROM contacts"
        " WHERE contact = ?1 AND t >= ?2 ORDER BY t DESC LIMIT ?3",
    [Q_CONTACT_DOM] =
        "SELECT t, contact, rep, channel, msg_id FROM contacts"
        " WHERE domain = ?1 AND t >= ?2 ORDER BY t DESC LIMIT ?3",
    [Q_PRUNE_CONTACT] = "DELETE FROM contacts WHERE t < ?1",
    [Q_CAD_SET] =
        "INSERT INTO cadence_overrides (who, opts, by, t) VALUES (?1, ?2, ?3, ?4)"
        " ON CONFLICT(who) DO UPDATE SET opts = excluded.opts, by = excluded.by, t = excluded.t",
    [Q_CAD_DEL] = "DELETE FROM cadence_overrides WHERE who = ?1",
    [Q_FUI_SET] =
        "INSERT INTO followup_items (window_id, state) VALUES (?1, ?2)"
        " ON CONFLICT(window_id) DO UPDATE SET state = excluded.state",
    [Q_FUI_DEL] = "DELETE FROM followup_items WHERE window_id = ?1",
    [Q_FUI_ALL] = "SELECT window_id, state FROM followup_items",
    [Q_CAD_ALL] = "SELECT who, opts, by, t FROM cadence_overrides ORDER BY who",
    [Q_CONTACT_RANGE] =
        "SELECT t, contact, rep, channel, msg_id FROM contacts"
        " WHERE t >= ?1 AND t < ?2 ORDER BY t LIMIT ?3",
    [Q_INBOUND_ADD] =
        "INSERT OR IGNORE INTO inbound (message_id, contact, rep, t) VALUES (?1, ?2, ?3, ?4)",
    [Q_INBOUND_HAS] = "SELECT 1 FROM inbound WHERE message_id = ?1 AND contact = ?2",
    [Q_PRUNE_INBOUND] = "DELETE FROM inbound WHERE t < ?1",
    [Q_CONTACT_DEL] =
        "DELETE FROM contacts WHERE contact = ?1 AND msg_id = ?2 AND channel = ?3",
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_JOURNAL_ADD] =
        "INSERT INTO journal (kind, changed_at, t0, t1, t2, t3, t4, t5,"
        " i0, i1, i2, i3, i4, i5)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    [Q_JOURNAL_ACK] = "DELETE FROM journal WHERE seq <= ?1",
    [Q_JOURNAL_COUNT] = "SELECT count(*) FROM journal",
    [Q_TOMB_GET] = "SELECT changed_at FROM tomb WHERE id = ?1",
    [Q_TOMB_SET] =
        "INSERT INTO tomb (id, changed_at) VALUES (?1, ?2)"
        " ON CONFLICT(id) DO UPDATE SET changed_at = max(changed_at, excluded.changed_at)",
    [Q_TOMB_DEL] = "DELETE FROM tomb WHERE id = ?1",
    [Q_WIN_CHANGED_AT] = "SELECT changed_at FROM windows WHERE id = ?1",
    [Q_WH_ADD] = "INSERT INTO webhook_queue (hook, event_id, created, body) VALUES (?1, ?2, ?3, ?4)",
};

static const char schema_v1[] =
    "CREATE TABLE IF NOT EXISTS windows ("
    " n INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT UNIQUE,"              /* "w<n>", or an id given by the caller */
    " who TEXT NOT NULL,"           /* comma-joined normalised addresses */
    " from_t INTEGER NOT NULL DEFAULT 0,"
    " until_t INTEGER,"             /* NULL: WHEN_NEVER */
    " rrule TEXT, duration INTEGER, tz TEXT,"
    " action INTEGER NOT NULL, reason TEXT, owner TEXT,"
    " source INTEGER NOT NULL, created INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS audit ("
    " t INTEGER NOT NULL, event TEXT NOT NULL, rep TEXT, contact TEXT,"
    " window_id TEXT, msg_id TEXT, detail TEXT);"
    "CREATE INDEX IF NOT EXISTS audit_t ON audit (t);"
    "CREATE TABLE IF NOT EXISTS seen ("
    " message_id TEXT NOT NULL, contact TEXT NOT NULL, rep TEXT,"
    " t INTEGER NOT NULL, PRIMARY KEY (message_id, contact));"
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT);";

/* v2: the IMAP watcher asks "has untild seen this Message-ID?" for every
 * Sent message; without an index that scans the audit log. */
static const char schema_v2[] =
    "CREATE INDEX IF NOT EXISTS audit_msg ON audit (msg_id);";

/* v3: retention (store_prune) deletes seen rows by age; without an index
 * that scans the table once a day. */
static const char schema_v3[] =
    "CREATE INDEX IF NOT EXISTS seen_t ON seen (t);";

/* v4: invitations a contact sent a rep (UID + organizer), seen by the
 * IMAP or CalDAV watcher: the evidence a calendar REPLY needs. */
static const char schema_v4[] =
    "CREATE TABLE IF NOT EXISTS invitations ("
    " rep TEXT NOT NULL COLLATE NOCASE, uid TEXT NOT NULL,"
    " organizer TEXT NOT NULL COLLATE NOCASE, t INTEGER NOT NULL,"
    " PRIMARY KEY (rep, uid, organizer));"
    "CREATE INDEX IF NOT EXISTS invitations_t ON invitations (t);";

/* v5: shared state (store_pg.c): when a window changed last (the conflict
 * rule: the latest change wins), tombstones of ended windows (an end wins
 * over an older change that arrives later), and the journal of local
 * changes not yet written to PostgreSQL. Unused without [store] url. */
static const char schema_v5[] =
    "CREATE TABLE IF NOT EXISTS tomb (id TEXT PRIMARY KEY, changed_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS journal ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,"
    " changed_at INTEGER NOT NULL, t0 TEXT, t1 TEXT, t2 TEXT, t3 TEXT,"
    " t4 TEXT, t5 TEXT, i0 INTEGER, i1 INTEGER, i2 INTEGER, i3 INTEGER,"
    " i4 INTEGER, i5 INTEGER);";

/* v6 (issue 12): follow-up reminders sent (one per window and end, so a
 * restart never sends a second), and the contact history cadence rules
 * count: every contact untild sees, by address and by domain. */
static const char schema_v6[] =
    "CREATE TABLE IF NOT EXISTS followups_sent ("
    " window_id TEXT NOT NULL, until_t INTEGER NOT NULL, t INTEGER NOT NULL,"
    " PRIMARY KEY (window_id, until_t));"
    "CREATE TABLE IF NOT EXISTS contacts ("
    " t INTEGER NOT NULL, contact TEXT NOT NULL, domain TEXT NOT NULL,"
    " rep TEXT, channel TEXT NOT NULL, msg_id TEXT);"
    "CREATE INDEX IF NOT EXISTS contacts_addr ON contacts (contact, t);"
    "CREATE INDEX IF NOT EXISTS contacts_dom ON contacts (domain, t);"
    "CREATE INDEX IF NOT EXISTS contacts_t ON contacts (t);"
    /* messages any contact sent a rep (IMAP inbox): the rep's reply to
     * one is exempt from cadence (the customer started it) */
    "CREATE TABLE IF NOT EXISTS inbound ("
    " message_id TEXT NOT NULL, contact TEXT NOT NULL, rep TEXT,"
    " t INTEGER NOT NULL, PRIMARY KEY (message_id, contact));"
    "CREATE INDEX IF NOT EXISTS inbound_t ON inbound (t);"
    /* cadence overrides set with untilctl (window-file ones live in the files) */
    "CREATE TABLE IF NOT EXISTS cadence_overrides ("
    " who TEXT PRIMARY KEY, opts TEXT NOT NULL, by TEXT, t INTEGER NOT NULL);"
    /* follow-up items put in reps' calendars: what was put, per window */
    "CREATE TABLE IF NOT EXISTS followup_items ("
    " window_id TEXT PRIMARY KEY, state TEXT NOT NULL);";

/* v7 (issue 14): API tokens (store_tok.c): only the SHA-256 of a token
 * is kept; the token itself is shown once, when it is made. */
static const char schema_v7[] =
    "CREATE TABLE IF NOT EXISTS api_tokens ("
    " name TEXT PRIMARY KEY, hash TEXT NOT NULL, scope TEXT NOT NULL,"
    " by TEXT, created INTEGER NOT NULL);";

/* v8 (issue 14): outgoing webhook events waiting for a 2xx (store_wh.c),
 * in order per webhook; local to this gateway. */
static const char schema_v8[] =
    "CREATE TABLE IF NOT EXISTS webhook_queue ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, hook TEXT NOT NULL,"
    " event_id TEXT NOT NULL, created INTEGER NOT NULL, body TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS webhook_queue_hook ON webhook_queue (hook, seq);";


static int share_begin(struct store *st);
static int journal_add(struct store *st, const struct store_change *c);
static int share_commit(struct store *st, int rc, const struct store_change *c);
static int64_t stamp(struct store *st);

int store_db_fail(struct store *st, const char *what)
{
    log_error("store: %s: %s", what, sqlite3_errmsg(st->db));
    errno = sqlite3_errcode(st->db) == SQLITE_NOMEM ? ENOMEM : EIO;
    return -1;
}

/* Run a statement to completion (no rows expected), then reset it. */
int store_step_done(struct store *st, int qi, const char *what)
{
    if (st->batch && (qi == Q_BEGIN || qi == Q_COMMIT || qi == Q_ROLLBACK)) {
        /* Inside a batch's one transaction: a savepoint each. */
        const char *sql = qi == Q_BEGIN ? "SAVEPOINT one" : qi == Q_COMMIT ? "RELEASE one"
                        : "ROLLBACK TO one; RELEASE one";
        if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            store_db_fail(st, what);
            errno = EIO;
            return -1;
        }
        return 0;
    }
    sqlite3_stmt *q = st->q[qi];
    int rc = sqlite3_step(q);
    if (rc != SQLITE_DONE) {
        store_db_fail(st, what);
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        errno = rc == SQLITE_NOMEM ? ENOMEM : EIO;
        return -1;
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return 0;
}

int store_step_record(struct store *st, int qi, const char *what)
{
    sqlite3_exec(st->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    int rc = store_step_done(st, qi, what);
    if (!st->batch)
        sqlite3_exec(st->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    return rc;
}

int store_bind_text(sqlite3_stmt *q, int i, const char *s)
{
    if (s == NULL)
        return sqlite3_bind_null(q, i);
    return sqlite3_bind_text(q, i, s, -1, SQLITE_TRANSIENT);
}

static int get_user_version(struct store *st, int *v)
{
    sqlite3_stmt *q;
    int rc;
    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &q, NULL) != SQLITE_OK)
        return store_db_fail(st, "user_version");
    rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(q);
        return store_db_fail(st, "user_version");
    }
    *v = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    return 0;
}

/* v5's column, unless a database once at v5 was set back (no ADD COLUMN
 * IF NOT EXISTS in SQLite). */
static int add_changed_at(struct store *st, char **err)
{
    sqlite3_stmt *q;
    int has = 0;
    if (sqlite3_prepare_v2(st->db, "SELECT 1 FROM pragma_table_info('windows')"
                           " WHERE name = 'changed_at'", -1, &q, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    has = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    return has ? SQLITE_OK
               : sqlite3_exec(st->db, "ALTER TABLE windows ADD COLUMN changed_at"
                              " INTEGER NOT NULL DEFAULT 0", NULL, NULL, err);
}

/* Bring the schema to STORE_SCHEMA_VERSION. Each step runs in one
 * transaction together with its user_version bump. */
static int migrate(struct store *st)
{
    int v = 0;   /* set by get_user_version; -O1 cannot see it */
    char *err = NULL;
    if (get_user_version(st, &v) < 0)
        return -1;
    if (v > STORE_SCHEMA_VERSION) {
        log_error("store: database schema version %d is newer than this "
                  "untild (%d)", v, STORE_SCHEMA_VERSION);
        errno = EPROTO;
        return -1;
    }
    /* Each step runs in its own transaction and records its version, so
     * an interrupted upgrade resumes where it stopped. */
    static const char *const steps[] = { NULL, schema_v1, schema_v2, schema_v3, schema_v4,
                                         schema_v5, schema_v6, schema_v7, schema_v8 };
    for (int to = v + 1; to <= STORE_SCHEMA_VERSION; to++) {
        char bump[48];
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d; COMMIT", to);
        if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, &err) != SQLITE_OK ||
            (to == 5 && add_changed_at(st, &err) != SQLITE_OK) ||
            sqlite3_exec(st->db, steps[to], NULL, NULL, &err) != SQLITE_OK ||
            sqlite3_exec(st->db, bump, NULL, NULL, &err) != SQLITE_OK) {
            log_error("store: migrating schema to version %d: %s", to, err ? err : "?");
            sqlite3_free(err);
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            errno = EIO;
            return -1;
        }
    }
    return 0;
}

struct store *store_open(const char *state_dir)
{
    struct store *st = calloc(1, sizeof *st);
    char path[4096], *err = NULL;
    sqlite3_stmt *q = NULL;
    int i, n;
    if (st == NULL)
        return NULL;
    n = snprintf(path, sizeof path, "%s/untild.db", state_dir);
    if (n < 0 || (size_t)n >= sizeof path) {
        free(st);
        errno = ENAMETOOLONG;
        return NULL;
    }
    if (mkdir(state_dir, 0700) < 0 && errno != EEXIST) {
        log_error("store: cannot create %s: %s", state_dir, strerror(errno));
        free(st);
        return NULL;
    }
    if (sqlite3_open_v2(path, &st->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        log_error("store: cannot open %s: %s", path,
                  st->db ? sqlite3_errmsg(st->db) : "out of memory");
        goto fail_eio;
    }
    sqlite3_busy_timeout(st->db, 5000);
    /* journal_mode answers with the mode in force: check it really is WAL. */
    if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &q, NULL) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_ROW ||
        sqlite3_stricmp((const char *)sqlite3_column_text(q, 0), "wal") != 0) {
        log_error("store: %s: cannot enable WAL: %s", path, sqlite3_errmsg(st->db));
        sqlite3_finalize(q);
        goto fail_eio;
    }
    sqlite3_finalize(q);
    if (sqlite3_exec(st->db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON",
                     NULL, NULL, &err) != SQLITE_OK) {
        log_error("store: %s: %s", path, err ? err : "?");
        sqlite3_free(err);
        goto fail_eio;
    }
    if (migrate(st) < 0)
        goto fail;
    if (store_ckpt_start(st, path) < 0)
        goto fail_eio;
    for (i = 0; i < Q_COUNT; i++) {
        if (sqlite3_prepare_v3(st->db, queries[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &st->q[i], NULL) != SQLITE_OK) {
            log_error("store: preparing \"%s\": %s", queries[i],
                      sqlite3_errmsg(st->db));
            goto fail_eio;
        }
    }
    return st;
fail_eio:
    errno = EIO;
fail:
    {
        int e = errno;
        store_close(st);
        errno = e;
    }
    return NULL;
}

void store_close(struct store *st)
{
    int i;
    if (st == NULL)
        return;
    store_ckpt_stop(st);
    for (i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(st->q[i]);
    if (st->db && sqlite3_close(st->db) != SQLITE_OK)
        log_error("store: close: %s", sqlite3_errmsg(st->db));
    free(st);
}

/* ---------- windows ---------- */

static char *join_who(const struct window *w)
{
    size_t i, len = 1;
    char *s, *p;
    for (i = 0; i < w->nwho; i++)
        len += strlen(w->who[i]) + 1;
    s = malloc(len);
    if (s == NULL)
        return NULL;
    p = s;
    for (i = 0; i < w->nwho; i++) {
        size_t n = strlen(w->who[i]);
        if (i > 0)
            *p++ = ',';
        memcpy(p, w->who[i], n);
        p += n;
    }
    *p = '\0';
    return s;
}

static void bind_window(sqlite3_stmt *q, const struct window *w, const char *who)
{
    store_bind_text(q, 2, who);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)w->from);
    if (w->until == WHEN_NEVER)
        sqlite3_bind_null(q, 4);
    else
        sqlite3_bind_int64(q, 4, (sqlite3_int64)w->until);
    store_bind_text(q, 5, w->rrule);
    sqlite3_bind_int64(q, 6, (sqlite3_int64)w->duration);
    store_bind_text(q, 7, w->tz);
    sqlite3_bind_int(q, 8, (int)w->action);
    store_bind_text(q, 9, w->reason);
    store_bind_text(q, 10, w->owner);
    sqlite3_bind_int(q, 11, (int)w->source);
    sqlite3_bind_int64(q, 12, (sqlite3_int64)w->created);
}

/* The journal row of a window change ('w'): see struct store_change. */
static void window_change(const struct window *w, char *who, int64_t at,
                          struct store_change *c)
{
    memset(c, 0, sizeof *c);
    c->kind = 'w';
    c->changed_at = at;
    c->t[0] = (char *)w->id; c->t[1] = who; c->t[2] = w->rrule;
    c->t[3] = w->tz; c->t[4] = w->reason; c->t[5] = w->owner;
    c->i[0] = w->from; c->i[1] = w->until; c->i[2] = w->duration;
    c->i[3] = w->action; c->i[4] = w->source; c->i[5] = w->created;
}

int store_window_add(struct store *st, struct window *w)
{
    char *who;
    if (w->nwho == 0) {
        errno = EINVAL;
        return -1;
    }
    who = join_who(w);
    if (who == NULL)
        return -1;
    int64_t at = stamp(st);
    struct store_change c;
    if (w->id[0] != '\0') {
        sqlite3_stmt *q = st->q[Q_WIN_UPSERT];
        int rc;
        if (share_begin(st) < 0) {
            free(who);
            return -1;
        }
        store_bind_text(q, 1, w->id);
        bind_window(q, w, who);
        sqlite3_bind_int64(q, 13, at);
        rc = store_step_done(st, Q_WIN_UPSERT, "window add");
        if (rc == 0 && st->wake) {
            store_bind_text(st->q[Q_TOMB_DEL], 1, w->id);
            rc = store_step_done(st, Q_TOMB_DEL, "tomb");
        }
        window_change(w, who, at, &c);
        rc = share_commit(st, rc, &c);
        free(who);
        return rc;
    }
    /* The id derives from the row number, known only after the insert: do
     * both in one transaction so no row ever lacks its id on disk. */
    if (store_step_done(st, Q_BEGIN, "begin") < 0) {
        free(who);
        return -1;
    }
    {
        sqlite3_stmt *q = st->q[Q_WIN_INSERT];
        sqlite3_int64 n;
        int len;
        bind_window(q, w, who);
        sqlite3_bind_int64(q, 13, at);
        if (store_step_done(st, Q_WIN_INSERT, "window add") < 0)
            goto rollback;
        n = sqlite3_last_insert_rowid(st->db);
        len = snprintf(w->id, sizeof w->id, "w%lld%s", (long long)n, st->idsuffix);
        if (len < 0 || (size_t)len >= sizeof w->id) {
            log_error("store: window id w%lld%s is too long", (long long)n, st->idsuffix);
            errno = EOVERFLOW;
            goto rollback;
        }
        sqlite3_bind_int64(st->q[Q_WIN_SET_ID], 1, n);
        store_bind_text(st->q[Q_WIN_SET_ID], 2, st->idsuffix);
        if (store_step_done(st, Q_WIN_SET_ID, "window id") < 0)
            goto rollback;
        if (st->wake) {
            window_change(w, who, at, &c);
            if (share_commit(st, 0, &c) < 0) {
                free(who);
                w->id[0] = '\0';
                return -1;
            }
            free(who);
            return 0;
        }
        if (store_step_done(st, Q_COMMIT, "commit") < 0)
            goto rollback;
        free(who);
        return 0;
    }
rollback:
    {
        int e = errno;
        store_step_done(st, Q_ROLLBACK, "rollback");
        errno = e;
    }
    free(who);
    w->id[0] = '\0';
    return -1;
}

int store_window_delete(struct store *st, const char *id)
{
    int rc;
    if (share_begin(st) < 0)
        return -1;
    store_bind_text(st->q[Q_WIN_DELETE], 1, id);
    rc = store_step_done(st, Q_WIN_DELETE, "window delete");
    if (rc == 0 && sqlite3_changes(st->db) == 0) {
        errno = ENOENT;
        rc = -1;
    }
    if (st->wake) {
        struct store_change c = { .kind = 'e', .changed_at = stamp(st) };
        c.t[0] = (char *)id;
        c.i[4] = WSRC_RUNTIME;
        if (rc == 0) {
            store_bind_text(st->q[Q_TOMB_SET], 1, id);
            sqlite3_bind_int64(st->q[Q_TOMB_SET], 2, c.changed_at);
            rc = store_step_done(st, Q_TOMB_SET, "tomb");
        }
        return share_commit(st, rc, &c);
    }
    return rc;
}

static char *col_dup(sqlite3_stmt *q, int i)
{
    const unsigned char *s = sqlite3_column_text(q, i);
    return s ? strdup((const char *)s) : NULL;
}

/* Split a comma-joined who list into w->who (one allocation for the
 * strings, one for the array). */
static int split_who(struct window *w, char *buf)
{
    size_t n = 1, i = 0;
    char *p;
    for (p = buf; *p; p++)
        n += *p == ',';
    w->who = calloc(n, sizeof *w->who);
    if (w->who == NULL)
        return -1;
    for (p = buf;;) {
        char *c = strchr(p, ',');
        w->who[i++] = p;
        if (c == NULL)
            break;
        *c = '\0';
        p = c + 1;
    }
    w->nwho = i;
    return 0;
}

int store_windows_load(struct store *st, struct windows *ix)
{
    sqlite3_stmt *q = st->q[Q_WIN_ALL];
    int rc, ret = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct window w;
        char *whobuf, *id;
        memset(&w, 0, sizeof w);
        id = (char *)sqlite3_column_text(q, 0);
        if (id == NULL)
            continue;  /* cannot happen: ids are set in the insert's transaction */
        snprintf(w.id, sizeof w.id, "%s", id);
        whobuf = col_dup(q, 1);
        w.from = (time_t)sqlite3_column_int64(q, 2);
        w.until = sqlite3_column_type(q, 3) == SQLITE_NULL
                      ? WHEN_NEVER : (time_t)sqlite3_column_int64(q, 3);
        w.rrule = col_dup(q, 4);
        w.duration = sqlite3_column_int64(q, 5);
        w.tz = col_dup(q, 6);
        w.action = (enum action)sqlite3_column_int(q, 7);
        w.reason = col_dup(q, 8);
        w.owner = col_dup(q, 9);
        w.source = (enum window_source)sqlite3_column_int(q, 10);
        w.created = (time_t)sqlite3_column_int64(q, 11);
        if (whobuf == NULL || split_who(&w, whobuf) < 0 ||
            windows_add(ix, &w) == NULL) {
            log_error("store: cannot load window %s: %s", w.id, strerror(errno));
            ret = -1;
        }
        free(w.who);
        free(whobuf);
        free(w.rrule);
        free(w.tz);
        free(w.reason);
        free(w.owner);
        if (ret < 0) {
            errno = ENOMEM;
            break;
        }
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = store_db_fail(st, "windows load");
    sqlite3_reset(q);
    return ret;
}

/* ---------- batches ---------- */

int store_batch_begin(struct store *st)
{
    if (st->batch)
        return st->batch++, 0;
    if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return store_db_fail(st, "batch");
    st->batch = 1;
    return 0;
}

int store_batch_end(struct store *st)
{
    if (st->batch == 0 || --st->batch > 0)
        return 0;
    /* One commit, one fsync, for the whole batch (a record written inside
     * it left synchronous at NORMAL). */
    sqlite3_exec(st->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        int rc = store_db_fail(st, "batch commit");
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return 0;
}

/* ---------- audit ---------- */

int store_audit(struct store *st, const struct audit_rec *r)
{
    sqlite3_stmt *q = st->q[Q_AUDIT_ADD];
    if (r->event == NULL) {
        errno = EINVAL;
        return -1;
    }
    sqlite3_bind_int64(q, 1, (sqlite3_int64)r->t);
    store_bind_text(q, 2, r->event);
    store_bind_text(q, 3, r->rep);
    store_bind_text(q, 4, r->contact);
    store_bind_text(q, 5, r->window_id);
    store_bind_text(q, 6, r->msg_id);
    store_bind_text(q, 7, r->detail);
    /* The audit is a record, not a promise: its rows need not survive a
     * power cut (they do survive a crash of the process, WAL is in the page
     * cache), so it skips the fsync that held mail and windows pay for. */
    sqlite3_exec(st->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    int rc = share_begin(st);
    if (rc == 0) {
        struct store_change c = { .kind = 'a', .changed_at = stamp(st) };
        c.t[0] = (char *)r->event; c.t[1] = (char *)r->rep;
        c.t[2] = (char *)r->contact; c.t[3] = (char *)r->window_id;
        c.t[4] = (char *)r->msg_id; c.t[5] = (char *)r->detail;
        c.i[0] = r->t;
        rc = share_commit(st, store_step_done(st, Q_AUDIT_ADD, "audit"), &c);
    }
    if (!st->batch)
        sqlite3_exec(st->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    if (rc == 0 && st->on_audit)
        st->on_audit(st->on_audit_arg, r);
    return rc;
}

void store_on_audit(struct store *st, void (*fn)(void *arg, const struct audit_rec *r), void *arg)
{
    st->on_audit = fn;
    st->on_audit_arg = arg;
}

int store_audit_foreach(struct store *st, time_t since,
                        int (*fn)(const struct audit_rec *r, void *arg),
                        void *arg)
{
    sqlite3_stmt *q = st->q[Q_AUDIT_SINCE];
    int rc, ret = 0;
    sqlite3_bind_int64(q, 1, (sqlite3_int64)since);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct audit_rec r;
        r.t = (time_t)sqlite3_column_int64(q, 0);
        r.event = (const char *)sqlite3_column_text(q, 1);
        r.rep = (const char *)sqlite3_column_text(q, 2);
        r.contact = (const char *)sqlite3_column_text(q, 3);
        r.window_id = (const char *)sqlite3_column_text(q, 4);
        r.msg_id = (const char *)sqlite3_column_text(q, 5);
        r.detail = (const char *)sqlite3_column_text(q, 6);
        if (fn(&r, arg) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = store_db_fail(st, "audit read");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return ret;
}

int store_audit_has_msg(struct store *st, const char *msg_id, time_t since)
{
    sqlite3_stmt *q = st->q[Q_AUDIT_HAS_MSG];
    int rc;
    if (msg_id == NULL)
        return 0;
    store_bind_text(q, 1, msg_id);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)since);
    rc = sqlite3_step(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        store_db_fail(st, "audit lookup");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int store_audit_foreach_msg(struct store *st, const char *msg_id, time_t since,
                            int (*fn)(const struct audit_rec *r, void *arg),
                            void *arg)
{
    sqlite3_stmt *q = st->q[Q_AUDIT_MSG];
    int rc, ret = 0;
    if (msg_id == NULL)
        return 0;
    store_bind_text(q, 1, msg_id);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)since);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct audit_rec r;
        r.t = (time_t)sqlite3_column_int64(q, 0);
        r.event = (const char *)sqlite3_column_text(q, 1);
        r.rep = (const char *)sqlite3_column_text(q, 2);
        r.contact = (const char *)sqlite3_column_text(q, 3);
        r.window_id = (const char *)sqlite3_column_text(q, 4);
        r.msg_id = (const char *)sqlite3_column_text(q, 5);
        r.detail = (const char *)sqlite3_column_text(q, 6);
        if (fn(&r, arg) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = store_db_fail(st, "audit read");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return ret;
}

/* ---------- seen ---------- */

int store_seen_add(struct store *st, const char *message_id,
                   const char *contact, const char *rep, time_t t)
{
    sqlite3_stmt *q = st->q[Q_SEEN_ADD];
    if (message_id == NULL || contact == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (share_begin(st) < 0)
        return -1;
    store_bind_text(q, 1, message_id);
    store_bind_text(q, 2, contact);
    store_bind_text(q, 3, rep);
    sqlite3_bind_int64(q, 4, (sqlite3_int64)t);
    struct store_change c = { .kind = 's', .changed_at = stamp(st) };
    c.t[0] = (char *)message_id; c.t[1] = (char *)contact; c.t[2] = (char *)rep;
    c.i[0] = t;
    return share_commit(st, store_step_done(st, Q_SEEN_ADD, "seen add"), &c);
}

int store_seen_has(struct store *st, const char *message_id,
                   const char *contact)
{
    sqlite3_stmt *q = st->q[Q_SEEN_HAS];
    int rc;
    if (message_id == NULL || contact == NULL)
        return 0;
    store_bind_text(q, 1, message_id);
    store_bind_text(q, 2, contact);
    rc = sqlite3_step(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        store_db_fail(st, "seen lookup");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* ---------- invitations (evidence for calendar replies) ---------- */

int store_invite_add(struct store *st, const char *rep, const char *uid,
                     const char *organizer, time_t t)
{
    sqlite3_stmt *q = st->q[Q_INVITE_ADD];
    if (!rep || !uid || !organizer) {
        errno = EINVAL;
        return -1;
    }
    if (share_begin(st) < 0)
        return -1;
    store_bind_text(q, 1, rep);
    store_bind_text(q, 2, uid);
    store_bind_text(q, 3, organizer);
    sqlite3_bind_int64(q, 4, (sqlite3_int64)t);
    struct store_change c = { .kind = 'i', .changed_at = stamp(st) };
    c.t[0] = (char *)rep; c.t[1] = (char *)uid; c.t[2] = (char *)organizer;
    c.i[0] = t;
    return share_commit(st, store_step_done(st, Q_INVITE_ADD, "invitation add"), &c);
}

int store_invite_has(struct store *st, const char *rep, const char *uid,
                     const char *organizer)
{
    sqlite3_stmt *q = st->q[Q_INVITE_HAS];
    int rc;
    if (!rep || !uid || !organizer)
        return 0;
    store_bind_text(q, 1, rep);
    store_bind_text(q, 2, uid);
    store_bind_text(q, 3, organizer);
    rc = sqlite3_step(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        store_db_fail(st, "invitation lookup");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* ---------- retention ---------- */

int store_prune(struct store *st, time_t before)
{
    sqlite3_int64 n;
    /* One transaction: a crash leaves either both tables pruned or neither,
     * and the two deletes cost one fsync. */
    if (store_step_done(st, Q_BEGIN, "begin") < 0)
        return -1;
    sqlite3_bind_int64(st->q[Q_PRUNE_AUDIT], 1, (sqlite3_int64)before);
    if (store_step_done(st, Q_PRUNE_AUDIT, "prune audit") < 0)
        goto rollback;
    n = sqlite3_changes64(st->db);
    sqlite3_bind_int64(st->q[Q_PRUNE_SEEN], 1, (sqlite3_int64)before);
    if (store_step_done(st, Q_PRUNE_SEEN, "prune seen") < 0)
        goto rollback;
    n += sqlite3_changes64(st->db);
    sqlite3_bind_int64(st->q[Q_PRUNE_INVITE], 1, (sqlite3_int64)before);
    if (store_step_done(st, Q_PRUNE_INVITE, "prune invitations") < 0)
        goto rollback;
    n += sqlite3_changes64(st->db);
    /* Shared: the same cut goes to PostgreSQL ('p'); the shortest
     * retention among the gateways wins there. */
    if (st->wake && journal_add(st, &(struct store_change){ .kind = 'p', .changed_at = stamp(st),
                                                            .i = { (int64_t)before } }) < 0)
        goto rollback;
    sqlite3_bind_int64(st->q[Q_PRUNE_CONTACT], 1, (sqlite3_int64)before);
    if (store_step_done(st, Q_PRUNE_CONTACT, "prune contacts") < 0)
        goto rollback;
    n += sqlite3_changes64(st->db);
    sqlite3_bind_int64(st->q[Q_PRUNE_INBOUND], 1, (sqlite3_int64)before);
    if (store_step_done(st, Q_PRUNE_INBOUND, "prune inbound") < 0)
        goto rollback;
    n += sqlite3_changes64(st->db);
    /* A sent follow-up is only looked up within [followup] catch_up (at
     * most 30 days) of its due time: keep its row that much longer, so a
     * short retention cannot make a restart send it again. */
    sqlite3_bind_int64(st->q[Q_PRUNE_FU], 1, (sqlite3_int64)(before - 31 * 86400));
    if (store_step_done(st, Q_PRUNE_FU, "prune follow-ups") < 0)
        goto rollback;
    n += sqlite3_changes64(st->db);
    if (store_step_done(st, Q_COMMIT, "commit") < 0)
        goto rollback;
    if (st->wake)
        st->wake(st->wake_arg);
    return n > INT_MAX ? INT_MAX : (int)n;
rollback:
    {
        int e = errno;
        store_step_done(st, Q_ROLLBACK, "rollback");
        errno = e;
    }
    return -1;
}

/* ---------- kv ---------- */

int store_kv_set(struct store *st, const char *key, const char *value)
{
    /* "ended:<file window id>" (a file window ended by hand) is shared
     * state: journalled as an end ('e', source file). Other keys are this
     * gateway's own sync state. */
    int shared = st->wake && !strncmp(key, "ended:", 6);
    int rc;
    if (shared && share_begin(st) < 0)
        return -1;
    store_bind_text(st->q[Q_KV_SET], 1, key);
    store_bind_text(st->q[Q_KV_SET], 2, value);
    rc = store_step_done(st, Q_KV_SET, "kv set");
    if (!shared)
        return rc;
    struct store_change c = { .kind = 'e', .changed_at = stamp(st) };
    c.t[0] = (char *)key + 6;
    c.i[4] = WSRC_FILE;
    if (rc == 0) {
        store_bind_text(st->q[Q_TOMB_SET], 1, c.t[0]);
        sqlite3_bind_int64(st->q[Q_TOMB_SET], 2, c.changed_at);
        rc = store_step_done(st, Q_TOMB_SET, "tomb");
    }
    return share_commit(st, rc, &c);
}

char *store_kv_get(struct store *st, const char *key)
{
    sqlite3_stmt *q = st->q[Q_KV_GET];
    char *v = NULL;
    int rc;
    store_bind_text(q, 1, key);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        v = col_dup(q, 0);
        if (v == NULL)
            errno = sqlite3_column_type(q, 0) == SQLITE_NULL ? ENOENT : ENOMEM;
    } else if (rc == SQLITE_DONE) {
        errno = ENOENT;
    } else {
        store_db_fail(st, "kv get");
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return v;
}

int store_kv_del(struct store *st, const char *key)
{
    store_bind_text(st->q[Q_KV_DEL], 1, key);
    return store_step_done(st, Q_KV_DEL, "kv del");
}

/* ---------- shared state: the seam store_pg.c uses ----------
 *
 * With sharing on, every write above to a shared table runs in one
 * transaction with a journal row (share_begin ... share_commit), so the
 * change and the promise to send it to PostgreSQL are durable together;
 * the database thread reads the journal through its own connection
 * (store_journal_*) and the loop deletes what it confirmed
 * (store_journal_ack). Changes from other gateways come back through
 * store_apply, which never journals. */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Change times of this gateway strictly increase, so two changes to one
 * window in the same millisecond still order (the later one wins). */
static int64_t stamp(struct store *st)
{
    int64_t t = now_ms();
    st->last_at = t > st->last_at ? t : st->last_at + 1;
    return st->last_at;
}

void store_share(struct store *st, const char *node, void (*wake)(void *), void *arg)
{
    st->wake = wake;
    st->wake_arg = arg;
    snprintf(st->idsuffix, sizeof st->idsuffix, "-%.6s", node);
}

static int share_begin(struct store *st)
{
    return st->wake ? store_step_done(st, Q_BEGIN, "begin") : 0;
}

static int journal_add(struct store *st, const struct store_change *c)
{
    sqlite3_stmt *q = st->q[Q_JOURNAL_ADD];
    char kind[2] = { c->kind, '\0' };
    store_bind_text(q, 1, kind);
    sqlite3_bind_int64(q, 2, c->changed_at);
    for (int k = 0; k < 6; k++) {
        store_bind_text(q, 3 + k, c->t[k]);
        sqlite3_bind_int64(q, 9 + k, c->i[k]);
    }
    return store_step_done(st, Q_JOURNAL_ADD, "journal");
}

/* End the transaction share_begin opened: with rc == 0 add c to the
 * journal and commit, else roll back. Wakes the database thread. */
static int share_commit(struct store *st, int rc, const struct store_change *c)
{
    if (!st->wake)
        return rc;
    if (rc == 0)
        rc = journal_add(st, c);
    if (rc == 0 && store_step_done(st, Q_COMMIT, "commit") == 0) {
        st->wake(st->wake_arg);
        return 0;
    }
    int e = errno;
    store_step_done(st, Q_ROLLBACK, "rollback");
    errno = e;
    return -1;
}

int store_window_publish(struct store *st, const struct window *w)
{
    struct store_change c;
    char *who;
    if (!st->wake)
        return 0;
    if (!(who = join_who(w)))
        return -1;
    window_change(w, who, stamp(st), &c);
    int rc = share_commit(st, share_begin(st), &c);
    free(who);
    return rc;
}

int store_window_retract(struct store *st, const char *id, enum window_source source)
{
    struct store_change c = { .kind = 'e', .changed_at = stamp(st) };
    if (!st->wake)
        return 0;
    c.t[0] = (char *)id;
    c.i[4] = source;
    return share_commit(st, share_begin(st), &c);
}

int store_journal_ack(struct store *st, int64_t upto)
{
    sqlite3_bind_int64(st->q[Q_JOURNAL_ACK], 1, upto);
    return store_step_done(st, Q_JOURNAL_ACK, "journal ack");
}

int64_t store_journal_pending(struct store *st)
{
    sqlite3_stmt *q = st->q[Q_JOURNAL_COUNT];
    int64_t n = -1;
    if (sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    return n;
}

int64_t store_feed_seq(struct store *st)
{
    char *v = store_kv_get(st, "pg:seq");
    int64_t n = v ? strtoll(v, NULL, 10) : 0;
    free(v);
    return n;
}

/* -1: no row; else the row's changed_at. */
static int64_t lookup_at(struct store *st, int qi, const char *id)
{
    sqlite3_stmt *q = st->q[qi];
    int64_t at = -1;
    store_bind_text(q, 1, id);
    if (sqlite3_step(q) == SQLITE_ROW)
        at = sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return at;
}

/* A window change from elsewhere: the latest change wins; on a tie an end
 * wins (and an existing row stays). Sets c->applied. */
static int apply_window(struct store *st, struct store_change *c)
{
    int64_t tomb = lookup_at(st, Q_TOMB_GET, c->t[0]);
    int64_t row = lookup_at(st, Q_WIN_CHANGED_AT, c->t[0]);
    if (c->kind == 'w') {
        if (tomb >= c->changed_at || row >= c->changed_at)
            return 0;
        struct window w;
        char *whobuf = NULL;
        if (store_change_window(c, &w, &whobuf) < 0)
            return -1;
        sqlite3_stmt *q = st->q[Q_WIN_UPSERT];
        store_bind_text(q, 1, w.id);
        bind_window(q, &w, c->t[1]);
        sqlite3_bind_int64(q, 13, c->changed_at);
        free(w.who);
        free(whobuf);
        if (store_step_done(st, Q_WIN_UPSERT, "window apply") < 0)
            return -1;
        store_bind_text(st->q[Q_TOMB_DEL], 1, c->t[0]);
        c->applied = 1;
        return store_step_done(st, Q_TOMB_DEL, "tomb");
    }
    if (row > c->changed_at || tomb >= c->changed_at)
        return 0;
    store_bind_text(st->q[Q_WIN_DELETE], 1, c->t[0]);
    if (store_step_done(st, Q_WIN_DELETE, "window apply") < 0)
        return -1;
    store_bind_text(st->q[Q_TOMB_SET], 1, c->t[0]);
    sqlite3_bind_int64(st->q[Q_TOMB_SET], 2, c->changed_at);
    if (store_step_done(st, Q_TOMB_SET, "tomb") < 0)
        return -1;
    if (c->i[4] == WSRC_FILE) {
        char key[WINDOW_ID_MAX + 8];
        snprintf(key, sizeof key, "ended:%.*s", WINDOW_ID_MAX - 1, c->t[0]);
        store_bind_text(st->q[Q_KV_SET], 1, key);
        store_bind_text(st->q[Q_KV_SET], 2, "1");
        if (store_step_done(st, Q_KV_SET, "kv set") < 0)
            return -1;
    }
    c->applied = 1;
    return 0;
}

static int apply_one(struct store *st, struct store_change *c)
{
    sqlite3_stmt *q;
    int qi;
    c->applied = 0;
    if (c->kind == 'w' || c->kind == 'e')
        return c->t[0] ? apply_window(st, c) : 0;
    if (c->kind == 'a') {
        q = st->q[qi = Q_AUDIT_ADD];
        sqlite3_bind_int64(q, 1, c->i[0]);
        for (int k = 0; k < 6; k++)
            store_bind_text(q, 2 + k, c->t[k]);
        if (c->t[0] == NULL)
            return 0;
    } else if (c->kind == 's' || c->kind == 'i') {
        qi = c->kind == 's' ? Q_SEEN_ADD : Q_INVITE_ADD;
        q = st->q[qi];
        if (!c->t[0] || !c->t[1] || (c->kind == 'i' && !c->t[2]))
            return 0;
        for (int k = 0; k < 3; k++)
            store_bind_text(q, 1 + k, c->t[k]);
        sqlite3_bind_int64(q, 4, c->i[0]);
    } else {
        return 0;   /* a kind from a newer untild: skipped */
    }
    c->applied = 1;
    return store_step_done(st, qi, "apply");
}

int store_apply(struct store *st, struct store_change *c, size_t n, int64_t feed_seq)
{
    char seq[24];
    if (store_step_done(st, Q_BEGIN, "begin") < 0)
        return -1;
    for (size_t k = 0; k < n; k++)
        if (apply_one(st, &c[k]) < 0)
            goto rollback;
    snprintf(seq, sizeof seq, "%lld", (long long)feed_seq);
    store_bind_text(st->q[Q_KV_SET], 1, "pg:seq");
    store_bind_text(st->q[Q_KV_SET], 2, seq);
    if (store_step_done(st, Q_KV_SET, "kv set") < 0 || store_step_done(st, Q_COMMIT, "commit") < 0)
        goto rollback;
    return 0;
rollback:
    {
        int e = errno;
        store_step_done(st, Q_ROLLBACK, "rollback");
        errno = e;
    }
    for (size_t k = 0; k < n; k++)
        c[k].applied = 0;
    return -1;
}

int store_change_window(const struct store_change *c, struct window *w, char **whobuf)
{
    memset(w, 0, sizeof *w);
    *whobuf = NULL;
    if (c->kind != 'w' || !c->t[0] || !c->t[1] || !*c->t[1]) {
        errno = EINVAL;
        return -1;
    }
    snprintf(w->id, sizeof w->id, "%s", c->t[0]);
    w->rrule = c->t[2]; w->tz = c->t[3]; w->reason = c->t[4]; w->owner = c->t[5];
    w->from = (time_t)c->i[0]; w->until = (time_t)c->i[1];
    w->duration = c->i[2]; w->action = (enum action)c->i[3];
    w->source = (enum window_source)c->i[4]; w->created = (time_t)c->i[5];
    if (!(*whobuf = strdup(c->t[1])) || split_who(w, *whobuf) < 0) {
        free(*whobuf);
        *whobuf = NULL;
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

void store_change_clear(struct store_change *c)
{
    free(c->origin);
    for (int k = 0; k < 6; k++)
        free(c->t[k]);
    memset(c, 0, sizeof *c);
}

struct store_journal {
    sqlite3 *db;
    sqlite3_stmt *q;
};

struct store_journal *store_journal_open(const char *state_dir)
{
    struct store_journal *j = calloc(1, sizeof *j);
    char path[4096];
    if (!j)
        return NULL;
    snprintf(path, sizeof path, "%s/untild.db", state_dir);
    if (sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(j->db, 5000) != SQLITE_OK ||
        sqlite3_prepare_v2(j->db,
                           "SELECT seq, kind, changed_at, t0, t1, t2, t3, t4, t5,"
                           " i0, i1, i2, i3, i4, i5 FROM journal WHERE seq > ?1"
                           " ORDER BY seq LIMIT ?2", -1, &j->q, NULL) != SQLITE_OK) {
        log_error("store: journal %s: %s", path, j->db ? sqlite3_errmsg(j->db) : "out of memory");
        store_journal_close(j);
        errno = EIO;
        return NULL;
    }
    return j;
}

int store_journal_read(struct store_journal *j, int64_t after, struct store_change *out, size_t max)
{
    size_t n = 0;
    int rc;
    sqlite3_bind_int64(j->q, 1, after);
    sqlite3_bind_int64(j->q, 2, (sqlite3_int64)max);
    while (n < max && (rc = sqlite3_step(j->q)) == SQLITE_ROW) {
        struct store_change *c = &out[n++];
        memset(c, 0, sizeof *c);
        c->seq = sqlite3_column_int64(j->q, 0);
        c->kind = ((const char *)sqlite3_column_text(j->q, 1))[0];
        c->changed_at = sqlite3_column_int64(j->q, 2);
        for (int k = 0; k < 6; k++) {
            c->t[k] = col_dup(j->q, 3 + k);
            c->i[k] = sqlite3_column_int64(j->q, 9 + k);
        }
    }
    if (n < max && rc != SQLITE_DONE) {
        log_error("store: journal read: %s", sqlite3_errmsg(j->db));
        sqlite3_reset(j->q);
        while (n > 0)
            store_change_clear(&out[--n]);
        errno = EIO;
        return -1;
    }
    sqlite3_reset(j->q);
    return (int)n;
}

void store_journal_close(struct store_journal *j)
{
    if (!j)
        return;
    sqlite3_finalize(j->q);
    sqlite3_close(j->db);
    free(j);
}

int store_kv_foreach_prefix(struct store *st, const char *prefix,
                            int (*fn)(const char *key, const char *value,
                                      void *arg),
                            void *arg)
{
    size_t n = strlen(prefix);
    char hi[256];
    if (n == 0 || n >= sizeof hi || (unsigned char)prefix[n - 1] == 0xff) {
        errno = EINVAL;
        return -1;
    }
    memcpy(hi, prefix, n + 1);
    hi[n - 1] = (char)((unsigned char)hi[n - 1] + 1);
    sqlite3_stmt *q = st->q[Q_KV_PREFIX];
    store_bind_text(q, 1, prefix);
    store_bind_text(q, 2, hi);
    int rc, count = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(q, 0);
        const char *v = (const char *)sqlite3_column_text(q, 1);
        count++;
        if (k && fn(k, v ? v : "", arg) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE)
        count = store_db_fail(st, "kv prefix");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return count;
}

