/* daemon.h - the daemon's one context: everything mutable lives here. */
#ifndef UNTILD_DAEMON_H
#define UNTILD_DAEMON_H

#include <time.h>
#include "untild/config.h"
#include "untild/policy.h"

struct loop; struct windows; struct spool; struct store; struct relay;
struct smtp_server; struct control; struct release;

struct untild {
    struct config *cfg;
    struct policy_cfg pcfg;       /* derived from cfg */
    struct windows *ix;           /* file + run-time windows */
    struct loop *loop;
    struct spool *spool;
    struct store *store;
    struct relay *relay;
    struct smtp_server *smtp;
    struct control *control;
    struct release *release;
    int test_clock;               /* --test-clock: time may be set by control */
    time_t clock_offset;          /* added to time(NULL) */
    time_t clock_fixed;           /* if non-zero, "now" is this */
};

/* The one injectable wall clock. */
time_t untild_now(const struct untild *u);

#endif
