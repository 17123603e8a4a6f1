/* control_win.c - the control socket's verbs that make or change run-time
 * windows: window add, window change, window import (CSV, csv_import.c).
 * Each builds a window-file line (untild.windows(5)) and parses it with
 * window_parse_line, so the socket, the API, the CSV and the files
 * validate alike. Adding is idempotent: a window equal to one the same
 * owner already has (same_window) is answered, not added again, so a CRM
 * may send the same window twice (docs/DECISIONS.md "Idempotent windows").
 *
 * Thread: loop thread (store, index). Diagnostics: answered to the caller
 * (exit status and text, or JSON); every change is audited. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "untild/control_int.h"
#include "untild/address.h"
#include "untild/csv_import.h"
#include "untild/daemon.h"
#include "untild/followup.h"
#include "untild/json.h"
#include "untild/log.h"
#include "untild/policy.h"
#include "untild/policy_service.h"
#include "untild/release.h"
#include "untild/store.h"
#include "untild/strbuf.h"
#include "untild/when.h"
#include "untild/window_end.h"
#include "untild/windows.h"

/* The options of window add and change, in this order. */
enum { O_UNTIL, O_FROM, O_REASON, O_ACTION, O_RRULE, O_TZ, O_DURATION, O_N };
static const char *const ONAME[O_N] = { "until", "from", "reason", "action", "rrule", "tz", "duration" };

struct wopts { const char *v[O_N]; };

static void opts_read(int argc, char **argv, struct wopts *o)
{
    for (int i = 0; i < O_N; i++) {
        char name[32];
        snprintf(name, sizeof name, "--%s", ONAME[i]);
        o->v[i] = control_opt(argc, argv, name);
    }
}

/* A value goes into the line quoted, with \" and \\ escaped; a line break
 * cannot (one window, one line). Returns 0, or -1 with the message in b. */
static int opts_check(const char *verb, const struct wopts *o, struct strbuf *b)
{
    for (int i = 0; i < O_N; i++)
        if (o->v[i] && strpbrk(o->v[i], "\r\n")) {
            sb_printf(b, "%s: --%s must not contain line breaks\n", verb, ONAME[i]);
            return -1;
        }
    return 0;
}

static void kv_add(struct strbuf *line, const char *k, const char *v)
{
    if (!v || !*v)
        return;
    sb_printf(line, " %s=\"", k);
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_add(line, "\\", 1);
        sb_add(line, p, 1);
    }
    sb_add(line, "\"", 1);
}

/* who + o as a window (fields malloc'd: window_free_fields). Returns 0, or
 * -1 with err. */
static int build(struct untild *u, const char *who, const struct wopts *o, time_t now, struct window *w,
                 char *err, size_t errsz)
{
    /* the times first, so an error names its option (and the API its field) */
    const char *tz = o->v[O_TZ] && *o->v[O_TZ] ? o->v[O_TZ] : u->cfg->timezone;
    for (int i = O_UNTIL; i <= O_FROM; i++) {
        time_t t;
        char why[200];
        if (o->v[i] && *o->v[i] && when_tz_valid(tz) && when_parse(o->v[i], tz, now, &t, why, sizeof why) < 0) {
            snprintf(err, errsz, "--%s: %s", ONAME[i], why);
            return -1;
        }
    }
    struct strbuf line = { 0 };
    sb_printf(&line, "%s %s", who, o->v[O_UNTIL]);
    for (int i = O_FROM; i < O_N; i++)
        kv_add(&line, ONAME[i], o->v[i]);
    int rc = line.oom ? -1 : window_parse_line(line.p, u->cfg->timezone, u->pcfg.delims, now, w, err, errsz);
    if (line.oom)
        snprintf(err, errsz, "out of memory");
    sb_free(&line);
    if (rc > 0)
        snprintf(err, errsz, "nothing to add");
    if (rc == 0 && w->until != WHEN_NEVER && w->until <= now) {
        snprintf(err, errsz, "--until is in the past");
        window_free_fields(w);
        return -1;
    }
    return rc == 0 ? 0 : -1;
}

static int str_eq(const char *a, const char *b)
{
    return !strcmp(a ? a : "", b ? b : "");
}

/* The same window as far as a caller can tell: addresses, from, until,
 * rule, reason and the action it takes. */
static int same_window(const struct untild *u, const struct window *a, const struct window *b)
{
    if (a->nwho != b->nwho || a->from != b->from || a->until != b->until || !str_eq(a->rrule, b->rrule) ||
        (a->rrule && (a->duration != b->duration || !str_eq(a->tz, b->tz))) || !str_eq(a->reason, b->reason) ||
        policy_window_action(&u->pcfg, a) != policy_window_action(&u->pcfg, b))
        return 0;
    for (size_t i = 0; i < a->nwho; i++)
        if (strcmp(a->who[i], b->who[i]))
            return 0;
    return 1;
}

/* A run-time window of owner equal to w, or NULL. */
static const struct window *find_same(struct untild *u, const struct window *w, const char *owner)
{
    size_t n = windows_find_who(u->ix, w->who[0], NULL, 0);
    const struct window **found = n ? calloc(n, sizeof *found) : NULL, *same = NULL;
    n = found ? windows_find_who(u->ix, w->who[0], found, n) : 0;
    for (size_t i = 0; i < n && !same; i++)
        if (found[i]->source == WSRC_RUNTIME && str_eq(found[i]->owner, owner) && same_window(u, found[i], w))
            same = found[i];
    free(found);
    return same;
}

/* Whose a new window is: an admin's --owner, else [daemon] owner or the
 * admin's name; a rep's own. */
static const char *owner_for(struct untild *u, int argc, char **argv, int admin, const char *rep)
{
    const char *o = control_opt(argc, argv, "--owner");
    if (!admin)
        return rep;
    return o ? o : u->cfg->owner ? u->cfg->owner : rep;
}

/* Store w (id assigned) and index it. NULL on failure (logged). */
static const struct window *store_new(struct untild *u, struct window *w, const char *owner, time_t now)
{
    free(w->owner);
    w->owner = owner ? strdup(owner) : NULL;
    w->source = WSRC_RUNTIME;
    w->created = now;
    w->id[0] = '\0';
    w->file = NULL;
    w->line = 0;
    const struct window *stored = NULL;
    if ((owner && !w->owner) || store_window_add(u->store, w) < 0 || !(stored = windows_add(u->ix, w))) {
        log_error("control: cannot store a window for %s", w->who[0]);
        return NULL;
    }
    store_audit(u->store, &(struct audit_rec){ now, "window-added", w->owner, w->who[0], w->id, NULL, w->reason });
    return stored;
}

static void kick_added(struct untild *u)
{
    release_kick(u->release, 1);
    policy_service_kick(u->psvc, 1);
    followup_kick(u->followup);
}

/* The answer for one window: JSON with "created"/"changed"/"ended", or a
 * table row after a word. */
static void answer_window(struct strbuf *b, struct untild *u, const struct window *w, int json, const char *key,
                          int val, const char *word)
{
    if (json) {
        struct json_object *o = control_window_json(u, w);
        if (o && ujson_add_bool(o, key, val) < 0) {
            json_object_put(o);
            o = NULL;
        }
        control_append_json(b, o);
    } else {
        sb_printf(b, "%s ", word);
        control_window_row(b, u, w);
    }
}

int control_window_add(struct untild *u, int argc, char **argv, int admin, const char *rep, int json,
                       struct strbuf *b)
{
    time_t now = untild_now(u);
    struct wopts o;
    char err[256];
    if (argc < 3 || argv[2][0] == '-') {
        control_verb_usage(b, "window add");
        return EX_USAGE;
    }
    opts_read(argc, argv, &o);
    if (!o.v[O_UNTIL]) {
        sb_puts(b, "window add: --until WHEN is required (a date, or never)\n");
        return EX_USAGE;
    }
    if (opts_check("window add", &o, b) < 0)
        return EX_USAGE;
    struct window w;
    if (build(u, argv[2], &o, now, &w, err, sizeof err) < 0) {
        sb_printf(b, "window add: %s\n", err);
        return EX_USAGE;
    }
    const char *owner = owner_for(u, argc, argv, admin, rep);
    const struct window *same = find_same(u, &w, owner);
    if (same) {
        window_free_fields(&w);
        answer_window(b, u, same, json, "created", 0, "unchanged");
        return EX_OK;
    }
    const struct window *stored = store_new(u, &w, owner, now);
    window_free_fields(&w);
    if (!stored) {
        sb_puts(b, "window add: cannot store the window\n");
        return EX_ERR;
    }
    answer_window(b, u, stored, json, "created", 1, "added");
    kick_added(u);
    return EX_OK;
}

/* ---- window change ---- */

/* w's fields as options, with those of o on top ("" clears reason, rrule
 * and from). t: room for the formatted times. */
static void opts_merge(const struct window *w, const struct wopts *o, struct wopts *m, char t[3][32])
{
    snprintf(t[0], sizeof t[0], w->until == WHEN_NEVER ? "never" : "@%lld", (long long)w->until);
    snprintf(t[1], sizeof t[1], "@%lld", (long long)w->from);
    snprintf(t[2], sizeof t[2], "%llds", (long long)w->duration);
    m->v[O_UNTIL] = t[0];
    m->v[O_FROM] = w->from ? t[1] : NULL;
    m->v[O_REASON] = w->reason;
    m->v[O_ACTION] = w->action != ACTION_DEFAULT ? action_name(w->action) : NULL;
    m->v[O_RRULE] = w->rrule;
    m->v[O_TZ] = w->tz;
    m->v[O_DURATION] = w->rrule ? t[2] : NULL;
    for (int i = 0; i < O_N; i++)
        if (o->v[i])
            m->v[i] = o->v[i];
}

/* The checks before a change: the window exists, is the caller's, comes
 * from the store. Returns EX_OK or an exit status with the message in b. */
static int change_allowed(struct untild *u, const struct window *w, const char *id, int admin, const char *rep,
                          time_t now, struct strbuf *b)
{
    static const char *const src[] = { "a window file", "the store", "the IMAP watcher", "the CalDAV watcher" };
    if (!w) {
        sb_printf(b, "window change: no window %s\n", id);
        return EX_NOTFOUND;
    }
    if (!admin && !control_rep_owns(rep, w->owner)) {
        store_audit(u->store, &(struct audit_rec){ now, "denied", rep, w->who[0], w->id, NULL, "window change" });
        log_warn("control: denied: %s may not change window %s", rep, w->id);
        sb_printf(b, "window change: %s is not yours\n", id);
        return EX_DENIED;
    }
    if (w->source != WSRC_RUNTIME) {
        sb_printf(b, "window change: %s comes from %s", id, src[w->source]);
        if (w->file)
            sb_printf(b, " (%s:%d)", w->file, w->line);
        sb_puts(b, ": change it there, or end it and add a new one\n");
        return EX_ERR;
    }
    return EX_OK;
}

/* What changed, for the audit row: "until=... reason=..." (the options
 * given). */
static void change_detail(const struct wopts *o, char *out, size_t outsz)
{
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < O_N && n < outsz; i++)
        if (o->v[i])
            n += (size_t)snprintf(out + n, outsz - n, "%s%s=%s", n ? " " : "", ONAME[i], o->v[i]);
}

int control_window_change(struct untild *u, int argc, char **argv, int admin, const char *rep, int json,
                          struct strbuf *b)
{
    time_t now = untild_now(u);
    struct wopts o, m;
    char err[256], t[3][32], detail[512], id[WINDOW_ID_MAX];
    if (argc < 3 || argv[2][0] == '-') {
        control_verb_usage(b, "window change");
        return EX_USAGE;
    }
    snprintf(id, sizeof id, "%s", argv[2]);
    const struct window *w = windows_get(u->ix, id);
    int rc = change_allowed(u, w, argv[2], admin, rep, now, b);
    if (rc != EX_OK)
        return rc;
    opts_read(argc, argv, &o);
    int any = 0;
    for (int i = 0; i < O_N; i++)
        any |= o.v[i] != NULL;
    if (!any) {
        sb_puts(b, "window change: nothing to change (--until, --from, --reason, --action, --rrule, --tz, "
                   "--duration)\n");
        return EX_USAGE;
    }
    if (opts_check("window change", &o, b) < 0)
        return EX_USAGE;
    opts_merge(w, &o, &m, t);
    struct strbuf who = { 0 };
    for (size_t i = 0; i < w->nwho; i++)
        sb_printf(&who, "%s%s", i ? "," : "", w->who[i]);
    /* a window shortened to now or earlier has ended: it is ended, as by
     * `window end`, and what it held is released */
    int ends = 0;
    if (o.v[O_UNTIL]) {
        time_t until;
        if (when_parse(o.v[O_UNTIL], m.v[O_TZ] ? m.v[O_TZ] : u->cfg->timezone, now, &until, err, sizeof err) == 0 &&
            until != WHEN_NEVER && until <= now) {
            ends = 1;
            m.v[O_UNTIL] = "never";     /* parse the rest; the window ends now */
        }
    }
    struct window nw;
    rc = who.oom ? -1 : build(u, who.p, &m, now, &nw, err, sizeof err);
    sb_free(&who);
    if (rc < 0) {
        sb_printf(b, "window change: %s\n", err);
        return EX_USAGE;
    }
    change_detail(&o, detail, sizeof detail);
    snprintf(nw.id, sizeof nw.id, "%s", id);
    free(nw.owner);
    nw.owner = w->owner ? strdup(w->owner) : NULL;
    nw.source = WSRC_RUNTIME;
    nw.created = w->created;
    if (ends) {
        nw.until = now;
        store_audit(u->store, &(struct audit_rec){ now, "window-changed", rep, w->who[0], id, NULL, detail });
        window_end_one(u, id, rep, NULL, "changed to end now", now);
        window_end_kick(u);
        answer_window(b, u, &nw, json, "ended", 1, "ended");
        window_free_fields(&nw);
        return EX_OK;
    }
    if (same_window(u, w, &nw)) {
        answer_window(b, u, w, json, "changed", 0, "unchanged");
        window_free_fields(&nw);
        return EX_OK;
    }
    const struct window *stored = NULL;
    if ((w->owner && !nw.owner) || store_window_add(u->store, &nw) < 0 || !(stored = windows_add(u->ix, &nw))) {
        sb_puts(b, "window change: cannot store the window\n");
        window_free_fields(&nw);
        return EX_ERR;
    }
    store_audit(u->store, &(struct audit_rec){ now, "window-changed", rep, nw.who[0], id, NULL, detail });
    window_free_fields(&nw);
    answer_window(b, u, stored, json, "changed", 1, "changed");
    window_end_kick(u);     /* held mail is evaluated again, as after an end */
    return EX_OK;
}

/* ---- window import ---- */

struct imp {
    struct csv_import c;
    struct window *w;       /* one per row, parsed */
    size_t added, unchanged;
    char (*ids)[WINDOW_ID_MAX];
    unsigned char *was_added;
};

/* One row as a window, or an error of its line. */
static void import_row(struct untild *u, struct imp *im, size_t i, time_t now)
{
    const struct csv_row *r = &im->c.rows[i];
    char key[ADDR_MAX], err[256];
    const char *why = NULL;
    time_t t;
    enum action a;
    if (strpbrk(r->email, ", \t\"") || address_who_normalize(r->email, u->pcfg.delims, key, sizeof key, &why) < 0) {
        snprintf(err, sizeof err, "%s", why ? why : "one address (or @domain) per line");
        csv_import_error(&im->c, r->line, "email", err);
        return;
    }
    if (when_parse(r->until, u->cfg->timezone, now, &t, err, sizeof err) < 0) {
        csv_import_error(&im->c, r->line, "until", err);
        return;
    }
    if (t != WHEN_NEVER && t <= now) {
        csv_import_error(&im->c, r->line, "until", "in the past");
        return;
    }
    if (r->action && (action_parse(r->action, &a) < 0 || a == ACTION_ALLOW)) {
        csv_import_error(&im->c, r->line, "action", "hold, flag or reject");
        return;
    }
    /* a quoted reason may span lines: one line of text here */
    for (char *p = r->reason; p && *p; p++)
        if (*p == '\r' || *p == '\n' || *p == '\t')
            *p = ' ';
    struct wopts o = { { 0 } };
    o.v[O_UNTIL] = r->until;
    o.v[O_REASON] = r->reason;
    o.v[O_ACTION] = r->action;
    if (build(u, r->email, &o, now, &im->w[i], err, sizeof err) < 0) {
        csv_import_error(&im->c, r->line, "", err);
        memset(&im->w[i], 0, sizeof im->w[i]);
    }
}

static void import_free(struct imp *im)
{
    for (size_t i = 0; im->w && i < im->c.nrows; i++)
        if (im->w[i].nwho)
            window_free_fields(&im->w[i]);
    free(im->w);
    free(im->ids);
    free(im->was_added);
    csv_import_free(&im->c);
}

/* Add what is new; the rest is unchanged. Returns EX_OK or EX_ERR (the
 * store failed: what was added before stays, and is said). */
static int import_apply(struct untild *u, struct imp *im, const char *owner, time_t now, struct strbuf *b)
{
    for (size_t i = 0; i < im->c.nrows; i++) {
        const struct window *s = find_same(u, &im->w[i], owner);
        if (s) {
            snprintf(im->ids[i], WINDOW_ID_MAX, "%s", s->id);
            im->unchanged++;
            continue;
        }
        if (!(s = store_new(u, &im->w[i], owner, now))) {
            sb_printf(b, "window import: line %d: cannot store the window; %zu added before it stay\n",
                      im->c.rows[i].line, im->added);
            return EX_ERR;
        }
        snprintf(im->ids[i], WINDOW_ID_MAX, "%s", s->id);
        im->was_added[i] = 1;
        im->added++;
    }
    return EX_OK;
}

static void import_answer(struct strbuf *b, struct imp *im, int json)
{
    const struct csv_import *c = &im->c;
    if (!json) {
        sb_printf(b, "added %zu, unchanged %zu", im->added, im->unchanged);
        if (c->nerrs_total)
            sb_printf(b, "; %zu line%s with errors: nothing imported", c->nerrs_total, c->nerrs_total == 1 ? "" : "s");
        sb_puts(b, "\n");
        for (size_t i = 0; i < c->nerrs; i++) {
            sb_printf(b, c->errs[i].line ? "line %d: " : "file: ", c->errs[i].line);
            if (c->errs[i].field[0])
                sb_printf(b, "%s: ", c->errs[i].field);
            control_sb_text(b, c->errs[i].reason);
            sb_puts(b, "\n");
        }
        if (c->nerrs_total > c->nerrs)
            sb_printf(b, "... and %zu more\n", c->nerrs_total - c->nerrs);
        return;
    }
    struct json_object *o = json_object_new_object(), *errs = json_object_new_array(),
                       *wins = json_object_new_array();
    int e = !o || !errs || !wins;
    for (size_t i = 0; !e && i < c->nerrs; i++) {
        struct json_object *x = json_object_new_object();
        e |= !x || ujson_add_int(x, "line", c->errs[i].line) | ujson_add_str(x, "field", c->errs[i].field[0] ?
                                                                             c->errs[i].field : NULL)
             | ujson_add_str(x, "reason", c->errs[i].reason);
        e |= ujson_push(errs, x);
    }
    for (size_t i = 0; !e && !c->nerrs_total && i < c->nrows && im->ids; i++) {
        if (!im->ids[i][0])
            continue;
        struct json_object *x = json_object_new_object();
        e |= !x || ujson_add_int(x, "line", c->rows[i].line) | ujson_add_str(x, "id", im->ids[i])
             | ujson_add_str(x, "status", im->was_added[i] ? "added" : "unchanged");
        e |= ujson_push(wins, x);
    }
    e |= ujson_add_int(o, "added", (int64_t)im->added) | ujson_add_int(o, "unchanged", (int64_t)im->unchanged);
    e |= ujson_add(o, "errors", errs) | ujson_add_int(o, "errors_total", (int64_t)c->nerrs_total);
    e |= ujson_add(o, "windows", wins);
    if (e) {
        json_object_put(o);
        o = NULL;
    }
    control_append_json(b, o);
}

int control_window_import(struct untild *u, int argc, char **argv, int admin, const char *rep, int json,
                          struct strbuf *b)
{
    time_t now = untild_now(u);
    struct imp im = { 0 };
    if (argc < 3) {
        control_verb_usage(b, "window import");
        return EX_USAGE;
    }
    if (csv_import_parse(argv[2], strlen(argv[2]), &im.c) < 0) {
        sb_puts(b, "window import: out of memory\n");
        return EX_ERR;
    }
    size_t n = im.c.nrows ? im.c.nrows : 1;
    im.w = calloc(n, sizeof *im.w);
    im.ids = calloc(n, sizeof *im.ids);
    im.was_added = calloc(n, 1);
    if (!im.w || !im.ids || !im.was_added) {
        import_free(&im);
        sb_puts(b, "window import: out of memory\n");
        return EX_ERR;
    }
    for (size_t i = 0; i < im.c.nrows; i++)
        import_row(u, &im, i, now);
    int rc = EX_OK;
    if (im.c.nerrs_total) {
        rc = EX_USAGE;      /* all or nothing: one bad line, nothing added */
    } else {
        rc = import_apply(u, &im, owner_for(u, argc, argv, admin, rep), now, b);
        char d[96];
        snprintf(d, sizeof d, "added %zu, unchanged %zu, %zu rows", im.added, im.unchanged, im.c.nrows);
        store_audit(u->store, &(struct audit_rec){ now, "window-import", rep, NULL, NULL, NULL, d });
        if (im.added)
            kick_added(u);
    }
    if (rc != EX_ERR)
        import_answer(b, &im, json);
    import_free(&im);
    return rc;
}
