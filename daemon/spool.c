/* spool.c - the durable queue of held messages.
 *
 * One file per message under <state_dir>/spool/{incoming,held,active,
 * corrupt}/, named by its ID. A message is durable only after: create
 * O_EXCL 0600 in incoming/, write everything, fsync, close (checked), rename
 * into held/, fsync held/. Any failure on that path unlinks the partial file
 * and returns -1 with errno kept, so the SMTP side never says "250" for a
 * message that is not on disk. State changes are renames followed by a
 * directory fsync. A file that lacks its end record (crash mid-write,
 * truncation) is never trusted: recovery moves it to corrupt/ and logs it.
 *
 * An in-memory map id -> state lets lookups and listings avoid scanning the
 * directories; listings read headers only and check the end record with a
 * single pread at the offset the header's size predicts.
 *
 * The header's text form is spool_format.c.
 *
 * Diagnostics: log_warn for files moved to corrupt/, log_error for failed
 * start-up steps. Everything else is returned as -1 with errno. */
#include "untild/spool.h"
#include "untild/spool_int.h"
#include "untild/log.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define SPOOL_HDR_MAX (4u << 20)   /* a header larger than this is corrupt */
#define SPOOL_COPY_BUF 65536

enum ent_state { ENT_HELD, ENT_ACTIVE, ENT_WRITING /* id reserved, file being written */ };

struct ent {
    struct ent *next;
    enum ent_state state;
    char id[SPOOL_ID_MAX];
};

struct spool {
    int dfd_spool, dfd_incoming, dfd_held, dfd_active, dfd_corrupt;
    struct ent **tab;
    size_t tabsz, count;
    uint64_t rng;          /* xorshift state for IDs, seeded from getrandom */
    uint32_t counter;
    pthread_mutex_t seam_mu; /* the seam's counters: writers may be threads */
    long fail_left;        /* write seam: -1 off, else writes left */
    int fail_err;
    int fail_pending;      /* a short write was simulated: fail the next */
    int dirty_held, dirty_active; /* lazy removals not yet synced (loop thread) */
    /* The removals' directory syncs run on a thread of their own: an fsync
     * of a directory with thousands of entries churning takes 100+ ms on a
     * busy disk, and the loop must not wait for it. */
    pthread_mutex_t sync_mu;
    sem_t sync_sem;          /* posted when there is work or at stop (sem_post never waits: relay.c) */
    pthread_t sync_th;
    int sync_started, sync_stop, want_held, want_active;
    /* Lazy removals' unlinks go to that thread too: on a file system whose
     * directory fsync holds the directory's lock (ext4 without a journal),
     * an unlink on the loop would wait for the sync. lazy: collected on the
     * loop since the last spool_sync_removals; unl: handed to the thread. */
    struct idlist { char (*id)[SPOOL_ID_MAX]; size_t n, cap; } lazy, unl;
    /* spool_open_ex: the held messages' metadata as read while opening, so
     * start-up reads each file once, not twice. NULL: not wanted. */
    struct spool_meta *opened;
    size_t nopened, capopened;
    int keep_opened;
};

/* ---------- small helpers ---------- */

static int idlist_add(struct idlist *l, const char *id);

static int dir_sync(int dfd)
{
    if (fsync(dfd) < 0)
        return -1;
    return 0;
}

static int close_keep_errno(int fd)
{
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

/* ---------- id map ---------- */

static size_t hash_id(const char *id, size_t tabsz)
{
    uint64_t h = 1469598103934665603ull;
    for (; *id; id++) {
        h ^= (unsigned char)*id;
        h *= 1099511628211ull;
    }
    return (size_t)(h % tabsz);
}

static struct ent *map_get(const struct spool *s, const char *id)
{
    struct ent *e;
    for (e = s->tab[hash_id(id, s->tabsz)]; e; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

static int map_grow(struct spool *s)
{
    size_t nsz = s->tabsz * 2, i;
    struct ent **nt = calloc(nsz, sizeof *nt);
    if (nt == NULL)
        return -1;
    for (i = 0; i < s->tabsz; i++) {
        struct ent *e = s->tab[i], *next;
        for (; e; e = next) {
            size_t h = hash_id(e->id, nsz);
            next = e->next;
            e->next = nt[h];
            nt[h] = e;
        }
    }
    free(s->tab);
    s->tab = nt;
    s->tabsz = nsz;
    return 0;
}

static int map_put(struct spool *s, const char *id, enum ent_state st)
{
    struct ent *e = map_get(s, id);
    size_t h;
    if (e) {
        e->state = st;
        return 0;
    }
    if (s->count >= s->tabsz && map_grow(s) < 0)
        return -1;
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return -1;
    snprintf(e->id, sizeof e->id, "%s", id);
    e->state = st;
    h = hash_id(id, s->tabsz);
    e->next = s->tab[h];
    s->tab[h] = e;
    s->count++;
    return 0;
}

static void map_del(struct spool *s, const char *id)
{
    struct ent **pp = &s->tab[hash_id(id, s->tabsz)];
    for (; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->id, id) == 0) {
            struct ent *e = *pp;
            *pp = e->next;
            free(e);
            s->count--;
            return;
        }
    }
}

/* Every file lives in held/, also while it is being delivered (ENT_ACTIVE
 * is a state in memory): a rename to active/ would take both directories'
 * locks on the loop, and start-up treats the two alike anyway. active/ is
 * still read at start-up (files left there by an older untild). */
static int state_dir_fd(const struct spool *s, enum ent_state st)
{
    (void)st;
    return s->dfd_held;
}

/* ---------- write path (with the test seam) ---------- */

static ssize_t seam_writev_locked(struct spool *s, int fd, const struct iovec *iov,
                                  int iovcnt);

static ssize_t seam_writev(struct spool *s, int fd, const struct iovec *iov,
                           int iovcnt)
{
    pthread_mutex_lock(&s->seam_mu);
    int off = s->fail_left < 0 && !s->fail_pending;
    pthread_mutex_unlock(&s->seam_mu);
    if (off)
        return writev(fd, iov, iovcnt);
    pthread_mutex_lock(&s->seam_mu);
    ssize_t n = seam_writev_locked(s, fd, iov, iovcnt);
    pthread_mutex_unlock(&s->seam_mu);
    return n;
}

static ssize_t seam_writev_locked(struct spool *s, int fd, const struct iovec *iov,
                                  int iovcnt)
{
    ssize_t n;
    if (s->fail_pending) {
        s->fail_pending = 0;
        errno = s->fail_err;
        return -1;
    }
    if (s->fail_left == 0) {
        /* Model a filling disk as the kernel reports it: a short write now,
         * then the error on the next call. */
        size_t total = 0, want;
        int i;
        struct iovec part[4];
        int np = 0;
        s->fail_left = -1;
        for (i = 0; i < iovcnt; i++)
            total += iov[i].iov_len;
        if (total < 2 || iovcnt > 4) {
            errno = s->fail_err;
            return -1;
        }
        want = total / 2;
        for (i = 0; i < iovcnt && want > 0; i++) {
            part[np] = iov[i];
            if (part[np].iov_len > want)
                part[np].iov_len = want;
            want -= part[np].iov_len;
            np++;
        }
        n = writev(fd, part, np);
        if (n >= 0)
            s->fail_pending = 1;
        return n;
    }
    n = writev(fd, iov, iovcnt);
    if (n >= 0 && s->fail_left > 0)
        s->fail_left--;
    return n;
}

/* Write every byte of iov (at most 4 entries), retrying short writes and
 * EINTR. */
static int writev_all(struct spool *s, int fd, const struct iovec *iov_in,
                     int iovcnt)
{
    struct iovec iov[4];
    struct iovec *cur = iov;
    int left = iovcnt;
    if (iovcnt > 4) {
        errno = EINVAL;
        return -1;
    }
    memcpy(iov, iov_in, (size_t)iovcnt * sizeof *iov);
    while (left > 0 && cur->iov_len == 0) {
        cur++;
        left--;
    }
    while (left > 0) {
        ssize_t n = seam_writev(s, fd, cur, left);
        size_t un;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        un = (size_t)n;
        while (left > 0 && un >= cur->iov_len) {
            un -= cur->iov_len;
            cur++;
            left--;
        }
        if (left > 0) {
            cur->iov_base = (char *)cur->iov_base + un;
            cur->iov_len -= un;
        }
        while (left > 0 && cur->iov_len == 0) {
            cur++;
            left--;
        }
    }
    return 0;
}

static int read_header(int fd, char **out, size_t *hlen)
{
    size_t cap = 4096, got = 0, scan = 0;
    char *b = malloc(cap + 1);
    if (b == NULL)
        return -1;
    for (;;) {
        ssize_t n;
        char *end;
        if (got == cap) {
            char *nb;
            if (cap >= SPOOL_HDR_MAX) {
                errno = EBADMSG;
                goto fail;
            }
            cap *= 2;
            nb = realloc(b, cap + 1);
            if (nb == NULL)
                goto fail;
            b = nb;
        }
        n = pread(fd, b + got, cap - got, (off_t)got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        if (n == 0) {
            errno = EBADMSG;  /* no blank line: truncated */
            goto fail;
        }
        got += (size_t)n;
        b[got] = '\0';
        end = memmem(b + scan, got - scan, "\n\n", 2);
        if (end != NULL) {
            *hlen = (size_t)(end - b) + 2;
            b[*hlen] = '\0';
            if (memchr(b, '\0', *hlen) != NULL) {
                errno = EBADMSG;
                goto fail;
            }
            *out = b;
            return 0;
        }
        scan = got > 0 ? got - 1 : 0;
    }
fail:
    {
        int e = errno;
        free(b);
        errno = e;
    }
    return -1;
}

static int pread_all(int fd, char *p, size_t n, off_t off)
{
    while (n > 0) {
        ssize_t r = pread(fd, p, n, off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            errno = EBADMSG;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

/* Open dfd/id, parse and verify the header, the file size and the end
 * record. On success *fdp is the open file (or closed if fdp is NULL). */
static int open_verified(int dfd, const char *id, struct spool_meta *m,
                         size_t *hlenp, int *fdp)
{
    char *h = NULL, trailer[SPOOL_ID_MAX + 8], got[SPOOL_ID_MAX + 8];
    size_t hlen = 0, tlen;
    struct stat st;
    int fd = openat(dfd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0 || read_header(fd, &h, &hlen) < 0)
        goto fail;
    if (spool_parse_header(h, m) < 0)
        goto fail;
    free(h);
    h = NULL;
    if (strcmp(m->id, id) != 0) {
        errno = EBADMSG;
        goto fail_meta;
    }
    tlen = (size_t)snprintf(trailer, sizeof trailer, "\nend %s\n", id);
    if (!S_ISREG(st.st_mode) || m->size > (size_t)st.st_size ||
        (uintmax_t)st.st_size != (uintmax_t)hlen + m->size + tlen) {
        errno = EBADMSG;
        goto fail_meta;
    }
    if (pread_all(fd, got, tlen, (off_t)(hlen + m->size)) < 0)
        goto fail_meta;
    if (memcmp(got, trailer, tlen) != 0) {
        errno = EBADMSG;
        goto fail_meta;
    }
    if (hlenp)
        *hlenp = hlen;
    if (fdp)
        *fdp = fd;
    else
        close(fd);
    return 0;
fail_meta:
    {
        int e = errno;
        spool_meta_free(m);
        errno = e;
    }
fail:
    free(h);
    return close_keep_errno(fd);
}

/* ---------- ids ---------- */

static uint64_t rng_next(struct spool *s)
{
    /* xorshift64*: IDs need unpredictability against collisions across
     * restarts, not cryptographic strength. */
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 2685821657736338717ull;
}

static void b36(char *out, uint64_t v, int width)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    int i;
    for (i = width - 1; i >= 0; i--) {
        out[i] = digits[v % 36];
        v /= 36;
    }
}

void spool_new_id(struct spool *s, char id[SPOOL_ID_MAX])
{
    /* 7 chars of seconds (sorts by creation time until year 4453), 5 of a
     * per-spool counter (unique within a second up to 60M), 6 random. */
    struct timespec ts;
    uint64_t t;
    clock_gettime(CLOCK_REALTIME, &ts);
    t = ts.tv_sec > 0 ? (uint64_t)ts.tv_sec : 0;
    b36(id, t, 7);
    b36(id + 7, s->counter++ % 60466176u, 5);
    b36(id + 12, rng_next(s) % 2176782336u, 6);
    id[18] = '\0';
}

/* ---------- writing one file ---------- */

/* Create incoming/<id> holding header+body+trailer, fsynced and closed.
 * On failure the partial file is unlinked and errno preserved. */
static int write_file(struct spool *s, const struct spool_meta *m,
                      const char *msg, size_t len)
{
    struct buf b = { 0 };
    char trailer[SPOOL_ID_MAX + 8];
    struct iovec iov[3];
    int fd, e;
    size_t tlen = (size_t)snprintf(trailer, sizeof trailer, "\nend %s\n", m->id);
    if (spool_encode_header(&b, m) < 0) {
        free(b.p);
        return -1;
    }
    fd = openat(s->dfd_incoming, m->id,
                O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        e = errno;
        free(b.p);
        errno = e;
        return -1;
    }
    iov[0].iov_base = b.p;
    iov[0].iov_len = b.len;
    iov[1].iov_base = (void *)(uintptr_t)msg;
    iov[1].iov_len = len;
    iov[2].iov_base = trailer;
    iov[2].iov_len = tlen;
    if (writev_all(s, fd, iov, 3) < 0 || fsync(fd) < 0) {
        e = errno;
        close(fd);
        goto fail;
    }
    if (close(fd) < 0) {
        e = errno;
        goto fail;
    }
    free(b.p);
    return 0;
fail:
    unlinkat(s->dfd_incoming, m->id, 0);
    free(b.p);
    errno = e;
    return -1;
}

static int prepare_meta(struct spool *s, struct spool_meta *m, size_t len)
{
    if (m->id[0] == '\0') {
        int tries = 0;
        do
            spool_new_id(s, m->id);
        while (map_get(s, m->id) != NULL && ++tries < 100);
    }
    if (!id_valid(m->id)) {
        errno = EINVAL;
        return -1;
    }
    if (map_get(s, m->id) != NULL) {
        errno = EEXIST;
        return -1;
    }
    m->size = len;
    return 0;
}

int spool_hold(struct spool *s, struct spool_meta *meta, const char *msg,
               size_t len)
{
    int e;
    if (prepare_meta(s, meta, len) < 0 || write_file(s, meta, msg, len) < 0)
        return -1;
    if (renameat(s->dfd_incoming, meta->id, s->dfd_held, meta->id) < 0) {
        e = errno;
        unlinkat(s->dfd_incoming, meta->id, 0);
        errno = e;
        return -1;
    }
    if (dir_sync(s->dfd_held) < 0 || map_put(s, meta->id, ENT_HELD) < 0) {
        /* Not durable (or not tracked): take it back so the caller's
         * failure answer is true. */
        e = errno;
        unlinkat(s->dfd_held, meta->id, 0);
        map_del(s, meta->id);
        errno = e;
        return -1;
    }
    return 0;
}

int spool_hold_prepare(struct spool *s, struct spool_meta *meta, size_t len)
{
    if (prepare_meta(s, meta, len) < 0 || map_put(s, meta->id, ENT_WRITING) < 0)
        return -1;
    return 0;
}

int spool_hold_write(struct spool *s, const struct spool_meta *meta,
                     const char *msg, size_t len)
{
    int e;
    if (write_file(s, meta, msg, len) < 0)
        return -1;
    if (renameat(s->dfd_incoming, meta->id, s->dfd_held, meta->id) < 0) {
        e = errno;
        unlinkat(s->dfd_incoming, meta->id, 0);
        errno = e;
        return -1;
    }
    return 0;
}

int spool_hold_sync(struct spool *s)
{
    return dir_sync(s->dfd_held);
}

void spool_hold_finish(struct spool *s, const char *id, int ok)
{
    struct ent *en = map_get(s, id);
    if (!en || en->state != ENT_WRITING)
        return;
    if (ok) {
        en->state = ENT_HELD;
        return;
    }
    /* Whatever the writer left is not durable: take it back. */
    unlinkat(s->dfd_held, id, 0);
    unlinkat(s->dfd_incoming, id, 0);
    map_del(s, id);
}

int spool_hold_batch(struct spool *s, struct spool_meta **metas,
                     const char **msgs, const size_t *lens, size_t n,
                     int *results)
{
    size_t i;
    int ok = 0, first_err = 0;
    for (i = 0; i < n; i++) {
        size_t j;
        results[i] = 0;
        if (prepare_meta(s, metas[i], lens[i]) < 0) {
            results[i] = errno;
            continue;
        }
        for (j = 0; j < i; j++)  /* two entries of one batch with one id */
            if (results[j] == 0 && strcmp(metas[j]->id, metas[i]->id) == 0)
                break;
        if (j < i) {
            results[i] = EEXIST;
            continue;
        }
        if (write_file(s, metas[i], msgs[i], lens[i]) < 0) {
            results[i] = errno;
            continue;
        }
        if (renameat(s->dfd_incoming, metas[i]->id, s->dfd_held,
                     metas[i]->id) < 0) {
            results[i] = errno;
            unlinkat(s->dfd_incoming, metas[i]->id, 0);
            continue;
        }
        ok++;
    }
    /* Group commit: one directory fsync makes every rename durable. */
    if (ok > 0 && dir_sync(s->dfd_held) < 0) {
        int e = errno;
        for (i = 0; i < n; i++) {
            if (results[i] == 0) {
                unlinkat(s->dfd_held, metas[i]->id, 0);
                results[i] = e;
            }
        }
    }
    for (i = 0; i < n; i++) {
        if (results[i] == 0 && map_put(s, metas[i]->id, ENT_HELD) < 0) {
            results[i] = errno;
            unlinkat(s->dfd_held, metas[i]->id, 0);
        }
        if (results[i] != 0 && first_err == 0)
            first_err = results[i];
    }
    if (first_err) {
        errno = first_err;
        return -1;
    }
    return 0;
}

/* ---------- update / read / state changes ---------- */

int spool_update(struct spool *s, const struct spool_meta *meta)
{
    if (map_get(s, meta->id) == NULL || !id_valid(meta->id)) {
        errno = ENOENT;
        return -1;
    }
    return spool_update_io(s, meta);
}

/* Any thread: the id's directory never changes (held/), the seam has its
 * lock, and the caller keeps every other writer of this id away. */
int spool_update_io(struct spool *s, const struct spool_meta *meta)
{
    struct spool_meta cur, out;
    struct buf b = { 0 };
    char *chunk = NULL, trailer[SPOOL_ID_MAX + 8];
    size_t hlen, left, tlen;
    off_t off;
    int in = -1, fd = -1, dfd = s->dfd_held, e;
    struct iovec iov[1];
    if (!id_valid(meta->id)) {
        errno = ENOENT;
        return -1;
    }
    if (open_verified(dfd, meta->id, &cur, &hlen, &in) < 0)
        return -1;
    out = *meta;
    out.size = cur.size;  /* the body is the file's, whatever meta says */
    spool_meta_free(&cur);
    tlen = (size_t)snprintf(trailer, sizeof trailer, "\nend %s\n", meta->id);
    chunk = malloc(SPOOL_COPY_BUF);
    if (chunk == NULL || spool_encode_header(&b, &out) < 0) {
        e = errno;
        goto fail_nofile;
    }
    fd = openat(s->dfd_incoming, meta->id,
                O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        e = errno;
        goto fail_nofile;
    }
    iov[0].iov_base = b.p;
    iov[0].iov_len = b.len;
    if (writev_all(s, fd, iov, 1) < 0)
        goto fail;
    for (left = out.size, off = (off_t)hlen; left > 0;) {
        size_t n = left < SPOOL_COPY_BUF ? left : SPOOL_COPY_BUF;
        if (pread_all(in, chunk, n, off) < 0)
            goto fail;
        iov[0].iov_base = chunk;
        iov[0].iov_len = n;
        if (writev_all(s, fd, iov, 1) < 0)
            goto fail;
        left -= n;
        off += (off_t)n;
    }
    iov[0].iov_base = trailer;
    iov[0].iov_len = tlen;
    if (writev_all(s, fd, iov, 1) < 0 || fsync(fd) < 0)
        goto fail;
    e = close(fd);
    fd = -1;
    if (e < 0)
        goto fail;
    if (renameat(s->dfd_incoming, meta->id, dfd, meta->id) < 0)
        goto fail;
    close(in);
    in = -1;
    free(chunk);
    free(b.p);
    /* The old file was replaced atomically; the rename is durable once the
     * directory is synced. If that fails the new content may or may not
     * survive a crash, but either version is a valid file. */
    return dir_sync(dfd);
fail:
    e = errno;
    if (fd >= 0)
        close(fd);
    unlinkat(s->dfd_incoming, meta->id, 0);
fail_nofile:
    if (in >= 0)
        close(in);
    free(chunk);
    free(b.p);
    errno = e;
    return -1;
}

int spool_held_dir(const struct spool *s)
{
    return s->dfd_held;
}

/* Any thread: read and verify id in dfd; meta and body may be NULL. */
static int read_verified(int dfd, const char *id, struct spool_meta *meta, char **body,
                         size_t *len)
{
    struct spool_meta m;
    size_t hlen;
    int fd, e;
    if (open_verified(dfd, id, &m, &hlen, &fd) < 0)
        return -1;
    if (body != NULL) {
        char *b = malloc(m.size + 1);
        if (b == NULL || pread_all(fd, b, m.size, (off_t)hlen) < 0) {
            e = b ? errno : ENOMEM;
            free(b);
            spool_meta_free(&m);
            close(fd);
            errno = e;
            return -1;
        }
        b[m.size] = '\0';  /* convenience; the body may hold NULs itself */
        *body = b;
    }
    if (len != NULL)
        *len = m.size;
    close(fd);
    if (meta != NULL)
        *meta = m;
    else
        spool_meta_free(&m);
    return 0;
}

int spool_read_body_at(int dfd, const char *id, char **body, size_t *len)
{
    if (!id_valid(id)) {
        errno = ENOENT;
        return -1;
    }
    return read_verified(dfd, id, NULL, body, len);
}

int spool_read(struct spool *s, const char *id, struct spool_meta *meta,
               char **body, size_t *len)
{
    struct ent *en = id_valid(id) ? map_get(s, id) : NULL;
    if (en == NULL) {
        errno = ENOENT;
        return -1;
    }
    return read_verified(state_dir_fd(s, en->state), id, meta, body, len);
}

static int move_state(struct spool *s, const char *id, enum ent_state from,
                      enum ent_state to)
{
    struct ent *en = id_valid(id) ? map_get(s, id) : NULL;
    int fdir = state_dir_fd(s, from), tdir = state_dir_fd(s, to);
    if (en == NULL || en->state != from) {
        errno = ENOENT;
        return -1;
    }
    (void)fdir; (void)tdir;      /* one directory: nothing moves on disk */
    en->state = to;
    return 0;
}

int spool_activate(struct spool *s, const char *id)
{
    return move_state(s, id, ENT_HELD, ENT_ACTIVE);
}

int spool_deactivate(struct spool *s, const char *id)
{
    return move_state(s, id, ENT_ACTIVE, ENT_HELD);
}

static int remove_entry(struct spool *s, const char *id, int sync)
{
    struct ent *en = id_valid(id) ? map_get(s, id) : NULL;
    int dfd;
    if (en == NULL) {
        errno = ENOENT;
        return -1;
    }
    dfd = state_dir_fd(s, en->state);
    if (!sync && idlist_add(&s->lazy, id) == 0) {
        map_del(s, id);         /* gone for everyone; the file goes soon */
        return 0;
    }
    if (unlinkat(dfd, id, 0) < 0 && errno != ENOENT)
        return -1;
    if (!sync) {
        s->dirty_held = 1;
        map_del(s, id);
        return 0;
    }
    map_del(s, id);
    return dir_sync(dfd);
}

int spool_remove(struct spool *s, const char *id)
{
    return remove_entry(s, id, 1);
}

int spool_remove_lazy(struct spool *s, const char *id)
{
    return remove_entry(s, id, 0);
}

static int idlist_add(struct idlist *l, const char *id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        void *p = realloc(l->id, cap * sizeof *l->id);
        if (!p)
            return -1;
        l->id = p;
        l->cap = cap;
    }
    snprintf(l->id[l->n++], sizeof l->id[0], "%s", id);
    return 0;
}

/* Unlink what l names in held/; 1 if anything was unlinked. */
static int unlink_all(struct spool *s, struct idlist *l)
{
    int any = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (unlinkat(s->dfd_held, l->id[i], 0) == 0)
            any = 1;
        else if (errno != ENOENT)
            log_error("spool: cannot remove held/%s: %s (it may be sent again after a restart)",
                      l->id[i], strerror(errno));
    }
    l->n = 0;
    return any;
}

static void *syncer(void *arg)
{
    struct spool *s = arg;
    struct idlist mine = { 0 };
    struct sched_param sp = { 0 };   /* below the loop, as sysutil_below_loop */
    (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), 5);
    pthread_mutex_lock(&s->sync_mu);
    for (;;) {
        while (!s->want_held && !s->want_active && !s->unl.n && !s->sync_stop) {
            pthread_mutex_unlock(&s->sync_mu);
            while (sem_wait(&s->sync_sem) < 0 && errno == EINTR)
                ;
            pthread_mutex_lock(&s->sync_mu);
        }
        int held = s->want_held, active = s->want_active;
        struct idlist t = mine;         /* take the queue, leave an empty one */
        mine = s->unl;
        s->unl = t;
        if (!held && !active && !mine.n)
            break;                      /* stopping, nothing left to do */
        s->want_held = s->want_active = 0;
        pthread_mutex_unlock(&s->sync_mu);
        held |= unlink_all(s, &mine);
        if ((active && dir_sync(s->dfd_active) < 0) || (held && dir_sync(s->dfd_held) < 0))
            log_error("spool: cannot sync the spool after removals: %s (delivered mail may be "
                      "sent again after a crash)", strerror(errno));
        pthread_mutex_lock(&s->sync_mu);
    }
    pthread_mutex_unlock(&s->sync_mu);
    free(mine.id);
    return NULL;
}

int spool_sync_removals(struct spool *s)
{
    if (!s->dirty_active && !s->dirty_held && !s->lazy.n)
        return 0;
    if (!s->sync_started) {
        if (pthread_create(&s->sync_th, NULL, syncer, s) != 0) {
            int rc = 0;        /* no thread: do it here, as before */
            if (unlink_all(s, &s->lazy))
                s->dirty_held = 1;
            if (s->dirty_active && dir_sync(s->dfd_active) < 0)
                rc = -1;
            if (s->dirty_held && dir_sync(s->dfd_held) < 0)
                rc = -1;
            s->dirty_active = s->dirty_held = 0;
            return rc;
        }
        s->sync_started = 1;
    }
    pthread_mutex_lock(&s->sync_mu);
    s->want_active |= s->dirty_active;
    s->want_held |= s->dirty_held;
    if (s->lazy.n) {
        if (!s->unl.n) {              /* hand the whole list over */
            struct idlist t = s->unl;
            s->unl = s->lazy;
            s->lazy = t;
        } else {
            for (size_t i = 0; i < s->lazy.n; i++)
                if (idlist_add(&s->unl, s->lazy.id[i]) < 0) {
                    /* No memory: this one is unlinked here. */
                    if (unlinkat(s->dfd_held, s->lazy.id[i], 0) == 0)
                        s->want_held = 1;
                }
            s->lazy.n = 0;
        }
    }
    pthread_mutex_unlock(&s->sync_mu);
    sem_post(&s->sync_sem);
    s->dirty_active = s->dirty_held = 0;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int spool_list(struct spool *s, struct spool_meta **out, size_t *n)
{
    char **ids = NULL;
    struct spool_meta *arr = NULL;
    size_t nids = 0, i, k = 0;
    *out = NULL;
    *n = 0;
    if (s->count > 0) {
        ids = malloc(s->count * sizeof *ids);
        arr = calloc(s->count, sizeof *arr);
        if (ids == NULL || arr == NULL) {
            free(ids);
            free(arr);
            errno = ENOMEM;
            return -1;
        }
    }
    for (i = 0; i < s->tabsz; i++) {
        struct ent *e;
        for (e = s->tab[i]; e; e = e->next)
            if (e->state == ENT_HELD)
                ids[nids++] = e->id;
    }
    if (nids > 1)  /* IDs sort by creation time */
        qsort(ids, nids, sizeof *ids, cmp_str);
    for (i = 0; i < nids; i++) {
        if (open_verified(s->dfd_held, ids[i], &arr[k], NULL, NULL) < 0) {
            log_warn("spool: held/%s unreadable, not listed: %s", ids[i],
                     strerror(errno));
            continue;
        }
        k++;
    }
    free(ids);
    if (k == 0) {
        free(arr);
        arr = NULL;
    }
    *out = arr;
    *n = k;
    return 0;
}

void spool_fail_after(struct spool *s, long n, int err)
{
    pthread_mutex_lock(&s->seam_mu);
    s->fail_pending = 0;
    if (err == 0 || n < 0) {
        s->fail_left = -1;
        s->fail_err = 0;
    } else {
        s->fail_left = n;
        s->fail_err = err;
    }
    pthread_mutex_unlock(&s->seam_mu);
}

/* ---------- open / recovery ---------- */

static int mkdir_ok(int dfd, const char *name)
{
    if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int open_dir(int dfd, const char *name)
{
    return openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Move dfd/name into corrupt/, never overwriting an earlier corrupt file. */
static int to_corrupt(struct spool *s, int dfd, const char *dirname,
                      const char *name, const char *why)
{
    char cand[NAME_MAX + 1];
    int k;
    for (k = 0; k < 1000; k++) {
        if (k == 0)
            snprintf(cand, sizeof cand, "%s", name);
        else
            snprintf(cand, sizeof cand, "%.200s.%d", name, k);
        if (faccessat(s->dfd_corrupt, cand, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
            continue;
        if (renameat(dfd, name, s->dfd_corrupt, cand) < 0) {
            log_error("spool: cannot move %s/%s to corrupt/: %s", dirname, name,
                      strerror(errno));
            return -1;
        }
        log_warn("spool: %s/%s moved to corrupt/%s: %s", dirname, name, cand, why);
        return 0;
    }
    errno = EEXIST;
    log_error("spool: cannot move %s/%s to corrupt/: too many names taken",
              dirname, name);
    return -1;
}

/* Call fn for each entry (not . and ..) of directory dfd. Names are copied
 * first so fn may rename entries away. */
static int each_entry(int dfd, int (*fn)(struct spool *, const char *),
                      struct spool *s)
{
    int fd = dup(dfd), rc = 0;
    DIR *d;
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0, i;
    if (fd < 0)
        return -1;
    d = fdopendir(fd);
    if (d == NULL)
        return close_keep_errno(fd);
    rewinddir(d);
    while ((errno = 0, de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == cap) {
            char **nn;
            cap = cap ? cap * 2 : 64;
            nn = realloc(names, cap * sizeof *nn);
            if (nn == NULL) {
                rc = -1;
                break;
            }
            names = nn;
        }
        names[n] = strdup(de->d_name);
        if (names[n] == NULL) {
            rc = -1;
            break;
        }
        n++;
    }
    if (de == NULL && errno != 0)
        rc = -1;
    closedir(d);
    for (i = 0; i < n; i++) {
        if (rc == 0 && fn(s, names[i]) < 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

static int recover_incoming(struct spool *s, const char *name)
{
    return to_corrupt(s, s->dfd_incoming, "incoming", name,
                      "incomplete write (crash before rename)");
}

static int recover_active(struct spool *s, const char *name)
{
    if (!id_valid(name) ||
        faccessat(s->dfd_held, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return to_corrupt(s, s->dfd_active, "active", name,
                          "bad name or also in held/");
    if (renameat(s->dfd_active, name, s->dfd_held, name) < 0) {
        log_error("spool: cannot move active/%s back to held/: %s", name,
                  strerror(errno));
        return -1;
    }
    log_info("spool: active/%s back to held/ (delivery was in flight)", name);
    return 0;
}

static int recover_held(struct spool *s, const char *name)
{
    struct spool_meta m;
    if (!id_valid(name))
        return to_corrupt(s, s->dfd_held, "held", name, "not a spool ID");
    if (open_verified(s->dfd_held, name, &m, NULL, NULL) < 0) {
        if (errno == ENOMEM)
            return -1;
        return to_corrupt(s, s->dfd_held, "held", name, strerror(errno));
    }
    if (s->keep_opened && s->nopened == s->capopened) {
        size_t cap = s->capopened ? s->capopened * 2 : 1024;
        struct spool_meta *n = realloc(s->opened, cap * sizeof *n);
        if (!n) {
            spool_meta_free(&m);
            return -1;
        }
        s->opened = n;
        s->capopened = cap;
    }
    if (s->keep_opened)
        s->opened[s->nopened++] = m;      /* the list owns it now */
    else
        spool_meta_free(&m);
    return map_put(s, name, ENT_HELD);
}

static int cmp_meta_id(const void *a, const void *b)
{
    return strcmp(((const struct spool_meta *)a)->id, ((const struct spool_meta *)b)->id);
}

struct spool *spool_open(const char *state_dir)
{
    return spool_open_ex(state_dir, NULL, NULL);
}

struct spool *spool_open_ex(const char *state_dir, struct spool_meta **held, size_t *nheld)
{
    struct spool *s = calloc(1, sizeof *s);
    if (s) {
        pthread_mutex_init(&s->seam_mu, NULL);
        pthread_mutex_init(&s->sync_mu, NULL);
        sem_init(&s->sync_sem, 0, 0);
    }
    int sdfd = -1;
    if (s == NULL)
        return NULL;
    s->dfd_spool = s->dfd_incoming = s->dfd_held = s->dfd_active =
        s->dfd_corrupt = -1;
    s->fail_left = -1;
    s->tabsz = 256;
    s->tab = calloc(s->tabsz, sizeof *s->tab);
    if (s->tab == NULL)
        goto fail;
    if (getrandom(&s->rng, sizeof s->rng, GRND_NONBLOCK) != (ssize_t)sizeof s->rng)
        s->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    s->rng |= 1;  /* xorshift state must be non-zero */
    if (mkdir(state_dir, 0700) < 0 && errno != EEXIST)
        goto fail_log;
    sdfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sdfd < 0 || mkdir_ok(sdfd, "spool") < 0)
        goto fail_log;
    s->dfd_spool = open_dir(sdfd, "spool");
    if (s->dfd_spool < 0)
        goto fail_log;
    close(sdfd);
    sdfd = -1;
    /* One daemon per spool: the map would go stale under a second writer. */
    if (flock(s->dfd_spool, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK) {
            log_error("spool: %s/spool is in use by another process", state_dir);
            errno = EBUSY;
            goto fail;
        }
        goto fail_log;
    }
    if (mkdir_ok(s->dfd_spool, "incoming") < 0 || mkdir_ok(s->dfd_spool, "held") < 0 ||
        mkdir_ok(s->dfd_spool, "active") < 0 || mkdir_ok(s->dfd_spool, "corrupt") < 0)
        goto fail_log;
    s->dfd_incoming = open_dir(s->dfd_spool, "incoming");
    s->dfd_held = open_dir(s->dfd_spool, "held");
    s->dfd_active = open_dir(s->dfd_spool, "active");
    s->dfd_corrupt = open_dir(s->dfd_spool, "corrupt");
    if (s->dfd_incoming < 0 || s->dfd_held < 0 || s->dfd_active < 0 ||
        s->dfd_corrupt < 0)
        goto fail_log;
    s->keep_opened = held != NULL;
    if (each_entry(s->dfd_incoming, recover_incoming, s) < 0 ||
        each_entry(s->dfd_active, recover_active, s) < 0 ||
        each_entry(s->dfd_held, recover_held, s) < 0)
        goto fail_log;
    if (dir_sync(s->dfd_corrupt) < 0 || dir_sync(s->dfd_held) < 0 ||
        dir_sync(s->dfd_active) < 0 || dir_sync(s->dfd_incoming) < 0 ||
        dir_sync(s->dfd_spool) < 0)
        goto fail_log;
    if (held) {
        if (s->nopened > 1)   /* IDs sort by creation time, as spool_list's */
            qsort(s->opened, s->nopened, sizeof *s->opened, cmp_meta_id);
        *held = s->opened;
        *nheld = s->nopened;
        s->opened = NULL;
        s->nopened = s->capopened = 0;
        s->keep_opened = 0;
    }
    return s;
fail_log:
    log_error("spool: cannot open %s/spool: %s", state_dir, strerror(errno));
fail:
    {
        int e = errno;
        if (sdfd >= 0)
            close(sdfd);
        spool_close(s);
        errno = e;
    }
    return NULL;
}

void spool_close(struct spool *s)
{
    size_t i;
    if (s == NULL)
        return;
    for (i = 0; i < s->nopened; i++)    /* spool_open_ex failed half-way */
        spool_meta_free(&s->opened[i]);
    free(s->opened);
    (void)spool_sync_removals(s);      /* the last removals, then stop */
    if (s->sync_started) {
        pthread_mutex_lock(&s->sync_mu);
        s->sync_stop = 1;
        pthread_mutex_unlock(&s->sync_mu);
        sem_post(&s->sync_sem);
        pthread_join(s->sync_th, NULL);
    }
    (void)unlink_all(s, &s->lazy);     /* no thread ever started */
    free(s->lazy.id);
    free(s->unl.id);
    if (s->dfd_incoming >= 0)
        close(s->dfd_incoming);
    if (s->dfd_held >= 0)
        close(s->dfd_held);
    if (s->dfd_active >= 0)
        close(s->dfd_active);
    if (s->dfd_corrupt >= 0)
        close(s->dfd_corrupt);
    if (s->dfd_spool >= 0)
        close(s->dfd_spool);
    pthread_mutex_destroy(&s->seam_mu);
    pthread_mutex_destroy(&s->sync_mu);
    sem_destroy(&s->sync_sem);
    if (s->tab) {
        for (i = 0; i < s->tabsz; i++) {
            struct ent *e = s->tab[i], *next;
            for (; e; e = next) {
                next = e->next;
                free(e);
            }
        }
        free(s->tab);
    }
    free(s);
}
