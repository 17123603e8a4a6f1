/* config.c - untild.conf (INI) and the window files it names.
 *
 * Synopsis: config_load() reads untild.conf into a struct config with every
 * default filled in; config_load_windows() reads the window files into an
 * index.
 *
 * Why one strict reader: the daemon, `untild -t` and the tests all need the
 * same answer, and an admin should fix a broken config in one pass, so every
 * mistake is collected (not just the first) as "FILE:LINE: message".
 *
 * The reader is table driven: each key names its section, its value type
 * and where it lands in struct config (or in struct imap_cfg / caldav_cfg
 * for the per-rep sections). Checks that involve several keys (no open
 * relay, tls = none only towards loopback, listen_tls needs a certificate)
 * run after the whole file is read, using the line each key came from.
 *
 * Diagnostics: unknown section or key, duplicate section or key, bad value,
 * missing '=', over-long line, and the cross-key checks above. */
#include "untild/config.h"
#include "untild/config_int.h"
#include "untild/notice_kind.h"
#include "untild/sysutil.h"
#include "untild/when.h"
#include "untild/windows.h"

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_LINE_MAX 8192            /* untild.conf lines */

#define HOST_MAX 256

/* ---- errors ---------------------------------------------------------- */

void config_errors_add(struct config_errors *e, const char *file, int line,
                       const char *fmt, ...)
{
    char *msg = NULL, *full = NULL;
    va_list ap;
    int r;

    if (e == NULL)
        return;
    va_start(ap, fmt);
    r = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (r < 0)
        return;                     /* ENOMEM: nothing sensible to do */
    if (line > 0)
        r = asprintf(&full, "%s:%d: %s", file ? file : "-", line, msg);
    else
        r = asprintf(&full, "%s: %s", file ? file : "-", msg);
    free(msg);
    if (r < 0)
        return;
    if (e->n == e->cap) {
        size_t ncap = e->cap ? e->cap * 2 : 8;
        char **nl = realloc(e->lines, ncap * sizeof *nl);
        if (nl == NULL) {
            free(full);
            return;
        }
        e->lines = nl;
        e->cap = ncap;
    }
    e->lines[e->n++] = full;
}

void config_errors_free(struct config_errors *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n; i++)
        free(e->lines[i]);
    free(e->lines);
    e->lines = NULL;
    e->n = e->cap = 0;
}

/* ---- the key table ----------------------------------------------------- */

enum sect { S_DAEMON, S_SMTP, S_UPSTREAM, S_POLICY, S_WINDOWS, S_NOTIFY,
            S_POLICY_SERVICE, S_STORE, S_IMAP, S_CALDAV, S_FOLLOWUP, S_CADENCE, S_DIGEST, S_HTTP, S_COUNT };

static const char *const sect_names[S_COUNT] = {
    "daemon", "smtp", "upstream", "policy", "windows", "notify",
    "policy_service", "store", "imap", "caldav", "followup", "cadence", "digest", "http",
};

enum vtype {
    V_STR,      /* any non-empty string */
    V_PATH,     /* path, relative to the config's directory */
    V_FILE,     /* path to a file that must be readable */
    V_SECRET,   /* password file: readable, mode 0600 or stricter */
    V_INT,      /* int in [min, max] */
    V_SIZE,     /* size_t in [min, max], optional k/m/g suffix */
    V_BOOL,     /* yes | no */
    V_ACTION,   /* action_parse, allowed set in max (bit mask) */
    V_CLOCK,    /* HH:MM | off */
    V_DURATION, /* when_duration_parse, > 0 */
    V_RETENTION,/* a V_DURATION, or 0 | forever (stored as 0) */
    V_TZ,       /* IANA zone */
    V_AUTH,     /* none | passwd:FILE | upstream */
    V_TLS,      /* required | none */
    V_LISTEN,   /* host:port[, ...] into an array; off2 = count */
    V_ADDR,     /* one host:port */
    V_PLISTEN,  /* unix:PATH | inet:host:port */
    V_REOPEN,   /* reply-only | end-window | no */
    V_SYNC,     /* auto | etag (int: 1 for etag) */
};

struct key {
    enum sect sect;
    const char *name;
    enum vtype type;
    size_t off, off2;
    long long min, max;
};

#define C(f) offsetof(struct config, f)
#define I(f) offsetof(struct imap_cfg, f)
#define D(f) offsetof(struct caldav_cfg, f)
#define AMASK(a) (1LL << (a))

/* Keys that share an offset in one section are aliases of each other (the
 * first one is the canonical name; duplicates are detected across them). */
static const struct key keys[] = {
    { S_DAEMON, "state_dir", V_PATH, C(state_dir), 0, 0, 0 },
    { S_DAEMON, "control_socket", V_PATH, C(control_socket), 0, 0, 0 },
    { S_DAEMON, "timezone", V_TZ, C(timezone), 0, 0, 0 },
    { S_DAEMON, "owner", V_STR, C(owner), 0, 0, 0 },
    { S_DAEMON, "admin_group", V_STR, C(admin_group), 0, 0, 0 },
    { S_DAEMON, "user", V_STR, C(user), 0, 0, 0 },
    { S_DAEMON, "audit_retention", V_RETENTION, C(audit_retention), 0, 0, 0 },
    { S_DAEMON, "control_output_max", V_SIZE, C(control_output_max), 0, 4096, 1LL << 32 },

    { S_SMTP, "listen", V_LISTEN, C(listen), C(nlisten), 0, 0 },
    { S_SMTP, "listen_tls", V_LISTEN, C(listen_tls), C(nlisten_tls), 0, 0 },
    { S_SMTP, "auth", V_AUTH, C(auth), 0, 0, 0 },
    { S_SMTP, "tls_cert", V_FILE, C(tls_cert), 0, 0, 0 },
    { S_SMTP, "tls_key", V_FILE, C(tls_key), 0, 0, 0 },
    { S_SMTP, "tls_self_signed", V_BOOL, C(tls_self_signed), 0, 0, 0 },
    { S_SMTP, "max_message_size", V_SIZE, C(max_message_size), 0, 1024,
      1LL << 40 },
    { S_SMTP, "max_sessions", V_INT, C(max_sessions), 0, 1, 1000000 },
    { S_SMTP, "hostname", V_STR, C(hostname), 0, 0, 0 },
    { S_SMTP, "timeout_command", V_INT, C(timeout_command), 0, 1, 86400 },
    { S_SMTP, "timeout_data", V_INT, C(timeout_data), 0, 1, 86400 },
    { S_SMTP, "session_deadline", V_INT, C(session_deadline), 0, 0, 7 * 86400 },
    { S_SMTP, "max_sessions_per_address", V_INT, C(max_sessions_per_address), 0, 0, 1000000 },
    { S_SMTP, "spill_threshold", V_SIZE, C(spill_threshold), 0, 0, 1LL << 40 },
    { S_SMTP, "auth_failure_delay", V_INT, C(auth_failure_delay), 0, 0, 60 },
    { S_SMTP, "auth_max_failures", V_INT, C(auth_max_failures), 0, 0, 1000000 },
    { S_SMTP, "auth_failure_window", V_INT, C(auth_failure_window), 0, 1, 7 * 86400 },

    { S_UPSTREAM, "url", V_STR, C(upstream_url), 0, 0, 0 },
    { S_UPSTREAM, "maildir", V_PATH, C(maildir), 0, 0, 0 },
    { S_UPSTREAM, "tls", V_TLS, C(upstream_tls), 0, 0, 0 },
    { S_UPSTREAM, "username", V_STR, C(upstream_username), 0, 0, 0 },
    { S_UPSTREAM, "password_file", V_SECRET, C(upstream_password_file), 0,
      0, 0 },
    { S_UPSTREAM, "password_command", V_STR, C(upstream_password_command),
      0, 0, 0 },
    { S_UPSTREAM, "tls_ca", V_FILE, C(upstream_tls_ca), 0, 0, 0 },
    { S_UPSTREAM, "connections", V_INT, C(upstream_connections), 0, 1, 1000 },
    { S_UPSTREAM, "upstream_connections", V_INT, C(upstream_connections), 0,
      1, 1000 },
    { S_UPSTREAM, "timeout", V_INT, C(upstream_timeout), 0, 1, 86400 },
    { S_UPSTREAM, "upstream_timeout", V_INT, C(upstream_timeout), 0, 1,
      86400 },

    { S_POLICY, "default_action", V_ACTION, C(default_action), 0, 0,
      AMASK(ACTION_ALLOW) | AMASK(ACTION_HOLD) | AMASK(ACTION_FLAG) |
      AMASK(ACTION_REJECT) },
    { S_POLICY, "split_recipients", V_BOOL, C(split_recipients), 0, 0, 0 },
    { S_POLICY, "release_time", V_CLOCK, C(release_time), 0, 0, 0 },
    { S_POLICY, "release_on_weekends", V_BOOL, C(release_on_weekends), 0, 0,
      0 },
    { S_POLICY, "command_domain", V_STR, C(command_domain), 0, 0, 0 },
    { S_POLICY, "subaddress_delimiter", V_STR, C(subaddress_delimiter), 0, 0,
      0 },
    { S_POLICY, "max_queue_lifetime", V_DURATION, C(max_queue_lifetime), 0,
      0, 0 },
    { S_POLICY, "max_calendar_part", V_SIZE, C(max_calendar_part), 0, 1024,
      1LL << 30 },

    { S_WINDOWS, "files", V_PATH, C(window_files), 0, 0, 0 },
    { S_WINDOWS, "rrule_max_iterations", V_INT, C(rrule_max_iterations), 0,
      10, 1000000 },
    { S_WINDOWS, "rrule_max_duration", V_DURATION, C(rrule_max_duration), 0,
      0, 0 },

    { S_NOTIFY, "from", V_STR, C(notify_from), 0, 0, 0 },
    { S_NOTIFY, "notify_from", V_STR, C(notify_from), 0, 0, 0 },
    { S_NOTIFY, "to", V_STR, C(notify_to), 0, 0, 0 },
    { S_NOTIFY, "notify_to", V_STR, C(notify_to), 0, 0, 0 },
    { S_NOTIFY, "events", V_STR, C(notify_events), 0, 0, 0 },

    { S_FOLLOWUP, "enabled", V_BOOL, C(followup_enabled), 0, 0, 0 },
    { S_FOLLOWUP, "team", V_STR, C(followup_team), 0, 0, 0 },
    { S_FOLLOWUP, "catch_up", V_DURATION, C(followup_catch_up), 0, 60, 30 * 86400 },
    { S_FOLLOWUP, "calendar", V_STR, C(followup_calendar), 0, 0, 0 },
    { S_FOLLOWUP, "item", V_STR, C(followup_item), 0, 0, 0 },

    { S_CADENCE, "min_gap", V_STR, C(cadence_min_gap), 0, 0, 0 },
    { S_CADENCE, "max", V_STR, C(cadence_max), 0, 0, 0 },
    { S_CADENCE, "scope", V_STR, C(cadence_scope), 0, 0, 0 },
    { S_CADENCE, "action", V_ACTION, C(cadence_action), 0, 0,
      AMASK(ACTION_HOLD) | AMASK(ACTION_FLAG) | AMASK(ACTION_REJECT) },
    { S_CADENCE, "exempt", V_STR, C(cadence_exempt), 0, 0, 0 },

    { S_DIGEST, "enabled", V_BOOL, C(digest_enabled), 0, 0, 0 },
    { S_DIGEST, "day", V_STR, C(digest_day_name), 0, 0, 0 },
    { S_DIGEST, "time", V_CLOCK, C(digest_time), 0, 0, 0 },
    { S_DIGEST, "managers", V_STR, C(digest_managers), 0, 0, 0 },
    { S_DIGEST, "max_rows", V_INT, C(digest_max_rows), 0, 1000, 100000000 },

    { S_HTTP, "listen", V_ADDR, C(http_listen), 0, 0, 0 },
    { S_HTTP, "tls_cert", V_FILE, C(http_tls_cert), 0, 0, 0 },
    { S_HTTP, "tls_key", V_FILE, C(http_tls_key), 0, 0, 0 },
    { S_HTTP, "max_body", V_SIZE, C(http_max_body), 0, 1024, 1LL << 30 },
    { S_HTTP, "max_connections", V_INT, C(http_max_connections), 0, 1, 10000 },
    { S_HTTP, "timeout", V_INT, C(http_timeout), 0, 1, 3600 },
    { S_HTTP, "console_dir", V_PATH, C(http_console_dir), 0, 0, 0 },
    { S_HTTP, "session_idle", V_DURATION, C(http_session_idle), 0, 60, 30 * 86400 },
    { S_HTTP, "session_lifetime", V_DURATION, C(http_session_lifetime), 0, 60, 365 * 86400 },
    { S_HTTP, "max_sessions", V_INT, C(http_max_sessions), 0, 1, 10000 },
    { S_HTTP, "max_sessions_per_rep", V_INT, C(http_max_sessions_per_rep), 0, 1, 1000 },
    { S_HTTP, "admins", V_STR, C(http_admins), 0, 0, 0 },

    { S_POLICY_SERVICE, "listen", V_PLISTEN, C(policy_listen), 0, 0, 0 },
    { S_POLICY_SERVICE, "postfix_config_dir", V_PATH, C(postfix_config_dir),
      0, 0, 0 },

    { S_STORE, "url", V_STR, C(store_url), 0, 0, 0 },
    { S_STORE, "password_file", V_SECRET, C(store_password_file), 0, 0, 0 },
    { S_STORE, "password_command", V_STR, C(store_password_command), 0, 0, 0 },
    { S_STORE, "node", V_STR, C(store_node), 0, 0, 0 },
    { S_STORE, "batch", V_INT, C(store_batch), 0, 1, 100000 },
    { S_STORE, "retry_interval", V_INT, C(store_retry_interval), 0, 1, 3600 },

    { S_IMAP, "url", V_STR, I(url), 0, 0, 0 },
    { S_IMAP, "username", V_STR, I(username), 0, 0, 0 },
    { S_IMAP, "password_file", V_SECRET, I(password_file), 0, 0, 0 },
    { S_IMAP, "password_command", V_STR, I(password_command), 0, 0, 0 },
    { S_IMAP, "tls", V_TLS, I(tls), 0, 0, 0 },
    { S_IMAP, "tls_ca", V_FILE, I(tls_ca), 0, 0, 0 },
    { S_IMAP, "sent_folders", V_STR, I(sent_folders), 0, 0, 0 },
    { S_IMAP, "inbox", V_STR, I(inbox), 0, 0, 0 },
    { S_IMAP, "notice_folder", V_STR, I(notice_folder), 0, 0, 0 },
    { S_IMAP, "later_folder", V_STR, I(later_folder), 0, 0, 0 },
    { S_IMAP, "poll_interval", V_INT, I(poll_interval), 0, 1, 86400 },
    { S_IMAP, "customer_reply_reopens", V_REOPEN, I(customer_reply_reopens),
      0, 0, 0 },

    { S_CALDAV, "url", V_STR, D(url), 0, 0, 0 },
    { S_CALDAV, "username", V_STR, D(username), 0, 0, 0 },
    { S_CALDAV, "password_file", V_SECRET, D(password_file), 0, 0, 0 },
    { S_CALDAV, "password_command", V_STR, D(password_command), 0, 0, 0 },
    { S_CALDAV, "tls", V_TLS, D(tls), 0, 0, 0 },
    { S_CALDAV, "tls_ca", V_FILE, D(tls_ca), 0, 0, 0 },
    { S_CALDAV, "calendars", V_STR, D(calendars), 0, 0, 0 },
    { S_CALDAV, "action", V_ACTION, D(action), 0, 0,
      AMASK(ACTION_HOLD) | AMASK(ACTION_FLAG) },
    { S_CALDAV, "windows_calendar", V_STR, D(windows_calendar), 0, 0, 0 },
    { S_CALDAV, "poll_interval", V_INT, D(poll_interval), 0, 1, 86400 },
    { S_CALDAV, "proxy_listen", V_ADDR, D(proxy_listen), 0, 0, 0 },
    { S_CALDAV, "proxy_max_body", V_SIZE, D(proxy_max_body), 0, 1024, 1LL << 30 },
    { S_CALDAV, "sync", V_SYNC, D(sync_etag), 0, 0, 0 },
};

#define NKEYS (sizeof keys / sizeof keys[0])

/* The first table entry with the same section and offset: the identity
 * used for duplicate detection, so aliases count as the same key. */
static size_t key_canon(size_t k)
{
    for (size_t i = 0; i < k; i++)
        if (keys[i].sect == keys[k].sect && keys[i].off == keys[k].off)
            return i;
    return k;
}

static long key_index(enum sect s, size_t off)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].sect == s && keys[i].off == off)
            return (long)i;
    return -1;
}

/* ---- parser state -------------------------------------------------------- */

#define SECT_NONE (-1)   /* before the first section header */
#define SECT_SKIP (-2)   /* inside an unknown or duplicate section */
#define SECT_WEBHOOK (-3) /* [webhook NAME]: config_webhook.c */

struct parser {
    struct config *c;
    struct config_errors *e;
    const char *file;          /* as the caller named it (for messages) */
    char *dir;                 /* absolute directory of the config file */
    int sect;                  /* enum sect, SECT_NONE or SECT_SKIP */
    void *base;                /* struct config / imap_cfg / caldav_cfg */
    int *klines;               /* line each key was set on, this section */
    int sect_line[S_COUNT];    /* global sections: line first seen */
    int glines[NKEYS];
    int imap_line[CONFIG_MAX_REPS], caldav_line[CONFIG_MAX_REPS];
    int ilines[CONFIG_MAX_REPS][NKEYS];
    int clines[CONFIG_MAX_REPS][NKEYS];
    /* A duplicate, misnamed or surplus section's keys are still checked,
     * into a scratch copy that is thrown away, so that a mistake on a
     * header hides none on the lines below it (untild -t: every error in
     * one run). The load fails anyway, since the header was an error. */
    struct config *scratch;
    struct imap_cfg scratch_imap;
    struct caldav_cfg scratch_caldav;
    int scratch_lines[NKEYS];
    struct config_wh *wh;      /* the [webhook NAME] sections */
};

#define ERR(p, line, ...) config_errors_add((p)->e, (p)->file, (line), __VA_ARGS__)

static char *resolve(const struct parser *p, const char *v)
{
    char *out = NULL;
    if (v[0] == '/' || p->dir == NULL)
        return strdup(v);
    if (asprintf(&out, "%s/%s", p->dir, v) < 0)
        return NULL;
    return out;
}

static int set_str(char **slot, char *v)
{
    if (v == NULL)
        return -1;
    free(*slot);
    *slot = v;
    return 0;
}

/* "host:port" or "[v6]:port" -> host (without brackets) and port. */
static int split_hostport(const char *s, char *host, size_t hsz, int *port)
{
    const char *h, *he, *ps;
    if (s[0] == '[') {
        h = s + 1;
        he = strchr(h, ']');
        if (he == NULL || he[1] != ':')
            return -1;
        ps = he + 2;
    } else {
        h = s;
        he = strrchr(s, ':');
        if (he == NULL)
            return -1;
        ps = he + 1;
        if (memchr(h, ':', (size_t)(he - h)) != NULL)
            return -1;  /* bare IPv6 needs brackets */
    }
    size_t hl = (size_t)(he - h);
    if (hl == 0 || hl >= hsz)
        return -1;
    for (size_t i = 0; i < hl; i++)
        if (isspace((unsigned char)h[i]) || h[i] == '[' || h[i] == ']' ||
            h[i] == '/')
            return -1;
    if (*ps == '\0' || strlen(ps) > 5)
        return -1;
    long v = 0;
    for (const char *q = ps; *q; q++) {
        if (!isdigit((unsigned char)*q))
            return -1;
        v = v * 10 + (*q - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)v;
    return 0;
}

/* scheme://[user@]host[:port][/...] -> scheme and host. */
static int url_parts(const char *url, char *scheme, size_t ssz, char *host,
                     size_t hsz)
{
    const char *sep = strstr(url, "://");
    if (sep == NULL || sep == url || (size_t)(sep - url) >= ssz)
        return -1;
    memcpy(scheme, url, (size_t)(sep - url));
    scheme[sep - url] = '\0';
    for (char *q = scheme; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    const char *a = sep + 3;
    size_t alen = strcspn(a, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (a[i] == '@')
            at = a + i;
    if (at != NULL) {
        alen -= (size_t)(at + 1 - a);
        a = at + 1;
    }
    const char *h = a, *he;
    if (alen > 0 && a[0] == '[') {
        h = a + 1;
        he = memchr(h, ']', alen - 1);
        if (he == NULL)
            return -1;
    } else {
        he = memchr(a, ':', alen);
        if (he == NULL)
            he = a + alen;
    }
    size_t hl = (size_t)(he - h);
    if (hl == 0 || hl >= hsz)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    return 0;
}

static int parse_ll(const char *v, long long *out)
{
    char *end;
    if (!isdigit((unsigned char)v[0]))
        return -1;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = x;
    return 0;
}

static int parse_size(const char *v, long long *out)
{
    char *end;
    if (!isdigit((unsigned char)v[0]))
        return -1;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno != 0)
        return -1;
    unsigned long long mul = 1;
    switch (tolower((unsigned char)*end)) {
    case '\0': break;
    case 'k': mul = 1ULL << 10; end++; break;
    case 'm': mul = 1ULL << 20; end++; break;
    case 'g': mul = 1ULL << 30; end++; break;
    default: return -1;
    }
    if (*end != '\0' || x > (unsigned long long)LLONG_MAX / mul)
        return -1;
    *out = (long long)(x * mul);
    return 0;
}

static int parse_bool(const char *v, int *out)
{
    if (strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0 ||
        strcasecmp(v, "on") == 0) {
        *out = 1;
        return 0;
    }
    if (strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0 ||
        strcasecmp(v, "off") == 0) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* A password file holds a secret: it must exist and be 0600 or stricter. */
static void check_secret(struct parser *p, int line, const char *name,
                         const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        ERR(p, line, "%s %s: %s", name, path, strerror(errno));
        return;
    }
    if (!S_ISREG(st.st_mode))
        ERR(p, line, "%s %s is not a regular file", name, path);
    else if ((st.st_mode & 077) != 0)
        ERR(p, line, "%s %s is group/world readable (chmod 600)", name, path);
    else if (access(path, R_OK) != 0)
        ERR(p, line, "%s %s: %s", name, path, strerror(errno));
}

static void check_readable(struct parser *p, int line, const char *name,
                           const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
        ERR(p, line, "%s %s: %s", name, path, strerror(errno));
        return;
    }
    if (!S_ISREG(st.st_mode))
        ERR(p, line, "%s %s is not a regular file", name, path);
}

static void set_listen(struct parser *p, int line, const struct key *k,
                       const char *v)
{
    char **arr = (char **)((char *)p->base + k->off);
    size_t *n = (size_t *)((char *)p->base + k->off2);
    const char *s = v;

    while (*s != '\0') {
        while (isspace((unsigned char)*s))
            s++;
        size_t len = strcspn(s, ",");
        size_t tl = len;
        while (tl > 0 && isspace((unsigned char)s[tl - 1]))
            tl--;
        char item[HOST_MAX + 16], host[HOST_MAX];
        int port;
        if (tl == 0) {
            ERR(p, line, "%s: empty address in list", k->name);
        } else if (tl >= sizeof item) {
            ERR(p, line, "%s: address too long", k->name);
        } else {
            memcpy(item, s, tl);
            item[tl] = '\0';
            if (split_hostport(item, host, sizeof host, &port) != 0) {
                ERR(p, line, "%s: bad address '%s' (expected host:port or "
                    "[v6]:port)", k->name, item);
            } else if (*n >= CONFIG_MAX_LISTEN) {
                ERR(p, line, "%s: too many addresses (max %d)", k->name,
                    CONFIG_MAX_LISTEN);
                return;
            } else {
                char *d = strdup(item);
                if (d == NULL) {
                    ERR(p, line, "out of memory");
                    return;
                }
                arr[(*n)++] = d;
            }
        }
        s += len;
        if (*s == ',')
            s++;
    }
}

/* V_ACTION: one of the actions the key's mask (k->max) allows. */
static void set_action(struct parser *p, int line, const struct key *k, void *slot,
                       const char *v)
{
    enum action a;
    if (action_parse(v, &a) != 0 || a == ACTION_DEFAULT ||
        (AMASK(a) & k->max) == 0) {
        char allowed[64] = "";
        for (int i = ACTION_ALLOW; i <= ACTION_REJECT; i++)
            if (AMASK(i) & k->max) {
                if (allowed[0])
                    strcat(allowed, " | ");
                strcat(allowed, i == ACTION_ALLOW ? "allow" :
                       i == ACTION_HOLD ? "hold" :
                       i == ACTION_FLAG ? "flag" : "reject");
            }
        ERR(p, line, "%s: expected %s, got '%s'", k->name, allowed, v);
    } else {
        *(enum action *)slot = a;
    }
}

/* V_AUTH: none, upstream or passwd:FILE (sets auth and passwd_file). */
static void set_auth(struct parser *p, int line, const char *v)
{
    struct config *c = p->base;   /* the real one, or a scratch copy */
    if (strcmp(v, "none") == 0) {
        c->auth = AUTH_NONE;
    } else if (strcmp(v, "upstream") == 0) {
        c->auth = AUTH_UPSTREAM;
    } else if (strncmp(v, "passwd:", 7) == 0 && v[7] != '\0') {
        char *r = resolve(p, v + 7);
        if (r == NULL) {
            ERR(p, line, "out of memory");
            return;
        }
        check_readable(p, line, "auth passwd file", r);
        c->auth = AUTH_PASSWD;
        set_str(&c->passwd_file, r);
    } else {
        ERR(p, line, "auth: expected none, passwd:FILE or upstream, got "
            "'%s'", v);
    }
}

/* V_PLISTEN: unix:PATH (resolved like any path) or inet:host:port. */
static void set_plisten(struct parser *p, int line, const struct key *k, void *slot,
                        const char *v)
{
    char host[HOST_MAX];
    int port;
    if (strncmp(v, "unix:", 5) == 0 && v[5] != '\0') {
        char *r = resolve(p, v + 5), *full = NULL;
        if (r == NULL || asprintf(&full, "unix:%s", r) < 0) {
            free(r);
            ERR(p, line, "out of memory");
            return;
        }
        free(r);
        set_str(slot, full);
    } else if (strncmp(v, "inet:", 5) == 0 &&
               split_hostport(v + 5, host, sizeof host, &port) == 0) {
        if (set_str(slot, strdup(v)) != 0)
            ERR(p, line, "out of memory");
    } else {
        ERR(p, line, "%s: expected unix:PATH or inet:host:port, got '%s'",
            k->name, v);
    }
}

/* V_DURATION: a positive duration; V_RETENTION: the same, or 0/forever. */
static void set_duration(struct parser *p, int line, const struct key *k, void *slot,
                         const char *v)
{
    int64_t secs;
    if (k->type == V_RETENTION && (strcmp(v, "0") == 0 || strcmp(v, "forever") == 0))
        *(int64_t *)slot = 0;
    else if (when_duration_parse(v, &secs) != 0 || secs <= 0)
        ERR(p, line, k->type == V_RETENTION
            ? "%s: expected a duration like 365d or 52w, or forever, got '%s'"
            : "%s: expected a duration like 5d, 12h or P5D, got '%s'", k->name, v);
    else if (k->max && (secs < k->min || secs > k->max))
        ERR(p, line, "%s: must be between %llds and %llds, got '%s'", k->name, k->min, k->max, v);
    else
        *(int64_t *)slot = secs;
}

/* Store one value; errors are reported on line. */
static void set_value(struct parser *p, int line, const struct key *k,
                      const char *v)
{
    void *slot = (char *)p->base + k->off;
    long long ll;
    char host[HOST_MAX];
    int port, iv;

    switch (k->type) {
    case V_STR:
        if (set_str(slot, strdup(v)) != 0)
            ERR(p, line, "out of memory");
        break;
    case V_PATH:
    case V_FILE:
    case V_SECRET: {
        char *r = resolve(p, v);
        if (r == NULL) {
            ERR(p, line, "out of memory");
            break;
        }
        if (k->type == V_FILE)
            check_readable(p, line, k->name, r);
        else if (k->type == V_SECRET)
            check_secret(p, line, k->name, r);
        set_str(slot, r);
        break;
    }
    case V_INT:
        if (parse_ll(v, &ll) != 0 || ll < k->min || ll > k->max)
            ERR(p, line, "%s: expected an integer from %lld to %lld, got '%s'",
                k->name, k->min, k->max, v);
        else
            *(int *)slot = (int)ll;
        break;
    case V_SIZE:
        if (parse_size(v, &ll) != 0 || ll < k->min || ll > k->max)
            ERR(p, line, "%s: expected a size from %lld to %lld bytes "
                "(suffix k, m or g allowed), got '%s'", k->name, k->min,
                k->max, v);
        else
            *(size_t *)slot = (size_t)ll;
        break;
    case V_BOOL:
        if (parse_bool(v, &iv) != 0)
            ERR(p, line, "%s: expected yes or no, got '%s'", k->name, v);
        else
            *(int *)slot = iv;
        break;
    case V_ACTION:
        set_action(p, line, k, slot, v);
        break;
    case V_CLOCK:
        if (when_clock_parse(v, &iv) != 0)
            ERR(p, line, "%s: expected HH:MM or off, got '%s'", k->name, v);
        else
            *(int *)slot = iv;
        break;
    case V_DURATION:
    case V_RETENTION:
        set_duration(p, line, k, slot, v);
        break;
    case V_TZ:
        if (!when_tz_valid(v))
            ERR(p, line, "%s: unknown time zone '%s'", k->name, v);
        else if (set_str(slot, strdup(v)) != 0)
            ERR(p, line, "out of memory");
        break;
    case V_AUTH:
        set_auth(p, line, v);
        break;
    case V_TLS:
        if (strcmp(v, "required") == 0)
            *(enum tls_mode *)slot = TLS_REQUIRED;
        else if (strcmp(v, "none") == 0)
            *(enum tls_mode *)slot = TLS_NONE;
        else
            ERR(p, line, "%s: expected required or none, got '%s'", k->name,
                v);
        break;
    case V_LISTEN:
        set_listen(p, line, k, v);
        break;
    case V_ADDR:
        if (split_hostport(v, host, sizeof host, &port) != 0)
            ERR(p, line, "%s: bad address '%s' (expected host:port or "
                "[v6]:port)", k->name, v);
        else if (set_str(slot, strdup(v)) != 0)
            ERR(p, line, "out of memory");
        break;
    case V_PLISTEN:
        set_plisten(p, line, k, slot, v);
        break;
    case V_REOPEN:
        if (strcmp(v, "reply-only") == 0 || strcmp(v, "yes") == 0)
            *(enum reopen_mode *)slot = REOPEN_REPLY_ONLY;
        else if (strcmp(v, "end-window") == 0)
            *(enum reopen_mode *)slot = REOPEN_END_WINDOW;
        else if (strcmp(v, "no") == 0)
            *(enum reopen_mode *)slot = REOPEN_NO;
        else
            ERR(p, line, "%s: expected reply-only, end-window or no, got "
                "'%s'", k->name, v);
        break;
    case V_SYNC:
        if (strcmp(v, "auto") == 0 || strcmp(v, "etag") == 0)
            *(int *)slot = strcmp(v, "etag") == 0;
        else
            ERR(p, line, "%s: expected auto or etag, got '%s'", k->name, v);
        break;
    }
}

/* ---- per-rep section defaults ---------------------------------------------- */

static int imap_defaults(struct imap_cfg *m)
{
    m->tls = TLS_REQUIRED;
    m->poll_interval = 60;
    m->customer_reply_reopens = REOPEN_REPLY_ONLY;
    m->sent_folders = strdup("Sent");
    m->inbox = strdup("INBOX");
    m->notice_folder = strdup("INBOX");
    return m->sent_folders && m->inbox && m->notice_folder ? 0 : -1;
}

static int caldav_defaults(struct caldav_cfg *d)
{
    d->tls = TLS_REQUIRED;
    d->action = ACTION_FLAG;
    d->poll_interval = 60;
    d->proxy_max_body = 32u << 20;
    d->calendars = strdup("*");
    return d->calendars ? 0 : -1;
}

static void imap_free(struct imap_cfg *m)
{
    free(m->rep); free(m->url); free(m->username); free(m->password_file);
    free(m->password_command); free(m->tls_ca); free(m->sent_folders);
    free(m->inbox); free(m->notice_folder); free(m->later_folder);
}

static void caldav_free(struct caldav_cfg *d)
{
    free(d->rep); free(d->url); free(d->username); free(d->password_file);
    free(d->password_command); free(d->tls_ca); free(d->calendars);
    free(d->windows_calendar); free(d->proxy_listen);
}

/* ---- lines ------------------------------------------------------------------- */

/* Is the '#' or ';' at s a comment start? (line start or after blank) */
static int comment_at(const char *line, const char *s)
{
    return (*s == '#' || *s == ';') &&
           (s == line || isspace((unsigned char)s[-1]));
}

/* Only blanks and an optional comment left? */
static int rest_blank(const char *line, const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return *s == '\0' || comment_at(line, s);
}

/* Check the keys of a section that was reported at its header, without
 * storing them (struct parser: scratch). */
static void scratch_section(struct parser *p, int line, int sect)
{
    memset(p->scratch_lines, 0, sizeof p->scratch_lines);
    p->klines = p->scratch_lines;
    if (sect == S_IMAP) {
        p->base = &p->scratch_imap;
    } else if (sect == S_CALDAV) {
        p->base = &p->scratch_caldav;
    } else {
        if (p->scratch == NULL && (p->scratch = calloc(1, sizeof *p->scratch)) == NULL) {
            ERR(p, line, "out of memory");
            p->sect = SECT_SKIP;
            return;
        }
        p->base = p->scratch;
    }
    p->sect = sect;
}

/* [imap] / [imap REP] and [caldav] / [caldav REP] */
static void rep_section(struct parser *p, int line, int sect, const char *rep)
{
    struct config *c = p->c;
    size_t *n = sect == S_IMAP ? &c->nimap : &c->ncaldav;
    int *slines = sect == S_IMAP ? p->imap_line : p->caldav_line;
    for (size_t i = 0; i < *n; i++) {
        const char *r = sect == S_IMAP ? c->imap[i].rep : c->caldav[i].rep;
        if ((r == NULL && rep == NULL) ||
            (r != NULL && rep != NULL && strcasecmp(r, rep) == 0)) {
            ERR(p, line, "duplicate section [%s%s%s] (first on line %d)",
                sect_names[sect], rep ? " " : "", rep ? rep : "", slines[i]);
            scratch_section(p, line, sect);
            return;
        }
    }
    if (*n >= CONFIG_MAX_REPS) {
        ERR(p, line, "too many [%s] sections (max %d)", sect_names[sect],
            CONFIG_MAX_REPS);
        scratch_section(p, line, sect);
        return;
    }
    size_t i = (*n)++;
    int rc;
    char **repslot;
    if (sect == S_IMAP) {
        rc = imap_defaults(&c->imap[i]);
        repslot = &c->imap[i].rep;
        p->base = &c->imap[i];
        p->klines = p->ilines[i];
    } else {
        rc = caldav_defaults(&c->caldav[i]);
        repslot = &c->caldav[i].rep;
        p->base = &c->caldav[i];
        p->klines = p->clines[i];
    }
    if (rep != NULL && (*repslot = strdup(rep)) == NULL)
        rc = -1;
    if (rc != 0)
        ERR(p, line, "out of memory");
    slines[i] = line;
    p->sect = sect;
}

static void section_header(struct parser *p, int line, char *raw, char *s)
{
    char *close = strchr(s, ']');
    p->sect = SECT_SKIP;
    if (close == NULL) {
        ERR(p, line, "section header without ']'");
        return;
    }
    int tail_ok = rest_blank(raw, close + 1);
    if (!tail_ok)
        ERR(p, line, "unexpected text after section header");
    *close = '\0';
    char *name = s + 1;
    while (isspace((unsigned char)*name))
        name++;
    char *arg = name + strcspn(name, " \t");
    if (*arg != '\0') {
        *arg++ = '\0';
        while (isspace((unsigned char)*arg))
            arg++;
        char *end = arg + strlen(arg);
        while (end > arg && isspace((unsigned char)end[-1]))
            *--end = '\0';
    }
    if (!strcasecmp(name, "webhook")) {
        config_wh_section(p->wh, line, arg);
        p->sect = SECT_WEBHOOK;
        return;
    }
    int sect = -1;
    for (int i = 0; i < S_COUNT; i++)
        if (strcasecmp(name, sect_names[i]) == 0)
            sect = i;
    if (sect < 0) {
        ERR(p, line, "unknown section [%s]", name);
        return;   /* its keys cannot be checked: skipped */
    }
    if (!tail_ok) {
        scratch_section(p, line, sect);
        return;
    }
    if (sect == S_IMAP || sect == S_CALDAV) {
        rep_section(p, line, sect, *arg ? arg : NULL);
        return;
    }
    if (*arg != '\0') {
        ERR(p, line, "section [%s] takes no name", name);
        scratch_section(p, line, sect);
        return;
    }
    if (p->sect_line[sect] != 0) {
        ERR(p, line, "duplicate section [%s] (first on line %d)",
            sect_names[sect], p->sect_line[sect]);
        scratch_section(p, line, sect);
        return;
    }
    p->sect_line[sect] = line;
    p->sect = sect;
    p->base = p->c;
    p->klines = p->glines;
}

static void key_line(struct parser *p, int line, char *raw, char *s)
{
    char *key = s;
    while (isalnum((unsigned char)*s) || *s == '_' || *s == '-')
        s++;
    char *kend = s;
    while (*s == ' ' || *s == '\t')
        s++;
    if (kend == key || *s != '=') {
        ERR(p, line, "expected 'key = value' or '[section]' (missing '=')");
        return;
    }
    *kend = '\0';
    s++;
    while (*s == ' ' || *s == '\t')
        s++;

    /* The value: "quoted" (with \" and \\) or bare up to a comment. */
    char *v = s;
    int quoted = 0;
    if (*s == '"') {
        char *w = v;
        quoted = 1;
        s++;
        while (*s != '"') {
            if (*s == '\0') {
                ERR(p, line, "%s: unterminated quote", key);
                return;
            }
            if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
                s++;
            *w++ = *s++;
        }
        if (!rest_blank(raw, s + 1)) {
            ERR(p, line, "%s: unexpected text after quoted value", key);
            return;
        }
        *w = '\0';
    } else {
        while (*s != '\0' && !comment_at(raw, s))
            s++;
        while (s > v && isspace((unsigned char)s[-1]))
            s--;
        *s = '\0';
    }

    if (p->sect == SECT_WEBHOOK) {
        config_wh_key(p->wh, line, key, v);
        return;
    }
    if (p->sect == SECT_SKIP)
        return;   /* an unknown section: reported at its header */
    if (p->sect == SECT_NONE) {
        ERR(p, line, "key '%s' outside any section", key);
        return;
    }
    long ki = -1;
    for (size_t i = 0; i < NKEYS; i++)
        if ((int)keys[i].sect == p->sect && strcasecmp(keys[i].name, key) == 0)
            ki = (long)i;
    if (ki < 0) {
        ERR(p, line, "unknown key '%s' in [%s]", key, sect_names[p->sect]);
        return;
    }
    size_t canon = key_canon((size_t)ki);
    if (p->klines[canon] != 0) {
        ERR(p, line, "duplicate key '%s' (first on line %d)", key,
            p->klines[canon]);
        return;
    }
    p->klines[canon] = line;
    if (*v == '\0' && !(quoted && keys[ki].type == V_STR)) {
        ERR(p, line, "%s: empty value", key);
        return;
    }
    set_value(p, line, &keys[ki], v);
}

static void parse_line(struct parser *p, int line, char *raw)
{
    char *s = raw;
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '\0' || *s == '#' || *s == ';')
        return;
    if (*s == '[')
        section_header(p, line, raw, s);
    else
        key_line(p, line, raw, s);
}

/* ---- checks across keys -------------------------------------------------------- */

/* The line a key was set on (0: not set). */
static int line_of(const int *klines, enum sect s, size_t off)
{
    long i = key_index(s, off);
    return i < 0 ? 0 : klines[key_canon((size_t)i)];
}

/* url scheme must be one of schemes; tls = none only towards loopback. */
static void check_url(struct parser *p, const char *what, const char *url,
                      enum tls_mode tls, int url_line, int tls_line,
                      const char *const *schemes)
{
    char scheme[16], host[HOST_MAX];
    if (url_parts(url, scheme, sizeof scheme, host, sizeof host) != 0) {
        ERR(p, url_line, "%s url: cannot parse '%s' (expected "
            "scheme://host[:port])", what, url);
        return;
    }
    int ok = 0;
    for (size_t i = 0; schemes[i] != NULL; i++)
        if (strcmp(scheme, schemes[i]) == 0)
            ok = 1;
    if (!ok)
        ERR(p, url_line, "%s url: unsupported scheme '%s'", what, scheme);
    if (tls == TLS_NONE && !sysutil_loopback_host(host))
        ERR(p, tls_line ? tls_line : url_line, "%s: tls = none is allowed "
            "only for a server on loopback, not %s", what, host);
}

static void check_listen(struct parser *p, char *const *arr, size_t n,
                         int line, const char *name)
{
    char host[HOST_MAX];
    int port;
    if (p->c->auth != AUTH_NONE)
        return;
    for (size_t i = 0; i < n; i++)
        if (split_hostport(arr[i], host, sizeof host, &port) == 0 &&
            !sysutil_loopback_host(host))
            ERR(p, line, "%s %s is not loopback and auth = none: that would "
                "be an open relay (set auth or listen on 127.0.0.1)", name,
                arr[i]);
}

/* [cadence], [followup] item, [digest] day (issue 12): values parsed
 * after the file is read. */
static void check_issue12(struct parser *p)
{
    struct config *c = p->c;
    const int *g = p->glines;
    /* [cadence]: the rule, parsed */
    {
        static const struct { size_t off; const char *name; } ck[] = {
            { C(cadence_min_gap), "min_gap" }, { C(cadence_max), "max" },
            { C(cadence_scope), "scope" },
        };
        char err[300];
        c->cadence.action = c->cadence_action;
        for (size_t i = 0; i < sizeof ck / sizeof ck[0]; i++) {
            const char *v = *(char **)((char *)c + ck[i].off);
            if (v && cadence_option(ck[i].name, v, &c->cadence, err, sizeof err) < 0)
                ERR(p, line_of(g, S_CADENCE, ck[i].off), "%s", err);
        }
    }

    /* [followup] item */
    if (c->followup_item) {
        if (!strcasecmp(c->followup_item, "todo"))
            c->followup_item_todo = 1;
        else if (strcasecmp(c->followup_item, "event"))
            ERR(p, line_of(g, S_FOLLOWUP, C(followup_item)), "item: expected event or todo, got '%s'",
                c->followup_item);
    }

    /* [digest] day */
    if (c->digest_day_name) {
        int d = when_weekday_name(c->digest_day_name);
        if (d < 0)
            ERR(p, line_of(g, S_DIGEST, C(digest_day_name)), "day: expected monday..sunday, got '%s'",
                c->digest_day_name);
        else
            c->digest_day = d;
    }
    if (c->digest_time < 0)
        ERR(p, line_of(g, S_DIGEST, C(digest_time)), "time: expected HH:MM");
}

/* [http]: plain HTTP only on loopback (tokens would cross the network in
 * clear), as SMTP AUTH without TLS. */
static void check_http(struct parser *p)
{
    struct config *c = p->c;
    char host[HOST_MAX];
    int port, line = line_of(p->glines, S_HTTP, C(http_listen));
    if ((c->http_tls_cert == NULL) != (c->http_tls_key == NULL))
        ERR(p, line_of(p->glines, S_HTTP, c->http_tls_cert ? C(http_tls_cert) : C(http_tls_key)),
            "[http] tls_cert and tls_key go together");
    if (c->http_listen && !c->http_tls_cert && split_hostport(c->http_listen, host, sizeof host, &port) == 0
        && !sysutil_loopback_host(host))
        ERR(p, line, "[http] listen %s is not loopback and has no tls_cert/tls_key: API tokens "
            "would cross the network in clear (set tls_cert and tls_key, or listen on 127.0.0.1)",
            c->http_listen);
    /* an explicit console_dir must be a directory; the built-in default
     * may be absent (then GET / answers 404 and start-up says why) */
    struct stat st;
    if (c->http_console_dir && (stat(c->http_console_dir, &st) != 0 || !S_ISDIR(st.st_mode)))
        ERR(p, line_of(p->glines, S_HTTP, C(http_console_dir)), "[http] console_dir %s: not a directory",
            c->http_console_dir);
}

static void check_all(struct parser *p)
{
    struct config *c = p->c;
    static const char *const smtp_schemes[] = { "smtp", "smtps", NULL };
    static const char *const imap_schemes[] = { "imap", "imaps", NULL };
    static const char *const dav_schemes[] = { "http", "https", NULL };
    const int *g = p->glines;

    /* [smtp] */
    check_listen(p, c->listen, c->nlisten, line_of(g, S_SMTP, C(listen)),
                 "listen");
    check_listen(p, c->listen_tls, c->nlisten_tls,
                 line_of(g, S_SMTP, C(listen_tls)), "listen_tls");
    if (c->nlisten_tls > 0 && (c->tls_cert == NULL || c->tls_key == NULL))
        ERR(p, line_of(g, S_SMTP, C(listen_tls)),
            "listen_tls needs tls_cert and tls_key");
    if ((c->tls_cert == NULL) != (c->tls_key == NULL))
        ERR(p, line_of(g, S_SMTP, c->tls_cert ? C(tls_cert) : C(tls_key)),
            "tls_cert and tls_key go together");
    if (c->auth == AUTH_UPSTREAM && c->upstream_url == NULL)
        ERR(p, line_of(g, S_SMTP, C(auth)),
            "auth = upstream needs [upstream] url");

    /* [notify] events: every token must be a notice kind */
    if (c->notify_events) {
        char names[256];
        notice_kind_names(names, sizeof names);
        char *dup = strdup(c->notify_events), *save = NULL;
        for (char *t = dup ? strtok_r(dup, ", ", &save) : NULL; t; t = strtok_r(NULL, ", ", &save))
            if (!notice_kind_known(t))
                ERR(p, line_of(g, S_NOTIFY, C(notify_events)),
                    "events: unknown notice kind \"%s\" (%s)", t, names);
        free(dup);
    }

    /* [store] */
    if (c->store_url && strncmp(c->store_url, "postgresql://", 13) && strncmp(c->store_url, "postgres://", 11))
        ERR(p, line_of(g, S_STORE, C(store_url)), "url: expected postgresql://...");
    if (c->store_url && !c->store_node)
        ERR(p, line_of(g, S_STORE, C(store_url)), "url needs node (this gateway's name)");
    if (c->store_node && (strlen(c->store_node) > 6 || strspn(c->store_node, "abcdefghijklmnopqrstuvwxyz0123456789") != strlen(c->store_node)))
        ERR(p, line_of(g, S_STORE, C(store_node)), "node: 1 to 6 of a-z 0-9 (it ends window ids)");
    if (c->store_password_file && c->store_password_command)
        ERR(p, line_of(g, S_STORE, C(store_password_command)),
            "password_file and password_command are exclusive");
    check_issue12(p);
    check_http(p);
    config_wh_check(p->wh);

    /* [upstream] */
    if (c->upstream_url != NULL)
        check_url(p, "[upstream]", c->upstream_url, c->upstream_tls,
                  line_of(g, S_UPSTREAM, C(upstream_url)),
                  line_of(g, S_UPSTREAM, C(upstream_tls)), smtp_schemes);
    if (c->upstream_password_file && c->upstream_password_command)
        ERR(p, line_of(g, S_UPSTREAM, C(upstream_password_command)),
            "password_file and password_command are exclusive");

    /* [imap ...] / [caldav ...] */
    for (size_t i = 0; i < c->nimap; i++) {
        struct imap_cfg *m = &c->imap[i];
        const int *l = p->ilines[i];
        char what[CONFIG_LINE_MAX];
        snprintf(what, sizeof what, "[imap%s%s]", m->rep ? " " : "",
                 m->rep ? m->rep : "");
        if (m->url == NULL)
            ERR(p, p->imap_line[i], "%s needs url", what);
        else
            check_url(p, what, m->url, m->tls, line_of(l, S_IMAP, I(url)),
                      line_of(l, S_IMAP, I(tls)), imap_schemes);
        if (m->password_file && m->password_command)
            ERR(p, line_of(l, S_IMAP, I(password_command)),
                "password_file and password_command are exclusive");
    }
    for (size_t i = 0; i < c->ncaldav; i++) {
        struct caldav_cfg *d = &c->caldav[i];
        const int *l = p->clines[i];
        char what[CONFIG_LINE_MAX];
        snprintf(what, sizeof what, "[caldav%s%s]", d->rep ? " " : "",
                 d->rep ? d->rep : "");
        if (d->url == NULL)
            ERR(p, p->caldav_line[i], "%s needs url", what);
        else
            check_url(p, what, d->url, d->tls, line_of(l, S_CALDAV, D(url)),
                      line_of(l, S_CALDAV, D(tls)), dav_schemes);
        if (d->password_file && d->password_command)
            ERR(p, line_of(l, S_CALDAV, D(password_command)),
                "password_file and password_command are exclusive");
    }
}

/* Defaults that depend on other keys, filled after reading. */
static int late_defaults(struct config *c)
{
    if (c->nlisten == 0 && c->nlisten_tls == 0) {
        if ((c->listen[0] = strdup("127.0.0.1:10587")) == NULL)
            return -1;
        c->nlisten = 1;
    }
    if (c->maildir == NULL &&
        asprintf(&c->maildir, "%s/outbox", c->state_dir) < 0) {
        c->maildir = NULL;
        return -1;
    }
    if (c->notify_from == NULL &&
        asprintf(&c->notify_from, "untild@%s", c->command_domain) < 0) {
        c->notify_from = NULL;
        return -1;
    }
    if (c->hostname == NULL) {
        char h[256];
        if (gethostname(h, sizeof h) != 0)
            snprintf(h, sizeof h, "localhost");
        h[sizeof h - 1] = '\0';
        if ((c->hostname = strdup(h)) == NULL)
            return -1;
    }
    return 0;
}

static int early_defaults(struct config *c)
{
    c->auth = AUTH_NONE;
    c->max_message_size = 52428800;
    c->max_sessions = 1000;
    c->timeout_command = 300;
    c->timeout_data = 600;
    c->session_deadline = 3600;
    c->max_sessions_per_address = 250;
    c->spill_threshold = 1024 * 1024;
    c->auth_failure_delay = 1;
    c->auth_max_failures = 10;
    c->auth_failure_window = 600;
    c->tls_self_signed = 1;
    c->upstream_tls = TLS_REQUIRED;
    c->upstream_connections = 10;
    c->upstream_timeout = 120;
    c->default_action = ACTION_HOLD;
    c->split_recipients = 0;
    c->release_time = 9 * 60;
    c->release_on_weekends = 0;
    c->max_queue_lifetime = 5 * 86400;
    c->max_calendar_part = 1024 * 1024;
    c->audit_retention = 365 * 86400;
    c->control_output_max = 16 * 1024 * 1024;
    c->store_batch = 500;
    c->http_max_body = 1024 * 1024;
    c->http_max_connections = 64;
    c->http_timeout = 60;
    c->http_session_idle = 30 * 60;
    c->http_session_lifetime = 12 * 3600;
    c->http_max_sessions = 1000;
    c->http_max_sessions_per_rep = 10;
    c->store_retry_interval = 5;
    c->rrule_max_iterations = WINDOW_RRULE_MAX_ITERATIONS;
    c->rrule_max_duration = WINDOW_RRULE_MAX_DURATION;
    c->followup_enabled = 1;
    c->followup_catch_up = 3 * 86400;
    c->followup_calendar = strdup("Follow-ups");
    c->cadence_action = ACTION_HOLD;
    c->digest_day = 1;
    c->digest_time = 8 * 60;
    c->digest_max_rows = 200000;
    c->cadence_ovr = calloc(1, sizeof *c->cadence_ovr);
    /* Under systemd (StateDirectory= / RuntimeDirectory=) the defaults
     * follow the unit, so the user unit needs no paths in its config. */
    const char *sd = getenv("STATE_DIRECTORY"), *rd = getenv("RUNTIME_DIRECTORY");
    if (sd && *sd == '/')
        c->state_dir = strndup(sd, strcspn(sd, ":"));
    else
        c->state_dir = strdup("/var/lib/untild");
    if (rd && *rd == '/') {
        if (asprintf(&c->control_socket, "%.*s/control.sock", (int)strcspn(rd, ":"), rd) < 0)
            c->control_socket = NULL;
    } else {
        c->control_socket = strdup("/run/untild/control.sock");
    }
    c->timezone = strdup("UTC");
    c->admin_group = strdup("untild-admin");
    c->command_domain = strdup("untild.invalid");
    c->subaddress_delimiter = strdup("+");
    return c->state_dir && c->control_socket && c->timezone &&
           c->admin_group && c->command_domain && c->subaddress_delimiter &&
           c->cadence_ovr && c->followup_calendar ? 0 : -1;
}

/* The LINE of a "FILE:LINE: message" made for file (0 if none). */
static long error_line(const char *msg, size_t flen)
{
    if (strlen(msg) <= flen || msg[flen] != ':')
        return 0;
    return strtol(msg + flen + 1, NULL, 10);
}

/* Put this load's errors in line order (the cross-key checks run last). */
static void sort_errors(struct config_errors *e, size_t from, const char *file)
{
    size_t flen = strlen(file);
    for (size_t i = from + 1; i < e->n; i++) {
        char *m = e->lines[i];
        long l = error_line(m, flen);
        size_t j = i;
        while (j > from && error_line(e->lines[j - 1], flen) > l) {
            e->lines[j] = e->lines[j - 1];
            j--;
        }
        e->lines[j] = m;
    }
}

/* Absolute directory holding path (relative paths in the file hang off it). */
static char *config_dir(const char *path)
{
    char *copy = strdup(path), *out;
    if (copy == NULL)
        return NULL;
    char *slash = strrchr(copy, '/');
    if (slash == NULL)
        out = realpath(".", NULL);
    else if (slash == copy)
        out = strdup("/");
    else {
        *slash = '\0';
        out = realpath(copy, NULL);
    }
    free(copy);
    return out;
}

static void parser_free(struct parser *p)
{
    if (p == NULL)
        return;
    free(p->dir);
    config_free(p->scratch);
    imap_free(&p->scratch_imap);
    caldav_free(&p->scratch_caldav);
    config_wh_free(p->wh);
    free(p);
}

struct config *config_load(const char *path, struct config_errors *e)
{
    size_t nerr0 = e ? e->n : 0;
    struct config *c = calloc(1, sizeof *c);
    struct parser *p = calloc(1, sizeof *p);
    FILE *f = NULL;
    char *buf = NULL;
    size_t cap = 0;

    if (c == NULL || p == NULL || (c->path = strdup(path)) == NULL ||
        early_defaults(c) != 0) {
        config_errors_add(e, path, 0, "out of memory");
        goto fail;
    }
    p->c = c;
    p->e = e;
    p->file = path;
    p->sect = SECT_NONE;
    f = fopen(path, "r");
    if (f == NULL) {
        config_errors_add(e, path, 0, "cannot open: %s", strerror(errno));
        goto fail;
    }
    p->dir = config_dir(path);
    if (p->dir == NULL || !(p->wh = config_wh_new(c, e, path, p->dir))) {
        config_errors_add(e, path, 0, "cannot resolve its directory: %s",
                          strerror(errno));
        goto fail;
    }

    int lineno = 0;
    ssize_t len;
    errno = 0;
    while ((len = getline(&buf, &cap, f)) >= 0) {
        lineno++;
        if (len > CONFIG_LINE_MAX) {
            ERR(p, lineno, "line too long (max %d bytes)", CONFIG_LINE_MAX);
            continue;
        }
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            buf[--len] = '\0';
        if (memchr(buf, '\0', (size_t)len) != NULL) {
            ERR(p, lineno, "NUL byte in line");
            continue;
        }
        parse_line(p, lineno, buf);
    }
    if (ferror(f)) {
        config_errors_add(e, path, 0, "read error: %s", strerror(errno));
        goto fail;
    }
    if (late_defaults(c) != 0) {
        config_errors_add(e, path, 0, "out of memory");
        goto fail;
    }
    check_all(p);
    if (e != NULL && e->n != nerr0) {
        sort_errors(e, nerr0, path);
        goto fail;
    }
    fclose(f);
    free(buf);
    parser_free(p);
    return c;

fail:
    if (f != NULL)
        fclose(f);
    free(buf);
    parser_free(p);
    config_free(c);
    return NULL;
}

void config_free(struct config *c)
{
    if (c == NULL)
        return;
    free(c->path);
    free(c->state_dir); free(c->control_socket); free(c->timezone);
    free(c->owner); free(c->admin_group); free(c->user);
    for (size_t i = 0; i < c->nlisten; i++)
        free(c->listen[i]);
    for (size_t i = 0; i < c->nlisten_tls; i++)
        free(c->listen_tls[i]);
    free(c->passwd_file); free(c->tls_cert); free(c->tls_key);
    free(c->hostname);
    free(c->upstream_url); free(c->maildir); free(c->upstream_username);
    free(c->upstream_password_file); free(c->upstream_password_command);
    free(c->upstream_tls_ca);
    free(c->store_url); free(c->store_password_file);
    free(c->store_password_command); free(c->store_node);
    free(c->command_domain); free(c->subaddress_delimiter);
    free(c->window_files);
    free(c->notify_from); free(c->notify_to); free(c->notify_events);
    free(c->policy_listen); free(c->postfix_config_dir);
    free(c->http_listen); free(c->http_tls_cert); free(c->http_tls_key); free(c->http_admins);
    free(c->http_console_dir);
    free(c->followup_team); free(c->followup_calendar); free(c->followup_item);
    free(c->cadence_min_gap); free(c->cadence_max); free(c->cadence_scope);
    free(c->cadence_exempt);
    if (c->cadence_ovr)
        cadence_overrides_clear(c->cadence_ovr);
    free(c->cadence_ovr);
    free(c->digest_day_name); free(c->digest_managers);
    for (size_t i = 0; i < c->nimap; i++)
        imap_free(&c->imap[i]);
    for (size_t i = 0; i < c->ncaldav; i++)
        caldav_free(&c->caldav[i]);
    for (size_t i = 0; i < c->nwebhook; i++)
        config_webhook_free(&c->webhook[i]);
    free(c);
}

