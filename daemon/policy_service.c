/* policy_service.c - placeholder until the module lands: nothing configured. */
#include <stddef.h>
#include "untild/policy_service.h"

struct policy_service *policy_service_start(struct untild *u, int *err)
{
    (void)u;
    *err = 0;
    return NULL;
}

void policy_service_reconfigure(struct policy_service *m) { (void)m; }
void policy_service_stop(struct policy_service *m) { (void)m; }
