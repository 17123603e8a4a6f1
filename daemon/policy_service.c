/* policy_service.c - the Postfix SMTP access policy delegation service.
 *
 * For sites that already run Postfix: smtpd asks untild (check_policy_service
 * in smtpd_recipient_restrictions and smtpd_end_of_data_restrictions) and
 * untild answers with the same windows and policy as its own SMTP gate.
 *
 * Protocol (Postfix SMTPD_POLICY_README): a request is "name=value\n" lines
 * closed by an empty line; the answer is "action=...\n\n". Postfix keeps the
 * connection open and sends many requests on it. `recipient` is present at
 * RCPT (and at DATA/END-OF-MESSAGE only with exactly one recipient);
 * `instance` ties the requests of one message together; `queue_id` is known
 * for certain at END-OF-MESSAGE. Unknown attributes are ignored. On an
 * internal error untild answers nothing and closes the connection, so
 * Postfix applies smtpd_policy_service_default_action (451 by default:
 * the client retries; nothing is lost and nothing slips through).
 *
 * Decisions:
 *  - RCPT, reject window: "550 5.7.1 <why>" (final, as in the gate). The
 *    numeric form is access(5)'s REJECT with an explicit code: a plain
 *    "REJECT" would answer with Postfix's access_map_reject_code (554).
 *  - RCPT, flag window: "PREPEND X-Untild: flagged; ..." (PREPEND is allowed
 *    at RCPT, not in end-of-data restrictions).
 *  - RCPT, hold window: remembered for the instance, answer DUNNO. The HOLD
 *    itself is answered at END-OF-MESSAGE, where the queue id is known for
 *    sure: a HOLD at RCPT would hold the message as well, but if the site
 *    forgot the end-of-data restriction untild would never learn the queue
 *    id and the message would stay in Postfix's hold queue for good. So
 *    check_policy_service must be in smtpd_end_of_data_restrictions too, or
 *    held mail passes (logged once per instance at expiry).
 *  - END-OF-MESSAGE with held recipients: record (queue id, rep, the held
 *    recipients normalised, and the due time with the window end it came
 *    from) in the store ("pfhold:<qid>" plus the index "pfhold:index"),
 *    then answer "HOLD <reason>": Postfix holds the whole message, every
 *    recipient. If the record cannot be written, answer nothing (internal
 *    error -> Postfix defers).
 *  - When a held message is due is DERIVED, never frozen: at every window
 *    change (policy_service_kick, called wherever release_kick is), at the
 *    moment its derivation may change by itself (the end of the covering
 *    windows, the due time), and at start-up from the stored record, by
 *    policy_service_evaluate from the recipients' windows as they stand
 *    (hold-action windows only, matched as at RCPT). Ending a window by
 *    hand (or an allow exception) releases at once; a window that ran out
 *    by itself still waits for its aligned release (release_time).
 *  - A 1 s timer runs `postsuper -c <postfix_config_dir> -H <qid>...` for
 *    due entries (fork/exec, one child at a time, reaped with WNOHANG from
 *    the timer), audits "released" and asks for immediate delivery
 *    (postqueue -i: -H only moves the file to the deferred queue). Held
 *    longer than Postfix's maximal_queue_lifetime, a released message
 *    bounces as expired: raise it to the longest hold. postsuper needs
 *    root (or the Postfix mail_owner): untild must run with that privilege.
 *    A failed postsuper is retried after PS_RETRY_S (in memory: a restart
 *    tries again at once).
 * Known limit: a recipient untild answered DUNNO for may still be rejected
 * by a later restriction; its hold verdict then still holds the message. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "untild/policy_service.h"
#include "untild/address.h"
#include "untild/daemon.h"
#include "untild/lifecycle.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/store.h"
#include "untild/when.h"

#define PS_MAX_RCPTS 1000       /* per instance (Postfix's default limit) */
#define PS_TABLE_MAX 4096
#define PS_TABLE_TTL_MS (3600 * 1000)
#define PS_MAX_CONNS 256
#define PS_IDLE_MS (600 * 1000) /* Postfix's max_idle is 300 s */
#define PS_OUT_MAX (64 * 1024)  /* stop reading while this much is unsent */
#define PS_BATCH 32             /* queue ids per postsuper run */
#define PS_RETRY_S 60
#define PS_INDEX_KEY "pfhold:index"

/* ---- protocol ----------------------------------------------------------- */

/* The attributes we keep, with their slots (a constant table). */
struct attr_slot { const char *name; size_t off, size; };
#define SLOT(f) offsetof(struct ps_request, f), sizeof(((struct ps_request *)0)->f)
static const struct attr_slot attr_slots[] = {
    { "request", SLOT(request) },
    { "protocol_state", SLOT(protocol_state) },
    { "instance", SLOT(instance) },
    { "queue_id", SLOT(queue_id) },
    { "sender", SLOT(sender) },
    { "recipient", SLOT(recipient) },
    { "sasl_username", SLOT(sasl_username) },
};

int policy_service_parse(const char *buf, size_t len, struct ps_request *r)
{
    memset(r, 0, sizeof *r);
    if (memchr(buf, '\0', len))
        return -1;
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *eq = memchr(p, '=', (size_t)(le - p));
        if (le == p)                  /* an empty line inside: not ours */
            return -1;
        if (!eq || eq == p)
            return -1;
        size_t nlen = (size_t)(eq - p), vlen = (size_t)(le - eq - 1);
        for (size_t i = 0; i < sizeof attr_slots / sizeof attr_slots[0]; i++) {
            const struct attr_slot *s = &attr_slots[i];
            if (strlen(s->name) != nlen || memcmp(s->name, p, nlen))
                continue;
            if (vlen >= s->size)
                return -1;
            char *dst = (char *)r + s->off;
            memcpy(dst, eq + 1, vlen);
            dst[vlen] = '\0';
            break;
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
}

int policy_service_queue_id_ok(const char *q)
{
    size_t n = 0;
    for (; q[n]; n++)
        if (!((q[n] >= '0' && q[n] <= '9') || (q[n] >= 'A' && q[n] <= 'Z') ||
              (q[n] >= 'a' && q[n] <= 'z')))
            return 0;
    /* "ALL" is postsuper's wildcard, never a queue id. */
    return n > 0 && n < PS_QUEUE_ID_MAX && strcmp(q, "ALL");
}

struct ps_inst {
    char id[128];
    int64_t touched_ms;
    struct ps_rcpt *r;
    size_t n;
    size_t nheld;
    time_t release_at;
    time_t quiet_until;
};

struct ps_table {
    struct ps_inst **e;
    size_t n, max;
    int64_t ttl_ms;
};

static void rcpt_free(struct ps_rcpt *r)
{
    free(r->norm);
    free(r->reason);
}

static void inst_free(struct ps_inst *in)
{
    for (size_t i = 0; i < in->n; i++)
        rcpt_free(&in->r[i]);
    free(in->r);
    free(in);
}

struct ps_table *policy_service_table_new(size_t max_entries, int64_t ttl_ms)
{
    struct ps_table *t = calloc(1, sizeof *t);
    if (!t || !(t->e = calloc(max_entries ? max_entries : 1, sizeof *t->e))) {
        free(t);
        return NULL;
    }
    t->max = max_entries ? max_entries : 1;
    t->ttl_ms = ttl_ms;
    return t;
}

void policy_service_table_free(struct ps_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        inst_free(t->e[i]);
    free(t->e);
    free(t);
}

size_t policy_service_table_count(const struct ps_table *t)
{
    return t->n;
}

static void table_drop(struct ps_table *t, size_t i)
{
    t->e[i] = t->e[--t->n];
}

void policy_service_table_expire(struct ps_table *t, int64_t now_ms)
{
    for (size_t i = 0; i < t->n;) {
        struct ps_inst *in = t->e[i];
        if (now_ms - in->touched_ms >= t->ttl_ms) {
            if (in->nheld)
                log_warn("policy_service: instance %s had held recipients but no "
                         "END-OF-MESSAGE request came (is check_policy_service in "
                         "smtpd_end_of_data_restrictions?)", in->id);
            inst_free(in);
            table_drop(t, i);
        } else {
            i++;
        }
    }
}

static struct ps_inst *table_find(struct ps_table *t, const char *id, size_t *idx)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->e[i]->id, id)) {
            if (idx)
                *idx = i;
            return t->e[i];
        }
    return NULL;
}

static struct ps_inst *table_get(struct ps_table *t, const char *id, int64_t now_ms)
{
    struct ps_inst *in = table_find(t, id, NULL);
    if (in)
        return in;
    policy_service_table_expire(t, now_ms);
    if (t->n == t->max) {            /* full: the least recently used goes */
        size_t old = 0;
        for (size_t i = 1; i < t->n; i++)
            if (t->e[i]->touched_ms < t->e[old]->touched_ms)
                old = i;
        log_warn("policy_service: instance table full; forgetting %s", t->e[old]->id);
        inst_free(t->e[old]);
        table_drop(t, old);
    }
    if (!(in = calloc(1, sizeof *in)))
        return NULL;
    snprintf(in->id, sizeof in->id, "%s", id);
    t->e[t->n++] = in;
    return in;
}

/* Record a hold/flag verdict for rcpt in the instance (once per address). */
static int inst_add(struct ps_inst *in, const char *norm, const struct verdict *v)
{
    for (size_t i = 0; i < in->n; i++)
        if (!strcmp(in->r[i].norm, norm))
            return 0;
    if (v->action == ACTION_HOLD && (!in->nheld || v->release_at > in->release_at))
        in->release_at = v->release_at;
    if (v->action == ACTION_HOLD && (!in->nheld || v->quiet_until > in->quiet_until))
        in->quiet_until = v->quiet_until;
    if (in->n >= PS_MAX_RCPTS) {     /* the message is held all the same */
        if (v->action == ACTION_HOLD)
            in->nheld++;
        return 0;
    }
    struct ps_rcpt *nr = realloc(in->r, (in->n + 1) * sizeof *nr);
    if (!nr)
        return -1;
    in->r = nr;
    struct ps_rcpt *r = &in->r[in->n];
    memset(r, 0, sizeof *r);
    if (!(r->norm = strdup(norm)))
        return -1;
    if (v->w) {
        snprintf(r->window_id, sizeof r->window_id, "%s", v->w->id);
        if (v->w->reason && !(r->reason = strdup(v->w->reason))) {
            free(r->norm);
            return -1;
        }
    }
    r->action = v->action;
    in->n++;
    if (v->action == ACTION_HOLD)
        in->nheld++;
    return 0;
}

void policy_service_event_free(struct ps_event *ev)
{
    free(ev->reason);
    for (size_t i = 0; i < ev->nrcpts; i++)
        rcpt_free(&ev->rcpts[i]);
    free(ev->rcpts);
    memset(ev, 0, sizeof *ev);
}

/* Copy s into a protocol line: no control characters (they would end the
 * answer early), bounded. */
static void clean(char *dst, size_t dstsz, const char *s)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < dstsz; i++)
        dst[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? ' ' : s[i];
    dst[i] = '\0';
}

static int answer(char *ans, size_t anssz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int answer(char *ans, size_t anssz, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    /* Postfix reads answer lines up to its line limit: ours stay short. */
    n = snprintf(ans, anssz, "action=%s\n\n", line);
    return n < 0 || (size_t)n >= anssz ? -1 : 0;
}

static int answer_dunno(char *ans, size_t anssz)
{
    return answer(ans, anssz, "DUNNO");
}

/* The recipient as Postfix hands it over (internal form: unquoted, so
 * "\"jane@acme.com\"@relay" arrives as jane@acme.com@relay), normalised
 * into norm. A form the upstream may rewrite into an address we cannot
 * match (percent hack, bang path, quoted '@'; an address literal) is
 * refused, as the SMTP gate refuses it, and so is one we cannot read: it
 * would pass unmatched. A bare local name ("postmaster") is the upstream's
 * own and passes. Returns 0 (norm set), 1 (answer written) or -1. */
static int rcpt_normalize(const struct policy_cfg *cfg, const char *rcpt, char *norm,
                          size_t normsz, char *ans, size_t anssz)
{
    char ext[ADDR_MAX * 2], who[ADDR_MAX];
    const char *why = "address too long";
    unsigned facts = 0;
    int rc = -1;
    if (address_from_internal(rcpt, ext, sizeof ext) == 0)
        rc = address_normalize_ex(ext, cfg->delims, norm, normsz, &facts, &why);
    clean(who, sizeof who, rcpt);
    if (facts & ADDRESS_ROUTED) {
        log_info("policy_service: refused routed recipient %s", who);
        if (rc == 0)
            return answer(ans, anssz, "553 5.1.3 %s routes on to %s (percent hack, bang path or "
                          "quoted '@'): not accepted; address %s directly", who, norm, norm) < 0
                   ? -1 : 1;
        return answer(ans, anssz, "553 5.1.3 %s is a routed address (percent hack, bang path "
                      "or quoted '@'): not accepted", who) < 0 ? -1 : 1;
    }
    if (rc == 0 && (facts & ADDRESS_LITERAL)) {
        log_info("policy_service: refused address literal %s", who);
        return answer(ans, anssz, "553 5.1.3 %s: address literals are not accepted (no way to "
                      "tell whom they reach); use the domain name", who) < 0 ? -1 : 1;
    }
    if (rc == 0)
        return 0;
    if (!strchr(rcpt, '@'))
        return answer_dunno(ans, anssz) < 0 ? -1 : 1;
    return answer(ans, anssz, "501 5.1.3 Bad recipient address syntax: %s", why) < 0 ? -1 : 1;
}

static int at_rcpt(struct ps_table *t, const struct policy_cfg *cfg, const struct windows *ix,
                   const char *tz, const struct ps_request *r, time_t now, int64_t now_ms,
                   char *ans, size_t anssz, struct ps_event *ev)
{
    char norm[ADDR_MAX], when[64], why[256], who[ADDR_MAX];
    struct verdict v;
    if (!r->recipient[0])
        return answer_dunno(ans, anssz);
    int rc = rcpt_normalize(cfg, r->recipient, norm, sizeof norm, ans, anssz);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    enum action a = policy_rcpt(cfg, ix, norm, now, &v);
    switch (a) {
    case ACTION_REJECT:
        when_format(v.quiet_until, v.w && v.w->tz ? v.w->tz : tz, when, sizeof when);
        clean(why, sizeof why, v.w ? v.w->reason : NULL);
        clean(who, sizeof who, r->recipient);
        if (answer(ans, anssz, "550 5.7.1 %s is not to be contacted until %s%s%s",
                   who, when, why[0] ? " - " : "", why) < 0)
            return -1;
        ev->kind = PS_EV_REJECTED;
        snprintf(ev->rcpt, sizeof ev->rcpt, "%s", norm);
        if (v.w) {
            snprintf(ev->window_id, sizeof ev->window_id, "%s", v.w->id);
            if (v.w->reason && !(ev->reason = strdup(v.w->reason)))
                return -1;
        }
        return 0;
    case ACTION_FLAG:
    case ACTION_HOLD: {
        if (!r->instance[0]) {
            log_warn("policy_service: RCPT request without instance; cannot track %s", norm);
            return answer_dunno(ans, anssz);
        }
        struct ps_inst *in = table_get(t, r->instance, now_ms);
        if (!in || inst_add(in, norm, &v) < 0)
            return -1;
        in->touched_ms = now_ms;
        if (a == ACTION_HOLD)
            return answer_dunno(ans, anssz);
        when_format(v.quiet_until, "UTC", when, sizeof when);
        return answer(ans, anssz, "PREPEND X-Untild: flagged; recipient=<%s>; until=%s; window=%s",
                      norm, when, v.w ? v.w->id : "-");
    }
    default:
        if (r->instance[0]) {
            struct ps_inst *in = table_find(t, r->instance, NULL);
            if (in)
                in->touched_ms = now_ms;
        }
        return answer_dunno(ans, anssz);
    }
}

/* The windows may have changed since RCPT (ended by hand, cut short):
 * the hold is derived again now, as it will be at every later change.
 * Returns whether the message is still to be held (ev's times updated). */
static int still_held(const struct policy_cfg *cfg, const struct windows *ix,
                      struct ps_event *ev, size_t nheld, time_t now)
{
    const char *rc[PS_MAX_RCPTS];
    size_t n = 0;
    for (size_t i = 0; i < ev->nrcpts && n < PS_MAX_RCPTS; i++)
        if (ev->rcpts[i].action == ACTION_HOLD)
            rc[n++] = ev->rcpts[i].norm;
    if (n < nheld)                    /* some were not kept: keep the hold */
        return 1;
    struct ps_hold_eval e;
    policy_service_evaluate(cfg, ix, rc, n, now, ev->release_at, ev->quiet_until, &e);
    if (!e.covered && e.due <= now)
        return 0;
    ev->release_at = e.due;
    ev->quiet_until = e.quiet_until;
    return 1;
}

static int at_eom(struct ps_table *t, const struct policy_cfg *cfg, const struct windows *ix,
                  const char *tz, const struct ps_request *r, time_t now,
                  char *ans, size_t anssz, struct ps_event *ev)
{
    size_t idx;
    struct ps_inst *in = r->instance[0] ? table_find(t, r->instance, &idx) : NULL;
    if (!in)
        return answer_dunno(ans, anssz);
    table_drop(t, idx);
    ev->kind = PS_EV_MESSAGE;
    ev->rcpts = in->r;
    ev->nrcpts = in->n;
    ev->release_at = in->release_at;
    ev->quiet_until = in->quiet_until;
    snprintf(ev->queue_id, sizeof ev->queue_id, "%s", r->queue_id);
    in->r = NULL;
    in->n = 0;
    size_t nheld = in->nheld;
    inst_free(in);
    if (!nheld)
        return answer_dunno(ans, anssz);
    if (!still_held(cfg, ix, ev, nheld, now)) {
        log_info("policy_service: %s: its recipients' hold windows ended since RCPT; "
                 "not held", r->queue_id[0] ? r->queue_id : r->instance);
        return answer_dunno(ans, anssz);
    }
    if (!policy_service_queue_id_ok(r->queue_id)) {
        /* Without a queue id the hold could never be released: let it pass
         * rather than strand it in Postfix's hold queue. */
        log_error("policy_service: END-OF-MESSAGE for %s without a usable queue_id; "
                  "held recipients pass", r->instance);
        return answer_dunno(ans, anssz);
    }
    ev->held = 1;
    const char *first = NULL;
    for (size_t i = 0; i < ev->nrcpts && !first; i++)
        if (ev->rcpts[i].action == ACTION_HOLD)
            first = ev->rcpts[i].norm;
    char when[64];
    when_format(ev->release_at, tz, when, sizeof when);
    return answer(ans, anssz, "HOLD untild: %s is quiet; held until %s",
                  first ? first : "a recipient", when);
}

int policy_service_answer(struct ps_table *t, const struct policy_cfg *cfg,
                          const struct windows *ix, const char *tz,
                          const struct ps_request *r, time_t now, int64_t now_ms,
                          char *ans, size_t anssz, struct ps_event *ev)
{
    memset(ev, 0, sizeof *ev);
    if (strcmp(r->request, "smtpd_access_policy"))
        return -1;
    if (!tz)
        tz = "UTC";
    if (!strcasecmp(r->protocol_state, "RCPT"))
        return at_rcpt(t, cfg, ix, tz, r, now, now_ms, ans, anssz, ev);
    if (!strcasecmp(r->protocol_state, "END-OF-MESSAGE"))
        return at_eom(t, cfg, ix, tz, r, now, ans, anssz, ev);
    return answer_dunno(ans, anssz);
}

/* ---- when a held message is due (pure) --------------------------------- */

void policy_service_evaluate(const struct policy_cfg *cfg, const struct windows *ix,
                             const char *const *rcpts, size_t n, time_t now,
                             time_t prev_due, time_t prev_quiet_until,
                             struct ps_hold_eval *out)
{
    time_t due = 0, qmax = 0;
    int covered = 0;
    /* The rule of the spool (lifecycle.h): the window deciding at RCPT
     * time decides now; only hold windows hold; one that ended by itself
     * holds until its aligned release. */
    for (size_t i = 0; i < n; i++) {
        time_t q = 0, at = lifecycle_rcpt_release(cfg, ix, rcpts[i], now, NULL, &q);
        if (!at)
            continue;
        if (at > due)
            due = at;
        if (q > now) {
            covered = 1;
            if (q > qmax)
                qmax = q;
        }
    }
    if (!covered) {
        qmax = prev_quiet_until;
        if (now >= prev_quiet_until && prev_due > due)
            due = prev_due;
    }
    out->covered = covered;
    out->due = due;
    out->quiet_until = qmax;
}

/* ---- the daemon part: socket, connections, releases --------------------- */

struct conn {
    struct policy_service *m;
    int fd;
    char *in;                  /* PS_MAX_REQUEST bytes */
    size_t inlen;
    char *out;
    size_t outlen, outoff, outcap;
    int64_t last_ms;
    struct conn *next;
};

/* One message in Postfix's hold queue. Its due time is derived again
 * (policy_service_evaluate) whenever a window changes and whenever its
 * next change of state comes; due and quiet_until are kept (and stored)
 * only as the "last seen" inputs of that derivation. */
struct pending {
    char qid[PS_QUEUE_ID_MAX];
    time_t due;                /* derived: release at (<= now: now) */
    time_t quiet_until;        /* derived: latest end of the covering windows */
    int covered;               /* a hold window covers a recipient */
    time_t next_eval;          /* when the derivation may change by itself */
    time_t retry_at;
    char *rep;
    char *rcpts;               /* held recipients, normalised, space-separated */
    int busy;                  /* in the running postsuper batch */
};

struct policy_service {
    struct untild *u;
    char *listen;              /* as configured */
    char *unix_path;           /* to unlink at stop */
    int lfd;
    struct conn *conns;
    size_t nconns;
    struct ps_table *tab;
    uint64_t timer;
    struct pending *pend;
    size_t npend, cappend;
    pid_t child;               /* the running postsuper, or 0 */
    pid_t kicks[PS_BATCH];     /* running postqueue -i */
    size_t nkicks;
};

static void conn_close(struct conn *c)
{
    struct policy_service *m = c->m;
    for (struct conn **pp = &m->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    m->nconns--;
    loop_fd_del(m->u->loop, c->fd);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

/* ---- pending holds (store) ---- */

static struct pending *pend_find(struct policy_service *m, const char *qid)
{
    for (size_t i = 0; i < m->npend; i++)
        if (!strcmp(m->pend[i].qid, qid))
            return &m->pend[i];
    return NULL;
}

static int index_save(struct policy_service *m)
{
    size_t len = 1;
    for (size_t i = 0; i < m->npend; i++)
        len += strlen(m->pend[i].qid) + 1;
    char *s = malloc(len), *p = s;
    if (!s)
        return -1;
    *p = '\0';
    for (size_t i = 0; i < m->npend; i++)
        p += sprintf(p, "%s%s", i ? " " : "", m->pend[i].qid);
    int rc = store_kv_set(m->u->store, PS_INDEX_KEY, s);
    free(s);
    return rc;
}

static int pend_add(struct policy_service *m, const char *qid, time_t due,
                    time_t quiet_until, const char *rep, const char *rcpts)
{
    struct pending *p = pend_find(m, qid);
    if (!p) {
        if (m->npend == m->cappend) {
            size_t nc = m->cappend ? 2 * m->cappend : 16;
            struct pending *np = realloc(m->pend, nc * sizeof *np);
            if (!np)
                return -1;
            m->pend = np;
            m->cappend = nc;
        }
        p = &m->pend[m->npend++];
        memset(p, 0, sizeof *p);
        snprintf(p->qid, sizeof p->qid, "%s", qid);
    }
    free(p->rep);
    free(p->rcpts);
    p->rep = strdup(rep ? rep : "");
    p->rcpts = strdup(rcpts ? rcpts : "");
    p->due = due;
    p->quiet_until = quiet_until;
    p->covered = 1;
    p->next_eval = 0;          /* derive at the next chance */
    p->retry_at = 0;
    if (!p->rep || !p->rcpts)
        return -1;
    return 0;
}

static void pend_remove(struct policy_service *m, struct pending *p)
{
    free(p->rep);
    free(p->rcpts);
    *p = m->pend[--m->npend];
}

/* Value: "<due> <quiet_until>\n<rep>\n<rcpt> <rcpt>..." (records
 * written before quiet_until was kept have "<due>" alone: read as 0, which
 * keeps the due time as a floor, the safe side). */
static int pend_persist(struct policy_service *m, const struct pending *p)
{
    char key[16 + PS_QUEUE_ID_MAX], *val = NULL;
    snprintf(key, sizeof key, "pfhold:%s", p->qid);
    if (asprintf(&val, "%lld %lld\n%s\n%s", (long long)p->due, (long long)p->quiet_until,
                 p->rep, p->rcpts) < 0)
        return -1;
    int rc = store_kv_set(m->u->store, key, val);
    free(val);
    if (rc < 0)
        return -1;
    return index_save(m);
}

static void pend_load(struct policy_service *m)
{
    char *idx = store_kv_get(m->u->store, PS_INDEX_KEY);
    if (!idx)
        return;
    char *save = NULL;
    for (char *q = strtok_r(idx, " ", &save); q; q = strtok_r(NULL, " ", &save)) {
        char key[16 + PS_QUEUE_ID_MAX];
        if (!policy_service_queue_id_ok(q))
            continue;
        snprintf(key, sizeof key, "pfhold:%s", q);
        char *v = store_kv_get(m->u->store, key);
        if (!v) {
            log_warn("policy_service: held queue id %s has no record; skipped", q);
            continue;
        }
        char *rep = strchr(v, '\n'), *rcpts = rep ? strchr(rep + 1, '\n') : NULL;
        if (rep && rcpts) {
            *rep++ = '\0';
            *rcpts++ = '\0';
            char *e = NULL;
            time_t due = (time_t)strtoll(v, &e, 10);
            time_t qu = e && *e == ' ' ? (time_t)strtoll(e + 1, NULL, 10) : 0;
            if (pend_add(m, q, due, qu, rep, rcpts) < 0)
                log_error("policy_service: out of memory loading held queue id %s", q);
        } else {
            log_warn("policy_service: bad record for held queue id %s; skipped", q);
        }
        free(v);
    }
    free(idx);
    if (m->npend)
        log_info("policy_service: %zu message(s) held in Postfix's hold queue", m->npend);
}

/* ---- when is a held message due ---- */

/* Derive p's state from the windows as they stand; store it if it moved.
 * Bounded: one windows_match (and a few lookups) per held recipient. */
static void pend_evaluate(struct policy_service *m, struct pending *p, time_t now)
{
    struct untild *u = m->u;
    const char *rc[PS_MAX_RCPTS];
    size_t n = 0;
    char *list = strdup(p->rcpts), *save = NULL;
    if (!list) {
        p->next_eval = now + 1;      /* out of memory: try again soon */
        return;
    }
    for (char *r = strtok_r(list, " ", &save); r && n < PS_MAX_RCPTS; r = strtok_r(NULL, " ", &save))
        rc[n++] = r;
    struct ps_hold_eval ev;
    policy_service_evaluate(&u->pcfg, u->ix, rc, n, now, p->due, p->quiet_until, &ev);
    free(list);
    if (ev.due < now)
        ev.due = now;            /* release now; "now" is what is stored */
    /* Two "release now" results are the same result: no rewrite each tick
     * while postsuper is retried. */
    int due_moved = ev.due != p->due && !(ev.due <= now && p->due <= now);
    int moved = due_moved || ev.quiet_until != p->quiet_until;
    if (due_moved) {
        char was[64], is[64];
        log_info("policy_service: %s (in Postfix's hold queue) is now due %s (was %s)%s", p->qid,
                 ev.due <= now ? "now" : when_format(ev.due, u->cfg->timezone, is, sizeof is),
                 when_format(p->due, u->cfg->timezone, was, sizeof was),
                 ev.covered ? "" : ": no hold window covers its recipients any more");
    }
    p->covered = ev.covered;
    p->next_eval = ev.covered && ev.quiet_until < ev.due ? ev.quiet_until : ev.due;
    if (!moved)
        return;
    p->due = ev.due;
    p->quiet_until = ev.quiet_until;
    /* The record keeps the inputs of the next derivation: a failure only
     * means a restart derives from the older ones. */
    if (pend_persist(m, p) < 0)
        log_error("policy_service: cannot store the new due time of %s", p->qid);
}

/* ---- postsuper -H ---- */

/* fork/exec argv[0] from /usr/sbin or PATH. Returns the pid or -1. */
static pid_t spawn(const char *const *argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        /* The daemon blocks its signals (signalfd): the child must not
         * inherit that mask. Only async-signal-safe calls until exec. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        int fd = open("/dev/null", O_RDONLY);
        if (fd >= 0 && fd != 0) {
            dup2(fd, 0);
            close(fd);
        }
        char path[64];
        snprintf(path, sizeof path, "/usr/sbin/%s", argv[0]);
        execv(path, (char *const *)argv);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    if (pid < 0)
        log_error("policy_service: cannot fork %s: %s", argv[0], strerror(errno));
    return pid;
}

static void spawn_release(struct policy_service *m, time_t now)
{
    const char *argv[4 + 2 * PS_BATCH + 1];
    size_t argc = 0, n = 0;
    const char *dir = m->u->cfg->postfix_config_dir;
    argv[argc++] = "postsuper";
    if (dir) {
        argv[argc++] = "-c";
        argv[argc++] = dir;
    }
    for (size_t i = 0; i < m->npend && n < PS_BATCH; i++) {
        struct pending *p = &m->pend[i];
        if (p->busy || p->covered || p->due > now || p->retry_at > now)
            continue;
        argv[argc++] = "-H";
        argv[argc++] = p->qid;
        p->busy = 1;
        n++;
    }
    if (!n)
        return;
    argv[argc] = NULL;
    pid_t pid = spawn(argv);
    if (pid < 0) {
        for (size_t i = 0; i < m->npend; i++)
            if (m->pend[i].busy) {
                m->pend[i].busy = 0;
                m->pend[i].retry_at = now + PS_RETRY_S;
            }
        return;
    }
    m->child = pid;
    log_debug("policy_service: postsuper -H for %zu queue id(s), pid %ld", n, (long)pid);
}

/* postsuper -H moves the file to the deferred queue, which Postfix would
 * only scan at the next queue run: ask for immediate delivery. A failure
 * only delays the mail until that queue run. */
static void kick(struct policy_service *m, const char *qid)
{
    const char *dir = m->u->cfg->postfix_config_dir;
    const char *argv[6];
    size_t argc = 0;
    if (m->nkicks == PS_BATCH)
        return;
    argv[argc++] = "postqueue";
    if (dir) {
        argv[argc++] = "-c";
        argv[argc++] = dir;
    }
    argv[argc++] = "-i";
    argv[argc++] = qid;
    argv[argc] = NULL;
    pid_t pid = spawn(argv);
    if (pid > 0)
        m->kicks[m->nkicks++] = pid;
}

static void reap_kicks(struct policy_service *m)
{
    for (size_t i = 0; i < m->nkicks;) {
        int st;
        pid_t r = waitpid(m->kicks[i], &st, WNOHANG);
        if (r == 0) {
            i++;
            continue;
        }
        if (r > 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            log_warn("policy_service: postqueue -i failed; the mail goes at the next queue run");
        m->kicks[i] = m->kicks[--m->nkicks];
    }
}

static void audit_released(struct policy_service *m, const struct pending *p, time_t now)
{
    char *rc = strdup(p->rcpts), *save = NULL;
    int any = 0;
    if (rc)
        for (char *r = strtok_r(rc, " ", &save); r; r = strtok_r(NULL, " ", &save)) {
            store_audit(m->u->store, &(struct audit_rec){ now, "released", p->rep, r, NULL,
                        p->qid, "postfix hold queue" });
            any = 1;
        }
    if (!any)
        store_audit(m->u->store, &(struct audit_rec){ now, "released", p->rep, NULL, NULL,
                    p->qid, "postfix hold queue" });
    free(rc);
}

static void reap_child(struct policy_service *m, time_t now)
{
    int st;
    pid_t r = waitpid(m->child, &st, WNOHANG);
    if (r == 0)
        return;
    int ok = r == m->child && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (r < 0)
        log_error("policy_service: waitpid(postsuper): %s", strerror(errno));
    else if (!ok)
        log_error("policy_service: postsuper -H failed (%s %d); retrying in %d s",
                  WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                  PS_RETRY_S);
    m->child = 0;
    int changed = 0;
    for (size_t i = 0; i < m->npend;) {
        struct pending *p = &m->pend[i];
        if (!p->busy) {
            i++;
            continue;
        }
        p->busy = 0;
        if (!ok) {
            p->retry_at = now + PS_RETRY_S;
            i++;
            continue;
        }
        char key[16 + PS_QUEUE_ID_MAX];
        snprintf(key, sizeof key, "pfhold:%s", p->qid);
        log_info("policy_service: released %s from Postfix's hold queue", p->qid);
        audit_released(m, p, now);
        kick(m, p->qid);
        if (store_kv_del(m->u->store, key) < 0)
            log_error("policy_service: cannot delete record %s", key);
        pend_remove(m, p);
        changed = 1;
    }
    if (changed && index_save(m) < 0)
        log_error("policy_service: cannot save the hold index");
}

/* Derive what may have changed, then release what is due. */
static void evaluate_pass(struct policy_service *m, time_t now, int all)
{
    for (size_t i = 0; i < m->npend; i++) {
        struct pending *p = &m->pend[i];
        if (!p->busy && (all || p->next_eval <= now))
            pend_evaluate(m, p, now);
    }
    if (m->child <= 0 && !m->nkicks)
        spawn_release(m, now);
}

void policy_service_kick(struct policy_service *m, int windows_changed)
{
    if (!m)
        return;
    evaluate_pass(m, untild_now(m->u), windows_changed);
}

static void on_tick(struct loop *l, uint64_t id, void *arg)
{
    struct policy_service *m = arg;
    (void)id;
    time_t now = untild_now(m->u);
    int64_t ms = loop_now_ms();
    reap_kicks(m);
    if (m->child > 0)
        reap_child(m, now);
    evaluate_pass(m, now, 0);
    if (m->npend)
        log_debug("policy_service: tick: %zu message(s) in Postfix's hold queue", m->npend);
    policy_service_table_expire(m->tab, ms);
    for (struct conn *c = m->conns, *next; c; c = next) {
        next = c->next;
        if (ms - c->last_ms >= PS_IDLE_MS)
            conn_close(c);
    }
    m->timer = loop_timer(l, 1000, on_tick, m);
}

/* ---- requests ---- */

static const char *req_rep(struct policy_service *m, const struct ps_request *r, char *buf,
                           size_t bufsz)
{
    if (r->sasl_username[0]) {
        snprintf(buf, bufsz, "%s", r->sasl_username);
        return buf;
    }
    if (r->sender[0] && address_normalize(r->sender, "", buf, bufsz, NULL) == 0)
        return buf;
    return m->u->cfg->owner;
}

/* Record what the answer means. Returns -1 if a hold could not be made
 * durable: then no answer is sent. */
static int record(struct policy_service *m, const struct ps_request *r, struct ps_event *ev,
                  time_t now)
{
    struct untild *u = m->u;
    char repbuf[ADDR_MAX];
    const char *rep = req_rep(m, r, repbuf, sizeof repbuf);
    if (ev->kind == PS_EV_REJECTED) {
        store_audit(u->store, &(struct audit_rec){ now, "rejected", rep, ev->rcpt,
                    ev->window_id[0] ? ev->window_id : NULL, NULL, ev->reason });
        log_info("policy_service: rejected %s (instance %s)", ev->rcpt, r->instance);
        return 0;
    }
    if (ev->kind != PS_EV_MESSAGE)
        return 0;
    if (ev->held) {
        size_t len = 1;
        for (size_t i = 0; i < ev->nrcpts; i++)
            len += strlen(ev->rcpts[i].norm) + 1;
        char *rc = malloc(len), *p = rc;
        if (!rc)
            return -1;
        *p = '\0';
        for (size_t i = 0; i < ev->nrcpts; i++)
            if (ev->rcpts[i].action == ACTION_HOLD)
                p += sprintf(p, "%s%s", p == rc ? "" : " ", ev->rcpts[i].norm);
        int bad = pend_add(m, ev->queue_id, ev->release_at, ev->quiet_until, rep, rc) < 0;
        free(rc);
        struct pending *pe = pend_find(m, ev->queue_id);
        /* Derived at once: a window may have been ended since RCPT. */
        if (!bad && pe)
            pend_evaluate(m, pe, now);
        if (bad || !pe || pend_persist(m, pe) < 0) {
            log_error("policy_service: cannot record the hold of %s; answering nothing "
                      "(Postfix defers)", ev->queue_id);
            if (pe)
                pend_remove(m, pe);
            return -1;
        }
        char when[64];
        log_info("policy_service: holding %s in Postfix's hold queue until %s", ev->queue_id,
                 when_format(ev->release_at, u->cfg->timezone, when, sizeof when));
    }
    for (size_t i = 0; i < ev->nrcpts; i++) {
        const struct ps_rcpt *pr = &ev->rcpts[i];
        if (pr->action == ACTION_HOLD && !ev->held)
            continue;
        store_audit(u->store, &(struct audit_rec){ now,
                    pr->action == ACTION_HOLD ? "held" : "flagged", rep, pr->norm,
                    pr->window_id[0] ? pr->window_id : NULL,
                    ev->queue_id[0] ? ev->queue_id : NULL, pr->reason });
    }
    return 0;
}

static int out_append(struct conn *c, const char *s, size_t n)
{
    if (c->outoff && c->outoff == c->outlen)
        c->outoff = c->outlen = 0;
    if (c->outlen + n > c->outcap) {
        size_t nc = c->outcap ? c->outcap : 512;
        while (nc < c->outlen + n)
            nc *= 2;
        char *no = realloc(c->out, nc);
        if (!no)
            return -1;
        c->out = no;
        c->outcap = nc;
    }
    memcpy(c->out + c->outlen, s, n);
    c->outlen += n;
    return 0;
}

/* Handle one request (len bytes, without the empty line). -1: close. */
static int handle(struct conn *c, const char *buf, size_t len)
{
    struct policy_service *m = c->m;
    struct untild *u = m->u;
    struct ps_request *r = malloc(sizeof *r);
    struct ps_event ev = { 0 };
    char ans[1200];
    int rc = -1;
    if (!r)
        return -1;
    time_t now = untild_now(u);
    if (policy_service_parse(buf, len, r) < 0) {
        log_warn("policy_service: malformed request; closing");
        goto out;
    }
    if (policy_service_answer(m->tab, &u->pcfg, u->ix, u->cfg->timezone, r, now, loop_now_ms(),
                              ans, sizeof ans, &ev) < 0) {
        log_warn("policy_service: cannot answer a %s request (%s); closing",
                 r->protocol_state[0] ? r->protocol_state : "?", r->request);
        goto out;
    }
    if (record(m, r, &ev, now) < 0)
        goto out;
    log_debug("policy_service: %s %s -> %.*s", r->protocol_state, r->recipient,
              (int)strcspn(ans, "\n"), ans);
    rc = out_append(c, ans, strlen(ans));
out:
    policy_service_event_free(&ev);
    free(r);
    return rc;
}

static void on_conn(struct loop *l, int fd, int events, void *arg);

static int conn_flush(struct conn *c)
{
    while (c->outoff < c->outlen) {
        ssize_t n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0)
            return -1;
        c->outoff += (size_t)n;
    }
    int pending = c->outoff < c->outlen;
    int mask = (pending ? LOOP_WRITE : 0) |
               (c->outlen - c->outoff < PS_OUT_MAX ? LOOP_READ : 0);
    return loop_fd(c->m->u->loop, c->fd, mask, on_conn, c);
}

static void on_conn(struct loop *l, int fd, int events, void *arg)
{
    struct conn *c = arg;
    (void)l; (void)fd;
    c->last_ms = loop_now_ms();
    if (events & LOOP_READ) {
        for (;;) {
            if (c->inlen == PS_MAX_REQUEST) {
                log_warn("policy_service: request over %d bytes; closing", PS_MAX_REQUEST);
                conn_close(c);
                return;
            }
            ssize_t n = read(c->fd, c->in + c->inlen, PS_MAX_REQUEST - c->inlen);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (n <= 0) {
                conn_close(c);
                return;
            }
            c->inlen += (size_t)n;
            /* Every complete request: lines up to an empty line. */
            size_t start = 0;
            for (;;) {
                char *e = NULL;
                if (c->inlen - start >= 1 && c->in[start] == '\n') {
                    e = c->in + start;            /* empty request */
                } else {
                    e = memmem(c->in + start, c->inlen - start, "\n\n", 2);
                    if (e)
                        e++;
                }
                if (!e)
                    break;
                size_t rlen = (size_t)(e - (c->in + start));
                if (handle(c, c->in + start, rlen) < 0) {
                    conn_close(c);
                    return;
                }
                start += rlen + 1;
            }
            if (start) {
                memmove(c->in, c->in + start, c->inlen - start);
                c->inlen -= start;
            }
            if (c->outlen - c->outoff >= PS_OUT_MAX)
                break;
        }
    }
    if (conn_flush(c) < 0)
        conn_close(c);
}

static void on_accept(struct loop *l, int fd, int events, void *arg)
{
    struct policy_service *m = arg;
    (void)events;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn("policy_service: accept: %s", strerror(errno));
            return;
        }
        struct conn *c = NULL;
        if (m->nconns >= PS_MAX_CONNS || !(c = calloc(1, sizeof *c)) ||
            !(c->in = malloc(PS_MAX_REQUEST))) {
            log_warn("policy_service: refusing a connection (%zu open)", m->nconns);
            if (c)
                free(c);
            close(cfd);
            continue;
        }
        c->m = m;
        c->fd = cfd;
        c->last_ms = loop_now_ms();
        if (loop_fd(l, cfd, LOOP_READ, on_conn, c) < 0) {
            free(c->in);
            free(c);
            close(cfd);
            continue;
        }
        c->next = m->conns;
        m->conns = c;
        m->nconns++;
    }
}

/* ---- listening ---- */

static int listen_on(struct policy_service *m, const char *spec)
{
    int fd = -1;
    if (!strncmp(spec, "unix:", 5)) {
        const char *path = spec + 5;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof sa.sun_path) {
            log_error("policy_service: socket path too long: %s", path);
            return -1;
        }
        strcpy(sa.sun_path, path);
        if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
            goto fail;
        if (unlink(path) < 0 && errno != ENOENT)
            goto fail;
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            goto fail;
        /* Postfix's smtpd (user postfix) must connect: access is governed
         * by the directory the socket lives in. */
        if (chmod(path, 0666) < 0)
            goto fail;
        if (!(m->unix_path = strdup(path)))
            goto fail;
    } else if (!strncmp(spec, "inet:", 5)) {
        char host[256];
        const char *hp = spec + 5, *colon = strrchr(hp, ':');
        if (!colon || (size_t)(colon - hp) >= sizeof host) {
            log_error("policy_service: bad listen address %s", spec);
            return -1;
        }
        memcpy(host, hp, (size_t)(colon - hp));
        host[colon - hp] = '\0';
        char *h = host;
        if (h[0] == '[' && h[strlen(h) - 1] == ']') {
            h[strlen(h) - 1] = '\0';
            h++;
        }
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE |
                                  AI_NUMERICSERV }, *ai = NULL;
        int g = getaddrinfo(*h ? h : NULL, colon + 1, &hints, &ai);
        if (g) {
            log_error("policy_service: %s: %s", spec, gai_strerror(g));
            return -1;
        }
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            freeaddrinfo(ai);
            goto fail;
        }
        freeaddrinfo(ai);
    } else {
        log_error("policy_service: bad listen address %s", spec);
        return -1;
    }
    if (listen(fd, 64) < 0 || loop_fd(m->u->loop, fd, LOOP_READ, on_accept, m) < 0)
        goto fail;
    m->lfd = fd;
    log_info("policy_service: listening on %s", spec);
    return 0;
fail:
    log_error("policy_service: cannot listen on %s: %s", spec, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static void unlisten(struct policy_service *m)
{
    if (m->lfd >= 0) {
        loop_fd_del(m->u->loop, m->lfd);
        close(m->lfd);
        m->lfd = -1;
    }
    if (m->unix_path) {
        unlink(m->unix_path);
        free(m->unix_path);
        m->unix_path = NULL;
    }
}

struct policy_service *policy_service_start(struct untild *u, int *err)
{
    *err = 0;
    if (!u->cfg->policy_listen)
        return NULL;
    struct policy_service *m = calloc(1, sizeof *m);
    if (!m || !(m->tab = policy_service_table_new(PS_TABLE_MAX, PS_TABLE_TTL_MS)) ||
        !(m->listen = strdup(u->cfg->policy_listen))) {
        log_error("policy_service: out of memory");
        goto fail;
    }
    m->u = u;
    m->lfd = -1;
    if (listen_on(m, m->listen) < 0)
        goto fail;
    pend_load(m);
    for (size_t i = 0; i < m->npend; i++)       /* the windows as they stand now */
        pend_evaluate(m, &m->pend[i], untild_now(u));
    m->timer = loop_timer(u->loop, 1000, on_tick, m);
    return m;
fail:
    policy_service_stop(m);
    *err = -1;
    return NULL;
}

void policy_service_reconfigure(struct policy_service *m)
{
    if (!m)
        return;
    const char *want = m->u->cfg->policy_listen;
    if (!want) {
        log_warn("policy_service: [policy_service] listen removed; keeping %s until restart",
                 m->listen);
        return;
    }
    if (!strcmp(want, m->listen))
        return;
    char *nl = strdup(want);
    if (!nl)
        return;
    unlisten(m);
    if (listen_on(m, nl) < 0) {
        log_error("policy_service: staying on %s", m->listen);
        free(nl);
        if (listen_on(m, m->listen) < 0)
            log_error("policy_service: not listening any more");
        return;
    }
    free(m->listen);
    m->listen = nl;
}

void policy_service_stop(struct policy_service *m)
{
    if (!m)
        return;
    if (m->timer)
        loop_timer_del(m->u->loop, m->timer);
    while (m->conns)
        conn_close(m->conns);
    if (m->u)
        unlisten(m);
    if (m->child > 0)
        waitpid(m->child, NULL, WNOHANG);
    reap_kicks(m);
    while (m->npend)
        pend_remove(m, &m->pend[m->npend - 1]);
    free(m->pend);
    policy_service_table_free(m->tab);
    free(m->listen);
    free(m);
}
