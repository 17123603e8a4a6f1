/* http_api_int.h - what the parts of the HTTP API share, and nothing else
 * includes: http_api_req.c (pure: a request -> the control socket's words,
 * or a JSON error; the held message's preview), http_api.c
 * (libmicrohttpd threads: bodies, limits, answers; start/stop),
 * http_api_run.c (loop thread: token, rate limit, the verb, the audit) and
 * http_api_login.c (loop thread: login, logout, me, the session checks). */
#ifndef UNTILD_HTTP_API_INT_H
#define UNTILD_HTTP_API_INT_H

#include <pthread.h>
#include <stddef.h>
#include "untild/control.h"
#include "untild/http_session.h"
#include "untild/tokens.h"

struct untild;
struct loop;
struct MHD_Daemon;
struct json_object;
struct http_console;

enum api_op {
    API_STATUS, API_WINDOWS_LIST, API_WINDOWS_ADD, API_WINDOWS_END, API_CHECK,
    API_HELD_LIST, API_HELD_SHOW, API_HELD_RELEASE, API_HELD_DISCARD,
    API_LOGIN, API_LOGOUT, API_ME,
    API_WINDOWS_CHANGE, API_WINDOWS_IMPORT, API_WINDOWS_END_WHO, API_CHECK_MANY,
    API_REPORT, API_FOLLOWUPS, API_CADENCE
};

#define API_LOGIN_USER_MAX 256      /* as SMTP AUTH's user: a rep's name */
#define API_LOGIN_PASS_MAX 1024

#define API_ID_MAX 64
#define API_CHECK_MAX 100     /* addresses in one POST /check */
#define API_MAX_WORDS (API_CHECK_MAX + 16)
#define API_PAGE_DEFAULT "100"
#define API_PAGE_MAX 1000

/* A refusal: HTTP status, and the JSON body's error/field/reason. */
struct api_err {
    int status;
    char error[64];
    char field[32];         /* "" = null */
    char reason[300];
    const char *allow;      /* 405: the methods the path takes */
};

/* Query parameters the API reads (NULL when absent), and the request's
 * Content-Type. */
struct api_query { const char *limit, *after, *address, *at, *from, *who, *since, *days, *ctype; };

/* One API call as control socket words. */
struct api_call {
    enum api_op op;
    int changes;            /* changes state: audited */
    char id[API_ID_MAX];    /* the path's {id}, or "" */
    int argc;
    char *argv[API_MAX_WORDS];   /* malloc'd */
    char *user, *pass;      /* POST /login's (malloc'd; wiped when freed) */
};

/* Any thread. Route method + path (+ query, body) to a call. Returns 0,
 * or -1 with *err (404 unknown path, 405 wrong method, 400 bad input:
 * malformed JSON, wrong types, unknown fields, bad paging; 413 a CSV over
 * the import's limit, 415 an import that is not text/csv). A POST /check
 * is argv "check" [--at X] [--from Y] "--who" ADDRESS...: the loop runs
 * `check` once per address (http_api_run.c). */
int api_route(const char *method, const char *path, const struct api_query *q, const char *body,
              size_t len, struct api_call *out, struct api_err *err);
void api_call_free(struct api_call *c);

/* Any thread. The control socket's refusal (exit status rc, its text) as
 * an api_err: 2 -> 400, 4 -> 403, 5 -> 404, 1 -> 409 for held actions
 * else 500; the field named by an "--option" in the text. */
void api_err_from_control(enum api_op op, int rc, const char *text, struct api_err *err);

/* Any thread. The JSON error body {"error":..,"field":..,"reason":..}
 * (malloc'd). */
char *api_err_json(const struct api_err *err);

/* Any thread. Add "headers" ([{name, value}], unfolded, at most 100) and
 * "preview" (the first text part's start, at most 2000 bytes, valid
 * UTF-8) of a spool file's first bytes (its spool header skipped) to o. */
void api_preview(const char *buf, size_t len, struct json_object *o);

/* ---- the loop's part ---- */

struct http_api {
    struct untild *u;
    struct loop *loop;
    struct MHD_Daemon *d;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    int pending;            /* work posted to the loop and not yet run */
    int dead;               /* stopped with work pending: the last one frees us */
    char *cert, *key;       /* PEM, HTTPS */
    int tls;                /* served over TLS: Secure cookies, https origins */
    struct http_sessions *sessions;   /* browser sessions (loop thread) */
    size_t max_body;        /* [http] max_body, copied at start: connection
                               threads never read u->cfg (a reload swaps it) */
    int max_conns, nconns;  /* [http] max_connections; open now (mu) */
    struct http_console *console;   /* [http] console_dir, opened at start */
};

/* Work for the loop thread, shared with a connection thread (refs). */
struct api_work {
    struct http_api *a;
    int refs, done;
    /* in */
    struct api_call call;
    char token[TOKEN_MAX];
    char client[64];
    char method[8];
    int has_auth;           /* an Authorization header: a token request */
    char cookie[HTTP_SESSION_HEX];      /* untild_session, if well-formed */
    int has_cookie;         /* an untild_session cookie, well-formed or not */
    char csrf[HTTP_SESSION_HEX];        /* X-CSRF-Token, if 64 characters */
    int cross_site;         /* Origin (or Sec-Fetch-Site) says another site */
    int local;              /* over TLS, or from a loopback address: login allowed */
    /* out */
    int status;             /* 0: ran the verb (rc, out); else refused with err */
    struct api_err err;
    int rc;
    char *out;
    size_t outlen;
    char next[NEXT_MAX];
    char spool_path[4096];  /* held show: the file, for the preview */
    char who[TOKEN_NAME_MAX];
    char new_session[HTTP_SESSION_HEX]; /* login: the cookie to set */
    int clear_cookie;       /* logout, or an unknown session: clear it */
    int delay_s;            /* a refused login: answer after this long */
    int retry_after;        /* 429: seconds, for Retry-After */
};

/* Who a request acts as, by token or by session. */
struct api_who {
    char name[HTTP_SESSION_REP_MAX];   /* the token's name, or the session's rep */
    char rep[HTTP_SESSION_REP_MAX];    /* the rep it acts as; "" for an admin token */
    int admin;
    int session;            /* 1: a browser session (cookie) */
    char csrf[HTTP_SESSION_HEX];
};

/* http_api_run.c, loop thread: run w, mark it done, wake its thread;
 * frees w with its last ref. */
void http_api_on_loop(void *arg);
/* http_api_run.c, loop thread: w, run now or later (a login's password
 * check), is done: wake its thread; frees w with its last ref. */
void http_api_finish(struct api_work *w);
/* http_api_run.c, loop thread: set w's refusal. */
void http_api_refuse(struct api_work *w, int status, const char *error, const char *reason);
/* http_api_run.c, loop thread: an audit row for w (event, who, status). */
void http_api_audit(struct untild *u, struct api_work *w, const char *event, const char *who, int status);

/* http_api_login.c, loop thread. POST /login: 1 answered now (refused),
 * 0 the password is being checked (http_api_finish follows). */
int http_api_login(struct untild *u, struct api_work *w);
/* 1 if w's cookie names a live session, the request is same-site and a
 * change carries the CSRF token (*who filled); else w is refused. */
int http_api_session(struct untild *u, struct api_work *w, struct api_who *who);
/* GET /me and POST /logout for who. */
void http_api_me(struct untild *u, struct api_work *w, const struct api_who *who);
void http_api_logout(struct untild *u, struct api_work *w, const struct api_who *who);

/* Any thread, once w is no longer shared. */
void http_api_work_free(struct api_work *w);
/* http_api.c: free a once no connection thread and no posted work is left. */
void http_api_free(struct http_api *a);

#endif
