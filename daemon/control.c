/* control.c - the control socket: untilctl's verbs (docs/DESIGN.md "Names").
 *
 * One request per connection: NUL-terminated words, an empty word to end;
 * the answer is "<exit>\n" plus the text to print. Tables by default,
 * --json anywhere in the words for JSON. Who may do what comes from the
 * peer's credentials: admins (root, the daemon's uid, the admin group) see
 * and act on everything; any other local user is the rep of that name and
 * sees and acts on only their own held mail and windows. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include "untild/control.h"
#include "untild/address.h"
#include "untild/daemon.h"
#include "untild/followup.h"
#include "untild/digest.h"
#include "untild/contacts.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/policy.h"
#include "untild/release.h"
#include "untild/spool.h"
#include "untild/store.h"
#include "untild/strbuf.h"
#include "untild/when.h"
#include "untild/windows.h"

#define REQ_MAX 65536
#define MAX_ARGS 64

enum { EX_OK = 0, EX_ERR = 1, EX_USAGE = 2, EX_QUIET = 3, EX_DENIED = 4, EX_NOTFOUND = 5 };

/* Local clients only, but still bounded: a client that connects and says
 * nothing must not pile up connections or memory. */
#define MAX_CONNS 32
#define IDLE_MS 10000

struct control {
    struct untild *u;
    int fd;
    char *path;
    int nconns;
};

struct conn {
    struct control *c;
    int fd;
    uint64_t timer;         /* idle timeout */
    char buf[REQ_MAX];
    size_t len;
    int admin;
    char rep[256];
};

/* A rep "alice" owns held mail of rep "alice" or "alice@anything". */
static int rep_owns(const char *rep, const char *owner)
{
    if (!rep || !owner)
        return 0;
    if (!strcasecmp(rep, owner))
        return 1;
    size_t n = strlen(rep);
    return !strchr(rep, '@') && !strncasecmp(owner, rep, n) && owner[n] == '@';
}

static const char *opt(int argc, char **argv, const char *name)
{
    for (int i = 0; i < argc - 1; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return NULL;
}

static const char *tz_of(const struct untild *u, const struct window *w)
{
    return w && w->tz ? w->tz : u->cfg->timezone;
}

static void window_json(struct strbuf *b, const struct untild *u, const struct window *w)
{
    char t[64];
    sb_puts(b, "{\"id\":");
    sb_json_str(b, w->id);
    sb_puts(b, ",\"who\":[");
    for (size_t i = 0; i < w->nwho; i++) {
        if (i)
            sb_puts(b, ",");
        sb_json_str(b, w->who[i]);
    }
    sb_puts(b, "],\"from\":");
    sb_json_str(b, w->from ? when_format(w->from, tz_of(u, w), t, sizeof t) : NULL);
    sb_puts(b, ",\"until\":");
    sb_json_str(b, when_format(w->until, tz_of(u, w), t, sizeof t));
    sb_puts(b, ",\"rrule\":");
    sb_json_str(b, w->rrule);
    sb_puts(b, ",\"tz\":");
    sb_json_str(b, tz_of(u, w));
    sb_puts(b, ",\"action\":");
    sb_json_str(b, action_name(policy_window_action(&u->pcfg, w)));
    sb_puts(b, ",\"reason\":");
    sb_json_str(b, w->reason);
    sb_puts(b, ",\"owner\":");
    sb_json_str(b, w->owner);
    static const char *const src[] = { "file", "runtime", "imap", "caldav" };
    sb_puts(b, ",\"source\":");
    sb_json_str(b, src[w->source]);
    if (w->file)
        sb_printf(b, ",\"file\":\"%s\",\"line\":%d", w->file, w->line);
    sb_puts(b, "}");
}

static void window_row(struct strbuf *b, const struct untild *u, const struct window *w)
{
    char t[64], who[256] = "";
    size_t n = 0;
    for (size_t i = 0; i < w->nwho && n < sizeof who - 1; i++)
        n += (size_t)snprintf(who + n, sizeof who - n, "%s%s", i ? "," : "", w->who[i]);
    if (n >= sizeof who)
        n = sizeof who - 1;
    sb_printf(b, "%-14s %-32s %-25s %-7s %s%s%s\n", w->id, who,
              when_format(w->until, tz_of(u, w), t, sizeof t),
              action_name(policy_window_action(&u->pcfg, w)), w->reason ? w->reason : "",
              w->rrule ? "  rrule=" : "", w->rrule ? w->rrule : "");
}

struct list_ctx { struct strbuf *b; const struct untild *u; int json, first, admin; const char *rep; size_t n; };

static int list_one(const struct window *w, void *arg)
{
    struct list_ctx *c = arg;
    if (!c->admin && !rep_owns(c->rep, w->owner) && w->owner)
        return 0;
    if (c->json) {
        if (!c->first)
            sb_puts(c->b, ",\n");
        window_json(c->b, c->u, w);
    } else {
        window_row(c->b, c->u, w);
    }
    c->first = 0;
    c->n++;
    return 0;
}

static int cmd_window(struct untild *u, int argc, char **argv, int admin, const char *rep,
                      int json, struct strbuf *b)
{
    time_t now = untild_now(u);
    char err[256];
    if (argc < 2) {
        sb_puts(b, "usage: window add|list|end\n");
        return EX_USAGE;
    }
    if (!strcmp(argv[1], "list")) {
        struct list_ctx c = { b, u, json, 1, admin, rep, 0 };
        if (json)
            sb_puts(b, "[");
        else
            sb_printf(b, "%-14s %-32s %-25s %-7s %s\n", "ID", "WHO", "UNTIL", "ACTION", "REASON");
        windows_foreach(u->ix, list_one, &c);
        if (json)
            sb_puts(b, "]\n");
        return EX_OK;
    }
    if (!strcmp(argv[1], "add")) {
        if (argc < 3 || argv[2][0] == '-') {
            sb_puts(b, "usage: window add WHO --until WHEN [--from WHEN] [--reason TEXT] "
                       "[--action hold|flag|reject] [--rrule RULE] [--tz ZONE] [--duration DUR]\n");
            return EX_USAGE;
        }
        const char *until = opt(argc, argv, "--until"), *from = opt(argc, argv, "--from");
        const char *reason = opt(argc, argv, "--reason"), *action = opt(argc, argv, "--action");
        const char *rrule = opt(argc, argv, "--rrule"), *tz = opt(argc, argv, "--tz");
        const char *dur = opt(argc, argv, "--duration");
        if (!until) {
            sb_puts(b, "window add: --until WHEN is required (a date, or never)\n");
            return EX_USAGE;
        }
        /* Reuse the window-file grammar, so both paths validate alike. */
        struct strbuf line = { 0 };
        sb_printf(&line, "%s %s", argv[2], until);
        struct { const char *k, *v; } kv[] = { { "from", from }, { "action", action }, { "rrule", rrule },
                                               { "tz", tz }, { "duration", dur }, { "reason", reason } };
        for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
            if (!kv[i].v)
                continue;
            if (strpbrk(kv[i].v, "\"\r\n")) {
                sb_printf(b, "window add: --%s must not contain quotes or line breaks\n", kv[i].k);
                sb_free(&line);
                return EX_USAGE;
            }
            sb_printf(&line, " %s=\"%s\"", kv[i].k, kv[i].v);
        }
        struct window w;
        int rc = window_parse_line(line.p ? line.p : "", u->cfg->timezone, u->pcfg.delims, now, &w,
                                   err, sizeof err);
        sb_free(&line);
        if (rc != 0) {
            sb_printf(b, "window add: %s\n", rc > 0 ? "nothing to add" : err);
            return EX_USAGE;
        }
        if (w.until != WHEN_NEVER && w.until <= now) {
            sb_puts(b, "window add: --until is in the past\n");
            window_free_fields(&w);
            return EX_USAGE;
        }
        free(w.owner);
        w.owner = strdup(admin && !opt(argc, argv, "--owner") ? (u->cfg->owner ? u->cfg->owner : rep)
                         : (opt(argc, argv, "--owner") && admin ? opt(argc, argv, "--owner") : rep));
        w.source = WSRC_RUNTIME;
        w.created = now;
        w.id[0] = '\0';
        w.file = NULL;
        w.line = 0;
        const struct window *stored = NULL;
        if (store_window_add(u->store, &w) < 0 || !(stored = windows_add(u->ix, &w))) {
            sb_puts(b, "window add: cannot store the window\n");
            window_free_fields(&w);
            return EX_ERR;
        }
        store_audit(u->store, &(struct audit_rec){ now, "window-added", w.owner, w.who[0], w.id, NULL, w.reason });
        window_free_fields(&w);
        if (json) {
            window_json(b, u, stored);
            sb_puts(b, "\n");
        } else {
            sb_puts(b, "added ");
            window_row(b, u, stored);
        }
        release_kick(u->release, 1);
        followup_kick(u->followup);
        return EX_OK;
    }
    if (!strcmp(argv[1], "end")) {
        if (argc < 3) {
            sb_puts(b, "usage: window end WHO|ID\n");
            return EX_USAGE;
        }
        const struct window *found[256];
        size_t n = 0;
        const struct window *byid = windows_get(u->ix, argv[2]);
        if (byid) {
            found[n++] = byid;
        } else {
            char key[ADDR_MAX];
            const char *why = NULL;
            if (address_who_normalize(argv[2], u->pcfg.delims, key, sizeof key, &why) < 0) {
                sb_printf(b, "window end: %s: %s\n", argv[2], why ? why : "not a window id or address");
                return EX_USAGE;
            }
            n = windows_find_who(u->ix, key, found, 256);
        }
        if (!n) {
            sb_printf(b, "window end: no window for %s\n", argv[2]);
            return EX_NOTFOUND;
        }
        char ids[256][WINDOW_ID_MAX];
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (!admin && !rep_owns(rep, found[i]->owner)) {
                store_audit(u->store, &(struct audit_rec){ now, "denied", rep, found[i]->who[0], found[i]->id,
                            NULL, "window end" });
                log_warn("control: denied: %s may not end window %s", rep, found[i]->id);
                sb_printf(b, "window end: %s is not yours\n", found[i]->id);
                return EX_DENIED;
            }
            snprintf(ids[k++], WINDOW_ID_MAX, "%s", found[i]->id);
        }
        for (size_t i = 0; i < k; i++) {
            const struct window *w = windows_get(u->ix, ids[i]);
            if (!w)
                continue;
            if (w->source == WSRC_RUNTIME)
                store_window_delete(u->store, ids[i]);
            else {
                char key[WINDOW_ID_MAX + 8];
                snprintf(key, sizeof key, "ended:%.*s", WINDOW_ID_MAX - 1, ids[i]);
                store_kv_set(u->store, key, "1");
            }
            store_audit(u->store, &(struct audit_rec){ now, "window-ended", rep, w->who[0], ids[i], NULL, NULL });
            windows_remove(u->ix, ids[i]);
            sb_printf(b, "ended %s\n", ids[i]);
        }
        release_kick(u->release, 1);
        followup_kick(u->followup);
        return EX_OK;
    }
    sb_printf(b, "window: unknown verb %s (add, list, end)\n", argv[1]);
    return EX_USAGE;
}

static int cmd_check(struct untild *u, int argc, char **argv, int json, struct strbuf *b)
{
    time_t at = untild_now(u);
    char key[ADDR_MAX], err[256], t[64];
    const char *why = NULL;
    if (argc < 2) {
        sb_puts(b, "usage: check WHO [--at WHEN] [--from REP]\n");
        return EX_USAGE;
    }
    if (opt(argc, argv, "--at") && when_parse(opt(argc, argv, "--at"), u->cfg->timezone, at, &at, err, sizeof err) < 0) {
        sb_printf(b, "check: --at: %s\n", err);
        return EX_USAGE;
    }
    if (address_normalize(argv[1], u->pcfg.delims, key, sizeof key, &why) < 0) {
        sb_printf(b, "check: %s: %s\n", argv[1], why ? why : "bad address");
        return EX_USAGE;
    }
    struct verdict v;
    enum action a = policy_rcpt(&u->pcfg, u->ix, key, at, &v);
    if (json) {
        sb_puts(b, "{\"address\":");
        sb_json_str(b, key);
        sb_puts(b, ",\"from\":");
        sb_json_str(b, opt(argc, argv, "--from"));
        sb_printf(b, ",\"quiet\":%s,\"action\":", v.w ? "true" : "false");
        sb_json_str(b, action_name(a));
        if (v.w) {
            sb_puts(b, ",\"window\":");
            window_json(b, u, v.w);
            sb_puts(b, ",\"quiet_until\":");
            sb_json_str(b, when_format(v.quiet_until, tz_of(u, v.w), t, sizeof t));
            sb_puts(b, ",\"release_at\":");
            sb_json_str(b, when_format(v.release_at, tz_of(u, v.w), t, sizeof t));
        }
        contacts_check(u, key, at, 1, b);
        sb_puts(b, "}\n");
    } else if (v.w) {
        sb_printf(b, "%s: quiet (%s) until %s by window %s", key, action_name(a),
                  when_format(v.quiet_until, tz_of(u, v.w), t, sizeof t), v.w->id);
        if (v.w->reason)
            sb_printf(b, ": %s", v.w->reason);
        sb_printf(b, "\nheld mail would be released at %s\n", when_format(v.release_at, tz_of(u, v.w), t, sizeof t));
    } else {
        sb_printf(b, "%s: allow\n", key);
    }
    if (!json)
        contacts_check(u, key, at, 0, b);
    return v.w ? EX_QUIET : EX_OK;
}

static void held_json(struct strbuf *b, const struct untild *u, const struct spool_meta *m, time_t at)
{
    char t[64];
    sb_puts(b, "{\"id\":");
    sb_json_str(b, m->id);
    sb_puts(b, ",\"rep\":");
    sb_json_str(b, m->rep);
    sb_puts(b, ",\"from\":");
    sb_json_str(b, m->mail_from);
    sb_puts(b, ",\"recipients\":[");
    for (size_t i = 0; i < m->nrcpts; i++) {
        static const char *const st[] = { "held", "done", "failed" };
        sb_puts(b, i ? ",{\"address\":" : "{\"address\":");
        sb_json_str(b, m->rcpts[i].norm);
        sb_puts(b, ",\"state\":");
        sb_json_str(b, st[m->rcpts[i].state]);
        sb_puts(b, ",\"window\":");
        sb_json_str(b, m->rcpts[i].window_id);
        sb_puts(b, ",\"reason\":");
        sb_json_str(b, m->rcpts[i].reason);
        sb_puts(b, "}");
    }
    sb_puts(b, "],\"subject\":");
    sb_json_str(b, m->subject);
    sb_puts(b, ",\"message_id\":");
    sb_json_str(b, m->message_id);
    sb_puts(b, ",\"created\":");
    sb_json_str(b, when_format(m->created, u->cfg->timezone, t, sizeof t));
    sb_puts(b, ",\"release_at\":");
    sb_json_str(b, when_format(at, u->cfg->timezone, t, sizeof t));
    sb_printf(b, ",\"size\":%zu,\"attempts\":%d,\"last_error\":", m->size, m->attempts);
    sb_json_str(b, m->last_error);
    sb_puts(b, "}");
}

static int cmd_held(struct untild *u, int argc, char **argv, int admin, const char *rep,
                    int json, struct strbuf *b)
{
    char t[64];
    if (argc < 2) {
        sb_puts(b, "usage: held list|show ID|release ID --reason TEXT|discard ID\n");
        return EX_USAGE;
    }
    if (!strcmp(argv[1], "list")) {
        if (json)
            sb_puts(b, "[");
        else
            sb_printf(b, "%-16s %-22s %-25s %-30s %s\n", "ID", "REP", "RELEASE", "RECIPIENTS", "SUBJECT");
        int first = 1;
        for (size_t i = 0; i < release_count(u->release); i++) {
            time_t at;
            const struct spool_meta *m = release_get(u->release, i, &at);
            if (!admin && !rep_owns(rep, m->rep))
                continue;
            if (json) {
                if (!first)
                    sb_puts(b, ",\n");
                held_json(b, u, m, at);
            } else {
                char who[256] = "";
                size_t n = 0;
                for (size_t j = 0; j < m->nrcpts && n < sizeof who - 1; j++)
                    n += (size_t)snprintf(who + n, sizeof who - n, "%s%s", j ? "," : "", m->rcpts[j].norm);
                sb_printf(b, "%-16s %-22s %-25s %-30s %s\n", m->id, m->rep ? m->rep : "-",
                          when_format(at, u->cfg->timezone, t, sizeof t), who,
                          m->subject ? m->subject : "");
            }
            first = 0;
        }
        if (json)
            sb_puts(b, "]\n");
        return EX_OK;
    }
    if (argc < 3) {
        sb_printf(b, "usage: held %s ID\n", argv[1]);
        return EX_USAGE;
    }
    time_t at;
    const struct spool_meta *m = release_find(u->release, argv[2], &at);
    if (!m) {
        sb_printf(b, "held: no held message %s\n", argv[2]);
        return EX_NOTFOUND;
    }
    if (!admin && !rep_owns(rep, m->rep)) {
        store_audit(u->store, &(struct audit_rec){ untild_now(u), "denied", rep, NULL, NULL, argv[2],
                    argv[1] });
        log_warn("control: denied: %s may not %s held message %s", rep, argv[1], argv[2]);
        sb_printf(b, "held: %s is not yours\n", argv[2]);
        return EX_DENIED;
    }
    if (!strcmp(argv[1], "show")) {
        if (json) {
            held_json(b, u, m, at);
            sb_puts(b, "\n");
            return EX_OK;
        }
        sb_printf(b, "id:        %s\nrep:       %s\nfrom:      %s\nsubject:   %s\ncreated:   %s\n",
                  m->id, m->rep ? m->rep : "-", m->mail_from, m->subject ? m->subject : "",
                  when_format(m->created, u->cfg->timezone, t, sizeof t));
        sb_printf(b, "release:   %s\nsize:      %zu\nattempts:  %d\n", when_format(at, u->cfg->timezone, t, sizeof t),
                  m->size, m->attempts);
        for (size_t j = 0; j < m->nrcpts; j++)
            sb_printf(b, "recipient: %s (%s) window=%s %s\n", m->rcpts[j].norm,
                      m->rcpts[j].state == RCPT_HELD ? "held" : m->rcpts[j].state == RCPT_DONE ? "done" : "failed",
                      m->rcpts[j].window_id ? m->rcpts[j].window_id : "-", m->rcpts[j].reason ? m->rcpts[j].reason : "");
        if (m->last_error)
            sb_printf(b, "last error: %s\n", m->last_error);
        return EX_OK;
    }
    const char *by = admin ? "admin" : rep;
    if (!strcmp(argv[1], "release")) {
        const char *reason = opt(argc, argv, "--reason");
        char id[SPOOL_ID_MAX];
        snprintf(id, sizeof id, "%s", argv[2]);
        if (release_now(u->release, id, by, reason ? reason : "released by hand") < 0) {
            sb_printf(b, "held release: cannot release %s\n", id);
            return EX_ERR;
        }
        store_audit(u->store, &(struct audit_rec){ untild_now(u), "release-requested", by, NULL, NULL, id, reason });
        sb_printf(b, "releasing %s\n", id);
        return EX_OK;
    }
    if (!strcmp(argv[1], "discard")) {
        char id[SPOOL_ID_MAX];
        snprintf(id, sizeof id, "%s", argv[2]);
        int rc = release_discard(u->release, id, by, "discarded");
        if (rc == -2) {
            sb_printf(b, "held discard: too late: %s is being delivered now\n", id);
            return EX_ERR;
        }
        if (rc < 0) {
            sb_printf(b, "held discard: cannot discard %s\n", id);
            return EX_ERR;
        }
        sb_printf(b, "discarded %s\n", id);
        return EX_OK;
    }
    sb_printf(b, "held: unknown verb %s\n", argv[1]);
    return EX_USAGE;
}

/* report: counts of held / flagged / rejected by rep and by contact. */
struct tally { char key[320]; unsigned long held, flagged, rejected, denied; };
struct report_ctx {
    struct tally *reps, *contacts, *denied;
    size_t nreps, ncontacts, ndenied, cap;
    int admin;
    const char *rep;
};

static void tally_add(struct tally **t, size_t *n, const char *key, const char *event)
{
    size_t i;
    for (i = 0; i < *n; i++)
        if (!strcasecmp((*t)[i].key, key))
            break;
    if (i == *n) {
        struct tally *p = realloc(*t, (*n + 1) * sizeof *p);
        if (!p)
            return;
        *t = p;
        memset(&p[i], 0, sizeof p[i]);
        snprintf(p[i].key, sizeof p[i].key, "%s", key);
        (*n)++;
    }
    if (!strcmp(event, "held"))
        (*t)[i].held++;
    else if (!strcmp(event, "flagged"))
        (*t)[i].flagged++;
    else if (!strcmp(event, "denied"))
        (*t)[i].denied++;
    else
        (*t)[i].rejected++;
}

static int report_row(const struct audit_rec *r, void *arg)
{
    struct report_ctx *c = arg;
    /* Refused control requests: who tried, for admins only (a rep's
     * report is about their own mail). */
    if (r->event && !strcmp(r->event, "denied")) {
        if (c->admin)
            tally_add(&c->denied, &c->ndenied, r->rep ? r->rep : "-", r->event);
        return 0;
    }
    if (!r->event || (strcmp(r->event, "held") && strcmp(r->event, "flagged") && strcmp(r->event, "rejected")))
        return 0;
    if (!c->admin && !rep_owns(c->rep, r->rep))
        return 0;
    tally_add(&c->reps, &c->nreps, r->rep ? r->rep : "-", r->event);
    tally_add(&c->contacts, &c->ncontacts, r->contact ? r->contact : "-", r->event);
    return 0;
}

static void report_table(struct strbuf *b, const char *title, const struct tally *t, size_t n, int json)
{
    if (json) {
        sb_printf(b, "\"%s\":[", title);
        for (size_t i = 0; i < n; i++) {
            sb_puts(b, i ? ",{\"id\":" : "{\"id\":");
            sb_json_str(b, t[i].key);
            sb_printf(b, ",\"held\":%lu,\"flagged\":%lu,\"rejected\":%lu}", t[i].held, t[i].flagged, t[i].rejected);
        }
        sb_puts(b, "]");
        return;
    }
    sb_printf(b, "%-40s %8s %8s %8s\n", title, "HELD", "FLAGGED", "REJECTED");
    for (size_t i = 0; i < n; i++)
        sb_printf(b, "%-40s %8lu %8lu %8lu\n", t[i].key, t[i].held, t[i].flagged, t[i].rejected);
}

static int cmd_report(struct untild *u, int argc, char **argv, int admin, const char *rep,
                      int json, struct strbuf *b)
{
    long days = 30;
    const char *s = opt(argc, argv, "--since");
    if (s) {
        char *end;
        days = strtol(s, &end, 10);
        if (*end || days < 0 || days > 36500) {
            sb_puts(b, "report: --since takes a number of days\n");
            return EX_USAGE;
        }
    }
    struct report_ctx c = { 0 };
    c.admin = admin;
    c.rep = rep;
    store_audit_foreach(u->store, untild_now(u) - days * 86400, report_row, &c);
    if (json) {
        sb_printf(b, "{\"since_days\":%ld,", days);
        report_table(b, "by_rep", c.reps, c.nreps, 1);
        sb_puts(b, ",");
        report_table(b, "by_contact", c.contacts, c.ncontacts, 1);
        sb_puts(b, ",\"denied\":[");
        for (size_t i = 0; i < c.ndenied; i++) {
            sb_puts(b, i ? ",{\"id\":" : "{\"id\":");
            sb_json_str(b, c.denied[i].key);
            sb_printf(b, ",\"denied\":%lu}", c.denied[i].denied);
        }
        sb_puts(b, "]}\n");
    } else {
        sb_printf(b, "untild report, last %ld days\n\n", days);
        report_table(b, "REP", c.reps, c.nreps, 0);
        sb_puts(b, "\n");
        report_table(b, "CONTACT", c.contacts, c.ncontacts, 0);
        if (c.ndenied) {
            sb_printf(b, "\n%-40s %8s\n", "DENIED REQUESTS BY", "COUNT");
            for (size_t i = 0; i < c.ndenied; i++)
                sb_printf(b, "%-40s %8lu\n", c.denied[i].key, c.denied[i].denied);
        }
    }
    free(c.reps);
    free(c.contacts);
    free(c.denied);
    return EX_OK;
}

static int cmd_debug(struct untild *u, int argc, char **argv, int admin, struct strbuf *b)
{
    char err[256], t[64];
    if (!admin || !u->test_clock) {
        sb_puts(b, "debug: only with untild --test-clock, as admin\n");
        return EX_DENIED;
    }
    if (argc >= 4 && !strcmp(argv[1], "clock") && !strcmp(argv[2], "set")) {
        time_t v;
        if (when_parse(argv[3], u->cfg->timezone, untild_now(u), &v, err, sizeof err) < 0) {
            sb_printf(b, "debug clock set: %s\n", err);
            return EX_USAGE;
        }
        u->clock_fixed = v;     /* frozen: tests decide when time moves */
    } else if (argc >= 4 && !strcmp(argv[1], "clock") && !strcmp(argv[2], "advance")) {
        if (u->clock_fixed)
            u->clock_fixed += strtol(argv[3], NULL, 10);
        else
            u->clock_offset += strtol(argv[3], NULL, 10);
    } else if (argc >= 3 && !strcmp(argv[1], "clock") && !strcmp(argv[2], "run")) {
        if (u->clock_fixed)
            u->clock_offset = u->clock_fixed - time(NULL);
        u->clock_fixed = 0;
    } else if (!(argc >= 2 && !strcmp(argv[1], "clock"))) {
        sb_puts(b, "usage: debug clock [set WHEN | advance SECONDS | run]\n");
        return EX_USAGE;
    }
    release_kick(u->release, 0);
    followup_kick(u->followup);
    digest_kick(u->digest);
    untild_prune(u);    /* the daily prune would see the moved clock a day late */
    sb_printf(b, "%s\n", when_format(untild_now(u), "UTC", t, sizeof t));
    return EX_OK;
}

int control_exec(struct untild *u, int argc, char **argv, int admin, const char *rep,
                 char **out, size_t *outlen)
{
    struct strbuf b = { 0 };
    int json = 0, rc;
    char *args[MAX_ARGS];
    int n = 0;
    for (int i = 0; i < argc && n < MAX_ARGS; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else
            args[n++] = argv[i];
    }
    if (n == 0) {
        sb_puts(&b, "usage: untilctl window|check|held|report|followups|cadence|status|reload ...\n");
        rc = EX_USAGE;
    } else if (!strcmp(args[0], "window")) {
        rc = cmd_window(u, n, args, admin, rep, json, &b);
    } else if (!strcmp(args[0], "check")) {
        rc = cmd_check(u, n, args, json, &b);
    } else if (!strcmp(args[0], "held")) {
        rc = cmd_held(u, n, args, admin, rep, json, &b);
    } else if (!strcmp(args[0], "report")) {
        rc = cmd_report(u, n, args, admin, rep, json, &b);
    } else if (!strcmp(args[0], "cadence")) {
        rc = contacts_cmd(u, n, args, admin, rep, &b, json);
        if (rc == EX_OK && n > 1 && strcmp(args[1], "list"))
            release_kick(u->release, 1);    /* cadence holds are derived again */
    } else if (!strcmp(args[0], "followups")) {
        rc = followup_list(u, n, args, admin ? NULL : rep, json, &b) ? EX_USAGE : EX_OK;
    } else if (!strcmp(args[0], "debug")) {
        rc = cmd_debug(u, n, args, admin, &b);
    } else if (!strcmp(args[0], "status")) {
        if (json)
            sb_printf(&b, "{\"windows\":%zu,\"held\":%zu}\n", windows_count(u->ix), release_count(u->release));
        else
            sb_printf(&b, "windows: %zu\nheld:    %zu\n", windows_count(u->ix), release_count(u->release));
        rc = EX_OK;
    } else if (!strcmp(args[0], "reload")) {
        if (!admin) {
            sb_puts(&b, "reload: admins only\n");
            rc = EX_DENIED;
        } else if (!u->reload || u->reload(u) < 0) {
            sb_puts(&b, "reload failed; the old configuration stays (see the daemon's log)\n");
            rc = EX_ERR;
        } else {
            sb_puts(&b, "reloaded\n");
            rc = EX_OK;
        }
    } else {
        sb_printf(&b, "unknown command %s\n", args[0]);
        rc = EX_USAGE;
    }
    *out = sb_take(&b, outlen);
    if (!*out) {
        *out = strdup("out of memory\n");
        *outlen = *out ? strlen(*out) : 0;
        rc = EX_ERR;
    }
    return rc;
}

static int in_group(uid_t uid, gid_t gid, const char *group)
{
    struct group *g = group ? getgrnam(group) : NULL;
    struct passwd *pw = getpwuid(uid);
    if (!g || !pw)
        return 0;
    if (gid == g->gr_gid)
        return 1;
    gid_t groups[256];
    int ng = 256;
    if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &ng) < 0)
        return 0;
    for (int i = 0; i < ng; i++)
        if (groups[i] == g->gr_gid)
            return 1;
    return 0;
}

static void conn_close(struct conn *k)
{
    loop_timer_del(k->c->u->loop, k->timer);
    loop_fd_del(k->c->u->loop, k->fd);
    close(k->fd);
    k->c->nconns--;
    free(k);
}

static void conn_idle(struct loop *l, uint64_t id, void *arg)
{
    struct conn *k = arg;
    (void)l; (void)id;
    k->timer = 0;
    log_warn("control: closing a connection idle for %d s", IDLE_MS / 1000);
    conn_close(k);
}

static void conn_read(struct loop *l, int fd, int ev, void *arg)
{
    struct conn *k = arg;
    (void)l; (void)ev;
    ssize_t r = read(fd, k->buf + k->len, sizeof k->buf - k->len);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        conn_close(k);
        return;
    }
    k->len += (size_t)r;
    /* Complete when the words end with an empty word: "...\0\0". */
    char *argv[MAX_ARGS];
    int argc = 0;
    size_t i = 0;
    int complete = 0;
    while (i < k->len) {
        size_t n = strnlen(k->buf + i, k->len - i);
        if (i + n == k->len)
            break;   /* unterminated word: wait for more */
        if (n == 0) {
            complete = 1;
            break;
        }
        if (argc < MAX_ARGS)
            argv[argc++] = k->buf + i;
        i += n + 1;
    }
    if (!complete) {
        if (k->len == sizeof k->buf) {
            static const char msg[] = "2\nrequest too long\n";
            if (write(fd, msg, sizeof msg - 1) < 0) { /* peer gone */ }
            conn_close(k);
        }
        return;
    }
    char *out = NULL;
    size_t outlen = 0;
    int rc = control_exec(k->c->u, argc, argv, k->admin, k->rep, &out, &outlen);
    char head[16];
    int hl = snprintf(head, sizeof head, "%d\n", rc);
    /* The answer is small; write it blocking with a timeout so a stuck
     * client cannot hold the loop for long. */
    struct timeval tv = { 2, 0 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (write(fd, head, (size_t)hl) == hl) {
        size_t off = 0;
        while (off < outlen) {
            ssize_t w = write(fd, out + off, outlen - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            off += (size_t)w;
        }
    }
    free(out);
    conn_close(k);
}

static void on_accept(struct loop *l, int fd, int ev, void *arg)
{
    struct control *c = arg;
    (void)ev;
    int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (cfd < 0)
        return;
    if (c->nconns >= MAX_CONNS) {
        log_warn("control: too many connections, refusing one");
        close(cfd);
        return;
    }
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
        close(cfd);
        return;
    }
    struct conn *k = calloc(1, sizeof *k);
    if (!k) {
        close(cfd);
        return;
    }
    k->c = c;
    k->fd = cfd;
    k->admin = cr.uid == 0 || cr.uid == geteuid() || in_group(cr.uid, cr.gid, c->u->cfg->admin_group);
    struct passwd *pw = getpwuid(cr.uid);
    snprintf(k->rep, sizeof k->rep, "%s", pw ? pw->pw_name : "unknown");
    if (k->admin && c->u->cfg->owner)
        snprintf(k->rep, sizeof k->rep, "%s", c->u->cfg->owner);
    if (loop_fd(l, cfd, LOOP_READ, conn_read, k) < 0) {
        close(cfd);
        free(k);
        return;
    }
    c->nconns++;
    k->timer = loop_timer(l, IDLE_MS, conn_idle, k);
}

struct control *control_new(struct untild *u, const char *path)
{
    struct control *c = calloc(1, sizeof *c);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char tmp[sizeof sa.sun_path];
    if (!c)
        return NULL;
    c->u = u;
    c->fd = -1;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.new", path) >= sizeof tmp) {
        log_error("control: socket path too long: %s", path);
        free(c);
        return NULL;
    }
    strcpy(sa.sun_path, tmp);
    c->path = strdup(path);
    unlink(tmp);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* Tight umask while binding: the socket is born 0660, never wider. */
    mode_t old = umask(0117);
    int rc = c->fd < 0 ? -1 : bind(c->fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    /* Reps (non-admin local users) must reach it too: the permission
     * check is SO_PEERCRED's, per verb. It is renamed into place only once
     * it listens, so a client never finds a socket that refuses it. */
    if (rc < 0 || listen(c->fd, 64) < 0 || chmod(tmp, 0666) < 0 || rename(tmp, path) < 0
        || loop_fd(u->loop, c->fd, LOOP_READ, on_accept, c) < 0) {
        log_error("control: cannot listen on %s: %s", path, strerror(errno));
        if (c->fd >= 0)
            close(c->fd);
        unlink(tmp);
        free(c->path);
        free(c);
        return NULL;
    }
    log_info("control: listening on %s", path);
    return c;
}

void control_free(struct control *c)
{
    if (!c)
        return;
    loop_fd_del(c->u->loop, c->fd);
    close(c->fd);
    unlink(c->path);
    free(c->path);
    free(c);
}
