/* store.h - durable run-time state in SQLite (<state_dir>/untild.db):
 * windows added at run time, the audit log, messages seen from quiet
 * contacts (IMAP), and small key/value state (sync tokens, last UIDs).
 * Writes are synchronous (synchronous=FULL, WAL): when a call returns 0 the
 * change survives a crash. Main thread only. */
#ifndef UNTILD_STORE_H
#define UNTILD_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "untild/windows.h"

struct store;

struct store *store_open(const char *state_dir);
void store_close(struct store *st);

/* Run-time windows. store_window_add assigns w->id ("w<rowid>") if empty. */
int store_window_add(struct store *st, struct window *w);
int store_window_delete(struct store *st, const char *id);
/* Load every stored window into ix (source as stored). */
int store_windows_load(struct store *st, struct windows *ix);

/* A batch of writes on the loop (window import): one transaction from
 * begin to end (each write inside is a savepoint: one that fails is rolled
 * back alone), so end commits them all with one fsync; a commit that fails
 * loses the batch (logged, -1). Nests. 0 or -1. */
int store_batch_begin(struct store *st);
int store_batch_end(struct store *st);

/* Audit: one row per event. event: "held", "flagged", "rejected",
 * "released", "discarded", "cancelled", "failed", "window-added",
 * "window-ended", "denied", "stale-invitation"... Fields may be NULL. */
struct audit_rec {
    time_t t;
    const char *event, *rep, *contact, *window_id, *msg_id, *detail;
};
int store_audit(struct store *st, const struct audit_rec *r);
/* Called (on the loop) after each audit row is written: the webhook events
 * (events.c) are noticed there. fn NULL: none. */
void store_on_audit(struct store *st, void (*fn)(void *arg, const struct audit_rec *r), void *arg);
/* Visit audit rows with t >= since, oldest first; stop if fn returns != 0. */
int store_audit_foreach(struct store *st, time_t since,
                        int (*fn)(const struct audit_rec *r, void *arg),
                        void *arg);

/* 1 if an audit row with t >= since carries msg_id, else 0 (-1 on error).
 * Indexed. The gate's rows carry a message's Message-ID (without <>) in
 * msg_id for "flagged", "window-added" and "held-msgid" (one row per held
 * message, detail = the spool id); other rows may carry a spool id. */
int store_audit_has_msg(struct store *st, const char *msg_id, time_t since);
/* Visit the rows of store_audit_has_msg, oldest first (indexed). */
int store_audit_foreach_msg(struct store *st, const char *msg_id, time_t since,
                            int (*fn)(const struct audit_rec *r, void *arg),
                            void *arg);

/* Seen inbound messages from quiet contacts (customer re-opened). */
int store_seen_add(struct store *st, const char *message_id,
                   const char *contact, const char *rep, time_t t);
/* 1 if message_id was seen from contact, else 0 (-1 on error). */
int store_seen_has(struct store *st, const char *message_id,
                   const char *contact);

/* Invitations a contact (organizer) sent to rep, by iCalendar UID, as
 * the IMAP or CalDAV watcher saw them: a calendar REPLY to a quiet
 * organizer is allowed silently only with such a row (issue 11.13).
 * rep and organizer compare case-insensitively. add refreshes t. */
int store_invite_add(struct store *st, const char *rep, const char *uid,
                     const char *organizer, time_t t);
/* 1 if recorded, else 0 (-1 on error). */
int store_invite_has(struct store *st, const char *rep, const char *uid,
                     const char *organizer);

/* Retention: delete audit, seen, invitation, contact and inbound rows
 * with t < before, and sent follow-ups 31 days older (windows, kv,
 * cadence overrides and follow-up calendar items stay), in one transaction (indexed on t). Returns the number of rows
 * deleted, or -1 (nothing deleted). */
int store_prune(struct store *st, time_t before);

/* Follow-up (issue 12). Audit rows of one window with since <= t <=
 * until (the audit_t index narrows the scan to that range). */
int store_audit_foreach_window(struct store *st, const char *window_id, time_t since,
                               time_t until, int (*fn)(const struct audit_rec *r, void *arg),
                               void *arg);
/* The reps (at most 32, distinct, sorted) with a "held", "flagged" or
 * "rejected" row for key (an address, or "@domain": its addresses and
 * subdomains) with since <= t <= until. */
int store_audit_reps(struct store *st, const char *key, time_t since, time_t until,
                     int (*fn)(const char *rep, void *arg), void *arg);
/* Was the follow-up for (window_id, until) sent? 1, 0, or -1 on error. */
int store_followup_sent(struct store *st, const char *window_id, time_t until);
int store_followup_mark(struct store *st, const char *window_id, time_t until, time_t t);

/* Contact history (issue 12, cadence): every contact untild sees.
 * channel: "gate", "release", "imap-sent", "caldav"... Pruned with the
 * audit (store_prune). */
struct store_contact {
    time_t t;
    const char *contact;    /* normalised address */
    const char *rep, *channel, *msg_id;  /* rep and msg_id may be NULL */
};
int store_contact_add(struct store *st, const struct store_contact *c);
/* Contacts with since <= t < until, oldest first, at most limit (the
 * contacts_t index). */
int store_contacts_range(struct store *st, time_t since, time_t until, int limit,
                         int (*fn)(const struct store_contact *c, void *arg), void *arg);

/* Cadence overrides set with untilctl: who (normalised address or
 * "@domain") -> options ("min_gap=14d action=flag"). del: -1 with ENOENT
 * when there was none. */
int store_cadence_set(struct store *st, const char *who, const char *opts, const char *by, time_t t);
int store_cadence_del(struct store *st, const char *who);
int store_cadence_foreach(struct store *st,
                          int (*fn)(const char *who, const char *opts, const char *by, time_t t, void *arg),
                          void *arg);

/* Follow-up items put in reps' calendars (followup_cal.c): window id ->
 * what was put ("REP DATE TITLE"). */
int store_fuitem_set(struct store *st, const char *window_id, const char *state);
int store_fuitem_del(struct store *st, const char *window_id);
int store_fuitem_foreach(struct store *st, int (*fn)(const char *window_id, const char *state, void *arg),
                         void *arg);

/* Messages a contact sent a rep (IMAP inbox), any contact: the rep's
 * reply to one is exempt from cadence. Pruned with the audit. */
int store_inbound_add(struct store *st, const char *message_id, const char *contact,
                      const char *rep, time_t t);
int store_inbound_has(struct store *st, const char *message_id, const char *contact);

/* Delete the contact rows of (contact, msg_id, channel): a delivery that
 * was counted when it started, and did not reach that recipient. */
int store_contact_forget(struct store *st, const char *contact, const char *msg_id,
                         const char *channel);
/* The newest `limit` contacts to key (an address, or "@domain": every
 * address at exactly that domain) with t >= since, newest first. */
int store_contacts(struct store *st, const char *key, time_t since, int limit,
                   int (*fn)(const struct store_contact *c, void *arg), void *arg);

/* Key/value state. store_kv_get returns malloc'd value or NULL. */
int store_kv_set(struct store *st, const char *key, const char *value);
char *store_kv_get(struct store *st, const char *key);
int store_kv_del(struct store *st, const char *key);
/* Visit every key starting with prefix (one indexed range query), in key
 * order; stop when fn returns non-zero. Returns the number visited, or -1.
 * (The window loader reads every "ended:<id>" row this way, instead of one
 * lookup per file window.) */
int store_kv_foreach_prefix(struct store *st, const char *prefix,
                            int (*fn)(const char *key, const char *value,
                                      void *arg),
                            void *arg);

/* ---------- shared state (store_pg.c, [store] url) ----------
 * One change to a shared table, as journalled locally and as read back
 * from PostgreSQL. Fields by kind:
 *   'w' window:  t = id, who (comma-joined), rrule, tz, reason, owner;
 *                i = from, until, duration, action, source, created
 *   'e' ended:   t[0] = id; i[4] = source (runtime, or file: ended by hand)
 *   'a' audit:   t = event, rep, contact, window_id, msg_id, detail; i[0] = t
 *   's' seen:    t = message_id, contact, rep; i[0] = t
 *   'i' invite:  t = rep, uid, organizer; i[0] = t
 *   'p' prune:   i[0] = before (store_prune's cut; journal only)
 * changed_at orders window changes (latest wins; on a tie an end wins). */
struct store_change {
    int64_t seq;          /* journal seq (local) or PostgreSQL seq (feed) */
    int64_t changed_at;   /* ms since the epoch (CLOCK_REALTIME) at the origin */
    char kind;
    int applied;          /* set by store_apply: it changed the local copy */
    char *origin;         /* gateway name (feed rows) */
    char *t[6];
    int64_t i[6];
};

/* Turn sharing on: from now on each change to a shared table (windows,
 * file windows ended by hand = kv "ended:<id>", audit, seen, invitations)
 * commits together with a journal row, then wake(arg) runs (it must only
 * signal: it may wake another thread). New window ids end in "-<node>". */
void store_share(struct store *st, const char *node, void (*wake)(void *), void *arg);
/* Windows a watcher derives (IMAP folders, the windows calendar) live in
 * its index only; with sharing on these tell the other gateways (a journal
 * row, no local row). No-ops returning 0 without sharing. */
int store_window_publish(struct store *st, const struct window *w);
int store_window_retract(struct store *st, const char *id, enum window_source source);
/* The database thread wrote journal rows up to upto: forget them. */
int store_journal_ack(struct store *st, int64_t upto);
/* Journal rows not yet confirmed (-1 on error). */
int64_t store_journal_pending(struct store *st);
/* Apply changes from other gateways to the local copy (no journal), in
 * one transaction that also records feed_seq (store_feed_seq). Windows
 * follow the conflict rule; c[k].applied says what changed. */
int store_apply(struct store *st, struct store_change *c, size_t n, int64_t feed_seq);
int64_t store_feed_seq(struct store *st);
/* A 'w' change as a window: strings point into c and *whobuf; free
 * w->who and *whobuf. */
int store_change_window(const struct store_change *c, struct window *w, char **whobuf);
void store_change_clear(struct store_change *c);

/* The journal read from another thread, through its own connection. */
struct store_journal;
struct store_journal *store_journal_open(const char *state_dir);
/* Up to max rows with seq > after, oldest first: n, or -1. */
int store_journal_read(struct store_journal *j, int64_t after, struct store_change *out, size_t max);
void store_journal_close(struct store_journal *j);

#endif
