/* gate.c - the SMTP gate: what happens to each recipient of a message.
 *
 * RCPT: reject windows answer 550 5.7.1 at once; everything else is decided
 * after DATA, when headers and iMIP parts are known. DATA: the held part
 * is spooled and fsynced first, then the allowed part is relayed
 * synchronously; if the relay fails the spool entry is rolled back, so the
 * single reply the client gets is never a lie. Command-domain recipients
 * (until-DATE@, release-ID@, discard-ID@, status@) act here and are never
 * relayed; they take effect only once the message itself went through. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "untild/gate.h"
#include "untild/holder.h"
#include "untild/daemon.h"
#include "untild/contacts.h"
#include "untild/followup.h"
#include "untild/address.h"
#include "untild/auth.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/message.h"
#include "untild/notice.h"
#include "untild/relay.h"
#include "untild/lifecycle.h"
#include "untild/release.h"
#include "untild/smtp_server.h"
#include "untild/spool.h"
#include "untild/store.h"
#include "untild/strbuf.h"
#include "untild/when.h"
#include "untild/windows.h"
#include "untild/workq.h"

#define FUTURERELEASE_MAX (30 * 86400)   /* advertised in EHLO */

/* One recipient of the message being decided: everything the plan knows
 * about it, in one place, from RCPT TO to the upstream's answer. */
enum fate { FATE_NONE = 0, FATE_HELD, FATE_RELAYED };

struct grcpt {
    const char *addr;           /* as given in RCPT TO (the session's memory) */
    const char *params;         /* its RCPT parameters (DSN), or NULL */
    char norm[ADDR_MAX];        /* normalised */
    int is_cmd;                 /* a command-domain address: cmd says what */
    struct command cmd;
    int dropped;                /* a CANCEL is not sent to it: no part in the plan */
    struct verdict v;           /* the policy's verdict (real recipients) */
    enum fate fate;
    char *header;               /* X-Untild header of its copy (flagged), or NULL */
    int code;                   /* the upstream's answer (relayed) */
};

/* Relayed recipients go out in groups, one upstream transaction each: the
 * unflagged ones together, and each flagged recipient alone, so the
 * X-Untild header naming a quiet contact reaches only that contact's copy
 * (it would tell the other recipients who asked not to be contacted). */
struct rgroup {
    struct txn *t;
    struct grcpt **rc;          /* its recipients (a slice of txn.relay) */
    size_t n;
    const char **addrs, **params; /* the relay job's arrays, n each */
    const char *prefix;         /* X-Untild header or NULL */
    int ok, code;
    char text[512];
};

/* The plan for one message. */
struct txn {
    struct untild *u;
    struct smtp_session *s;
    char rep[ADDR_MAX];
    time_t now;
    struct message_facts f;
    struct grcpt *rc;           /* every recipient, in RCPT order */
    size_t nrc;
    const char **real;          /* norms of the non-command recipients */
    size_t nreal;
    struct grcpt **relay;       /* relayed ones: unflagged first, then flagged */
    size_t nrelay;
    struct spool_meta held;
    int spooled;
    time_t release_at;
    struct rgroup *groups;      /* one upstream transaction each */
    size_t ngroups, pending;
    const char *msg;            /* the session's message (valid until smtp_data_done) */
    size_t len;
    const char *mail_from, *mail_params;
    const struct smtp_envelope *env;   /* the session's (valid until smtp_data_done) */
    char *delims;               /* the parse's copy: a reload may replace the config */
    size_t max_cal;             /* [smtp] max_calendar_part, copied likewise */
    int parse_failed;           /* out of memory while parsing */
    char missing[WHEN_MISSING_MAX][64]; /* zone names the worker could not resolve */
    size_t nmissing;
    int reparsed;
    struct strbuf refused;      /* recipients the upstream refused for good */
    size_t ndeferred;           /* recipients spooled for retry */
    struct strbuf flagged;      /* "addr (reason)" list for the notice */
    struct strbuf heldtxt;      /* reply text for held recipients */
    struct strbuf cancelled;    /* ids of cancelled held invitations */
    char supersede[16][SPOOL_ID_MAX]; /* held invitations this CANCEL/REQUEST replaces */
    size_t nsupersede;
};

const char *gate_rep(const struct untild *u, const struct smtp_session *s)
{
    const char *user = smtp_session_user(s);
    if (user && *user)
        return user;
    return u->cfg->owner;
}

/* Normalise a recipient; command addresses are normalised without
 * sub-address delimiters so "until-2027-07-01@" survives a "-" delimiter.
 * facts (may be NULL): what address_normalize_ex found (routed, literal). */
static int norm_rcpt(const struct untild *u, const char *addr, char *out, size_t outsz,
                     unsigned *facts, const char **why)
{
    if (address_normalize_ex(addr, u->pcfg.delims, out, outsz, facts, why) < 0)
        return -1;
    const char *d = address_domain(out);
    if (d && u->pcfg.command_domain && !strcasecmp(d, u->pcfg.command_domain))
        return address_normalize(addr, "", out, outsz, why);
    return 0;
}

/* A recipient an upstream could rewrite into an address we cannot see
 * (percent hack, bang path, quoted '@') or that names no domain at all
 * (address literal) is refused: it would pass unmatched (DESIGN.md
 * "Matching"). Returns 0, or 553 with the reply written. */
static int refuse_unmatchable(const char *rcpt, int rc, unsigned facts, const char *norm,
                              char *reply, size_t replysz)
{
    if (facts & ADDRESS_ROUTED) {
        if (rc == 0)
            snprintf(reply, replysz, "553 5.1.3 %s routes on to %s (percent hack, bang path or "
                     "quoted '@'): not accepted; address %s directly", rcpt, norm, norm);
        else
            snprintf(reply, replysz, "553 5.1.3 %s is a routed address (percent hack, bang path "
                     "or quoted '@'): not accepted", rcpt);
    } else if (rc == 0 && (facts & ADDRESS_LITERAL)) {
        snprintf(reply, replysz, "553 5.1.3 %s: address literals are not accepted (no way to "
                 "tell whom they reach); use the domain name", rcpt);
    } else {
        return 0;
    }
    log_info("gate: refused recipient %s: %s", rcpt,
             facts & ADDRESS_ROUTED ? "routed address" : "address literal");
    return 553;
}

static int seen_fn(void *arg, const char *message_id, const char *contact)
{
    struct untild *u = arg;
    return store_seen_has(u->store, message_id, contact) == 1;
}

/* --- iMIP */

static const char WHY_REPLY_UNSEEN[] =
    "calendar reply to an invitation untild has not seen in your mailbox or calendar";

/* Say what the calendar part(s) came to, as decided (issue 11.16, 18.2). */
static void imip_log(const struct txn *t, unsigned long sid)
{
    const struct message_facts *f = &t->f;
    static const char *const mname[] = { "none", "REQUEST", "REPLY", "CANCEL", "other" };
    const char *method = (unsigned)f->method < 5 ? mname[f->method] : "other";
    switch (f->ical_part) {
    case MSG_ICAL_TOO_LARGE:
        log_warn("gate: session %lu: calendar part(s) of %zu bytes exceed max_calendar_part (%zu): "
                 "not parsed; the message is plain mail (holds and flags apply as to any mail)",
                 sid, f->ical_size, t->u->cfg->max_calendar_part);
        break;
    case MSG_ICAL_UNUSABLE:
        log_warn("gate: session %lu: calendar part is not iCalendar; treated as plain mail", sid);
        break;
    case MSG_ICAL_USED:
        if (f->ical_errors)
            log_warn("gate: session %lu: iCalendar %s (UID %s) used as far as it could be read: "
                     "%d error(s) in what untild decides on (first: %s)", sid, method,
                     f->ical_uid ? f->ical_uid : "none", f->ical_errors, f->ical_error_prop);
        else if (f->ical_ignored)
            log_debug("gate: session %lu: iCalendar %s: %d complaint(s) about properties untild "
                      "does not read (e.g. an empty LOCATION:); ignored", sid, method, f->ical_ignored);
        break;
    default:
        break;
    }
}

/* Verdicts after DATA. A calendar REPLY lifts a hold on its organizer only
 * with evidence of the invitation: the IMAP or CalDAV watcher saw one with
 * this UID from this organizer for this rep (store_invite_has). Without
 * it, anyone could lift a hold with a made-up .ics: the reply is then
 * decided as plain mail, and a hold on the organizer becomes a flag (sent,
 * recorded, the rep told), never a silent allow (issue 11.13). */
static void imip_verdicts(struct txn *t, const char *const *normp, size_t n, struct verdict *vr)
{
    struct untild *u = t->u;
    const struct message_facts *f = &t->f;
    if (f->method != IMIP_REPLY || !f->organizer) {
        policy_message(&u->pcfg, u->ix, t->rep, normp, n, f, seen_fn, u, t->now, vr);
        return;
    }
    char rep[ADDR_MAX];
    if (address_normalize(t->rep, u->pcfg.delims, rep, sizeof rep, NULL) < 0)
        snprintf(rep, sizeof rep, "%s", t->rep);
    if (f->ical_uid && store_invite_has(u->store, rep, f->ical_uid, f->organizer) == 1) {
        policy_message(&u->pcfg, u->ix, t->rep, normp, n, f, seen_fn, u, t->now, vr);
        return;
    }
    struct message_facts plain = *f;    /* shallow: read only, not freed */
    plain.method = IMIP_OTHER;
    policy_message(&u->pcfg, u->ix, t->rep, normp, n, &plain, seen_fn, u, t->now, vr);
    for (size_t i = 0; i < n; i++) {
        if ((vr[i].action != ACTION_HOLD && vr[i].action != ACTION_FLAG)
            || strcasecmp(normp[i], f->organizer))
            continue;
        vr[i].action = ACTION_FLAG;
        vr[i].why = WHY_REPLY_UNSEEN;
        log_info("gate: %s: calendar REPLY (UID %s) to %s, whose invitation untild has not seen: "
                 "sent flagged", t->rep, f->ical_uid ? f->ical_uid : "none", normp[i]);
    }
}

/* FUTURERELEASE (RFC 4865): HOLDFOR=seconds or HOLDUNTIL=date-time.
 * Returns 0 and *until (0 if absent), or -1 on a bad value. */
static int parse_holduntil(const char *params, time_t now, time_t *until)
{
    *until = 0;
    if (!params)
        return 0;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", params);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (!strncasecmp(t, "HOLDFOR=", 8)) {
            char *end;
            long long v = strtoll(t + 8, &end, 10);
            if (*end || end == t + 8 || v < 0 || v > FUTURERELEASE_MAX)
                return -1;
            *until = now + (time_t)v;
        } else if (!strncasecmp(t, "HOLDUNTIL=", 10)) {
            char err[128];
            time_t v;
            if (when_parse(t + 10, "UTC", now, &v, err, sizeof err) < 0 || v == WHEN_NEVER
                || v > now + FUTURERELEASE_MAX)
                return -1;
            *until = v;
        }
    }
    return 0;
}

static int gate_mail(void *arg, struct smtp_session *s, const char *from,
                     const char *params, char *reply, size_t replysz)
{
    struct untild *u = arg;
    time_t hu;
    (void)from;
    if (!gate_rep(u, s)) {
        snprintf(reply, replysz, "530 5.7.0 Authentication required");
        return 530;
    }
    if (parse_holduntil(params, untild_now(u), &hu) < 0) {
        snprintf(reply, replysz, "501 5.5.4 Bad HOLDFOR/HOLDUNTIL value (at most %d seconds ahead)",
                 FUTURERELEASE_MAX);
        return 501;
    }
    return 0;
}

static void fmt_reject(struct untild *u, const char *rcpt, const struct verdict *v,
                       char *reply, size_t replysz)
{
    char t[64];
    when_format(v->quiet_until, v->w && v->w->tz ? v->w->tz : u->cfg->timezone, t, sizeof t);
    snprintf(reply, replysz, "550 5.7.1 %s is not to be contacted until %s%s%s%s", rcpt, t,
             v->w && v->w->reason ? " (" : "", v->w && v->w->reason ? v->w->reason : "",
             v->w && v->w->reason ? ")" : "");
}

static int gate_rcpt(void *arg, struct smtp_session *s, const char *rcpt,
                     const char *params, char *reply, size_t replysz)
{
    struct untild *u = arg;
    char norm[ADDR_MAX];
    const char *why = NULL;
    struct verdict v;
    time_t now = untild_now(u);
    unsigned facts = 0;
    (void)params;
    int nrc = norm_rcpt(u, rcpt, norm, sizeof norm, &facts, &why);
    if (refuse_unmatchable(rcpt, nrc, facts, norm, reply, replysz))
        return 553;
    if (nrc < 0) {
        snprintf(reply, replysz, "501 5.1.3 Bad recipient address syntax: %s", why ? why : "invalid");
        return 501;
    }
    struct command c;
    enum cmd_kind k = policy_command(&u->pcfg, norm, now, &c);
    if (k == CMD_BAD) {
        snprintf(reply, replysz, "550 5.1.1 Unknown command address %s", norm);
        return 550;
    }
    if (k != CMD_NONE)
        return 0;
    if (policy_rcpt(&u->pcfg, u->ix, norm, now, &v) == ACTION_REJECT) {
        fmt_reject(u, rcpt, &v, reply, replysz);
        store_audit(u->store, &(struct audit_rec){ now, "rejected", gate_rep(u, s), norm,
                    v.w ? v.w->id : NULL, NULL, v.w ? v.w->reason : NULL });
        return 550;
    }
    if (v.action == ACTION_ALLOW && contacts_gate_rcpt(u, gate_rep(u, s), norm, now, reply, replysz))
        return 550;
    return 0;
}

static void txn_free(struct txn *t)
{
    message_facts_free(&t->f);
    free(t->delims);
    spool_meta_free(&t->held);
    for (size_t i = 0; i < t->nrc; i++)
        free(t->rc[i].header);
    free(t->rc);
    free(t->real);
    free(t->relay);
    for (size_t i = 0; i < t->ngroups; i++) {
        free(t->groups[i].addrs);
        free(t->groups[i].params);
    }
    free(t->groups);
    sb_free(&t->refused);
    sb_free(&t->flagged);
    sb_free(&t->heldtxt);
    sb_free(&t->cancelled);
    free(t);
}

/* Status summary for the rep: their windows and held mail. */
struct status_ctx { struct strbuf *b; const char *rep; const char *tz; };

static int status_window(const struct window *w, void *arg)
{
    struct status_ctx *c = arg;
    char t[64];
    if (w->owner && c->rep && strcasecmp(w->owner, c->rep))
        return 0;
    sb_printf(c->b, "  %-10s ", w->id);
    for (size_t i = 0; i < w->nwho; i++)
        sb_printf(c->b, "%s%s", i ? "," : "", w->who[i]);
    sb_printf(c->b, "  until %s  %s\n", when_format(w->until, w->tz ? w->tz : c->tz, t, sizeof t),
              w->reason ? w->reason : "");
    return 0;
}

/* A status reply lists at most this many held messages: a rep with
 * thousands held gets a mail that can be read, and the loop derives that
 * many states, not the whole queue's. */
#define STATUS_MAX 200

static void send_status(struct untild *u, const char *rep)
{
    struct strbuf b = { 0 };
    struct status_ctx c = { &b, rep, u->cfg->timezone };
    const char *dom = u->cfg->command_domain;
    char t[64];
    sb_puts(&b, "Your do-not-contact windows:\n");
    windows_foreach(u->ix, status_window, &c);
    sb_puts(&b, "\nYour held messages:\n");
    /* The rep's entries are picked by the stored facts (release_meta, no
     * derivation); only those listed are derived, at most STATUS_MAX. */
    size_t listed = 0, more = 0;
    for (size_t i = 0; i < release_count(u->release); i++) {
        const struct spool_meta *m = release_meta(u->release, i);
        struct release_view v;
        if (!m || !m->rep || strcasecmp(m->rep, rep))
            continue;
        if (listed == STATUS_MAX) {
            more++;
            continue;
        }
        if (release_view(u->release, m->id, &v) < 0)
            continue;
        listed++;
        sb_printf(&b, "  %s  until %s  %s\n    release: mailto:release-%s@%s\n    discard: mailto:discard-%s@%s\n",
                  m->id, when_format(v.release_at, u->cfg->timezone, t, sizeof t),
                  m->subject ? m->subject : "(no subject)", m->id, dom, m->id, dom);
    }
    if (more)
        sb_printf(&b, "  ... and %zu more, not listed here (at most %d are; an admin's "
                  "\"untilctl held list\" pages through all)\n", more, STATUS_MAX);
    notice_send(u, NOTICE_STATUS, rep, b.p ? b.p : "", NULL, 0);
    sb_free(&b);
}

/* Run the command-domain actions once the message itself is settled. */
static void run_commands(struct txn *t, struct strbuf *reply)
{
    struct untild *u = t->u;
    for (size_t i = 0; i < t->nrc; i++) {
        if (!t->rc[i].is_cmd)
            continue;
        struct command *c = &t->rc[i].cmd;
        char when[64];
        switch (c->kind) {
        case CMD_UNTIL:
            for (size_t j = 0; j < t->nreal; j++) {
                struct window w = { 0 };
                char *who[1] = { (char *)t->real[j] };
                w.who = who;
                w.nwho = 1;
                w.until = c->until;
                w.action = ACTION_DEFAULT;
                w.reason = t->f.subject;
                w.owner = t->rep;
                w.source = WSRC_RUNTIME;
                w.created = t->now;
                w.tz = u->cfg->timezone;
                w.duration = 86400;
                if (store_window_add(u->store, &w) < 0 || !windows_add(u->ix, &w)) {
                    log_error("gate: cannot add window for %s", who[0]);
                    continue;
                }
                store_audit(u->store, &(struct audit_rec){ t->now, "window-added", t->rep, who[0],
                            w.id, t->f.message_id, w.reason });
                followup_note_name_msg(u, w.id, who[0], t->msg, t->len);
                followup_kick(u->followup);     /* its calendar item, if any */
                sb_printf(reply, "; window %s for %s until %s", w.id, who[0],
                          when_format(c->until, u->cfg->timezone, when, sizeof when));
            }
            break;
        case CMD_RELEASE:
        case CMD_DISCARD: {
            time_t at;
            const struct spool_meta *m = release_find(u->release, c->arg, &at);
            if (!m) {
                sb_printf(reply, "; no held message %s", c->arg);
            } else if (!m->rep || strcasecmp(m->rep, t->rep)) {
                store_audit(u->store, &(struct audit_rec){ t->now, "denied", t->rep, NULL, NULL,
                            c->arg, c->kind == CMD_RELEASE ? "release by command address" :
                            "discard by command address" });
                sb_printf(reply, "; held message %s is not yours", c->arg);
            } else if (c->kind == CMD_RELEASE) {
                release_now(u->release, c->arg, t->rep, "release command address");
                sb_printf(reply, "; released %s", c->arg);
            } else {
                if (release_discard(u->release, c->arg, t->rep, "discarded") == -2)
                    sb_printf(reply, "; too late to discard %s: it is being delivered", c->arg);
                else
                    sb_printf(reply, "; discarded %s", c->arg);
            }
            break;
        }
        case CMD_STATUS:
            send_status(u, t->rep);
            sb_puts(reply, "; status sent");
            break;
        case CMD_FOLLOWUPS:
            followup_mail_list(u, t->rep);
            sb_puts(reply, "; follow-ups sent");
            break;
        default:
            break;
        }
    }
}

/* Everything went through: record, track, tell, reply. */
static void txn_finish_ok(struct txn *t, const char *upstream_text)
{
    struct untild *u = t->u;
    struct strbuf reply = { 0 };
    char when[64];

    if (t->spooled) {
        if (release_track(u->release, &t->held) < 0)
            log_error("gate: cannot track held message %s (it is on disk; restart picks it up)",
                      t->held.id);
        for (size_t i = 0; i < t->held.nrcpts; i++)
            store_audit(u->store, &(struct audit_rec){ t->now, "held", t->rep, t->held.rcpts[i].norm,
                        t->held.rcpts[i].window_id, t->held.id, t->held.rcpts[i].reason });
        /* The "held" rows name the spool id; this one maps the Message-ID
         * to it, so the IMAP watcher knows the Sent copy went through the
         * gate even after the message was released or discarded. */
        if (t->held.message_id)
            store_audit(u->store, &(struct audit_rec){ t->now, "held-msgid", t->rep, NULL, NULL,
                        t->held.message_id, t->held.id });
        struct strbuf nb = { 0 };
        const char *dom = u->cfg->command_domain;
        sb_printf(&nb, "untild is holding your message \"%s\" until %s.\n\n"
                  "Send it now:  mailto:release-%s@%s\nDiscard it:   mailto:discard-%s@%s\n\n"
                  "Recipients held:\n",
                  t->held.subject ? t->held.subject : "(no subject)",
                  when_format(t->release_at, u->cfg->timezone, when, sizeof when),
                  t->held.id, dom, t->held.id, dom);
        /* One a line: a list of hundreds must stay within RFC 5322. */
        for (size_t i = 0; i < t->held.nrcpts; i++) {
            const struct spool_rcpt *hr = &t->held.rcpts[i];
            /* held_add_rcpt records the window (or "cadence") only for a
             * recipient held for itself */
            if (!hr->window_id)
                sb_printf(&nb, "  %s (with the rest of the message)\n", hr->norm);
            else
                sb_printf(&nb, "  %s%s%s%s\n", hr->norm, hr->reason ? " (" : "",
                          hr->reason ? hr->reason : "", hr->reason ? ")" : "");
        }
        notice_send(u, NOTICE_HELD, t->rep, nb.p ? nb.p : "",
                    NULL, 0);
        sb_free(&nb);
    }
    for (size_t i = 0; i < t->nsupersede; i++) {
        const char *id = t->supersede[i];
        /* release_drop_rcpts returns how many it dropped; discard 0 */
        int ok = t->f.method == IMIP_CANCEL
            ? release_drop_rcpts(u->release, id, t->real, t->nreal, t->rep,
                                 "cancelled") > 0
            : release_discard(u->release, id, t->rep, "superseded") == 0;
        if (ok)
            sb_printf(&t->cancelled, "%s%s", t->cancelled.len ? ", " : "", id);
    }
    if (t->flagged.len) {
        struct strbuf nb = { 0 };
        sb_printf(&nb, "Your message \"%s\" was sent, but these recipients asked not to be contacted yet:\n%s\n",
                  t->f.subject ? t->f.subject : "(no subject)", t->flagged.p);
        notice_send(u, NOTICE_FLAGGED, t->rep, nb.p, NULL, 0);
        sb_free(&nb);
    }
    if (t->refused.len)
        notice_send(u, NOTICE_FAILED, t->rep, t->refused.p, NULL, 0);

    if (t->spooled && t->nrelay)
        sb_printf(&reply, "250 2.0.0 %s; held until %s: %s", upstream_text ? upstream_text : "Ok",
                  when_format(t->release_at, u->cfg->timezone, when, sizeof when),
                  t->heldtxt.p ? t->heldtxt.p : "");
    else if (t->spooled)
        sb_printf(&reply, "250 2.0.0 Held until %s: %s",
                  when_format(t->release_at, u->cfg->timezone, when, sizeof when),
                  t->heldtxt.p ? t->heldtxt.p : "");
    else if (t->nrelay)
        sb_printf(&reply, "250 %s", upstream_text && *upstream_text ? upstream_text : "2.0.0 Ok");
    else if (t->cancelled.len)
        sb_printf(&reply, "250 2.0.0 Cancelled held invitation %s; nothing sent", t->cancelled.p);
    else
        sb_puts(&reply, "250 2.0.0 Done");
    /* appended to the reply above, never a second "250" glued to it */
    if (t->cancelled.len && (t->nrelay || t->spooled))
        sb_printf(&reply, "; cancelled held invitation %s", t->cancelled.p);
    if (t->ndeferred)
        sb_printf(&reply, "; %zu recipient(s) deferred by the upstream, untild retries", t->ndeferred);
    run_commands(t, &reply);
    if (reply.len > 900) {   /* keep the reply line within RFC 5321's limit */
        reply.len = 900;
        reply.p[900] = '\0';
    }
    smtp_data_done(t->s, reply.p ? reply.p : "451 4.3.0 Out of memory");
    sb_free(&reply);
    txn_free(t);
}

/* Keep the recipients the upstream deferred (4xx) in the spool, so the
 * release scheduler retries them: the client hears 250 for the message,
 * and those recipients must not be lost. The group's X-Untild header is
 * kept in the spooled copy. Returns 0 or -1 (nothing spooled). */
static int spool_deferred(struct txn *t, struct rgroup *g, const char *why)
{
    struct untild *u = t->u;
    struct spool_meta m = { 0 };
    int rc = -1;
    char *body = NULL;
    size_t plen = g->prefix ? strlen(g->prefix) : 0;

    m.rcpts = calloc(g->n, sizeof *m.rcpts);
    body = malloc(plen + t->len + 1);
    if (!m.rcpts || !body)
        goto out;
    memcpy(body, g->prefix ? g->prefix : "", plen);
    memcpy(body + plen, t->msg, t->len);
    for (size_t i = 0; i < g->n; i++) {
        const struct grcpt *gr = g->rc[i];
        if (gr->code < 400 || gr->code >= 500)
            continue;
        struct spool_rcpt *r = &m.rcpts[m.nrcpts++];
        r->addr = strdup(gr->addr);
        r->norm = strdup(gr->norm);
        r->reason = strdup(why);
        /* the retry is the same delivery: NOTIFY / ORCPT go with it */
        if (gr->params)
            r->params = strdup(gr->params);
        r->state = RCPT_HELD;
        if (!r->addr || !r->norm || !r->reason || (gr->params && !r->params))
            goto out;
    }
    m.rep = strdup(t->rep);
    m.mail_from = strdup(t->mail_from);
    m.mail_params = t->mail_params ? strdup(t->mail_params) : NULL;
    m.created = t->now;
    m.quiet_until = t->now;
    m.subject = t->f.subject ? strdup(t->f.subject) : NULL;
    m.message_id = t->f.message_id ? strdup(t->f.message_id) : NULL;
    m.size = plen + t->len;
    m.attempts = 1;
    m.first_attempt = t->now;
    m.next_attempt = t->now + lifecycle_backoff(1);
    m.last_error = strdup(why);
    spool_new_id(u->spool, m.id);
    if (spool_hold(u->spool, &m, body, plen + t->len) < 0) {
        log_error("gate: cannot spool deferred recipients: %s", strerror(errno));
        goto out;
    }
    if (release_track(u->release, &m) < 0)
        log_error("gate: cannot track deferred message %s (on disk; restart picks it up)", m.id);
    t->ndeferred += m.nrcpts;
    rc = 0;
out:
    free(body);
    spool_meta_free(&m);
    return rc;
}

/* Every group has answered: decide what the client hears. */
static void txn_relayed(struct txn *t)
{
    struct untild *u = t->u;
    struct rgroup *fail = NULL, *okg = NULL;
    for (size_t i = 0; i < t->ngroups; i++) {
        struct rgroup *g = &t->groups[i];
        if (g->ok && !okg)
            okg = g;
        /* a 4xx is the better answer: the client's retry is then safe */
        if (!g->ok && (!fail || (g->code < 500 && fail->code >= 500)))
            fail = g;
    }
    if (!okg) {
        char reply[700];
        if (t->spooled && spool_remove(u->spool, t->held.id) < 0)
            log_error("gate: cannot roll back held message %s: %s", t->held.id, strerror(errno));
        snprintf(reply, sizeof reply, "%d %s", fail->code >= 400 ? fail->code : 451,
                 fail->text[0] ? fail->text : "4.4.1 Upstream failure");
        log_info("gate: relay failed for session %lu: %s", smtp_session_id(t->s), reply);
        smtp_data_done(t->s, reply);
        txn_free(t);
        return;
    }
    for (size_t i = 0; i < t->ngroups; i++) {
        struct rgroup *g = &t->groups[i];
        int deferred = 0;
        for (size_t k = 0; k < g->n; k++) {
            int code = g->rc[k]->code;
            const char *norm = g->rc[k]->norm;
            if (code >= 200 && code < 300)
                contacts_record(u, norm, t->rep, "gate", t->f.message_id, t->now);
            if (code >= 400 && code < 500)
                deferred = 1;
            else if (code >= 500)
                sb_printf(&t->refused, "  %s: refused by the upstream: %d %s\n", norm, code, g->text);
            else if (g->prefix)
                store_audit(u->store, &(struct audit_rec){ t->now, "flagged", t->rep, norm,
                            NULL, t->f.message_id, NULL });
        }
        if (deferred && spool_deferred(t, g, g->text[0] ? g->text : "deferred by the upstream") < 0) {
            /* Some copies went out, but the rest can be neither sent nor
             * kept: a 4xx makes the client send again (at-least-once). */
            if (t->spooled && spool_remove(u->spool, t->held.id) < 0)
                log_error("gate: cannot roll back held message %s: %s", t->held.id, strerror(errno));
            smtp_data_done(t->s, "451 4.3.0 Partly delivered, cannot keep the rest: please retry");
            txn_free(t);
            return;
        }
    }
    char text[600];
    snprintf(text, sizeof text, "%s", okg->text);
    txn_finish_ok(t, text);
}

static void relay_done(void *arg, struct relay_result *r)
{
    struct rgroup *g = arg;
    struct txn *t = g->t;
    g->ok = r->ok;
    g->code = r->code;
    snprintf(g->text, sizeof g->text, "%s", r->text);
    for (size_t i = 0; i < g->n; i++)
        g->rc[i]->code = r->rcpt_codes ? r->rcpt_codes[i] : (r->ok ? 250 : r->code);
    if (--t->pending == 0)
        txn_relayed(t);
}

/* Group the relayed recipients: the unflagged ones together, each flagged
 * one alone (t->relay is already in that order). Returns 0 or -1. */
static int txn_group(struct txn *t)
{
    size_t nflag = 0;
    for (size_t i = 0; i < t->nrelay; i++)
        nflag += t->relay[i]->header != NULL;
    if (!(t->groups = calloc(nflag + 1, sizeof *t->groups)))
        return -1;
    size_t plain = t->nrelay - nflag;
    if (plain)
        t->groups[t->ngroups++] = (struct rgroup){ .t = t, .rc = t->relay, .n = plain };
    for (size_t i = plain; i < t->nrelay; i++)
        t->groups[t->ngroups++] = (struct rgroup){ .t = t, .rc = &t->relay[i], .n = 1,
                                                   .prefix = t->relay[i]->header };
    for (size_t i = 0; i < t->ngroups; i++) {
        struct rgroup *g = &t->groups[i];
        g->addrs = calloc(g->n, sizeof *g->addrs);
        g->params = calloc(g->n, sizeof *g->params);
        if (!g->addrs || !g->params)
            return -1;
        for (size_t k = 0; k < g->n; k++) {
            g->addrs[k] = g->rc[k]->addr;
            g->params[k] = g->rc[k]->params;
        }
    }
    return 0;
}

/* Submit one transaction per group. Returns 0, or -1 if none could be
 * queued (groups already queued still answer; the caller then waits). */
static int txn_submit(struct txn *t, struct smtp_session *s)
{
    struct untild *u = t->u;
    if (txn_group(t) < 0)
        return -1;
    t->pending = t->ngroups;
    size_t queued = 0;
    for (size_t i = 0; i < t->ngroups; i++) {
        struct rgroup *g = &t->groups[i];
        struct relay_job job = { 0 };
        job.mail_from = t->mail_from;
        job.rcpts = g->addrs;
        job.nrcpts = g->n;
        job.mail_params = t->mail_params;
        job.rcpt_params = g->params;
        job.data = t->msg;
        job.len = t->len;
        job.prefix = g->prefix;
        if (u->cfg->auth == AUTH_UPSTREAM) {
            job.username = smtp_session_user(s);
            job.password = smtp_session_pass(s);
        }
        if (relay_submit(u->relay, &job, relay_done, g) < 0) {
            /* answer this group ourselves, as a deferral */
            g->ok = 0;
            g->code = 451;
            snprintf(g->text, sizeof g->text, "4.3.0 Cannot queue for relay, try again later");
            for (size_t k = 0; k < g->n; k++)
                g->rc[k]->code = 451;
            t->pending--;
        } else {
            queued++;
        }
    }
    return queued ? 0 : -1;
}

static void held_add_rcpt(struct txn *t, const struct grcpt *gr)
{
    struct spool_meta *m = &t->held;
    const struct verdict *v = gr->v.action == ACTION_HOLD ? &gr->v : NULL;
    struct spool_rcpt *p = realloc(m->rcpts, (m->nrcpts + 1) * sizeof *p);
    if (!p)
        return;
    m->rcpts = p;
    p = &m->rcpts[m->nrcpts++];
    memset(p, 0, sizeof *p);
    p->addr = strdup(gr->addr);
    p->norm = strdup(gr->norm);
    p->params = gr->params ? strdup(gr->params) : NULL;
    p->state = RCPT_HELD;
    p->window_id = v && v->w ? strdup(v->w->id) : NULL;
    p->reason = v && v->w && v->w->reason ? strdup(v->w->reason) : NULL;
    if (v && v->w)
        sb_printf(&t->heldtxt, "%s%s%s%s%s", t->heldtxt.len ? ", " : "", gr->norm,
                  v->w->reason ? " (" : "", v->w->reason ? v->w->reason : "", v->w->reason ? ")" : "");
    else    /* held only because the whole message waits */
        sb_printf(&t->heldtxt, "%s%s (with the rest of the message)", t->heldtxt.len ? ", " : "", gr->norm);
}

/* The held part (if any) is on disk: relay the rest, or answer. */
static void txn_after_hold(struct txn *t)
{
    struct untild *u = t->u;
    if (t->nrelay) {
        if (txn_submit(t, t->s) < 0 && t->pending == 0) {
            if (t->spooled && spool_remove(u->spool, t->held.id) < 0)
                log_error("gate: cannot roll back held message %s: %s", t->held.id, strerror(errno));
            smtp_data_done(t->s, "451 4.3.0 Cannot queue for relay, try again later");
            txn_free(t);
        }
        return;
    }
    txn_finish_ok(t, NULL);
}

static void held_done(void *arg, int err)
{
    struct txn *t = arg;
    if (err) {
        log_error("gate: cannot spool held message: %s", strerror(err));
        smtp_data_done(t->s, err == ENOSPC || err == EDQUOT
                       ? "452 4.3.1 Insufficient system storage, try again later"
                       : "451 4.3.0 Cannot store message, try again later");
        txn_free(t);
        return;
    }
    t->spooled = 1;
    txn_after_hold(t);
}

/* Recipients in RCPT order: normalised, command addresses told apart. */
static int txn_recipients(struct txn *t, const struct smtp_envelope *env)
{
    size_t n = env->nrcpts;
    t->rc = calloc(n ? n : 1, sizeof *t->rc);
    t->real = calloc(n ? n : 1, sizeof *t->real);
    t->relay = calloc(n ? n : 1, sizeof *t->relay);
    if (!t->rc || !t->real || !t->relay)
        return -1;
    t->nrc = n;
    for (size_t i = 0; i < n; i++) {
        struct grcpt *gr = &t->rc[i];
        gr->addr = env->rcpts[i].addr;
        gr->params = env->rcpts[i].params;
        if (norm_rcpt(t->u, gr->addr, gr->norm, sizeof gr->norm, NULL, NULL) < 0)
            snprintf(gr->norm, sizeof gr->norm, "%s", gr->addr);
        if (policy_command(&t->u->pcfg, gr->norm, t->now, &gr->cmd) != CMD_NONE)
            gr->is_cmd = 1;
        else
            t->real[t->nreal++] = gr->norm;
    }
    return 0;
}

/* The policy's verdicts for the real recipients. Returns 0 or -1. */
static int txn_verdicts(struct txn *t)
{
    struct verdict *vr = calloc(t->nreal ? t->nreal : 1, sizeof *vr);
    if (!vr)
        return -1;
    imip_verdicts(t, t->real, t->nreal, vr);
    contacts_gate_verdicts(t->u, t->rep, &t->f, t->real, t->nreal, vr, t->now);
    for (size_t i = 0, k = 0; i < t->nrc; i++)
        if (!t->rc[i].is_cmd)
            t->rc[i].v = vr[k++];
    free(vr);
    return 0;
}

/* A CANCEL (or a newer REQUEST) for an invitation still held replaces the
 * held one: the held copy goes, and a CANCEL is not sent to the recipients
 * who never got the invitation. Only the held recipients this message is
 * addressed to are affected: clients send an update to added attendees
 * only, and a CANCEL to removed attendees only, and that says nothing
 * about the other attendees' held invitation. An occurrence (RECURRENCE-ID)
 * replaces only the held item for that occurrence. */
static void txn_supersede(struct txn *t)
{
    struct untild *u = t->u;
    if ((t->f.method != IMIP_CANCEL && t->f.method != IMIP_REQUEST) || !t->f.ical_uid)
        return;
    char ids[16][SPOOL_ID_MAX];
    size_t k = release_find_occurrence(u->release, t->rep, t->f.ical_uid, t->f.ical_recurrence_id, ids, 16);
    for (size_t j = 0; j < k; j++) {
        const struct spool_meta *m = release_find(u->release, ids[j], NULL);
        size_t held = 0, hit = 0;
        for (size_t r = 0; m && r < m->nrcpts; r++) {
            if (m->rcpts[r].state != RCPT_HELD)
                continue;
            held++;
            for (size_t i = 0; i < t->nrc; i++)
                if (!t->rc[i].is_cmd && !strcmp(t->rc[i].norm, m->rcpts[r].norm)) {
                    hit++;
                    if (t->f.method == IMIP_CANCEL)
                        t->rc[i].dropped = 1;
                    break;
                }
        }
        if (!hit || (t->f.method == IMIP_REQUEST && hit < held))
            continue;   /* others still wait for this invitation: keep it */
        /* Acted on only once this message is settled (txn_finish_ok): if
         * it fails, the client retries and must find them still held. */
        if (t->nsupersede < sizeof t->supersede / sizeof t->supersede[0])
            snprintf(t->supersede[t->nsupersede++], SPOOL_ID_MAX, "%s", ids[j]);
    }
}

/* The message-level plan. Recipients a CANCEL is not sent to take no part
 * (a cancelled quiet attendee must not hold the rest of the message).
 * Returns 0 or -1. */
static int txn_plan(struct txn *t, struct plan *p)
{
    struct verdict *vr = calloc(t->nreal ? t->nreal : 1, sizeof *vr);
    size_t k = 0;
    if (!vr)
        return -1;
    for (size_t i = 0; i < t->nrc; i++)
        if (!t->rc[i].is_cmd) {
            vr[k] = t->rc[i].v;
            if (t->rc[i].dropped)
                vr[k].action = ACTION_REJECT;
            k++;
        }
    policy_plan(&t->u->pcfg, vr, k, p);
    free(vr);
    return 0;
}

/* The flagged recipient's own copy gets a header naming its window. */
static int flag_rcpt(struct txn *t, struct grcpt *gr)
{
    const struct verdict *v = &gr->v;
    char when[64];
    when_format(v->quiet_until, "UTC", when, sizeof when);
    struct strbuf hb = { 0 };
    sb_printf(&hb, "X-Untild: flagged; recipient=<%s>; until=%s; window=%s\r\n",
              gr->norm, when, v->w ? v->w->id : "-");
    if (!(gr->header = sb_take(&hb, NULL)))
        return -1;
    sb_printf(&t->flagged, "  %s until %s (%s)%s%s\n", gr->norm, when,
              v->w && v->w->reason ? v->w->reason : "no reason given", v->why ? ": " : "",
              v->why ? v->why : "");
    return 0;
}

/* Each real recipient's fate: held (with the rest, when the whole message
 * waits), relayed (flagged ones with their header), or nothing (rejected,
 * or a CANCEL it never needs). t->relay: unflagged first, then flagged. */
static int txn_sort(struct txn *t, int hold_all)
{
    for (size_t i = 0; i < t->nrc; i++) {
        struct grcpt *gr = &t->rc[i];
        if (gr->is_cmd || gr->dropped || gr->v.action == ACTION_REJECT)
            continue;
        if (hold_all || gr->v.action == ACTION_HOLD) {
            gr->fate = FATE_HELD;
            held_add_rcpt(t, gr);
            continue;
        }
        if (gr->v.action == ACTION_FLAG && flag_rcpt(t, gr) < 0)
            return -1;
        gr->fate = FATE_RELAYED;
    }
    for (int flagged = 0; flagged < 2; flagged++)
        for (size_t i = 0; i < t->nrc; i++)
            if (t->rc[i].fate == FATE_RELAYED && (t->rc[i].header != NULL) == flagged)
                t->relay[t->nrelay++] = &t->rc[i];
    return 0;
}

/* Write the held part; held_done continues the transaction once it is on
 * disk (file and directory fsynced): only then does the client hear. */
static void txn_hold(struct txn *t, time_t hold_until, time_t release_at)
{
    struct untild *u = t->u;
    struct spool_meta *m = &t->held;
    m->rep = strdup(t->rep);
    m->mail_from = strdup(t->mail_from);
    m->mail_params = t->mail_params ? strdup(t->mail_params) : NULL;
    m->created = t->now;
    m->hold_until = hold_until;
    m->quiet_until = release_at;
    m->subject = t->f.subject ? strdup(t->f.subject) : NULL;
    m->message_id = t->f.message_id ? strdup(t->f.message_id) : NULL;
    m->ical_uid = t->f.ical_uid ? strdup(t->f.ical_uid) : NULL;
    m->ical_dtstart = t->f.dtstart;
    m->ical_method = (int)t->f.method;
    m->ical_recurrence_id = t->f.ical_recurrence_id ? strdup(t->f.ical_recurrence_id) : NULL;
    m->ical_last = t->f.ical_last;
    m->size = t->len;
    t->release_at = release_at;
    if (u->holder) {
        if (holder_submit(u->holder, m, t->msg, t->len, held_done, t) < 0)
            held_done(t, errno ? errno : EIO);
        return;
    }
    spool_new_id(u->spool, m->id);
    held_done(t, spool_hold(u->spool, m, t->msg, t->len) < 0 ? (errno ? errno : EIO) : 0);
}

/* After the parse: decide every recipient's fate, hold what waits (on
 * disk first), relay the rest, then answer once. */
static void gate_decide(struct txn *t)
{
    struct untild *u = t->u;
    struct smtp_session *s = t->s;
    time_t hold_until = 0;
    struct plan p;

    if (t->parse_failed)
        goto oom;
    imip_log(t, smtp_session_id(s));
    parse_holduntil(t->env->mail_params, t->now, &hold_until);
    if (txn_recipients(t, t->env) < 0 || txn_verdicts(t) < 0)
        goto oom;
    txn_supersede(t);
    if (txn_plan(t, &p) < 0)
        goto oom;
    int hold_all = p.hold_whole || hold_until > t->now;
    time_t release_at = p.release_at > hold_until ? p.release_at : hold_until;
    if (txn_sort(t, hold_all) < 0)
        goto oom;
    if (hold_until > t->now)
        sb_printf(&t->heldtxt, "%sfuture release requested", t->heldtxt.len ? "; " : "");
    if (t->held.nrcpts)
        txn_hold(t, hold_until, release_at);
    else
        txn_after_hold(t);
    return;
oom:
    (void)u;
    smtp_data_done(s, "451 4.3.0 Out of memory, try again later");
    txn_free(t);
}

/* The parse reads the whole message (headers, MIME walk, decoding of the
 * parts it looks at): its cost grows with the size. Messages above this
 * size are parsed on a worker thread so a 20 MB calendar part does not
 * hold the loop; smaller ones are parsed in place (a thread hop costs
 * more than they do). */
#define PARSE_ON_LOOP_MAX (64 * 1024)
#define PARSE_THREADS 2

static void parse_work(void *arg)
{
    struct txn *t = arg;
    t->parse_failed = message_parse_max(t->msg, t->len, t->delims, t->max_cal, &t->f) < 0;
}

/* On a worker: zone names are read from when.c's table only (libical's
 * lookup is not thread-safe); names it lacks are noted. */
static void parse_work_offloop(void *arg)
{
    struct txn *t = arg;
    when_thread_offloop();
    parse_work(t);
    t->nmissing = when_offloop_missing(t->missing, WHEN_MISSING_MAX);
}

static void parse_done(void *arg)
{
    struct txn *t = arg;
    if (t->nmissing && !t->reparsed) {
        /* Resolve the new zone names here (loop thread) and parse again,
         * on the worker: the verdict must not depend on where it ran. */
        size_t n = t->nmissing < WHEN_MISSING_MAX ? t->nmissing : WHEN_MISSING_MAX;
        for (size_t i = 0; i < n; i++)
            (void)when_zone_prepare(t->missing[i]);
        message_facts_free(&t->f);
        memset(&t->f, 0, sizeof t->f);
        t->nmissing = 0;
        t->reparsed = 1;
        if (workq_submit(t->u->parsers, parse_work_offloop, parse_done, t) == 0)
            return;
        t->parse_failed = 1;
    }
    gate_decide(t);
}

/* After DATA: parse the message (off the loop when it is large), then
 * gate_decide. */
static void gate_data(void *arg, struct smtp_session *s, const struct smtp_envelope *env,
                      const char *msg, size_t len)
{
    struct untild *u = arg;
    struct txn *t = calloc(1, sizeof *t);

    if (!t)
        goto oom;
    t->u = u;
    t->s = s;
    t->now = untild_now(u);
    snprintf(t->rep, sizeof t->rep, "%s", gate_rep(u, s) ? gate_rep(u, s) : "");
    t->msg = msg;
    t->len = len;
    t->env = env;
    t->mail_from = env->mail_from ? env->mail_from : "";
    t->mail_params = env->mail_params;
    t->max_cal = u->cfg->max_calendar_part;
    if (!(t->delims = strdup(u->pcfg.delims ? u->pcfg.delims : "")))
        goto oom;
    if (len > PARSE_ON_LOOP_MAX) {
        if (!u->parsers && !(u->parsers = workq_new(u->loop, PARSE_THREADS, "parse")))
            goto oom;
        if (workq_submit(u->parsers, parse_work_offloop, parse_done, t) < 0)
            goto oom;
        return;
    }
    parse_work(t);
    gate_decide(t);
    return;
oom:
    smtp_data_done(s, "451 4.3.0 Out of memory, try again later");
    if (t)
        txn_free(t);
}

/* AUTH: password checks run on auth.c's worker threads (crypt is slow on
 * purpose and must not stall the loop), or against the upstream
 * (relay_verify_async); failures are counted per client address and per
 * user (auth_limit, as Postfix's anvil): past [smtp] auth_max_failures
 * within auth_failure_window seconds the attempt is refused unchecked.
 * smtp_server delays every refusal (auth_failure_delay). The HTTP API's
 * login checks through the same function (gate_check_password), so both
 * doors share one checker and one count. */
#define AUTH_THREADS 2
#define AUTH_LIMIT_KEYS 4096


struct auth_ctx {
    struct untild *u;
    gate_auth_fn done;
    void *arg;
    char akey[80], ukey[128];
};

static void auth_done(void *arg, int verdict)
{
    struct auth_ctx *a = arg;
    const struct config *c = a->u->cfg;
    if (verdict < 0)
        log_warn("gate: credentials could not be checked (%s)",
                 c->auth == AUTH_UPSTREAM ? "upstream unreachable" : "passwd file unreadable");
    if (verdict == 0) {
        int64_t now = loop_now_ms(), win = (int64_t)c->auth_failure_window * 1000;
        auth_limit_fail(a->u->auth_limits, a->akey, now, win);
        auth_limit_fail(a->u->auth_limits, a->ukey, now, win);
    }
    a->done(a->arg, verdict);
    free(a);
}

int gate_check_password(struct untild *u, const char *what, const char *addr, const char *user,
                        const char *pass, gate_auth_fn done, void *arg)
{
    const struct config *c = u->cfg;
    if (c->auth != AUTH_PASSWD && c->auth != AUTH_UPSTREAM)
        return -1;
    struct auth_ctx *a = calloc(1, sizeof *a);
    if (!a || (!u->auth_limits && !(u->auth_limits = auth_limit_new(AUTH_LIMIT_KEYS)))) {
        free(a);
        return -1;
    }
    a->u = u;
    a->done = done;
    a->arg = arg;
    snprintf(a->akey, sizeof a->akey, "addr:%s", addr);
    snprintf(a->ukey, sizeof a->ukey, "user:%s", user);
    for (char *p = a->ukey; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    int64_t now = loop_now_ms(), win = (int64_t)c->auth_failure_window * 1000;
    int by_addr = auth_limit_over(u->auth_limits, a->akey, now, c->auth_max_failures, win);
    if (by_addr || auth_limit_over(u->auth_limits, a->ukey, now, c->auth_max_failures, win)) {
        log_warn("gate: %s from %s refused unchecked: %d failures %s within "
                 "auth_failure_window (%d s) reached auth_max_failures", what, addr, c->auth_max_failures,
                 by_addr ? "from this address" : "for this user", c->auth_failure_window);
        free(a);
        return GATE_AUTH_LIMITED;
    }
    int rc;
    if (c->auth == AUTH_PASSWD) {
        if (!u->auth_pool && !(u->auth_pool = auth_pool_new(u->loop, AUTH_THREADS)))
            rc = -1;
        else
            rc = auth_pool_submit(u->auth_pool, c->passwd_file, user, pass, auth_done, a);
    } else {
        rc = relay_verify_async(u->relay, user, pass, auth_done, a);
    }
    if (rc < 0)
        free(a);
    return rc < 0 ? -1 : 0;
}

static void smtp_checked(void *arg, int verdict)
{
    smtp_auth_done(arg, verdict == 1 ? SMTP_AUTH_OK : verdict < 0 ? SMTP_AUTH_TEMPFAIL : SMTP_AUTH_REFUSED);
}

static void gate_auth(void *arg, struct smtp_session *s, const char *user, const char *pass)
{
    struct untild *u = arg;
    const struct config *c = u->cfg;
    if (c->auth != AUTH_PASSWD && c->auth != AUTH_UPSTREAM) {
        smtp_auth_done(s, SMTP_AUTH_REFUSED);
        return;
    }
    char what[64];
    snprintf(what, sizeof what, "session %lu: AUTH", smtp_session_id(s));
    int rc = gate_check_password(u, what, smtp_session_addr(s), user, pass, smtp_checked, s);
    if (rc == GATE_AUTH_LIMITED)
        smtp_auth_done(s, SMTP_AUTH_LIMITED);
    else if (rc < 0)
        smtp_auth_done(s, SMTP_AUTH_TEMPFAIL);
}

void gate_stop(struct untild *u)
{
    /* Checks and parses in progress finish and post their results (the
     * caller runs loop_run_pending while the sessions still exist). */
    auth_pool_free(u->auth_pool);
    u->auth_pool = NULL;
    auth_limit_free(u->auth_limits);
    u->auth_limits = NULL;
    workq_free(u->parsers);
    u->parsers = NULL;
}

void gate_hooks(struct untild *u, struct smtp_hooks *h)
{
    memset(h, 0, sizeof *h);
    h->arg = u;
    h->auth = gate_auth;
    h->mail = gate_mail;
    h->rcpt = gate_rcpt;
    h->data = gate_data;
}
