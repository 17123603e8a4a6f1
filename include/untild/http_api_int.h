/* http_api_int.h - what the parts of the HTTP API share, and nothing else
 * includes: http_api_req.c (pure: a request -> the control socket's words,
 * or a JSON error; the held message's preview), http_api.c
 * (libmicrohttpd threads: bodies, limits, answers; start/stop) and
 * http_api_run.c (loop thread: token, rate limit, the verb, the audit). */
#ifndef UNTILD_HTTP_API_INT_H
#define UNTILD_HTTP_API_INT_H

#include <pthread.h>
#include <stddef.h>
#include "untild/control.h"
#include "untild/tokens.h"

struct untild;
struct loop;
struct MHD_Daemon;
struct json_object;
struct http_console;

enum api_op {
    API_STATUS, API_WINDOWS_LIST, API_WINDOWS_ADD, API_WINDOWS_END, API_CHECK,
    API_HELD_LIST, API_HELD_SHOW, API_HELD_RELEASE, API_HELD_DISCARD
};

#define API_ID_MAX 64
#define API_MAX_WORDS 32
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

/* Query parameters the API reads (NULL when absent). */
struct api_query { const char *limit, *after, *address, *at, *from; };

/* One API call as control socket words. */
struct api_call {
    enum api_op op;
    int changes;            /* changes state: audited */
    char id[API_ID_MAX];    /* the path's {id}, or "" */
    int argc;
    char *argv[API_MAX_WORDS];   /* malloc'd */
};

/* Any thread. Route method + path (+ query, body) to a call. Returns 0,
 * or -1 with *err (404 unknown path, 405 wrong method, 400 bad input:
 * malformed JSON, wrong types, unknown fields, bad paging). */
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
    /* out */
    int status;             /* 0: ran the verb (rc, out); else refused with err */
    struct api_err err;
    int rc;
    char *out;
    size_t outlen;
    char next[NEXT_MAX];
    char spool_path[4096];  /* held show: the file, for the preview */
    char who[TOKEN_NAME_MAX];
};

/* http_api_run.c, loop thread: run w, mark it done, wake its thread;
 * frees w with its last ref. */
void http_api_on_loop(void *arg);
/* Any thread, once w is no longer shared. */
void http_api_work_free(struct api_work *w);
/* http_api.c: free a once no connection thread and no posted work is left. */
void http_api_free(struct http_api *a);

#endif
