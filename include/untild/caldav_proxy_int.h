/* caldav_proxy_int.h - what the two halves of the CalDAV proxy share, and
 * nothing else includes: caldav_proxy_http.c (libmicrohttpd connection
 * threads: forwarding, streaming, start/stop) and caldav_proxy.c (the loop
 * thread: the iCalendar decisions, holds, marks). A connection thread hands
 * a struct pwork to caldav_proxy_on_loop with loop_post and waits on cv. */
#ifndef UNTILD_CALDAV_PROXY_INT_H
#define UNTILD_CALDAV_PROXY_INT_H

#include <pthread.h>
#include <time.h>
#include "untild/caldav_proxy.h"
#include "untild/spool.h"
#include "untild/strbuf.h"

struct untild;
struct loop;
struct MHD_Daemon;

#define MAX_HDRS      128

struct caldav_proxy {
    struct untild *u;
    struct loop *loop;  /* where connection threads post their work */
    char *rep, *origin, *tls_ca, *listen;
    char *principal;    /* the rep's principal path, from the watcher (loop thread) */
    struct MHD_Daemon *d;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    int pending;    /* work posted to the loop and not yet run */
    int dead;       /* stopped with work pending: the last one frees us */
    size_t max_calendar;   /* [smtp] max_calendar_part at start: bodies parsed up to it */
    size_t max_body;       /* [caldav] proxy_max_body: request bodies taken up to it */
};

struct conn {
    struct strbuf body;
    int too_big;
};

enum pkind { P_PREPARE, P_COMMIT, P_DELETE, P_MOVE };

/* Work for the loop thread, shared with a connection thread (refs). */
struct pwork {
    struct caldav_proxy *p;
    enum pkind kind;
    int refs, done;
    char *path;
    const char *body;
    size_t len;
    char *authuser;     /* Basic auth user name of the request, or NULL */
    char *dest;         /* P_MOVE: the Destination path */
    void *cal;          /* P_PREPARE: the body parsed off the loop (icalcomponent *) */
    int too_big;        /* P_PREPARE: over max_calendar_part, not parsed */
    size_t nattendees;  /* P_PREPARE, too_big: ATTENDEE lines counted off the loop */
    /* P_PREPARE results */
    char *newbody;      /* the body to store when it had to change */
    size_t newlen;
    int changed;        /* the body sent is not the client's */
    char refused[256];  /* set: the PUT is refused with this reason */
    char *uid;
    int cancelled;
    struct spool_meta meta;
    char *msg;
    size_t msglen;
    time_t release_at;
    int has_hold;
    struct strbuf heldtxt;
    struct strbuf marked;   /* "norm<TAB>value" of the attendees marked now */
};

/* caldav_proxy.c, loop thread: run w (prepare, commit, delete, move), mark
 * it done and wake its connection thread; frees w with its last ref. */
void caldav_proxy_on_loop(void *arg);
/* Connection thread, before P_PREPARE goes to the loop: parse the body
 * (or mark it too big to parse: over max bytes). */
void caldav_proxy_parse(struct pwork *w, size_t max);
/* Any thread, once w is no longer shared. */
void caldav_proxy_pwork_free(struct pwork *w);
/* caldav_proxy_http.c: free p once no connection thread and no posted work
 * is left. */
void caldav_proxy_free(struct caldav_proxy *p);

#endif
