/* holder.c - writer threads for held messages, with group commit.
 *
 * Each writer takes the whole queue at once (up to HOLD_BATCH), writes
 * every file (create O_EXCL, write, fsync, close, rename into held/), then
 * fsyncs held/ once, and posts each result to the loop. A failed
 * directory fsync fails the whole batch (none of its renames is known to
 * be durable). The spool's index is touched only on the loop thread
 * (spool_hold_prepare / spool_hold_finish). */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include "untild/sysutil.h"
#include "untild/holder.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/spool.h"

#define HOLD_BATCH 64

struct hjob {
    struct spool *spool;     /* not the holder: reports may run after holder_free */
    struct spool_meta *meta;
    const char *msg;
    size_t len;
    holder_done_fn done;
    void *arg;
    int err;
    struct hjob *next;
};

struct holder {
    struct spool *spool;
    struct loop *loop;
    pthread_t *threads;
    int nthreads;
    pthread_mutex_t mu;
    sem_t work;             /* one post per job, one per writer at stop (see relay.c: sem_post never waits) */
    struct hjob *head, *tail;
    int stopping;
};

static void report(void *arg)
{
    struct hjob *j = arg;
    spool_hold_finish(j->spool, j->meta->id, j->err == 0);
    j->done(j->arg, j->err);
    free(j);
}

static void *writer(void *arg)
{
    struct holder *h = arg;
    sysutil_below_loop();
    for (;;) {
        while (sem_wait(&h->work) < 0 && errno == EINTR)
            ;
        pthread_mutex_lock(&h->mu);
        if (!h->head) {          /* taken by an earlier batch; or stopping, nothing left */
            int stop = h->stopping;
            pthread_mutex_unlock(&h->mu);
            if (stop)
                return NULL;
            continue;
        }
        struct hjob *batch = h->head, *last = h->head;
        int n = 1;
        while (last->next && n < HOLD_BATCH) {
            last = last->next;
            n++;
        }
        h->head = last->next;
        if (!h->head)
            h->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&h->mu);

        int written = 0;
        for (struct hjob *j = batch; j; j = j->next) {
            j->err = spool_hold_write(h->spool, j->meta, j->msg, j->len) < 0 ? (errno ? errno : EIO) : 0;
            written += j->err == 0;
        }
        if (written && spool_hold_sync(h->spool) < 0) {
            int e = errno ? errno : EIO;
            log_error("holder: fsync of held/ failed: %s", strerror(e));
            for (struct hjob *j = batch; j; j = j->next)
                if (!j->err)
                    j->err = e;
        }
        for (struct hjob *j = batch, *next; j; j = next) {
            next = j->next;
            if (loop_post(h->loop, report, j) < 0)
                log_error("holder: cannot report hold %s", j->meta->id);
        }
    }
}

struct holder *holder_new(struct spool *s, struct loop *l, int nthreads)
{
    struct holder *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->spool = s;
    h->loop = l;
    pthread_mutex_init(&h->mu, NULL);
    sem_init(&h->work, 0, 0);
    h->threads = calloc((size_t)nthreads, sizeof *h->threads);
    if (!h->threads) {
        free(h);
        return NULL;
    }
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&h->threads[i], NULL, writer, h) != 0) {
            log_error("holder: cannot start writer thread: %s", strerror(errno));
            break;
        }
        h->nthreads++;
    }
    if (!h->nthreads) {
        holder_free(h);
        return NULL;
    }
    return h;
}

void holder_free(struct holder *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopping = 1;
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < h->nthreads; i++)
        sem_post(&h->work);
    for (int i = 0; i < h->nthreads; i++)
        pthread_join(h->threads[i], NULL);
    pthread_mutex_destroy(&h->mu);
    sem_destroy(&h->work);
    free(h->threads);
    free(h);
}

int holder_submit(struct holder *h, struct spool_meta *meta, const char *msg,
                  size_t len, holder_done_fn done, void *arg)
{
    struct hjob *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    if (spool_hold_prepare(h->spool, meta, len) < 0) {
        int e = errno;
        free(j);
        errno = e;
        return -1;
    }
    j->spool = h->spool;
    j->meta = meta;
    j->msg = msg;
    j->len = len;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&h->mu);
    if (h->tail)
        h->tail->next = j;
    else
        h->head = j;
    h->tail = j;
    pthread_mutex_unlock(&h->mu);
    sem_post(&h->work);
    return 0;
}
