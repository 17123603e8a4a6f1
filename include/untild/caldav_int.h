/* caldav_int.h - what the two halves of the CalDAV watcher share, and
 * nothing else includes: caldav_worker.c (the worker thread: HTTP, WebDAV
 * XML) and caldav.c (the loop thread: applying results, windows, notices).
 * A job goes to the worker under cw.mu; a result comes back by loop_post. */
#ifndef UNTILD_CALDAV_INT_H
#define UNTILD_CALDAV_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <curl/curl.h>
#include "untild/address.h"
#include "untild/caldav_proxy.h"

struct untild;
struct loop;
struct window;

#define MAX_UNMARKS 16   /* server copies repaired per sync */

struct obj { char *href, *etag, *data; };

struct objs { struct obj *o; size_t n, cap; };

struct job {
    char *state;        /* the persisted sync state blob (may be NULL) */
    char *wins_tag;     /* tag of the windows calendar we hold (may be NULL) */
    struct caldav_unmark um[MAX_UNMARKS];   /* released attendees to unmark */
    size_t num;
    int um_done[MAX_UNMARKS];
};

struct result {
    struct cw *w;
    int ok;
    char err[256];
    char *state;        /* new sync state, to store once processed */
    char *principal;    /* current-user-principal href, if the server named it */
    struct job *job;    /* back to the loop: which unmarks were done */
    struct objs changed;/* new/changed objects of watched calendars */
    int wins_found;     /* the windows calendar exists */
    int wins_fetched;   /* wobj is its complete content */
    char *wins_tag;
    struct objs wobj;
};

/* One [caldav] section. */
struct cw {
    struct caldav *m;
    char *rep, *url, *user, *pass, *calendars, *wincal, *proxy_listen;
    size_t proxy_max_body;
    char *ca_src;           /* [caldav] tls_ca as configured */
    char *principal;        /* the rep's principal href (loop thread) */
    char *tls_ca;           /* CAINFO: system bundle + ca_src (read-only after start) */
    int poll;
    int sync_etag;          /* sync = etag: skip sync-collection (read-only after start) */
    char statekey[ADDR_MAX + 32];
    /* worker */
    pthread_t th;
    int th_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *job;
    atomic_int quit;
    atomic_int posted;      /* a result is queued on the loop, not yet run */
    int dead;               /* stopped while a result was queued: that
                               result frees us (loop_run_pending) */
    CURL *curl;
    struct loop *loop;      /* where the worker posts its result */
    void (*on_result)(void *arg);   /* the loop side, run with a struct result */
    /* loop thread */
    uint64_t timer;
    int busy, failures;
    struct window *wins;    /* windows from the windows calendar */
    size_t nwins;
    char *wins_tag;
    struct caldav_proxy *proxy;
};

struct caldav {
    struct untild *u;
    struct cw **w;
    size_t n;
};

/* caldav_worker.c: any thread (the job or result is no longer shared). */
void caldav_job_free(struct job *j);
void caldav_result_free(struct result *r);

/* The worker thread's body (pthread start routine; arg is the struct cw):
 * waits for w->job, runs it, posts a struct result to w->on_result on
 * w->loop, until w->quit. */
void *caldav_worker_main(void *arg);

#endif
