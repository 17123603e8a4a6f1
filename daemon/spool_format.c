/* spool_format.c - the spool file header's text form: encoding and
 * decoding struct spool_meta (the files, fsync and recovery are spool.c).
 *
 * Thread: any; pure functions on memory.
 *
 * The header is "key: value" lines after SPOOL_MAGIC; control characters
 * and '%' in values are written as %HH, so any byte survives. Unknown keys
 * are skipped (newer minor versions may add some). */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "untild/log.h"
#include "untild/spool.h"
#include "untild/spool_int.h"

/* ---------- header encoding ---------- */

static int buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 1024;
        char *np;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        np = realloc(b->p, ncap);
        if (np == NULL)
            return -1;
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int buf_str(struct buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

/* Percent-encode control bytes, DEL and '%' (and spaces inside rcpt fields),
 * so that no value can end or split its line. 8-bit bytes pass unchanged. */
static int buf_esc(struct buf *b, const char *s, int space)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *run = p;
    for (; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '%' || (space && *p == ' ')) {
            char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
            if (buf_add(b, (const char *)run, (size_t)(p - run)) < 0 ||
                buf_add(b, e, 3) < 0)
                return -1;
            run = p + 1;
        }
    }
    return buf_add(b, (const char *)run, (size_t)(p - run));
}

static int hdr_str(struct buf *b, const char *key, const char *v)
{
    if (v == NULL)
        return 0;  /* absent key reads back as NULL */
    if (buf_str(b, key) < 0 || buf_add(b, ": ", 2) < 0 || buf_esc(b, v, 0) < 0)
        return -1;
    return buf_add(b, "\n", 1);
}

static int hdr_num(struct buf *b, const char *key, long long v)
{
    char num[32];
    snprintf(num, sizeof num, "%lld", v);
    if (buf_str(b, key) < 0 || buf_add(b, ": ", 2) < 0 || buf_str(b, num) < 0)
        return -1;
    return buf_add(b, "\n", 1);
}

/* rcpt fields: "-" is NULL, "%00" the empty string (a real NUL can never be
 * in a C string, so the marker is unambiguous), a literal "-" is "%2D". */
static int rcpt_field(struct buf *b, const char *v)
{
    if (v == NULL)
        return buf_add(b, "-", 1);
    if (v[0] == '\0')
        return buf_add(b, "%00", 3);
    if (strcmp(v, "-") == 0)
        return buf_add(b, "%2D", 3);
    return buf_esc(b, v, 1);
}

static const char *const rcpt_state_names[] = { "held", "done", "failed" };

int spool_encode_header(struct buf *b, const struct spool_meta *m)
{
    size_t i;
    if (buf_str(b, SPOOL_MAGIC) < 0 ||
        hdr_str(b, "id", m->id) < 0 ||
        hdr_str(b, "rep", m->rep) < 0 ||
        hdr_str(b, "from", m->mail_from) < 0 ||
        hdr_str(b, "mail-params", m->mail_params) < 0 ||
        hdr_num(b, "created", (long long)m->created) < 0 ||
        hdr_num(b, "hold-until", (long long)m->hold_until) < 0 ||
        hdr_num(b, "quiet-until", (long long)m->quiet_until) < 0 ||
        hdr_str(b, "subject", m->subject) < 0 ||
        hdr_str(b, "message-id", m->message_id) < 0 ||
        hdr_str(b, "ical-uid", m->ical_uid) < 0 ||
        hdr_num(b, "ical-dtstart", (long long)m->ical_dtstart) < 0 ||
        hdr_num(b, "ical-method", m->ical_method) < 0 ||
        hdr_str(b, "ical-recurrence-id", m->ical_recurrence_id) < 0 ||
        hdr_num(b, "ical-last", (long long)m->ical_last) < 0 ||
        hdr_num(b, "size", (long long)m->size) < 0 ||
        hdr_num(b, "attempts", m->attempts) < 0 ||
        hdr_num(b, "next-attempt", (long long)m->next_attempt) < 0 ||
        hdr_str(b, "last-error", m->last_error) < 0 ||
        hdr_num(b, "first-attempt", (long long)m->first_attempt) < 0 ||
        hdr_num(b, "released-at", (long long)m->released_at) < 0 ||
        hdr_str(b, "released-by", m->released_by) < 0 ||
        hdr_str(b, "released-reason", m->released_reason) < 0 ||
        hdr_num(b, "kind", m->kind) < 0 ||
        hdr_num(b, "returned", m->returned) < 0)
        return -1;
    for (i = 0; i < m->nrcpts; i++) {
        const struct spool_rcpt *r = &m->rcpts[i];
        unsigned st = (unsigned)r->state;
        if (st > RCPT_FAILED) {
            errno = EINVAL;
            return -1;
        }
        if (buf_str(b, "rcpt: ") < 0 || buf_str(b, rcpt_state_names[st]) < 0 ||
            buf_add(b, " ", 1) < 0 || rcpt_field(b, r->addr) < 0 ||
            buf_add(b, " ", 1) < 0 || rcpt_field(b, r->norm) < 0 ||
            buf_add(b, " ", 1) < 0 || rcpt_field(b, r->window_id) < 0 ||
            buf_add(b, " ", 1) < 0 || rcpt_field(b, r->params) < 0 ||
            buf_add(b, " ", 1) < 0 || rcpt_field(b, r->reason) < 0 ||
            buf_add(b, "\n", 1) < 0)
            return -1;
    }
    return buf_add(b, "\n", 1);
}

/* ---------- header decoding ---------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode a percent-encoded value into a new string; NULL with errno set
 * (EBADMSG for bad encodings or an encoded NUL). */
static char *unesc(const char *s, size_t n)
{
    char *out = malloc(n + 1), *o = out;
    size_t i;
    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= n) {  /* need two hex digits after '%' */
                free(out);
                errno = EBADMSG;
                return NULL;
            }
            hi = hexval((unsigned char)s[i + 1]);
            lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                errno = EBADMSG;
                return NULL;
            }
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

static int set_str(char **dst, const char *v, size_t n)
{
    char *d = unesc(v, n);
    if (d == NULL)
        return -1;
    free(*dst);
    *dst = d;
    return 0;
}

static int parse_ll(const char *v, long long *out)
{
    char *end;
    long long x;
    errno = 0;
    x = strtoll(v, &end, 10);
    if (errno || end == v || *end != '\0') {
        errno = EBADMSG;
        return -1;
    }
    *out = x;
    return 0;
}

static int rcpt_field_dec(char **dst, const char *tok, size_t n)
{
    if (n == 1 && tok[0] == '-') {
        *dst = NULL;
        return 0;
    }
    if (n == 3 && memcmp(tok, "%00", 3) == 0) {
        *dst = strdup("");
        return *dst ? 0 : -1;
    }
    *dst = unesc(tok, n);
    return *dst ? 0 : -1;
}

static int parse_rcpt(struct spool_meta *m, char *v)
{
    char *tok[6];
    size_t ntok = 0, i;
    char *p = v;
    struct spool_rcpt *nr, *r;
    while (ntok < 6) {
        char *sp = strchr(p, ' ');
        tok[ntok++] = p;
        if (sp == NULL)
            break;
        *sp = '\0';
        p = sp + 1;
    }
    if (ntok < 5 || (ntok == 6 && strchr(tok[5], ' ') != NULL)) {
        errno = EBADMSG;
        return -1;
    }
    nr = realloc(m->rcpts, (m->nrcpts + 1) * sizeof *nr);
    if (nr == NULL)
        return -1;
    m->rcpts = nr;
    r = &nr[m->nrcpts];
    memset(r, 0, sizeof *r);
    for (i = 0; i < 3; i++)
        if (strcmp(tok[0], rcpt_state_names[i]) == 0)
            break;
    if (i == 3) {
        errno = EBADMSG;
        return -1;
    }
    r->state = (enum rcpt_state)i;
    m->nrcpts++;  /* counted now so spool_meta_free releases partial fields */
    if (rcpt_field_dec(&r->addr, tok[1], strlen(tok[1])) < 0 ||
        rcpt_field_dec(&r->norm, tok[2], strlen(tok[2])) < 0 ||
        rcpt_field_dec(&r->window_id, tok[3], strlen(tok[3])) < 0 ||
        rcpt_field_dec(&r->params, tok[4], strlen(tok[4])) < 0 ||
        (ntok == 6 && rcpt_field_dec(&r->reason, tok[5], strlen(tok[5])) < 0))
        return -1;
    if (r->addr == NULL || r->norm == NULL) {
        errno = EBADMSG;
        return -1;
    }
    return 0;
}

/* Parse the header text (from the magic through the blank line, NUL
 * terminated, modified in place). */
int spool_parse_header(char *h, struct spool_meta *m)
{
    char *line, *next;
    int have_id = 0, have_size = 0;
    memset(m, 0, sizeof *m);
    if (strncmp(h, SPOOL_MAGIC, strlen(SPOOL_MAGIC)) != 0) {
        errno = EBADMSG;
        return -1;
    }
    for (line = h + strlen(SPOOL_MAGIC); *line && *line != '\n'; line = next) {
        char *nl = strchr(line, '\n'), *colon, *v;
        long long x;
        int rc = 0;
        if (nl == NULL) {
            errno = EBADMSG;
            goto fail;
        }
        *nl = '\0';
        next = nl + 1;
        colon = strchr(line, ':');
        if (colon == NULL) {
            errno = EBADMSG;
            goto fail;
        }
        *colon = '\0';
        v = colon + 1;
        if (*v == ' ')
            v++;
#define STR(k, f) else if (strcmp(line, k) == 0) rc = set_str(&m->f, v, strlen(v))
#define NUM(k, f, T) else if (strcmp(line, k) == 0) { \
            rc = parse_ll(v, &x); if (rc == 0) m->f = (T)x; }
        if (strcmp(line, "id") == 0) {
            if (!id_valid(v)) {
                errno = EBADMSG;
                goto fail;
            }
            snprintf(m->id, sizeof m->id, "%s", v);
            have_id = 1;
        }
        STR("rep", rep);
        STR("from", mail_from);
        STR("mail-params", mail_params);
        NUM("created", created, time_t)
        NUM("hold-until", hold_until, time_t)
        NUM("quiet-until", quiet_until, time_t)
        STR("subject", subject);
        STR("message-id", message_id);
        STR("ical-uid", ical_uid);
        NUM("ical-dtstart", ical_dtstart, time_t)
        NUM("ical-method", ical_method, int)
        STR("ical-recurrence-id", ical_recurrence_id);
        NUM("ical-last", ical_last, time_t)
        else if (strcmp(line, "size") == 0) {
            rc = parse_ll(v, &x);
            if (rc == 0 && x < 0) {
                errno = EBADMSG;
                rc = -1;
            }
            if (rc == 0) {
                m->size = (size_t)x;
                have_size = 1;
            }
        }
        NUM("attempts", attempts, int)
        NUM("next-attempt", next_attempt, time_t)
        STR("last-error", last_error);
        NUM("first-attempt", first_attempt, time_t)
        NUM("released-at", released_at, time_t)
        STR("released-by", released_by);
        STR("released-reason", released_reason);
        NUM("kind", kind, int)
        NUM("returned", returned, int)
        else if (strcmp(line, "rcpt") == 0)
            rc = parse_rcpt(m, v);
        /* unknown keys are skipped: newer minor versions may add some */
#undef STR
#undef NUM
        if (rc < 0)
            goto fail;
    }
    if (!have_id || !have_size) {
        errno = EBADMSG;
        goto fail;
    }
    return 0;
fail:
    {
        int e = errno;
        spool_meta_free(m);
        errno = e;
    }
    return -1;
}

/* Read the header of fd (through its blank line). *out is malloc'd and NUL
 * terminated; *hlen is its length in the file. Never reads the body. */
/* ---------- meta helpers ---------- */

void spool_meta_free(struct spool_meta *m)
{
    size_t i;
    if (m == NULL)
        return;
    for (i = 0; i < m->nrcpts; i++) {
        free(m->rcpts[i].addr);
        free(m->rcpts[i].norm);
        free(m->rcpts[i].params);
        free(m->rcpts[i].window_id);
        free(m->rcpts[i].reason);
    }
    free(m->rcpts);
    free(m->rep);
    free(m->mail_from);
    free(m->mail_params);
    free(m->subject);
    free(m->message_id);
    free(m->ical_uid);
    free(m->ical_recurrence_id);
    free(m->last_error);
    free(m->released_by);
    free(m->released_reason);
    memset(m, 0, sizeof *m);
}

static int dup_str(char **dst, const char *src)
{
    *dst = NULL;
    if (src == NULL)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

int spool_meta_copy(struct spool_meta *dst, const struct spool_meta *src)
{
    size_t i;
    *dst = *src;
    dst->rcpts = NULL;
    dst->nrcpts = 0;
    dst->rep = dst->mail_from = dst->mail_params = NULL;
    dst->subject = dst->message_id = dst->ical_uid = dst->last_error = NULL;
    dst->released_by = dst->released_reason = NULL;
    dst->ical_recurrence_id = NULL;
    if (dup_str(&dst->rep, src->rep) < 0 ||
        dup_str(&dst->mail_from, src->mail_from) < 0 ||
        dup_str(&dst->mail_params, src->mail_params) < 0 ||
        dup_str(&dst->subject, src->subject) < 0 ||
        dup_str(&dst->message_id, src->message_id) < 0 ||
        dup_str(&dst->ical_uid, src->ical_uid) < 0 ||
        dup_str(&dst->ical_recurrence_id, src->ical_recurrence_id) < 0 ||
        dup_str(&dst->last_error, src->last_error) < 0 ||
        dup_str(&dst->released_by, src->released_by) < 0 ||
        dup_str(&dst->released_reason, src->released_reason) < 0)
        goto fail;
    if (src->nrcpts > 0) {
        dst->rcpts = calloc(src->nrcpts, sizeof *dst->rcpts);
        if (dst->rcpts == NULL)
            goto fail;
        for (i = 0; i < src->nrcpts; i++) {
            struct spool_rcpt *d = &dst->rcpts[i];
            const struct spool_rcpt *r = &src->rcpts[i];
            dst->nrcpts++;
            d->state = r->state;
            if (dup_str(&d->addr, r->addr) < 0 || dup_str(&d->norm, r->norm) < 0 ||
                dup_str(&d->params, r->params) < 0 ||
                dup_str(&d->window_id, r->window_id) < 0 ||
                dup_str(&d->reason, r->reason) < 0)
                goto fail;
        }
    }
    return 0;
fail:
    spool_meta_free(dst);
    errno = ENOMEM;
    return -1;
}
