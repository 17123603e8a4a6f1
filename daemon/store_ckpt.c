/* store_ckpt.c - WAL checkpoints off the event loop.
 *
 * SQLite checkpoints the WAL into the database itself when a commit finds
 * it over 1,000 pages (wal_autocheckpoint), in the committing thread: the
 * loop, which then waits for the database writes and their fsync (100+ ms
 * on a busy disk, seen as a stalled greeting while 100,000 held messages
 * were released, two audit rows each). The loop's connection turns that
 * off; its WAL hook wakes this thread, which checkpoints PASSIVE on a
 * connection of its own (it never blocks the loop's readers or writer;
 * what it cannot copy yet it copies next time). */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include "untild/sysutil.h"
#include "untild/log.h"
#include "untild/store_int.h"

#define CKPT_PAGES 1000     /* SQLite's own default threshold */

struct store_ckpt {
    sqlite3 *db;
    pthread_t th;
    pthread_mutex_t mu;
    sem_t wake;         /* the WAL hook runs on the loop: sem_post never waits (relay.c) */
    int want, stop;
};

static void *run(void *arg)
{
    struct store_ckpt *c = arg;
    sysutil_below_loop();
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->want && !c->stop) {
            pthread_mutex_unlock(&c->mu);
            while (sem_wait(&c->wake) < 0 && errno == EINTR)
                ;
            pthread_mutex_lock(&c->mu);
        }
        if (c->stop)
            break;
        c->want = 0;
        pthread_mutex_unlock(&c->mu);
        int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            log_warn("store: checkpoint: %s", sqlite3_errmsg(c->db));
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* After each commit on the loop's connection (SQLite calls it there). */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct store_ckpt *c = arg;
    (void)db; (void)name;
    if (pages >= CKPT_PAGES) {
        pthread_mutex_lock(&c->mu);
        c->want = 1;
        pthread_mutex_unlock(&c->mu);
        sem_post(&c->wake);
    }
    return SQLITE_OK;
}

int store_ckpt_start(struct store *st, const char *path)
{
    struct store_ckpt *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(c->db, 5000) != SQLITE_OK) {
        log_error("store: checkpointer %s: %s", path, c->db ? sqlite3_errmsg(c->db) : "out of memory");
        sqlite3_close(c->db);
        free(c);
        return -1;
    }
    pthread_mutex_init(&c->mu, NULL);
    sem_init(&c->wake, 0, 0);
    if (pthread_create(&c->th, NULL, run, c) != 0) {
        log_warn("store: no checkpoint thread; SQLite checkpoints on the loop");
        pthread_mutex_destroy(&c->mu);
        sem_destroy(&c->wake);
        sqlite3_close(c->db);
        free(c);
        return 0;
    }
    /* From here on only the thread checkpoints (sqlite3_wal_hook replaces
     * the auto-checkpoint hook, which is what wal_autocheckpoint sets). */
    sqlite3_wal_hook(st->db, wal_hook, c);
    st->ckpt = c;
    return 0;
}

void store_ckpt_stop(struct store *st)
{
    struct store_ckpt *c = st->ckpt;
    if (!c)
        return;
    sqlite3_wal_hook(st->db, NULL, NULL);
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_mutex_unlock(&c->mu);
    sem_post(&c->wake);
    pthread_join(c->th, NULL);
    pthread_mutex_destroy(&c->mu);
    sem_destroy(&c->wake);
    sqlite3_close(c->db);
    free(c);
    st->ckpt = NULL;
}
