/* policy_service.h - the Postfix SMTP access policy delegation service
 * (check_policy_service): see daemon/policy_service.c.
 *
 * The daemon part (start/reconfigure/stop) owns the socket on the loop and
 * the release of held Postfix queue files (postsuper -H). The protocol part
 * (parse, answer, the per-instance table) is pure and tested with plain
 * calls. */
#ifndef UNTILD_POLICY_SERVICE_H
#define UNTILD_POLICY_SERVICE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "untild/policy.h"
#include "untild/windows.h"

struct untild;
struct policy_service;

/* Start from u->cfg (nothing to do when not configured: returns NULL with
 * *err = 0). Called on the loop thread after the spool, store, relay and
 * release are up. Returns NULL and sets *err = -1 on a fatal error. */
struct policy_service *policy_service_start(struct untild *u, int *err);
/* Config reloaded (u->cfg is new): rebinds if the listen address changed. */
void policy_service_reconfigure(struct policy_service *m);
/* Re-derive when the messages held in Postfix's hold queue are due, and
 * release what is due now. windows_changed: every held message (a window
 * was added, ended, reloaded, synced); otherwise only those whose next
 * change of state has come (the clock moved). m may be NULL. Call it
 * wherever release_kick is called. */
void policy_service_kick(struct policy_service *m, int windows_changed);
void policy_service_stop(struct policy_service *m);

/* ---- protocol (pure) ---------------------------------------------------- */

#define PS_MAX_REQUEST 65536   /* bytes per request, empty line included */
#define PS_VALUE_MAX 1024      /* longest attribute value we keep */
#define PS_QUEUE_ID_MAX 64

/* The attributes untild uses; every other attribute is ignored. */
struct ps_request {
    char request[32];              /* must be "smtpd_access_policy" */
    char protocol_state[32];       /* RCPT, DATA, END-OF-MESSAGE... */
    char instance[128];
    char queue_id[PS_QUEUE_ID_MAX];
    char sender[PS_VALUE_MAX];
    char recipient[PS_VALUE_MAX];
    char sasl_username[256];
};

/* Parse one request: "name=value\n" lines, without the closing empty line
 * (len bytes at buf). Unknown attributes are ignored; a line without '=',
 * a NUL byte or an over-long value of a kept attribute is an error.
 * Returns 0 or -1. */
int policy_service_parse(const char *buf, size_t len, struct ps_request *r);

/* Per-instance state: the recipients of one message seen at RCPT and their
 * verdicts, kept until END-OF-MESSAGE or expiry. */
struct ps_table;
struct ps_table *policy_service_table_new(size_t max_entries, int64_t ttl_ms);
void policy_service_table_free(struct ps_table *t);
size_t policy_service_table_count(const struct ps_table *t);
/* Drop entries not touched for ttl_ms before now_ms. */
void policy_service_table_expire(struct ps_table *t, int64_t now_ms);

/* One recipient's verdict as recorded at RCPT. */
struct ps_rcpt {
    char *norm;
    char window_id[WINDOW_ID_MAX];
    char *reason;                  /* window reason, may be NULL */
    enum action action;            /* ACTION_HOLD or ACTION_FLAG */
};

/* What the caller must record after an answer (audit, store). */
enum ps_event_kind { PS_EV_NONE, PS_EV_REJECTED, PS_EV_MESSAGE };
struct ps_event {
    enum ps_event_kind kind;
    /* PS_EV_REJECTED: */
    char rcpt[PS_VALUE_MAX];
    char window_id[WINDOW_ID_MAX];
    char *reason;                  /* owned; may be NULL */
    /* PS_EV_MESSAGE (END-OF-MESSAGE of an instance with held or flagged
     * recipients): held != 0 means the answer is HOLD. */
    int held;
    time_t release_at;             /* max over held recipients */
    time_t quiet_until;            /* latest end of their windows */
    char queue_id[PS_QUEUE_ID_MAX];
    struct ps_rcpt *rcpts;         /* owned */
    size_t nrcpts;
};
void policy_service_event_free(struct ps_event *ev);

/* What a message held in Postfix's hold queue waits for, derived from the
 * windows as they now stand (nothing else decides; a restart from the
 * stored record reaches the same result):
 *  - a held recipient is covered when the window matching it now (the most
 *    specific active one, exactly as at RCPT) is a hold window; an allow,
 *    flag or reject window there does not keep the message;
 *  - covered: due = the latest aligned release (policy_release_at) of the
 *    covering windows; quiet_until = the latest of their ends;
 *  - not covered: due = the latest aligned release still ahead of hold
 *    windows of these recipients that have ended (the release_time
 *    alignment after a window's end); and when the clock has passed the
 *    end last seen (prev_quiet_until: the window ran out by itself) not
 *    before prev_due either. A window ended by hand, removed or cut short
 *    before that end thus releases at once, but never before the aligned
 *    release of the windows as they now stand.
 * due <= now means "release now". */
struct ps_hold_eval {
    int covered;
    time_t due;
    time_t quiet_until;
};
void policy_service_evaluate(const struct policy_cfg *cfg, const struct windows *ix,
                             const char *const *rcpts, size_t n, time_t now,
                             time_t prev_due, time_t prev_quiet_until,
                             struct ps_hold_eval *out);

/* Is q a Postfix queue id we are willing to hand to postsuper
 * (1..PS_QUEUE_ID_MAX-1 characters of [0-9A-Za-z])? */
int policy_service_queue_id_ok(const char *q);

/* Answer one request. cfg/ix/now as for policy_rcpt; tz formats times in
 * replies; now_ms (monotonic) ages the table. Writes the whole answer
 * ("action=...\n\n") into ans. Returns 0, or -1 on an internal error (the
 * caller then answers nothing and closes: Postfix applies its default
 * action). *ev says what to record; free it with policy_service_event_free.
 *
 * RCPT: reject -> "550 5.7.1 ..." (REJECT with an explicit code);
 * flag -> "PREPEND X-Untild: ...";
 * hold -> remembered for the instance, answer DUNNO; allow -> DUNNO.
 * END-OF-MESSAGE: an instance with held recipients -> "HOLD <reason>"
 * (every recipient of the message is held by Postfix). Anything else:
 * DUNNO. */
int policy_service_answer(struct ps_table *t, const struct policy_cfg *cfg,
                          const struct windows *ix, const char *tz,
                          const struct ps_request *r, time_t now,
                          int64_t now_ms, char *ans, size_t anssz,
                          struct ps_event *ev);

#endif
