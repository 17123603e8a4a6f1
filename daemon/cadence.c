/* cadence.c - contact-frequency rules, pure arithmetic (see cadence.h).
 *
 * Synopsis: parse spans and caps; given the contacts in a rule's scope and
 * now, say when the next contact is allowed and why not earlier.
 *
 * Why pure: the held message's due time is derived (lifecycle.h), and a
 * cadence hold is one more input of that derivation: the daemon reads the
 * history from the store and calls this with plain values, so the rule is
 * tested with plain calls (tests/unit/test_cadence.c). Zones: days are
 * calendar days (when_add_days), as a rep means "a week" on a calendar.
 *
 * Diagnostics: none (parse errors are returned with a message). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "untild/cadence.h"
#include "untild/address.h"
#include "untild/when.h"

#define SPAN_MAX_DAYS 3660
#define CAP_MAX 50     /* contacts.c reads the newest 64 contacts per decision */

int cadence_span_zero(const struct cadence_span *s)
{
    return s->secs == 0 && s->days == 0;
}

/* The short forms: N followed by one unit letter (or word). */
static int span_short(const char *s, struct cadence_span *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v <= 0 || !isdigit((unsigned char)s[0]))
        return -1;
    if (!strcasecmp(end, "d") || !strcasecmp(end, "day") || !strcasecmp(end, "days"))
        out->days = v;
    else if (!strcasecmp(end, "w") || !strcasecmp(end, "week") || !strcasecmp(end, "weeks"))
        out->days = v * 7;
    else if (!strcasecmp(end, "h"))
        out->secs = (int64_t)v * 3600;
    else if (!strcasecmp(end, "m"))
        out->secs = (int64_t)v * 60;
    else if (!strcasecmp(end, "s"))
        out->secs = v;
    else
        return -1;
    return 0;
}

int cadence_span_parse(const char *s, struct cadence_span *out)
{
    memset(out, 0, sizeof *out);
    if (!s || !*s)
        return -1;
    if (s[0] == 'P' || s[0] == 'p') {
        const char *t = strpbrk(s, "Tt");
        if (t) {            /* a time part only: exact seconds */
            int64_t secs;
            if (t != s + 1 || when_duration_parse(s, &secs) < 0 || secs <= 0)
                return -1;
            out->secs = secs;
            return 0;
        }
        char *end;
        long v = strtol(s + 1, &end, 10);
        if (end == s + 1 || v <= 0 || end[1] != '\0')
            return -1;
        if (*end == 'D' || *end == 'd')
            out->days = v;
        else if (*end == 'W' || *end == 'w')
            out->days = v * 7;
        else
            return -1;
    } else if (span_short(s, out) < 0) {
        return -1;
    }
    if (out->days > SPAN_MAX_DAYS || out->secs > (int64_t)SPAN_MAX_DAYS * 86400)
        return -1;
    return 0;
}

int cadence_max_parse(const char *s, int *max, struct cadence_span *per)
{
    char buf[64], *end;
    if (!s || strlen(s) >= sizeof buf)
        return -1;
    snprintf(buf, sizeof buf, "%s", s);
    long v = strtol(buf, &end, 10);
    if (end == buf || v <= 0 || v > CAP_MAX)
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    if (*end == '/')
        end++;
    else if (!strncasecmp(end, "per", 3) && isspace((unsigned char)end[3]))
        end += 3;
    else
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    if (cadence_span_parse(end, per) < 0)
        return -1;
    *max = (int)v;
    return 0;
}

time_t cadence_span_add(time_t t, const struct cadence_span *s, const char *tz)
{
    if (s->days)
        t = when_add_days(t, s->days, tz);
    return t == WHEN_NEVER ? t : t + (time_t)s->secs;
}

char *cadence_span_format(const struct cadence_span *s, char *buf, size_t sz)
{
    if (s->days && s->days % 7 == 0)
        snprintf(buf, sz, "%ld week%s", s->days / 7, s->days == 7 ? "" : "s");
    else if (s->days)
        snprintf(buf, sz, "%ld day%s", s->days, s->days == 1 ? "" : "s");
    else if (s->secs % 3600 == 0)
        snprintf(buf, sz, "%lld hour%s", (long long)s->secs / 3600, s->secs == 3600 ? "" : "s");
    else
        snprintf(buf, sz, "%lld minute%s", (long long)s->secs / 60, s->secs == 60 ? "" : "s");
    return buf;
}

int cadence_rule_active(const struct cadence_rule *r)
{
    return r && (!cadence_span_zero(&r->min_gap) || r->max > 0) && r->action != ACTION_ALLOW;
}

const char *cadence_key(const struct cadence_rule *r, const char *rcpt, char *buf, size_t sz)
{
    const char *at = rcpt ? strrchr(rcpt, '@') : NULL;
    if (!at || !at[1])
        return NULL;
    const char *k = r->scope == CADENCE_DOMAIN ? at : rcpt;
    if (strlen(k) >= sz)
        return NULL;
    memcpy(buf, k, strlen(k) + 1);
    return buf;
}

/* Does list entry e (len n) name rcpt? */
static int entry_names(const char *e, size_t n, const char *rcpt)
{
    if (e[0] != '@')
        return strlen(rcpt) == n && !strncasecmp(e, rcpt, n);
    const char *at = strrchr(rcpt, '@');
    if (!at || n < 2)
        return 0;
    size_t dl = strlen(at + 1), kl = n - 1;
    return dl >= kl && !strncasecmp(at + 1 + dl - kl, e + 1, kl) &&
           (dl == kl || at[dl - kl] == '.');
}

int cadence_listed(const char *list, const char *rcpt)
{
    if (!list || !rcpt)
        return 0;
    for (const char *s = list; *s;) {
        s += strspn(s, ", \t");
        size_t n = strcspn(s, ", \t");
        if (n && entry_names(s, n, rcpt))
            return 1;
        s += n;
    }
    return 0;
}

static int newer_first(const void *a, const void *b)
{
    time_t x = *(const time_t *)a, y = *(const time_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

void cadence_next_allowed(const struct cadence_rule *r, const char *tz,
                          const struct cadence_contact *h, size_t n, time_t now,
                          struct cadence_result *out)
{
    memset(out, 0, sizeof *out);
    out->next = now;
    if (!cadence_rule_active(r) || n == 0)
        return;
    /* gap: after the newest contact */
    size_t newest = 0;
    for (size_t i = 1; i < n; i++)
        if (h[i].t > h[newest].t)
            newest = i;
    if (!cadence_span_zero(&r->min_gap)) {
        time_t g = cadence_span_add(h[newest].t, &r->min_gap, tz);
        if (g > out->next) {
            out->next = g;
            out->limit = CADENCE_GAP;
            out->by = newest;
        }
    }
    if (r->max <= 0 || (size_t)r->max > n)
        return;
    /* cap: the max-th newest contact must have left the period */
    time_t *ts = malloc(n * sizeof *ts);
    if (!ts) {      /* cannot count: the gap alone decides (never holds forever) */
        return;
    }
    for (size_t i = 0; i < n; i++)
        ts[i] = h[i].t;
    qsort(ts, n, sizeof *ts, newer_first);
    time_t kth = ts[r->max - 1];
    for (size_t i = 0; i < n; i++)
        if (cadence_span_add(ts[i], &r->per, tz) > now)
            out->in_period++;
    free(ts);
    time_t c = cadence_span_add(kth, &r->per, tz);
    if (c > out->next) {
        out->next = c;
        out->limit = CADENCE_CAP;
        for (size_t i = 0; i < n; i++)
            if (h[i].t == kth)
                out->by = i;
    }
}

void cadence_why(const struct cadence_rule *r, const char *tz, const struct cadence_contact *h,
                 const struct cadence_result *res, char *buf, size_t sz)
{
    char when[64], span[32];
    if (res->limit == CADENCE_OK) {
        snprintf(buf, sz, "allowed");
        return;
    }
    const struct cadence_contact *c = &h[res->by];
    when_format(c->t, tz, when, sizeof when);
    if (res->limit == CADENCE_GAP)
        snprintf(buf, sz, "contacted by %s on %.10s (%s); at most one contact per %s",
                 c->rep ? c->rep : "someone", when, c->channel ? c->channel : "?",
                 cadence_span_format(&r->min_gap, span, sizeof span));
    else
        snprintf(buf, sz, "contacted %zu times, last by %s on %.10s; at most %d per %s",
                 res->in_period, c->rep ? c->rep : "someone", when, r->max,
                 cadence_span_format(&r->per, span, sizeof span));
}

int cadence_option(const char *key, const char *value, struct cadence_rule *r,
                   char *err, size_t errsz)
{
    if (!strcmp(key, "min_gap")) {
        if (!strcmp(value, "0") || !strcmp(value, "none"))
            memset(&r->min_gap, 0, sizeof r->min_gap);
        else if (cadence_span_parse(value, &r->min_gap) < 0)
            goto bad;
    } else if (!strcmp(key, "max")) {
        if (!strcmp(value, "0") || !strcmp(value, "none"))
            r->max = 0;
        else if (cadence_max_parse(value, &r->max, &r->per) < 0)
            goto bad;
    } else if (!strcmp(key, "scope")) {
        if (!strcasecmp(value, "address"))
            r->scope = CADENCE_ADDRESS;
        else if (!strcasecmp(value, "domain"))
            r->scope = CADENCE_DOMAIN;
        else
            goto bad;
    } else if (!strcmp(key, "action")) {
        enum action a;
        if (action_parse(value, &a) < 0 || a == ACTION_DEFAULT)
            goto bad;
        r->action = a;
    } else {
        snprintf(err, errsz, "unknown cadence option '%s' (min_gap, max, scope, action)", key);
        return -1;
    }
    return 0;
bad:
    snprintf(err, errsz, "%s: bad value '%s' (min_gap=7d, max=\"3 per 30d\", "
             "scope=address|domain, action=hold|flag|reject|allow)", key, value);
    return -1;
}

/* ---------- overrides (window-file lines) ---------- */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* The next whitespace-separated token into out; NULL if too long. */
static const char *token(const char *p, char *out, size_t sz)
{
    size_t n = 0;
    while (*p && *p != ' ' && *p != '\t') {
        if (n + 1 >= sz)
            return NULL;
        out[n++] = *p++;
    }
    out[n] = '\0';
    return p;
}

int cadence_is_line(const char *line)
{
    char what[16];
    const char *p = skip_ws(line);
    if (!*p || *p == '#')
        return 0;
    while (*p && *p != ' ' && *p != '\t')
        p++;
    p = skip_ws(p);
    return token(p, what, sizeof what) && !strcasecmp(what, "cadence");
}

/* key=value or key="quoted value". Returns the rest or NULL. */
static const char *option(const char *p, char *key, size_t ksz, char *val, size_t vsz,
                          char *err, size_t errsz)
{
    size_t n = 0;
    while (*p && *p != '=' && *p != ' ' && *p != '\t') {
        if (n + 1 >= ksz) {
            snprintf(err, errsz, "option name too long");
            return NULL;
        }
        key[n++] = *p++;
    }
    key[n] = '\0';
    if (*p != '=' || !n) {
        snprintf(err, errsz, "expected key=value, got '%s'", key);
        return NULL;
    }
    p++;
    n = 0;
    int quoted = *p == '"';
    if (quoted)
        p++;
    while (*p && (quoted ? *p != '"' : (*p != ' ' && *p != '\t'))) {
        if (n + 1 >= vsz) {
            snprintf(err, errsz, "%s: value too long", key);
            return NULL;
        }
        val[n++] = *p++;
    }
    val[n] = '\0';
    if (quoted) {
        if (*p != '"') {
            snprintf(err, errsz, "%s: unterminated quote", key);
            return NULL;
        }
        p++;
    }
    return p;
}

static int parse_opts(const char *p, struct cadence_override *tmpl, char *err, size_t errsz)
{
    struct cadence_rule probe = { .action = ACTION_HOLD };
    for (;;) {
        p = skip_ws(p);
        if (!*p || *p == '#')
            return 0;
        if (tmpl->nopt == CADENCE_OPTS_MAX) {
            snprintf(err, errsz, "too many cadence options (min_gap, max, scope, action)");
            return -1;
        }
        int k = tmpl->nopt;
        p = option(p, tmpl->key[k], sizeof tmpl->key[k], tmpl->val[k], sizeof tmpl->val[k], err, errsz);
        if (!p || cadence_option(tmpl->key[k], tmpl->val[k], &probe, err, errsz) < 0)
            return -1;
        tmpl->nopt++;
    }
}

static int add_override(struct cadence_overrides *o, const char *who, const struct cadence_override *t)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        struct cadence_override *v = realloc(o->v, cap * sizeof *v);
        if (!v)
            return -1;
        o->v = v;
        o->cap = cap;
    }
    struct cadence_override *e = &o->v[o->n];
    *e = *t;
    if (!(e->who = strdup(who)))
        return -1;
    o->n++;
    return 0;
}

int cadence_override_parse(const char *line, const char *delims, struct cadence_overrides *o,
                           char *err, size_t errsz)
{
    char who[2048], what[16];
    struct cadence_override t;
    memset(&t, 0, sizeof t);
    const char *p = token(skip_ws(line), who, sizeof who);
    if (!p) {
        snprintf(err, errsz, "address list too long");
        return -1;
    }
    p = token(skip_ws(p), what, sizeof what);
    if (!p || strcasecmp(what, "cadence")) {
        snprintf(err, errsz, "not a cadence line");
        return -1;
    }
    if (parse_opts(p, &t, err, errsz) < 0)
        return -1;
    if (!t.nopt) {
        snprintf(err, errsz, "a cadence line needs at least one of min_gap, max, scope, action");
        return -1;
    }
    size_t first = o->n;
    for (char *save = NULL, *w = strtok_r(who, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        char norm[ADDR_MAX + 1];
        const char *why = NULL;
        if (address_who_normalize(w, delims, norm, sizeof norm, &why) < 0)
            goto bad;
        if (add_override(o, norm, &t) < 0) {
            snprintf(err, errsz, "out of memory");
            goto undo;
        }
        continue;
bad:
        snprintf(err, errsz, "bad address '%s'%s%s", w, why ? ": " : "", why ? why : "");
        goto undo;
    }
    return 0;
undo:
    while (o->n > first)
        free(o->v[--o->n].who);
    return -1;
}

void cadence_overrides_clear(struct cadence_overrides *o)
{
    for (size_t i = 0; i < o->n; i++)
        free(o->v[i].who);
    free(o->v);
    memset(o, 0, sizeof *o);
}

int cadence_override_apply(const struct cadence_overrides *o, const char *rcpt,
                           struct cadence_rule *r)
{
    const struct cadence_override *best = NULL;
    size_t best_len = 0;
    if (!o || !rcpt)
        return 0;
    for (size_t i = 0; i < o->n; i++) {
        const char *k = o->v[i].who;
        size_t kl = strlen(k);
        if (k[0] != '@') {
            if (!strcasecmp(k, rcpt)) {
                best = &o->v[i];
                break;          /* an address is the most specific */
            }
        } else if (entry_names(k, kl, rcpt) && kl > best_len) {
            best = &o->v[i];
            best_len = kl;
        }
    }
    if (!best)
        return 0;
    char err[16];
    for (int k = 0; k < best->nopt; k++)
        (void)cadence_option(best->key[k], best->val[k], r, err, sizeof err);
    return 1;
}
