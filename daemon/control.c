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
#include "untild/control_int.h"
#include "untild/address.h"
#include "untild/daemon.h"
#include "untild/followup.h"
#include "untild/json.h"
#include "untild/digest.h"
#include "untild/contacts.h"
#include "untild/csv_import.h"
#include "untild/log.h"
#include "untild/policy_service.h"
#include "untild/loop.h"
#include "untild/policy.h"
#include "untild/release.h"
#include "untild/spool.h"
#include "untild/store.h"
#include "untild/store_pg.h"
#include "untild/strbuf.h"
#include "untild/tokens.h"
#include "untild/when.h"
#include "untild/windows.h"
#include "untild/verbs.h"
#include "untild/window_end.h"

/* A request is words; `window import` sends a CSV file as one word, so
 * the bound is the import's (csv_import.h) with room for the rest. */
#define REQ_MAX (CSV_MAX_BYTES + 65536)
#define MAX_ARGS 64

/* Local clients only, but still bounded: a client that connects and says
 * nothing must not pile up connections or memory. */
#define MAX_CONNS 32
#define IDLE_MS 10000

struct control {
    struct untild *u;
    int fd;
    char *path;
    char *tmp;              /* "<path>.new" until control_publish */
    int published;
    int nconns;
};

/* One request, then its answer: the answer is buffered whole and written
 * as the socket takes it (LOOP_WRITE), so a client that does not read
 * costs its buffer (at most [daemon] control_output_max) and nothing of
 * the loop's time; one that makes no progress for IDLE_MS is closed. */
struct conn {
    struct control *c;
    int fd;
    uint64_t timer;         /* idle timeout (reading or writing) */
    char buf[REQ_MAX];
    size_t len;
    int admin;
    char rep[256];
    char *out;              /* the answer, once the request is complete */
    size_t outlen, outoff;
};

/* A rep "alice" owns held mail of rep "alice" or "alice@anything". */
int control_rep_owns(const char *rep, const char *owner)
{
    if (!rep || !owner)
        return 0;
    if (!strcasecmp(rep, owner))
        return 1;
    size_t n = strlen(rep);
    return !strchr(rep, '@') && !strncasecmp(owner, rep, n) && owner[n] == '@';
}

const char *control_opt(int argc, char **argv, const char *name)
{
    for (int i = 0; i < argc - 1; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return NULL;
}

/* ---- user-provided text in output ----
 * Subjects, reasons, addresses and rules come from mail and from other
 * users: they must not reach a terminal as escape sequences nor forge
 * table rows. Each value is decoded as UTF-8; C0/C1 controls, DEL, the
 * bidi overrides and invalid bytes are shown as '?' in tables. JSON goes
 * through json.h, which turns invalid bytes into U+FFFD and escapes the
 * rest (\u00XX). */

/* Next code point of s (NUL-terminated); *len its length. -1: invalid byte. */
static long utf8_next(const unsigned char *s, size_t *len)
{
    unsigned c = s[0];
    size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    *len = 1;
    if (!n)
        return -1;
    long cp = n == 1 ? (long)c : (long)(c & (0x7f >> n));
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return -1;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const long minv[] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (cp < minv[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *len = n;
    return cp;
}

static int cp_unsafe(long cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

/* The printable form of s for a table cell (into a strbuf). */
void control_sb_text(struct strbuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        size_t n;
        long cp = utf8_next(p, &n);
        if (cp < 0 || cp_unsafe(cp))
            sb_add(b, "?", 1);
        else
            sb_add(b, p, n);
        p += n;
    }
}

/* The same into a fixed buffer (for padded columns); returns out. */
const char *control_clean(const char *s, char *out, size_t outsz)
{
    struct strbuf b = { 0 };
    control_sb_text(&b, s);
    snprintf(out, outsz, "%s", b.p ? b.p : "");
    sb_free(&b);
    return out;
}

/* ---- paging (held list, window list) ----
 * Entries are listed in id order; a page is the `limit` smallest ids after
 * the cursor, picked with a bounded max-heap in one pass (no sort of the
 * whole set). The cursor is the last id of a page, so entries added or
 * removed between pages neither repeat nor shift the rest. */
#define PAGE_DEFAULT 1000
#define PAGE_MAX 100000

struct pitem {
    const void *e;
    time_t at;              /* held: release time */
};

struct page {
    const char *after;      /* cursor, or NULL */
    size_t limit;
    struct pitem *item;     /* max-heap by id, then sorted ascending */
    const char *(*id)(const void *);
    size_t n;
    int more;               /* entries beyond this page exist */
};

static int page_cmp(const struct page *pg, const struct pitem *a, const struct pitem *b)
{
    return strcmp(pg->id(a->e), pg->id(b->e));
}

static void page_sift_down(struct page *pg, size_t i, size_t n)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && page_cmp(pg, &pg->item[l], &pg->item[m]) > 0)
            m = l;
        if (r < n && page_cmp(pg, &pg->item[r], &pg->item[m]) > 0)
            m = r;
        if (m == i)
            return;
        struct pitem t = pg->item[i];
        pg->item[i] = pg->item[m];
        pg->item[m] = t;
        i = m;
    }
}

/* Offer one entry. Returns -1 on ENOMEM. */
static int page_offer(struct page *pg, const void *e, time_t at)
{
    struct pitem it = { e, at };
    if (pg->after && strcmp(pg->id(e), pg->after) <= 0)
        return 0;
    if (pg->n == pg->limit) {
        pg->more = 1;
        if (!pg->limit || page_cmp(pg, &it, &pg->item[0]) >= 0)
            return 0;
        pg->item[0] = it;
        page_sift_down(pg, 0, pg->n);
        return 0;
    }
    if (!pg->item && !(pg->item = calloc(pg->limit, sizeof *pg->item)))
        return -1;
    size_t i = pg->n++;
    pg->item[i] = it;
    while (i > 0 && page_cmp(pg, &pg->item[(i - 1) / 2], &pg->item[i]) < 0) {
        struct pitem t = pg->item[i];
        pg->item[i] = pg->item[(i - 1) / 2];
        pg->item[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
    return 0;
}

/* Heap -> ascending order (heap sort in place). */
static void page_finish(struct page *pg)
{
    for (size_t n = pg->n; n > 1; n--) {
        struct pitem t = pg->item[0];
        pg->item[0] = pg->item[n - 1];
        pg->item[n - 1] = t;
        page_sift_down(pg, 0, n - 1);
    }
}

/* --limit N / --after ID. Returns 0, or EX_USAGE with the message in b. */
static int page_opts(int argc, char **argv, const char *verb, struct page *pg, struct strbuf *b)
{
    const char *lim = control_opt(argc, argv, "--limit");
    pg->after = control_opt(argc, argv, "--after");
    pg->limit = PAGE_DEFAULT;
    if (lim) {
        char *end;
        long v = strtol(lim, &end, 10);
        if (*end || end == lim || v < 1 || v > PAGE_MAX) {
            sb_printf(b, "%s: --limit takes a number from 1 to %d\n", verb, PAGE_MAX);
            return EX_USAGE;
        }
        pg->limit = (size_t)v;
    }
    return 0;
}

static const char *tz_of(const struct untild *u, const struct window *w)
{
    return w && w->tz ? w->tz : u->cfg->timezone;
}

/* One JSON value as the whole answer: its line, and o is freed (NULL: a
 * build failed, the answer is "out of memory"). */
void control_append_json(struct strbuf *b, struct json_object *o)
{
    ujson_append(b, o, UJSON_PLAIN);
    json_object_put(o);
    sb_puts(b, "\n");
}

struct json_object *control_window_json(const struct untild *u, const struct window *w)
{
    static const char *const src[] = { "file", "runtime", "imap", "caldav" };
    char t[64];
    struct json_object *o = json_object_new_object(), *who = json_object_new_array();
    if (!o || !who) {
        json_object_put(o);
        json_object_put(who);
        return NULL;
    }
    int e = 0;
    for (size_t i = 0; i < w->nwho; i++)
        e |= ujson_push_str(who, w->who[i]);
    e |= ujson_add_str(o, "id", w->id) | ujson_add(o, "who", who);
    e |= ujson_add_str(o, "from", w->from ? when_format(w->from, tz_of(u, w), t, sizeof t) : NULL);
    e |= ujson_add_str(o, "until", when_format(w->until, tz_of(u, w), t, sizeof t));
    e |= ujson_add_str(o, "rrule", w->rrule) | ujson_add_str(o, "tz", tz_of(u, w));
    e |= ujson_add_str(o, "action", action_name(policy_window_action(&u->pcfg, w)));
    e |= ujson_add_str(o, "reason", w->reason) | ujson_add_str(o, "owner", w->owner);
    e |= ujson_add_str(o, "source", src[w->source]);
    if (w->file)
        e |= ujson_add_str(o, "file", w->file) | ujson_add_int(o, "line", w->line);
    if (e) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

void control_window_row(struct strbuf *b, const struct untild *u, const struct window *w)
{
    char t[64], who[256];
    struct strbuf wb = { 0 };
    for (size_t i = 0; i < w->nwho && wb.len < sizeof who; i++) {
        if (i)
            sb_add(&wb, ",", 1);
        control_sb_text(&wb, w->who[i]);
    }
    snprintf(who, sizeof who, "%s", wb.p ? wb.p : "");
    sb_free(&wb);
    sb_printf(b, "%-14s %-32s %-25s %-7s ", w->id, who,
              when_format(w->until, tz_of(u, w), t, sizeof t),
              action_name(policy_window_action(&u->pcfg, w)));
    control_sb_text(b, w->reason);
    if (w->rrule) {
        sb_puts(b, "  rrule=");
        control_sb_text(b, w->rrule);
    }
    sb_puts(b, "\n");
}

struct list_ctx { struct page *pg; int admin; const char *rep; int oom; };

static const char *window_id(const void *e) { return ((const struct window *)e)->id; }

static int list_one(const struct window *w, void *arg)
{
    struct list_ctx *c = arg;
    if (!c->admin && !control_rep_owns(c->rep, w->owner) && w->owner)
        return 0;
    if (page_offer(c->pg, w, 0) < 0) {
        c->oom = 1;
        return 1;
    }
    return 0;
}

/* Open a paged listing: an array, or with --limit/--after an object that
 * carries the cursor ({"items":[...],"next":ID|null}). */
static void list_open(struct ujson_list *l, struct strbuf *b, int json, int paged)
{
    if (json)
        ujson_list_open(l, b, paged ? "items" : NULL);
}

static void list_close(struct ujson_list *l, int json, int paged, const struct page *pg, char *next)
{
    const char *last = pg->n ? pg->id(pg->item[pg->n - 1].e) : NULL;
    if (pg->more && last)
        snprintf(next, NEXT_MAX, "%s", last);
    if (!json)
        return;
    struct json_object *tail = NULL;
    if (paged && (!(tail = json_object_new_object()) || ujson_add_str(tail, "next", pg->more ? last : NULL) < 0))
        l->b->oom = 1;
    ujson_list_close(l, tail);
    sb_puts(l->b, "\n");
}

static int paged_req(int argc, char **argv)
{
    return control_opt(argc, argv, "--limit") || control_opt(argc, argv, "--after");
}

/* The ids of the windows `window end WHAT` ends (WHAT: an id, an address
 * or a domain), all checked against the caller's rights first. Returns
 * EX_OK with *ids (malloc'd, *n entries), or an exit status with the
 * message in b. */
static int window_end_ids(struct untild *u, const char *what, int admin, const char *rep,
                          time_t now, char (**ids)[WINDOW_ID_MAX], size_t *n, struct strbuf *b)
{
    const struct window **found = NULL;
    const struct window *byid = windows_get(u->ix, what);
    size_t nf = 0;
    *ids = NULL;
    *n = 0;
    if (byid) {
        found = &byid;
        nf = 1;
    } else {
        char key[ADDR_MAX];
        const char *why = NULL;
        if (address_who_normalize(what, u->pcfg.delims, key, sizeof key, &why) < 0) {
            sb_printf(b, "window end: %s: %s\n", what, why ? why : "not a window id or address");
            return EX_USAGE;
        }
        nf = windows_find_who(u->ix, key, NULL, 0);
        if (nf && !(found = calloc(nf, sizeof *found))) {
            sb_puts(b, "window end: out of memory\n");
            return EX_ERR;
        }
        nf = windows_find_who(u->ix, key, found, nf);
    }
    int rc = EX_OK;
    if (!nf) {
        sb_printf(b, "window end: no window for %s\n", what);
        rc = EX_NOTFOUND;
    } else if (!(*ids = calloc(nf, sizeof **ids))) {
        sb_puts(b, "window end: out of memory\n");
        rc = EX_ERR;
    }
    for (size_t i = 0; rc == EX_OK && i < nf; i++) {
        if (!admin && !control_rep_owns(rep, found[i]->owner)) {
            store_audit(u->store, &(struct audit_rec){ now, "denied", rep, found[i]->who[0], found[i]->id,
                        NULL, "window end" });
            log_warn("control: denied: %s may not end window %s", rep, found[i]->id);
            sb_printf(b, "window end: %s is not yours\n", found[i]->id);
            rc = EX_DENIED;
            break;
        }
        snprintf((*ids)[(*n)++], WINDOW_ID_MAX, "%s", found[i]->id);
    }
    if (found != &byid)
        free(found);
    if (rc != EX_OK) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return rc;
}

/* window list [--limit N] [--after ID]: one page, in id order. */
static int window_list(struct untild *u, int argc, char **argv, int admin, const char *rep,
                       int json, struct strbuf *b, char *next)
{
    struct page pg = { .id = window_id };
    if (page_opts(argc, argv, "window list", &pg, b))
        return EX_USAGE;
    struct list_ctx c = { &pg, admin, rep, 0 };
    windows_foreach(u->ix, list_one, &c);
    if (c.oom) {
        free(pg.item);
        sb_puts(b, "window list: out of memory\n");
        return EX_ERR;
    }
    page_finish(&pg);
    int paged = paged_req(argc, argv);
    struct ujson_list l;
    list_open(&l, b, json, paged);
    if (!json)
        sb_printf(b, "%-14s %-32s %-25s %-7s %s\n", "ID", "WHO", "UNTIL", "ACTION", "REASON");
    for (size_t i = 0; i < pg.n; i++) {
        if (json)
            ujson_list_add(&l, control_window_json(u, pg.item[i].e));
        else
            control_window_row(b, u, pg.item[i].e);
    }
    list_close(&l, json, paged, &pg, next);
    free(pg.item);
    return EX_OK;
}

/* window end WHO|ID: every window it names, if the caller may end them all. */
/* "usage: NAME ARGS" from verbs.h's table. */
void control_verb_usage(struct strbuf *b, const char *name)
{
    size_t n;
    const struct verb *v = verbs_all(&n);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].name, name))
            sb_printf(b, "usage: %s%s%s\n", name, v[i].args[0] ? " " : "", v[i].args);
}

static int window_end(struct untild *u, int argc, char **argv, int admin, const char *rep,
                      time_t now, struct strbuf *b)
{
    if (argc < 3) {
        control_verb_usage(b, "window end");
        return EX_USAGE;
    }
    /* However many windows name WHO: the lists are sized from the
     * index (a fixed array here overflowed past 256). */
    char (*ids)[WINDOW_ID_MAX] = NULL;
    size_t k = 0;
    int rc = window_end_ids(u, argv[2], admin, rep, now, &ids, &k, b);
    if (rc != EX_OK)
        return rc;
    for (size_t i = 0; i < k; i++)
        if (window_end_one(u, ids[i], rep, NULL, NULL, now) == 0)
            sb_printf(b, "ended %s\n", ids[i]);
    free(ids);
    window_end_kick(u);
    return EX_OK;
}

static int cmd_window(struct untild *u, int argc, char **argv, int admin, const char *rep,
                      int json, struct strbuf *b, char *next)
{
    time_t now = untild_now(u);
    if (argc < 2) {
        sb_puts(b, "usage: window add|change|import|list|end\n");
        return EX_USAGE;
    }
    if (!strcmp(argv[1], "list"))
        return window_list(u, argc, argv, admin, rep, json, b, next);
    if (!strcmp(argv[1], "add"))
        return control_window_add(u, argc, argv, admin, rep, json, b);
    if (!strcmp(argv[1], "change"))
        return control_window_change(u, argc, argv, admin, rep, json, b);
    if (!strcmp(argv[1], "import"))
        return control_window_import(u, argc, argv, admin, rep, json, b);
    if (!strcmp(argv[1], "end"))
        return window_end(u, argc, argv, admin, rep, now, b);
    sb_printf(b, "window: unknown verb %s (add, change, import, list, end)\n", argv[1]);
    return EX_USAGE;
}

static struct json_object *check_json(struct untild *u, const char *key, const char *from, time_t at,
                                      enum action a, const struct verdict *v)
{
    char t[64];
    struct json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    int e = ujson_add_str(o, "address", key) | ujson_add_str(o, "from", from)
            | ujson_add_bool(o, "quiet", v->w != NULL) | ujson_add_str(o, "action", action_name(a));
    if (v->w) {
        e |= ujson_add(o, "window", control_window_json(u, v->w));
        e |= ujson_add_str(o, "quiet_until", when_format(v->quiet_until, tz_of(u, v->w), t, sizeof t));
        e |= ujson_add_str(o, "release_at", when_format(v->release_at, tz_of(u, v->w), t, sizeof t));
    }
    e |= contacts_check(u, key, at, NULL, o);
    if (e) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static int cmd_check(struct untild *u, int argc, char **argv, int admin, const char *rep,
                     int json, struct strbuf *b, char *next)
{
    (void)admin;
    (void)rep;
    (void)next;
    time_t at = untild_now(u);
    char key[ADDR_MAX], err[256], t[64];
    const char *why = NULL;
    if (argc < 2) {
        control_verb_usage(b, "check");
        return EX_USAGE;
    }
    if (control_opt(argc, argv, "--at") && when_parse(control_opt(argc, argv, "--at"), u->cfg->timezone, at, &at, err, sizeof err) < 0) {
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
        control_append_json(b, check_json(u, key, control_opt(argc, argv, "--from"), at, a, &v));
    } else if (v.w) {
        control_sb_text(b, key);
        sb_printf(b, ": quiet (%s) until %s by window %s", action_name(a),
                  when_format(v.quiet_until, tz_of(u, v.w), t, sizeof t), v.w->id);
        if (v.w->reason) {
            sb_puts(b, ": ");
            control_sb_text(b, v.w->reason);
        }
        sb_printf(b, "\nheld mail would be released at %s\n", when_format(v.release_at, tz_of(u, v.w), t, sizeof t));
    } else {
        sb_printf(b, "%s: allow\n", key);
    }
    if (!json)
        contacts_check(u, key, at, b, NULL);
    return v.w ? EX_QUIET : EX_OK;
}

static struct json_object *rcpt_json(const struct spool_rcpt *r)
{
    static const char *const st[] = { "held", "done", "failed" };
    struct json_object *o = json_object_new_object();
    if (o && (ujson_add_str(o, "address", r->norm) | ujson_add_str(o, "state", st[r->state])
              | ujson_add_str(o, "window", r->window_id) | ujson_add_str(o, "reason", r->reason))) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

struct json_object *control_held_json(const struct untild *u, const struct release_view *v)
{
    const struct spool_meta *m = v->m;
    const char *tz = u->cfg->timezone;
    char t[64];
    struct json_object *o = json_object_new_object(), *rcpts = json_object_new_array();
    if (!o || !rcpts) {
        json_object_put(o);
        json_object_put(rcpts);
        return NULL;
    }
    int e = 0;
    for (size_t i = 0; i < m->nrcpts; i++)
        e |= ujson_push(rcpts, rcpt_json(&m->rcpts[i]));
    e |= ujson_add_str(o, "id", m->id) | ujson_add_str(o, "rep", m->rep) | ujson_add_str(o, "from", m->mail_from);
    e |= ujson_add(o, "recipients", rcpts);
    e |= ujson_add_str(o, "subject", m->subject) | ujson_add_str(o, "message_id", m->message_id);
    e |= ujson_add_str(o, "created", when_format(m->created, tz, t, sizeof t));
    e |= ujson_add_str(o, "release_at", when_format(v->release_at, tz, t, sizeof t));
    e |= ujson_add_str(o, "state", held_state_name(v->state));
    e |= ujson_add_str(o, "next_attempt", v->next_attempt ? when_format(v->next_attempt, tz, t, sizeof t) : NULL);
    e |= ujson_add_str(o, "released_by", m->released_by);
    e |= ujson_add_int(o, "size", (int64_t)m->size) | ujson_add_int(o, "attempts", m->attempts);
    e |= ujson_add_str(o, "last_error", m->last_error);
    if (e) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static const char *held_id(const void *e) { return ((const struct spool_meta *)e)->id; }

static void held_row(struct strbuf *b, const struct untild *u, const struct release_view *v)
{
    const struct spool_meta *m = v->m;
    time_t at = v->release_at;
    char t[64], who[256], repc[256];
    struct strbuf wb = { 0 };
    for (size_t j = 0; j < m->nrcpts && wb.len < sizeof who; j++) {
        if (j)
            sb_add(&wb, ",", 1);
        control_sb_text(&wb, m->rcpts[j].norm);
    }
    snprintf(who, sizeof who, "%s", wb.p ? wb.p : "");
    sb_free(&wb);
    sb_printf(b, "%-18s %-10s %-22s %-25s %-30s ", m->id, held_state_name(v->state),
              m->rep ? control_clean(m->rep, repc, sizeof repc) : "-", when_format(at, u->cfg->timezone, t, sizeof t), who);
    control_sb_text(b, m->subject);
    sb_puts(b, "\n");
}

/* held list [--limit N] [--after ID]: one page, in id (= arrival) order. */
static int held_list(struct untild *u, int argc, char **argv, int admin, const char *rep,
                     int json, struct strbuf *b, char *next)
{
    struct page pg = { .id = held_id };
    if (page_opts(argc, argv, "held list", &pg, b))
        return EX_USAGE;
    /* The page is chosen by id from the facts alone; only its entries
     * are evaluated (their state and release time): a page costs O(n)
     * comparisons, not n derivations. */
    size_t n = release_count(u->release);
    for (size_t i = 0; i < n; i++) {
        const struct spool_meta *m = release_meta(u->release, i);
        if (!admin && !control_rep_owns(rep, m->rep))
            continue;
        if (page_offer(&pg, m, 0) < 0) {
            free(pg.item);
            sb_puts(b, "held list: out of memory\n");
            return EX_ERR;
        }
    }
    page_finish(&pg);
    int paged = paged_req(argc, argv);
    struct ujson_list l;
    list_open(&l, b, json, paged);
    if (!json)
        sb_printf(b, "%-18s %-10s %-22s %-25s %-30s %s\n", "ID", "STATE", "REP", "RELEASE", "RECIPIENTS",
                  "SUBJECT");
    for (size_t i = 0; i < pg.n; i++) {
        struct release_view v;
        if (release_view(u->release, ((const struct spool_meta *)pg.item[i].e)->id, &v) < 0)
            continue;
        if (json)
            ujson_list_add(&l, control_held_json(u, &v));
        else
            held_row(b, u, &v);
    }
    list_close(&l, json, paged, &pg, next);
    free(pg.item);
    return EX_OK;
}

static int cmd_held(struct untild *u, int argc, char **argv, int admin, const char *rep,
                    int json, struct strbuf *b, char *next)
{
    char t[64];
    if (argc < 2) {
        sb_puts(b, "usage: held list [--limit N] [--after ID]|show ID|release ID --reason TEXT|discard ID\n");
        return EX_USAGE;
    }
    if (!strcmp(argv[1], "list"))
        return held_list(u, argc, argv, admin, rep, json, b, next);
    if (argc < 3) {
        sb_printf(b, "usage: held %s ID\n", argv[1]);
        return EX_USAGE;
    }
    struct release_view hv;
    if (release_view(u->release, argv[2], &hv) < 0) {
        sb_printf(b, "held: no held message %s\n", argv[2]);
        return EX_NOTFOUND;
    }
    const struct spool_meta *m = hv.m;
    time_t at = hv.release_at;
    if (!admin && !control_rep_owns(rep, m->rep)) {
        store_audit(u->store, &(struct audit_rec){ untild_now(u), "denied", rep, NULL, NULL, argv[2],
                    argv[1] });
        log_warn("control: denied: %s may not %s held message %s", rep, argv[1], argv[2]);
        sb_printf(b, "held: %s is not yours\n", argv[2]);
        return EX_DENIED;
    }
    if (!strcmp(argv[1], "show")) {
        if (json) {
            control_append_json(b, control_held_json(u, &hv));
            return EX_OK;
        }
        sb_printf(b, "id:        %s\nrep:       ", m->id);
        control_sb_text(b, m->rep ? m->rep : "-");
        sb_puts(b, "\nfrom:      ");
        control_sb_text(b, m->mail_from);
        sb_puts(b, "\nsubject:   ");
        control_sb_text(b, m->subject);
        sb_printf(b, "\ncreated:   %s\n", when_format(m->created, u->cfg->timezone, t, sizeof t));
        sb_printf(b, "state:     %s\n", held_state_name(hv.state));
        sb_printf(b, "release:   %s\nsize:      %zu\nattempts:  %d\n", when_format(at, u->cfg->timezone, t, sizeof t),
                  m->size, m->attempts);
        if (hv.next_attempt)
            sb_printf(b, "next try:  %s\n", when_format(hv.next_attempt, u->cfg->timezone, t, sizeof t));
        if (m->released_at) {
            sb_printf(b, "released:  %s by ", when_format(m->released_at, u->cfg->timezone, t, sizeof t));
            control_sb_text(b, m->released_by ? m->released_by : "-");
            sb_puts(b, ": ");
            control_sb_text(b, m->released_reason ? m->released_reason : "");
            sb_puts(b, "\n");
        }
        for (size_t j = 0; j < m->nrcpts; j++) {
            sb_puts(b, "recipient: ");
            control_sb_text(b, m->rcpts[j].norm);
            sb_printf(b, " (%s) window=", m->rcpts[j].state == RCPT_HELD ? "held"
                      : m->rcpts[j].state == RCPT_DONE ? "done" : "failed");
            control_sb_text(b, m->rcpts[j].window_id ? m->rcpts[j].window_id : "-");
            sb_puts(b, " ");
            control_sb_text(b, m->rcpts[j].reason);
            sb_puts(b, "\n");
        }
        if (m->last_error) {
            sb_puts(b, "last error: ");
            control_sb_text(b, m->last_error);
            sb_puts(b, "\n");
        }
        return EX_OK;
    }
    const char *by = admin ? "admin" : rep;
    if (!strcmp(argv[1], "release")) {
        const char *reason = control_opt(argc, argv, "--reason");
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

static int cmd_report(struct untild *u, int argc, char **argv, int admin, const char *rep,
                      int json, struct strbuf *b, char *next)
{
    (void)next;
    return control_report(u, argc, argv, admin, rep, json, b);
}

static int cmd_debug(struct untild *u, int argc, char **argv, int admin, const char *rep,
                     int json, struct strbuf *b, char *next)
{
    (void)rep;
    (void)json;
    (void)next;
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
        /* at most a century either way: the sum stays a time (fuzz_control:
         * 9223372036854775807 overflowed it) */
        char *end;
        long d = strtol(argv[3], &end, 10);
        if (*end || end == argv[3] || d < -3155760000L || d > 3155760000L) {
            sb_puts(b, "debug clock advance: SECONDS, at most a century either way\n");
            return EX_USAGE;
        }
        if (u->clock_fixed)
            u->clock_fixed += d;
        else
            u->clock_offset += d;
    } else if (argc >= 3 && !strcmp(argv[1], "clock") && !strcmp(argv[2], "run")) {
        if (u->clock_fixed)
            u->clock_offset = u->clock_fixed - time(NULL);
        u->clock_fixed = 0;
    } else if (!(argc >= 2 && !strcmp(argv[1], "clock"))) {
        control_verb_usage(b, "debug clock");
        return EX_USAGE;
    }
    release_kick(u->release, 0);
    policy_service_kick(u->psvc, 0);
    followup_kick(u->followup);
    digest_kick(u->digest);
    untild_prune(u);    /* the daily prune would see the moved clock a day late */
    sb_printf(b, "%s\n", when_format(untild_now(u), "UTC", t, sizeof t));
    return EX_OK;
}

/* Output goes to terminals: whatever escaped the per-field cleaning
 * (an echoed argument, a future field) loses its control characters here;
 * line breaks stay (they are the table's own). */
static void scrub_table(char *p, size_t len)
{
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n' || (c >= 0x20 && c < 0x7f)) {
            i++;
            continue;
        }
        size_t n;
        long cp = utf8_next((const unsigned char *)p + i, &n);
        if (cp < 0 || cp_unsafe(cp))
            memset(p + i, '?', n);
        i += n;
    }
}

static int cmd_status(struct untild *u, int argc, char **argv, int admin, const char *rep,
                      int json, struct strbuf *b, char *next)
{
    (void)argc;
    (void)argv;
    (void)admin;
    (void)rep;
    (void)next;
    if (json) {
        struct json_object *o = json_object_new_object();
        char t[64];
        /* now: the daemon's clock, by which a console reckons a message's age */
        if (o && (ujson_add_int(o, "windows", (int64_t)windows_count(u->ix))
                  | ujson_add_str(o, "now", when_format(untild_now(u), u->cfg->timezone, t, sizeof t))
                  | ujson_add_int(o, "held", (int64_t)release_count(u->release))
                  | (u->pg ? ujson_add(o, "store", store_pg_status_json(u->pg)) : 0))) {
            json_object_put(o);
            o = NULL;
        }
        control_append_json(b, o);
    } else {
        sb_printf(b, "windows: %zu\nheld:    %zu\n", windows_count(u->ix), release_count(u->release));
        if (u->pg)
            store_pg_status(u->pg, b);
    }
    return EX_OK;
}

static int cmd_followups(struct untild *u, int argc, char **argv, int admin, const char *rep,
                         int json, struct strbuf *b, char *next)
{
    (void)next;
    return followup_list(u, argc, argv, admin ? NULL : rep, json, b) ? EX_USAGE : EX_OK;
}

static int cmd_cadence(struct untild *u, int argc, char **argv, int admin, const char *rep,
                       int json, struct strbuf *b, char *next)
{
    (void)next;
    int rc = contacts_cmd(u, argc, argv, admin, rep, b, json);
    if (rc == EX_OK && argc > 1 && strcmp(argv[1], "list"))
        release_kick(u->release, 1);    /* cadence holds are derived again */
    return rc;
}

static int cmd_token(struct untild *u, int argc, char **argv, int admin, const char *rep,
                     int json, struct strbuf *b, char *next)
{
    (void)admin;    /* VERB_ADMIN: the dispatch checked it */
    (void)rep;
    (void)next;
    return tokens_cmd(u, argc, argv, json, b);
}

static int cmd_reload(struct untild *u, int argc, char **argv, int admin, const char *rep,
                      int json, struct strbuf *b, char *next)
{
    (void)argc;
    (void)argv;
    (void)admin;    /* VERB_ADMIN: the dispatch checked it */
    (void)rep;
    (void)json;
    (void)next;
    if (!u->reload || u->reload(u) < 0) {
        sb_puts(b, "reload failed; the old configuration stays (see the daemon's log)\n");
        return EX_ERR;
    }
    sb_puts(b, "reloaded\n");
    return EX_OK;
}

/* A verb the daemon does not run (unknown, or untilctl's own). */
static int cmd_unknown(struct untild *u, int argc, char **argv, int admin, const char *rep,
                       int json, struct strbuf *b, char *next)
{
    (void)u;
    (void)argc;
    (void)admin;
    (void)rep;
    (void)json;
    (void)next;
    sb_printf(b, "unknown command %s\n", argv[0]);
    return EX_USAGE;
}

typedef int verb_fn(struct untild *u, int argc, char **argv, int admin, const char *rep, int json,
                    struct strbuf *b, char *next);

/* The dispatch: verbs.h's table, by its first word; VERB_ADMIN verbs are
 * refused to others here (the handlers check the finer rules). */
static int verb_run(struct untild *u, int argc, char **argv, int admin, const char *rep, int json,
                    struct strbuf *b, char *next)
{
#define ROW(name, args, who, handler, help) { name, who, handler },
    static const struct { const char *name; enum verb_who who; verb_fn *fn; } rows[] = {
        UNTILD_VERBS(ROW)
    };
#undef ROW
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t w = strcspn(rows[i].name, " ");
        if (strlen(argv[0]) != w || strncmp(rows[i].name, argv[0], w))
            continue;
        if (rows[i].who == VERB_ADMIN && !admin) {
            sb_printf(b, "%s: admins only\n", argv[0]);
            return EX_DENIED;
        }
        return rows[i].fn(u, argc, argv, admin, rep, json, b, next);
    }
    return cmd_unknown(u, argc, argv, admin, rep, json, b, next);
}

int control_exec(struct untild *u, int argc, char **argv, int admin, const char *rep,
                 char **out, size_t *outlen)
{
    char next[NEXT_MAX];
    return control_exec_page(u, argc, argv, admin, rep, out, outlen, next);
}

int control_exec_page(struct untild *u, int argc, char **argv, int admin, const char *rep,
                      char **out, size_t *outlen, char next[NEXT_MAX])
{
    struct strbuf b = { 0 };
    int json = 0, rc;
    char *args[MAX_ARGS];
    int n = 0;
    next[0] = '\0';
    for (int i = 0; i < argc && n < MAX_ARGS; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else
            args[n++] = argv[i];
    }
    if (n == 0) {
        char groups[128];
        verbs_groups(groups, sizeof groups);
        sb_printf(&b, "usage: untilctl %s ...\n", groups);
        rc = EX_USAGE;
    } else {
        rc = verb_run(u, n, args, admin, rep, json, &b, next);
    }
    if (b.oom) {
        sb_free(&b);
        sb_puts(&b, "out of memory\n");
        rc = EX_ERR;
    }
    *out = sb_take(&b, outlen);
    if (*out)
        scrub_table(*out, *outlen);     /* JSON is escaped already (json.h): only plain messages change */
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
    /* A user may be in more groups than a fixed array holds: ask for the
     * count, then for the list. */
    int ng = 0, found = 0;
    gid_t *groups = NULL;
    getgrouplist(pw->pw_name, pw->pw_gid, NULL, &ng);
    if (ng > 0 && (groups = calloc((size_t)ng, sizeof *groups))
        && getgrouplist(pw->pw_name, pw->pw_gid, groups, &ng) >= 0)
        for (int i = 0; i < ng && !found; i++)
            found = groups[i] == g->gr_gid;
    free(groups);
    return found;
}

static void conn_close(struct conn *k)
{
    loop_timer_del(k->c->u->loop, k->timer);
    loop_fd_del(k->c->u->loop, k->fd);
    close(k->fd);
    k->c->nconns--;
    free(k->out);
    free(k);
}

static void conn_idle(struct loop *l, uint64_t id, void *arg)
{
    struct conn *k = arg;
    (void)l; (void)id;
    k->timer = 0;
    if (k->out)
        log_warn("control: closing a connection that read nothing of its answer for %d s "
                 "(%zu of %zu bytes unsent)", IDLE_MS / 1000, k->outlen - k->outoff, k->outlen);
    else
        log_warn("control: closing a connection idle for %d s", IDLE_MS / 1000);
    conn_close(k);
}

static void conn_touch(struct conn *k)
{
    loop_timer_del(k->c->u->loop, k->timer);
    k->timer = loop_timer(k->c->u->loop, IDLE_MS, conn_idle, k);
}

/* Write what the socket takes; close when all is out or the peer is gone. */
static void conn_write(struct loop *l, int fd, int ev, void *arg)
{
    struct conn *k = arg;
    size_t before = k->outoff;
    (void)l; (void)ev;
    while (k->outoff < k->outlen) {
        ssize_t w = send(fd, k->out + k->outoff, k->outlen - k->outoff, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w <= 0) {
            conn_close(k);
            return;
        }
        k->outoff += (size_t)w;
    }
    if (k->outoff == k->outlen) {
        conn_close(k);
        return;
    }
    if (k->outoff > before)
        conn_touch(k);
}

/* Queue the answer ("<exit>[ next=<id>]\n" + text) and start writing. */
static void conn_answer(struct conn *k, int rc, const char *next, char *out, size_t outlen)
{
    size_t cap = k->c->u->cfg->control_output_max;
    char head[16 + NEXT_MAX];
    if (!out) {
        conn_close(k);
        return;
    }
    int hl = snprintf(head, sizeof head, next && *next ? "%d next=%s\n" : "%d\n", rc, next);
    if (cap && outlen + (size_t)hl > cap) {
        log_warn("control: a %zu-byte answer exceeds control_output_max (%zu): refused", outlen, cap);
        free(out);
        outlen = (size_t)asprintf(&out, "answer too large (%zu bytes, control_output_max is %zu): "
                                  "ask for less (--limit)\n", outlen, cap);
        hl = snprintf(head, sizeof head, "%d\n", EX_ERR);
        if (!out || outlen == (size_t)-1) {
            conn_close(k);
            return;
        }
    }
    k->out = malloc((size_t)hl + outlen);
    if (!k->out) {
        free(out);
        conn_close(k);
        return;
    }
    memcpy(k->out, head, (size_t)hl);
    memcpy(k->out + hl, out, outlen);
    k->outlen = (size_t)hl + outlen;
    free(out);
    if (loop_fd(k->c->u->loop, k->fd, LOOP_WRITE, conn_write, k) < 0) {
        conn_close(k);
        return;
    }
    conn_touch(k);
    conn_write(k->c->u->loop, k->fd, LOOP_WRITE, k);
}

static void conn_read(struct loop *l, int fd, int ev, void *arg)
{
    struct conn *k = arg;
    (void)l; (void)ev;
    ssize_t r = read(fd, k->buf + k->len, sizeof k->buf - k->len);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
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
        if (k->len == sizeof k->buf)
            conn_answer(k, EX_USAGE, NULL, strdup("request too long\n"), 17);
        return;
    }
    char *out = NULL, next[NEXT_MAX];
    size_t outlen = 0;
    int rc = control_exec_page(k->c->u, argc, argv, k->admin, k->rep, &out, &outlen, next);
    conn_answer(k, rc, next, out, outlen);
}

static void on_accept(struct loop *l, int fd, int ev, void *arg)
{
    struct control *c = arg;
    (void)ev;
    int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
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
    c->tmp = strdup(tmp);
    unlink(tmp);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* Tight umask while binding: the socket is born 0660, never wider. */
    mode_t old = umask(0117);
    int rc = c->fd < 0 || !c->path || !c->tmp ? -1 : bind(c->fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    /* Reps (non-admin local users) must reach it too: the permission
     * check is SO_PEERCRED's, per verb. It is renamed into place only once
     * it listens (control_publish), so a client never finds a socket that
     * refuses it, nor one of a daemon still starting. */
    if (rc < 0 || listen(c->fd, 64) < 0 || chmod(tmp, 0666) < 0
        || loop_fd(u->loop, c->fd, LOOP_READ, on_accept, c) < 0) {
        log_error("control: cannot listen on %s: %s", path, strerror(errno));
        if (c->fd >= 0)
            close(c->fd);
        unlink(tmp);
        free(c->tmp);
        free(c->path);
        free(c);
        return NULL;
    }
    return c;
}

int control_publish(struct control *c)
{
    if (c->published)
        return 0;
    if (rename(c->tmp, c->path) < 0) {
        log_error("control: cannot put the socket in place at %s: %s", c->path, strerror(errno));
        return -1;
    }
    c->published = 1;
    log_info("control: listening on %s", c->path);
    return 0;
}

void control_free(struct control *c)
{
    if (!c)
        return;
    loop_fd_del(c->u->loop, c->fd);
    close(c->fd);
    unlink(c->published ? c->path : c->tmp);
    free(c->path);
    free(c->tmp);
    free(c);
}
