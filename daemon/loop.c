/* loop.c - the one event loop: epoll file events, monotonic timers, and a
 * thread-safe call queue (eventfd), in the shape of redis' ae.
 *
 * Timers live in a binary min-heap keyed by due time; a deleted timer is
 * marked dead and dropped when it reaches the top, so loop_timer_del is
 * O(1) after a lookup. File events are indexed by fd in a growable array. */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "untild/loop.h"
#include "untild/log.h"

struct fdev {
    loop_fd_fn fn;
    void *arg;
    int mask;
    int registered;
};

struct timer {
    int64_t due;
    uint64_t id;
    loop_timer_fn fn;
    void *arg;
};

struct call {
    loop_call_fn fn;
    void *arg;
    struct call *next;
};

struct loop {
    int epfd, evfd;
    struct fdev *fds;
    size_t nfds;
    struct timer *heap;
    size_t nheap, capheap;
    uint64_t next_id;
    pthread_mutex_t mu;      /* guards calls */
    struct call *calls, *calls_tail;
    int stop;
};

int64_t loop_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void drain_calls(struct loop *l, int fd, int ev, void *arg);

struct loop *loop_new(void)
{
    struct loop *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&l->mu, NULL);
    if (l->epfd < 0 || l->evfd < 0 || loop_fd(l, l->evfd, LOOP_READ, drain_calls, NULL) < 0) {
        log_error("loop: cannot create epoll/eventfd: %s", strerror(errno));
        loop_free(l);
        return NULL;
    }
    return l;
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->evfd >= 0)
        close(l->evfd);
    while (l->calls) {
        struct call *c = l->calls;
        l->calls = c->next;
        free(c);
    }
    pthread_mutex_destroy(&l->mu);
    free(l->fds);
    free(l->heap);
    free(l);
}

int loop_fd(struct loop *l, int fd, int mask, loop_fd_fn fn, void *arg)
{
    struct epoll_event ev = { 0 };
    if (fd < 0)
        return -1;
    if ((size_t)fd >= l->nfds) {
        size_t n = l->nfds ? l->nfds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct fdev *p = realloc(l->fds, n * sizeof *p);
        if (!p)
            return -1;
        memset(p + l->nfds, 0, (n - l->nfds) * sizeof *p);
        l->fds = p;
        l->nfds = n;
    }
    struct fdev *f = &l->fds[fd];
    ev.events = ((mask & LOOP_READ) ? EPOLLIN : 0) | ((mask & LOOP_WRITE) ? EPOLLOUT : 0);
    ev.data.fd = fd;
    if (epoll_ctl(l->epfd, f->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) < 0)
        return -1;
    f->registered = 1;
    f->fn = fn;
    f->arg = arg;
    f->mask = mask;
    return 0;
}

void loop_fd_del(struct loop *l, int fd)
{
    if (fd < 0 || (size_t)fd >= l->nfds || !l->fds[fd].registered)
        return;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    memset(&l->fds[fd], 0, sizeof l->fds[fd]);
}

static void heap_swap(struct timer *a, struct timer *b)
{
    struct timer t = *a;
    *a = *b;
    *b = t;
}

static int timer_less(const struct timer *a, const struct timer *b)
{
    return a->due < b->due || (a->due == b->due && a->id < b->id);
}

uint64_t loop_timer(struct loop *l, int64_t ms, loop_timer_fn fn, void *arg)
{
    if (l->nheap == l->capheap) {
        size_t n = l->capheap ? l->capheap * 2 : 64;
        struct timer *p = realloc(l->heap, n * sizeof *p);
        if (!p)
            return 0;
        l->heap = p;
        l->capheap = n;
    }
    size_t i = l->nheap++;
    l->heap[i] = (struct timer){ loop_now_ms() + (ms < 0 ? 0 : ms), ++l->next_id, fn, arg };
    while (i > 0 && timer_less(&l->heap[i], &l->heap[(i - 1) / 2])) {
        heap_swap(&l->heap[i], &l->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    return l->next_id;
}

void loop_timer_del(struct loop *l, uint64_t id)
{
    if (id == 0)
        return;
    for (size_t i = 0; i < l->nheap; i++) {
        if (l->heap[i].id == id) {
            l->heap[i].fn = NULL;   /* dropped when it comes due */
            return;
        }
    }
}

static void heap_pop(struct loop *l)
{
    l->heap[0] = l->heap[--l->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1, m = i;
        if (c < l->nheap && timer_less(&l->heap[c], &l->heap[m]))
            m = c;
        if (c + 1 < l->nheap && timer_less(&l->heap[c + 1], &l->heap[m]))
            m = c + 1;
        if (m == i)
            break;
        heap_swap(&l->heap[i], &l->heap[m]);
        i = m;
    }
}

int loop_post(struct loop *l, loop_call_fn fn, void *arg)
{
    struct call *c = malloc(sizeof *c);
    uint64_t one = 1;
    if (!c)
        return -1;
    c->fn = fn;
    c->arg = arg;
    c->next = NULL;
    pthread_mutex_lock(&l->mu);
    if (l->calls_tail)
        l->calls_tail->next = c;
    else
        l->calls = c;
    l->calls_tail = c;
    pthread_mutex_unlock(&l->mu);
    if (write(l->evfd, &one, sizeof one) < 0 && errno != EAGAIN)
        return -1;   /* the call is queued; it runs on the next wake-up */
    return 0;
}

/* A callback that holds the loop this long is named in the debug log: the
 * offset in the binary (addr2line -f -e untild OFFSET) tells which one, so a
 * stall seen by a user or a benchmark points at its code without a profiler. */
#define SLOW_CALLBACK_MS 20

/* The thread's CPU time in ms, read only with -v: a callback that was slow
 * on the wall clock but not on the CPU was preempted (a loaded machine),
 * which is a different fix from one that did too much. */
static int64_t cpu_ms(void)
{
    struct timespec ts;
    if (log_get_level() > ULOG_DEBUG || clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void note_slow(const char *what, const void *fn, int64_t t0, int64_t c0)
{
    int64_t took = loop_now_ms() - t0;
    if (took < SLOW_CALLBACK_MS)
        return;
    Dl_info di;
    uintptr_t off = (uintptr_t)fn;
    const char *obj = "?";
    if (dladdr(fn, &di) && di.dli_fbase) {
        off -= (uintptr_t)di.dli_fbase;
        obj = di.dli_fname ? di.dli_fname : "?";
    }
    log_debug("loop: slow %s callback %s+0x%" PRIxPTR " held the loop %" PRId64
              " ms (%" PRId64 " ms on the CPU)", what, obj, off, took, cpu_ms() - c0);
}

/* Posted calls run for at most this long per loop turn; the rest wait for
 * the next turn, so a burst of thread results (a mass release's thousands
 * of delivery reports) shares the loop with greetings and commands instead
 * of holding it until the burst is done. */
#define DRAIN_BUDGET_MS 5

static void run_calls(struct loop *l, int bounded)
{
    pthread_mutex_lock(&l->mu);
    struct call *c = l->calls;
    l->calls = l->calls_tail = NULL;
    pthread_mutex_unlock(&l->mu);
    int64_t start = loop_now_ms();
    while (c) {
        if (bounded && loop_now_ms() - start >= DRAIN_BUDGET_MS) {
            /* Put the rest back in front of anything posted meanwhile, and
             * make the eventfd readable again so epoll wakes us next turn. */
            struct call *tail = c;
            while (tail->next)
                tail = tail->next;
            pthread_mutex_lock(&l->mu);
            tail->next = l->calls;
            if (!l->calls)
                l->calls_tail = tail;
            l->calls = c;
            pthread_mutex_unlock(&l->mu);
            uint64_t one = 1;
            if (write(l->evfd, &one, sizeof one) < 0 && errno != EAGAIN)
                log_warn("loop: eventfd write: %s", strerror(errno));
            return;
        }
        struct call *next = c->next;
        int64_t t0 = loop_now_ms(), c0 = cpu_ms();
        c->fn(c->arg);
        note_slow("posted", (const void *)c->fn, t0, c0);
        free(c);
        c = next;
    }
}

static void drain_calls(struct loop *l, int fd, int ev, void *arg)
{
    uint64_t v;
    (void)ev; (void)arg;
    if (read(fd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_warn("loop: eventfd read: %s", strerror(errno));
    run_calls(l, 1);
}

void loop_stop(struct loop *l) { l->stop = 1; }

void loop_run_pending(struct loop *l)
{
    uint64_t v;
    if (read(l->evfd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_warn("loop: eventfd read: %s", strerror(errno));
    run_calls(l, 0);     /* shutdown and joins: everything, now */
}

void loop_run(struct loop *l, loop_call_fn before_sleep, void *arg)
{
    struct epoll_event evs[256];
    l->stop = 0;
    while (!l->stop) {
        if (before_sleep) {
            int64_t t0 = loop_now_ms(), c0 = cpu_ms();
            before_sleep(arg);
            note_slow("before-sleep", (const void *)before_sleep, t0, c0);
        }
        if (l->stop)
            break;
        int timeout = -1;
        while (l->nheap && !l->heap[0].fn)
            heap_pop(l);
        if (l->nheap) {
            int64_t d = l->heap[0].due - loop_now_ms();
            timeout = d < 0 ? 0 : (d > 60000 ? 60000 : (int)d);
        }
        int n = epoll_wait(l->epfd, evs, 256, timeout);
        if (n < 0 && errno != EINTR) {
            log_error("loop: epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if ((size_t)fd >= l->nfds || !l->fds[fd].registered || !l->fds[fd].fn)
                continue;
            int mask = 0;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                mask |= LOOP_READ;
            if (evs[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
                mask |= LOOP_WRITE;
            mask &= l->fds[fd].mask | ((evs[i].events & (EPOLLHUP | EPOLLERR)) ? LOOP_READ : 0);
            if (mask) {
                loop_fd_fn fn = l->fds[fd].fn;
                int64_t t0 = loop_now_ms(), c0 = cpu_ms();
                fn(l, fd, mask, l->fds[fd].arg);
                note_slow("fd", (const void *)fn, t0, c0);
            }
        }
        int64_t now = loop_now_ms();
        /* Run only timers due now; ones added by callbacks wait a turn. */
        size_t budget = l->nheap;
        while (budget-- && l->nheap && l->heap[0].due <= now) {
            struct timer t = l->heap[0];
            heap_pop(l);
            if (t.fn) {
                int64_t t0 = loop_now_ms(), c0 = cpu_ms();
                t.fn(l, t.id, t.arg);
                note_slow("timer", (const void *)t.fn, t0, c0);
            }
        }
    }
}

int loop_post_wait(struct loop *l, loop_call_fn fn, void *arg, pthread_mutex_t *mu,
                   pthread_cond_t *cv, int *pending, const int *stopping, int *refs,
                   int *done, void (*free_fn)(void *))
{
    *refs = 2;
    *done = 0;
    pthread_mutex_lock(mu);
    (*pending)++;
    pthread_mutex_unlock(mu);
    if (loop_post(l, fn, arg) < 0) {
        pthread_mutex_lock(mu);
        (*pending)--;
        pthread_mutex_unlock(mu);
        return -2;
    }
    pthread_mutex_lock(mu);
    while (!*done && !*stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(cv, mu, &ts);
    }
    int ok = *done;
    int last = --*refs == 0;
    pthread_mutex_unlock(mu);
    if (last && !ok)
        free_fn(arg);
    return ok ? 0 : -1;
}
