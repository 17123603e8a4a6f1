/* imap_watch.c - the IMAP watcher: reps also send from webmail and phones,
 * which bypass the SMTP gate, so untild watches each opted-in rep's mailbox.
 *
 * Thread: everything in this file runs on the loop thread. One rep thread
 * per [imap] section (imap_watch_worker.c) talks IMAP and posts batches
 * here (on_batch); all policy, audit, window and store work happens here
 * (SQLite and libical are main-thread-only):
 *   Sent:  recipients quiet at Date -> keyword $UntildTooEarly, audit
 *          "flagged", notice; held by untild -> $UntildHeld; already handled
 *          by the gate (audit has the Message-ID) -> nothing.
 *   INBOX: a message from a quiet contact after the window was set ->
 *          store_seen_add (the gate then lets the rep's reply through), and
 *          with customer_reply_reopens = end-window the window ends.
 *   later: one window per filed message (sender, until the date in the
 *          subfolder name: a day, a month by number or by name in English,
 *          German, French or Spanish, or a quarter; a name without a date
 *          is reported to the rep once), reason = subject, source
 *          WSRC_IMAP, rebuilt at each sync.
 * Folder names are configured in UTF-8 and spoken in modified UTF-7.
 * The per-folder state (UIDVALIDITY, last UID) is saved with store_kv_set
 * after the loop thread has handled a batch, so a restart neither misses
 * nor repeats; a folder seen for the first time starts at its current end
 * (old mail is not audited). A UIDVALIDITY change rescans the folder; the
 * audit log and the keywords keep that from flagging anything twice.
 *
 * Diagnostics: "imap[REP]: ..." lines; passwords are never logged. */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <libetpan/libetpan.h>
#include "untild/imap_watch.h"
#include "untild/strbuf.h"
#include "untild/imap_watch_int.h"
#include "untild/address.h"
#include "untild/daemon.h"
#include "untild/contacts.h"
#include "untild/log.h"
#include "untild/policy_service.h"
#include "untild/secret.h"
#include "untild/loop.h"
#include "untild/message.h"
#include "untild/notice.h"
#include "untild/policy.h"
#include "untild/release.h"
#include "untild/store.h"
#include "untild/when.h"
#include "untild/windows.h"
#include "untild/window_end.h"
/* Batches posted by a stopped watcher (loop thread only). */
static struct batch *orphans;

/* A configured folder name for the wire: UTF-8 as the user wrote it is
 * encoded; a pure-ASCII name that already is modified UTF-7 with an
 * encoded run ("Entw&APw-rfe") is kept. Returns malloc'd or NULL. */
static char *wire_name(const char *cfg)
{
    char out[1024], chk[1024];
    int ascii = 1;
    for (const char *s = cfg; *s; s++)
        ascii &= (unsigned char)*s < 0x80;
    if (ascii && strchr(cfg, '&') && imap_watch_mutf7_to_utf8(cfg, chk, sizeof chk) == 0 && strcmp(chk, cfg))
        return strdup(cfg);
    if (imap_watch_utf8_to_mutf7(cfg, out, sizeof out) < 0) {
        log_error("imap: folder name \"%s\" is not UTF-8 or too long", cfg);
        return NULL;
    }
    return strdup(out);
}

/* Split "imap[s]://host[:port][/...]". Returns 0 or -1. */
static int parse_url(struct rep *r)
{
    const char *u = r->url, *p;
    if (!strncasecmp(u, "imaps://", 8)) {
        r->implicit_tls = 1;
        r->port = 993;
        p = u + 8;
    } else if (!strncasecmp(u, "imap://", 7)) {
        r->port = 143;
        p = u + 7;
    } else {
        return -1;
    }
    const char *at = strchr(p, '@');   /* user@ in the URL: skip it */
    const char *slash = strchr(p, '/');
    if (at && (!slash || at < slash))
        p = at + 1;
    size_t n = strcspn(p, ":/");
    if (n == 0 || n > 255)
        return -1;
    r->host = strndup(p, n);
    if (!r->host)
        return -1;
    if (p[n] == ':') {
        char *end;
        long port = strtol(p + n + 1, &end, 10);
        if (port <= 0 || port > 65535 || (*end && *end != '/'))
            return -1;
        r->port = (int)port;
    }
    return 0;
}

/* ---------- loop thread: message facts ---------- */

/* The addr-specs of a message's To, Cc and Bcc: as many as the header
 * holds (its size is bounded by the fetch), each one checked. */
struct addrs {
    char (*a)[ADDR_MAX];
    size_t n, cap;
    int oom;
};

static void addrs_add(struct addrs *x, const char *spec)
{
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 16;
        void *p = realloc(x->a, cap * sizeof *x->a);
        if (!p) {
            x->oom = 1;
            return;
        }
        x->a = p;
        x->cap = cap;
    }
    snprintf(x->a[x->n++], ADDR_MAX, "%s", spec);
}

static void add_mailbox(const struct mailimf_mailbox *mb, struct addrs *x)
{
    if (mb && mb->mb_addr_spec)
        addrs_add(x, mb->mb_addr_spec);
}

static void add_addr_list(const struct mailimf_address_list *al, struct addrs *x)
{
    if (!al || !al->ad_list)
        return;
    for (clistiter *c = clist_begin(al->ad_list); c; c = clist_next(c)) {
        struct mailimf_address *a = clist_content(c);
        if (a->ad_type == MAILIMF_ADDRESS_MAILBOX)
            add_mailbox(a->ad_data.ad_mailbox, x);
        else if (a->ad_data.ad_group && a->ad_data.ad_group->grp_mb_list)
            for (clistiter *g = clist_begin(a->ad_data.ad_group->grp_mb_list->mb_list); g; g = clist_next(g))
                add_mailbox(clist_content(g), x);
    }
}

struct hdr_facts {
    struct addrs rcpts;                 /* To/Cc/Bcc */
    char senders[2][ADDR_MAX];          /* From, Reply-To */
    size_t nsenders;
    time_t date;                        /* 0: none */
};

static void hdr_facts_free(struct hdr_facts *h)
{
    free(h->rcpts.a);
    memset(&h->rcpts, 0, sizeof h->rcpts);
}

static int hdr_facts(const char *hdr, size_t len, struct hdr_facts *h)
{
    struct mailimf_fields *fields = NULL;
    size_t idx = 0;
    memset(h, 0, sizeof *h);
    if (mailimf_fields_parse(hdr, len, &idx, &fields) != MAILIMF_NO_ERROR || !fields)
        return -1;
    struct addrs from = { 0 }, rt = { 0 };
    for (clistiter *c = clist_begin(fields->fld_list); c; c = clist_next(c)) {
        struct mailimf_field *f = clist_content(c);
        switch (f->fld_type) {
        case MAILIMF_FIELD_TO:
            add_addr_list(f->fld_data.fld_to->to_addr_list, &h->rcpts);
            break;
        case MAILIMF_FIELD_CC:
            add_addr_list(f->fld_data.fld_cc->cc_addr_list, &h->rcpts);
            break;
        case MAILIMF_FIELD_BCC:
            add_addr_list(f->fld_data.fld_bcc->bcc_addr_list, &h->rcpts);
            break;
        case MAILIMF_FIELD_FROM:
            if (f->fld_data.fld_from->frm_mb_list && h->nsenders == 0) {
                clistiter *g = clist_begin(f->fld_data.fld_from->frm_mb_list->mb_list);
                if (g)
                    add_mailbox(clist_content(g), &from);
            }
            break;
        case MAILIMF_FIELD_REPLY_TO:
            if (!rt.n)
                add_addr_list(f->fld_data.fld_reply_to->rt_addr_list, &rt);
            break;
        case MAILIMF_FIELD_ORIG_DATE: {
            const struct mailimf_date_time *d = f->fld_data.fld_orig_date->dt_date_time;
            struct tm tm = { 0 };
            tm.tm_year = d->dt_year - 1900;
            tm.tm_mon = d->dt_month - 1;
            tm.tm_mday = d->dt_day;
            tm.tm_hour = d->dt_hour;
            tm.tm_min = d->dt_min;
            tm.tm_sec = d->dt_sec;
            int z = d->dt_zone;
            h->date = timegm(&tm) - ((z / 100) * 3600 + (z % 100) * 60);
            break;
        }
        default:
            break;
        }
    }
    if (from.n)
        snprintf(h->senders[h->nsenders++], ADDR_MAX, "%s", from.a[0]);
    if (rt.n)
        snprintf(h->senders[h->nsenders++], ADDR_MAX, "%s", rt.a[0]);
    free(from.a);
    free(rt.a);
    if (h->rcpts.oom)
        log_error("imap: out of memory reading a message's recipients; only %zu are checked", h->rcpts.n);
    mailimf_fields_free(fields);
    return 0;
}

/* ---------- loop thread: policy work ---------- */

static struct rep *batch_rep(struct batch *b)
{
    struct imap_watch *m = b->m;
    /* By generation, not slot: a reload may move a running connection to
     * another slot, and its batches in flight must still find it. */
    for (size_t i = 0; i < m->n; i++)
        if (m->reps[i] && m->reps[i]->gen == b->gen)
            return m->reps[i];
    return NULL;   /* from a connection replaced by a reload */
}

static int queue_op(struct rep *r, struct op *o)
{
    pthread_mutex_lock(&r->mu);
    if (r->nops >= MAX_OPS) {
        pthread_mutex_unlock(&r->mu);
        log_error("imap[%s]: too many queued operations; dropping one", rep_name(r));
        free_op(o);
        return -1;
    }
    o->next = NULL;
    *r->tail = o;
    r->tail = &o->next;
    r->nops++;
    pthread_mutex_unlock(&r->mu);
    wake(r);
    return 0;
}

static void queue_store(struct rep *r, const char *folder, uint32_t uidvalidity, uint32_t uid,
                        const char *kw)
{
    struct op *o = calloc(1, sizeof *o);
    if (!o || !(o->folder = strdup(folder)) || !(o->data = strdup(kw))) {
        free_op(o);
        return;
    }
    o->kind = OP_STORE;
    o->uidvalidity = uidvalidity;
    o->uid = uid;
    queue_op(r, o);
}

static int seen_fn(void *arg, const char *message_id, const char *contact)
{
    struct untild *u = arg;
    return store_seen_has(u->store, message_id, contact) == 1;
}

struct audit_find { const char *msg_id, *rep; int gate, mine; };

static int audit_find_fn(const struct audit_rec *a, void *arg)
{
    struct audit_find *f = arg;
    if (!a->msg_id || strcmp(a->msg_id, f->msg_id) != 0)
        return 0;
    if (a->detail && !strncmp(a->detail, "imap:", 5))
        f->mine = 1;
    else
        f->gate = 1;
    return 0;
}

static int held_by_untild(struct untild *u, const char *msg_id)
{
    size_t n = release_count(u->release);
    for (size_t i = 0; i < n; i++) {
        const struct spool_meta *sm = release_meta(u->release, i);
        if (sm && sm->message_id && !strcmp(sm->message_id, msg_id))
            return 1;
    }
    return 0;
}

static void save_state(struct untild *u, struct rep *r, const struct batch *b)
{
    char key[700], val[64];
    snprintf(key, sizeof key, "imap:%s:%s", rep_name(r), b->folder);
    snprintf(val, sizeof val, "%u %u", b->uidvalidity, b->last);
    if (store_kv_set(u->store, key, val) < 0)
        log_error("imap[%s]: cannot save the state of %s", rep_name(r), b->folder);
}

static void sent_item(struct untild *u, struct rep *r, const struct batch *b, const struct item *it)
{
    char sh[256];
    struct message_facts f = { 0 };
    struct hdr_facts h = { 0 };
    char (*norm)[ADDR_MAX] = NULL;
    const char **np = NULL;
    struct verdict *v = NULL;
    if (it->kw_early || it->kw_held)
        return;     /* handled before (e.g. a rescan after UIDVALIDITY) */
    if (message_parse(it->hdr, it->len, u->pcfg.delims, &f) < 0)
        return;
    hdr_facts(it->hdr, it->len, &h);
    time_t at = h.date ? h.date : it->internal;
    if (f.message_id && held_by_untild(u, f.message_id)) {
        queue_store(r, b->folder, b->uidvalidity, it->uid, KW_HELD);
        goto out;
    }
    /* Indexed lookups: most Sent messages have no audit row at all. */
    if (f.message_id && store_audit_has_msg(u->store, f.message_id, at - 30 * 86400) == 1) {
        struct audit_find af = { f.message_id, r->rep, 0, 0 };
        store_audit_foreach_msg(u->store, f.message_id, at - 30 * 86400, audit_find_fn, &af);
        if (af.gate)
            goto out;       /* the gate handled it already */
        if (af.mine) {
            /* flagged before (folder recreated): mark again, tell no one */
            queue_store(r, b->folder, b->uidvalidity, it->uid, KW_TOO_EARLY);
            goto out;
        }
    }
    if (!h.rcpts.n)
        goto out;
    norm = calloc(h.rcpts.n, sizeof *norm);
    np = calloc(h.rcpts.n, sizeof *np);
    v = calloc(h.rcpts.n, sizeof *v);
    if (!norm || !np || !v) {
        log_error("imap[%s]: out of memory checking a sent message's %zu recipients", rep_name(r), h.rcpts.n);
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < h.rcpts.n; i++) {
        const char *why = NULL;
        if (address_normalize(h.rcpts.a[i], u->pcfg.delims, norm[n], ADDR_MAX, &why) < 0)
            continue;
        const char *d = address_domain(norm[n]);
        if (d && u->pcfg.command_domain && !strcasecmp(d, u->pcfg.command_domain))
            continue;
        np[n] = norm[n];
        n++;
    }
    if (!n)
        goto out;
    for (size_t i = 0; i < n; i++)      /* sent around the gate: counts (cadence) */
        contacts_record(u, np[i], r->rep, "imap-sent", f.message_id, at);
    /* A calendar REPLY is not contact only with evidence of the invitation
     * (as at the gate, issue 11.13); without it, it is plain mail. */
    char repn[ADDR_MAX];
    if (f.method == IMIP_REPLY
        && (!f.ical_uid || !f.organizer
            || address_normalize(r->rep, u->pcfg.delims, repn, sizeof repn, NULL) < 0
            || store_invite_has(u->store, repn, f.ical_uid, f.organizer) != 1))
        f.method = IMIP_OTHER;
    policy_message(&u->pcfg, u->ix, r->rep, np, n, &f, seen_fn, u, at, v);
    char list[4096];
    size_t ll = 0;
    list[0] = '\0';
    int flagged = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].action != ACTION_HOLD && v[i].action != ACTION_FLAG && v[i].action != ACTION_REJECT)
            continue;
        char until[64];
        when_format(v[i].quiet_until, v[i].w && v[i].w->tz ? v[i].w->tz : u->cfg->timezone, until,
                    sizeof until);
        store_audit(u->store, &(struct audit_rec){ untild_now(u), "flagged", r->rep, np[i],
                    v[i].w ? v[i].w->id : NULL, f.message_id, "imap: sent outside untild" });
        if (ll < sizeof list)
            ll += (size_t)snprintf(list + ll, sizeof list - ll, "  %s (quiet until %s%s%s)\n", np[i],
                                   until, v[i].w && v[i].w->reason ? ": " : "",
                                   v[i].w && v[i].w->reason ? v[i].w->reason : "");
        flagged++;
    }
    if (flagged) {
        queue_store(r, b->folder, b->uidvalidity, it->uid, KW_TOO_EARLY);
        log_info("imap[%s]: %s UID %u: sent to %d quiet recipient(s) outside untild: flagged",
                 rep_name(r), shown(b->folder, sh, sizeof sh), it->uid, flagged);
        char body[8192];
        snprintf(body, sizeof body,
                 "Your message \"%s\" (sent from another client, not through untild) went to "
                 "recipients who asked not to be contacted yet:\n%s\n"
                 "It has been marked with the keyword %s in %s.\n",
                 f.subject ? f.subject : "(no subject)", list, KW_TOO_EARLY, shown(b->folder, sh, sizeof sh));
        /* Into this rep's mailbox: notice_send appends through the watcher. */
        notice_send(u, NOTICE_FLAGGED, r->rep, body, NULL, 0);
    }
out:
    free(norm);
    free(np);
    free(v);
    hdr_facts_free(&h);
    message_facts_free(&f);
}

/* End every window of contact (customer_reply_reopens = end-window). */
static void end_windows(struct untild *u, struct rep *r, const char *contact)
{
    /* Sized from the index: a fixed array of 64 overflowed for a contact
     * named by more windows (windows_find_who returns the full count). */
    size_t n = windows_find_who(u->ix, contact, NULL, 0), k = 0;
    const struct window **found = n ? calloc(n, sizeof *found) : NULL;
    char (*ids)[WINDOW_ID_MAX] = n ? calloc(n, sizeof *ids) : NULL;
    time_t now = untild_now(u);
    if (n && (!found || !ids)) {
        log_error("imap[%s]: out of memory ending the windows of %s", rep_name(r), contact);
        free(found);
        free(ids);
        return;
    }
    n = windows_find_who(u->ix, contact, found, n);
    for (size_t i = 0; i < n; i++)
        snprintf(ids[k++], WINDOW_ID_MAX, "%s", found[i]->id);
    free(found);
    for (size_t i = 0; i < k; i++) {
        const struct window *w = windows_get(u->ix, ids[i]);
        if (!w || !window_active(w, now, NULL))
            continue;
        window_end_one(u, ids[i], r->rep, contact, "imap: the customer wrote", now);
        log_info("imap[%s]: %s wrote: window %s ended", rep_name(r), contact, ids[i]);
    }
    free(ids);
    if (k)
        window_end_kick(u);
}

/* An invitation from someone else in the rep's inbox: the evidence a
 * calendar REPLY from the rep to its organizer needs (issue 11.13). */
static void note_invitation(struct untild *u, struct rep *r, const struct message_facts *f)
{
    char rep[ADDR_MAX];
    if (f->method != IMIP_REQUEST || !f->ical_uid || !f->organizer
        || address_normalize(r->rep, u->pcfg.delims, rep, sizeof rep, NULL) < 0 || !strcmp(rep, f->organizer))
        return;
    if (store_invite_add(u->store, rep, f->ical_uid, f->organizer, untild_now(u)) < 0)
        log_error("imap[%s]: cannot record the invitation %s from %s", rep_name(r), f->ical_uid, f->organizer);
    else
        log_info("imap[%s]: invitation %s from %s seen; a reply to it is not contact", rep_name(r),
                 f->ical_uid, f->organizer);
}

static void inbox_item(struct untild *u, struct rep *r, const struct item *it)
{
    struct message_facts f = { 0 };
    struct hdr_facts h = { 0 };
    if (message_parse(it->hdr, it->len, u->pcfg.delims, &f) < 0)
        return;
    note_invitation(u, r, &f);
    contacts_inbound(u, f.from, r->rep, f.message_id, it->internal ? it->internal : untild_now(u));
    if (r->reopen == REOPEN_NO)
        goto out;
    hdr_facts(it->hdr, f.header_len, &h);   /* the header section only */
    time_t t = it->internal ? it->internal : untild_now(u);
    char from[ADDR_MAX];
    struct window_match wm;
    if (!f.message_id || !h.nsenders ||
        address_normalize(h.senders[0], u->pcfg.delims, from, sizeof from, NULL) < 0)
        goto out;
    /* quiet when it arrived (or now, if the test clock runs elsewhere) */
    if (!windows_match(u->ix, from, t, &wm) && !windows_match(u->ix, from, untild_now(u), &wm))
        goto out;
    if (wm.w->created && t + 300 < wm.w->created)
        goto out;   /* older than the window: not a re-engagement */
    if (store_seen_add(u->store, f.message_id, from, r->rep, t) < 0) {
        log_error("imap[%s]: cannot record message %s from %s", rep_name(r), f.message_id, from);
        goto out;
    }
    log_info("imap[%s]: %s (quiet) wrote: message %s recorded; the reply is allowed", rep_name(r),
             from, f.message_id);
    if (r->reopen == REOPEN_END_WINDOW)
        end_windows(u, r, from);
out:
    hdr_facts_free(&h);
    message_facts_free(&f);
}

/* ---------- loop thread: windows from folders ---------- */

/* Month names in the languages notices may be in (English, German,
 * French, Spanish): full names, usual abbreviations, with and without
 * accents; lower case UTF-8. */
static const char *const month_names[12] = {
    "january jan januar jän jänner janvier janv enero ene",
    "february feb februar febr février fevrier févr fevr febrero",
    "march mar märz maerz marz mrz mars marzo",
    "april apr avril avr abril abr",
    "may mai mayo",
    "june jun juni juin junio",
    "july jul juli juillet juil julio",
    "august aug août aout agosto ago",
    "september sep sept septembre septiembre setiembre",
    "october oct oktober okt octobre octubre",
    "november nov novembre noviembre",
    "december dec dezember dez décembre decembre déc dic diciembre",
};

static int month_of(const char *w)
{
    size_t wl = strlen(w);
    for (int m = 0; m < 12; m++)
        for (const char *p = month_names[m]; *p;) {
            size_t l = strcspn(p, " ");
            if (l == wl && !memcmp(p, w, l))
                return m + 1;
            p += l;
            while (*p == ' ')
                p++;
        }
    return 0;
}

/* Lower case (ASCII and the Latin-1 letters of UTF-8) and split at
 * blanks, '-', '/', '.', ',' and '_'. Returns the number of tokens. */
static size_t date_tokens(const char *leaf, char tok[4][32])
{
    size_t n = 0, l = 0;
    for (const unsigned char *s = (const unsigned char *)leaf;; s++) {
        int sep = !*s || strchr(" \t-/.,_", *s);
        if (sep) {
            if (l) {
                if (n == 4)
                    return 5;   /* too many: not one of our forms */
                tok[n++][l] = '\0';
                l = 0;
            }
            if (!*s)
                return n;
            continue;
        }
        if (n == 4 || l + 2 >= sizeof tok[0])
            return 5;
        unsigned char c = *s;
        if (c >= 'A' && c <= 'Z')
            c += 32;
        else if (s > (const unsigned char *)leaf && s[-1] == 0xC3 && c >= 0x80 && c <= 0x9E && c != 0x97)
            c += 0x20;   /* À..Þ -> à..þ */
        tok[n][l++] = (char)c;
    }
}

static int all_digits(const char *s, size_t minl, size_t maxl)
{
    size_t l = strlen(s);
    if (l < minl || l > maxl)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

/* Year and month of "2027-07", "07/2027", "März 2027", "2027 juillet",
 * "Q3 2027", "2027-Q3" (the quarter's first month). Returns 0 or -1. */
static int folder_month(const char *leaf, int *year, int *month)
{
    char tok[4][32];
    if (date_tokens(leaf, tok) != 2)
        return -1;
    for (int k = 0; k < 2; k++) {
        const char *y = tok[k], *m = tok[1 - k];
        if (!all_digits(y, 4, 4))
            continue;
        *year = atoi(y);
        if (all_digits(m, 1, 2))
            *month = atoi(m);
        else if (m[0] == 'q' && m[1] >= '1' && m[1] <= '4' && !m[2])
            *month = 3 * (m[1] - '1') + 1;
        else
            *month = month_of(m);
        if (*year >= 1970 && *year < 10000 && *month >= 1 && *month <= 12)
            return 0;
    }
    return -1;
}

int imap_watch_folder_date(const char *leaf, const char *tz, time_t now, time_t *out)
{
    char err[128], buf[64];
    int year, month;
    if (folder_month(leaf, &year, &month) == 0) {
        snprintf(buf, sizeof buf, "%04d-%02d-01", year, month);
        return when_parse(buf, tz, now, out, err, sizeof err);
    }
    if (when_parse(leaf, tz, now, out, err, sizeof err) == 0 && *out != WHEN_NEVER)
        return 0;
    return -1;
}

static void window_free_copy(struct window *w)
{
    for (size_t i = 0; i < w->nwho; i++)
        free(w->who[i]);
    free(w->who);
    free(w->reason);
    free(w->owner);
    free(w->tz);
    memset(w, 0, sizeof *w);
}

/* Stable id: "i" + 14 hex of a hash of rep, folder and Message-ID. */
static void fw_id(const char *rep, const char *leaf, const char *msgid, char id[WINDOW_ID_MAX])
{
    uint64_t h = 1469598103934665603ULL;
    const char *parts[3] = { rep ? rep : "", leaf, msgid };
    for (int k = 0; k < 3; k++) {
        for (const char *p = parts[k]; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    snprintf(id, WINDOW_ID_MAX, "i%014llx", (unsigned long long)(h & 0xffffffffffffffULL));
}

/* A "Contact later" subfolder whose name has no date we can read: its
 * messages make nobody quiet, so tell the rep (once per name, in the
 * notice folder) instead of a debug line nobody reads. */
static void not_understood(struct untild *u, struct rep *r, const struct batch *b, const char *leaf)
{
    char key[700], sh[256], body[2048];
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        n += b->items[i].leaf && !strcmp(b->items[i].leaf, leaf);
    snprintf(key, sizeof key, "imap:badleaf:%s:%s", r->rep, leaf);
    char *v = store_kv_get(u->store, key);
    log_warn("imap[%s]: folder \"%s/%s\": no date understood in its name; its %zu message(s) make nobody quiet",
             rep_name(r), shown(r->later, sh, sizeof sh), leaf, n);
    if (v) {
        free(v);
        return;
    }
    snprintf(body, sizeof body,
             "untild did not understand the folder name \"%s/%s\": it has no date untild can read, so the "
             "%zu message(s) filed there do not keep anyone quiet.\n\n"
             "Rename the folder to a date, for example:\n"
             "  2027-07-15   (a day)\n"
             "  2027-07      (a month: quiet until the month begins)\n"
             "  July 2027, Juli 2027, juillet 2027, julio 2027   (month names in English, German, French "
             "or Spanish, also abbreviated: Jul 2027)\n"
             "  Q3 2027      (a quarter: quiet until it begins)\n",
             shown(r->later, sh, sizeof sh), leaf, n);
    notice_send(u, NOTICE_NOT_UNDERSTOOD, r->rep, body, NULL, 0);
    if (store_kv_set(u->store, key, "1") < 0)
        log_error("imap[%s]: cannot remember the folder name %s", rep_name(r), leaf);
}

static void later_batch(struct untild *u, struct rep *r, const struct batch *b)
{
    char sh[256];
    struct window *nw = calloc(b->n ? b->n : 1, sizeof *nw);
    size_t nn = 0;
    time_t now = untild_now(u);
    if (!nw)
        return;
    for (size_t i = 0; i < b->n; i++) {
        const struct item *it = &b->items[i];
        struct message_facts f = { 0 };
        struct hdr_facts h = { 0 };
        time_t until;
        char idsrc[64];
        if (!it->leaf || imap_watch_folder_date(it->leaf, u->cfg->timezone, now, &until) < 0) {
            int seen = 0;
            for (size_t k = 0; k < i; k++)
                seen |= b->items[k].leaf && it->leaf && !strcmp(b->items[k].leaf, it->leaf);
            if (!seen && it->leaf)
                not_understood(u, r, b, it->leaf);
            continue;
        }
        if (message_parse(it->hdr, it->len, u->pcfg.delims, &f) < 0)
            continue;
        hdr_facts(it->hdr, it->len, &h);
        hdr_facts_free(&h);     /* only the senders are wanted */
        struct window *w = &nw[nn];
        memset(w, 0, sizeof *w);
        w->who = calloc(2, sizeof *w->who);
        for (size_t k = 0; w->who && k < h.nsenders; k++) {
            char a[ADDR_MAX];
            if (address_normalize(h.senders[k], u->pcfg.delims, a, sizeof a, NULL) < 0)
                continue;
            if (w->nwho && !strcmp(w->who[0], a))
                continue;
            if ((w->who[w->nwho] = strdup(a)))
                w->nwho++;
        }
        if (!w->nwho) {
            window_free_copy(w);
            message_facts_free(&f);
            continue;
        }
        snprintf(idsrc, sizeof idsrc, "%u", it->uid);
        fw_id(r->rep, it->leaf, f.message_id ? f.message_id : idsrc, w->id);
        w->until = until;
        w->from = 0;
        w->duration = 86400;
        w->tz = xstrdup(u->cfg->timezone);
        w->reason = xstrdup(f.subject);
        w->owner = xstrdup(r->rep);
        w->created = it->internal ? it->internal : now;
        w->action = ACTION_DEFAULT;
        w->source = WSRC_IMAP;
        message_facts_free(&f);
        /* the same message filed twice: keep one */
        int dup = 0;
        for (size_t k = 0; k < nn; k++)
            if (!strcmp(nw[k].id, w->id))
                dup = 1;
        if (dup) {
            window_free_copy(w);
            continue;
        }
        nn++;
    }
    /* Windows gone from the folders end (and release what they held). */
    int removed = 0, added = 0;
    for (size_t i = 0; i < r->nfw; i++) {
        int keep = 0;
        for (size_t k = 0; k < nn; k++)
            if (!strcmp(r->fw[i].id, nw[k].id))
                keep = 1;
        if (!keep) {
            if (windows_remove(u->ix, r->fw[i].id) == 0) {
                store_window_retract(u->store, r->fw[i].id, WSRC_IMAP);   /* other gateways */
                store_audit(u->store, &(struct audit_rec){ now, "window-ended", r->rep, r->fw[i].who[0],
                            r->fw[i].id, NULL, "imap: message removed from the folder" });
                log_info("imap[%s]: window %s for %s ended (message left the folder)", rep_name(r),
                         r->fw[i].id, r->fw[i].who[0]);
            }
            removed++;
        }
    }
    for (size_t k = 0; k < nn; k++) {
        int existed = 0;
        for (size_t i = 0; i < r->nfw; i++)
            if (!strcmp(r->fw[i].id, nw[k].id))
                existed = 1;
        const struct window *old = windows_get(u->ix, nw[k].id);
        if (old && existed && old->until == nw[k].until)
            continue;
        if (!windows_add(u->ix, &nw[k])) {
            log_error("imap[%s]: cannot add window for %s", rep_name(r), nw[k].who[0]);
            continue;
        }
        store_window_publish(u->store, &nw[k]);   /* other gateways ([store] url) */
        if (!existed) {
            char until[64];
            store_audit(u->store, &(struct audit_rec){ now, "window-added", r->rep, nw[k].who[0],
                        nw[k].id, NULL, "imap: filed in a later folder" });
            log_info("imap[%s]: window %s: %s until %s (from folder %s)", rep_name(r), nw[k].id,
                     nw[k].who[0], when_format(nw[k].until, nw[k].tz, until, sizeof until),
                     shown(b->folder, sh, sizeof sh));
        } else {
            removed++;   /* until changed: maybe shorter */
        }
        added++;
    }
    for (size_t i = 0; i < r->nfw; i++)
        window_free_copy(&r->fw[i]);
    free(r->fw);
    r->fw = nw;
    r->nfw = nn;
    if (removed || added) {
        release_kick(u->release, removed > 0);
        policy_service_kick(u->psvc, 1);
        untild_windows_changed(u);
    }
}

static void on_batch(void *arg)
{
    struct batch *b = arg;
    struct imap_watch *m = b->m;
    if (!m) {   /* posted by a watcher that was stopped since */
        if (b->prev)
            b->prev->next = b->next;
        else
            orphans = b->next;
        if (b->next)
            b->next->prev = b->prev;
        free_batch(b);
        return;
    }
    pthread_mutex_lock(&m->mu);
    if (b->prev)
        b->prev->next = b->next;
    else
        m->inflight = b->next;
    if (b->next)
        b->next->prev = b->prev;
    pthread_mutex_unlock(&m->mu);
    struct rep *r = batch_rep(b);
    struct untild *u = m->u;
    if (!r) {
        free_batch(b);
        return;
    }
    if (b->kind == B_LATER) {
        later_batch(u, r, b);
    } else {
        for (size_t i = 0; i < b->n; i++) {
            if (b->kind == B_SENT)
                sent_item(u, r, b, &b->items[i]);
            else
                inbox_item(u, r, &b->items[i]);
        }
        save_state(u, r, b);
    }
    free_batch(b);
}

/* ---------- life cycle ---------- */

static void rep_free(struct rep *r)
{
    if (!r)
        return;
    while (r->ops) {
        struct op *o = r->ops;
        r->ops = o->next;
        free_op(o);
    }
    for (size_t i = 0; i < r->nfs; i++)
        free(r->fs[i].name);
    for (size_t i = 0; i < r->nfw; i++)
        window_free_copy(&r->fw[i]);
    free(r->fw);
    free(r->later_sig);
    free(r->rep); free(r->url); free(r->host); free(r->user); free(r->pwfile); free(r->pwcmd);
    free(r->ca); free(r->sent); free(r->inbox); free(r->notice); free(r->later);
    free(r->cfg_inbox); free(r->cfg_notice); free(r->cfg_later);
    if (r->wake[0] >= 0)
        close(r->wake[0]);
    if (r->wake[1] >= 0)
        close(r->wake[1]);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static void rep_stop(struct rep *r)
{
    if (!r || !r->started)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    if (r->netfd >= 0)
        shutdown(r->netfd, SHUT_RDWR);   /* unblock a blocking read */
    pthread_mutex_unlock(&r->mu);
    wake(r);
    pthread_join(r->th, NULL);
    r->started = 0;
}

static int add_folder(struct rep *r, const char *name)
{
    if (r->nfs >= MAX_FOLDERS || fstate_get(r, name))
        return 0;
    if (!(r->fs[r->nfs].name = strdup(name)))
        return -1;
    r->nfs++;
    return 0;
}

/* Copy the section, load the folder state, start the thread. */
static struct rep *rep_new(struct imap_watch *m, const struct imap_cfg *c, size_t idx)
{
    struct untild *u = m->u;
    const char *repname = c->rep ? c->rep : u->cfg->owner;
    if (!repname) {
        log_error("imap: [imap] without a rep needs [daemon] owner; not watching");
        return NULL;
    }
    struct rep *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->wake[0] = r->wake[1] = -1;
    r->netfd = -1;
    pthread_mutex_init(&r->mu, NULL);
    r->tail = &r->ops;
    r->m = m;
    r->idx = idx;
    r->gen = ++m->gen;
    r->rep = strdup(repname);
    r->url = xstrdup(c->url);
    r->user = xstrdup(c->username);
    r->pwfile = xstrdup(c->password_file);
    r->pwcmd = xstrdup(c->password_command);
    r->ca = xstrdup(c->tls_ca);
    r->sent = xstrdup(c->sent_folders ? c->sent_folders : "Sent");
    r->cfg_inbox = xstrdup(c->inbox ? c->inbox : "INBOX");
    r->cfg_notice = xstrdup(c->notice_folder ? c->notice_folder : r->cfg_inbox);
    r->cfg_later = xstrdup(c->later_folder ? c->later_folder : "Contact later");
    r->later_set = c->later_folder != NULL;
    r->plain = c->tls == TLS_NONE;
    r->poll = c->poll_interval > 0 ? c->poll_interval : 60;
    r->reopen = (int)c->customer_reply_reopens;
    if (!r->rep || !r->url || !r->sent || !r->cfg_inbox || !r->cfg_notice || !r->cfg_later)
        goto fail;
    if (parse_url(r) < 0) {
        log_error("imap[%s]: cannot parse url %s", rep_name(r), r->url);
        goto fail;
    }
    /* strip a trailing delimiter-looking '/' or '.': matched per LIST */
    size_t ll = strlen(r->cfg_later);
    if (ll > 1 && (r->cfg_later[ll - 1] == '/' || r->cfg_later[ll - 1] == '.'))
        r->cfg_later[ll - 1] = '\0';
    if (!(r->inbox = wire_name(r->cfg_inbox)) || !(r->notice = wire_name(r->cfg_notice))
        || !(r->later = wire_name(r->cfg_later)))
        goto fail;
    char *save = NULL, *list = strdup(r->sent);
    if (!list)
        goto fail;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ' || *t == '\t')
            t++;
        size_t n = strlen(t);
        while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
            t[--n] = '\0';
        char *w = *t ? wire_name(t) : NULL;
        if (*t && (!w || add_folder(r, w) < 0)) {
            free(w);
            free(list);
            goto fail;
        }
        free(w);
    }
    free(list);
    if (add_folder(r, r->inbox) < 0)
        goto fail;
    for (size_t i = 0; i < r->nfs; i++) {
        char key[700];
        snprintf(key, sizeof key, "imap:%s:%s", r->rep, r->fs[i].name);
        char *v = store_kv_get(u->store, key);
        unsigned long uv, last;
        if (v && sscanf(v, "%lu %lu", &uv, &last) == 2) {
            r->fs[i].known = 1;
            r->fs[i].uidvalidity = (uint32_t)uv;
            r->fs[i].last = (uint32_t)last;
        }
        free(v);
    }
    if (pipe2(r->wake, O_CLOEXEC | O_NONBLOCK) < 0)
        goto fail;
    if (pthread_create(&r->th, NULL, imap_watch_rep_thread, r) != 0)
        goto fail;
    r->started = 1;
    log_info("imap[%s]: watching %s (%s)", rep_name(r), r->url, r->sent);
    return r;
fail:
    log_error("imap[%s]: cannot start the watcher", rep_name(r));
    rep_free(r);
    return NULL;
}

struct imap_watch *imap_watch_start(struct untild *u, int *err)
{
    *err = 0;
    if (!u->cfg->nimap)
        return NULL;
    struct imap_watch *m = calloc(1, sizeof *m);
    if (!m) {
        *err = -1;
        return NULL;
    }
    m->u = u;
    m->loop = u->loop;
    m->on_batch = on_batch;
    pthread_mutex_init(&m->mu, NULL);
    m->n = u->cfg->nimap;
    for (size_t i = 0; i < m->n; i++)
        m->reps[i] = rep_new(m, &u->cfg->imap[i], i);   /* a bad one is skipped, logged */
    return m;
}

/* Does r run with exactly the settings of c? Every [imap] key is compared
 * as rep_new would derive it (defaults filled in), so a reload changing any
 * of them (notice_folder and later_folder too) restarts the connection. */
static int same_cfg(const struct rep *r, const struct imap_cfg *c, const struct config *cfg)
{
    const char *repname = c->rep ? c->rep : cfg->owner;
    const char *inbox = c->inbox ? c->inbox : "INBOX";
    const char *later = c->later_folder ? c->later_folder : "Contact later";
    size_t ll = strlen(later);
    if (ll > 1 && (later[ll - 1] == '/' || later[ll - 1] == '.'))
        ll--;   /* rep_new strips a trailing delimiter */
    return str_same(r->rep, repname) && str_same(r->url, c->url) && str_same(r->user, c->username) &&
           str_same(r->pwfile, c->password_file) && str_same(r->pwcmd, c->password_command) &&
           str_same(r->ca, c->tls_ca) && str_same(r->sent, c->sent_folders ? c->sent_folders : "Sent") &&
           r->plain == (c->tls == TLS_NONE) &&
           r->poll == (c->poll_interval > 0 ? c->poll_interval : 60) &&
           r->reopen == (int)c->customer_reply_reopens && str_same(r->cfg_inbox, inbox) &&
           str_same(r->cfg_notice, c->notice_folder ? c->notice_folder : inbox) &&
           strlen(r->cfg_later) == ll && !strncmp(r->cfg_later, later, ll) &&
           r->later_set == (c->later_folder != NULL);
}

void imap_watch_reconfigure(struct imap_watch *m)
{
    if (!m)
        return;   /* main.c calls imap_watch_start when none was running */
    struct untild *u = m->u;
    const struct config *c = u->cfg;
    for (size_t i = 0; i < m->n; i++) {
        struct rep *r = m->reps[i];
        if (!r)
            continue;
        /* u->ix was rebuilt from files + store: the folder windows go back */
        for (size_t k = 0; k < r->nfw; k++)
            windows_add(u->ix, &r->fw[k]);
    }
    /* Sections whose settings did not change keep their connection (it may
     * move to another slot); the others stop, new ones start. */
    struct rep *nr[CONFIG_MAX_REPS] = { 0 };
    int kept[CONFIG_MAX_REPS] = { 0 }, changed = c->nimap != m->n;
    for (size_t i = 0; i < c->nimap; i++) {
        for (size_t j = 0; j < m->n; j++) {
            if (!kept[j] && m->reps[j] && same_cfg(m->reps[j], &c->imap[i], c)) {
                nr[i] = m->reps[j];
                kept[j] = 1;
                changed |= i != j;
                break;
            }
        }
        if (!nr[i])
            changed = 1;
    }
    if (!changed)
        return;
    log_info("imap: [imap] sections changed: reconnecting the changed ones");
    struct window *keep_fw[CONFIG_MAX_REPS] = { 0 };
    size_t keep_n[CONFIG_MAX_REPS] = { 0 };
    char *keep_rep[CONFIG_MAX_REPS] = { 0 };
    size_t nk = 0;
    for (size_t i = 0; i < m->n; i++) {
        struct rep *r = m->reps[i];
        m->reps[i] = NULL;
        if (!r || kept[i])
            continue;
        rep_stop(r);
        keep_fw[nk] = r->fw;
        keep_n[nk] = r->nfw;
        keep_rep[nk] = r->rep;
        r->rep = NULL;
        r->fw = NULL;
        r->nfw = 0;
        nk++;
        rep_free(r);
    }
    m->n = c->nimap;
    for (size_t i = 0; i < m->n; i++) {
        if (nr[i]) {
            m->reps[i] = nr[i];
            continue;
        }
        struct rep *r = rep_new(m, &c->imap[i], i);
        m->reps[i] = r;
        for (size_t k = 0; r && k < nk; k++)
            if (keep_rep[k] && !strcasecmp(keep_rep[k], r->rep)) {
                r->fw = keep_fw[k];   /* until its first sync replaces them */
                r->nfw = keep_n[k];
                keep_fw[k] = NULL;
                keep_n[k] = 0;
            }
    }
    int gone = 0;
    for (size_t k = 0; k < nk; k++) {
        for (size_t i = 0; i < keep_n[k]; i++) {
            if (windows_remove(u->ix, keep_fw[k][i].id) == 0)
                gone = 1;
            window_free_copy(&keep_fw[k][i]);
        }
        free(keep_fw[k]);
        free(keep_rep[k]);
    }
    if (gone) {
        release_kick(u->release, 1);
        policy_service_kick(u->psvc, 1);
        untild_windows_changed(u);
    }
}

void imap_watch_stop(struct imap_watch *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        rep_stop(m->reps[i]);
    for (size_t i = 0; i < m->n; i++)
        rep_free(m->reps[i]);
    /* Their calls may still run (loop_run_pending at shutdown) or be
     * dropped (loop_free): keep them, reachable, until they run. */
    while (m->inflight) {
        struct batch *b = m->inflight;
        m->inflight = b->next;
        b->m = NULL;
        b->prev = NULL;
        b->next = orphans;
        if (orphans)
            orphans->prev = b;
        orphans = b;
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

int imap_watch_append(struct imap_watch *m, const char *rep, const char *msg, size_t len)
{
    if (!m || !rep || !msg)
        return -1;
    for (size_t i = 0; i < m->n; i++) {
        struct rep *r = m->reps[i];
        if (!r || strcasecmp(r->rep, rep) != 0)
            continue;
        struct op *o = calloc(1, sizeof *o);
        if (!o || !(o->folder = strdup(r->notice)) || !(o->data = malloc(len ? len : 1))) {
            free_op(o);
            return -1;
        }
        memcpy(o->data, msg, len);
        o->len = len;
        o->kind = OP_APPEND;
        return queue_op(r, o);
    }
    return -1;
}
