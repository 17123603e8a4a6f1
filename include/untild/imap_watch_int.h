/* imap_watch_int.h - what the two halves of the IMAP watcher share, and
 * nothing else includes: imap_watch_worker.c (the rep threads: libetpan,
 * TLS, fetches, APPEND/STORE) and imap_watch.c (the loop thread: policy,
 * audit, windows, store, start/stop). Operations go to a rep thread under
 * rep.mu; batches come back by loop_post (imap_watch.on_batch). */
#ifndef UNTILD_IMAP_WATCH_INT_H
#define UNTILD_IMAP_WATCH_INT_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "untild/address.h"
#include "untild/config.h"
#include "untild/imap_watch.h"
#include "untild/log.h"

struct loop;
struct untild;
struct window;

#define KW_TOO_EARLY "$UntildTooEarly"
#define KW_HELD "$UntildHeld"
#define MAX_FOLDERS 16          /* sent folders + inbox */
#define MAX_LATER 64            /* "Contact later" subfolders */
#define MAX_LATER_MSGS 2000     /* messages read per subfolder */
#define HEADER_MAX 65536        /* bytes of header fetched per message */
#define FETCH_CHUNK 200         /* messages per FETCH */
#define MAX_OPS 1000            /* queued operations per rep */
#define BACKOFF_MAX 300
#define NET_TIMEOUT 60

/* ---------- operations: loop thread -> rep thread ---------- */

enum op_kind { OP_APPEND, OP_STORE };

struct op {
    struct op *next;
    enum op_kind kind;
    char *folder;
    char *data;                 /* APPEND: message; STORE: keyword */
    size_t len;
    uint32_t uidvalidity, uid;  /* STORE */
};

/* ---------- results: rep thread -> loop thread ---------- */

enum batch_kind { B_SENT, B_INBOX, B_LATER };

struct item {
    uint32_t uid;
    time_t internal;            /* INTERNALDATE */
    int kw_early, kw_held;
    char *hdr;                  /* header section (bounded); the inbox: the
                                   start of the whole message, same bound */
    size_t len;
    char *leaf;                 /* B_LATER: subfolder name below the base */
};

struct batch {
    struct batch *prev, *next;  /* in flight (m->inflight), under m->mu */
    struct imap_watch *m;
    size_t idx;
    unsigned gen;
    enum batch_kind kind;
    char *folder;
    uint32_t uidvalidity, last;
    struct item *items;
    size_t n, cap;
};

/* ---------- per rep ---------- */

struct fstate {
    char *name;                 /* modified UTF-7 */
    uint32_t uidvalidity, last;
    int known;
    int missing;                /* reported missing on this connection */
};

struct rep {
    struct imap_watch *m;
    size_t idx;
    unsigned gen;
    /* config copy (a reload frees the old config) */
    char *rep, *url, *host, *user, *pwfile, *pwcmd, *ca, *sent, *inbox,
         *notice, *later;       /* inbox, notice, later: modified UTF-7 (wire) */
    char *cfg_inbox, *cfg_notice, *cfg_later;   /* as configured (UTF-8) */
    int port, implicit_tls, plain, poll, reopen;
    int later_set;              /* later_folder was configured (not the default) */
    /* shared with the loop thread, under mu */
    pthread_mutex_t mu;
    struct op *ops, **tail;
    size_t nops;
    int stop;
    int netfd;                  /* to interrupt blocking reads on stop */
    int wake[2];                /* pipe: wakes the idle wait */
    pthread_t th;
    int started;
    /* thread-private */
    struct fstate fs[MAX_FOLDERS];
    size_t nfs;
    char *later_sig;            /* what was last posted for the later folders */
    int later_missing;          /* later_folder reported missing */
    int notice_missing;         /* notice_folder reported missing */
    /* loop-thread-private: windows made from folders */
    struct window *fw;
    size_t nfw;
};

struct imap_watch {
    struct untild *u;
    struct rep *reps[CONFIG_MAX_REPS];
    size_t n;
    unsigned gen;
    /* batches posted but not yet run: freed by imap_watch_stop, since the
     * loop drops calls that never ran */
    pthread_mutex_t mu;
    struct batch *inflight;
    struct loop *loop;          /* where rep threads post their batches */
    void (*on_batch)(void *arg);   /* the loop side, run with a struct batch */
};


/* ---------- small helpers (any thread) ---------- */

static inline char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static inline void free_op(struct op *o)
{
    if (!o)
        return;
    free(o->folder);
    free(o->data);
    free(o);
}

static inline void free_batch(struct batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        free(b->items[i].hdr);
        free(b->items[i].leaf);
    }
    free(b->items);
    free(b->folder);
    free(b);
}

static inline const char *rep_name(const struct rep *r)
{
    return r->rep ? r->rep : "-";
}

/* A folder name from the server, for people (UTF-8); as sent if it does
 * not decode. */
static inline const char *shown(const char *wire, char *buf, size_t sz)
{
    if (!wire)
        return "";
    return imap_watch_mutf7_to_utf8(wire, buf, sz) == 0 ? buf : wire;
}

static inline void wake(struct rep *r)
{
    char c = 1;
    if (write(r->wake[1], &c, 1) < 0 && errno != EAGAIN)
        log_warn("imap[%s]: cannot wake the connection thread: %s", rep_name(r), strerror(errno));
}

static inline struct fstate *fstate_get(struct rep *r, const char *name)
{
    for (size_t i = 0; i < r->nfs; i++)
        if (!strcmp(r->fs[i].name, name))
            return &r->fs[i];
    return NULL;
}

/* imap_watch_worker.c: the rep thread's body (pthread start routine; arg is
 * the struct rep): connect, sync, run queued operations, IDLE, until stop. */
void *imap_watch_rep_thread(void *arg);

#endif
