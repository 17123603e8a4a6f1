/* store_int.h - what the halves of the store module share (store.c:
 * open, schema, windows, audit, kv, the shared-state seam; store_fu.c: the
 * follow-up and cadence tables of issue 12). Not for other modules. */
#ifndef UNTILD_STORE_INT_H
#define UNTILD_STORE_INT_H

#include <sqlite3.h>
#include <stdint.h>

enum {
    Q_WIN_INSERT, Q_WIN_SET_ID, Q_WIN_UPSERT, Q_WIN_DELETE, Q_WIN_ALL,
    Q_AUDIT_ADD, Q_AUDIT_SINCE, Q_AUDIT_HAS_MSG, Q_AUDIT_MSG, Q_SEEN_ADD, Q_SEEN_HAS,
    Q_KV_SET, Q_KV_GET, Q_KV_DEL, Q_KV_PREFIX, Q_PRUNE_AUDIT, Q_PRUNE_SEEN,
    Q_INVITE_ADD, Q_INVITE_HAS, Q_PRUNE_INVITE,
    Q_AUDIT_WINDOW, Q_AUDIT_REPS, Q_FU_SENT, Q_FU_MARK, Q_PRUNE_FU,
    Q_CONTACT_ADD, Q_CONTACT_ADDR, Q_CONTACT_DOM, Q_PRUNE_CONTACT, Q_CONTACT_DEL,
    Q_INBOUND_ADD, Q_INBOUND_HAS, Q_PRUNE_INBOUND, Q_CONTACT_RANGE,
    Q_CAD_SET, Q_CAD_DEL, Q_CAD_ALL, Q_FUI_SET, Q_FUI_DEL, Q_FUI_ALL,
    Q_BEGIN, Q_COMMIT, Q_ROLLBACK,
    /* the shared-state seam (store_pg.c), schema v5 */
    Q_JOURNAL_ADD, Q_JOURNAL_ACK, Q_JOURNAL_COUNT, Q_TOMB_GET, Q_TOMB_SET,
    Q_TOMB_DEL, Q_WIN_CHANGED_AT,
    Q_WH_ADD,   /* store_wh.c, schema v8 */
    Q_COUNT
};

struct audit_rec;
struct store {
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT];
    /* shared state: NULL wake = SQLite only (no journal) */
    void (*wake)(void *arg);
    void *wake_arg;
    char idsuffix[8];          /* "-<node>" */
    int64_t last_at;           /* the last change time handed out (stamp) */
    struct store_ckpt *ckpt;   /* WAL checkpoints off the loop (store_ckpt.c) */
    int batch;                 /* store_batch_begin depth: one transaction, savepoints inside */
    void (*on_audit)(void *arg, const struct audit_rec *r);   /* store_on_audit */
    void *on_audit_arg;
};

/* store_ckpt.c: checkpoint the WAL on a thread with its own connection to
 * path instead of in the committing (loop) thread. 0 (also when no thread
 * could start: SQLite then checkpoints as before) or -1. */
struct store;
int store_ckpt_start(struct store *st, const char *path);
void store_ckpt_stop(struct store *st);

/* log the SQLite error; errno EIO (ENOMEM); returns -1 */
int store_db_fail(struct store *st, const char *what);
/* run statement qi to completion (no rows), then reset it: 0 or -1 */
int store_step_done(struct store *st, int qi, const char *what);
/* the same for a record (contact history, inbound mail): committed without
 * the fsync that promises (windows, held mail) pay for, as the audit is;
 * it survives a crash of the process, maybe not a power cut */
int store_step_record(struct store *st, int qi, const char *what);
/* bind a string (NULL: SQL NULL) */
int store_bind_text(sqlite3_stmt *q, int i, const char *s);

#endif
