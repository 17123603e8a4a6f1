/* imap_watch.h - see daemon/imap_watch.c (loop side) and daemon/imap_watch_worker.c
 * (rep threads; the modified UTF-7 helpers). */
#ifndef UNTILD_IMAP_WATCH_H
#define UNTILD_IMAP_WATCH_H

#include <stddef.h>
#include <time.h>

struct untild;
struct imap_watch;

/* Start from u->cfg (nothing to do when not configured: returns NULL with
 * *err = 0). Called on the loop thread after the spool, store, relay and
 * release are up. Returns NULL and sets *err = -1 on a fatal error. */
struct imap_watch *imap_watch_start(struct untild *u, int *err);
/* Config reloaded (u->cfg is new, u->ix rebuilt): re-adds the windows that
 * come from "Contact later" folders, restarts the connections whose [imap]
 * section changed, starts added sections and stops removed ones (unchanged
 * ones keep their connection). When no watcher runs (m NULL), the caller
 * uses imap_watch_start instead. */
void imap_watch_reconfigure(struct imap_watch *m);
void imap_watch_stop(struct imap_watch *m);

/* Queue msg (a complete RFC 5322 message, CRLF) for APPEND to rep's
 * notice_folder by that rep's connection thread. Loop thread. Returns 0 if
 * queued, -1 if rep has no [imap] section (or m is NULL, or ENOMEM). */
int imap_watch_append(struct imap_watch *m, const char *rep, const char *msg,
                      size_t len);

/* Exposed for tests: the end of a "Contact later" subfolder name
 * ("2027-07-01", "2027-07", "July 2027", "März 2027", "juillet 2027",
 * "julio 2027", "Q3 2027", anything when_parse takes) in tz.
 * Returns 0 and *out, or -1. Loop thread (libical). */
int imap_watch_folder_date(const char *leaf, const char *tz, time_t now,
                           time_t *out);

/* Folder names: UTF-8 (as users write them) <-> IMAP modified UTF-7 (RFC
 * 3501 5.1.3, as the server wants them). Return 0, or -1 on invalid input
 * or when out is too small. */
int imap_watch_utf8_to_mutf7(const char *in, char *out, size_t outsz);
int imap_watch_mutf7_to_utf8(const char *in, char *out, size_t outsz);

#endif
