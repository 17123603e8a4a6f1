/* window_parse.c - one window-file line (docs/DESIGN.md "Window files";
 * untild.windows(5)) into a struct window: WHO list, UNTIL, key=value
 * options; the rule checked (rrule.c) before anything walks it; the stable
 * content id of a file window. Thread-safe given resolved zones (the
 * window loader thread parses files, see when.h).
 *
 * Diagnostics: errors are returned as text naming the token and why. */
#include "untild/windows.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "untild/address.h"
#include "untild/fnv.h"
#include "untild/log.h"
#include "untild/when.h"

/* ---------------------------------------------------------------- parsing */

enum wkey { K_REASON, K_FROM, K_RRULE, K_DURATION, K_TZ, K_ACTION, K_OWNER,
            K_COUNT };
static const char *const KEY_NAMES[K_COUNT] = {
    "reason", "from", "rrule", "duration", "tz", "action", "owner",
};

/* Longest option value we accept (a reason is one line of text). */
#define VALUE_MAX 1024

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
           c == '\v';
}

static const char *skip_space(const char *p)
{
    while (*p && is_space(*p))
        p++;
    return p;
}

/* Copy a whitespace-delimited token into buf. Returns the end, or NULL if
 * the token does not fit. */
static const char *take_token(const char *p, char *buf, size_t bufsz)
{
    size_t n = 0;
    while (*p && !is_space(*p)) {
        if (n + 1 >= bufsz)
            return NULL;
        buf[n++] = *p++;
    }
    buf[n] = '\0';
    return p;
}

static int fail(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errsz, const char *fmt, ...)
{
    if (err && errsz) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Content hash of a parsed window: the stable id of a file window. */
static void window_file_id(struct window *w)
{
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < w->nwho; i++)
        h = fnv_str(h, w->who[i]);
    h = fnv_i64(h, (int64_t)w->from);
    h = fnv_i64(h, (int64_t)w->until);
    h = fnv_str(h, w->rrule);
    h = fnv_i64(h, w->duration);
    h = fnv_str(h, w->tz);
    h = fnv_i64(h, (int64_t)w->action);
    h = fnv_str(h, w->reason);
    h = fnv_str(h, w->owner);
    static const char hex[] = "0123456789abcdef";
    static_assert(WINDOW_ID_MAX >= 14, "file window ids need 14 bytes");
    w->id[0] = 'f';
    for (int i = 12; i >= 1; i--, h >>= 4)
        w->id[i] = hex[h & 15];
    w->id[13] = '\0';
}

static int parse_who_list(const char *tok, const char *delims, struct window *w,
                          char *err, size_t errsz)
{
    size_t n = 1;
    for (const char *c = tok; *c; c++)
        n += (*c == ',');
    w->who = calloc(n, sizeof *w->who);
    if (!w->who)
        return fail(err, errsz, "out of memory");
    const char *p = tok;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char one[ADDR_MAX], norm[ADDR_MAX];
        const char *why = NULL;
        if (len == 0)
            return fail(err, errsz, "bad address list '%s': empty entry", tok);
        if (len >= sizeof one)
            return fail(err, errsz, "bad address '%.40s...': too long", p);
        memcpy(one, p, len);
        one[len] = '\0';
        if (address_who_normalize(one, delims, norm, sizeof norm, &why) != 0)
            return fail(err, errsz, "bad address '%s': %s", one,
                        why ? why : "invalid");
        /* The same person twice (jane+x@ and jane@) is one entry. */
        int dup = 0;
        for (size_t i = 0; i < w->nwho; i++)
            dup |= strcmp(w->who[i], norm) == 0;
        if (!dup) {
            if (!(w->who[w->nwho] = strdup(norm)))
                return fail(err, errsz, "out of memory");
            w->nwho++;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

/* Parse `key=value` or `key="quoted \"value\""` at p into vals[]. Returns
 * the end of the option, or NULL (err set). */
static const char *parse_option(const char *p, char vals[K_COUNT][VALUE_MAX],
                                int seen[K_COUNT], char *err, size_t errsz)
{
    const char *eq = p;
    while (*eq && *eq != '=' && !is_space(*eq))
        eq++;
    size_t klen = (size_t)(eq - p);
    if (*eq != '=') {
        fail(err, errsz, "expected key=value, got '%.*s'", (int)klen, p);
        return NULL;
    }
    int k = -1;
    for (int i = 0; i < K_COUNT; i++)
        if (strlen(KEY_NAMES[i]) == klen && strncasecmp(p, KEY_NAMES[i], klen) == 0)
            k = i;
    if (k < 0) {
        fail(err, errsz, "unknown key '%.*s'", (int)klen, p);
        return NULL;
    }
    if (seen[k]) {
        fail(err, errsz, "duplicate key '%s'", KEY_NAMES[k]);
        return NULL;
    }
    seen[k] = 1;
    const char *v = eq + 1;
    char *out = vals[k];
    size_t n = 0;
    if (*v == '"') {
        v++;
        for (;;) {
            char c = *v;
            if (c == '\0' || c == '\n' || c == '\r') {
                fail(err, errsz, "unterminated quote in value of '%s'",
                     KEY_NAMES[k]);
                return NULL;
            }
            v++;
            if (c == '"')
                break;
            if (c == '\\' && (*v == '"' || *v == '\\'))
                c = *v++;
            if (n + 1 >= VALUE_MAX) {
                fail(err, errsz, "value of '%s' too long", KEY_NAMES[k]);
                return NULL;
            }
            out[n++] = c;
        }
        if (*v && !is_space(*v)) {
            fail(err, errsz, "garbage after quoted value of '%s'", KEY_NAMES[k]);
            return NULL;
        }
    } else {
        while (*v && !is_space(*v)) {
            if (n + 1 >= VALUE_MAX) {
                fail(err, errsz, "value of '%s' too long", KEY_NAMES[k]);
                return NULL;
            }
            out[n++] = *v++;
        }
    }
    out[n] = '\0';
    return v;
}

static int parse_time(struct when_cache *wc, const char *what, const char *s,
                      const char *tz, time_t now, time_t *out, char *err,
                      size_t errsz)
{
    char why[160] = "";
    if (strcasecmp(s, "never") == 0) {
        *out = WHEN_NEVER;
        return 0;
    }
    if (when_parse_cached(wc, s, tz, now, out, why, sizeof why) != 0)
        return fail(err, errsz, "bad date '%s' for %s: %s", s, what,
                    why[0] ? why : "not a date");
    return 0;
}

static int dup_opt(char **dst, const char *s, char *err, size_t errsz)
{
    if (!(*dst = strdup(s)))
        return fail(err, errsz, "out of memory");
    return 0;
}

static int parse_fields(struct when_cache *wc, const struct window_limits *lim,
                        const char *line,
                        const char *default_tz,
                        const char *delims, time_t now, struct window *w,
                        char *err, size_t errsz)
{
    char who[4096], until[128];
    const char *p = skip_space(line);
    p = take_token(p, who, sizeof who);
    if (!p)
        return fail(err, errsz, "address list too long");
    if (parse_who_list(who, delims, w, err, errsz) != 0)
        return -1;
    p = skip_space(p);
    if (!*p || *p == '#')
        return fail(err, errsz, "missing until (a date or 'never') after '%s'",
                    who);
    p = take_token(p, until, sizeof until);
    if (!p)
        return fail(err, errsz, "bad date for until: too long");

    /* Options; they come before dates because tz= changes how dates read. */
    static_assert(K_COUNT * VALUE_MAX <= 16384, "option buffer size");
    char vals[K_COUNT][VALUE_MAX];
    int seen[K_COUNT] = {0};
    for (;;) {
        p = skip_space(p);
        if (!*p || *p == '#')   /* a trailing comment ends the line */
            break;
        p = parse_option(p, vals, seen, err, errsz);
        if (!p)
            return -1;
    }

    const char *tz = default_tz && *default_tz ? default_tz : NULL;
    if (seen[K_TZ]) {
        if (!vals[K_TZ][0] || !when_tz_valid(vals[K_TZ]))
            return fail(err, errsz, "bad tz '%s': unknown time zone",
                        vals[K_TZ]);
        tz = vals[K_TZ];
    }
    if (tz && dup_opt(&w->tz, tz, err, errsz) != 0)
        return -1;

    if (parse_time(wc, "until", until, tz, now, &w->until, err, errsz) != 0)
        return -1;
    w->from = 0;
    if (seen[K_FROM] &&
        parse_time(wc, "from", vals[K_FROM], tz, now, &w->from, err, errsz) != 0)
        return -1;
    if (seen[K_FROM] && w->from == WHEN_NEVER)
        return fail(err, errsz, "bad date 'never' for from");
    if (w->from > w->until)
        return fail(err, errsz, "from '%s' is after until '%s'", vals[K_FROM],
                    until);

    if (seen[K_RRULE] &&
        dup_opt(&w->rrule, vals[K_RRULE], err, errsz) != 0)
        return -1;
    w->duration = 86400;
    if (seen[K_DURATION]) {
        if (!seen[K_RRULE])
            return fail(err, errsz,
                        "duration '%s' without rrule: only recurring windows "
                        "have occurrences", vals[K_DURATION]);
        int64_t d = 0;
        if (when_duration_parse(vals[K_DURATION], &d) != 0 || d <= 0)
            return fail(err, errsz, "bad duration '%s'", vals[K_DURATION]);
        w->duration = d;
    }
    char rwhy[256];
    if (w->rrule && window_rrule_check(w->rrule, w->from, w->tz, w->duration,
                                       lim, rwhy, sizeof rwhy) != 0)
        return fail(err, errsz, "bad rrule '%s': %s", w->rrule, rwhy);
    w->action = ACTION_DEFAULT;
    if (seen[K_ACTION] && action_parse(vals[K_ACTION], &w->action) != 0)
        return fail(err, errsz,
                    "bad action '%s': expected hold, flag, reject or allow",
                    vals[K_ACTION]);
    if (seen[K_REASON] && vals[K_REASON][0] &&
        dup_opt(&w->reason, vals[K_REASON], err, errsz) != 0)
        return -1;
    if (seen[K_OWNER]) {
        char norm[ADDR_MAX];
        const char *why = NULL;
        if (address_normalize(vals[K_OWNER], delims, norm, sizeof norm, &why) != 0)
            return fail(err, errsz, "bad owner '%s': %s", vals[K_OWNER],
                        why ? why : "invalid address");
        if (dup_opt(&w->owner, norm, err, errsz) != 0)
            return -1;
    }
    return 0;
}

int window_parse_line(const char *line, const char *default_tz,
                      const char *delims, time_t now, struct window *w,
                      char *err, size_t errsz)
{
    return window_parse_line_cached(NULL, line, default_tz, delims, now, w,
                                    err, errsz);
}

int window_parse_line_cached(struct when_cache *wc, const char *line,
                             const char *default_tz, const char *delims,
                             time_t now, struct window *w, char *err,
                             size_t errsz)
{
    return window_parse_line_ex(wc, NULL, line, default_tz, delims, now, w,
                                err, errsz);
}

int window_parse_line_ex(struct when_cache *wc, const struct window_limits *lim,
                         const char *line, const char *default_tz,
                         const char *delims, time_t now, struct window *w,
                         char *err, size_t errsz)
{
    memset(w, 0, sizeof *w);
    if (err && errsz)
        err[0] = '\0';
    const char *p = skip_space(line ? line : "");
    if (!*p || *p == '#')
        return 1;
    if (parse_fields(wc, lim, p, default_tz, delims, now, w, err, errsz) != 0) {
        window_free_fields(w);
        memset(w, 0, sizeof *w);
        return -1;
    }
    w->source = WSRC_FILE;
    w->created = now;
    window_file_id(w);
    return 0;
}

void window_free_fields(struct window *w)
{
    if (!w)
        return;
    if (w->who) {
        for (size_t i = 0; i < w->nwho; i++)
            free(w->who[i]);
        free(w->who);
    }
    free(w->rrule);
    free(w->tz);
    free(w->reason);
    free(w->owner);
    w->who = NULL;
    w->nwho = 0;
    w->rrule = w->tz = w->reason = w->owner = NULL;
}

