/* store_fu.c - the store's tables for follow-up and cadence (issue 12):
 * follow-ups sent, the contact history, inbound messages, cadence
 * overrides, follow-up calendar items. Same rules as store.c: main thread
 * only; -1 with errno on failure (logged). */
#include "untild/store.h"
#include "untild/store_int.h"
#include "untild/log.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- follow-up (issue 12) ---------- */

static int read_audit_row(sqlite3_stmt *q, int (*fn)(const struct audit_rec *r, void *arg),
                          void *arg)
{
    struct audit_rec r;
    r.t = (time_t)sqlite3_column_int64(q, 0);
    r.event = (const char *)sqlite3_column_text(q, 1);
    r.rep = (const char *)sqlite3_column_text(q, 2);
    r.contact = (const char *)sqlite3_column_text(q, 3);
    r.window_id = (const char *)sqlite3_column_text(q, 4);
    r.msg_id = (const char *)sqlite3_column_text(q, 5);
    r.detail = (const char *)sqlite3_column_text(q, 6);
    return fn(&r, arg);
}

int store_audit_foreach_window(struct store *st, const char *window_id, time_t since,
                               time_t until, int (*fn)(const struct audit_rec *r, void *arg),
                               void *arg)
{
    sqlite3_stmt *q = st->q[Q_AUDIT_WINDOW];
    int rc, ret = 0;
    store_bind_text(q, 1, window_id);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)since);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)until);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        if (read_audit_row(q, fn, arg) != 0)
            break;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = store_db_fail(st, "audit read");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return ret;
}

int store_audit_reps(struct store *st, const char *key, time_t since, time_t until,
                     int (*fn)(const char *rep, void *arg), void *arg)
{
    sqlite3_stmt *q = st->q[Q_AUDIT_REPS];
    char like[300], sub[300];
    int rc, ret = 0;
    /* "@acme.com" covers its addresses and subdomains; an address only
     * itself (LIKEs that cannot match). */
    if (key[0] == '@') {
        snprintf(like, sizeof like, "%%%s", key);
        snprintf(sub, sizeof sub, "%%.%s", key + 1);
    } else {
        snprintf(like, sizeof like, "\x01");
        snprintf(sub, sizeof sub, "\x01");
    }
    store_bind_text(q, 1, key);
    store_bind_text(q, 2, like);
    store_bind_text(q, 5, sub);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)since);
    sqlite3_bind_int64(q, 4, (sqlite3_int64)until);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *rep = (const char *)sqlite3_column_text(q, 0);
        if (rep && fn(rep, arg) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = store_db_fail(st, "audit reps");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return ret;
}

int store_followup_sent(struct store *st, const char *window_id, time_t until)
{
    sqlite3_stmt *q = st->q[Q_FU_SENT];
    store_bind_text(q, 1, window_id);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)until);
    int rc = sqlite3_step(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        store_db_fail(st, "follow-up lookup");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int store_followup_mark(struct store *st, const char *window_id, time_t until, time_t t)
{
    store_bind_text(st->q[Q_FU_MARK], 1, window_id);
    sqlite3_bind_int64(st->q[Q_FU_MARK], 2, (sqlite3_int64)until);
    sqlite3_bind_int64(st->q[Q_FU_MARK], 3, (sqlite3_int64)t);
    return store_step_done(st, Q_FU_MARK, "follow-up mark");
}

/* ---------- contact history (issue 12, cadence) ---------- */

int store_contact_add(struct store *st, const struct store_contact *c)
{
    sqlite3_stmt *q = st->q[Q_CONTACT_ADD];
    const char *at = c->contact ? strrchr(c->contact, '@') : NULL;
    if (!at || !c->channel) {
        errno = EINVAL;
        return -1;
    }
    sqlite3_bind_int64(q, 1, (sqlite3_int64)c->t);
    store_bind_text(q, 2, c->contact);
    store_bind_text(q, 3, at + 1);
    store_bind_text(q, 4, c->rep);
    store_bind_text(q, 5, c->channel);
    store_bind_text(q, 6, c->msg_id);
    /* A record (a power cut may lose the last rows: the cadence then
     * allows one contact early). */
    return store_step_record(st, Q_CONTACT_ADD, "contact add");
}

int store_contacts(struct store *st, const char *key, time_t since, int limit,
                   int (*fn)(const struct store_contact *c, void *arg), void *arg)
{
    int dom = key[0] == '@';
    sqlite3_stmt *q = st->q[dom ? Q_CONTACT_DOM : Q_CONTACT_ADDR];
    int rc, ret = 0;
    store_bind_text(q, 1, dom ? key + 1 : key);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)since);
    sqlite3_bind_int(q, 3, limit);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct store_contact c = {
            .t = (time_t)sqlite3_column_int64(q, 0),
            .contact = (const char *)sqlite3_column_text(q, 1),
            .rep = (const char *)sqlite3_column_text(q, 2),
            .channel = (const char *)sqlite3_column_text(q, 3),
            .msg_id = (const char *)sqlite3_column_text(q, 4),
        };
        if (fn(&c, arg) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = store_db_fail(st, "contacts read");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return ret;
}

int store_contact_forget(struct store *st, const char *contact, const char *msg_id,
                         const char *channel)
{
    store_bind_text(st->q[Q_CONTACT_DEL], 1, contact);
    store_bind_text(st->q[Q_CONTACT_DEL], 2, msg_id);
    store_bind_text(st->q[Q_CONTACT_DEL], 3, channel);
    return store_step_record(st, Q_CONTACT_DEL, "contact forget");
}

int store_inbound_add(struct store *st, const char *message_id, const char *contact,
                      const char *rep, time_t t)
{
    sqlite3_stmt *q = st->q[Q_INBOUND_ADD];
    store_bind_text(q, 1, message_id);
    store_bind_text(q, 2, contact);
    store_bind_text(q, 3, rep);
    sqlite3_bind_int64(q, 4, (sqlite3_int64)t);
    return store_step_record(st, Q_INBOUND_ADD, "inbound add");
}

int store_inbound_has(struct store *st, const char *message_id, const char *contact)
{
    sqlite3_stmt *q = st->q[Q_INBOUND_HAS];
    store_bind_text(q, 1, message_id);
    store_bind_text(q, 2, contact);
    int rc = sqlite3_step(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        store_db_fail(st, "inbound lookup");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int store_contacts_range(struct store *st, time_t since, time_t until, int limit,
                         int (*fn)(const struct store_contact *c, void *arg), void *arg)
{
    sqlite3_stmt *q = st->q[Q_CONTACT_RANGE];
    int rc, ret = 0;
    sqlite3_bind_int64(q, 1, (sqlite3_int64)since);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)until);
    sqlite3_bind_int(q, 3, limit);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct store_contact c = {
            .t = (time_t)sqlite3_column_int64(q, 0),
            .contact = (const char *)sqlite3_column_text(q, 1),
            .rep = (const char *)sqlite3_column_text(q, 2),
            .channel = (const char *)sqlite3_column_text(q, 3),
            .msg_id = (const char *)sqlite3_column_text(q, 4),
        };
        if (fn(&c, arg) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = store_db_fail(st, "contacts read");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return ret;
}

/* ---------- cadence overrides (untilctl) ---------- */

int store_cadence_set(struct store *st, const char *who, const char *opts, const char *by, time_t t)
{
    store_bind_text(st->q[Q_CAD_SET], 1, who);
    store_bind_text(st->q[Q_CAD_SET], 2, opts);
    store_bind_text(st->q[Q_CAD_SET], 3, by);
    sqlite3_bind_int64(st->q[Q_CAD_SET], 4, (sqlite3_int64)t);
    return store_step_done(st, Q_CAD_SET, "cadence override set");
}

int store_cadence_del(struct store *st, const char *who)
{
    store_bind_text(st->q[Q_CAD_DEL], 1, who);
    if (store_step_done(st, Q_CAD_DEL, "cadence override delete") < 0)
        return -1;
    if (sqlite3_changes(st->db) == 0) {
        errno = ENOENT;
        return -1;
    }
    return 0;
}

int store_cadence_foreach(struct store *st,
                          int (*fn)(const char *who, const char *opts, const char *by, time_t t, void *arg),
                          void *arg)
{
    sqlite3_stmt *q = st->q[Q_CAD_ALL];
    int rc, ret = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        if (fn((const char *)sqlite3_column_text(q, 0), (const char *)sqlite3_column_text(q, 1),
               (const char *)sqlite3_column_text(q, 2), (time_t)sqlite3_column_int64(q, 3), arg))
            break;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = store_db_fail(st, "cadence overrides read");
    sqlite3_reset(q);
    return ret;
}

/* ---------- follow-up calendar items ---------- */

int store_fuitem_set(struct store *st, const char *window_id, const char *state)
{
    store_bind_text(st->q[Q_FUI_SET], 1, window_id);
    store_bind_text(st->q[Q_FUI_SET], 2, state);
    return store_step_done(st, Q_FUI_SET, "follow-up item set");
}

int store_fuitem_del(struct store *st, const char *window_id)
{
    store_bind_text(st->q[Q_FUI_DEL], 1, window_id);
    return store_step_done(st, Q_FUI_DEL, "follow-up item delete");
}

int store_fuitem_foreach(struct store *st, int (*fn)(const char *window_id, const char *state, void *arg),
                         void *arg)
{
    sqlite3_stmt *q = st->q[Q_FUI_ALL];
    int rc, ret = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        if (fn((const char *)sqlite3_column_text(q, 0), (const char *)sqlite3_column_text(q, 1), arg))
            break;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = store_db_fail(st, "follow-up items read");
    sqlite3_reset(q);
    return ret;
}
