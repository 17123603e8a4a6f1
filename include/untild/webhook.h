/* webhook.h - outgoing webhooks (issue 14): [webhook NAME] sections, each
 * with a delivery thread that POSTs its queued events (store_wh.h), in
 * order, signed, with retries and backoff; a row leaves the queue on a 2xx
 * or once it is older than max_age.
 *
 * webhook_start, webhook_events, webhook_enqueue, webhook_stop run on the
 * loop; webhook_sign and webhook_backoff_ms are pure (any thread). */
#ifndef UNTILD_WEBHOOK_H
#define UNTILD_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "untild/event_kind.h"

struct config;
struct loop;
struct store;
struct webhook;

/* One thread per [webhook] section of c (the signing keys are read now,
 * the queue counted in st). NULL with *err 0 when there is none; NULL with
 * *err -1 on failure (logged). */
struct webhook *webhook_start(const struct config *c, struct store *st, struct loop *l, int *err);
/* Events not yet written are written; the threads stop (an attempt in
 * progress is abandoned: its event stays queued) and are joined. NULL is
 * fine. */
void webhook_stop(struct webhook *w);
/* The kinds some webhook wants (bit 1 << kind); 0 for NULL. */
uint32_t webhook_events(const struct webhook *w);
/* Queue body (event id, kind) for each webhook that wants kind: kept in
 * memory and written, with the other events of this loop turn, in one
 * transaction when the turn is over (a 0 ms timer); then the threads are
 * woken. No network, no fsync. A webhook whose queue holds max_queue
 * events drops it (logged). */
void webhook_enqueue(struct webhook *w, enum event_kind kind, const char *event_id, const char *body);
/* 1 if the [webhook] sections of a and b differ (they take effect at a
 * restart), else 0. */
int webhook_config_changed(const struct config *a, const struct config *b);

/* The signature header's value for body sent at t: "t=T,v1=HEX", HEX the
 * HMAC-SHA256 with key of "T.BODY" (man untild.conf(5) shows a receiver's
 * check). 0, or -1 if out is too small or GnuTLS fails. */
#define WEBHOOK_SIG_MAX 96
int webhook_sign(const char *key, size_t keylen, time_t t, const char *body, size_t len,
                 char *out, size_t outsz);
/* Milliseconds to wait before attempt n + 1 after n failed ones (n >= 1):
 * 1 s doubling per attempt, capped at cap_ms, then jittered into
 * [d/2, d] by rnd (any 32 random bits) so receivers that come back are
 * not hit by every sender at once. */
int64_t webhook_backoff_ms(int n, int64_t cap_ms, uint32_t rnd);

#endif
