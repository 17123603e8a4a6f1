/* daemon.h - the daemon's one context: everything mutable lives here. */
#ifndef UNTILD_DAEMON_H
#define UNTILD_DAEMON_H

#include <stddef.h>
#include <time.h>
#include "untild/config.h"
#include "untild/policy.h"

struct loop; struct windows; struct spool; struct store; struct relay;
struct smtp_server; struct control; struct release;
struct imap_watch; struct caldav; struct policy_service; struct holder;
struct store_pg;
struct followup; struct digest; struct followup_cal;
struct auth_pool; struct auth_limit; struct workq;
struct http_api; struct webhook;

struct untild {
    struct config *cfg;
    struct policy_cfg pcfg;       /* derived from cfg */
    struct windows *ix;           /* file + run-time windows */
    struct loop *loop;
    struct spool *spool;
    struct holder *holder;        /* writer threads for holds (group commit) */
    struct store *store;
    struct store_pg *pg;          /* [store] url: shared state; NULL: SQLite only */
    struct relay *relay;
    struct smtp_server *smtp;
    struct control *control;
    struct release *release;
    struct imap_watch *imap;
    struct caldav *caldav;
    struct policy_service *psvc;
    struct followup *followup;    /* reminders on the promised day (issue 12) */
    struct digest *digest;        /* the weekly digest (issue 12) */
    struct followup_cal *fucal;   /* follow-up items in reps' calendars; NULL: none */
    struct auth_pool *auth_pool;  /* password checks off the loop (gate.c; made on first use) */
    struct auth_limit *auth_limits; /* AUTH failures per address and user */
    struct workq *parsers;        /* large messages parsed off the loop (gate.c) */
    struct http_api *http;        /* [http] listen: the JSON API; NULL: off */
    struct webhook *webhooks;     /* [webhook NAME]: delivery threads; NULL: none */
    /* Windows changed: what derives from them besides the release
     * (follow-up) looks again. Set by main; a pointer, so the watchers
     * need not include those modules. May be NULL. */
    void (*windows_changed)(struct untild *u);
    int test_clock;               /* --test-clock: time may be set by control */
    time_t clock_offset;          /* added to time(NULL) */
    time_t clock_fixed;           /* if non-zero, "now" is this */
    int (*reload)(struct untild *u);  /* SIGHUP's work; set by main */
    /* Where notices go (set by main; notice.c knows neither module):
     * notice_queue keeps one in the spool and retries it (release_notice),
     * notice_append puts it into the rep's mailbox (imap_watch_append).
     * Each returns 0 when taken. */
    int (*notice_queue)(void *arg, const char *rep, const char *to, const char *subject,
                        char *msg, size_t len);
    void *notice_queue_arg;
    int (*notice_append)(void *arg, const char *rep, const char *msg, size_t len);
    void *notice_append_arg;
    struct config *retired[32];   /* configs replaced by reloads: other
                                     modules may still point into them */
    size_t nretired;
};

static inline void untild_windows_changed(struct untild *u)
{
    if (u->windows_changed)
        u->windows_changed(u);
}

/* The one injectable wall clock. */
time_t untild_now(const struct untild *u);

/* Derive the policy settings from a config. */
void untild_policy_cfg(const struct config *c, struct policy_cfg *p);

/* Build the window index: window files (less those ended by hand) plus
 * run-time windows from the store. Errors go to *e. NULL on ENOMEM. */
struct windows *untild_load_windows(struct untild *u, const struct config *c,
                                    struct config_errors *e);
/* The part of untild_load_windows after the files (main thread: SQLite):
 * drop the file windows ended by hand, add the run-time windows. */
int untild_finish_windows(struct untild *u, struct windows *ix,
                          struct config_errors *e);

/* Retention: delete audit and seen rows older than [daemon]
 * audit_retention before untild_now(u) (nothing when it is 0 = forever) and
 * log how many went. Returns the count or -1. untild_prune_start prunes
 * now and then once a day on a loop timer; the test clock's moves call
 * untild_prune themselves. */
int untild_prune(struct untild *u);
void untild_prune_start(struct untild *u);

#endif
