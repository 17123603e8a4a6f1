/* followup.c - reminders on the promised day (see followup.h).
 *
 * Synopsis: followup_new() at start-up; followup_kick() after every
 * window change and clock move; the timer fires at the earliest follow-up
 * ahead. A scan visits the window index once, keeps only one-off windows
 * whose end is near (a time compare per window; the aligned release, which
 * costs a zone lookup, only for those), reminds for the ones due within
 * [followup] catch_up that the store has not recorded, and sets the timer.
 *
 * Why this shape: the reminder time is derived from the windows as they
 * stand, like a held message's due time (lifecycle.h), so a changed or
 * ended window needs no bookkeeping here; the only persisted fact is
 * "sent", keyed by window id and end, so a lengthened window reminds
 * again at its new end and a restart never reminds twice.
 *
 * Diagnostics: "followup: reminded REP about CONTACT (window ID)" (info);
 * "followup: ... nobody to remind" (info); store errors (error); more due
 * at once than MAX_PER_SCAN (info, the rest on the next loop turn). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "untild/followup.h"
#include "untild/address.h"
#include "untild/fnv.h"
#include "untild/followup_cal.h"
#include "untild/daemon.h"
#include "untild/events.h"
#include "untild/json.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/message.h"
#include "untild/notice.h"
#include "untild/release.h"
#include "untild/store.h"
#include "untild/strbuf.h"
#include "untild/when.h"

#define MAX_PER_SCAN 64        /* reminders sent per loop turn */
#define SCAN_BUDGET_MS 5       /* ... or fewer: each looks through the held mail */
#define MAX_REPS 32            /* reps reminded for one owner-less window */
#define RESCAN_S 3600          /* look again at least this often */
#define NEAR_S (8 * 86400)     /* aligned release is at most this after the end */
#define STALE_DAYS 30          /* a held message this old: suggest writing afresh */
#define LIST_MAX 500           /* follow-ups listed by untilctl / followups@ */

struct followup {
    struct untild *u;
    uint64_t timer;
    uint64_t soon;
};

/* ---------- pure parts ---------- */

time_t followup_due_at(const struct policy_cfg *cfg, const struct window *w)
{
    if (!w || w->rrule || w->until == WHEN_NEVER || w->until <= 0)
        return 0;
    if (policy_window_action(cfg, w) == ACTION_ALLOW)
        return 0;
    struct window_match m = { .w = w, .quiet_until = w->until, .recurring = 0 };
    return policy_release_at(cfg, &m);
}

/* One address-list element [start, end): "Name <addr>" or "addr". */
static int element_name(const char *s, const char *end, const char *addr, char *out, size_t outsz)
{
    const char *lt = NULL;
    int q = 0;
    for (const char *c = s; c < end; c++) {
        if (*c == '\\' && q && c + 1 < end)
            c++;
        else if (*c == '"')
            q = !q;
        else if (!q && *c == '<' && !lt)
            lt = c;
    }
    if (q)
        return 0;   /* an unterminated quoted name: no name */
    const char *gt = lt ? memchr(lt, '>', (size_t)(end - lt)) : NULL;
    if (!lt || !gt)
        return 0;
    size_t alen = strlen(addr);
    if ((size_t)(gt - lt - 1) != alen || strncasecmp(lt + 1, addr, alen))
        return 0;
    const char *a = s, *b = lt;
    while (a < b && isspace((unsigned char)*a))
        a++;
    while (b > a && isspace((unsigned char)b[-1]))
        b--;
    if (b - a >= 2 && *a == '"' && b[-1] == '"') {
        a++;
        b--;
    }
    size_t k = 0;
    for (; a < b && k + 1 < outsz; a++) {
        if (*a == '\\' && a + 1 < b)
            a++;
        if ((unsigned char)*a >= 0x20)
            out[k++] = *a;
    }
    out[k] = '\0';
    return k > 0;
}

int followup_display_name(const char *header, const char *addr, char *out, size_t outsz)
{
    if (outsz)
        out[0] = '\0';
    if (!header || !addr || outsz < 2)
        return 0;
    const char *s = header;
    while (*s) {
        /* split at commas outside quotes and angle brackets */
        const char *e = s;
        int q = 0, ang = 0;
        for (; *e && (q || ang || *e != ','); e++) {
            if (*e == '\\' && q && e[1])
                e++;
            else if (*e == '"')
                q = !q;
            else if (!q && *e == '<')
                ang = 1;
            else if (!q && *e == '>')
                ang = 0;
        }
        if (element_name(s, e, addr, out, outsz))
            return 1;
        s = *e ? e + 1 : e;
    }
    out[0] = '\0';
    return 0;
}

/* ---------- what a reminder says ---------- */

static int covers(const struct window *w, const char *norm)
{
    for (size_t i = 0; i < w->nwho; i++) {
        const char *k = w->who[i];
        if (k[0] != '@') {
            if (!strcasecmp(k, norm))
                return 1;
            continue;
        }
        const char *at = strrchr(norm, '@');
        size_t kl = strlen(k + 1), dl = at ? strlen(at + 1) : 0;
        if (at && dl >= kl && !strcasecmp(at + 1 + dl - kl, k + 1) &&
            (dl == kl || at[dl - kl] == '.'))
            return 1;
    }
    return 0;
}

static int rep_is(const char *rep, const char *owner)
{
    return !rep || (owner && !strcasecmp(rep, owner));
}

/* The held messages of rep (NULL: anyone's) to this window's contacts:
 * listed into b (with links) when b is set; counted. */
static size_t held_for(struct untild *u, const struct window *w, const char *rep, time_t now,
                       struct strbuf *b)
{
    size_t n = 0, total = release_count(u->release);
    const char *dom = u->cfg->command_domain;
    for (size_t i = 0; i < total; i++) {
        const struct spool_meta *m = release_meta(u->release, i);
        if (!m || !rep_is(rep, m->rep))
            continue;
        int hit = 0;
        for (size_t j = 0; j < m->nrcpts && !hit; j++)
            hit = m->rcpts[j].state == RCPT_HELD && covers(w, m->rcpts[j].norm);
        if (!hit)
            continue;
        n++;
        if (!b)
            continue;
        long days = (long)((now - m->created) / 86400);
        char when[64];
        sb_printf(b, "  \"%s\" (held since %.10s, %ld day%s old)\n",
                  m->subject ? m->subject : "(no subject)",
                  when_format(m->created, u->cfg->timezone, when, sizeof when), days,
                  days == 1 ? "" : "s");
        if (days >= STALE_DAYS)
            sb_puts(b, "     Written long ago: it may be stale; consider discarding it and writing afresh.\n");
        sb_printf(b, "     Send it now: mailto:release-%s@%s\n     Discard it:  mailto:discard-%s@%s\n",
                  m->id, dom, m->id, dom);
    }
    return n;
}

/* The held count of each of k windows in one pass over the held mail
 * (GET /followups lists up to LIST_MAX: a pass each held the loop for
 * seconds with 100,000 held): the windows' addresses and @domains in a
 * table, each held recipient looked up as itself and as each of its
 * domains. count[j] for wins[j]; -1 when out of memory. */
struct wkey { const char *key; size_t win; };

static void wkey_put(struct wkey *t, size_t mask, const char *key, size_t win)
{
    size_t i = (size_t)fnv_key_ci(key) & mask;
    while (t[i].key)
        i = (i + 1) & mask;
    t[i] = (struct wkey){ key, win };
}

static void wkey_hits(const struct wkey *t, size_t mask, const char *key, size_t msg, size_t *stamp,
                      size_t *count)
{
    for (size_t i = (size_t)fnv_key_ci(key) & mask; t[i].key; i = (i + 1) & mask)
        if (!strcasecmp(t[i].key, key) && stamp[t[i].win] != msg + 1) {
            stamp[t[i].win] = msg + 1;      /* a message counts once per window */
            count[t[i].win]++;
        }
}

static int held_tally(struct untild *u, const struct window *const *wins, size_t k, const char *rep,
                      size_t *count)
{
    size_t nkeys = 0, cap = 16;
    for (size_t j = 0; j < k; j++)
        nkeys += wins[j]->nwho;
    while (cap < 2 * nkeys + 2)
        cap *= 2;
    struct wkey *t = calloc(cap, sizeof *t);
    size_t *stamp = calloc(k ? k : 1, sizeof *stamp);
    if (!t || !stamp) {
        free(t);
        free(stamp);
        return -1;
    }
    for (size_t j = 0; j < k; j++) {
        count[j] = 0;
        for (size_t i = 0; i < wins[j]->nwho; i++)
            wkey_put(t, cap - 1, wins[j]->who[i], j);
    }
    size_t total = release_count(u->release);
    char dom[ADDR_MAX + 1];
    for (size_t i = 0; i < total; i++) {
        const struct spool_meta *m = release_meta(u->release, i);
        if (!m || !rep_is(rep, m->rep))
            continue;
        for (size_t r = 0; r < m->nrcpts; r++) {
            const char *norm = m->rcpts[r].norm, *at = norm ? strrchr(norm, '@') : NULL;
            if (m->rcpts[r].state != RCPT_HELD || !norm)
                continue;
            wkey_hits(t, cap - 1, norm, i, stamp, count);
            for (const char *d = at ? at + 1 : NULL; d && *d; d = strchr(d, '.') ? strchr(d, '.') + 1 : NULL) {
                snprintf(dom, sizeof dom, "@%s", d);    /* @sub.acme.com, @acme.com, @com */
                wkey_hits(t, cap - 1, dom, i, stamp, count);
            }
        }
    }
    free(t);
    free(stamp);
    return 0;
}

struct origin {
    char by[256];
    char msgid[512];
    int found;
};

static int origin_row(const struct audit_rec *r, void *arg)
{
    struct origin *o = arg;
    if (!r->event || strcmp(r->event, "window-added"))
        return 0;
    snprintf(o->by, sizeof o->by, "%s", r->rep ? r->rep : "");
    snprintf(o->msgid, sizeof o->msgid, "%s", r->msg_id ? r->msg_id : "");
    o->found = 1;
    return 1;
}

/* How and by whom the window was recorded; the Message-ID that set it. */
static void how_recorded(struct untild *u, const struct window *w, struct origin *o, struct strbuf *b)
{
    char when[64];
    memset(o, 0, sizeof *o);
    /* The gate, untilctl and the watchers write the audit row in the same
     * second as w->created (a range on the audit_t index). */
    if (w->created > 0)
        store_audit_foreach_window(u->store, w->id, w->created - 1, w->created + 1, origin_row, o);
    const char *how;
    switch (w->source) {
    case WSRC_FILE: how = "a window file"; break;
    case WSRC_IMAP: how = "your \"Contact later\" folder"; break;
    case WSRC_CALDAV: how = "your calendar"; break;
    default: how = o->msgid[0] ? "a Bcc command address" : "untilctl window add"; break;
    }
    sb_printf(b, "Recorded: %.10s, from %s", w->created > 0 ?
              when_format(w->created, u->cfg->timezone, when, sizeof when) : "?", how);
    if (w->source == WSRC_FILE && w->file)
        sb_printf(b, " (%s:%d)", w->file, w->line);
    if (o->by[0])
        sb_printf(b, ", by %s", o->by);
    if (o->msgid[0])
        sb_printf(b, "\n          on your message <%s>", o->msgid);
    sb_puts(b, "\n");
}

static void contact_label(struct untild *u, const struct window *w, char *out, size_t sz)
{
    char key[WINDOW_ID_MAX + 16];
    snprintf(key, sizeof key, "fu-name:%s", w->id);
    char *name = store_kv_get(u->store, key);
    if (name && *name)
        snprintf(out, sz, "%s <%s>", name, w->who[0]);
    else
        snprintf(out, sz, "%s", w->who[0]);
    free(name);
}

/* Build and queue one reminder to address `to`; held mail of rep (NULL:
 * everyone's). Returns 0 when queued. */
static int remind_one(struct untild *u, const struct window *w, time_t due, const char *rep,
                      const char *to, time_t now)
{
    struct strbuf b = { 0 }, hdr = { 0 };
    struct origin o;
    char label[600], when[64], subject[700];
    contact_label(u, w, label, sizeof label);
    snprintf(subject, sizeof subject, "Follow up with %s today", label);
    sb_printf(&b, "Today is the day to get back to %s.\n\nWho:      %s", w->who[0], label);
    for (size_t i = 1; i < w->nwho; i++)
        sb_printf(&b, ", %s", w->who[i]);
    sb_printf(&b, "\nReason:   %s\nUntil:    %s\n", w->reason ? w->reason : "(none given)",
              when_format(w->until, w->tz ? w->tz : u->cfg->timezone, when, sizeof when));
    how_recorded(u, w, &o, &b);
    sb_printf(&b, "Window:   %s\n\n", w->id);
    struct strbuf held = { 0 };
    size_t n = held_for(u, w, rep, now, &held);
    if (n)
        sb_printf(&b, "Still held for this contact (%zu):\n%s", n, held.p ? held.p : "");
    else
        sb_puts(&b, "Nothing is held for this contact.\n");
    sb_free(&held);
    (void)due;
    if (!to) {      /* no mail address: the rep's mailbox (IMAP APPEND), unthreaded */
        int rc = notice_send_subject(u, NOTICE_FOLLOWUP, rep, subject, b.p ? b.p : "", NULL, 0);
        sb_free(&b);
        return rc;
    }
    size_t len = 0;
    char *msg = notice_build(u->cfg->notify_from ? u->cfg->notify_from : "untild@localhost", to,
                             subject, b.p ? b.p : "", NULL, 0, now, &len);
    sb_free(&b);
    if (!msg)
        return -1;
    /* Threading: the reminder answers the message that set the window. */
    sb_printf(&hdr, "X-Untild-Followup: %s\r\n", w->id);
    if (o.msgid[0] && !strpbrk(o.msgid, "\r\n<>"))
        sb_printf(&hdr, "In-Reply-To: <%s>\r\nReferences: <%s>\r\n", o.msgid, o.msgid);
    sb_add(&hdr, msg, len);
    free(msg);
    if (hdr.oom || !hdr.p) {
        sb_free(&hdr);
        return -1;
    }
    size_t mlen = hdr.len;
    char *full = sb_take(&hdr, &mlen);
    return release_notice(u->release, rep, to, subject, full, mlen);
}

struct reps {
    char *v[MAX_REPS];
    size_t n;
};

static int add_rep(const char *rep, void *arg)
{
    struct reps *r = arg;
    for (size_t i = 0; i < r->n; i++)
        if (!strcasecmp(r->v[i], rep))
            return 0;
    if (r->n < MAX_REPS && (r->v[r->n] = strdup(rep)))
        r->n++;
    return 0;
}

/* Remind everyone due a reminder for w. Returns how many were queued. */
static int remind(struct untild *u, const struct window *w, time_t due, time_t now)
{
    struct reps reps = { 0 };
    int sent = 0;
    if (w->owner)
        add_rep(w->owner, &reps);
    else
        for (size_t i = 0; i < w->nwho; i++)
            store_audit_reps(u->store, w->who[i], w->from, w->until, add_rep, &reps);
    for (size_t i = 0; i < reps.n; i++) {
        const char *to = notice_address(u, reps.v[i]);
        if (!to && !u->imap)
            log_warn("followup: no address for rep %s (window %s)", reps.v[i], w->id);
        else if (remind_one(u, w, due, reps.v[i], to, now) == 0) {
            log_info("followup: reminded %s about %s (window %s)", reps.v[i], w->who[0], w->id);
            sent++;
        }
        free(reps.v[i]);
    }
    const char *team = u->cfg->followup_team;
    if (team && remind_one(u, w, due, NULL, team, now) == 0) {
        log_info("followup: reminded %s (team) about %s (window %s)", team, w->who[0], w->id);
        sent++;
    }
    if (!sent && !reps.n && !team)
        log_info("followup: window %s for %s ended; nobody to remind", w->id, w->who[0]);
    return sent;
}

/* ---------- scanning ---------- */

struct scan {
    const struct policy_cfg *cfg;
    time_t now, catch_up, next;
    char (*due)[WINDOW_ID_MAX];
    size_t ndue, more;
};

static int scan_one(const struct window *w, void *arg)
{
    struct scan *s = arg;
    if (w->rrule || w->until == WHEN_NEVER || w->until > s->now + RESCAN_S + NEAR_S ||
        w->until < s->now - s->catch_up - NEAR_S)
        return 0;
    time_t at = followup_due_at(s->cfg, w);
    if (!at)
        return 0;
    if (at > s->now) {
        if (at < s->next)
            s->next = at;
    } else if (at >= s->now - s->catch_up) {
        if (s->ndue < MAX_PER_SCAN)
            snprintf(s->due[s->ndue++], WINDOW_ID_MAX, "%s", w->id);
        else
            s->more++;
    }
    return 0;
}

static void on_timer(struct loop *l, uint64_t id, void *arg);

static void arm(struct followup *f, time_t next, time_t now)
{
    loop_timer_del(f->u->loop, f->timer);
    time_t wait = next > now ? next - now : 0;
    if (wait > RESCAN_S)
        wait = RESCAN_S;
    f->timer = loop_timer(f->u->loop, (int64_t)wait * 1000, on_timer, f);
}

static void scan(struct followup *f)
{
    struct untild *u = f->u;
    time_t now = untild_now(u);
    char due[MAX_PER_SCAN][WINDOW_ID_MAX];
    struct scan s = { &u->pcfg, now, u->cfg->followup_catch_up, WHEN_NEVER, due, 0, 0 };
    if (!u->cfg->followup_enabled || !u->ix) {
        arm(f, WHEN_NEVER, now);
        return;
    }
    windows_foreach(u->ix, scan_one, &s);
    size_t done = 0;
    int64_t start = loop_now_ms();
    for (size_t i = 0; i < s.ndue; i++) {
        if (done && loop_now_ms() - start >= SCAN_BUDGET_MS) {
            s.more += s.ndue - i;       /* the rest on the next loop turn */
            break;
        }
        const struct window *w = windows_get(u->ix, due[i]);
        if (!w || store_followup_sent(u->store, w->id, w->until) != 0)
            continue;   /* sent already (or the store cannot say: do not risk a flood) */
        time_t at = followup_due_at(&u->pcfg, w);
        remind(u, w, at, now);
        events_window(u, EV_WINDOW_OPENED, w, at);   /* webhooks: the follow-up is due */
        if (store_followup_mark(u->store, w->id, w->until, now) < 0)
            log_error("followup: cannot record the reminder for %s (a restart may send it again)", w->id);
        done++;
    }
    followup_cal_sync(u->fucal);
    if (s.more) {
        log_info("followup: %zu more follow-up(s) due; next loop turn", s.more);
        followup_kick(f);
        return;
    }
    arm(f, s.next, now);
}

static void on_timer(struct loop *l, uint64_t id, void *arg)
{
    struct followup *f = arg;
    (void)l; (void)id;
    f->timer = 0;
    scan(f);
}

static void on_soon(struct loop *l, uint64_t id, void *arg)
{
    struct followup *f = arg;
    (void)l; (void)id;
    f->soon = 0;
    scan(f);
}

struct followup *followup_new(struct untild *u)
{
    struct followup *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->u = u;
    followup_kick(f);
    return f;
}

void followup_free(struct followup *f)
{
    if (!f)
        return;
    loop_timer_del(f->u->loop, f->timer);
    loop_timer_del(f->u->loop, f->soon);
    free(f);
}

void followup_kick(struct followup *f)
{
    if (f && !f->soon)
        f->soon = loop_timer(f->u->loop, 0, on_soon, f);
}

void followup_note_name_msg(struct untild *u, const char *window_id, const char *contact,
                            const char *msg, size_t len)
{
    char name[200], key[WINDOW_ID_MAX + 16];
    static const char *const hdrs[] = { "To", "Cc" };
    if (!window_id || !contact || !msg)
        return;
    for (size_t i = 0; i < 2; i++) {
        char *v = message_header(msg, len, hdrs[i]);
        int found = followup_display_name(v, contact, name, sizeof name);
        free(v);
        if (!found)
            continue;
        snprintf(key, sizeof key, "fu-name:%s", window_id);
        if (store_kv_set(u->store, key, name) < 0)
            log_error("followup: cannot remember the name of %s", contact);
        return;
    }
}

/* ---------- listing: untilctl followups, followups@ ---------- */

struct item {
    const struct window *w;
    time_t at;
};

struct listing {
    const struct policy_cfg *cfg;
    const char *rep;
    time_t from, to;
    struct item *v;
    size_t n, more;
};

static int list_one(const struct window *w, void *arg)
{
    struct listing *l = arg;
    if (w->rrule || w->until == WHEN_NEVER || w->until > l->to || w->until < l->from - NEAR_S)
        return 0;
    if (l->rep && !(w->owner && (!strcasecmp(w->owner, l->rep) ||
                                 (!strchr(l->rep, '@') && !strncasecmp(w->owner, l->rep, strlen(l->rep)) &&
                                  w->owner[strlen(l->rep)] == '@'))))
        return 0;
    time_t at = followup_due_at(l->cfg, w);
    if (!at || at < l->from || at > l->to)
        return 0;
    if (l->n == LIST_MAX) {
        l->more++;
        return 0;
    }
    l->v[l->n++] = (struct item){ w, at };
    return 0;
}

static int by_time(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    return strcmp(x->w->id, y->w->id);
}

static struct json_object *item_json(struct untild *u, const struct window *w, const char *when, size_t held)
{
    struct json_object *o = json_object_new_object();
    if (o && (ujson_add_str(o, "window", w->id) | ujson_add_str(o, "contact", w->who[0])
              | ujson_add_str(o, "date", when) | ujson_add_str(o, "reason", w->reason)
              | ujson_add_str(o, "owner", w->owner) | ujson_add_int(o, "held", (int64_t)held)
              | ujson_add_bool(o, "sent", store_followup_sent(u->store, w->id, w->until) == 1))) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

void followup_list_into(struct untild *u, const char *rep, int days, int json, struct strbuf *b)
{
    struct ujson_list jl;
    time_t now = untild_now(u);
    struct listing l = { &u->pcfg, rep, now - (time_t)u->cfg->followup_catch_up,
                         now + (time_t)days * 86400, calloc(LIST_MAX, sizeof(struct item)), 0, 0 };
    char when[64];
    if (!l.v) {
        sb_puts(b, json ? "[]\n" : "out of memory\n");
        return;
    }
    windows_foreach(u->ix, list_one, &l);
    qsort(l.v, l.n, sizeof *l.v, by_time);
    if (json)
        ujson_list_open(&jl, b, NULL);
    else if (!l.n)
        sb_printf(b, "no follow-ups due in the next %d day%s\n", days, days == 1 ? "" : "s");
    else
        sb_printf(b, "%-25s %-30s %-6s %-16s %s\n", "DATE", "CONTACT", "HELD", "OWNER", "REASON");
    const struct window **wins = calloc(l.n ? l.n : 1, sizeof *wins);
    size_t *counts = calloc(l.n ? l.n : 1, sizeof *counts);
    for (size_t i = 0; wins && i < l.n; i++)
        wins[i] = l.v[i].w;
    if (!wins || !counts || held_tally(u, wins, l.n, rep, counts) < 0) {
        free(wins);
        free(counts);
        free(l.v);
        sb_puts(b, json ? "[]\n" : "out of memory\n");
        return;
    }
    for (size_t i = 0; i < l.n; i++) {
        const struct window *w = l.v[i].w;
        size_t held = counts[i];
        when_format(l.v[i].at, w->tz ? w->tz : u->cfg->timezone, when, sizeof when);
        if (json) {
            ujson_list_add(&jl, item_json(u, w, when, held));
        } else {
            sb_printf(b, "%-25s %-30s %-6zu %-16s %s\n", when, w->who[0], held,
                      w->owner ? w->owner : "-", w->reason ? w->reason : "");
        }
    }
    if (json) {
        ujson_list_close(&jl, NULL);
        sb_puts(b, "\n");
    }
    if (l.more)
        log_info("followup: listing capped at %d follow-ups (%zu more)", LIST_MAX, l.more);
    free(wins);
    free(counts);
    free(l.v);
}

int followup_list(struct untild *u, int argc, char **argv, const char *rep, int json,
                  struct strbuf *b)
{
    int days = 7;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (!strcmp(argv[i], "--days") && i + 1 < argc) {
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 0 || v > 3660) {
                sb_puts(b, "followups: --days takes 0..3660\n");
                return 2;
            }
            days = (int)v;
        } else {
            sb_puts(b, "usage: untilctl followups [--days N] [--json]\n");
            return 2;
        }
    }
    followup_list_into(u, rep, days, json, b);
    return 0;
}

void followup_mail_list(struct untild *u, const char *rep)
{
    struct strbuf b = { 0 };
    sb_puts(&b, "Your follow-ups due in the next 7 days:\n\n");
    followup_list_into(u, rep, 7, 0, &b);
    notice_send_subject(u, NOTICE_FOLLOWUPS, rep, NULL, b.p ? b.p : "", NULL, 0);
    sb_free(&b);
}
