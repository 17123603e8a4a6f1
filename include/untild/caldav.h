/* caldav.h - see daemon/caldav.c. */
#ifndef UNTILD_CALDAV_H
#define UNTILD_CALDAV_H

struct untild;
struct caldav;

/* Start from u->cfg (nothing to do when not configured: returns NULL with
 * *err = 0). Called on the loop thread after the spool, store, relay and
 * release are up. Returns NULL and sets *err = -1 on a fatal error. */
struct caldav *caldav_start(struct untild *u, int *err);
/* Config reloaded (u->cfg is new). */
void caldav_reconfigure(struct caldav *m);
void caldav_stop(struct caldav *m);

#endif
