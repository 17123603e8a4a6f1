/* policy.c - the pure decision: who is quiet, what happens to the message,
 * when it is released, and what a command-domain recipient asks for.
 *
 * Synopsis: policy_rcpt() at RCPT time, policy_message() after DATA (adds
 * the iMIP-reply and "customer re-opened" overrides), policy_plan() for the
 * message as a whole, policy_release_at() for the aligned release time, and
 * policy_command() for "until-DATE@", "release-ID@", "discard-ID@",
 * "status@" at the command domain (docs/DESIGN.md "Rep controls").
 *
 * Why pure: everything (the window index, the clock, the "has untild seen
 * that message" oracle) is passed in, so the rules that decide whether a
 * customer gets mail are tested with plain calls and no daemon. No I/O, no
 * clock reads, no mutable state. Diagnostics: none; results are returned. */
#include "untild/policy.h"

#include <string.h>
#include <strings.h>

#include "untild/when.h"

/* Message-Id lengths: RFC 5322 lines are at most 998 octets, so an id that
 * does not fit is not one we could have recorded. */
#define POLICY_MSGID_MAX 1000
/* Longest command local part we look at ("release-" + a 63-char id is the
 * longest valid one; dates are shorter). */
#define POLICY_LOCAL_MAX 128

static const char WHY_IMIP_REPLY[] = "reply to the contact's own invitation";
static const char WHY_REOPENED[] = "customer re-opened the conversation";

/* The domain part of a normalised "local@domain", or NULL. The last '@'
 * is the separator: a quoted local part may itself contain '@'. */
static const char *rcpt_domain(const char *rcpt)
{
    const char *at = rcpt ? strrchr(rcpt, '@') : NULL;
    return at ? at + 1 : NULL;
}

static int is_command_rcpt(const struct policy_cfg *cfg, const char *rcpt)
{
    const char *d = rcpt_domain(rcpt);
    if (!d || !cfg->command_domain || !cfg->command_domain[0])
        return 0;
    return strcasecmp(d, cfg->command_domain) == 0;
}

enum action policy_window_action(const struct policy_cfg *cfg,
                                 const struct window *w)
{
    enum action a = w ? w->action : ACTION_ALLOW;
    if (a == ACTION_DEFAULT)
        a = cfg->default_action;
    /* A config that itself says "default" must not leak out as a verdict:
     * hold is the documented default and the safe one. */
    if (a == ACTION_DEFAULT)
        a = ACTION_HOLD;
    return a;
}

time_t policy_release_at(const struct policy_cfg *cfg,
                         const struct window_match *m)
{
    if (m->quiet_until == WHEN_NEVER)
        return WHEN_NEVER;
    /* An occurrence of a recurring window ends when it ends (weekend over
     * at Monday 00:00): aligning it to release_time would hold mail into
     * the very hours the contact asked for. */
    if (m->recurring)
        return m->quiet_until;
    const char *tz = (m->w && m->w->tz && m->w->tz[0]) ? m->w->tz
                                                         : cfg->timezone;
    return when_align_release(m->quiet_until, tz, cfg->release_time,
                              cfg->release_on_weekends);
}

static void verdict_allow(struct verdict *v)
{
    v->action = ACTION_ALLOW;
    v->w = NULL;
    v->quiet_until = 0;
    v->release_at = 0;
    v->why = NULL;
}

enum action policy_rcpt(const struct policy_cfg *cfg,
                        const struct windows *ix, const char *rcpt,
                        time_t now, struct verdict *v)
{
    struct window_match m;

    verdict_allow(v);
    /* Command addresses are instructions to untild, never contacts: the
     * gate consumes them through policy_command(). */
    if (!rcpt || is_command_rcpt(cfg, rcpt))
        return v->action;
    if (!ix)
        return v->action;
    memset(&m, 0, sizeof m);
    if (!windows_match(ix, rcpt, now, &m) || !m.w)
        return v->action;

    enum action a = policy_window_action(cfg, m.w);
    if (a == ACTION_ALLOW)      /* a window that explicitly allows */
        return v->action;
    v->action = a;
    v->w = m.w;
    v->quiet_until = m.quiet_until;
    v->release_at = policy_release_at(cfg, &m);
    return v->action;
}

/* Copy the next Message-Id out of a References value into buf (without
 * <>). Ids are "<...>"; a value without any '<' is taken as bare ids
 * separated by white space or commas (some mailers write it that way).
 * Returns the position after it, or NULL when there are no more. Ids that
 * do not fit buf are skipped. */
static const char *next_ref(const char *p, int bracketed, char *buf,
                            size_t bufsz)
{
    while (p && *p) {
        const char *s, *e;
        if (bracketed) {
            s = strchr(p, '<');
            if (!s)
                return NULL;
            s++;
            e = strchr(s, '>');
            if (!e)
                return NULL;        /* unterminated: nothing trustworthy */
            p = e + 1;
        } else {
            s = p + strspn(p, " \t\r\n,");
            if (!*s)
                return NULL;
            e = s + strcspn(s, " \t\r\n,");
            p = e;
        }
        size_t len = (size_t)(e - s);
        if (len == 0 || len >= bufsz)
            continue;
        memcpy(buf, s, len);
        buf[len] = '\0';
        return p;
    }
    return NULL;
}

/* Does this message reply to something the contact sent (and untild saw)? */
static int reopens(const struct message_facts *f, policy_seen_fn seen,
                   void *seen_arg, const char *rcpt)
{
    char id[POLICY_MSGID_MAX];

    if (!seen)
        return 0;
    if (f->in_reply_to && f->in_reply_to[0]) {
        /* message.c strips the <>; tolerate a value that still has them */
        const char *p = next_ref(f->in_reply_to,
                                 strchr(f->in_reply_to, '<') != NULL,
                                 id, sizeof id);
        if (p && seen(seen_arg, id, rcpt))
            return 1;
    }
    if (f->references && f->references[0]) {
        int bracketed = strchr(f->references, '<') != NULL;
        const char *p = f->references;
        while ((p = next_ref(p, bracketed, id, sizeof id)) != NULL)
            if (seen(seen_arg, id, rcpt))
                return 1;
    }
    return 0;
}

void policy_message(const struct policy_cfg *cfg, const struct windows *ix,
                    const char *rep, const char *const *rcpts, size_t n,
                    const struct message_facts *f, policy_seen_fn seen,
                    void *seen_arg, time_t now, struct verdict *out)
{
    (void)rep;  /* reserved for per-rep rules */
    for (size_t i = 0; i < n; i++) {
        struct verdict *v = &out[i];
        const char *rcpt = rcpts[i];

        policy_rcpt(cfg, ix, rcpt, now, v);
        /* Overrides lift holds and flags only: a reject was final at RCPT
         * time, so the recipient is no longer in the transaction. */
        if (!f || (v->action != ACTION_HOLD && v->action != ACTION_FLAG))
            continue;
        /* Answering the contact's own invitation is not contacting them.
         * A REQUEST (or anything else) is contact: no override. */
        if (f->method == IMIP_REPLY && f->organizer &&
            strcasecmp(f->organizer, rcpt) == 0) {
            verdict_allow(v);
            v->why = WHY_IMIP_REPLY;
            continue;
        }
        if (reopens(f, seen, seen_arg, rcpt)) {
            verdict_allow(v);
            v->why = WHY_REOPENED;
        }
    }
}

void policy_plan(const struct policy_cfg *cfg, const struct verdict *v,
                 size_t n, struct plan *p)
{
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < n; i++) {
        switch (v[i].action) {
        case ACTION_HOLD:
            p->nhold++;
            if (v[i].release_at > p->release_at)
                p->release_at = v[i].release_at;
            break;
        case ACTION_FLAG:
            p->nflag++;
            break;
        case ACTION_REJECT:
            p->nreject++;
            break;
        case ACTION_ALLOW:
        case ACTION_DEFAULT:    /* not produced by policy_rcpt */
        default:
            p->nallow++;
            break;
        }
    }
    /* With split_recipients = no the allowed and flagged recipients wait
     * for the latest held one: one message, one release time. */
    p->hold_whole = p->nhold > 0 && !cfg->split_recipients;
}

/* "[0-9a-z]{1,63}": spool and window ids as untild prints them. */
static int valid_id(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 63)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')))
            return 0;
    return 1;
}

/* until-DATE, or a bare natural form. WHEN_NEVER is refused: a Bcc typo
 * must not silence a contact forever (untilctl can do that on purpose). */
static enum cmd_kind parse_until(const struct policy_cfg *cfg,
                                 const char *s, time_t now, struct command *c)
{
    char err[128];
    time_t t;

    if (!*s || when_parse(s, cfg->timezone, now, &t, err, sizeof err) != 0)
        return CMD_BAD;
    if (t == WHEN_NEVER || t <= now)
        return CMD_BAD;
    c->until = t;
    return CMD_UNTIL;
}

enum cmd_kind policy_command(const struct policy_cfg *cfg, const char *rcpt,
                             time_t now, struct command *c)
{
    char local[POLICY_LOCAL_MAX];

    memset(c, 0, sizeof *c);
    c->kind = CMD_NONE;
    if (!rcpt || !is_command_rcpt(cfg, rcpt))
        return c->kind;

    size_t len = (size_t)(rcpt_domain(rcpt) - 1 - rcpt);
    c->kind = CMD_BAD;
    if (len == 0 || len >= sizeof local)
        return c->kind;
    memcpy(local, rcpt, len);
    local[len] = '\0';

    if (strcmp(local, "status") == 0) {
        c->kind = CMD_STATUS;
    } else if (strcmp(local, "followups") == 0) {
        c->kind = CMD_FOLLOWUPS;
    } else if (strncmp(local, "release-", 8) == 0 ||
               strncmp(local, "discard-", 8) == 0) {
        if (valid_id(local + 8)) {
            memcpy(c->arg, local + 8, strlen(local + 8) + 1);
            c->kind = local[0] == 'r' ? CMD_RELEASE : CMD_DISCARD;
        }
    } else if (strncmp(local, "until-", 6) == 0) {
        c->kind = parse_until(cfg, local + 6, now, c);
    } else {
        c->kind = parse_until(cfg, local, now, c);
    }
    return c->kind;
}
