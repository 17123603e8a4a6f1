/* winload.c - the window index for a reload, built off the loop thread.
 *
 * Synopsis: winload_start() runs config_load_windows() on a thread; its
 * result is posted back to the loop (loop_post), which resolves any zone
 * names the thread could not (and then reads the files once more), applies
 * the state database (untild_finish_windows) and calls done(). Only one
 * build runs; the caller decides what to do with a SIGHUP meanwhile.
 *
 * Why a thread and not a child process: the index is a million small
 * structures; building it where it will be used costs nothing to hand
 * over. What the thread may touch is narrow: the new config (nobody else
 * sees it yet), its own index and error list, and when.c's shared zone
 * table (read-only for it). libical recurrence parsing is thread-safe for
 * zone-less times, which is all the rule checks use.
 *
 * Diagnostics: "window loader:" log lines (never "reload:", which tests
 * and operators read as "the new windows are in"); file errors reach
 * done() in the error list, as for a synchronous load. */
#include "untild/winload.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "untild/log.h"
#include "untild/loop.h"
#include "untild/when.h"
#include "untild/windows.h"

struct job {
    struct untild *u;
    struct config *c;
    time_t now;
    winload_done_fn done;
    pthread_t th;
    int tries;
    int cancelled;      /* shutdown: drop the result */
    int joined;
    int unposted;       /* loop_post failed: nobody will finish it */
    /* filled by the thread */
    struct windows *ix;
    struct config_errors e;
    char missing[WHEN_MISSING_MAX][64];
    size_t nmissing;
};

static struct job *current;

static void finish(void *arg);

/* The builder yields to the loop thread when they compete for a core (a
 * busy machine): the loop answers clients, the build can wait. Lowering
 * one's own priority needs no privilege. */
static void yield_to_loop(void)
{
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
}

static void *worker(void *arg)
{
    struct job *j = arg;
    yield_to_loop();
    when_thread_offloop();
    j->ix = config_load_windows(j->c, j->now, &j->e);
    j->nmissing = when_offloop_missing(j->missing, WHEN_MISSING_MAX);
    if (loop_post(j->u->loop, finish, j) < 0)
        j->unposted = 1;   /* winload_cancel frees it */
    return NULL;
}

static int spawn(struct job *j)
{
    pthread_attr_t a;
    if (pthread_attr_init(&a) != 0)
        return -1;
    /* parsing recurses little; the default 8 MB is not needed */
    (void)pthread_attr_setstacksize(&a, 1u << 20);
    int rc = pthread_create(&j->th, &a, worker, j);
    pthread_attr_destroy(&a);
    return rc == 0 ? 0 : -1;
}

static void job_free(struct job *j)
{
    windows_free(j->ix);
    config_errors_free(&j->e);
    if (j->cancelled)
        config_free(j->c);
    free(j);
}

/* Loop thread: the files are read; finish or read them once more. */
static void finish(void *arg)
{
    struct job *j = arg;
    if (!j->joined)
        pthread_join(j->th, NULL);
    j->joined = 0;
    if (j->cancelled) {
        current = NULL;
        job_free(j);
        return;
    }
    if (j->nmissing && j->tries == 0) {
        size_t n = j->nmissing < WHEN_MISSING_MAX ? j->nmissing
                                                  : WHEN_MISSING_MAX;
        for (size_t i = 0; i < n; i++)
            (void)when_zone_prepare(j->missing[i]);   /* unknown: noted too */
        log_info("window loader: %zu new time zone name(s) resolved; reading the "
                 "window files again", n);
        windows_free(j->ix);
        j->ix = NULL;
        config_errors_free(&j->e);
        memset(&j->e, 0, sizeof j->e);
        j->tries++;
        if (spawn(j) == 0)
            return;
        log_error("window loader: cannot start its thread");
    }
    current = NULL;
    int64_t t0 = loop_now_ms();
    if (j->ix)
        untild_finish_windows(j->u, j->ix, &j->e);
    log_debug("window loader: state database applied on the loop in %lld ms",
              (long long)(loop_now_ms() - t0));
    struct windows *ix = j->ix;
    j->ix = NULL;
    j->done(j->u, j->c, ix, &j->e);
    job_free(j);
}

int winload_start(struct untild *u, struct config *c, winload_done_fn done)
{
    if (current)
        return -1;
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->u = u;
    j->c = c;
    j->now = untild_now(u);
    j->done = done;
    /* The default zone is resolved here, so most files need no second
     * pass. */
    if (c->timezone)
        (void)when_zone_prepare(c->timezone);
    if (spawn(j) != 0) {
        log_error("window loader: cannot start its thread");
        free(j);
        return -1;
    }
    current = j;
    return 0;
}

int winload_busy(void)
{
    return current != NULL;
}

void winload_cancel(void)
{
    struct job *j = current;
    if (!j)
        return;
    j->cancelled = 1;
    pthread_join(j->th, NULL);
    j->joined = 1;
    if (j->unposted) {
        current = NULL;
        job_free(j);
        return;
    }
    /* its finish is queued on the loop: it sees cancelled and frees */
    loop_run_pending(j->u->loop);
}

static void *free_worker(void *arg)
{
    yield_to_loop();
    windows_free(arg);
    return NULL;
}

void winload_free_later(struct windows *ix)
{
    pthread_t th;
    pthread_attr_t a;
    if (!ix)
        return;
    if (pthread_attr_init(&a) == 0) {
        (void)pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        (void)pthread_attr_setstacksize(&a, 1u << 16);
        int rc = pthread_create(&th, &a, free_worker, ix);
        pthread_attr_destroy(&a);
        if (rc == 0)
            return;
    }
    windows_free(ix);   /* no thread: here, as before */
}

/* ---------- start-up ---------- */

/* At start-up the window files are read on a thread while the main thread
 * opens the state database and the spool (both are mostly waiting for the
 * disk), then joined: with a million windows and 100,000 held messages
 * the two halves take about as long each. */
struct winload_startup {
    struct untild *u;
    const struct config *c;
    time_t now;
    pthread_t th;
    struct windows *ix;
    struct config_errors e;
    char missing[WHEN_MISSING_MAX][64];
    size_t nmissing;
};

static void *startup_worker(void *arg)
{
    struct winload_startup *w = arg;
    when_thread_offloop();
    w->ix = config_load_windows(w->c, w->now, &w->e);
    w->nmissing = when_offloop_missing(w->missing, WHEN_MISSING_MAX);
    return NULL;
}

struct winload_startup *winload_startup_begin(struct untild *u, const struct config *c)
{
    struct winload_startup *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->u = u;
    w->c = c;
    w->now = untild_now(u);
    if (c->timezone)
        (void)when_zone_prepare(c->timezone);
    if (pthread_create(&w->th, NULL, startup_worker, w) != 0) {
        free(w);
        return NULL;          /* the caller loads them itself */
    }
    return w;
}

struct windows *winload_startup_end(struct winload_startup *w, struct config_errors *e)
{
    pthread_join(w->th, NULL);
    struct windows *ix = w->ix;
    if (w->nmissing) {
        /* Zone names the thread could not resolve: resolve them here (main
         * thread) and read the files once more, as a reload does. */
        size_t n = w->nmissing < WHEN_MISSING_MAX ? w->nmissing : WHEN_MISSING_MAX;
        for (size_t i = 0; i < n; i++)
            (void)when_zone_prepare(w->missing[i]);
        windows_free(ix);
        config_errors_free(&w->e);
        memset(&w->e, 0, sizeof w->e);
        ix = config_load_windows(w->c, w->now, &w->e);
    }
    config_errors_free(e);
    *e = w->e;                /* the caller's now */
    if (ix)
        untild_finish_windows(w->u, ix, e);
    free(w);
    return ix;
}
