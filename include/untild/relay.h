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

#include "untild/relay_job.h"

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
