/* workq.h - a few worker threads for work whose cost grows with its input
 * (parsing a large message), so it never holds the event loop. Each job's
 * work runs on a worker; its done callback runs later on the loop thread
 * (loop_post), in the shape of holder.c and auth.c. */
#ifndef UNTILD_WORKQ_H
#define UNTILD_WORKQ_H

struct loop;
struct workq;

typedef void (*workq_fn)(void *arg);

/* NULL on failure (logged). */
struct workq *workq_new(struct loop *l, int nthreads, const char *name);
/* Queue work(arg) on a worker, then done(arg) on the loop thread. The
 * caller keeps arg valid until done runs. 0, or -1 (nothing queued). */
int workq_submit(struct workq *q, workq_fn work, workq_fn done, void *arg);
/* Run the queued jobs to the end, join the threads, free. Their done
 * callbacks are posted to the loop: run loop_run_pending after this. */
void workq_free(struct workq *q);

#endif
