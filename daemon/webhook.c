/* webhook.c - outgoing webhooks: one delivery thread per [webhook NAME]
 * (see webhook.h; the events come from events.c).
 *
 * Synopsis: webhook_start() at start-up reads each section's signing key,
 * counts its queue and starts its thread; webhook_enqueue() on the loop
 * keeps a row per interested webhook, and when the loop turn is over
 * (`flush`, a 0 ms timer) the turn's rows are appended in one transaction
 * (store_wh.c) and the threads' semaphores posted; the thread
 * (`deliver_loop`) takes the oldest row of its webhook, POSTs it with
 * libcurl and deletes it on a 2xx; on anything else
 * it waits webhook_backoff_ms() and tries the same row again, so one
 * webhook's events arrive in order and a receiver that is down delays them
 * and loses none. A row older than max_age is dropped (logged).
 *
 * Why this shape: the loop never waits for a receiver or the disk (a row
 * is a record, like the audit; one commit per turn, not per event); the
 * queue is the table, so a restart goes on where it stopped (an event a receiver took just before a crash may
 * come again: receivers dedupe by its id). One thread per webhook, so a
 * slow receiver delays only its own events. Threads: the loop runs
 * webhook_start, webhook_enqueue, webhook_stop; `deliver_loop` and what it
 * calls run on the webhook's thread and touch only struct hook's fixed
 * fields, its counters (atomics) and a SQLite connection of their own.
 *
 * Diagnostics: "webhook NAME: event ID: REASON; attempt N, next in S s"
 * (warn; then only at attempts 1, 2, 4, 8...), "delivered after N
 * attempts" (info), "dropped: not delivered within max_age" (warn),
 * "queue full (max_queue N): event ... dropped" (warn, first and every
 * 1000th), "queue has room again" (info). */
#include "untild/webhook.h"
#include "untild/strbuf.h"
#include "untild/config.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/secret.h"
#include "untild/store_wh.h"
#include "untild/sysutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPLY_MAX 4096          /* bytes of a receiver's answer kept (for the log) */
#define DB_RETRY_MS 5000        /* the queue could not be read: look again */
#define FLUSH_MAX 1000          /* events written per loop turn (about 4 ms) */

struct hook {
    /* fixed once the thread runs */
    char *name, *url, *tls_ca, *state_dir;
    char *key;                  /* the signing key (secret_free) */
    uint32_t events;
    int timeout, max_queue;
    int64_t max_age, retry_max;
    pthread_t th;
    int started;
    sem_t wake;
    atomic_int signalled;       /* a post is pending: later enqueues need not post */
    atomic_int stop;
    atomic_llong queued;        /* rows waiting; the loop adds, the thread takes */
    long long dropped;          /* loop only: events refused while full */
};

/* An event waiting for the end of the loop turn (flush). */
struct pending {
    struct hook *h;
    char *event_id, *body;
    time_t created;
};

struct webhook {
    struct hook h[CONFIG_MAX_WEBHOOKS];
    size_t n;
    uint32_t events;
    struct loop *loop;
    struct store *st;
    struct pending *p;      /* events waiting: p[head..np) */
    size_t head, np, cap;
    uint64_t timer;         /* the flush; 0: none set */
};

/* ---------- pure parts ---------- */

int webhook_sign(const char *key, size_t keylen, time_t t, const char *body, size_t len,
                 char *out, size_t outsz)
{
    char ts[24];
    unsigned char mac[32];
    int tl = snprintf(ts, sizeof ts, "%lld.", (long long)t);
    char *msg = malloc((size_t)tl + len + 1);
    if (!msg)
        return -1;
    memcpy(msg, ts, (size_t)tl);
    memcpy(msg + tl, body, len);
    int rc = gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, keylen, msg, (size_t)tl + len, mac);
    free(msg);
    /* "t=" T ",v1=" HEX NUL: tl counts T and its '.' */
    if (rc < 0 || outsz < (size_t)tl + 1 + 4 + 2 * sizeof mac + 1)
        return -1;
    size_t o = (size_t)snprintf(out, outsz, "t=%lld,v1=", (long long)t);
    for (size_t i = 0; i < sizeof mac; i++)
        o += (size_t)snprintf(out + o, outsz - o, "%02x", mac[i]);
    return 0;
}

int64_t webhook_backoff_ms(int n, int64_t cap_ms, uint32_t rnd)
{
    int64_t d = 1000;
    for (int i = 1; i < n && d < cap_ms; i++)
        d *= 2;
    if (d > cap_ms)
        d = cap_ms;
    if (d < 2)
        return d;
    return d / 2 + (int64_t)(rnd % (uint64_t)(d / 2 + 1));
}

/* ---------- the delivery thread ---------- */

/* Sleep until woken, or until the monotonic time at_ms (-1: no limit). */
static void nap(struct hook *h, int64_t at_ms)
{
    if (at_ms < 0) {
        while (sem_wait(&h->wake) < 0 && errno == EINTR)
            ;
        return;
    }
    struct timespec ts = { (time_t)(at_ms / 1000), (long)(at_ms % 1000) * 1000000 };
    while (sem_clockwait(&h->wake, CLOCK_MONOTONIC, &ts) < 0 && errno == EINTR)
        ;
}

static size_t on_reply(char *p, size_t size, size_t n, void *arg)
{
    char *buf = arg;
    size_t have = strlen(buf), len = size * n;
    if (have + 1 < REPLY_MAX) {
        size_t take = len < REPLY_MAX - 1 - have ? len : REPLY_MAX - 1 - have;
        memcpy(buf + have, p, take);
        buf[have + take] = '\0';
    }
    return len;
}

/* libcurl asks now and then: abandon the attempt when the daemon stops. */
static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    struct hook *h = arg;
    (void)a; (void)b; (void)c; (void)d;
    return atomic_load(&h->stop) ? 1 : 0;
}

/* One POST of row. 0 on a 2xx, else -1 with why. */
static int post(struct hook *h, CURL *c, const struct store_wh_row *row, char *why, size_t whysz)
{
    char sig[WEBHOOK_SIG_MAX + 32], idh[160], errbuf[CURL_ERROR_SIZE] = "", *reply = calloc(1, REPLY_MAX);
    size_t len = strlen(row->body);
    struct curl_slist *hd = NULL, *t;
    long code = 0;
    int ok = -1;
    why[0] = '\0';
    strcpy(sig, "X-Untild-Signature: ");
    if (!reply || webhook_sign(h->key, strlen(h->key), time(NULL), row->body, len, sig + strlen(sig),
                               sizeof sig - strlen(sig)) < 0) {
        snprintf(why, whysz, "cannot sign (out of memory?)");
        free(reply);
        return -1;
    }
    snprintf(idh, sizeof idh, "X-Untild-Event-Id: %s", row->event_id);
    if (!(t = curl_slist_append(hd, "Content-Type: application/json")) || !(hd = t) ||
        !(t = curl_slist_append(hd, sig)) || !(hd = t) || !(t = curl_slist_append(hd, idh)) || !(hd = t) ||
        !(t = curl_slist_append(hd, "Expect:")) || !(hd = t)) {
        snprintf(why, whysz, "out of memory");
        curl_slist_free_all(hd);
        free(reply);
        return -1;
    }
    curl_easy_setopt(c, CURLOPT_URL, h->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");   /* HACKING.md: libcurl */
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);  /* a redirect is a failure: the url is the admin's */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);        /* threads: no SIGALRM for DNS timeouts */
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)(h->timeout < 10 ? h->timeout : 10));
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)h->timeout);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "untild-webhook");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, row->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_reply);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, reply);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, h);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (h->tls_ca)
        curl_easy_setopt(c, CURLOPT_CAINFO, h->tls_ca);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK)
        snprintf(why, whysz, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    else if (code < 200 || code > 299)
        snprintf(why, whysz, "HTTP %ld %.200s", code, reply);
    else
        ok = 0;
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hd);
    free(reply);
    for (char *p = why; *p; p++)      /* the receiver's text: one plain log line */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    return ok;
}

/* The row is done with. A delete the database refused (logged) is tried
 * again later: until then the event may be sent again (same id). */
static void taken(struct hook *h, struct store_whq *q, const struct store_wh_row *row)
{
    if (store_whq_delete(q, row->seq) == 0)
        atomic_fetch_sub(&h->queued, 1);
    else
        nap(h, loop_now_ms() + DB_RETRY_MS);
}

/* Attempts on the head row so far, and when the next may start. */
struct retry {
    int64_t seq;
    int attempts;
    int64_t next_ms;
};

/* One step: deliver, drop or wait for the head row. */
static void step(struct hook *h, struct store_whq *q, CURL *c, struct retry *r)
{
    struct store_wh_row row;
    char why[512];
    int got = store_whq_head(q, h->name, &row);
    if (got <= 0) {
        nap(h, got < 0 ? loop_now_ms() + DB_RETRY_MS : -1);
        return;
    }
    if (row.seq != r->seq)
        *r = (struct retry){ row.seq, 0, 0 };
    if (time(NULL) - row.created > h->max_age) {
        log_warn("webhook %s: event %s dropped: not delivered within max_age (%lld s, %d attempt(s))",
                 h->name, row.event_id, (long long)h->max_age, r->attempts);
        taken(h, q, &row);
    } else if (r->attempts && loop_now_ms() < r->next_ms) {
        nap(h, r->next_ms);
    } else if (post(h, c, &row, why, sizeof why) == 0) {
        if (r->attempts)
            log_info("webhook %s: event %s delivered after %d attempt(s)", h->name, row.event_id,
                     r->attempts + 1);
        taken(h, q, &row);
    } else if (!atomic_load(&h->stop)) {
        uint32_t rnd = 0;
        gnutls_rnd(GNUTLS_RND_NONCE, &rnd, sizeof rnd);
        int64_t wait = webhook_backoff_ms(++r->attempts, h->retry_max * 1000, rnd);
        r->next_ms = loop_now_ms() + wait;
        if ((r->attempts & (r->attempts - 1)) == 0)     /* 1, 2, 4, 8...: a down receiver logs little */
            log_warn("webhook %s: event %s: %s; attempt %d, next in %lld s (%lld queued)", h->name,
                     row.event_id, why, r->attempts, (long long)(wait + 999) / 1000,
                     (long long)atomic_load(&h->queued));
    }
    store_wh_row_clear(&row);
}

static void *deliver_loop(void *arg)
{
    struct hook *h = arg;
    struct store_whq *q = NULL;
    CURL *c = curl_easy_init();
    struct retry r = { -1, 0, 0 };
    sysutil_below_loop();
    if (!c)
        log_error("webhook %s: cannot make a libcurl handle; events stay queued", h->name);
    while (c && !atomic_load(&h->stop)) {
        atomic_store(&h->signalled, 0);
        if (!q && !(q = store_whq_open(h->state_dir))) {
            nap(h, loop_now_ms() + DB_RETRY_MS);
            continue;
        }
        step(h, q, c, &r);
    }
    store_whq_close(q);
    if (c)
        curl_easy_cleanup(c);
    return NULL;
}

/* ---------- the loop's side ---------- */

static void hook_free(struct hook *h)
{
    free(h->name); free(h->url); free(h->tls_ca); free(h->state_dir);
    secret_free(h->key);
}

static int hook_init(struct hook *h, const struct webhook_cfg *wc, const struct config *c,
                     struct store *st)
{
    char who[64];
    snprintf(who, sizeof who, "webhook %s", wc->name);
    h->name = strdup(wc->name);
    h->url = strdup(wc->url);
    h->state_dir = strdup(c->state_dir);
    h->tls_ca = wc->tls_ca ? strdup(wc->tls_ca) : NULL;
    h->events = wc->events;
    h->timeout = wc->timeout;
    h->max_queue = wc->max_queue;
    h->max_age = wc->max_age;
    h->retry_max = wc->retry_max;
    if (!h->name || !h->url || !h->state_dir || (wc->tls_ca && !h->tls_ca))
        return -1;
    if (!(h->key = secret_load(wc->secret_file, NULL, who)))
        return -1;
    int64_t n = store_webhook_count(st, h->name);
    if (n < 0)
        return -1;
    atomic_store(&h->queued, n);
    if (n)
        log_info("webhook %s: %lld event(s) queued from before", h->name, (long long)n);
    return 0;
}

struct webhook *webhook_start(const struct config *c, struct store *st, struct loop *l, int *err)
{
    *err = 0;
    if (!c->nwebhook)
        return NULL;
    struct webhook *w = calloc(1, sizeof *w);
    if (!w) {
        *err = -1;
        return NULL;
    }
    w->loop = l;
    w->st = st;
    for (size_t i = 0; i < c->nwebhook; i++) {
        struct hook *h = &w->h[i];
        w->n++;
        sem_init(&h->wake, 0, 0);
        if (hook_init(h, &c->webhook[i], c, st) < 0 ||
            pthread_create(&h->th, NULL, deliver_loop, h) != 0) {
            log_error("webhook %s: cannot start", c->webhook[i].name);
            webhook_stop(w);
            *err = -1;
            return NULL;
        }
        h->started = 1;
        w->events |= h->events;
    }
    return w;
}

static void on_flush(struct loop *l, uint64_t id, void *arg);

/* Write up to FLUSH_MAX of the waiting events in one transaction (the
 * rest on the next turn, or all when the daemon stops), then wake their
 * threads. */
static void flush(struct webhook *w, int all)
{
    struct pending *p = w->p + w->head;
    size_t left = w->np - w->head, n = !all && left > FLUSH_MAX ? FLUSH_MAX : left;
    struct store_wh_new *rows = n ? calloc(n, sizeof *rows) : NULL;
    int ok = rows != NULL;
    for (size_t i = 0; ok && i < n; i++)
        rows[i] = (struct store_wh_new){ p[i].h->name, p[i].event_id, p[i].body, p[i].created };
    if (ok && store_webhook_add(w->st, rows, n) < 0)
        ok = 0;
    for (size_t i = 0; i < n; i++) {
        struct hook *h = p[i].h;
        if (!ok) {
            log_error("webhook %s: event %s could not be queued", h->name, p[i].event_id);
            atomic_fetch_sub(&h->queued, 1);
        } else if (!atomic_exchange(&h->signalled, 1)) {
            sem_post(&h->wake);   /* never waits (relay.c) */
        }
        free(p[i].event_id);
        free(p[i].body);
    }
    free(rows);
    w->head += n;                 /* no move of the rest: a backlog drains in linear time */
    if (w->head == w->np)
        w->head = w->np = 0;
    if (w->np > w->head && !w->timer)
        w->timer = loop_timer(w->loop, 0, on_flush, w);
}

static void on_flush(struct loop *l, uint64_t id, void *arg)
{
    struct webhook *w = arg;
    (void)l; (void)id;
    w->timer = 0;
    flush(w, 0);
}

void webhook_stop(struct webhook *w)
{
    if (!w)
        return;
    if (w->timer)
        loop_timer_del(w->loop, w->timer);
    w->timer = 0;
    flush(w, 1);
    for (size_t i = 0; i < w->n; i++) {
        struct hook *h = &w->h[i];
        atomic_store(&h->stop, 1);
        sem_post(&h->wake);
    }
    for (size_t i = 0; i < w->n; i++) {
        struct hook *h = &w->h[i];
        if (h->started)
            pthread_join(h->th, NULL);
        sem_destroy(&h->wake);
        hook_free(h);
    }
    free(w->p);
    free(w);
}

uint32_t webhook_events(const struct webhook *w)
{
    return w ? w->events : 0;
}

/* Keep one event for h until the end of the turn. 0, or -1 (ENOMEM). */
static int keep(struct webhook *w, struct hook *h, const char *event_id, const char *body)
{
    if (w->np == w->cap && w->head) {     /* full: the written ones' room first */
        memmove(w->p, w->p + w->head, (w->np - w->head) * sizeof *w->p);
        w->np -= w->head;
        w->head = 0;
    }
    if (w->np == w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 64;
        struct pending *np = realloc(w->p, ncap * sizeof *np);
        if (!np)
            return -1;
        w->p = np;
        w->cap = ncap;
    }
    struct pending *p = &w->p[w->np];
    if (!(p->event_id = strdup(event_id)) || !(p->body = strdup(body))) {
        free(p->event_id);
        return -1;
    }
    p->h = h;
    p->created = time(NULL);
    w->np++;
    if (!w->timer)
        w->timer = loop_timer(w->loop, 0, on_flush, w);
    return 0;
}

void webhook_enqueue(struct webhook *w, enum event_kind kind, const char *event_id, const char *body)
{
    for (size_t i = 0; w && i < w->n; i++) {
        struct hook *h = &w->h[i];
        if (!(h->events & (1u << kind)))
            continue;
        if (atomic_load(&h->queued) >= h->max_queue) {
            if (h->dropped++ % 1000 == 0)
                log_warn("webhook %s: queue full (max_queue %d): event %s (%s) dropped (%lld so far)",
                         h->name, h->max_queue, event_id, event_kind_name(kind), h->dropped);
            continue;
        }
        if (h->dropped) {
            log_info("webhook %s: queue has room again; %lld event(s) were dropped while it was full",
                     h->name, h->dropped);
            h->dropped = 0;
        }
        if (keep(w, h, event_id, body) < 0) {
            log_error("webhook %s: event %s (%s) could not be queued: out of memory", h->name, event_id,
                      event_kind_name(kind));
            continue;
        }
        atomic_fetch_add(&h->queued, 1);   /* counts it now: max_queue holds within a turn */
    }
}

int webhook_config_changed(const struct config *a, const struct config *b)
{
    if (a->nwebhook != b->nwebhook)
        return 1;
    for (size_t i = 0; i < a->nwebhook; i++) {
        const struct webhook_cfg *x = &a->webhook[i], *y = &b->webhook[i];
        if (!str_same(x->name, y->name) || !str_same(x->url, y->url) ||
            !str_same(x->secret_file, y->secret_file) || !str_same(x->tls_ca, y->tls_ca) ||
            x->events != y->events || x->timeout != y->timeout || x->max_age != y->max_age ||
            x->retry_max != y->retry_max || x->max_queue != y->max_queue)
            return 1;
    }
    return 0;
}
