/* store_wh.h - the webhook queue in the store (issue 14; schema 8): one
 * row per event and webhook, kept until the receiver answers 2xx. Local to
 * the gateway (not shared through [store] url).
 *
 * store_webhook_add and store_webhook_count run on the loop, on its
 * connection; the store_whq_* calls are a delivery thread's, on a
 * connection of its own (each thread opens one). */
#ifndef UNTILD_STORE_WH_H
#define UNTILD_STORE_WH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct store;

/* Append events, in one transaction: a record (no fsync: it survives a
 * crash of the process, maybe not a power cut). 0, or -1 (logged; none
 * added). */
struct store_wh_new {
    const char *hook, *event_id, *body;
    time_t created;
};
int store_webhook_add(struct store *st, const struct store_wh_new *rows, size_t n);
/* Rows waiting for hook; -1 on error. */
int64_t store_webhook_count(struct store *st, const char *hook);

struct store_whq;
struct store_wh_row {
    int64_t seq;
    char *event_id, *body;   /* malloc'd: store_wh_row_clear */
    time_t created;
};
/* Any thread, one connection per thread. NULL (logged) on failure. */
struct store_whq *store_whq_open(const char *state_dir);
void store_whq_close(struct store_whq *q);
/* The oldest row of hook: 1 (row filled), 0 none, -1 error (logged). */
int store_whq_head(struct store_whq *q, const char *hook, struct store_wh_row *row);
/* Remove the row seq: 0 or -1 (logged). */
int store_whq_delete(struct store_whq *q, int64_t seq);
void store_wh_row_clear(struct store_wh_row *row);

#endif
