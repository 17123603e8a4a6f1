/* contacts.h - the contact history and the cadence rule applied to it
 * (issue 12): the daemon side of cadence.h.
 *
 * Every contact untild sees is recorded (time, recipient, rep, channel):
 * mail relayed by the gate ("gate"), held mail as its delivery starts
 * ("release"; forgotten again for a recipient it did not reach), mail
 * found in an IMAP Sent folder that went around the gate ("imap-sent"),
 * invitations in the rep's calendar ("caldav", once per object and
 * SEQUENCE).
 *
 * The rule ([cadence]) is applied at the gate to recipients no window
 * holds: hold (the spool recipient is marked window_id "cadence", and the
 * due time is derived through lifecycle_eval_ext with contacts_hold),
 * flag (sent with X-Untild), or reject (550 at RCPT time). Exempt: the
 * [cadence] exempt list, the rep's colleagues (the rep's own domain), a
 * calendar REPLY to the contact's invitation, a reply to a message the
 * contact sent (store_seen_has). Loop thread only. */
#ifndef UNTILD_CONTACTS_H
#define UNTILD_CONTACTS_H

#include <stddef.h>
#include <time.h>
#include "untild/cadence.h"
#include "untild/lifecycle.h"
#include "untild/message.h"
#include "untild/policy.h"
#include "untild/spool.h"

struct untild;
struct strbuf;

#define CONTACTS_WINDOW_ID "cadence"   /* spool_rcpt.window_id of a cadence hold */

/* Record one contact of rcpt (normalised). msg_id: a Message-ID or spool
 * id, may be NULL. */
void contacts_record(struct untild *u, const char *rcpt, const char *rep, const char *channel,
                     const char *msg_id, time_t t);

/* An invitation from rep to att in the rep's calendar (CalDAV watcher):
 * counts once per calendar object and SEQUENCE (key, e.g. "href|seq"). */
void contacts_calendar(struct untild *u, const char *rep, const char *att, const char *key, time_t t);

/* A message from `from` reached rep's inbox (IMAP watcher): a reply to
 * it is exempt (recorded only while a cadence rule is configured). */
void contacts_inbound(struct untild *u, const char *from, const char *rep, const char *message_id,
                      time_t t);

/* Held message m's delivery starts: its held recipients count from now
 * (so a second message due at the same moment waits its turn). */
void contacts_delivery_started(struct untild *u, const struct spool_meta *m, time_t t);
/* ... and ended: recipients it did not reach (still held, or failed) are
 * forgotten again. */
void contacts_delivery_ended(struct untild *u, const struct spool_meta *m);

/* The rule for rcpt sent by rep (1, *r filled) or none (0: cadence off,
 * exempt list, a colleague). */
int contacts_rule(const struct untild *u, const char *rep, const char *rcpt, struct cadence_rule *r);

/* When may rcpt next be contacted under r (contacts made by message
 * skip_id, if not NULL, are not counted)? why (may be NULL) gets the
 * reason when that is after now. */
time_t contacts_next_allowed(struct untild *u, const struct cadence_rule *r, const char *rcpt,
                             const char *skip_id, time_t now, char *why, size_t whysz);

/* Gate, after DATA: allow verdicts of rcpts[n] become cadence holds or
 * flags where the rule says so (the verdicts' w points at a pseudo window
 * "cadence" owned here, valid until the next call). */
void contacts_gate_verdicts(struct untild *u, const char *rep, const struct message_facts *f,
                            const char *const *rcpts, size_t n, struct verdict *v, time_t now);
/* Gate, at RCPT: 1 (reply written) if a reject rule refuses rcpt now. */
int contacts_gate_rcpt(struct untild *u, const char *rep, const char *rcpt, time_t now,
                       char *reply, size_t replysz);

/* lifecycle_ext for the release scheduler (arg: struct untild *); NULL
 * while no rule is configured. */
const struct lifecycle_ext *contacts_lifecycle(struct untild *u);

/* untilctl cadence list | set WHO KEY=VALUE... | clear WHO (set and
 * clear: admins). Returns an untilctl exit status: 0, 1 error, 2 usage,
 * 4 denied, 5 not found. */
int contacts_cmd(struct untild *u, int argc, char **argv, int admin, const char *rep, struct strbuf *b,
                 int json);

/* untilctl check WHO: the last contacts and the next time one is allowed
 * (nothing while no rule applies): lines of text into b, or with json
 * (non-NULL) a member "cadence":{...} of that object. Returns -1 if
 * building the JSON ran out of memory, else 0. */
struct json_object;
int contacts_check(struct untild *u, const char *rcpt, time_t now, struct strbuf *b, struct json_object *json);

#endif
