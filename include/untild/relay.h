/* relay.h - upstream delivery: libcurl SMTP (smtp:// + STARTTLS required,
 * or smtps://), or, with no upstream URL, a local Maildir.
 *
 * A pool of worker threads, each with its own CURL easy handle kept
 * between messages (connection reuse); jobs are queued from the loop thread
 * and their results come back on the loop thread (loop_post), so a slow
 * upstream never blocks the loop. */
#ifndef UNTILD_RELAY_H
#define UNTILD_RELAY_H

#include <stddef.h>

struct loop;
struct config;

struct relay_result {
    int ok;             /* 1: upstream accepted (for at least one rcpt) */
    int code;           /* SMTP reply code to pass to the client (250, 4xx, 5xx) */
    char text[512];     /* upstream's reply text (first failing line, or the
                           final 250 line) without the code, or our own */
    int *rcpt_codes;    /* per-recipient reply codes, one per job rcpt, never
                           NULL: a recipient without an answer of its own
                           gets the message's code (owned by the relay) */
};

struct relay_job {
    const char *mail_from;          /* reverse path without <> */
    const char *const *rcpts;       /* forward paths without <> */
    size_t nrcpts;
    const char *data;               /* CRLF message, not dot-stuffed */
    size_t len;
    const char *prefix;             /* extra header lines (CRLF) to prepend,
                                       may be NULL */
    const char *username, *password;/* override credentials (auth = upstream), may be NULL */
    const char *mail_params;        /* the client's MAIL parameters, may be NULL */
    const char *const *rcpt_params; /* per recipient (nrcpts entries, each may be
                                       NULL), or NULL. DSN parameters (RET,
                                       ENVID, NOTIFY, ORCPT) are passed on when
                                       the upstream offers DSN; the rest are not. */
};

typedef void (*relay_done_fn)(void *arg, struct relay_result *r);

struct relay;

/* nworkers threads. Returns NULL on failure. */
struct relay *relay_new(const struct config *c, struct loop *l, int nworkers);
/* Waits for running jobs; jobs not yet started are answered at once (done
 * called from relay_free with 451 4.3.2; verify with -1). Call it on the
 * loop thread, and run the loop once more if results may still be posted. */
void relay_free(struct relay *r);

/* Queue a job. The job's pointers must stay valid until done runs (on the
 * loop thread). The result is freed after done returns. Returns 0 or -1. */
int relay_submit(struct relay *r, const struct relay_job *job,
                 relay_done_fn done, void *arg);

/* Synchronous check of credentials against the upstream (auth = upstream):
 * 1 accepted, 0 refused, -1 upstream unreachable. Blocking: call from a
 * worker, not the loop (relay_verify_async does that). */
typedef void (*relay_auth_fn)(void *arg, int verdict);
int relay_verify_async(struct relay *r, const char *user, const char *pass,
                       relay_auth_fn done, void *arg);

#endif
