/* policy.h - the pure decision: (rep, recipients, message facts, now) ->
 * per-recipient verdicts and the message-level plan. No I/O, no sockets:
 * everything it needs is passed in, so it is tested with plain calls. */
#ifndef UNTILD_POLICY_H
#define UNTILD_POLICY_H

#include <stddef.h>
#include <time.h>
#include "untild/windows.h"
#include "untild/message.h"

struct policy_cfg {
    enum action default_action;  /* for windows with ACTION_DEFAULT */
    int split_recipients;
    int release_time;            /* minutes, -1 off */
    int release_on_weekends;
    const char *timezone;        /* daemon default tz */
    const char *command_domain;
    const char *delims;
};

struct verdict {
    enum action action;          /* ALLOW, HOLD, FLAG, REJECT (never DEFAULT) */
    const struct window *w;      /* the deciding window; NULL for allow (no
                                    window, an allow window, or an override) */
    time_t quiet_until;          /* window's current quiet-until; 0 for allow */
    time_t release_at;           /* policy_release_at of the match, for every
                                    non-allow verdict; 0 for allow */
    const char *why;             /* set only by policy_message's overrides: a
                                    static string saying why a hold or flag
                                    became allow; else NULL. Nothing but the
                                    unit tests reads it today. */
};

/* Effective action of window w under cfg (resolves ACTION_DEFAULT). */
enum action policy_window_action(const struct policy_cfg *cfg,
                                 const struct window *w);

/* Release time for a hold by window match m: a recurring occurrence
 * releases at quiet_until exactly; others are aligned with
 * when_align_release in the window's tz; WHEN_NEVER stays WHEN_NEVER.
 * (A window ended by hand is gone from the index: it holds nothing.) */
time_t policy_release_at(const struct policy_cfg *cfg,
                         const struct window_match *m);

/* Verdict for one normalised recipient at RCPT time (no message yet).
 * Returns the action (REJECT is final at RCPT time). */
enum action policy_rcpt(const struct policy_cfg *cfg,
                        const struct windows *ix, const char *rcpt,
                        time_t now, struct verdict *v);

/* Seen-message oracle: does the rep reply to a message the contact sent
 * after the window was set? (IMAP watcher data). May be NULL. */
typedef int (*policy_seen_fn)(void *arg, const char *message_id,
                              const char *contact);

/* Verdicts after DATA, for n normalised recipients, given message facts:
 * first as policy_rcpt; then a hold or flag (never a reject) becomes allow
 *  - for an iMIP REPLY whose ORGANIZER is this recipient (answering the
 *    contact's own invitation): why = "reply to the contact's own invitation";
 *  - for a reply (In-Reply-To/References) to a message the quiet contact
 *    sent (seen(...) true): why = "customer re-opened the conversation".
 * rep is not used yet. out[] has n entries. */
void policy_message(const struct policy_cfg *cfg, const struct windows *ix,
                    const char *rep, const char *const *rcpts, size_t n,
                    const struct message_facts *f, policy_seen_fn seen,
                    void *seen_arg, time_t now, struct verdict *out);

/* Message-level plan from verdicts: whether anything is held, whether the
 * whole message is held (split_recipients = no and some held), and the
 * message's release time (max over held). */
struct plan {
    size_t nallow, nflag, nhold, nreject;
    int hold_whole;       /* hold every (non-rejected) recipient */
    time_t release_at;    /* max release_at among held; 0 if none */
};
void policy_plan(const struct policy_cfg *cfg, const struct verdict *v,
                 size_t n, struct plan *p);

/* Command-domain recipients (docs/DESIGN.md "Rep controls").
 * Returns CMD_NONE if rcpt is not at cfg->command_domain. */
enum cmd_kind { CMD_NONE = 0, CMD_UNTIL, CMD_RELEASE, CMD_DISCARD, CMD_STATUS,
                CMD_BAD, CMD_FOLLOWUPS };
struct command {
    enum cmd_kind kind;
    time_t until;                 /* CMD_UNTIL */
    char arg[64];                 /* release/discard ID */
};
/* rcpt is normalised; the natural forms parse relative to now in tz. */
enum cmd_kind policy_command(const struct policy_cfg *cfg, const char *rcpt,
                             time_t now, struct command *c);

#endif
