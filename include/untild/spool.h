/* spool.h - the durable queue of held messages (docs/DESIGN.md "Spool and release").
 *
 * Layout under <state_dir>/spool/: incoming/ (being written), held/,
 * active/ (being delivered), corrupt/. One file per message, named by its
 * ID. A file is created O_EXCL 0600 in incoming/, written, fsynced, closed
 * (checked), renamed into held/, and held/ is fsynced: only then may the
 * client be told "250". Writes into held/ are a rename + directory fsync;
 * held/ <-> active/ moves are renames only (either place recovers to
 * held/); removals of delivered mail may share one directory fsync.
 * On start-up, incoming/ leftovers and files without their end record go
 * to corrupt/ (logged); active/ files go back to held/ (delivery was in
 * flight: at-least-once).
 *
 * File format (text header, then the raw message, then an end record):
 *   untild-spool 1
 *   key: value          (see struct spool_meta; rcpt lines repeat)
 *   <blank line>
 *   <size bytes of message>
 *   \nend <ID>\n */
#ifndef UNTILD_SPOOL_H
#define UNTILD_SPOOL_H

#include <stddef.h>
#include <time.h>

#define SPOOL_ID_MAX 32

enum rcpt_state { RCPT_HELD = 0, RCPT_DONE, RCPT_FAILED };

struct spool_rcpt {
    char *addr;            /* as given in RCPT TO (not normalised) */
    char *norm;            /* normalised */
    char *params;          /* DSN etc. parameters, may be NULL */
    enum rcpt_state state;
    char *window_id;       /* window that held it at hold time, may be NULL */
    char *reason;          /* may be NULL */
};

struct spool_meta {
    char id[SPOOL_ID_MAX];
    char *rep;             /* owner (the rep who sent it) */
    char *mail_from;       /* reverse path without <> ("" for null sender) */
    char *mail_params;     /* MAIL FROM parameters to pass on, may be NULL */
    struct spool_rcpt *rcpts;
    size_t nrcpts;
    time_t created;
    time_t hold_until;     /* FUTURERELEASE, 0 if none */
    time_t quiet_until;    /* release time as computed when it was held: shown to
                              the client then; never decides (lifecycle.h) */
    char *subject;         /* for listings/notices, may be NULL */
    char *message_id;      /* may be NULL */
    char *ical_uid;        /* iMIP invitation UID, may be NULL */
    time_t ical_dtstart;   /* 0 if none */
    int ical_method;       /* enum imip_method */
    char *ical_recurrence_id; /* the occurrence an iMIP message is about
                                 (message_facts), NULL for a series */
    time_t ical_last;      /* start of the invitation's last occurrence;
                              -1 (IMIP_OPEN_ENDED) none; 0 not recorded
                              (then ical_dtstart decides) */
    size_t size;           /* message bytes */
    int attempts;          /* delivery attempts so far */
    time_t next_attempt;   /* 0: as soon as due */
    char *last_error;      /* may be NULL */
    time_t first_attempt;  /* first delivery attempt, 0 if none yet:
                              max_queue_lifetime counts from here */
    time_t released_at;    /* released by hand at (0: not); overrides windows */
    char *released_by;     /* who released it, may be NULL */
    char *released_reason; /* why, may be NULL */
    int kind;              /* SPOOL_KIND_MESSAGE, or SPOOL_KIND_NOTICE: a notice
                              to the rep, kept and retried like any message */
    int returned;          /* a notice that carries a message back to the rep:
                              kept until delivered, never expires */
};

enum { SPOOL_KIND_MESSAGE = 0, SPOOL_KIND_NOTICE = 1 };

void spool_meta_free(struct spool_meta *m);
/* Deep copy. Returns 0 or -1 (ENOMEM). */
int spool_meta_copy(struct spool_meta *dst, const struct spool_meta *src);

struct spool;

/* Open (creating directories 0700) <state_dir>/spool and recover as
 * described above. Returns NULL with errno and a log line on failure. */
struct spool *spool_open(const char *state_dir);
/* The same, and hand over the held messages' metadata read while opening
 * (sorted by ID, as spool_list gives it), so start-up reads each file
 * once. The caller frees each with spool_meta_free and the array. */
struct spool_meta;
struct spool *spool_open_ex(const char *state_dir, struct spool_meta **held, size_t *nheld);
void spool_close(struct spool *s);

/* Fresh unique ID (time + counter + random; [0-9a-z] only, so it survives the
 * lower-casing of command-domain addresses). */
void spool_new_id(struct spool *s, char id[SPOOL_ID_MAX]);

/* Durably store a new held message (meta->id set by caller via
 * spool_new_id, or assigned here if empty). Returns 0 when it is on disk
 * (file and directory fsynced), -1 with errno (ENOSPC, EIO...) and nothing
 * left behind. */
int spool_hold(struct spool *s, struct spool_meta *meta, const char *msg,
               size_t len);

/* spool_hold in steps, so the file work can run on other threads and
 * several holds share one directory fsync (group commit; see holder.h):
 *   spool_hold_prepare  loop thread: assign/reserve the ID, set size
 *   spool_hold_write    any thread: incoming/ -> fsync -> close -> held/
 *   spool_hold_sync     any thread: fsync held/ (makes the renames durable)
 *   spool_hold_finish   loop thread: ok -> the message is held; else
 *                       everything the writer left is removed.
 * Only after spool_hold_sync returned 0 may ok be 1. */
int spool_hold_prepare(struct spool *s, struct spool_meta *meta, size_t len);
int spool_hold_write(struct spool *s, const struct spool_meta *meta,
                     const char *msg, size_t len);
int spool_hold_sync(struct spool *s);
void spool_hold_finish(struct spool *s, const char *id, int ok);

/* Rewrite the metadata of a held message (atomically: new file + rename).
 * The message body is copied from the existing file. */
int spool_update(struct spool *s, const struct spool_meta *meta);
/* The same on any thread (it copies the body and fsyncs: release.c runs
 * it on a writer thread): the caller knows the id is in the spool and
 * keeps every other change to it away until it returns. */
int spool_update_io(struct spool *s, const struct spool_meta *meta);

/* Read a held (or active) message: meta and/or body (either may be NULL).
 * *body is malloc'd. Returns 0 or -1 (ENOENT if not there). */
int spool_read(struct spool *s, const char *id, struct spool_meta *meta,
               char **body, size_t *len);

/* Any thread (no index, no seam): the body of held message id, read from
 * the directory dfd (spool_held_dir) and verified like spool_read. For
 * reads off the loop (the relay reads what it sends). 0 or -1/errno. */
int spool_read_body_at(int dfd, const char *id, char **body, size_t *len);
/* The held/ directory's descriptor (valid until spool_close). */
int spool_held_dir(const struct spool *s);

/* held -> active (before delivery), active -> held (delivery deferred). */
int spool_activate(struct spool *s, const char *id);
int spool_deactivate(struct spool *s, const char *id);
/* Remove for good (delivered / discarded / cancelled), from held or active,
 * and sync the directory. */
int spool_remove(struct spool *s, const char *id);
/* The same without the directory sync: spool_sync_removals() has the
 * spool's sync thread sync once for every lazy removal since the last call,
 * without waiting for it (the loop never waits for an fsync; a delivered
 * message whose removal a crash undoes is sent again: at-least-once, as
 * SMTP allows). spool_close runs the last sync and joins the thread. */
int spool_remove_lazy(struct spool *s, const char *id);
int spool_sync_removals(struct spool *s);

/* List metadata of all held messages (call after spool_open). The caller
 * frees each with spool_meta_free and the array with free. */
int spool_list(struct spool *s, struct spool_meta **out, size_t *n);

/* Group commit: hold n messages (as spool_hold each), fsync each file but
 * the held/ directory only once for all. results[i] is 0 or the errno of
 * message i (whose file is then gone). Returns 0 if all succeeded, else -1
 * with errno of the first failure. */
int spool_hold_batch(struct spool *s, struct spool_meta **metas,
                     const char **msgs, const size_t *lens, size_t n,
                     int *results);

/* Write-failure seam for tests: after `n` more successful writes, fail
 * with errno `err` (0 disables). As a filling disk does, the failing write
 * first comes back short (half its bytes, when it has 2 or more), and the
 * following write fails with `err`. */
void spool_fail_after(struct spool *s, long n, int err);

#endif
