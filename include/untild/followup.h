/* followup.h - follow up on the promised day (issue 12).
 *
 * When a one-off window (no rrule, with an end, not an allow exception)
 * ends by itself, the rep is reminded at the window's aligned release
 * time (policy_release_at: release_time and the weekend rule, in the
 * window's zone), once: "Follow up with Jane today", threaded with the
 * message that set the window. A window ended by hand is gone from the
 * index and reminds nobody.
 *
 * Who: the window's owner; for a window without one, the reps held,
 * flagged or rejected for that contact while it was on; plus [followup]
 * team. Each reminder is recorded in the store (window id + end) after it
 * is queued, so a restart never sends a second one (a crash between the
 * two may: at-least-once, like the rest of the spool).
 *
 * Scheduling: one timer, set for the earliest follow-up still ahead, and
 * a re-scan on followup_kick (window change, clock moved) and at least
 * once an hour. Loop thread only. */
#ifndef UNTILD_FOLLOWUP_H
#define UNTILD_FOLLOWUP_H

#include <stddef.h>
#include <time.h>
#include "untild/policy.h"
#include "untild/windows.h"

struct untild;
struct followup;
struct strbuf;

/* Pure: when is window w followed up? Its aligned release time, or 0
 * when w never gets a follow-up (recurring, no end, allow). */
time_t followup_due_at(const struct policy_cfg *cfg, const struct window *w);

/* Pure: the display name given to addr in an address-list header value
 * ("Jane Doe <jane@acme.com>, bob@x"), unquoted, into out. Returns 1 if
 * there is one, else 0 (out ""). addr compares case-insensitively. */
int followup_display_name(const char *header, const char *addr, char *out, size_t outsz);

struct followup *followup_new(struct untild *u);
void followup_free(struct followup *f);

/* Windows changed, or the clock moved: look again (on the next loop
 * turn). f may be NULL. */
void followup_kick(struct followup *f);

/* msg (len bytes) set window window_id for contact (gate: until-DATE@):
 * the display name its To or Cc gives the contact is remembered for the
 * reminder's "Follow up with NAME". */
void followup_note_name_msg(struct untild *u, const char *window_id, const char *contact,
                            const char *msg, size_t len);

/* untilctl followups [--days N]: the follow-ups due from now to N days
 * ahead (default 7), of rep (NULL: everyone's, for admins). Returns 0, or
 * 2 (usage) with the message in b. */
int followup_list(struct untild *u, int argc, char **argv, const char *rep, int json,
                  struct strbuf *b);

/* The listing itself, into b (the digest uses it). */
void followup_list_into(struct untild *u, const char *rep, int days, int json, struct strbuf *b);

/* followups@<command_domain>: mail rep the same list (7 days). */
void followup_mail_list(struct untild *u, const char *rep);

#endif
