/* store_tok.c - API tokens in the store (issue 14; see store_tok.h).
 * A handful of rows, read once per API request: the statements are
 * prepared per call rather than kept in store.c's table. Main thread only. */
#include "untild/store_tok.h"
#include "untild/store_int.h"
#include "untild/log.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>

int store_token_add(struct store *st, const struct store_token *t)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->db, "INSERT INTO api_tokens (name, hash, scope, by, created)"
                           " VALUES (?1, ?2, ?3, ?4, ?5)", -1, &q, NULL) != SQLITE_OK)
        return store_db_fail(st, "token add");
    store_bind_text(q, 1, t->name);
    store_bind_text(q, 2, t->hash);
    store_bind_text(q, 3, t->scope);
    store_bind_text(q, 4, t->by);
    sqlite3_bind_int64(q, 5, (sqlite3_int64)t->created);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc == SQLITE_CONSTRAINT) {
        errno = EEXIST;
        return -1;
    }
    return rc == SQLITE_DONE ? 0 : store_db_fail(st, "token add");
}

int store_token_del(struct store *st, const char *name)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->db, "DELETE FROM api_tokens WHERE name = ?1", -1, &q, NULL) != SQLITE_OK)
        return store_db_fail(st, "token revoke");
    store_bind_text(q, 1, name);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return store_db_fail(st, "token revoke");
    if (sqlite3_changes(st->db) == 0) {
        errno = ENOENT;
        return -1;
    }
    return 0;
}

int store_token_foreach(struct store *st, int (*fn)(const struct store_token *t, void *arg), void *arg)
{
    sqlite3_stmt *q;
    int rc, ret = 0;
    if (sqlite3_prepare_v2(st->db, "SELECT name, hash, scope, by, created FROM api_tokens ORDER BY name",
                           -1, &q, NULL) != SQLITE_OK)
        return store_db_fail(st, "token list");
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct store_token t = {
            (const char *)sqlite3_column_text(q, 0), (const char *)sqlite3_column_text(q, 1),
            (const char *)sqlite3_column_text(q, 2), (const char *)sqlite3_column_text(q, 3),
            (time_t)sqlite3_column_int64(q, 4),
        };
        if (fn(&t, arg) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = store_db_fail(st, "token list");
    sqlite3_finalize(q);
    return ret;
}
