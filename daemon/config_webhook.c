/* config_webhook.c - the [webhook NAME] sections of untild.conf (issue 14):
 * where outgoing events go. Part of the config module (config_int.h).
 *
 * Synopsis: config.c hands each "[webhook NAME]" header to
 * config_wh_section and each key under it to config_wh_key; after the
 * file, config_wh_check checks what needs the whole section.
 *
 * Why its own file: several sections of one kind with their own keys, and
 * config.c is near its size limit. The values land in struct webhook_cfg
 * (config.h) with their defaults; webhook.c copies what it needs at start.
 *
 * Diagnostics (FILE:LINE): a missing, malformed or repeated name, too many
 * sections, unknown or repeated keys, bad values, an unknown event name, a
 * missing url or secret_file, a secret file that cannot be read (or is
 * readable by others, or empty), a url that is not http(s), http:// to a
 * host that is not loopback. */
#include "untild/config_int.h"
#include "untild/event_kind.h"
#include "untild/sysutil.h"
#include "untild/when.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_MAX_LEN 32

enum wkey { K_URL, K_EVENTS, K_SECRET, K_TLS_CA, K_TIMEOUT, K_MAX_AGE, K_RETRY_MAX, K_MAX_QUEUE,
            K_COUNT };
static const char *const key_names[K_COUNT] = {
    "url", "events", "secret_file", "tls_ca", "timeout", "max_age", "retry_max", "max_queue",
};

struct config_wh {
    struct config *c;
    struct config_errors *e;
    const char *file, *dir;
    struct webhook_cfg *cur;          /* the section being read */
    struct webhook_cfg scratch;       /* a bad section's keys: checked, dropped */
    int *klines;                      /* line each key was set on, this section */
    int scratch_lines[K_COUNT];
    int lines[CONFIG_MAX_WEBHOOKS][K_COUNT];
    int sect_line[CONFIG_MAX_WEBHOOKS];
};

#define ERR(w, line, ...) config_errors_add((w)->e, (w)->file, (line), __VA_ARGS__)

struct config_wh *config_wh_new(struct config *c, struct config_errors *e, const char *file,
                                const char *dir)
{
    struct config_wh *w = calloc(1, sizeof *w);
    if (w) {
        w->c = c;
        w->e = e;
        w->file = file;
        w->dir = dir;
    }
    return w;
}

void config_webhook_free(struct webhook_cfg *h)
{
    free(h->name); free(h->url); free(h->secret_file); free(h->tls_ca);
    memset(h, 0, sizeof *h);
}

void config_wh_free(struct config_wh *w)
{
    if (!w)
        return;
    config_webhook_free(&w->scratch);
    free(w);
}

static void defaults(struct webhook_cfg *h)
{
    h->events = EVENT_ALL;
    h->timeout = 10;
    h->max_age = 3 * 86400;
    h->retry_max = 3600;
    h->max_queue = 100000;
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
            return 0;
    return 1;
}

static void use_scratch(struct config_wh *w)
{
    config_webhook_free(&w->scratch);
    defaults(&w->scratch);
    memset(w->scratch_lines, 0, sizeof w->scratch_lines);
    w->cur = &w->scratch;
    w->klines = w->scratch_lines;
}

void config_wh_section(struct config_wh *w, int line, const char *name)
{
    struct config *c = w->c;
    if (!*name) {
        ERR(w, line, "[webhook] needs a name: [webhook NAME]");
        use_scratch(w);
        return;
    }
    if (!name_ok(name)) {
        ERR(w, line, "[webhook %s]: a name is 1 to %d of A-Z a-z 0-9 _ . -", name, NAME_MAX_LEN);
        use_scratch(w);
        return;
    }
    for (size_t i = 0; i < c->nwebhook; i++)
        if (!strcasecmp(c->webhook[i].name, name)) {
            ERR(w, line, "duplicate section [webhook %s] (first on line %d)", name, w->sect_line[i]);
            use_scratch(w);
            return;
        }
    if (c->nwebhook >= CONFIG_MAX_WEBHOOKS) {
        ERR(w, line, "too many [webhook] sections (max %d)", CONFIG_MAX_WEBHOOKS);
        use_scratch(w);
        return;
    }
    size_t i = c->nwebhook++;
    struct webhook_cfg *h = &c->webhook[i];
    defaults(h);
    if (!(h->name = strdup(name)))
        ERR(w, line, "out of memory");
    w->sect_line[i] = line;
    w->cur = h;
    w->klines = w->lines[i];
}

static char *resolve(const struct config_wh *w, const char *v)
{
    char *out = NULL;
    if (v[0] == '/' || !w->dir)
        return strdup(v);
    return asprintf(&out, "%s/%s", w->dir, v) < 0 ? NULL : out;
}

/* The HMAC key: a regular file only its owner reads, with a first line. */
static void check_secret(struct config_wh *w, int line, const char *path)
{
    struct stat st;
    FILE *f;
    if (stat(path, &st) != 0) {
        ERR(w, line, "secret_file %s: %s", path, strerror(errno));
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        ERR(w, line, "secret_file %s is not a regular file", path);
        return;
    }
    if (st.st_mode & 077) {
        ERR(w, line, "secret_file %s is group/world readable (chmod 600)", path);
        return;
    }
    if (!(f = fopen(path, "r"))) {
        ERR(w, line, "secret_file %s: %s", path, strerror(errno));
        return;
    }
    int ch = fgetc(f);
    fclose(f);
    if (ch == EOF || ch == '\n' || ch == '\r')
        ERR(w, line, "secret_file %s: the first line is empty (it is the signing key)", path);
}

static int set_path(struct config_wh *w, int line, char **slot, const char *v)
{
    char *r = resolve(w, v);
    if (!r) {
        ERR(w, line, "out of memory");
        return -1;
    }
    free(*slot);
    *slot = r;
    return 0;
}

static void set_number(struct config_wh *w, int line, enum wkey k, const char *v)
{
    struct webhook_cfg *h = w->cur;
    int64_t secs;
    char *end;
    if (k == K_MAX_AGE || k == K_RETRY_MAX) {
        if (when_duration_parse(v, &secs) != 0 || secs < 1 || secs > 365 * 86400)
            ERR(w, line, "%s: expected a duration from 1s to 365d (90s, 30m, 12h, 3d, P1D), got '%s'",
                key_names[k], v);
        else
            *(k == K_MAX_AGE ? &h->max_age : &h->retry_max) = secs;
        return;
    }
    long lo = 1, hi = k == K_TIMEOUT ? 300 : 100000000;
    errno = 0;
    long n = isdigit((unsigned char)v[0]) ? strtol(v, &end, 10) : -1;
    if (n < lo || n > hi || errno || *end)
        ERR(w, line, "%s: expected an integer from %ld to %ld, got '%s'", key_names[k], lo, hi, v);
    else
        *(k == K_TIMEOUT ? &h->timeout : &h->max_queue) = (int)n;
}

void config_wh_key(struct config_wh *w, int line, const char *key, const char *v)
{
    struct webhook_cfg *h = w->cur;
    int k = 0;
    while (k < K_COUNT && strcasecmp(key, key_names[k]))
        k++;
    if (k == K_COUNT) {
        ERR(w, line, "unknown key '%s' in [webhook]", key);
        return;
    }
    if (w->klines[k]) {
        ERR(w, line, "duplicate key '%s' (first on line %d)", key, w->klines[k]);
        return;
    }
    w->klines[k] = line;
    if (!*v) {
        ERR(w, line, "%s: empty value", key);
        return;
    }
    char bad[64], names[256];
    switch ((enum wkey)k) {
    case K_URL:
        free(h->url);
        if (!(h->url = strdup(v)))
            ERR(w, line, "out of memory");
        break;
    case K_EVENTS:
        if (event_kind_list(v, &h->events, bad, sizeof bad) < 0) {
            event_kind_names(names, sizeof names);
            ERR(w, line, "events: unknown event \"%s\" (all, %s)", bad, names);
        }
        break;
    case K_SECRET:
        if (set_path(w, line, &h->secret_file, v) == 0)
            check_secret(w, line, h->secret_file);
        break;
    case K_TLS_CA:
        if (set_path(w, line, &h->tls_ca, v) == 0 && access(h->tls_ca, R_OK) != 0)
            ERR(w, line, "tls_ca %s: %s", h->tls_ca, strerror(errno));
        break;
    default:
        set_number(w, line, (enum wkey)k, v);
        break;
    }
}

/* https:// anywhere; http:// only to a loopback host (the events carry
 * contacts' addresses: DECISIONS.md "Webhooks"). */
static void check_url(struct config_wh *w, const struct webhook_cfg *h, int line)
{
    CURLU *cu = curl_url();
    char *scheme = NULL, *host = NULL;
    if (!cu) {
        ERR(w, line, "out of memory");
        return;
    }
    if (curl_url_set(cu, CURLUPART_URL, h->url, 0) != CURLUE_OK ||
        curl_url_get(cu, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(cu, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        ERR(w, line, "[webhook %s] url: cannot parse '%s' (expected https://host[:port]/path)",
            h->name, h->url);
    else if (strcasecmp(scheme, "https") && strcasecmp(scheme, "http"))
        ERR(w, line, "[webhook %s] url: unsupported scheme '%s' (http or https)", h->name, scheme);
    else if (!strcasecmp(scheme, "http")) {
        size_t n = strlen(host);   /* CURLU keeps an IPv6 host's brackets */
        if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
            memmove(host, host + 1, n - 2);
            host[n - 2] = '\0';
        }
        if (!sysutil_loopback_host(host))
            ERR(w, line, "[webhook %s] url: http:// is allowed only to a loopback host, not %s: "
                "events and their signature would cross the network in clear (use https)",
                h->name, host);
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(cu);
}

void config_wh_check(struct config_wh *w)
{
    struct config *c = w->c;
    for (size_t i = 0; i < c->nwebhook; i++) {
        const struct webhook_cfg *h = &c->webhook[i];
        if (!h->url)
            ERR(w, w->sect_line[i], "[webhook %s] needs url", h->name);
        else
            check_url(w, h, w->lines[i][K_URL]);
        if (!h->secret_file)
            ERR(w, w->sect_line[i], "[webhook %s] needs secret_file (the signing key)", h->name);
        if (!h->events)
            ERR(w, w->lines[i][K_EVENTS], "[webhook %s] events: none named", h->name);
    }
}
