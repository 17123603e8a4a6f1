/* config.h - untild.conf (INI) and the window files it names.
 *
 * Syntax: "[section]" or "[section NAME]" (imap / caldav per rep, webhook),
 * "key = value", comments start with '#' or ';' at the beginning of a line
 * or after whitespace. Every error is reported as "FILE:LINE: message";
 * config_load collects all of them (it does not stop at the first).
 * Unknown sections or keys, duplicate sections, bad values are errors.
 * Relative paths in the config are taken relative to the directory of the
 * config file. */
#ifndef UNTILD_CONFIG_H
#define UNTILD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "untild/windows.h"
#include "untild/cadence.h"

#define CONFIG_MAX_LISTEN 8
#define CONFIG_MAX_REPS 64
#define CONFIG_MAX_WEBHOOKS 16

enum auth_mode { AUTH_NONE, AUTH_PASSWD, AUTH_UPSTREAM };
enum tls_mode { TLS_REQUIRED, TLS_NONE };
enum reopen_mode { REOPEN_REPLY_ONLY, REOPEN_END_WINDOW, REOPEN_NO };

struct imap_cfg {
    char *rep;               /* NULL: the [daemon] owner */
    char *url, *username, *password_file, *password_command, *tls_ca;
    enum tls_mode tls;
    char *sent_folders;      /* comma-separated */
    char *inbox, *notice_folder, *later_folder;
    int poll_interval;
    enum reopen_mode customer_reply_reopens;
};

struct caldav_cfg {
    char *rep;
    char *url, *username, *password_file, *password_command, *tls_ca;
    enum tls_mode tls;
    char *calendars;         /* "*" or comma-separated names */
    enum action action;      /* flag | hold */
    char *windows_calendar;
    int poll_interval;
    char *proxy_listen;      /* NULL: no proxy */
    size_t proxy_max_body;   /* request body bytes the proxy takes; default 32m */
    int sync_etag;           /* sync = etag: never use sync-collection */
};

/* [webhook NAME] (issue 14): outgoing events (webhook.h, events.h). */
struct webhook_cfg {
    char *name;
    char *url;               /* https://, or http:// to a loopback host */
    char *secret_file;       /* the HMAC key: its first line */
    char *tls_ca;            /* NULL: the system's trust */
    uint32_t events;         /* bit (1 << enum event_kind); default: all */
    int timeout;             /* seconds per attempt; default 10 */
    int64_t max_age;         /* seconds an event may wait; default 3d */
    int64_t retry_max;       /* seconds: the longest wait between attempts; default 1h */
    int max_queue;           /* events kept waiting; default 100000 */
};

struct config {
    char *path;              /* the config file itself */
    /* [daemon] */
    char *state_dir;         /* default /var/lib/untild */
    char *control_socket;    /* default /run/untild/control.sock */
    char *timezone;          /* default: UTC */
    char *owner;             /* the single-user rep */
    char *admin_group;       /* default "untild-admin" */
    char *user;              /* drop privileges to this user if root */
    int64_t audit_retention; /* seconds audit/seen rows are kept; 0 = forever;
                                default 365d */
    size_t control_output_max; /* bytes of one control answer; default 16m */
    /* [smtp] */
    char *listen[CONFIG_MAX_LISTEN]; size_t nlisten;       /* "host:port" */
    char *listen_tls[CONFIG_MAX_LISTEN]; size_t nlisten_tls;
    enum auth_mode auth;
    char *passwd_file;       /* auth = passwd:FILE */
    char *tls_cert, *tls_key;
    int tls_self_signed;     /* no tls_cert/tls_key: make and offer a self-signed
                                loopback certificate (tls_self.h); default 1 */
    size_t max_message_size; /* default 52428800 */
    int max_sessions;        /* default 1000 */
    char *hostname;          /* greeting name; default gethostname() */
    int timeout_command;     /* seconds; default 300 */
    int timeout_data;        /* seconds; default 600 */
    int session_deadline;    /* seconds a whole session may last; 0 = none; default 3600 */
    int max_sessions_per_address; /* concurrent sessions per client address; 0 = no limit; default 250 */
    size_t spill_threshold;  /* message bytes kept in memory while received; above: a temp file; default 1m */
    int auth_failure_delay;  /* seconds before a refused AUTH is answered; default 1 */
    int auth_max_failures;   /* failed AUTHs per address and per user within the window; 0 = no limit; default 10 */
    int auth_failure_window; /* seconds; default 600 */
    /* [store]: shared state on PostgreSQL (store_pg.c); NULL url: SQLite only */
    char *store_url, *store_password_file, *store_password_command;
    char *store_node;        /* this gateway's name among gateways ([a-z0-9], <= 6) */
    int store_batch;         /* rows per replay/fetch round trip; default 500 */
    int store_retry_interval;/* seconds between reconnects; default 5 */
    /* [upstream] */
    char *upstream_url;      /* NULL: deliver to maildir */
    char *maildir;           /* default <state_dir>/outbox */
    enum tls_mode upstream_tls;
    char *upstream_username, *upstream_password_file, *upstream_password_command;
    char *upstream_tls_ca;
    int upstream_connections;/* parallel upstream connections; default 10 */
    int upstream_timeout;    /* seconds; default 120 */
    /* [policy] */
    enum action default_action;   /* default hold */
    int split_recipients;         /* default 0 */
    int release_time;             /* minutes after midnight; -1 = off; default 540 */
    int release_on_weekends;      /* default 0 */
    char *command_domain;         /* default untild.invalid */
    char *subaddress_delimiter;   /* default "+" */
    int64_t max_queue_lifetime;   /* seconds; default 5d */
    size_t max_calendar_part;     /* calendar bytes parsed per message; default 1 MiB */
    /* [windows] */
    char *window_files;           /* glob, may be NULL */
    int rrule_max_iterations;     /* see windows.h; default 2000 */
    int64_t rrule_max_duration;   /* seconds; default 366d */
    /* [notify] */
    char *notify_from;            /* default "untild@<command_domain>" */
    char *notify_to;              /* default: the rep's address */
    char *notify_events;          /* comma list of notice kinds to send:
                                     held,flagged,released,failed,stale,status
                                     or all / none; default all */
    /* [followup] (issue 12) */
    int followup_enabled;         /* default yes */
    char *followup_team;          /* an address reminded of every follow-up; NULL */
    int64_t followup_catch_up;    /* seconds: a follow-up missed by this much
                                     (daemon down) is still sent; default 3d */
    char *followup_calendar;      /* calendar name for follow-up items (reps with
                                     [caldav]); default "Follow-ups"; "off": none */
    int followup_item_todo;       /* item = todo (VTODO) | event (all-day VEVENT, default) */
    char *followup_item;          /* the key as written */
    /* [cadence] (issue 12): off unless min_gap or max is set */
    char *cadence_min_gap, *cadence_max, *cadence_scope, *cadence_exempt;
    enum action cadence_action;   /* default hold */
    struct cadence_rule cadence;  /* the keys above, parsed */
    struct cadence_overrides *cadence_ovr; /* "WHO cadence ..." lines of the
                                     window files: filled (afresh) by
                                     config_load_windows */
    /* [digest] (issue 12) */
    int digest_enabled;           /* default no */
    char *digest_day_name;        /* monday..sunday; default monday */
    int digest_day;               /* 0 Sunday .. 6 Saturday, from digest_day_name */
    int digest_time;              /* minutes after midnight ([daemon] timezone); default 08:00 */
    char *digest_managers;        /* addresses that get the team's figures; NULL */
    int digest_max_rows;          /* audit rows read per digest; default 200000 */
    /* [http] (issue 14): the JSON API */
    char *http_listen;            /* "host:port"; NULL: off */
    char *http_tls_cert, *http_tls_key; /* required unless listen is loopback */
    size_t http_max_body;         /* bytes of one request body; default 1m */
    int http_max_connections;     /* concurrent connections; default 64 */
    int http_timeout;             /* seconds a connection may stay idle; default 60 */
    char *http_console_dir;       /* the web console's files; NULL: the built-in
                                     default (http_console.h) */
    int64_t http_session_idle;    /* seconds a browser session may go unused; default 30m */
    int64_t http_session_lifetime; /* seconds a browser session lasts from login; default 12h */
    int http_max_sessions;        /* browser sessions open at once; default 1000 */
    int http_max_sessions_per_rep; /* browser sessions of one rep; default 10 */
    char *http_admins;            /* SMTP identities that log in as admins ("a, b"); NULL */
    /* [policy_service] */
    char *policy_listen;          /* NULL: off */
    char *postfix_config_dir;
    /* [imap] / [imap REP] */
    struct imap_cfg imap[CONFIG_MAX_REPS]; size_t nimap;
    /* [caldav] / [caldav REP] */
    struct caldav_cfg caldav[CONFIG_MAX_REPS]; size_t ncaldav;
    /* [webhook NAME] (config_webhook.c) */
    struct webhook_cfg webhook[CONFIG_MAX_WEBHOOKS]; size_t nwebhook;
};

/* Error sink: every error is one "FILE:LINE: message" line. */
struct config_errors {
    char **lines;
    size_t n, cap;
};
void config_errors_add(struct config_errors *e, const char *file, int line,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void config_errors_free(struct config_errors *e);

/* Load path into a fresh config (defaults filled in). Returns the config,
 * or NULL if there were errors (all listed in *e). */
struct config *config_load(const char *path, struct config_errors *e);
void config_free(struct config *c);

/* Parse every window file matched by c->window_files into a fresh index
 * (source WSRC_FILE, file/line set); "WHO cadence ..." lines go to
 * c->cadence_ovr instead (cleared first). now anchors natural dates. Errors go to
 * *e as FILE:LINE. Returns the index (also on errors, with the good lines),
 * or NULL on ENOMEM. A glob that matches nothing is not an error. */
struct windows *config_load_windows(const struct config *c, time_t now,
                                    struct config_errors *e);

#endif
