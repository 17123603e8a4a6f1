/* http_session.c - the HTTP API's browser sessions (see http_session.h).
 *
 * Synopsis: http_session_create at login, http_session_find for every
 * cookie request, http_session_end at logout. Loop thread only (the API
 * hands every request to the loop); no locks.
 *
 * An id is 32 bytes of gnutls_rnd(GNUTLS_RND_KEY) in hex: it cannot be
 * guessed, so a plain SHA-256 is the right thing to keep (as for API
 * tokens) and a copy of the table in a core dump or a debugger opens no
 * session. The table is an array searched linearly: [http] max_sessions
 * is at most 10,000, a few microseconds per request, and it is grown
 * as logins come rather than allocated whole. Sessions live in memory:
 * a restart logs everyone out (DECISIONS.md "Browser sessions"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include "untild/http_session.h"

struct entry {
    unsigned char hash[32];
    time_t created, last;
    struct http_session_info info;
};

struct http_sessions {
    struct entry *e;
    size_t n, cap, max;
};

struct http_sessions *http_session_table_new(size_t max)
{
    struct http_sessions *t = calloc(1, sizeof *t);
    if (t)
        t->max = max ? max : 1;
    return t;
}

void http_session_table_free(struct http_sessions *t)
{
    if (!t)
        return;
    if (t->e)
        gnutls_memset(t->e, 0, t->cap * sizeof *t->e);
    free(t->e);
    free(t);
}

size_t http_session_count(const struct http_sessions *t)
{
    return t ? t->n : 0;
}

static int equal(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(x[i] ^ y[i]);
    return diff == 0;
}

static int hex_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n == HTTP_SESSION_HEX - 1 && strspn(s, "0123456789abcdef") == n;
}

static int random_hex(char out[HTTP_SESSION_HEX])
{
    unsigned char r[32];
    static const char digits[] = "0123456789abcdef";
    if (gnutls_rnd(GNUTLS_RND_KEY, r, sizeof r) < 0)
        return -1;
    for (size_t i = 0; i < sizeof r; i++) {
        out[2 * i] = digits[r[i] >> 4];
        out[2 * i + 1] = digits[r[i] & 15];
    }
    out[HTTP_SESSION_HEX - 1] = '\0';
    gnutls_memset(r, 0, sizeof r);
    return 0;
}

static void drop(struct http_sessions *t, size_t i)
{
    t->e[i] = t->e[--t->n];
    gnutls_memset(&t->e[t->n], 0, sizeof t->e[t->n]);
}

static int expired(const struct entry *e, time_t now, int64_t idle, int64_t lifetime)
{
    return (int64_t)(now - e->last) >= idle || (int64_t)(now - e->created) >= lifetime;
}

/* The least recently used session (of rep, if not NULL), or -1. */
static long lru(const struct http_sessions *t, const char *rep, size_t *count)
{
    long found = -1;
    *count = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (rep && strcasecmp(t->e[i].info.rep, rep))
            continue;
        ++*count;
        if (found < 0 || t->e[i].last < t->e[found].last)
            found = (long)i;
    }
    return found;
}

int http_session_create(struct http_sessions *t, const char *rep, time_t now, const struct http_session_limits *lim,
                        char id[HTTP_SESSION_HEX], char csrf[HTTP_SESSION_HEX], char *evicted, size_t evictedsz)
{
    size_t count;
    int ended = 0;
    if (evicted && evictedsz)
        evicted[0] = '\0';
    if (!rep || strlen(rep) >= HTTP_SESSION_REP_MAX)
        return -1;
    for (size_t i = 0; i < t->n;)
        if (expired(&t->e[i], now, lim->idle, lim->lifetime))
            drop(t, i);
        else
            i++;
    long old = lru(t, rep, &count);
    if (old >= 0 && count >= (lim->per_rep ? lim->per_rep : 1))
        ended = HTTP_SESSION_ENDED_OWN;
    else if (t->n == t->max && (old = lru(t, NULL, &count)) >= 0)
        ended = HTTP_SESSION_ENDED_LRU;
    if (ended) {
        if (evicted && evictedsz)
            snprintf(evicted, evictedsz, "%s", t->e[old].info.rep);
        drop(t, (size_t)old);
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        cap = cap > t->max ? t->max : cap;
        struct entry *e = calloc(cap, sizeof *e);
        if (!e)
            return -1;
        if (t->e) {
            memcpy(e, t->e, t->n * sizeof *e);
            gnutls_memset(t->e, 0, t->cap * sizeof *t->e);
            free(t->e);
        }
        t->e = e;
        t->cap = cap;
    }
    struct entry *e = &t->e[t->n];
    if (random_hex(id) < 0 || random_hex(csrf) < 0 ||
        gnutls_hash_fast(GNUTLS_DIG_SHA256, id, HTTP_SESSION_HEX - 1, e->hash) < 0) {
        gnutls_memset(id, 0, HTTP_SESSION_HEX);
        return -1;
    }
    e->created = e->last = now;
    snprintf(e->info.rep, sizeof e->info.rep, "%s", rep);
    memcpy(e->info.csrf, csrf, HTTP_SESSION_HEX);
    t->n++;
    return ended;
}

/* The index of id's session, or -1. Every entry is compared. */
static long lookup(const struct http_sessions *t, const char *id)
{
    unsigned char h[32];
    long found = -1;
    if (!hex_ok(id) || gnutls_hash_fast(GNUTLS_DIG_SHA256, id, HTTP_SESSION_HEX - 1, h) < 0)
        return -1;
    for (size_t i = 0; i < t->n; i++)
        if (equal(t->e[i].hash, h, sizeof h) && found < 0)
            found = (long)i;
    return found;
}

int http_session_find(struct http_sessions *t, const char *id, time_t now, int64_t idle, int64_t lifetime,
                      struct http_session_info *out)
{
    long i = t ? lookup(t, id) : -1;
    if (i < 0)
        return 0;
    struct entry *e = &t->e[i];
    if (expired(e, now, idle, lifetime)) {
        drop(t, (size_t)i);
        return 0;
    }
    e->last = now;
    *out = e->info;
    return 1;
}

int http_session_end(struct http_sessions *t, const char *id)
{
    long i = t ? lookup(t, id) : -1;
    if (i < 0)
        return 0;
    drop(t, (size_t)i);
    return 1;
}

int http_session_csrf_ok(const char *want, const char *got)
{
    if (!want || !got || !hex_ok(want) || strlen(got) != strlen(want))
        return 0;
    return equal(want, got, strlen(want));
}

int http_session_is_admin(const char *admins, const char *rep)
{
    size_t n = rep ? strlen(rep) : 0;
    if (!admins || !n)
        return 0;
    for (const char *p = admins; *p;) {
        p += strspn(p, ", \t");
        size_t k = strcspn(p, ", \t");
        if (k == n && !strncasecmp(p, rep, n))
            return 1;
        p += k;
    }
    return 0;
}

int http_session_origin_ok(const char *origin, const char *host, int tls)
{
    if (!origin)
        return 1;
    if (!host || !*host)
        return 0;
    /* over TLS only https; plain HTTP (loopback) may sit behind a proxy
     * that ends TLS, so https with our host is ours too */
    size_t sn = !strncasecmp(origin, "https://", 8) ? 8 : !tls && !strncasecmp(origin, "http://", 7) ? 7 : 0;
    return sn && !strcasecmp(origin + sn, host);
}
