/* holder.h - durable holds off the event loop, with group commit.
 *
 * The gate hands each message to be held to a small pool of writer
 * threads; a writer takes every hold queued at that moment, writes and
 * fsyncs each file, renames them into held/ and fsyncs the directory once
 * for the whole batch, then reports back on the loop thread. The client
 * hears "250" only from that report, so the guarantee is unchanged: on
 * disk before 250. The loop meanwhile serves other sessions. */
#ifndef UNTILD_HOLDER_H
#define UNTILD_HOLDER_H

#include <stddef.h>

struct loop;
struct spool;
struct spool_meta;
struct holder;

/* err: 0 held, else an errno (ENOSPC...). Runs on the loop thread. */
typedef void (*holder_done_fn)(void *arg, int err);

struct holder *holder_new(struct spool *s, struct loop *l, int nthreads);
/* Writes what is queued, joins the threads; results are posted to the
 * loop (run them with loop_run_pending). */
void holder_free(struct holder *h);

/* Loop thread. meta (its id may be empty: assigned here) and msg must stay
 * valid until done runs. Returns 0, or -1 with errno (nothing queued). */
int holder_submit(struct holder *h, struct spool_meta *meta, const char *msg,
                  size_t len, holder_done_fn done, void *arg);

#endif
