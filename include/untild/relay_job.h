/* relay_job.h - what one upstream transaction is given and what it
 * answers: the types shared by the relay (relay.c) and the DSN-capable
 * SMTP transaction (smtp_dsn.c), so neither includes the other's module. */
#ifndef UNTILD_RELAY_JOB_H
#define UNTILD_RELAY_JOB_H

#include <stddef.h>

struct relay_result {
    int ok;             /* 1: upstream accepted (for at least one rcpt) */
    int code;           /* SMTP reply code to pass to the client (250, 4xx, 5xx) */
    char text[512];     /* upstream's reply text (first failing line, or the
                           final 250 line) without the code, or our own */
    int *rcpt_codes;    /* per-recipient reply codes, one per job rcpt, never
                           NULL: a recipient without an answer of its own
                           gets the message's code (owned by the relay) */
};

struct relay_job {
    const char *mail_from;          /* reverse path without <> */
    const char *const *rcpts;       /* forward paths without <> */
    size_t nrcpts;
    const char *data;               /* CRLF message, not dot-stuffed */
    size_t len;
    const char *prefix;             /* extra header lines (CRLF) to prepend,
                                       may be NULL */
    const char *username, *password;/* override credentials (auth = upstream), may be NULL */
    const char *mail_params;        /* the client's MAIL parameters, may be NULL */
    const char *const *rcpt_params; /* per recipient (nrcpts entries, each may be
                                       NULL), or NULL. DSN parameters (RET,
                                       ENVID, NOTIFY, ORCPT) are passed on when
                                       the upstream offers DSN; the rest are not. */
    /* The message is read on the relay's thread instead (data and len are
     * then left unset): load(load_arg, &data, &len) gives a malloc'ed copy
     * (the relay frees it) or -1 (answered 451). A held message is read this
     * way, so a page cache gone cold stalls a worker, not the event loop. */
    int (*load)(void *arg, char **data, size_t *len);
    void *load_arg;
};

#endif
