/* auth.c - passwd-file authentication with crypt(3) (libcrypt: yescrypt,
 * sha512-crypt, bcrypt...), run by worker threads, and failure counting.
 *
 * The file is re-read at every check so a new rep can be added without a
 * reload; it is small. crypt is slow on purpose (tens of milliseconds), so
 * it never runs on the event loop: auth_pool runs the checks on a workq and
 * each verdict comes back on the loop (workq.c). An
 * unknown user is hashed too, against the file's first hash, so a refusal
 * takes as long whether or not the user exists.
 *
 * auth_limit is anvil's idea (Postfix): a bounded table of recent failures
 * per client address and per user, so guessing is slow and cheap for us. */
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "untild/auth.h"
#include "untild/log.h"
#include "untild/workq.h"
#include "untild/loop.h"

/* Used when the file has no hash to borrow: sha512-crypt of a random
 * password, so a file with no users still costs a hash per check. */
static const char DUMMY_HASH[] =
    "$6$untilddummysalt$lVM2SEEAHU6a2QFQ1OecFmuV7l05bTHAqzqGWUKQpyEIywKlFpU7GT9dE6KOTlaFhH/CvWUt27Z/fvJ5Fhjld/";

static int check_hash(const char *pass, const char *hash)
{
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd)
        return -1;
    const char *out = crypt_r(pass, hash, cd);
    int ok = out && out[0] != '*' && strlen(out) == strlen(hash) && !strcmp(out, hash);
    explicit_bzero(cd, sizeof *cd);
    free(cd);
    return ok;
}

int auth_passwd_check(const char *file, const char *user, const char *pass)
{
    FILE *fp;
    char line[1024], dummy[256] = "";
    int verdict = 0, found = 0;

    if (!file || !user || !pass)
        return 0;
    if (!(fp = fopen(file, "re"))) {
        log_error("auth: cannot open %s: %s", file, strerror(errno));
        return -1;
    }
    size_t ulen = strlen(user);
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *colon = strchr(line, ':');
        if (line[0] == '#' || !colon)
            continue;
        char *hash = colon + 1;
        char *end = strchr(hash, ':');
        if (end)
            *end = '\0';
        if (!dummy[0] && hash[0] == '$' && strlen(hash) < sizeof dummy)
            snprintf(dummy, sizeof dummy, "%s", hash);
        if ((size_t)(colon - line) != ulen || strncmp(line, user, ulen))
            continue;
        found = 1;
        verdict = check_hash(pass, hash);
        break;
    }
    explicit_bzero(line, sizeof line);
    fclose(fp);
    if (!found) {
        /* the same work for an unknown user; the answer stays "no" */
        check_hash(pass, dummy[0] ? dummy : DUMMY_HASH);
        verdict = 0;
    }
    explicit_bzero(dummy, sizeof dummy);
    return verdict < 0 ? 0 : verdict;
}

/* ---- the worker pool ---- */

struct ajob {
    char *file, *user, *pass;
    auth_done_fn done;
    void *arg;
    int verdict;
};

/* The pool is a workq (workq.c): one worker-pool mechanism in the tree. */
struct auth_pool {
    struct workq *q;
};

static void wipe(char *p)
{
    if (p) {
        explicit_bzero(p, strlen(p));
        free(p);
    }
}

static void job_check(void *arg)
{
    struct ajob *j = arg;
    j->verdict = auth_passwd_check(j->file, j->user, j->pass);
    free(j->file);
    wipe(j->user);
    wipe(j->pass);
    j->file = j->user = j->pass = NULL;
}

static void job_report(void *arg)
{
    struct ajob *j = arg;
    j->done(j->arg, j->verdict);
    free(j);
}

struct auth_pool *auth_pool_new(struct loop *l, int nthreads)
{
    struct auth_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    if (!(p->q = workq_new(l, nthreads, "auth"))) {
        free(p);
        return NULL;
    }
    return p;
}

int auth_pool_submit(struct auth_pool *p, const char *file, const char *user,
                     const char *pass, auth_done_fn done, void *arg)
{
    struct ajob *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->file = strdup(file ? file : "");
    j->user = strdup(user ? user : "");
    j->pass = strdup(pass ? pass : "");
    j->done = done;
    j->arg = arg;
    if (!j->file || !j->user || !j->pass || workq_submit(p->q, job_check, job_report, j) < 0) {
        free(j->file);
        wipe(j->user);
        wipe(j->pass);
        free(j);
        return -1;
    }
    return 0;
}

void auth_pool_free(struct auth_pool *p)
{
    if (!p)
        return;
    workq_free(p->q);     /* queued checks run; their reports are posted */
    free(p);
}

/* ---- failure counting ---- */

#define LIMIT_KEY_MAX 128

struct lentry {
    uint64_t hash;           /* 0: free */
    char key[LIMIT_KEY_MAX];
    int count;
    int64_t start;           /* first failure of the current window */
};

struct auth_limit {
    struct lentry *e;
    size_t cap;
};

static uint64_t key_hash(const char *k)
{
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ULL;
    return h ? h : 1;
}

struct auth_limit *auth_limit_new(size_t cap)
{
    struct auth_limit *a = calloc(1, sizeof *a);
    if (!a || !(a->e = calloc(cap ? cap : 1, sizeof *a->e))) {
        free(a);
        return NULL;
    }
    a->cap = cap ? cap : 1;
    return a;
}

void auth_limit_free(struct auth_limit *a)
{
    if (a) {
        free(a->e);
        free(a);
    }
}

static struct lentry *lfind(struct auth_limit *a, const char *key, uint64_t h)
{
    for (size_t i = 0; i < a->cap; i++)
        if (a->e[i].hash == h && !strncmp(a->e[i].key, key, LIMIT_KEY_MAX - 1))
            return &a->e[i];
    return NULL;
}

int auth_limit_over(struct auth_limit *a, const char *key, int64_t now_ms, int max,
                    int64_t window_ms)
{
    if (!a || max <= 0)
        return 0;
    struct lentry *e = lfind(a, key, key_hash(key));
    return e && now_ms - e->start < window_ms && e->count >= max;
}

void auth_limit_fail(struct auth_limit *a, const char *key, int64_t now_ms, int64_t window_ms)
{
    if (!a)
        return;
    uint64_t h = key_hash(key);
    struct lentry *e = lfind(a, key, h);
    if (!e) {
        /* a free or expired slot, else the oldest window goes */
        for (size_t i = 0; i < a->cap; i++) {
            struct lentry *c = &a->e[i];
            if (!c->hash || now_ms - c->start >= window_ms) {
                e = c;
                break;
            }
            if (!e || c->start < e->start)
                e = c;
        }
        if (!e)
            return;
        memset(e, 0, sizeof *e);
        e->hash = h;
        snprintf(e->key, sizeof e->key, "%s", key);
        e->start = now_ms;
    }
    if (now_ms - e->start >= window_ms) {
        e->start = now_ms;
        e->count = 0;
    }
    e->count++;
}
