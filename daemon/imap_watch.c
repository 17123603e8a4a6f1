/* imap_watch.c - placeholder until the module lands: nothing configured. */
#include <stddef.h>
#include "untild/imap_watch.h"

struct imap_watch *imap_watch_start(struct untild *u, int *err)
{
    (void)u;
    *err = 0;
    return NULL;
}

void imap_watch_reconfigure(struct imap_watch *m) { (void)m; }
void imap_watch_stop(struct imap_watch *m) { (void)m; }
