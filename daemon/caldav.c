/* caldav.c - placeholder until the module lands: nothing configured. */
#include <stddef.h>
#include "untild/caldav.h"

struct caldav *caldav_start(struct untild *u, int *err)
{
    (void)u;
    *err = 0;
    return NULL;
}

void caldav_reconfigure(struct caldav *m) { (void)m; }
void caldav_stop(struct caldav *m) { (void)m; }
