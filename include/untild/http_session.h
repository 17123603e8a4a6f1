/* http_session.h - browser sessions of the HTTP API (issue 14): after
 * POST /api/v1/login a browser holds a random 256-bit id in the
 * untild_session cookie; the table keeps only its SHA-256, the rep, a
 * CSRF token and two times. Ended by logout, by [http] session_idle
 * without use, by session_lifetime after login, or (the least recently
 * used) when max_sessions are open, or the rep has max_sessions_per_rep,
 * and another login comes. Memory only
 * (docs/DECISIONS.md "Browser sessions"). Plus the pure checks the API
 * makes of a cookie request: CSRF token, Origin, who is an admin. */
#ifndef UNTILD_HTTP_SESSION_H
#define UNTILD_HTTP_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define HTTP_SESSION_HEX 65      /* 256 bits in hex, NUL-terminated: ids and CSRF tokens */
#define HTTP_SESSION_REP_MAX 256

struct http_sessions;

/* One session as a request sees it. */
struct http_session_info {
    char rep[HTTP_SESSION_REP_MAX];
    char csrf[HTTP_SESSION_HEX];
};

/* Any thread (then one thread at a time: the loop). At most max sessions.
 * NULL on ENOMEM. */
struct http_sessions *http_session_table_new(size_t max);
void http_session_table_free(struct http_sessions *t);

/* The limits a new session is opened under ([http] session_idle,
 * session_lifetime, max_sessions_per_rep). */
struct http_session_limits {
    int64_t idle, lifetime;     /* seconds */
    size_t per_rep;             /* sessions of one rep (case-insensitive) */
};

#define HTTP_SESSION_ENDED_OWN 1    /* the rep had per_rep: their least recently used one ended */
#define HTTP_SESSION_ENDED_LRU 2    /* the table was full: its least recently used one ended */

/* Open a session for rep at now: a fresh id and CSRF token (gnutls_rnd)
 * into id and csrf. Expired sessions are dropped first; then if rep has
 * per_rep sessions the least recently used of them ends (so one rep's
 * logins cannot push the others out), else if the table is full its
 * least recently used session ends; the ended session's rep goes to
 * evicted (else evicted[0] = 0). Returns 0, HTTP_SESSION_ENDED_OWN,
 * HTTP_SESSION_ENDED_LRU, or -1 (no random numbers, ENOMEM, rep too
 * long). */
int http_session_create(struct http_sessions *t, const char *rep, time_t now, const struct http_session_limits *lim,
                        char id[HTTP_SESSION_HEX], char csrf[HTTP_SESSION_HEX], char *evicted, size_t evictedsz);
/* The session of id: 1 with *out filled and its last use set to now; 0
 * unknown, malformed or expired (an expired one is removed). */
int http_session_find(struct http_sessions *t, const char *id, time_t now, int64_t idle, int64_t lifetime,
                      struct http_session_info *out);
/* End the session of id: 1 ended, 0 unknown. */
int http_session_end(struct http_sessions *t, const char *id);
size_t http_session_count(const struct http_sessions *t);

/* Pure. 1 if got is the session's CSRF token (compared in constant time;
 * NULL or another length is 0). */
int http_session_csrf_ok(const char *want, const char *got);
/* Pure. 1 if rep is named in admins ("rep1, rep2": commas and/or spaces,
 * case-insensitive), as [http] admins lists them. */
int http_session_is_admin(const char *admins, const char *rep);
/* Pure. 1 if the request's Origin header (NULL: none, as from curl or a
 * same-origin GET) is this server: https://HOST, or on plain HTTP (tls 0:
 * loopback, perhaps behind a proxy that ends TLS) also http://HOST, where
 * HOST is the request's Host header. "null" and any other origin are
 * cross-site: 0. */
int http_session_origin_ok(const char *origin, const char *host, int tls);

#endif
