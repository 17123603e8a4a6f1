/* imap_watch.h - see daemon/imap_watch.c. */
#ifndef UNTILD_IMAP_WATCH_H
#define UNTILD_IMAP_WATCH_H

struct untild;
struct imap_watch;

/* Start from u->cfg (nothing to do when not configured: returns NULL with
 * *err = 0). Called on the loop thread after the spool, store, relay and
 * release are up. Returns NULL and sets *err = -1 on a fatal error. */
struct imap_watch *imap_watch_start(struct untild *u, int *err);
/* Config reloaded (u->cfg is new). */
void imap_watch_reconfigure(struct imap_watch *m);
void imap_watch_stop(struct imap_watch *m);

#endif
