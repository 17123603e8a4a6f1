/* imap_watch_worker.c - the IMAP watcher's rep threads (the loop side is
 * imap_watch.c; docs/DESIGN.md "IMAP path").
 *
 * Thread: everything here runs on a rep thread, one per [imap] section
 * (libetpan is blocking; one rep's broken server never stalls another or
 * the loop), entered at imap_watch_rep_thread. It connects (implicit TLS or
 * STARTTLS, verifying the certificate chain and host name itself, since
 * libetpan's GnuTLS build does not), logs in, and then, every poll_interval
 * (or sooner, when IDLE on the inbox reports something):
 *   - runs queued operations (APPEND notices, STORE keywords);
 *   - fetches the headers of new messages (UID > last seen) in the Sent
 *     folder(s) and the inbox;
 *   - reads every message in the "Contact later/<date>" folders.
 * Results go to the loop thread as batches (post -> loop_post); a rep
 * thread never touches struct untild, the store, the windows or libical.
 * Also here: folder names UTF-8 <-> modified UTF-7 (any thread).
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
#include "untild/sysutil.h"
#include "untild/imap_watch_int.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/secret.h"

/* ---------- folder names: UTF-8 <-> IMAP modified UTF-7 (RFC 3501 5.1.3) ---------- */

static const char b64m[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* One code point from UTF-8 (strict: no overlongs, no surrogates).
 * Returns its length, or 0 if invalid. */
static size_t utf8_cp(const unsigned char *s, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t n = s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 && s[0] < 0xE0 ? 2 : 0;
    if (!n)
        return 0;
    uint32_t c = s[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10FFFF)) || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return n;
}

struct ob { char *p; size_t n, sz; int full; };

static void ob_put(struct ob *o, char c)
{
    if (o->n + 1 < o->sz)
        o->p[o->n++] = c;
    else
        o->full = 1;
}

static void b64_flush(struct ob *o, uint32_t *bits, int *nbits)
{
    if (*nbits > 0)
        ob_put(o, b64m[(*bits << (6 - *nbits)) & 0x3F]);
    ob_put(o, '-');
    *bits = 0;
    *nbits = 0;
}

int imap_watch_utf8_to_mutf7(const char *in, char *out, size_t outsz)
{
    struct ob o = { out, 0, outsz, 0 };
    uint32_t bits = 0;
    int nbits = 0, open = 0;
    const unsigned char *s = (const unsigned char *)in;
    if (!outsz)
        return -1;
    while (*s) {
        uint32_t cp;
        size_t l = utf8_cp(s, &cp);
        if (!l)
            return -1;
        s += l;
        if (cp >= 0x20 && cp <= 0x7E) {
            if (open)
                b64_flush(&o, &bits, &nbits), open = 0;
            ob_put(&o, (char)cp);
            if (cp == '&')
                ob_put(&o, '-');
            continue;
        }
        if (!open)
            ob_put(&o, '&'), open = 1;
        uint16_t units[2];
        int nu = 1;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            units[0] = (uint16_t)(0xD800 | (cp >> 10));
            units[1] = (uint16_t)(0xDC00 | (cp & 0x3FF));
            nu = 2;
        } else {
            units[0] = (uint16_t)cp;
        }
        for (int k = 0; k < nu; k++) {
            bits = (bits << 16) | units[k];
            nbits += 16;
            while (nbits >= 6) {
                nbits -= 6;
                ob_put(&o, b64m[(bits >> nbits) & 0x3F]);
            }
            bits &= (1u << nbits) - 1;
        }
    }
    if (open)
        b64_flush(&o, &bits, &nbits);
    out[o.n] = '\0';
    return o.full ? -1 : 0;
}

static void utf8_put(struct ob *o, uint32_t cp)
{
    if (cp < 0x80) {
        ob_put(o, (char)cp);
    } else if (cp < 0x800) {
        ob_put(o, (char)(0xC0 | (cp >> 6)));
        ob_put(o, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        ob_put(o, (char)(0xE0 | (cp >> 12)));
        ob_put(o, (char)(0x80 | ((cp >> 6) & 0x3F)));
        ob_put(o, (char)(0x80 | (cp & 0x3F)));
    } else {
        ob_put(o, (char)(0xF0 | (cp >> 18)));
        ob_put(o, (char)(0x80 | ((cp >> 12) & 0x3F)));
        ob_put(o, (char)(0x80 | ((cp >> 6) & 0x3F)));
        ob_put(o, (char)(0x80 | (cp & 0x3F)));
    }
}

/* One "&...-" run (s after the '&'); returns the bytes read, or 0. */
static size_t mutf7_run(const char *s, struct ob *o)
{
    uint32_t bits = 0, hi = 0;
    int nbits = 0;
    size_t i = 0;
    for (; s[i] && s[i] != '-'; i++) {
        const char *q = strchr(b64m, s[i]);
        if (!q)
            return 0;
        bits = (bits << 6) | (uint32_t)(q - b64m);
        if ((nbits += 6) < 16)
            continue;
        nbits -= 16;
        uint32_t u = (bits >> nbits) & 0xFFFF;
        bits &= (1u << nbits) - 1;
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (hi)
                return 0;
            hi = u;
        } else if (u >= 0xDC00 && u <= 0xDFFF) {
            if (!hi)
                return 0;
            utf8_put(o, 0x10000 + ((hi - 0xD800) << 10) + (u - 0xDC00));
            hi = 0;
        } else {
            if (hi || (u >= 0x20 && u <= 0x7E))
                return 0;   /* printable ASCII must represent itself */
            utf8_put(o, u);
        }
    }
    if (s[i] != '-' || i == 0 || hi || nbits >= 6 || bits)
        return 0;
    return i + 1;
}

int imap_watch_mutf7_to_utf8(const char *in, char *out, size_t outsz)
{
    struct ob o = { out, 0, outsz, 0 };
    if (!outsz)
        return -1;
    for (const char *s = in; *s;) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c > 0x7E)
            return -1;
        if (c != '&') {
            ob_put(&o, (char)c);
            s++;
            continue;
        }
        if (s[1] == '-') {
            ob_put(&o, '&');
            s += 2;
            continue;
        }
        size_t l = mutf7_run(s + 1, &o);
        if (!l)
            return -1;
        s += 1 + l;
    }
    out[o.n] = '\0';
    return o.full ? -1 : 0;
}

/* The password: first line of the file or of the command's output. Read at
 * each connection, so a changed password is picked up. Never logged. */
static char *read_secret(const struct rep *r)
{
    char who[320];
    snprintf(who, sizeof who, "imap[%s]", rep_name(r));
    return secret_load(r->pwfile, r->pwcmd, who);
}

/* Sleep up to ms, or until woken (stop, new operation). */
static void wait_wake(struct rep *r, int ms, int netfd, int *net_ready)
{
    struct pollfd p[2] = { { r->wake[0], POLLIN, 0 }, { netfd, POLLIN, 0 } };
    int n = poll(p, netfd >= 0 ? 2 : 1, ms);
    if (n > 0 && (p[0].revents & POLLIN)) {
        char buf[64];
        while (read(r->wake[0], buf, sizeof buf) > 0)
            ;
    }
    if (net_ready)
        *net_ready = n > 0 && netfd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR));
}

static int stopping(struct rep *r)
{
    pthread_mutex_lock(&r->mu);
    int s = r->stop;
    pthread_mutex_unlock(&r->mu);
    return s;
}

/* ---------- TLS verification ---------- */

struct sni { const char *host; };

static void ssl_cb(struct mailstream_ssl_context *ctx, void *data)
{
    struct sni *s = data;
    mailstream_ssl_set_server_name(ctx, (char *)s->host);
}

/* Verify the peer's chain against the system trust plus tls_ca, and the
 * host name. Returns 0, or -1 with a log line saying why. */
static int verify_peer(struct rep *r, mailimap *imap)
{
    carray *chain = mailstream_get_certificate_chain(imap->imap_stream);
    gnutls_x509_crt_t crts[16];
    unsigned ncrt = 0, status = 0;
    gnutls_x509_trust_list_t tl = NULL;
    int rc = -1;

    if (!chain || carray_count(chain) == 0) {
        log_error("imap[%s]: %s:%d sent no certificate; refusing", rep_name(r), r->host, r->port);
        goto out;
    }
    for (unsigned i = 0; i < carray_count(chain) && ncrt < 16; i++) {
        MMAPString *s = carray_get(chain, i);
        gnutls_datum_t d = { (unsigned char *)s->str, (unsigned)s->len };
        if (gnutls_x509_crt_init(&crts[ncrt]) < 0)
            goto out;
        if (gnutls_x509_crt_import(crts[ncrt], &d, GNUTLS_X509_FMT_DER) < 0) {
            gnutls_x509_crt_deinit(crts[ncrt]);
            log_error("imap[%s]: %s:%d: cannot parse the server certificate; refusing", rep_name(r),
                      r->host, r->port);
            goto out;
        }
        ncrt++;
    }
    if (gnutls_x509_trust_list_init(&tl, 0) < 0)
        goto out;
    if (gnutls_x509_trust_list_add_system_trust(tl, 0, 0) < 0)
        log_warn("imap[%s]: cannot load the system trust store", rep_name(r));
    if (r->ca && gnutls_x509_trust_list_add_trust_file(tl, r->ca, NULL, GNUTLS_X509_FMT_PEM, 0, 0) <= 0) {
        log_error("imap[%s]: tls_ca %s holds no usable certificate; refusing", rep_name(r), r->ca);
        goto out;
    }
    if (gnutls_x509_trust_list_verify_crt(tl, crts, ncrt, 0, &status, NULL) < 0 || status != 0) {
        gnutls_datum_t why = { NULL, 0 };
        gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0);
        log_error("imap[%s]: %s:%d: untrusted server certificate (%s); refusing (set tls_ca for a "
                  "private CA)", rep_name(r), r->host, r->port, why.data ? (char *)why.data : "verification failed");
        gnutls_free(why.data);
        goto out;
    }
    if (!gnutls_x509_crt_check_hostname(crts[0], r->host)) {
        log_error("imap[%s]: %s:%d: server certificate does not match the host name %s; refusing",
                  rep_name(r), r->host, r->port, r->host);
        goto out;
    }
    rc = 0;
out:
    if (tl)
        gnutls_x509_trust_list_deinit(tl, 1);
    for (unsigned i = 0; i < ncrt; i++)
        gnutls_x509_crt_deinit(crts[i]);
    if (chain)
        mailstream_certificate_chain_free(chain);
    return rc;
}

static int imap_ok(int e)
{
    return e == MAILIMAP_NO_ERROR || e == MAILIMAP_NO_ERROR_AUTHENTICATED ||
           e == MAILIMAP_NO_ERROR_NON_AUTHENTICATED;
}

static void set_netfd(struct rep *r, mailimap *imap)
{
    int fd = -1;
    if (imap && imap->imap_stream && mailstream_get_low(imap->imap_stream))
        fd = mailstream_low_get_fd(mailstream_get_low(imap->imap_stream));
    pthread_mutex_lock(&r->mu);
    r->netfd = fd;
    pthread_mutex_unlock(&r->mu);
}

/* Connect, secure, verify, log in. Returns 0, -1 (retry later). *auth_fail
 * is set when the server refused the credentials. */
static int imap_open(struct rep *r, mailimap *imap, int *auth_fail)
{
    struct sni sni = { r->host };
    int e;
    *auth_fail = 0;
    mailimap_set_timeout(imap, NET_TIMEOUT);
    if (r->implicit_tls)
        e = mailimap_ssl_connect_with_callback(imap, r->host, (uint16_t)r->port, ssl_cb, &sni);
    else
        e = mailimap_socket_connect(imap, r->host, (uint16_t)r->port);
    if (!imap_ok(e)) {
        log_error("imap[%s]: cannot connect to %s:%d (libetpan error %d)", rep_name(r), r->host,
                  r->port, e);
        return -1;
    }
    set_netfd(r, imap);
    if (!r->implicit_tls && !r->plain) {
        e = mailimap_socket_starttls_with_callback(imap, ssl_cb, &sni);
        if (!imap_ok(e)) {
            log_error("imap[%s]: %s:%d: STARTTLS failed (error %d); tls = required, refusing",
                      rep_name(r), r->host, r->port, e);
            return -1;
        }
        set_netfd(r, imap);
    }
    if (!r->plain && verify_peer(r, imap) < 0)
        return -1;
    char *pw = read_secret(r);
    if (!pw)
        return -1;
    e = mailimap_login(imap, r->user ? r->user : r->rep, pw);
    secret_free(pw);
    if (!imap_ok(e)) {
        *auth_fail = 1;
        log_error("imap[%s]: login as %s on %s:%d failed (wrong user name or password?)",
                  rep_name(r), r->user ? r->user : r->rep, r->host, r->port);
        return -1;
    }
    struct mailimap_capability_data *cap = NULL;
    if (mailimap_capability(imap, &cap) == MAILIMAP_NO_ERROR && cap)
        mailimap_capability_data_free(cap);
    return 0;
}

/* ---------- folder state ---------- */

/* ---------- fetching ---------- */

static time_t imap_date(const struct mailimap_date_time *d)
{
    struct tm tm = { 0 };
    if (!d)
        return 0;
    tm.tm_year = d->dt_year - 1900;
    tm.tm_mon = d->dt_month - 1;
    tm.tm_mday = d->dt_day;
    tm.tm_hour = d->dt_hour;
    tm.tm_min = d->dt_min;
    tm.tm_sec = d->dt_sec;
    int z = d->dt_zone;
    int off = (z / 100) * 3600 + (z % 100) * 60;
    return timegm(&tm) - off;
}

static int batch_add(struct batch *b, struct item *it)
{
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 16;
        struct item *ni = realloc(b->items, nc * sizeof *ni);
        if (!ni)
            return -1;
        b->items = ni;
        b->cap = nc;
    }
    b->items[b->n++] = *it;
    return 0;
}

/* Turn one FETCH response into an item. */
static int item_from_att(struct mailimap_msg_att *att, struct item *it)
{
    memset(it, 0, sizeof *it);
    for (clistiter *c = clist_begin(att->att_list); c; c = clist_next(c)) {
        struct mailimap_msg_att_item *ai = clist_content(c);
        if (ai->att_type == MAILIMAP_MSG_ATT_ITEM_DYNAMIC) {
            if (!ai->att_data.att_dyn || !ai->att_data.att_dyn->att_list)
                continue;
            for (clistiter *f = clist_begin(ai->att_data.att_dyn->att_list); f; f = clist_next(f)) {
                struct mailimap_flag_fetch *ff = clist_content(f);
                if (ff->fl_type != MAILIMAP_FLAG_FETCH_OTHER || !ff->fl_flag ||
                    ff->fl_flag->fl_type != MAILIMAP_FLAG_KEYWORD)
                    continue;
                const char *kw = ff->fl_flag->fl_data.fl_keyword;
                if (!strcasecmp(kw, KW_TOO_EARLY))
                    it->kw_early = 1;
                else if (!strcasecmp(kw, KW_HELD))
                    it->kw_held = 1;
            }
            continue;
        }
        struct mailimap_msg_att_static *st = ai->att_data.att_static;
        if (!st)
            continue;
        if (st->att_type == MAILIMAP_MSG_ATT_UID) {
            it->uid = st->att_data.att_uid;
        } else if (st->att_type == MAILIMAP_MSG_ATT_INTERNALDATE) {
            it->internal = imap_date(st->att_data.att_internal_date);
        } else if (st->att_type == MAILIMAP_MSG_ATT_BODY_SECTION && st->att_data.att_body_section &&
                   st->att_data.att_body_section->sec_body_part && !it->hdr) {
            size_t n = st->att_data.att_body_section->sec_length;
            if (n > HEADER_MAX)
                n = HEADER_MAX;
            it->hdr = malloc(n + 1);
            if (!it->hdr)
                return -1;
            memcpy(it->hdr, st->att_data.att_body_section->sec_body_part, n);
            it->hdr[n] = '\0';
            it->len = n;
        }
    }
    return 0;
}

/* UIDs >= from in the selected folder (ascending, those > from-1 only). */
static int fetch_uids(mailimap *imap, uint32_t from, uint32_t **out, size_t *n)
{
    struct mailimap_set *set = mailimap_set_new_interval(from, 0);
    struct mailimap_fetch_type *ft = mailimap_fetch_type_new_fetch_att_list_empty();
    clist *res = NULL;
    *out = NULL;
    *n = 0;
    if (!set || !ft) {
        if (set) mailimap_set_free(set);
        if (ft) mailimap_fetch_type_free(ft);
        return -1;
    }
    mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_uid());
    int e = mailimap_uid_fetch(imap, set, ft, &res);
    mailimap_set_free(set);
    mailimap_fetch_type_free(ft);
    if (e != MAILIMAP_NO_ERROR)
        return -1;
    size_t cnt = clist_count(res), k = 0;
    uint32_t *u = calloc(cnt ? cnt : 1, sizeof *u);
    if (!u) {
        mailimap_fetch_list_free(res);
        return -1;
    }
    for (clistiter *c = clist_begin(res); c; c = clist_next(c)) {
        struct item it;
        if (item_from_att(clist_content(c), &it) == 0 && it.uid >= from)
            u[k++] = it.uid;
        free(it.hdr);
    }
    mailimap_fetch_list_free(res);
    /* ascending: responses come in sequence order, which is UID order */
    *out = u;
    *n = k;
    return 0;
}

/* Fetch UID, FLAGS, INTERNALDATE and the (bounded) header of uids[0..n). */
static int fetch_headers(mailimap *imap, const uint32_t *uids, size_t n, struct batch *b,
                         const char *leaf)
{
    for (size_t i = 0; i < n; i += FETCH_CHUNK) {
        size_t k = n - i < FETCH_CHUNK ? n - i : FETCH_CHUNK;
        struct mailimap_set *set = mailimap_set_new_empty();
        struct mailimap_fetch_type *ft = mailimap_fetch_type_new_fetch_att_list_empty();
        clist *res = NULL;
        if (!set || !ft)
            goto fail;
        for (size_t j = 0; j < k; j++)
            mailimap_set_add_single(set, uids[i + j]);
        mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_uid());
        mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_flags());
        mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_internaldate());
        /* The inbox: the start of the whole message (same bound), so an
         * invitation's calendar part is seen (issue 11.13). */
        mailimap_fetch_type_new_fetch_att_list_add(
            ft, mailimap_fetch_att_new_body_peek_section_partial(
                    b->kind == B_INBOX ? mailimap_section_new(NULL) : mailimap_section_new_header(), 0,
                    HEADER_MAX));
        int e = mailimap_uid_fetch(imap, set, ft, &res);
        mailimap_set_free(set);
        mailimap_fetch_type_free(ft);
        set = NULL;
        ft = NULL;
        if (e != MAILIMAP_NO_ERROR)
            return -1;
        for (clistiter *c = clist_begin(res); c; c = clist_next(c)) {
            struct item it;
            if (item_from_att(clist_content(c), &it) < 0 || !it.uid || !it.hdr) {
                free(it.hdr);
                continue;
            }
            it.leaf = leaf ? strdup(leaf) : NULL;
            if ((leaf && !it.leaf) || batch_add(b, &it) < 0) {
                free(it.hdr);
                free(it.leaf);
                mailimap_fetch_list_free(res);
                return -1;
            }
        }
        mailimap_fetch_list_free(res);
        continue;
fail:
        if (set) mailimap_set_free(set);
        if (ft) mailimap_fetch_type_free(ft);
        return -1;
    }
    return 0;
}

static int cmp_item(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static int post(struct rep *r, struct batch *b)
{
    struct imap_watch *m = r->m;
    b->m = m;
    b->idx = r->idx;
    b->gen = r->gen;
    pthread_mutex_lock(&m->mu);
    b->prev = NULL;
    b->next = m->inflight;
    if (m->inflight)
        m->inflight->prev = b;
    m->inflight = b;
    pthread_mutex_unlock(&m->mu);
    if (loop_post(m->loop, m->on_batch, b) < 0)
        return -1;   /* stays in flight: freed at stop */
    return 0;
}

/* A configured folder the server does not have: say so clearly, once per
 * connection, with the folders it has (names shown in UTF-8). */
static void warn_missing(struct rep *r, mailimap *imap, const char *wire, const char *key)
{
    char have[600] = "", nm[256], sh[256];
    size_t hl = 0, k = 0;
    clist *list = NULL;
    if (mailimap_list(imap, "", "*", &list) == MAILIMAP_NO_ERROR && list) {
        for (clistiter *c = clist_begin(list); c && k < 20; c = clist_next(c), k++) {
            struct mailimap_mailbox_list *mb = clist_content(c);
            if (mb->mb_name && hl < sizeof have)
                hl += (size_t)snprintf(have + hl, sizeof have - hl, "%s\"%s\"", hl ? ", " : "",
                                       shown(mb->mb_name, nm, sizeof nm));
        }
        mailimap_list_result_free(list);
    }
    log_warn("imap[%s]: folder \"%s\" (%s) does not exist on the server: nothing there is watched; "
             "the server has: %s%s", rep_name(r), shown(wire, sh, sizeof sh), key, have[0] ? have : "(none listed)",
             k >= 20 ? ", ..." : "");
}

/* APPEND one notice to folder (wire name); logged. */
static int append_notice(struct rep *r, mailimap *imap, const char *folder, const struct op *o)
{
    char sh[256];
    struct mailimap_flag_list *fl = mailimap_flag_list_new_empty();
    int e = mailimap_append(imap, folder, fl, NULL, o->data, o->len);
    if (fl)
        mailimap_flag_list_free(fl);
    if (e == MAILIMAP_NO_ERROR)
        log_info("imap[%s]: notice appended to %s", rep_name(r), shown(folder, sh, sizeof sh));
    else if (e == MAILIMAP_ERROR_APPEND)
        log_error("imap[%s]: the server refused to append a notice to %s", rep_name(r),
                  shown(folder, sh, sizeof sh));
    return e;
}

/* Does the server list this folder (wire name)? */
static int folder_exists(mailimap *imap, const char *wire)
{
    clist *list = NULL;
    int found = mailimap_list(imap, "", wire, &list) == MAILIMAP_NO_ERROR && list && clist_count(list) > 0;
    if (list)
        mailimap_list_result_free(list);
    return found;
}

/* New messages in one folder (Sent or inbox). Returns 0 or -1 (connection
 * trouble: reconnect). */
static int sync_folder(struct rep *r, mailimap *imap, const char *name, enum batch_kind kind)
{
    char sh[256];
    int e = mailimap_examine(imap, name);
    if (e != MAILIMAP_NO_ERROR) {
        if (e == MAILIMAP_ERROR_EXAMINE) {  /* NO: the folder is missing */
            struct fstate *mf = fstate_get(r, name);
            if (mf && !mf->missing) {
                mf->missing = 1;
                warn_missing(r, imap, name, kind == B_INBOX ? "inbox" : "sent_folders");
            }
            return 0;
        }
        return -1;
    }
    struct mailimap_selection_info *si = imap->imap_selection_info;
    uint32_t uidvalidity = si ? si->sel_uidvalidity : 0;
    uint32_t uidnext = si ? si->sel_uidnext : 0;
    struct fstate *fs = fstate_get(r, name);
    if (!fs)
        return 0;
    fs->missing = 0;
    uint32_t from;
    int reset = 0;
    if (!fs->known) {
        /* First sight: start at the current end; old mail is history. */
        uint32_t *u = NULL;
        size_t n = 0;
        uint32_t last = 0;
        if (uidnext > 0) {
            last = uidnext - 1;
        } else {
            if (fetch_uids(imap, 1, &u, &n) < 0)
                return -1;
            last = n ? u[n - 1] : 0;
            free(u);
        }
        struct batch *b = calloc(1, sizeof *b);
        if (!b || !(b->folder = strdup(name))) {
            free(b);
            return -1;
        }
        b->kind = kind;
        b->uidvalidity = uidvalidity;
        b->last = last;
        fs->known = 1;
        fs->uidvalidity = uidvalidity;
        fs->last = last;
        log_info("imap[%s]: %s: starting at UID %u (UIDVALIDITY %u)", rep_name(r), shown(name, sh, sizeof sh), last,
                 uidvalidity);
        return post(r, b) < 0 ? -1 : 0;
    }
    if (fs->uidvalidity != uidvalidity) {
        log_warn("imap[%s]: %s: UIDVALIDITY changed (%u -> %u): rescanning the folder", rep_name(r),
                 name, fs->uidvalidity, uidvalidity);
        reset = 1;
        from = 1;
    } else {
        if (uidnext > 0 && uidnext <= fs->last + 1)
            return 0;       /* nothing new */
        from = fs->last + 1;
    }
    uint32_t *uids = NULL;
    size_t n = 0;
    if (fetch_uids(imap, from, &uids, &n) < 0)
        return -1;
    if (n == 0 && !reset) {
        free(uids);
        return 0;
    }
    struct batch *b = calloc(1, sizeof *b);
    if (!b || !(b->folder = strdup(name))) {
        free(b);
        free(uids);
        return -1;
    }
    b->kind = kind;
    b->uidvalidity = uidvalidity;
    if (fetch_headers(imap, uids, n, b, NULL) < 0) {
        free(uids);
        free_batch(b);
        return -1;
    }
    if (b->n)   /* qsort(NULL, 0, ...) is undefined */
        qsort(b->items, b->n, sizeof *b->items, cmp_item);
    uint32_t last = reset ? 0 : fs->last;
    for (size_t i = 0; i < n; i++)
        if (uids[i] > last)
            last = uids[i];
    free(uids);
    b->last = last;
    fs->uidvalidity = uidvalidity;
    fs->last = last;
    return post(r, b) < 0 ? -1 : 0;
}

/* A cheap signature of a later-folder scan, to post only on change. */
static char *later_signature(const struct batch *b)
{
    size_t cap = 64 + b->n * 64, len = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    len += (size_t)snprintf(s, cap, "%zu;", b->n);
    for (size_t i = 0; i < b->n && len < cap; i++) {
        uint64_t h = 1469598103934665603ULL;
        for (size_t j = 0; j < b->items[i].len; j++)
            h = (h ^ (unsigned char)b->items[i].hdr[j]) * 1099511628211ULL;
        for (const char *p = b->items[i].leaf; p && *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        len += (size_t)snprintf(s + len, cap - len, "%u:%016llx;", b->items[i].uid,
                                (unsigned long long)h);
    }
    return s;
}

/* Every message under later_folder/<date>. Returns 0 or -1. */
static int sync_later(struct rep *r, mailimap *imap)
{
    clist *list = NULL;
    char pat[600];
    snprintf(pat, sizeof pat, "%s*", r->later);
    int e = mailimap_list(imap, "", pat, &list);
    if (e != MAILIMAP_NO_ERROR)
        return e == MAILIMAP_ERROR_LIST ? 0 : -1;
    char *names[MAX_LATER];
    size_t nn = 0;
    size_t bl = strlen(r->later);
    int root = 0;
    for (clistiter *c = clist_begin(list); c && nn < MAX_LATER; c = clist_next(c)) {
        struct mailimap_mailbox_list *mb = clist_content(c);
        const char *name = mb->mb_name;
        if (name && !strcmp(name, r->later))
            root = 1;
        if (!name || strncmp(name, r->later, bl) != 0 || !mb->mb_delimiter)
            continue;
        root = 1;
        const char *rest = name + bl;
        if (*rest == mb->mb_delimiter)   /* later_folder given without the delimiter */
            rest++;
        else if (bl == 0 || r->later[bl - 1] != mb->mb_delimiter)
            continue;
        if (!*rest || strchr(rest, mb->mb_delimiter))
            continue;
        if (!(names[nn] = strdup(name)))
            break;
        nn++;
    }
    mailimap_list_result_free(list);
    if (!root && !r->later_missing) {
        r->later_missing = 1;
        if (r->later_set) {
            warn_missing(r, imap, r->later, "later_folder");
        } else {
            char sh[256];
            log_info("imap[%s]: no folder \"%s\" (later_folder default): create it to file contacts for later",
                     rep_name(r), shown(r->later, sh, sizeof sh));
        }
    } else if (root) {
        r->later_missing = 0;
    }
    struct batch *b = calloc(1, sizeof *b);
    int rc = 0;
    if (!b || !(b->folder = strdup(r->later))) {
        free(b);
        b = NULL;
        rc = -1;
    }
    for (size_t i = 0; i < nn && rc == 0; i++) {
        if ((e = mailimap_examine(imap, names[i])) != MAILIMAP_NO_ERROR) {
            if (e != MAILIMAP_ERROR_EXAMINE)
                rc = -1;
            continue;
        }
        uint32_t *uids = NULL;
        size_t n = 0;
        if (imap->imap_selection_info && imap->imap_selection_info->sel_exists == 0)
            continue;
        if (fetch_uids(imap, 1, &uids, &n) < 0) {
            rc = -1;
            break;
        }
        if (n > MAX_LATER_MSGS)
            n = MAX_LATER_MSGS;
        const char *leaf = names[i] + bl;
        if (*leaf && !isalnum((unsigned char)*leaf) && *leaf != '"' && *leaf != '&')
            leaf++;
        char leaf8[512];   /* "M&AOQ-rz 2027" -> "März 2027" */
        if (fetch_headers(imap, uids, n, b, shown(leaf, leaf8, sizeof leaf8)) < 0)
            rc = -1;
        free(uids);
    }
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    if (rc < 0) {
        free_batch(b);
        return -1;
    }
    char *sig = later_signature(b);
    if (sig && r->later_sig && !strcmp(sig, r->later_sig)) {
        free(sig);
        free_batch(b);
        return 0;
    }
    free(r->later_sig);
    r->later_sig = sig;
    b->kind = B_LATER;
    return post(r, b) < 0 ? -1 : 0;
}

/* Run the queued operations. Returns 0 or -1 (connection trouble; the
 * failed operation is put back). */
static int run_ops(struct rep *r, mailimap *imap)
{
    char sh[256];
    for (;;) {
        pthread_mutex_lock(&r->mu);
        struct op *o = r->ops;
        if (o) {
            r->ops = o->next;
            if (!r->ops)
                r->tail = &r->ops;
            r->nops--;
        }
        pthread_mutex_unlock(&r->mu);
        if (!o)
            return 0;
        int e;
        if (o->kind == OP_APPEND) {
            e = append_notice(r, imap, o->folder, o);
            /* No notice folder: the inbox takes it, nothing is lost. */
            if (e == MAILIMAP_ERROR_APPEND && strcmp(o->folder, r->inbox) && !folder_exists(imap, o->folder)) {
                if (!r->notice_missing++)
                    warn_missing(r, imap, o->folder, "notice_folder: notices go to the inbox");
                e = append_notice(r, imap, r->inbox, o);
            }
        } else {
            e = mailimap_select(imap, o->folder);
            if (e == MAILIMAP_NO_ERROR) {
                const struct mailimap_selection_info *si = imap->imap_selection_info;
                if (si && si->sel_uidvalidity != o->uidvalidity) {
                    log_info("imap[%s]: %s changed UIDVALIDITY; keyword %s not set", rep_name(r),
                             shown(o->folder, sh, sizeof sh), o->data);
                } else {
                    struct mailimap_set *set = mailimap_set_new_single(o->uid);
                    struct mailimap_flag_list *fl = mailimap_flag_list_new_empty();
                    char *kw = strdup(o->data);
                    struct mailimap_flag *f = kw ? mailimap_flag_new_flag_keyword(kw) : NULL;
                    if (!f)
                        free(kw);
                    if (set && fl && f && mailimap_flag_list_add(fl, f) == 0) {
                        struct mailimap_store_att_flags *sa = mailimap_store_att_flags_new_add_flags_silent(fl);
                        e = mailimap_uid_store(imap, set, sa);
                        mailimap_store_att_flags_free(sa);   /* frees fl */
                        fl = NULL;
                        if (e == MAILIMAP_NO_ERROR)
                            log_info("imap[%s]: %s UID %u: keyword %s set", rep_name(r), shown(o->folder, sh, sizeof sh),
                                     o->uid, o->data);
                    } else {
                        if (f && fl)
                            mailimap_flag_free(f);
                        e = MAILIMAP_NO_ERROR;
                    }
                    if (fl)
                        mailimap_flag_list_free(fl);
                    if (set)
                        mailimap_set_free(set);
                }
            } else if (e == MAILIMAP_ERROR_SELECT) {
                e = MAILIMAP_NO_ERROR;   /* folder gone: nothing to mark */
            }
            if (e == MAILIMAP_ERROR_STORE)
                e = MAILIMAP_NO_ERROR;
        }
        if (e != MAILIMAP_NO_ERROR && e != MAILIMAP_ERROR_APPEND) {
            pthread_mutex_lock(&r->mu);
            o->next = r->ops;
            if (!r->ops)
                r->tail = &o->next;
            r->ops = o;
            r->nops++;
            pthread_mutex_unlock(&r->mu);
            return -1;
        }
        free_op(o);
    }
}

static int has_ops(struct rep *r)
{
    pthread_mutex_lock(&r->mu);
    int h = r->ops != NULL;
    pthread_mutex_unlock(&r->mu);
    return h;
}

/* One sync pass over every watched folder. */
static int sync_all(struct rep *r, mailimap *imap)
{
    if (run_ops(r, imap) < 0)
        return -1;
    for (size_t i = 0; i < r->nfs; i++)
        if (sync_folder(r, imap, r->fs[i].name, strcmp(r->fs[i].name, r->inbox) ? B_SENT : B_INBOX) < 0)
            return -1;
    if (r->later && *r->later && sync_later(r, imap) < 0)
        return -1;
    return run_ops(r, imap);
}

/* Wait poll_interval seconds, in IDLE on the inbox when the server has it.
 * Returns 0 or -1 (connection trouble). */
static int idle_wait(struct rep *r, mailimap *imap)
{
    int ms = r->poll * 1000;
    if (has_ops(r))
        return 0;
    if (!mailimap_has_idle(imap)) {
        wait_wake(r, ms, -1, NULL);
        return 0;
    }
    if (mailimap_select(imap, r->inbox) != MAILIMAP_NO_ERROR)
        return -1;
    if (mailimap_idle(imap) != MAILIMAP_NO_ERROR)
        return -1;
    int ready = 0;
    wait_wake(r, ms, mailimap_idle_get_fd(imap), &ready);
    /* libetpan can fail to parse untagged data that raced the
     * continuation: the caller reconnects and IDLEs again. */
    if (mailimap_idle_done(imap) != MAILIMAP_NO_ERROR)
        return -1;
    return 0;
}

void *imap_watch_rep_thread(void *arg)
{
    struct rep *r = arg;
    sysutil_below_loop();
    int backoff = 1;
    while (!stopping(r)) {
        mailimap *imap = mailimap_new(0, NULL);
        if (!imap) {
            wait_wake(r, 1000, -1, NULL);
            continue;
        }
        int auth_fail = 0;
        if (imap_open(r, imap, &auth_fail) == 0) {
            log_info("imap[%s]: connected to %s:%d as %s%s", rep_name(r), r->host, r->port,
                     r->user ? r->user : r->rep, r->plain ? " (no TLS)" : " (TLS verified)");
            int first = 1;
            while (!stopping(r)) {
                if (sync_all(r, imap) < 0)
                    break;
                if (first) {
                    log_info("imap[%s]: synced", rep_name(r));
                    first = 0;
                }
                backoff = 1;
                if (stopping(r) || idle_wait(r, imap) < 0)
                    break;
            }
            if (!stopping(r))
                log_warn("imap[%s]: connection to %s:%d lost; reconnecting in %d s", rep_name(r),
                         r->host, r->port, backoff);
        } else if (!stopping(r)) {
            log_warn("imap[%s]: retrying in %d s", rep_name(r), backoff);
        }
        set_netfd(r, NULL);
        mailimap_free(imap);
        if (stopping(r))
            break;
        wait_wake(r, backoff * 1000, -1, NULL);
        backoff = backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2;
        (void)auth_fail;
    }
    return NULL;
}
