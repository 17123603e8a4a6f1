/* loop.h - the one event loop (epoll): file events and timers with
 * callbacks, in the shape of redis' ae. Timers use CLOCK_MONOTONIC.
 * Everything here runs on the main thread; other threads talk to the loop
 * through loop_post (a mutex-protected queue + eventfd). */
#ifndef UNTILD_LOOP_H
#define UNTILD_LOOP_H

#include <pthread.h>
#include <stdint.h>

#define LOOP_READ  1
#define LOOP_WRITE 2

struct loop;
typedef void (*loop_fd_fn)(struct loop *l, int fd, int events, void *arg);
typedef void (*loop_timer_fn)(struct loop *l, uint64_t id, void *arg);
typedef void (*loop_call_fn)(void *arg);

struct loop *loop_new(void);
void loop_free(struct loop *l);

/* Register/modify fd interest (mask of LOOP_READ|LOOP_WRITE; 0 = none but
 * keep registered). Re-calling replaces fn/arg/mask. Returns 0 or -1. */
int loop_fd(struct loop *l, int fd, int mask, loop_fd_fn fn, void *arg);
void loop_fd_del(struct loop *l, int fd);

/* One-shot timer after ms milliseconds (monotonic). Returns id (> 0). */
uint64_t loop_timer(struct loop *l, int64_t ms, loop_timer_fn fn, void *arg);
void loop_timer_del(struct loop *l, uint64_t id);

/* Thread-safe: run fn(arg) on the loop thread soon. Returns 0 or -1. */
int loop_post(struct loop *l, loop_call_fn fn, void *arg);

/* Run every call queued with loop_post now (shutdown: results that
 * worker threads posted after the loop stopped). */
void loop_run_pending(struct loop *l);

/* Run until loop_stop. before_sleep (may be NULL) runs each iteration. */
void loop_run(struct loop *l, loop_call_fn before_sleep, void *arg);
void loop_stop(struct loop *l);

/* Monotonic milliseconds. */
int64_t loop_now_ms(void);

/* Any thread but the loop's, for work that needs the loop's state (the
 * CalDAV proxy's and the HTTP API's connection threads): post fn(arg) and
 * wait on cv (with mu) until the loop side sets *done (under mu, then
 * broadcasts) or *stopping is set. *pending counts posted work (the loop
 * side decrements it); *refs is 2 while both sides hold arg (each side
 * drops one). Returns 0 when done; -1 when stopping (arg then belongs to
 * the loop side, unless this side dropped the last reference: then it is
 * freed here with free_fn); -2 if it could not be posted (arg is still the
 * caller's). */
struct timespec;
int loop_post_wait(struct loop *l, loop_call_fn fn, void *arg, pthread_mutex_t *mu,
                   pthread_cond_t *cv, int *pending, const int *stopping, int *refs,
                   int *done, void (*free_fn)(void *));

#endif
