/* store_wh.c - the webhook queue table (see store_wh.h).
 *
 * Why a table in untild.db: the queue must outlive a restart and a receiver
 * that is down for days, and the store already makes rows durable without
 * a file per event. The loop appends (a record: synchronous=NORMAL, as the
 * audit, so an event costs the loop no fsync); each delivery thread reads
 * the head of its webhook and deletes it after a 2xx on a connection of its
 * own (WAL: readers do not wait for the loop's writes; a write waits at
 * most for another's short commit, busy_timeout).
 *
 * Diagnostics: log_error with SQLite's message. */
#include "untild/store_wh.h"
#include "untild/store.h"
#include "untild/store_int.h"
#include "untild/log.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store_webhook_add(struct store *st, const struct store_wh_new *rows, size_t n)
{
    sqlite3_stmt *q = st->q[Q_WH_ADD];
    int rc = 0;
    /* one commit for a loop turn's events: measured 16 us an event against
     * 91 us with a commit each (DECISIONS.md "Webhooks") */
    sqlite3_exec(st->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    if (store_step_done(st, Q_BEGIN, "webhook queue begin") < 0)
        rc = -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        store_bind_text(q, 1, rows[i].hook);
        store_bind_text(q, 2, rows[i].event_id);
        sqlite3_bind_int64(q, 3, (sqlite3_int64)rows[i].created);
        store_bind_text(q, 4, rows[i].body);
        rc = store_step_done(st, Q_WH_ADD, "webhook queue add");
    }
    if (rc == 0)
        rc = store_step_done(st, Q_COMMIT, "webhook queue commit");
    if (rc != 0 && sqlite3_get_autocommit(st->db) == 0)
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_exec(st->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    return rc;
}

int64_t store_webhook_count(struct store *st, const char *hook)
{
    sqlite3_stmt *q;
    int64_t n = -1;
    if (sqlite3_prepare_v2(st->db, "SELECT count(*) FROM webhook_queue WHERE hook = ?1", -1, &q,
                           NULL) != SQLITE_OK)
        return store_db_fail(st, "webhook queue count");
    store_bind_text(q, 1, hook);
    if (sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    else
        store_db_fail(st, "webhook queue count");
    sqlite3_finalize(q);
    return n;
}

/* ---------- a delivery thread's connection ---------- */

struct store_whq {
    sqlite3 *db;
    sqlite3_stmt *head, *del;
};

static int whq_fail(struct store_whq *q, const char *what)
{
    log_error("store: webhook queue %s: %s", what, sqlite3_errmsg(q->db));
    errno = EIO;
    return -1;
}

struct store_whq *store_whq_open(const char *state_dir)
{
    char path[4096];
    struct store_whq *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    snprintf(path, sizeof path, "%s/untild.db", state_dir);
    if (sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        log_error("store: webhook queue: cannot open %s: %s", path,
                  q->db ? sqlite3_errmsg(q->db) : "out of memory");
        store_whq_close(q);
        return NULL;
    }
    sqlite3_busy_timeout(q->db, 5000);
    /* a delete that a power cut loses only sends that event again (its id
     * lets the receiver see it twice), so no fsync per delivery */
    if (sqlite3_exec(q->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db, "SELECT seq, event_id, created, body FROM webhook_queue"
                           " WHERE hook = ?1 ORDER BY seq LIMIT 1", -1, &q->head, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db, "DELETE FROM webhook_queue WHERE seq = ?1", -1, &q->del, NULL)
            != SQLITE_OK) {
        whq_fail(q, "open");
        store_whq_close(q);
        return NULL;
    }
    return q;
}

void store_whq_close(struct store_whq *q)
{
    if (!q)
        return;
    sqlite3_finalize(q->head);
    sqlite3_finalize(q->del);
    sqlite3_close(q->db);
    free(q);
}

void store_wh_row_clear(struct store_wh_row *row)
{
    free(row->event_id);
    free(row->body);
    memset(row, 0, sizeof *row);
}

int store_whq_head(struct store_whq *q, const char *hook, struct store_wh_row *row)
{
    int rc, ret = 0;
    memset(row, 0, sizeof *row);
    sqlite3_bind_text(q->head, 1, hook, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(q->head);
    if (rc == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(q->head, 1);
        const char *body = (const char *)sqlite3_column_text(q->head, 3);
        row->seq = sqlite3_column_int64(q->head, 0);
        row->created = (time_t)sqlite3_column_int64(q->head, 2);
        row->event_id = strdup(id ? id : "");
        row->body = strdup(body ? body : "");
        ret = row->event_id && row->body ? 1 : -1;
        if (ret < 0) {
            log_error("store: webhook queue: out of memory");
            store_wh_row_clear(row);
        }
    } else if (rc != SQLITE_DONE) {
        ret = whq_fail(q, "read");
    }
    sqlite3_reset(q->head);
    sqlite3_clear_bindings(q->head);
    return ret;
}

int store_whq_delete(struct store_whq *q, int64_t seq)
{
    sqlite3_bind_int64(q->del, 1, (sqlite3_int64)seq);
    int rc = sqlite3_step(q->del);
    sqlite3_reset(q->del);
    sqlite3_clear_bindings(q->del);
    return rc == SQLITE_DONE ? 0 : whq_fail(q, "delete");
}
