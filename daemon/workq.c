/* workq.c - worker threads with a FIFO of jobs; results go back to the loop
 * thread with loop_post. See workq.h. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include "untild/sysutil.h"
#include "untild/loop.h"
#include "untild/log.h"
#include "untild/workq.h"

struct wjob {
    workq_fn work, done;
    void *arg;
    struct wjob *next;
};

struct workq {
    struct loop *loop;
    const char *name;
    pthread_mutex_t mu;
    sem_t work;         /* one post per job, one per thread at stop (sem_post never waits: relay.c) */
    struct wjob *head, *tail;
    pthread_t *threads;
    int nthreads;
};

static void job_done(void *arg)
{
    struct wjob *j = arg;
    j->done(j->arg);
    free(j);
}

static void *worker(void *arg)
{
    struct workq *q = arg;
    sysutil_below_loop();
    for (;;) {
        while (sem_wait(&q->work) < 0 && errno == EINTR)
            ;
        pthread_mutex_lock(&q->mu);
        struct wjob *j = q->head;
        if (j) {
            q->head = j->next;
            if (!q->head)
                q->tail = NULL;
        }
        pthread_mutex_unlock(&q->mu);
        if (!j)
            return NULL;          /* a stop post: the queue is empty (jobs go first, FIFO) */
        j->work(j->arg);
        if (loop_post(q->loop, job_done, j) < 0) {
            /* The loop cannot take it: report on this thread rather than
             * lose a session's reply (done must be loop-safe anyway). */
            log_error("%s: loop_post failed; reporting from the worker", q->name);
            job_done(j);
        }
    }
}

struct workq *workq_new(struct loop *l, int nthreads, const char *name)
{
    struct workq *q = calloc(1, sizeof *q);
    if (!q || !(q->threads = calloc((size_t)nthreads, sizeof *q->threads))) {
        free(q);
        return NULL;
    }
    q->loop = l;
    q->name = name;
    pthread_mutex_init(&q->mu, NULL);
    sem_init(&q->work, 0, 0);
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&q->threads[i], NULL, worker, q) != 0) {
            log_error("%s: cannot start a worker thread", name);
            break;
        }
        q->nthreads++;
    }
    if (!q->nthreads) {
        workq_free(q);
        return NULL;
    }
    return q;
}

int workq_submit(struct workq *q, workq_fn work, workq_fn done, void *arg)
{
    struct wjob *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->work = work;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&q->mu);
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    pthread_mutex_unlock(&q->mu);
    sem_post(&q->work);
    return 0;
}

void workq_free(struct workq *q)
{
    if (!q)
        return;
    for (int i = 0; i < q->nthreads; i++)
        sem_post(&q->work);
    for (int i = 0; i < q->nthreads; i++)
        pthread_join(q->threads[i], NULL);
    pthread_mutex_destroy(&q->mu);
    sem_destroy(&q->work);
    free(q->threads);
    free(q);
}
