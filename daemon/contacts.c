/* contacts.c - the contact history and cadence at the gate and in the
 * release (see contacts.h).
 *
 * Synopsis: contacts_record() wherever a contact happens; the gate asks
 * contacts_gate_rcpt() at RCPT (reject rules) and contacts_gate_verdicts()
 * after DATA (hold and flag rules); the release scheduler derives due
 * times with contacts_lifecycle() and tells contacts_delivery_started /
 * _ended around a delivery.
 *
 * Why this shape: the arithmetic is pure (cadence.c); this file only
 * reads the history from the store (at most HISTORY_MAX newest contacts
 * in the rule's scope, one indexed query) and hands plain values to it.
 * A cadence hold is marked in the spool (window_id "cadence"), so a
 * restart derives the same due time from the file and the history; the
 * message's own delivery is not counted against it (skip its spool id).
 *
 * Diagnostics: "cadence: <rcpt> held/flagged/rejected for <rep>: <why>"
 * (info); store errors (error, the contact then counts as allowed: a
 * broken history must not hold mail forever). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "untild/contacts.h"
#include "untild/address.h"
#include "untild/daemon.h"
#include "untild/json.h"
#include "untild/log.h"
#include "untild/store.h"
#include "untild/strbuf.h"
#include "untild/when.h"

#define HISTORY_MAX 64      /* newest contacts read per decision (a cap above this is refused at load) */
#define WHY_MAX 256
#define REFS_MAX 32         /* Message-IDs of References looked at */

struct hist {
    struct cadence_contact c[HISTORY_MAX];
    char buf[HISTORY_MAX][3][128];
    size_t n;
    const char *skip;
};

static int take(const struct store_contact *sc, void *arg)
{
    struct hist *h = arg;
    if (h->skip && sc->msg_id && !strcmp(sc->msg_id, h->skip))
        return 0;
    if (h->n == HISTORY_MAX)
        return 1;
    size_t i = h->n++;
    snprintf(h->buf[i][0], sizeof h->buf[i][0], "%s", sc->contact ? sc->contact : "");
    snprintf(h->buf[i][1], sizeof h->buf[i][1], "%s", sc->rep ? sc->rep : "");
    snprintf(h->buf[i][2], sizeof h->buf[i][2], "%s", sc->channel ? sc->channel : "");
    h->c[i] = (struct cadence_contact){ sc->t, h->buf[i][0], sc->rep ? h->buf[i][1] : NULL,
                                        h->buf[i][2] };
    return 0;
}

/* The newest contacts in r's scope of rcpt, since the rule's longest span. */
static int history(struct untild *u, const struct cadence_rule *r, const char *rcpt,
                   const char *skip, time_t now, struct hist *h)
{
    char key[ADDR_MAX + 1];
    h->n = 0;
    h->skip = skip;
    if (!cadence_key(r, rcpt, key, sizeof key))
        return -1;
    /* Look back past both spans (a day more for DST and zones). */
    long days = r->min_gap.days > r->per.days ? r->min_gap.days : r->per.days;
    int64_t secs = r->min_gap.secs > r->per.secs ? r->min_gap.secs : r->per.secs;
    time_t since = now - (time_t)(days + 1) * 86400 - (time_t)secs;
    return store_contacts(u->store, key, since, HISTORY_MAX + 8, take, h);
}

/* Overrides set with untilctl (store table cadence_overrides), cached. */
static struct cadence_overrides rt;
static int rt_loaded;

static int rt_row(const char *who, const char *opts, const char *by, time_t t, void *arg)
{
    char line[1024], err[200];
    (void)by; (void)t; (void)arg;
    snprintf(line, sizeof line, "%s cadence %s", who, opts);
    if (cadence_override_parse(line, "+", &rt, err, sizeof err) < 0)
        log_warn("cadence: stored override for %s ignored: %s", who, err);
    return 0;
}

static const struct cadence_overrides *runtime(const struct untild *u)
{
    if (!rt_loaded) {
        cadence_overrides_clear(&rt);
        if (store_cadence_foreach(u->store, rt_row, NULL) == 0)
            rt_loaded = 1;
    }
    return &rt;
}

/* A rule is configured: [cadence] defaults, or an override. */
static int cadence_on(const struct untild *u)
{
    return cadence_rule_active(&u->cfg->cadence) ||
           (u->cfg->cadence_ovr && u->cfg->cadence_ovr->n) || runtime(u)->n;
}

void contacts_record(struct untild *u, const char *rcpt, const char *rep, const char *channel,
                     const char *msg_id, time_t t)
{
    if (!rcpt || !strchr(rcpt, '@'))
        return;
    if (store_contact_add(u->store, &(struct store_contact){ t, rcpt, rep, channel, msg_id }) < 0)
        log_error("cadence: cannot record the contact of %s (%s)", rcpt, channel);
}

struct seen_key { const char *key; int found; };

static int has_key(const struct store_contact *c, void *arg)
{
    struct seen_key *k = arg;
    if (c->msg_id && !strcmp(c->msg_id, k->key)) {
        k->found = 1;
        return 1;
    }
    return 0;
}

void contacts_calendar(struct untild *u, const char *rep, const char *att, const char *key, time_t t)
{
    struct seen_key k = { key, 0 };
    if (!key || !att)
        return;
    /* once per object and sequence: among the attendee's newest contacts */
    if (store_contacts(u->store, att, 0, HISTORY_MAX, has_key, &k) < 0 || k.found)
        return;
    contacts_record(u, att, rep, "caldav", key, t);
}

void contacts_inbound(struct untild *u, const char *from, const char *rep, const char *message_id,
                      time_t t)
{
    if (!from || !message_id || !cadence_on(u))
        return;
    if (store_inbound_add(u->store, message_id, from, rep, t) < 0)
        log_error("cadence: cannot record the message %s from %s", message_id, from);
}

void contacts_delivery_started(struct untild *u, const struct spool_meta *m, time_t t)
{
    if (m->kind != SPOOL_KIND_MESSAGE || m->returned)
        return;
    for (size_t i = 0; i < m->nrcpts; i++)
        if (m->rcpts[i].state == RCPT_HELD)
            contacts_record(u, m->rcpts[i].norm, m->rep, "release", m->id, t);
}

void contacts_delivery_ended(struct untild *u, const struct spool_meta *m)
{
    if (m->kind != SPOOL_KIND_MESSAGE)
        return;
    for (size_t i = 0; i < m->nrcpts; i++)
        if (m->rcpts[i].state != RCPT_DONE &&
            store_contact_forget(u->store, m->rcpts[i].norm, m->id, "release") < 0)
            log_error("cadence: cannot forget the undelivered contact of %s", m->rcpts[i].norm);
}

static const char *domain_of(const char *a)
{
    const char *at = a ? strrchr(a, '@') : NULL;
    return at && at[1] ? at + 1 : NULL;
}

int contacts_rule(const struct untild *u, const char *rep, const char *rcpt, struct cadence_rule *r)
{
    const struct config *c = u->cfg;
    if (!cadence_on(u) || !rcpt)
        return 0;
    if (cadence_listed(c->cadence_exempt, rcpt))
        return 0;
    /* the rep's colleagues: the rep's own domain, or the owner's */
    const char *rd = domain_of(rep), *od = domain_of(c->owner), *d = domain_of(rcpt);
    if (d && ((rd && !strcasecmp(rd, d)) || (!rd && od && !strcasecmp(od, d))))
        return 0;
    *r = c->cadence;
    cadence_override_apply(c->cadence_ovr, rcpt, r);
    cadence_override_apply(runtime(u), rcpt, r);   /* untilctl's word is the last */
    return cadence_rule_active(r);
}

time_t contacts_next_allowed(struct untild *u, const struct cadence_rule *r, const char *rcpt,
                             const char *skip_id, time_t now, char *why, size_t whysz)
{
    struct hist *h = malloc(sizeof *h);
    struct cadence_result res;
    if (why && whysz)
        why[0] = '\0';
    if (!h)
        return 0;
    if (history(u, r, rcpt, skip_id, now, h) < 0) {
        free(h);
        return 0;
    }
    cadence_next_allowed(r, u->cfg->timezone, h->c, h->n, now, &res);
    if (res.limit != CADENCE_OK && why)
        cadence_why(r, u->cfg->timezone, h->c, &res, why, whysz);
    free(h);
    return res.limit == CADENCE_OK ? 0 : res.next;
}

/* ---------- exemptions that depend on the message ---------- */

/* The next Message-ID in a list ("<a@b> <c@d>", or one bare id). */
static const char *next_id(const char *p, char *out, size_t sz)
{
    const char *lt = strchr(p, '<');
    if (!lt) {
        if (!*p || strchr(p, '>'))
            return NULL;
        snprintf(out, sz, "%s", p);   /* one bare id (message.c strips <>) */
        return p + strlen(p);
    }
    const char *gt = strchr(lt, '>');
    if (!gt || (size_t)(gt - lt - 1) >= sz)
        return NULL;
    memcpy(out, lt + 1, (size_t)(gt - lt - 1));
    out[gt - lt - 1] = '\0';
    return gt + 1;
}

/* A reply to a message rcpt sent the rep (the customer started it), or a
 * calendar REPLY to rcpt's own invitation. */
static int customer_started(struct untild *u, const struct message_facts *f, const char *rcpt)
{
    char id[512];
    if (!f)
        return 0;
    if (f->method == IMIP_REPLY && f->organizer && !strcasecmp(f->organizer, rcpt))
        return 1;
    if (f->in_reply_to && next_id(f->in_reply_to, id, sizeof id) &&
        store_inbound_has(u->store, id, rcpt) == 1)
        return 1;
    const char *p = f->references;
    for (int k = 0; p && k < REFS_MAX && (p = next_id(p, id, sizeof id)); k++)
        if (store_inbound_has(u->store, id, rcpt) == 1)
            return 1;
    return 0;
}

/* ---------- the gate ---------- */

static struct window *pseudo;       /* one per recipient of the last call */
static char (*pseudo_why)[WHY_MAX];
static size_t npseudo;

static int pseudo_room(size_t n)
{
    if (n <= npseudo)
        return 0;
    struct window *w = realloc(pseudo, n * sizeof *w);
    if (!w)
        return -1;
    pseudo = w;
    char (*y)[WHY_MAX] = realloc(pseudo_why, n * sizeof *y);
    if (!y)
        return -1;
    pseudo_why = y;
    npseudo = n;
    return 0;
}

void contacts_gate_verdicts(struct untild *u, const char *rep, const struct message_facts *f,
                            const char *const *rcpts, size_t n, struct verdict *v, time_t now)
{
    struct cadence_rule r;
    if (!cadence_on(u) || pseudo_room(n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (v[i].action != ACTION_ALLOW || v[i].why || !contacts_rule(u, rep, rcpts[i], &r) ||
            r.action == ACTION_REJECT || customer_started(u, f, rcpts[i]))
            continue;
        char *why = pseudo_why[i];
        time_t next = contacts_next_allowed(u, &r, rcpts[i], NULL, now, why, WHY_MAX);
        if (next <= now)
            continue;
        struct window *w = &pseudo[i];
        memset(w, 0, sizeof *w);
        snprintf(w->id, sizeof w->id, "%s", CONTACTS_WINDOW_ID);
        w->reason = why;
        w->until = next;
        w->tz = u->cfg->timezone;
        w->action = r.action;
        v[i] = (struct verdict){ .action = r.action, .w = w, .quiet_until = next, .release_at = next };
        log_info("cadence: %s %s for %s: %s", rcpts[i], r.action == ACTION_HOLD ? "held" : "flagged",
                 rep ? rep : "-", why);
    }
}

int contacts_gate_rcpt(struct untild *u, const char *rep, const char *rcpt, time_t now,
                       char *reply, size_t replysz)
{
    struct cadence_rule r;
    char why[WHY_MAX], when[64];
    if (!contacts_rule(u, rep, rcpt, &r) || r.action != ACTION_REJECT)
        return 0;
    time_t next = contacts_next_allowed(u, &r, rcpt, NULL, now, why, sizeof why);
    if (next <= now)
        return 0;
    snprintf(reply, replysz, "550 5.7.1 %s may not be contacted again before %s (%s)", rcpt,
             when_format(next, u->cfg->timezone, when, sizeof when), why);
    store_audit(u->store, &(struct audit_rec){ now, "rejected", rep, rcpt, CONTACTS_WINDOW_ID,
                NULL, why });
    log_info("cadence: %s rejected for %s: %s", rcpt, rep ? rep : "-", why);
    return 1;
}

/* ---------- the release ---------- */

static time_t hold_fn(void *arg, const struct spool_meta *m, const struct spool_rcpt *rc, time_t now)
{
    struct untild *u = arg;
    struct cadence_rule r;
    if (!rc->window_id || strcmp(rc->window_id, CONTACTS_WINDOW_ID) ||
        !contacts_rule(u, m->rep, rc->norm, &r) || r.action != ACTION_HOLD)
        return 0;
    return contacts_next_allowed(u, &r, rc->norm, m->id, now, NULL, 0);
}

const struct lifecycle_ext *contacts_lifecycle(struct untild *u)
{
    static struct lifecycle_ext ext = { hold_fn, NULL };
    if (!cadence_on(u))
        return NULL;
    ext.arg = u;
    return &ext;
}

/* ---------- untilctl check ---------- */

/* {"next_allowed":T,"why":TEXT|null,"contacts":[{"t","contact","rep","channel"}...]} */
static struct json_object *check_json(struct untild *u, const struct hist *h, time_t next, time_t now,
                                      const char *when, const char *why)
{
    struct json_object *o = json_object_new_object(), *a = json_object_new_array();
    int e = !o || !a;
    for (size_t i = 0; !e && i < h->n && i < 10; i++) {
        char t[64];
        struct json_object *c = json_object_new_object();
        e |= !c || (ujson_add_str(c, "t", when_format(h->c[i].t, u->cfg->timezone, t, sizeof t))
                    | ujson_add_str(c, "contact", h->c[i].contact) | ujson_add_str(c, "rep", h->c[i].rep)
                    | ujson_add_str(c, "channel", h->c[i].channel));
        e |= ujson_push(a, c);
    }
    if (e || (ujson_add_str(o, "next_allowed", when) | ujson_add_str(o, "why", next > now ? why : NULL)
              | ujson_add(o, "contacts", a))) {
        if (e)
            json_object_put(a);
        json_object_put(o);
        return NULL;
    }
    return o;
}

int contacts_check(struct untild *u, const char *rcpt, time_t now, struct strbuf *b, struct json_object *json)
{
    struct cadence_rule r;
    char why[WHY_MAX], when[64];
    int rc = 0;
    if (!contacts_rule(u, NULL, rcpt, &r))
        return 0;
    struct hist *h = malloc(sizeof *h);
    if (!h || history(u, &r, rcpt, NULL, now, h) < 0) {
        free(h);
        return 0;
    }
    time_t next = contacts_next_allowed(u, &r, rcpt, NULL, now, why, sizeof why);
    when_format(next > now ? next : now, u->cfg->timezone, when, sizeof when);
    if (json) {
        rc = ujson_add(json, "cadence", check_json(u, h, next, now, when, why));
    } else {
        sb_printf(b, "cadence: next contact allowed %s%s%s\n", next > now ? when : "now",
                  next > now ? ": " : "", next > now ? why : "");
        for (size_t i = 0; i < h->n && i < 10; i++) {
            char t[64];
            sb_printf(b, "  %s  %-30s %-20s %s\n", when_format(h->c[i].t, u->cfg->timezone, t, sizeof t),
                      h->c[i].contact, h->c[i].rep ? h->c[i].rep : "-", h->c[i].channel);
        }
    }
    free(h);
    return rc;
}

/* ---------- untilctl cadence ---------- */

struct listing { struct strbuf *b; int json, n; struct ujson_list jl; };

static void list_one(struct listing *l, const char *who, const char *opts, const char *source)
{
    if (l->json) {
        struct json_object *o = json_object_new_object();
        if (o && (ujson_add_str(o, "who", who) | ujson_add_str(o, "options", opts)
                  | ujson_add_str(o, "source", source))) {
            json_object_put(o);
            o = NULL;
        }
        ujson_list_add(&l->jl, o);
        l->n++;
    } else {
        sb_printf(l->b, "%-30s %-40s %s\n", who, opts, source);
        l->n++;
    }
}

static int list_rt(const char *who, const char *opts, const char *by, time_t t, void *arg)
{
    char src[300];
    (void)t;
    snprintf(src, sizeof src, "untilctl (%s)", by ? by : "?");
    list_one(arg, who, opts, src);
    return 0;
}

static void opts_text(const struct cadence_override *o, char *buf, size_t sz)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < o->nopt && k < sz; i++)
        k += (size_t)snprintf(buf + k, sz - k, "%s%s=%s%s%s", i ? " " : "", o->key[i],
                              strchr(o->val[i], ' ') ? "\"" : "", o->val[i],
                              strchr(o->val[i], ' ') ? "\"" : "");
}

static int cmd_list(struct untild *u, int json, struct strbuf *b)
{
    struct listing l = { b, json, 0, { 0 } };
    const struct cadence_overrides *f = u->cfg->cadence_ovr;
    char opts[400];
    if (json)
        ujson_list_open(&l.jl, b, NULL);
    for (size_t i = 0; f && i < f->n; i++) {
        opts_text(&f->v[i], opts, sizeof opts);
        list_one(&l, f->v[i].who, opts, "window file");
    }
    store_cadence_foreach(u->store, list_rt, &l);
    if (json) {
        ujson_list_close(&l.jl, NULL);
        sb_puts(b, "\n");
    }
    else if (!l.n)
        sb_puts(b, "no cadence overrides\n");
    return 0;
}

int contacts_cmd(struct untild *u, int argc, char **argv, int admin, const char *rep, struct strbuf *b,
                 int json)
{
    char err[256], opts[400], line[1200];
    if (argc >= 2 && !strcmp(argv[1], "list"))
        return cmd_list(u, json, b);
    int set = argc >= 4 && !strcmp(argv[1], "set"), clear = argc == 3 && !strcmp(argv[1], "clear");
    if (!set && !clear) {
        sb_puts(b, "usage: cadence list | cadence set WHO KEY=VALUE... | cadence clear WHO\n");
        return 2;
    }
    if (!admin) {
        sb_puts(b, "cadence: admins only (the rule is the team's)\n");
        return 4;
    }
    /* the options as one string, quoted where a value has a space */
    size_t k = 0;
    opts[0] = '\0';
    for (int i = 3; set && i < argc && k < sizeof opts; i++) {
        const char *eq = strchr(argv[i], '=');
        int q = eq && strchr(eq, ' ');
        k += (size_t)snprintf(opts + k, sizeof opts - k, "%s%.*s%s%s%s", k ? " " : "",
                              eq ? (int)(eq - argv[i] + 1) : (int)strlen(argv[i]), argv[i],
                              q ? "\"" : "", eq ? eq + 1 : "", q ? "\"" : "");
    }
    struct cadence_overrides tmp = { 0 };
    snprintf(line, sizeof line, "%s cadence %s", argv[2], set ? opts : "action=hold");
    if (cadence_override_parse(line, u->pcfg.delims, &tmp, err, sizeof err) < 0 || tmp.n != 1) {
        sb_printf(b, "cadence: %s\n", tmp.n > 1 ? "one address or domain at a time" : err);
        cadence_overrides_clear(&tmp);
        return 2;
    }
    int rc = set ? store_cadence_set(u->store, tmp.v[0].who, opts, rep ? rep : "admin", untild_now(u))
                 : store_cadence_del(u->store, tmp.v[0].who);
    if (rc < 0 && clear && errno == ENOENT) {
        sb_printf(b, "cadence: no override for %s\n", tmp.v[0].who);
        cadence_overrides_clear(&tmp);
        return 5;
    }
    if (rc < 0) {
        sb_puts(b, "cadence: cannot record it (see the daemon's log)\n");
        cadence_overrides_clear(&tmp);
        return 1;
    }
    store_audit(u->store, &(struct audit_rec){ untild_now(u), set ? "cadence-set" : "cadence-cleared",
                rep, tmp.v[0].who, NULL, NULL, set ? opts : NULL });
    sb_printf(b, "%s %s%s%s\n", set ? "set" : "cleared", tmp.v[0].who, set ? ": " : "", set ? opts : "");
    cadence_overrides_clear(&tmp);
    rt_loaded = 0;      /* read again */
    return 0;
}
