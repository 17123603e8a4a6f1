/* lifecycle.h - the life of a held message, as one pure function.
 *
 * A held message is in one of these states (docs/HACKING.md "The life of
 * a held message" draws the transitions):
 *
 *   HELD        a hold window covers a held recipient, or a
 *               FUTURERELEASE time is ahead: waiting for `due`
 *   DUE         nothing holds it any more: the scheduler starts delivery
 *   DELIVERING  handed to the relay (release.c knows this; never derived)
 *   DEFERRED    a delivery attempt failed temporarily: waiting for
 *               next_attempt (backoff), then DUE again
 *   RETURNED    the rep must get it back (lifetime over, or refused for
 *               good): it travels as a durable notice to the rep, kept
 *               until that notice is delivered
 *   DONE        delivered (or discarded): the spool file is gone
 *
 * The due time is DERIVED at every evaluation from three kinds of facts
 * and nothing else, in the spool path and the Postfix policy service
 * alike, so a restart from the files alone reaches the same decisions:
 *   1. the current windows of each held recipient, matched exactly as at
 *      RCPT time (most specific active window wins); only hold windows
 *      hold (an allow exception, a flag or a reject window never extends
 *      a hold); a window that ended by itself keeps holding until its
 *      aligned release (release_time, weekends); a window ended by hand is
 *      gone from the index, so it holds nothing;
 *   2. the persisted overrides: released by hand (released_at), and the
 *      client's FUTURERELEASE time (hold_until);
 *   3. the persisted retry state (attempts, next_attempt).
 * A window change can therefore never move a due time earlier than the
 * aligned release of the windows as they now stand. */
#ifndef UNTILD_LIFECYCLE_H
#define UNTILD_LIFECYCLE_H

#include <time.h>
#include "untild/policy.h"
#include "untild/spool.h"

enum held_state { HS_HELD = 0, HS_DUE, HS_DELIVERING, HS_DEFERRED, HS_RETURNED };

const char *held_state_name(enum held_state s);   /* "held", "due", ... */

/* When does the quiet period that holds normalised recipient rcpt at now
 * end (the aligned release time)? 0: nothing holds it now; WHEN_NEVER: a
 * window without end. w (may be NULL) gets the holding window,
 * quiet_until (may be NULL) its quiet period's end (> now: still quiet;
 * <= now: ended by itself, waiting for the aligned release). The one rule
 * for the spool (lifecycle_eval) and the Postfix policy service. */
time_t lifecycle_rcpt_release(const struct policy_cfg *cfg,
                              const struct windows *ix, const char *rcpt,
                              time_t now, const struct window **w, time_t *quiet_until);

struct lifecycle {
    enum held_state state;  /* HELD, DUE, DEFERRED or RETURNED */
    time_t due;             /* when the holds end (<= now: they have) */
    time_t next;            /* when to look again / start: max(due,
                               next_attempt); WHEN_NEVER: only a window
                               change can move it */
};

/* Derive the state of held message m at now (see above). */
void lifecycle_eval(const struct policy_cfg *cfg, const struct windows *ix,
                    const struct spool_meta *m, time_t now,
                    struct lifecycle *out);

/* One more input of the derivation (issue 12, cadence): a rule that may
 * hold a recipient of m beyond its windows. fn returns the earliest time
 * that recipient may be contacted (0 or <= now: nothing holds it); it
 * must itself be a function of persisted facts (the contact history, the
 * rules) and now, so the derivation stays one. Like the windows, it
 * yields to a hand release. ext NULL: lifecycle_eval. */
struct lifecycle_ext {
    time_t (*fn)(void *arg, const struct spool_meta *m, const struct spool_rcpt *r, time_t now);
    void *arg;
};
void lifecycle_eval_ext(const struct policy_cfg *cfg, const struct windows *ix,
                        const struct lifecycle_ext *ext, const struct spool_meta *m,
                        time_t now, struct lifecycle *out);

/* Retry backoff after `attempts` failed attempts: 60 s doubling to 1 h. */
time_t lifecycle_backoff(int attempts);

#endif
