/* policy_service.h - see daemon/policy_service.c. */
#ifndef UNTILD_POLICY_SERVICE_H
#define UNTILD_POLICY_SERVICE_H

struct untild;
struct policy_service;

/* Start from u->cfg (nothing to do when not configured: returns NULL with
 * *err = 0). Called on the loop thread after the spool, store, relay and
 * release are up. Returns NULL and sets *err = -1 on a fatal error. */
struct policy_service *policy_service_start(struct untild *u, int *err);
/* Config reloaded (u->cfg is new). */
void policy_service_reconfigure(struct policy_service *m);
void policy_service_stop(struct policy_service *m);

#endif
