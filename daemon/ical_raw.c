/* ical_raw.c - iCalendar content lines as the client sent them.
 *
 * The CalDAV proxy must change one parameter on some ATTENDEE lines and
 * leave every other byte of the object as the client wrote it (libical's
 * serialiser refolds lines, drops quotes, quotes multi-valued parameters
 * and splits CATEGORIES). So it decides with libical and its own reading
 * of the ATTENDEE/ORGANIZER lines (this module), and patches the text:
 * a logical line is found with its folds and its line ending (CRLF or LF,
 * as sent), parsed into name, parameters (quoted values kept verbatim)
 * and value, and only a line that must change is written again, folded
 * at 75 octets with the ending it had.
 *
 * Pure functions on bounded input the caller owns; no allocation but the
 * caller's strbuf. */
#include <string.h>
#include <strings.h>
#include "untild/ical_raw.h"
#include "untild/strbuf.h"

#define FOLD_AT 75

static int is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

int icr_next(const char *s, size_t n, size_t *pos, struct icr_line *l)
{
    size_t i = *pos;
    if (i >= n)
        return 0;
    l->off = i;
    for (;;) {
        const char *nl = memchr(s + i, '\n', n - i);
        if (!nl) {
            i = n;
            break;
        }
        i = (size_t)(nl - s) + 1;
        if (i >= n || !is_wsp(s[i]))
            break;   /* a fold continues with a space or tab */
    }
    l->len = i - l->off;
    l->eol = 0;
    if (l->len && s[i - 1] == '\n')
        l->eol = l->len >= 2 && s[i - 2] == '\r' ? 2 : 1;
    *pos = i;
    return 1;
}

void icr_unfold(const char *s, const struct icr_line *l, struct strbuf *out)
{
    const char *p = s + l->off, *e = p + l->len - l->eol;
    out->len = 0;
    if (out->p)
        out->p[0] = '\0';
    while (p < e) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        if (!nl) {
            sb_add(out, p, (size_t)(e - p));
            break;
        }
        const char *ce = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
        sb_add(out, p, (size_t)(ce - p));
        p = nl + 1;
        if (p < e && is_wsp(*p))
            p++;   /* the fold's one white space character */
    }
    if (!out->p)
        sb_add(out, "", 0);
}

static int name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

int icr_name_is(const char *s, size_t n, const char *name)
{
    return strlen(name) == n && !strncasecmp(s, name, n);
}

int icr_parse(const char *u, size_t n, struct icr_prop *out)
{
    size_t i = 0;
    memset(out, 0, sizeof *out);
    while (i < n && name_char(u[i]))
        i++;
    if (!i)
        return -1;
    out->name = u;
    out->nlen = i;
    while (i < n && u[i] == ';') {
        size_t ns = ++i;
        while (i < n && name_char(u[i]))
            i++;
        if (i == ns || i >= n || u[i] != '=' || out->nparams >= ICR_MAX_PARAMS)
            return -1;
        struct icr_param *pp = &out->p[out->nparams++];
        pp->name = u + ns;
        pp->nlen = i - ns;
        size_t vs = ++i;
        for (;;) {   /* one or more comma separated values */
            if (i < n && u[i] == '"') {
                const char *q = memchr(u + i + 1, '"', n - i - 1);
                if (!q)
                    return -1;
                i = (size_t)(q - u) + 1;
            } else {
                while (i < n && u[i] != ',' && u[i] != ';' && u[i] != ':' && u[i] != '"')
                    i++;
            }
            if (i < n && u[i] == ',') {
                i++;
                continue;
            }
            break;
        }
        pp->val = u + vs;
        pp->vlen = i - vs;
    }
    if (i >= n || u[i] != ':')
        return -1;
    out->value = u + i + 1;
    out->vlen = n - i - 1;
    return 0;
}

int icr_param_first(const struct icr_prop *p, const char *name, char *buf, size_t bufsz)
{
    for (size_t k = 0; k < p->nparams; k++) {
        const struct icr_param *pp = &p->p[k];
        if (!icr_name_is(pp->name, pp->nlen, name))
            continue;
        const char *v = pp->val, *e = pp->val + pp->vlen;
        if (v < e && *v == '"') {
            v++;
            const char *q = memchr(v, '"', (size_t)(e - v));
            e = q ? q : e;
        } else {
            const char *c = memchr(v, ',', (size_t)(e - v));
            e = c ? c : e;
        }
        size_t l = (size_t)(e - v);
        if (l >= bufsz)
            return -1;
        memcpy(buf, v, l);
        buf[l] = '\0';
        return (int)l;
    }
    return -1;
}

static int dropped(const struct icr_param *pp, const char *const *drop)
{
    for (size_t i = 0; drop && drop[i]; i++)
        if (icr_name_is(pp->name, pp->nlen, drop[i]))
            return 1;
    return 0;
}

/* Fold one unfolded line at FOLD_AT octets, never inside a UTF-8
 * sequence. */
static void fold(const char *s, size_t n, const char *eol, struct strbuf *out)
{
    size_t i = 0, room = FOLD_AT;
    while (n - i > room) {
        size_t cut = i + room;
        while (cut > i + 1 && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--;
        sb_add(out, s + i, cut - i);
        sb_puts(out, eol);
        sb_puts(out, " ");
        i = cut;
        room = FOLD_AT - 1;
    }
    sb_add(out, s + i, n - i);
    sb_puts(out, eol);
}

void icr_rewrite(const struct icr_prop *p, const char *const *drop, const char *add,
                 const char *eol, struct strbuf *out)
{
    struct strbuf u = { 0 };
    sb_add(&u, p->name, p->nlen);
    if (add) {
        sb_puts(&u, ";");
        sb_puts(&u, add);
    }
    for (size_t k = 0; k < p->nparams; k++) {
        const struct icr_param *pp = &p->p[k];
        if (dropped(pp, drop))
            continue;
        sb_puts(&u, ";");
        sb_add(&u, pp->name, pp->nlen);
        sb_puts(&u, "=");
        sb_add(&u, pp->val, pp->vlen);
    }
    sb_puts(&u, ":");
    sb_add(&u, p->value, p->vlen);
    if (u.oom)
        out->oom = 1;
    else
        fold(u.p, u.len, eol, out);
    sb_free(&u);
}

/* The line's bytes with every line ending made CRLF. */
static void copy_crlf(const char *s, const struct icr_line *l, struct strbuf *out)
{
    const char *p = s + l->off, *e = p + l->len;
    while (p < e) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        if (!nl) {
            sb_add(out, p, (size_t)(e - p));
            sb_puts(out, "\r\n");
            return;
        }
        sb_add(out, p, (size_t)((nl > p && nl[-1] == '\r' ? nl - 1 : nl) - p));
        sb_puts(out, "\r\n");
        p = nl + 1;
    }
}

static int has_param(const struct icr_prop *p, const char *const *names)
{
    for (size_t k = 0; k < p->nparams; k++)
        if (dropped(&p->p[k], names))
            return 1;
    return 0;
}

void icr_imip_request(const char *s, size_t n, struct strbuf *out)
{
    static const char *const sched[] = { "SCHEDULE-AGENT", "SCHEDULE-STATUS", "SCHEDULE-FORCE-SEND", NULL };
    struct strbuf u = { 0 };
    struct icr_line l;
    size_t pos = 0;
    while (icr_next(s, n, &pos, &l)) {
        struct icr_prop p;
        icr_unfold(s, &l, &u);
        int ok = icr_parse(u.p, u.len, &p) == 0;
        if (ok && icr_name_is(p.name, p.nlen, "METHOD"))
            continue;
        if (ok && (icr_name_is(p.name, p.nlen, "ATTENDEE") || icr_name_is(p.name, p.nlen, "ORGANIZER"))
            && has_param(&p, sched)) {
            icr_rewrite(&p, sched, NULL, "\r\n", out);
            continue;
        }
        if (u.len)
            copy_crlf(s, &l, out);
        if (ok && icr_name_is(p.name, p.nlen, "BEGIN") && p.vlen == 9 && !strncasecmp(p.value, "VCALENDAR", 9))
            sb_puts(out, "METHOD:REQUEST\r\n");
    }
    if (u.oom)
        out->oom = 1;
    sb_free(&u);
}
